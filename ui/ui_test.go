package ui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/testbase"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/session"
)

// A discard starts a detached `incarnate __purge` through /proc/self/exe,
// which here is this test binary: do the purge, not the tests again.
func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == session.PurgeCommand {
		// Not session.Open: the test may have removed the store already,
		// and Open would make it again.
		_ = (&session.Store{Root: os.Args[3]}).Purge()
		os.Exit(0)
	}
	unenforced = func() string { return "" } // the goldens are every machine's
	os.Exit(m.Run())
}

// newStore is a store on a temp root with base "bb" (busybox), made
// through the session and layers packages as the CLI would.
func newStore(t *testing.T) *session.Store {
	t.Helper()
	dir := tempDir(t)
	st, err := session.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	src := testbase.Busybox(t, filepath.Join(dir, "src"))
	if _, err := st.Layers.Import("bb", src, layers.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// The source is a temp path, different each run: pin it for goldens.
	var b layers.Base
	path := filepath.Join(st.Root, "bases", "bb.json")
	if err := fsutil.ReadJSON(path, &b); err != nil {
		t.Fatal(err)
	}
	b.Source = "/srv/rootfs/busybox"
	if err := fsutil.WriteJSON(path, &b); err != nil {
		t.Fatal(err)
	}
	return st
}

// tempDir is t.TempDir, except that its removal tries again for a while:
// commands the program started (a listing writing index.json, the
// detached purge of a discard) may still be finishing when a test ends.
func tempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "incarnate-ui-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
		}
		t.Errorf("remove %s: %v", dir, err)
	})
	return dir
}

// addSession makes session name on bb and writes files into its upper
// dir as a shell inside would (path → content; "" deletes by whiteout is
// not needed here).
func addSession(t *testing.T, st *session.Store, name string, files map[string]string) {
	t.Helper()
	if _, err := st.Create(name, "bb", session.Options{}); err != nil {
		t.Fatal(err)
	}
	upper := filepath.Join(st.Dir(name), "upper")
	for p, body := range files {
		full := filepath.Join(upper, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// options draw without colours (on a dark background, the default).
func options(st *session.Store, t *testing.T) Options {
	return Options{Store: st, ConfigDir: t.TempDir(), Profile: colorprofile.ASCII, NoTick: true}
}

// harness wraps the model so that a test can look at it from inside the
// program's own goroutine (inspectMsg), without a data race.
type harness struct{ *Model }

type inspectMsg func(*Model)

func (h harness) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if f, ok := msg.(inspectMsg); ok {
		f(h.Model)
		return h, nil
	}
	_, cmd := h.Model.Update(msg)
	return h, cmd
}

// running is the model as teatest runs it.
var running = map[*Model]*teatest.TestModel{}

// start runs the model at 80x24 in teatest.
func start(t *testing.T, m *Model) *teatest.TestModel {
	t.Helper()
	tm := teatest.NewTestModel(t, harness{m}, teatest.WithInitialTermSize(80, 24))
	running[m] = tm
	return tm
}

// openWebDiff opens the interface on st with the diff view of web, the
// second session, on the screen.
func openWebDiff(t *testing.T, st *session.Store) (*Model, *teatest.TestModel) {
	t.Helper()
	m, tm := openList(t, st)
	tm.Send(press("down"))
	tm.Send(press("D"))
	waitFor(t, tm, "paths changed in web")
	return m, tm
}

// openList opens the interface on st and waits for the list's header.
func openList(t *testing.T, st *session.Store) (*Model, *teatest.TestModel) {
	t.Helper()
	m := New(options(st, t))
	tm := start(t, m)
	waitFor(t, tm, "LAST ENTERED")
	return m, tm
}

// inspect runs f on the model inside the program and returns its result.
func inspect[T any](m *Model, f func(*Model) T) T {
	ch := make(chan T, 1)
	running[m].Send(inspectMsg(func(m *Model) { ch <- f(m) }))
	return <-ch
}

// waitFor waits until the program's screen shows s, with a bound, not a
// sleep. It reads the model's screen, not the output: Bubble Tea v2
// writes only the cells that changed, so text on the screen need not
// come out in one piece ("*A /root/note" after a mark is "*").
func waitFor(t *testing.T, tm *teatest.TestModel, s string) {
	t.Helper()
	for m, running := range running {
		if running == tm {
			waitScreen(t, m, fmt.Sprintf("%q on the screen", s), func(sc string) bool { return strings.Contains(sc, s) })
			return
		}
	}
	t.Fatal("waitFor: not a model that start runs")
}

// waitModel polls the model's own screen until cond holds. The model is
// read from the test goroutine while the program runs; View only reads,
// and the race detector is not on in these runs.
func waitScreen(t *testing.T, m *Model, what string, cond func(screen string) bool) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if last = inspect(m, content); cond(last) {
			return
		}
	}
	t.Fatalf("timed out waiting for %s; screen:\n%s", what, last)
}

