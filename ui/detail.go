package ui

import (
	"fmt"
	"strings"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/session"

	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// detail is the pane under the list: the chosen session's base, layers,
// options and the first lines of its diff, which is loaded in the
// background and cached per state of the session.
type detail struct {
	c     *common
	diffs map[diffKey]diffMsg
	bases map[string]*layers.Base
}

func newDetail(c *common) *detail {
	return &detail{c: c, diffs: map[diffKey]diffMsg{}, bases: map[string]*layers.Base{}}
}

func (d *detail) setBases(bs []*layers.Base) {
	d.bases = map[string]*layers.Base{}
	for _, b := range bs {
		d.bases[b.Name] = b
	}
}

// View draws r's details in w x h cells.
func (d *detail) View(r *row, w, h int) string {
	st := d.c.styles
	if r == nil || h <= 0 {
		return ""
	}
	lines := make([]string, 0, h)
	m := r.Meta
	if m.Damaged != "" {
		lines = append(lines, st.Detail.Name.Render(m.Name)+" "+st.List.Damaged.Render("damaged: "+m.Damaged))
		lines = append(lines, st.Muted.Render("d discards it; its files stay in the store until then."))
		return strings.Join(lines, "\n")
	}
	label := func(k, v string) string { return st.Detail.Label.Render(k+" ") + st.Detail.Value.Render(v) }
	layerText := "…"
	if b, ok := d.bases[m.Base]; ok {
		ids := b.LayerIDs()
		layerText = fmt.Sprintf("%d: %s", len(ids), strings.Join(ids, ", "))
	}
	net := m.Net
	if net == "" {
		net = "host"
	}
	host := m.Hostname
	if host == "" {
		host = m.Name
	}
	lines = append(lines, fit(st.Detail.Name.Render(m.Name)+"  "+label("base", m.Base)+"  "+label("layers", layerText), w))
	binds := "none"
	if len(m.Binds) > 0 {
		bs := make([]string, len(m.Binds))
		for i, b := range m.Binds {
			bs[i] = b.Src + ":" + b.Dst
			if b.ReadOnly {
				bs[i] += ":ro"
			}
		}
		binds = strings.Join(bs, " ")
	}
	lines = append(lines, fit(label("net", net)+"  "+label("hostname", host)+"  "+label("binds", binds)+"  "+label("limits", m.Limits()+unenforced()), w))
	dm, ok := d.diffs[keyOf(r)]
	switch {
	case !ok:
		lines = append(lines, st.Muted.Render("reading changes…"))
	case dm.err != nil:
		lines = append(lines, fit(st.Status.Error.Render("diff: "+termtext.Visible(dm.err.Error())), w))
	case len(dm.changes) == 0:
		lines = append(lines, st.Muted.Render("no changes over the base"))
	default:
		room := h - len(lines)
		for i, ch := range dm.changes {
			if i == room-1 && len(dm.changes) > room {
				lines = append(lines, st.Muted.Render(fmt.Sprintf("… %d more — D shows them all", len(dm.changes)-i)))
				break
			}
			lines = append(lines, changeLine(d.c, ch, w))
		}
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

// changeLine is one path of a diff, its letter and path coloured.
func changeLine(c *common, ch session.Change, w int) string {
	return kindStyle(c.styles, ch.Kind).Render(fit(ch.Kind.Letter()+" "+termtext.Visible(ch.Path), w))
}

// unenforced says so when the limits shown cannot hold: there is no
// cgroup for sessions here. A variable, so that the goldens do not
// depend on the machine that runs them.
var unenforced = func() string {
	if session.CgroupsEnforced() {
		return ""
	}
	return " (not enforced: no cgroup here, see doctor)"
}
