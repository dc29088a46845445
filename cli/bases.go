package cli

import (
	"fmt"
	"text/tabwriter"
)

func cmdBase(c *ctx, args []string) error {
	if len(args) == 0 {
		return usagef("base needs a subcommand: import NAME DIR, or ls")
	}
	switch args[0] {
	case "import":
		return cmdBaseImport(c, args[1:])
	case "ls":
		return cmdBaseLs(c, args[1:])
	}
	return usagef("unknown base subcommand %q: want import or ls", args[0])
}

func cmdBaseImport(c *ctx, args []string) error {
	fs := newFlags(c, "base")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: incarnate base import NAME DIR")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "importing %s ...\n", pos[1])
	b, err := st.Layers.ImportDir(pos[0], pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "imported base %s from %s\n", b.Name, b.Source)
	return nil
}

func cmdBaseLs(c *ctx, args []string) error {
	fs := newFlags(c, "base")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	list, err := st.Layers.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLAYERS\tSOURCE\tCREATED")
	for _, b := range list {
		created := "built in"
		if !b.Builtin() {
			created = when(b.Created)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", b.Name, len(b.Layers), b.Source, created)
	}
	return tw.Flush()
}