// content is what m draws.
func content(m *Model) string { return m.View().Content }

var layerID = regexp.MustCompile(`\d{8}T\d{6}-[0-9a-f]{12}`)

// screen is the final frame with what changes from run to run (layer
// ids) masked, at the same width so that columns stay put.
func screen(t *testing.T, tm *teatest.TestModel) []byte {
	t.Helper()
	tm.Send(tea.Quit())
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(harness)
	return []byte(layerID.ReplaceAllString(content(fm.Model), "LLLLLLLLTLLLLLL-LLLLLLLLLLLL") + "\n")
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	}
	r, _ := utf8.DecodeRuneInString(s)
	return tea.KeyPressMsg{Code: r, Text: s}
}

// threeSessions is the store most goldens show.
func threeSessions(t *testing.T) *session.Store {
	st := newStore(t)
	addSession(t, st, "api", map[string]string{"srv/api/main.go": "package main\n"})
	addSession(t, st, "web", map[string]string{"root/note": "kept\nsecond line\n", "etc/motd": "hello\n", "bin/blob": "\x00\x01\x02", "var/cache/app.log": "x\n"})
	addSession(t, st, "scratch", nil)
	return st
}

func TestListGolden(t *testing.T) {
	st := threeSessions(t)
	_, tm := openList(t, st)
	// The newest is chosen first (never entered: by creation); its diff
	// arrives in the background.
	waitFor(t, tm, "no changes over the base")
	tm.Send(press("down"))
	waitFor(t, tm, "A /root/note")
	teatest.RequireEqualOutput(t, screen(t, tm))
}

func TestEmptyGolden(t *testing.T) {
	m := New(options(newStore(t), t))
	tm := start(t, m)
	waitFor(t, tm, "No sessions yet")
	out := screen(t, tm)
	if !strings.Contains(string(out), "No sessions yet — press n") {
		t.Errorf("empty state missing:\n%s", out)
	}
	if strings.Contains(string(out), "enter shell") || strings.Contains(string(out), "discard") {
		t.Errorf("keys that need a session are offered with none:\n%s", out)
	}
	teatest.RequireEqualOutput(t, out)
}

func TestHelpGolden(t *testing.T) {
	_, tm := openList(t, threeSessions(t))
	tm.Send(press("?"))
	waitFor(t, tm, "commit as base")
	teatest.RequireEqualOutput(t, screen(t, tm))
}

func TestNewDialogInvalidName(t *testing.T) {
	st := threeSessions(t)
	_, tm := openList(t, st)
	tm.Send(press("n"))
	waitFor(t, tm, "New session")
	tm.Type("bad name")
	waitFor(t, tm, "invalid name")
	teatest.RequireEqualOutput(t, screen(t, tm))
	if err := st.Exists("bad name"); err == nil {
		t.Error("an invalid name was created")
	}
}

