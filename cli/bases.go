package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"app/incarnate/internal/progress"
	"app/incarnate/internal/termtext"
	"app/incarnate/layers"
	"app/incarnate/session"
)

func cmdBaseImport(c *ctx, args []string) error {
	fs := newFlags(c, "base import")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: incarnate base import NAME SRC")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	o := layers.ImportOptions{Progress: c.progressTo(), Warn: func(msg string) { fmt.Fprintf(c.stderr, "incarnate: note: %s\n", termtext.Visible(msg)) }}
	b, err := st.Layers.Import(pos[0], pos[1], o)
	if err != nil {
		return err
	}
	size, _ := b.Size()
	fmt.Fprintf(c.stdout, "imported base %s from %s (%s)\n", b.Name, b.Source, progress.HumanSize(size))
	return nil
}

// baseRow is one base as ls shows it.
type baseRow struct {
	Name     string     `json:"name"`
	Builtin  bool       `json:"builtin,omitempty"`
	Layers   []string   `json:"layers"`
	Size     *int64     `json:"size"` // null when unknown: the host's, or from an older store
	Sessions []string   `json:"sessions"`
	Source   string     `json:"source"`
	Created  *time.Time `json:"created,omitempty"`
}

func newBaseRow(b *layers.Base, users map[string][]string) baseRow {
	r := baseRow{Name: b.Name, Builtin: b.Builtin(), Layers: b.LayerIDs(), Sessions: users[b.Name], Source: b.Source}
	if r.Sessions == nil {
		r.Sessions = []string{}
	}
	if size, ok := b.Size(); ok && !b.Builtin() {
		r.Size = &size
	}
	if !b.Builtin() {
		r.Created = &b.Created
	}
	return r
}

func cmdBaseLs(c *ctx, args []string) error {
	fs := newFlags(c, "base ls")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("base ls takes no arguments")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	rows, err := baseRows(st)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.stdout, rows)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLAYERS\tSIZE\tSESSIONS\tSOURCE\tCREATED")
	for _, r := range rows {
		size, created, sessions := "-", "built in", "-"
		if r.Size != nil {
			size = progress.HumanSize(*r.Size)
		}
		if r.Created != nil {
			created = when(*r.Created)
		}
		if len(r.Sessions) > 0 {
			sessions = strings.Join(r.Sessions, ",")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Name, len(r.Layers), size, sessions, r.Source, created)
	}
	return tw.Flush()
}

// baseRows lists the bases, host first, each with the sessions on it.
func baseRows(st *session.Store) ([]baseRow, error) {
	list, err := st.Layers.List()
	if err != nil {
		return nil, err
	}
	users, err := st.BaseUsers()
	if err != nil {
		return nil, err
	}
	rows := make([]baseRow, len(list))
	for i, b := range list {
		rows[i] = newBaseRow(b, users)
	}
	return rows, nil
}

func cmdBaseRm(c *ctx, args []string) error {
	fs := newFlags(c, "base rm")
	yes := yesFlag(fs)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("base rm needs at least one base name")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	for _, name := range pos {
		if _, err := st.Layers.Get(name); err != nil {
			return err
		}
	}
	if err := c.confirm(*yes, fmt.Sprintf("Remove base %s and the layers only it uses?", strings.Join(pos, ", ")), "nothing removed"); err != nil {
		return err
	}
	for _, name := range pos {
		freed, err := st.RemoveBase(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "removed base %s (%s freed)\n", name, progress.HumanSize(freed))
	}
	return nil
}
