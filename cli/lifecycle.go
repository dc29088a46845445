package cli

import (
	"fmt"
	"os"

	"github.com/incarnate-dev/incarnate/session"
)

func cmdReset(c *ctx, args []string) error {
	fs := newFlags(c, "reset")
	yes, force := yesFlag(fs), forceFlag(fs)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("reset takes one session name")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	m, err := st.Get(pos[0])
	if err != nil {
		return err
	}
	if err := c.confirm(*yes, fmt.Sprintf("Throw away everything written in %s (base %s stays)?", m.Name, m.Base), "nothing reset"); err != nil {
		return err
	}
	if err := st.Reset(m.Name, *force); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "reset session %s to its base %s\n", m.Name, m.Base)
	return nil
}

func cmdRename(c *ctx, args []string) error {
	fs := newFlags(c, "rename")
	force := forceFlag(fs)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("rename takes the old and the new name")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	if err := st.Rename(pos[0], pos[1], *force); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "renamed session %s to %s\n", pos[0], pos[1])
	return nil
}

func cmdClone(c *ctx, args []string) error {
	fs := newFlags(c, "clone")
	force := forceFlag(fs)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("clone takes the session to copy and the new name")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	m, err := st.Clone(pos[0], pos[1], *force, c.progressTo())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "cloned session %s to %s (base %s)\n", pos[0], m.Name, m.Base)
	return nil
}

// cmdPurge is the hidden command a discard starts, detached, to delete
// what it moved into trash/.
func cmdPurge(c *ctx, args []string) error {
	fs := newFlags(c, session.PurgeCommand)
	if _, err := c.parseArgs(fs, args); err != nil {
		return err
	}
	root, err := storeRoot(c.root)
	if err != nil {
		return err
	}
	st := &session.Store{Root: root}
	if err := st.Purge(); err != nil {
		fmt.Fprintf(os.Stderr, "incarnate: purge: %v\n", err)
		return exitStatus(1)
	}
	return nil
}