func TestNewDialogCreates(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(press("n"))
	waitFor(t, tm, "New session")
	tm.Type("web")
	waitFor(t, tm, "exists already")
	for range 3 {
		tm.Send(tea.KeyPressMsg{Code: tea.KeyBackspace})
	}
	tm.Type("fresh")
	tm.Send(press("tab")) // to the base picker: choose bb, not host
	waitScreen(t, m, "the bases", func(s string) bool { return chosenBase(m) != "" })
	for i := 0; i < 4 && chosenBase(m) != "bb"; i++ {
		tm.Send(press("l"))
	}
	tm.Send(press("tab"))
	tm.Send(press(" ")) // no network
	waitScreen(t, m, "net none ticked", func(s string) bool { return strings.Contains(s, "[x] no network") })
	tm.Send(press("tab"))
	tm.Type("lab1")
	tm.Send(press("tab"))
	tm.Type("relative:/x")
	waitScreen(t, m, "a bad bind refused as typed", func(s string) bool { return strings.Contains(s, "absolute") })
	for range len("relative:/x") {
		tm.Send(tea.KeyPressMsg{Code: tea.KeyBackspace})
	}
	shared := t.TempDir() // not /tmp itself, which holds the runtime dir
	tm.Type(shared + ":/mnt/host-tmp:ro")
	tm.Send(press("enter"))
	waitFor(t, tm, "created fresh on bb")
	waitScreen(t, m, "fresh chosen", func(s string) bool { return strings.Contains(s, "›fresh") })
	tm.Send(tea.Quit())
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	meta, err := st.Get("fresh")
	if err != nil || meta.Base != "bb" || meta.Net != "none" || meta.Hostname != "lab1" ||
		len(meta.Binds) != 1 || meta.Binds[0] != (session.BindMount{Src: shared, Dst: "/mnt/host-tmp", ReadOnly: true}) {
		t.Fatalf("fresh: %+v, %v; want it on bb with no network, host name lab1 and %s bound read-only", meta, err, shared)
	}
}

func chosenBase(m *Model) string {
	return inspect(m, func(m *Model) string {
		if d, ok := m.dialog.(*newDialog); ok && d.bases != nil {
			return d.bases[d.base].Name
		}
		return ""
	})
}

func TestDiscardConfirm(t *testing.T) {
	st := threeSessions(t)
	_, tm := openList(t, st)
	tm.Send(press("down")) // web
	waitFor(t, tm, "A /root/note")
	tm.Send(press("d"))
	waitFor(t, tm, "Discard session web")
	out := screen(t, tm)
	teatest.RequireEqualOutput(t, out)
	if !strings.Contains(string(out), "changed paths") {
		t.Errorf("the confirmation does not say what is lost:\n%s", out)
	}
	if err := st.Exists("web"); err != nil {
		t.Errorf("web is gone before the confirmation: %v", err)
	}
}

func TestDiscardRemoves(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(press("down"))
	tm.Send(press("d"))
	waitFor(t, tm, "Discard session web")
	tm.Send(press("n")) // no: nothing happens
	waitScreen(t, m, "the dialog to close", func(s string) bool { return !strings.Contains(s, "Discard session") })
	if err := st.Exists("web"); err != nil {
		t.Fatalf("answering no discarded web: %v", err)
	}
	tm.Send(press("d"))
	// The same dialog again: the renderer may have skipped the frame
	// between, so look at the model's screen rather than the output.
	waitScreen(t, m, "the dialog again", func(s string) bool { return strings.Contains(s, "Discard session web") })
	tm.Send(press("y"))
	waitScreen(t, m, "discarded web", func(s string) bool { return strings.Contains(s, "discarded web") })
	waitScreen(t, m, "web to leave the list", func(s string) bool { return !strings.Contains(s, " web ") && strings.Contains(s, "2 sessions") })
	tm.Send(tea.Quit())
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	if err := st.Exists("web"); err == nil {
		t.Error("web is still on disk")
	}
	waitTrashEmpty(t, st)
}

// waitTrashEmpty waits for the detached purge a discard starts, so that
// it is not deleting while the test's temp dir is removed.
func waitTrashEmpty(t *testing.T, st *session.Store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ents, err := os.ReadDir(filepath.Join(st.Root, "trash")); err == nil && len(ents) == 0 {
			return
		}
	}
	t.Fatal("trash/ was not emptied")
}

