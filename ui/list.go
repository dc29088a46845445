package ui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sahilm/fuzzy"

	"github.com/incarnate-dev/incarnate/internal/progress"
)

// sortMode is an order of the session list; s cycles through them.
type sortMode int

const (
	sortLastEntered sortMode = iota
	sortName
	sortCreated
	sortSize
	sortChanges
	numSorts
)

var sortNames = [...]string{"last entered", "name", "created", "size", "changes"}

func (s sortMode) String() string { return sortNames[s] }

func parseSort(s string) (sortMode, bool) {
	for i, n := range sortNames {
		if strings.EqualFold(strings.ReplaceAll(s, "_", " "), n) {
			return sortMode(i), true
		}
	}
	return 0, false
}

// sessionList is the table of sessions: sorted, filtered, scrolled.
type sessionList struct {
	c      *common
	rows   []row // sorted
	shown  []int // indices of rows that pass the filter
	scroll scroller
	sort   sortMode
	filter string
	loaded bool
}

// setRows takes a fresh listing, keeping the chosen session chosen.
func (l *sessionList) setRows(rows []row) {
	keep := l.selectedName()
	l.rows, l.loaded = rows, true
	l.apply(keep)
}

// apply sorts and filters the rows, then chooses keep if it is shown.
func (l *sessionList) apply(keep string) {
	less := l.less()
	sort.SliceStable(l.rows, func(i, j int) bool { return less(&l.rows[i], &l.rows[j]) })
	l.shown = l.shown[:0]
	if l.filter == "" {
		for i := range l.rows {
			l.shown = append(l.shown, i)
		}
	} else {
		names := make([]string, len(l.rows))
		for i, r := range l.rows {
			names[i] = r.name()
		}
		for _, m := range fuzzy.FindNoSort(l.filter, names) {
			l.shown = append(l.shown, m.Index)
		}
	}
	l.scroll.setN(len(l.shown))
	l.choose(keep)
}

// choose moves the cursor to session name, if shown.
func (l *sessionList) choose(name string) {
	for i, idx := range l.shown {
		if l.rows[idx].name() == name {
			l.scroll.moveTo(i)
			return
		}
	}
}

func (l *sessionList) less() func(a, b *row) bool {
	byName := func(a, b *row) bool { return a.name() < b.name() }
	switch l.sort {
	case sortName:
		return byName
	case sortCreated:
		return func(a, b *row) bool {
			if !a.Meta.Created.Equal(b.Meta.Created) {
				return a.Meta.Created.After(b.Meta.Created)
			}
			return byName(a, b)
		}
	case sortSize:
		return func(a, b *row) bool {
			if a.Stats.Size != b.Stats.Size {
				return a.Stats.Size > b.Stats.Size
			}
			return byName(a, b)
		}
	case sortChanges:
		return func(a, b *row) bool {
			if a.Stats.Changes != b.Stats.Changes {
				return a.Stats.Changes > b.Stats.Changes
			}
			return byName(a, b)
		}
	}
	// Last entered, most recent first; never entered by creation.
	return func(a, b *row) bool {
		ta, tb := a.Meta.LastEntered, b.Meta.LastEntered
		if ta.IsZero() {
			ta = a.Meta.Created
		}
		if tb.IsZero() {
			tb = b.Meta.Created
		}
		if !ta.Equal(tb) {
			return ta.After(tb)
		}
		return byName(a, b)
	}
}

func (l *sessionList) cycleSort() {
	l.sort = (l.sort + 1) % numSorts
	l.apply(l.selectedName())
}

func (l *sessionList) setFilter(f string) {
	keep := l.selectedName()
	l.filter = f
	l.apply(keep)
}

func (l *sessionList) selected() *row {
	if len(l.shown) == 0 {
		return nil
	}
	return &l.rows[l.shown[l.scroll.cursor]]
}

func (l *sessionList) selectedName() string {
	if r := l.selected(); r != nil {
		return r.name()
	}
	return ""
}

func (l *sessionList) find(name string) *row {
	for i := range l.rows {
		if l.rows[i].name() == name {
			return &l.rows[i]
		}
	}
	return nil
}

// columns are the table's widths for a terminal width w: the name
// column takes what the fixed ones leave.
type columns struct{ name, base, shells, size, changes, created, entered int }

func columnsFor(w int) columns {
	c := columns{base: 10, shells: 6, size: 7, changes: 7, created: 9, entered: 12}
	if w >= 110 {
		c.base, c.created, c.entered = 16, 12, 12
	}
	fixed := c.base + c.shells + c.size + c.changes + c.created + c.entered + 7 // gaps and the marker
	c.name = max(8, min(48, w-fixed))
	return c
}

func (c columns) line(marker, name, base, shells, size, changes, created, entered string) string {
	return marker + fit(name, c.name) + " " + fit(base, c.base) + " " + fitRight(shells, c.shells) + " " +
		fitRight(size, c.size) + " " + fitRight(changes, c.changes) + " " + fitRight(created, c.created) + " " +
		fitRight(entered, c.entered)
}

// setHeight sets the rows the table has on screen, its heading included.
func (l *sessionList) setHeight(h int) { l.scroll.setHeight(h - 1) }

// View draws the table in w cells wide, as many rows high as setHeight said.
func (l *sessionList) View(w int) string {
	st := l.c.styles
	var b strings.Builder
	if !l.loaded {
		return st.List.Empty.Render("  Reading the store…")
	}
	if len(l.rows) == 0 {
		b.WriteString("\n")
		b.WriteString(st.List.Empty.Render("  No sessions yet — press n to create one."))
		return b.String()
	}
	cols := columnsFor(w)
	b.WriteString(st.List.Header.Render(cols.line(" ", "NAME", "BASE", "SHELLS", "SIZE", "CHANGES", "CREATED", "LAST ENTERED")))
	if len(l.shown) == 0 {
		b.WriteString("\n" + st.List.Empty.Render(fmt.Sprintf("  No session matches %q — esc clears the filter.", l.filter)))
		return b.String()
	}
	now := l.c.now()
	from, to := l.scroll.window()
	for i := from; i < to; i++ {
		r := &l.rows[l.shown[i]]
		b.WriteString("\n")
		selected := i == l.scroll.cursor
		marker := " "
		if selected {
			marker = "›"
		}
		var line string
		if r.Meta.Damaged != "" {
			line = marker + fit(r.name(), cols.name) + " " + fit("damaged: "+r.Meta.Damaged, w-cols.name-2)
		} else {
			size, changes := progress.HumanSize(r.Stats.Size), fmt.Sprint(r.Stats.Changes)
			if r.Stats.Stale {
				size, changes = size+"~", changes+"~"
			}
			shells := "-"
			if r.Shells > 0 {
				shells = fmt.Sprint(r.Shells)
			}
			line = cols.line(marker, r.name(), r.Meta.Base, shells, size, changes, ago(now, r.Meta.Created), ago(now, r.Meta.LastEntered))
		}
		switch {
		case selected:
			line = st.List.Selected.Render(line)
		case r.Meta.Damaged != "":
			line = st.List.Damaged.Render(line)
		case r.Shells > 0:
			line = st.List.Running.Render(line)
		default:
			line = st.List.Row.Render(line)
		}
		b.WriteString(line)
	}
	return b.String()
}
