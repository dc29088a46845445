package ui

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"

	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/session"
)

// Everything here touches the disk and so runs as a tea.Cmd, never in
// Update.

// loadCmd lists the sessions with their cached figures and shell counts.
func loadCmd(st *session.Store) tea.Cmd {
	return func() tea.Msg {
		start := time.Now()
		ents, err := st.ListEntries()
		rows := make([]row, len(ents))
		for i, e := range ents {
			rows[i] = row{Entry: e, Shells: st.EntryShells(e)}
		}
		return entriesMsg{rows: rows, err: err, took: time.Since(start)}
	}
}

func basesCmd(st *session.Store) tea.Cmd {
	return func() tea.Msg {
		// Who stands on each base comes from the session list the model
		// has (baseUsers), not from reading every session again here.
		bs, err := st.Layers.List()
		return basesMsg{bases: bs, err: err}
	}
}

func diffCmd(st *session.Store, k diffKey) tea.Cmd {
	return func() tea.Msg {
		ch, err := st.Diff(k.name)
		return diffMsg{key: k, changes: ch, err: err}
	}
}

// refreshEvery is how often the list is read again on its own.
const refreshEvery = 5 * time.Second

func tickCmd() tea.Cmd {
	return tea.Tick(refreshEvery, func(time.Time) tea.Msg { return tickMsg{} })
}

// task runs fn as a command with a spinner: what is said meanwhile, and
// fn's result in the status line after.
// choose, if given, is the session to choose once the list is read
// again (one just made).
func (c *common) task(what string, fn func() (string, error), choose ...string) tea.Cmd {
	return c.taskWithProgress(what, nil, fn, choose...)
}

func (c *common) taskWithProgress(what string, prog *progressLine, fn func() (string, error), choose ...string) tea.Cmd {
	id := c.taskIDs.Add(1)
	return tea.Sequence(
		func() tea.Msg { return taskStartMsg{id: id, what: what, prog: prog} },
		func() tea.Msg {
			msg, err := fn()
			done := taskDoneMsg{id: id, msg: msg, err: err}
			if len(choose) > 0 && err == nil {
				done.selectName = choose[0]
			}
			return done
		},
	)
}

// planCmd asks what applying session name would do.
func planCmd(st *session.Store, name string) tea.Cmd {
	return func() tea.Msg {
		steps, err := st.PlanApply(name, nil)
		return planMsg{name: name, steps: steps, err: err}
	}
}

// patchCmd reads the text diff of a modified file against the base.
func patchCmd(st *session.Store, name string, ch session.Change) tea.Cmd {
	return func() tea.Msg {
		var b strings.Builder
		err := st.Patch(name, []session.Change{ch}, &b)
		return previewMsg{path: ch.Path, text: b.String(), err: err, patch: true}
	}
}

// previewLines bounds what enter on a path of the diff shows.
const previewBytes = 16 << 10

// previewCmd reads the start of path (as the session sees it) from the
// session's upper dir, inside it: os.Root refuses a symlink or ".." that
// would lead out, so nothing outside the upper dir is ever read.
func previewCmd(upper string, ch session.Change) tea.Cmd {
	return func() tea.Msg {
		text, err := preview(upper, ch)
		return previewMsg{path: ch.Path, text: text, err: err}
	}
}

func preview(upper string, ch session.Change) (string, error) {
	if ch.Kind == session.Deleted {
		return "deleted: the session no longer has this path (the base still does)", nil
	}
	root, err := os.OpenRoot(upper)
	if err != nil {
		return "", err
	}
	defer root.Close()
	rel := strings.TrimPrefix(filepath.Clean("/"+ch.Path), "/")
	fi, err := root.Lstat(rel)
	if err != nil {
		return "", err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := root.Readlink(rel)
		if err != nil {
			return "", err
		}
		return "symbolic link to " + target, nil
	case fi.IsDir():
		f, err := root.Open(rel)
		if err != nil {
			return "", err
		}
		defer f.Close()
		names, _ := f.Readdirnames(-1)
		return fmt.Sprintf("directory: %s in the session's upper layer", plural(len(names), "entry", "entries")), nil
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("special file (%v)", fi.Mode().Type()), nil
	}
	f, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, previewBytes))
	if err != nil {
		return "", err
	}
	if bytes.IndexByte(buf, 0) >= 0 || !utf8.Valid(trimPartialRune(buf)) {
		return fmt.Sprintf("binary file, %s", progress.HumanSize(fi.Size())), nil
	}
	if len(buf) == 0 {
		return "empty file", nil
	}
	return string(buf), nil
}

// trimPartialRune drops a rune cut in half by the read limit.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}

// progressLine is the last line an import's progress writer drew
// ("label  1.2 MiB / 4.0 MiB  30%"), read by the spinner's ticks.
type progressLine struct {
	mu   sync.Mutex
	line string
	pct  float64 // -1 when the total is unknown
}

func newProgressLine() *progressLine { return &progressLine{pct: -1} }

func (p *progressLine) Write(b []byte) (int, error) {
	s := string(b)
	if i := strings.LastIndexByte(strings.TrimRight(s, "\r\n"), '\r'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(strings.ReplaceAll(strings.TrimPrefix(s, "\r"), "\x1b[K", ""))
	if s == "" {
		return len(b), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line = s
	var n int
	if f := strings.Fields(s); len(f) > 0 {
		if _, err := fmt.Sscanf(f[len(f)-1], "%d%%", &n); err == nil {
			p.pct = float64(n) / 100
		}
	}
	return len(b), nil
}

func (p *progressLine) get() (string, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.line, p.pct
}
