package cli

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/internal/registry"
	"github.com/incarnate-dev/incarnate/internal/termtext"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/session"
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
	b, err := st.Layers.Import(pos[0], pos[1], c.importOptions())
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
	for _, name := range pos { // a refusal before the question
		if err := st.CheckRemoveBase(name); err != nil {
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

func cmdBasePull(c *ctx, args []string) error {
	fs := newFlags(c, "base pull")
	platform := fs.String("platform", "", "the image to take from a multi-platform index, OS/ARCH[/VARIANT] (default linux and this machine's)")
	insecure := fs.Bool("insecure", false, "allow plain HTTP and any certificate (loopback and private addresses use HTTP anyway)")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("usage: incarnate base pull REF [NAME]")
	}
	ro := registry.Options{Insecure: *insecure, Platform: *platform}
	ref, err := registry.ParseRef(pos[0], ro)
	if err != nil {
		return usagef("%v", err)
	}
	name := layers.PullName(ref)
	if len(pos) == 2 {
		name = pos[1]
	}
	remote, err := registry.Remote(ro)
	if err != nil {
		return usagef("%v", err)
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	o := layers.PullOptions{ImportOptions: c.importOptions(), Remote: remote}
	b, err := st.Layers.Pull(name, ref, o)
	if err != nil {
		return registry.Explain(err, ref)
	}
	size, _ := b.Size()
	fmt.Fprintf(c.stdout, "pulled base %s from %s (%d layers, %s)\n", b.Name, b.Source, len(b.Layers), progress.HumanSize(size))
	return nil
}

// importOptions are what an import or a pull tells the user: progress on
// a terminal, and notes, made visible (they may hold an image's names).
func (c *ctx) importOptions() layers.ImportOptions {
	return layers.ImportOptions{Progress: c.progressTo(), Warn: func(msg string) {
		fmt.Fprintf(c.stderr, "incarnate: note: %s\n", termtext.Visible(msg))
	}}
}

// checkCompression refuses a --compression push and export do not know.
func checkCompression(name string) error {
	if !slices.Contains(session.Compressions, name) {
		return usagef("--compression %q: use %s", name, strings.Join(session.Compressions, " or "))
	}
	return nil
}

func cmdBasePush(c *ctx, args []string) error {
	fs := newFlags(c, "base push")
	var o session.PushOptions
	fs.StringVar(&o.Compression, "compression", "gzip", "how the layers packed here are compressed: "+strings.Join(session.Compressions, " or "))
	labelFlag(fs, &o.Labels)
	insecure := fs.Bool("insecure", false, "allow plain HTTP and any certificate (loopback and private addresses use HTTP anyway)")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: incarnate base push NAME REF")
	}
	if err := checkCompression(o.Compression); err != nil {
		return err
	}
	ro := registry.Options{Insecure: *insecure}
	ref, err := registry.ParseRef(pos[1], ro)
	if err != nil {
		return usagef("%v", err)
	}
	if o.Remote, err = registry.Remote(ro); err != nil {
		return usagef("%v", err)
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	o.Progress = c.progressTo()
	if err := st.Push(pos[0], ref, o); err != nil {
		return registry.Explain(err, ref)
	}
	fmt.Fprintf(c.stdout, "pushed base %s to %s\n", pos[0], ref)
	return nil
}

func cmdBaseExport(c *ctx, args []string) error {
	fs := newFlags(c, "base export")
	var o session.ImageOptions
	fs.StringVar(&o.Compression, "compression", "gzip", "how the layers are compressed: "+strings.Join(session.Compressions, " or "))
	labelFlag(fs, &o.Labels)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: incarnate base export NAME FILE")
	}
	if err := checkCompression(o.Compression); err != nil {
		return err
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	o.Progress = c.progressTo()
	if err := st.ExportBase(pos[0], pos[1], o); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "exported base %s to %s (an OCI archive: docker load, podman load, skopeo oci-archive:%s)\n", pos[0], pos[1], pos[1])
	return nil
}

// labelFlag adds the repeatable --label K=V, into labels.
func labelFlag(fs *flag.FlagSet, labels *map[string]string) {
	fs.Func("label", "a label of the image's config, KEY=VALUE (repeatable)", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: a label is KEY=VALUE", v)
		}
		if *labels == nil {
			*labels = map[string]string{}
		}
		(*labels)[k] = val
		return nil
	})
}
