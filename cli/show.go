package cli

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/internal/termtext"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/session"
)

// showRecord is one session's whole record, as `show --json` gives it.
type showRecord struct {
	Name        string          `json:"name"`
	Base        string          `json:"base"`
	Layers      []string        `json:"layers"` // the base's, top first
	BaseSource  string          `json:"base_source,omitempty"`
	Options     session.Options `json:"options"`
	Privilege   string          `json:"made_by"` // "root" or "user"
	Size        int64           `json:"size"`
	Changes     int             `json:"changes"`
	Stale       bool            `json:"figures_may_be_behind,omitempty"`
	Shells      int             `json:"shells"`
	KeeperPID   int             `json:"keeper_pid,omitempty"`
	Created     time.Time       `json:"created"`
	LastEntered *time.Time      `json:"last_entered"`
	Dir         string          `json:"dir"`
	Upper       string          `json:"upper"`
	Work        string          `json:"work"`
	ApplyCut    *time.Time      `json:"apply_cut_short,omitempty"`
}

func cmdShow(c *ctx, args []string) error {
	fs := newFlags(c, "show")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("show needs one session name")
	}
	st, err := c.storeOutside()
	if err != nil {
		return err
	}
	m, err := st.Get(pos[0])
	if err != nil {
		return err
	}
	figures, err := st.Stats(m)
	if err != nil {
		return c.inUserNS(err)
	}
	r := showRecord{Name: m.Name, Base: m.Base, Options: m.Options, Privilege: "root",
		Size: figures.Size, Changes: figures.Changes, Stale: figures.Stale, Created: m.Created,
		Dir: st.Dir(m.Name), Upper: filepath.Join(st.Dir(m.Name), "upper"), Work: filepath.Join(st.Dir(m.Name), "work")}
	if m.UserXattr {
		r.Privilege = "user"
	}
	if b, err := st.Layers.Get(m.Base); err == nil {
		r.Layers, r.BaseSource = b.Layers, b.Source
	}
	if !m.LastEntered.IsZero() {
		r.LastEntered = &m.LastEntered
	}
	if r.KeeperPID, r.Shells = st.Keeper(m.Name); r.Shells > 0 {
		r.Stale = true
	}
	if started, ok := st.InterruptedApply(m.Name); ok {
		r.ApplyCut = &started
	}
	if *asJSON {
		return writeJSON(c.stdout, r)
	}
	return r.print(c)
}

func (r showRecord) print(c *ctx) error {
	w := bufio.NewWriter(c.stdout)
	line := func(key, format string, a ...any) {
		fmt.Fprintf(w, "%-13s %s\n", key+":", termtext.Visible(fmt.Sprintf(format, a...)))
	}
	line("name", "%s", r.Name)
	if r.Base == layers.HostBase {
		line("base", "host (the machine's own /, copy-on-write)")
	} else {
		line("base", "%s (from %s), %d layer%s", r.Base, r.BaseSource, len(r.Layers), plural(len(r.Layers)))
	}
	line("made by", "%s", map[string]string{"root": "root (an id range of its own)", "user": "an ordinary user"}[r.Privilege])
	stale := ""
	if r.Stale {
		stale = " (as last measured: something runs inside)"
	}
	line("size", "%s, %d change%s%s", progress.HumanSize(r.Size), r.Changes, plural(r.Changes), stale)
	switch {
	case r.KeeperPID != 0 && r.Shells == 0:
		line("running", "nothing; its keeper (pid %d) stays up a while for the next command", r.KeeperPID)
	case r.KeeperPID != 0:
		line("running", "%d process%s (keeper pid %d)", r.Shells, map[bool]string{true: "es", false: ""}[r.Shells != 1], r.KeeperPID)
	default:
		line("running", "nothing")
	}
	line("created", "%s", when(r.Created))
	line("last entered", "%s", whenPtr(r.LastEntered))
	line("network", "%s", orDefault(r.Options.Net, "host"))
	for _, b := range r.Options.Binds {
		mode := "read-write"
		switch {
		case b.ReadOnly:
			mode = "read-only"
		case b.Cow:
			mode = "copy-on-write"
		}
		line("bind", "%s at %s, %s", b.Src, b.Dst, mode)
	}
	if r.Options.Hostname != "" {
		line("hostname", "%s", r.Options.Hostname)
	}
	if r.Options.Shell != "" {
		line("shell", "%s", r.Options.Shell)
	}
	for _, e := range r.Options.Env {
		line("env", "%s", e)
	}
	if s := (&r.Options).Summary(); s != "-" && s != "" {
		line("limits", "%s", s)
	}
	line("upper dir", "%s", r.Upper)
	line("work dir", "%s", r.Work)
	if r.ApplyCut != nil {
		line("apply", "cut short (started %s): `incarnate apply %s` finishes it", when(*r.ApplyCut), r.Name)
	}
	return w.Flush()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