func TestDiffView(t *testing.T) {
	st := threeSessions(t)
	// A deletion too: a whiteout hides the base's os-release.
	if err := os.MkdirAll(filepath.Join(st.Dir("web"), "upper", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, tm := openWebDiff(t, st)
	teatest.RequireEqualOutput(t, screen(t, tm))
}

func TestDiffPreview(t *testing.T) {
	st := threeSessions(t)
	// A file of the base's that the session changed: enter shows the
	// text diff against the base.
	passwd := filepath.Join(st.Dir("web"), "upper", "etc", "passwd")
	if err := os.WriteFile(passwd, []byte("root:x:0:0:changed:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, tm := openWebDiff(t, st)
	open := func(path, want string) {
		t.Helper()
		tm.Send(press("g"))
		// Messages are handled in order: each look comes after the key.
		for i := 0; i < 20 && selectedChange(m) != path; i++ {
			tm.Send(press("down"))
		}
		tm.Send(press("enter"))
		waitScreen(t, m, want, func(s string) bool { return strings.Contains(s, want) })
		tm.Send(press("esc"))
		waitScreen(t, m, "the list of paths", func(s string) bool { return strings.Contains(s, "PATH") })
	}
	open("/etc/passwd", "+root:x:0:0:changed:/root:/bin/sh")
	open("/etc/passwd", "-root:x:0:0:root:/root:/bin/sh")
	open("/root/note", "second line")
	open("/bin/blob", "binary file")
	open("/var", "directory: 1 entry")
	tm.Send(tea.Quit())
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

func selectedChange(m *Model) string {
	return inspect(m, func(m *Model) string {
		if d := m.diff; d != nil && len(d.changes) > 0 {
			return d.changes[d.scroll.cursor].Path
		}
		return ""
	})
}

func TestPreviewStaysInside(t *testing.T) {
	upper := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("s3cret"), 0o644)
	os.Symlink(filepath.Dir(outside), filepath.Join(upper, "escape"))
	os.WriteFile(filepath.Join(upper, "ok"), []byte("fine\n"), 0o644)
	for _, tc := range []struct {
		ch   session.Change
		want string
		err  bool
	}{
		{session.Change{Path: "/ok", Kind: session.Added}, "fine\n", false},
		{session.Change{Path: "/escape/secret", Kind: session.Added}, "", true},
		{session.Change{Path: "/../../" + outside, Kind: session.Added}, "", true},
		{session.Change{Path: "/gone", Kind: session.Deleted}, "deleted", false},
		{session.Change{Path: "/escape", Kind: session.Added}, "symbolic link to", false},
	} {
		got, err := preview(upper, tc.ch)
		if (err != nil) != tc.err || !strings.Contains(got, tc.want) || strings.Contains(got, "s3cret") {
			t.Errorf("preview %s: %q, %v; want %q (error: %v)", tc.ch.Path, got, err, tc.want, tc.err)
		}
	}
}

func TestBasesView(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(press("b"))
	waitFor(t, tm, "SOURCE")
	waitScreen(t, m, "bb listed", func(s string) bool { return strings.Contains(s, "/srv/rootfs/busybox") })
	teatest.RequireEqualOutput(t, screen(t, tm))
}

func TestFilterAndSort(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(press("/"))
	tm.Type("wb")
	waitScreen(t, m, "the filter", func(s string) bool {
		return strings.Contains(s, `1 of 3 sessions match "wb"`) && strings.Contains(s, "›web")
	})
	tm.Send(press("esc"))
	waitScreen(t, m, "the filter to clear", func(s string) bool { return strings.Contains(s, "3 sessions ·") })
	tm.Send(press("s"))
	waitScreen(t, m, "sort by name", func(s string) bool {
		return strings.Contains(s, "sort: name") && strings.Index(s, "api ") < strings.Index(s, "scratch ")
	})
	tm.Send(tea.Quit())
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// Quitting while an import or a clone runs asks first: it would abandon
// the work.
func TestQuitAsksWhileWorkRuns(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(taskStartMsg{id: 99, what: "importing big"})
	tm.Send(press("q"))
	waitFor(t, tm, "importing big is still running")
	tm.Send(press("n"))
	waitScreen(t, m, "the question gone", func(s string) bool { return !strings.Contains(s, "Quit now?") })
	tm.Send(taskDoneMsg{id: 99, msg: "imported big"})
	waitFor(t, tm, "imported big")
	tm.Send(press("q")) // nothing runs now: quits at once
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// Keys typed faster than the program reads arrive as one message; each
// still counts.
func TestKeysInOneReadEachCount(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(tea.KeyPressMsg{Code: 'j', Text: "jj"})
	waitScreen(t, m, "the cursor two rows down", func(string) bool {
		return inspect(m, func(m *Model) int { return m.list.scroll.cursor }) == 2
	})
}

// Rename offers the current name: it asks for a new one rather than
// calling the name taken, and import checks its path before it starts.
func TestDialogHints(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(press("R"))
	waitFor(t, tm, "type a new name")
	tm.Send(press("esc"))
	tm.Send(press("b"))
	waitFor(t, tm, "SOURCE")
	tm.Send(press("i"))
	tm.Send(press("img"))
	tm.Send(press("tab"))
	tm.Send(press("~/no/such/rootfs"))
	home, _ := os.UserHomeDir()
	waitFor(t, tm, "nothing to import at "+home+"/no/such/rootfs")
	tm.Send(press("enter")) // refused: the dialog stays
	waitScreen(t, m, "the dialog still open", func(s string) bool { return strings.Contains(s, "Import a base") })
}

// A bad host name is said under the host name, not under the binds.
func TestNewDialogHostNameError(t *testing.T) {
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(press("n"))
	waitFor(t, tm, "New session")
	tm.Send(press("box"))
	for range 3 {
		tm.Send(press("tab"))
	}
	tm.Send(press("no/slash"))
	waitScreen(t, m, "the host name error under its field", func(s string) bool {
		host, errAt, binds := strings.Index(s, "Host name"), strings.Index(s, "✗"), strings.Index(s, "Binds from the host")
		return host >= 0 && errAt > host && binds > errAt
	})
}

// Names and contents a session chose reach the screen shown, never
// obeyed: every C0 control, DEL, every C1 control and the bidi controls,
// in file names (the detail pane, the diff view) and in a file's content
// (its preview), must come out as escapes. Before, opening the interface
// wrote a file name's OSC 52 clipboard write to the terminal as it was.
func TestHostileNamesReachNoTerminal(t *testing.T) {
	var hostile []rune
	for r := rune(1); r < 0x20; r++ {
		hostile = append(hostile, r)
	}
	hostile = append(hostile, 0x7f)
	for r := rune(0x80); r < 0xa0; r++ {
		hostile = append(hostile, r)
	}
	hostile = append(hostile, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069)
	files := map[string]string{"etc/motd": "\x1b]52;c;Y3VybCB4IHwgc2g=\x07" + string(hostile)}
	for _, r := range hostile {
		files["n"+string(r)+"x"] = "x\n"
	}
	st := newStore(t)
	addSession(t, st, "evil", files)
	m, tm := openList(t, st)
	bad := func(view string) string {
		for _, r := range view {
			if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				return fmt.Sprintf("%U", r)
			}
		}
		return ""
	}
	look := func(what string) {
		t.Helper()
		if r := bad(inspect(m, content)); r != "" {
			t.Errorf("%s put %s on the screen as it is", what, r)
		}
	}
	waitScreen(t, m, "the changes", func(s string) bool { return strings.Contains(s, `\x1b`) || strings.Contains(s, "A /n") })
	look("the detail pane")
	tm.Send(press("D"))
	waitFor(t, tm, "paths changed in evil")
	look("the diff view")
	tm.Send(press("g"))
	for i := 0; i < 100 && selectedChange(m) != "/etc/motd"; i++ {
		tm.Send(press("down"))
	}
	tm.Send(press("enter"))
	waitScreen(t, m, "the preview", func(s string) bool { return strings.Contains(s, "]52;c;") })
	look("the preview")
	tm.Send(tea.Quit())
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// An error longer than the screen is wrapped, not cut: its fix, which
// comes last, is on the screen.
func TestLongErrorIsReadToItsEnd(t *testing.T) {
	m := New(options(newStore(t), t))
	tm := start(t, m)
	waitFor(t, tm, "No sessions yet")
	msg := "an ordinary user's host base needs fuse-overlayfs and /dev/fuse, which you cannot open (permission denied): " +
		"let users open it (sudo chmod 0666 /dev/fuse, as desktop systems ship it), or run incarnate as root"
	tm.Send(inspectMsg(func(m *Model) { m.status = status{text: msg, err: true} }))
	waitFor(t, tm, "run incarnate as root")
	out := string(screen(t, tm))
	if !strings.Contains(out, "sudo chmod 0666") {
		t.Errorf("the error's fix is cut off:\n%s", out)
	}
}

// The diff view of a session that can be applied: marks, and a conflict
// in its own colour with its reason.
func TestDiffViewMarksAndConflict(t *testing.T) {
	st := threeSessions(t)
	_, tm := openWebDiff(t, st)
	// The real plan first (none: web is on an imported base), then what
	// PlanApply says of a host-base session, for this one: the rendering
	// is what is under test here (cli tests apply for real).
	for i := 0; ; i++ {
		got := make(chan bool, 1)
		tm.Send(inspectMsg(func(m *Model) { got <- m.diff != nil && m.diff.plan != nil }))
		if <-got {
			break
		}
		if i > 200 {
			t.Fatal("the diff view never got its plan")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tm.Send(inspectMsg(func(m *Model) {
		var steps []session.Step
		for i, ch := range m.diff.changes {
			s := session.Step{Change: ch}
			if i == 1 {
				s.Conflict = "changed on the host since the session changed it"
			}
			steps = append(steps, s)
		}
		m.diff.setPlan(planMsg{name: "web", steps: steps})
	}))
	waitFor(t, tm, "! changed on the host")
	tm.Send(press(" "))
	tm.Send(press("down"))
	tm.Send(press(" "))
	waitFor(t, tm, "*A /root/note")
	teatest.RequireEqualOutput(t, screen(t, tm))
}

// / filters the diff view's paths; esc clears the filter.
func TestDiffViewFilter(t *testing.T) {
	st := threeSessions(t)
	m, tm := openWebDiff(t, st)
	tm.Send(press("/"))
	for _, r := range "var" {
		tm.Send(press(string(r)))
	}
	tm.Send(press("enter"))
	waitFor(t, tm, `filter "var" (3 shown`)
	got := make(chan []string, 1)
	tm.Send(inspectMsg(func(m *Model) {
		var paths []string
		for _, ch := range m.diff.shown {
			paths = append(paths, ch.Path)
		}
		got <- paths
	}))
	if paths := <-got; strings.Join(paths, " ") != "/var /var/cache /var/cache/app.log" {
		t.Errorf("the filter shows %v", paths)
	}
	tm.Send(press("esc"))
	tm.Send(inspectMsg(func(m *Model) { got <- []string{fmt.Sprint(len(m.diff.shown))} }))
	if n := <-got; n[0] != "6" {
		t.Errorf("after esc, %s paths shown, want all 6", n[0])
	}
	_ = m
}

// What a discard or reset loses is said in whole sentences, whatever
// the counts.
func TestLostIsWholeSentences(t *testing.T) {
	for _, tc := range []struct {
		changes, shells int
		want            string
	}{
		{0, 0, "Nothing was written in it yet."},
		{0, 1, "Nothing was written in it yet. 1 process running inside is stopped first."},
		{1, 0, "This loses 4.0K in 1 changed path."},
		{6, 2, "This loses 4.0K in 6 changed paths. 2 processes running inside are stopped first."},
	} {
		r := &row{Entry: &session.Entry{Meta: &session.Meta{Name: "s"}, Stats: session.Stats{Size: 4096, Changes: tc.changes}}, Shells: tc.shells}
		if got := lost(r); got != tc.want {
			t.Errorf("lost(%d changes, %d shells) = %q, want %q", tc.changes, tc.shells, got, tc.want)
		}
	}
}

// L shows the recent messages whole, however narrow the screen: a status
// line that was replaced, or too long to read, is read there.
func TestMessagesViewKeepsWhatWasSaid(t *testing.T) {
	m := New(options(newStore(t), t))
	tm := start(t, m)
	waitFor(t, tm, "No sessions yet")
	long := "the first message, which is long enough that a status line of eighty columns cannot hold all of it and its end: the-very-end"
	tm.Send(inspectMsg(func(m *Model) { m.setError(errors.New(long)) }))
	tm.Send(inspectMsg(func(m *Model) { m.say(status{text: "a second one replaces it"}) }))
	waitFor(t, tm, "a second one replaces it")
	tm.Send(press("L"))
	var out string
	waitScreen(t, m, "the messages view", func(s string) bool { out = s; return strings.Contains(s, "Recent messages") })
	flat := strings.Join(strings.Fields(out), " ")
	if !strings.Contains(out, "the-very-end") || !strings.Contains(flat, "cannot hold all of it") || !strings.Contains(out, "a second one replaces it") {
		t.Errorf("the messages view lost something:\n%s", out)
	}
	tm.Send(press("esc"))
	waitScreen(t, m, "the list again", func(s string) bool {
		return strings.Contains(s, "No sessions yet") && !strings.Contains(s, "Recent messages")
	})
}
