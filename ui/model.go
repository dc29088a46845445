// Package ui is incarnate's terminal interface: every session at a
// glance, everything on the keyboard. It is a face over the session and
// layers packages, as the command line is: it reads and changes the
// store only through them, and only in tea.Cmds, so a store of a
// thousand sessions never freezes a keypress.
//
// The root Model routes keys and messages to small components, each in a
// file of its own: the session list (list.go), its detail pane
// (detail.go), dialogs (dialog.go, newdialog.go), the diff view
// (diffview.go) and the bases view (basesview.go). Keys are data
// (keys.go); the footer and the ? screen are generated from them.
package ui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/spinner"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/session"
	"github.com/incarnate-dev/incarnate/themes"
)

// ShellCommand is a shell in a session, run with tea.Exec: the caller
// (the command line) owns the terminal hand-off, since it needs the
// sandbox client, which the interface does not import.
type ShellCommand interface {
	tea.ExecCommand
	// ExitStatus is the shell's status once Run returned.
	ExitStatus() int
	// Stopped, once Run returned: why the shell ended when its session
	// was stopped from outside ("session web was stopped from outside"),
	// else "".
	Stopped() string
}

// Options configure a Model.
type Options struct {
	Store *session.Store
	// ConfigDir holds config.toml and themes/; "" reads and writes none.
	ConfigDir string
	// Theme, when set (--theme), overrides the config's.
	Theme string
	// NoColor (--no-color, or NO_COLOR set) draws without colours.
	NoColor bool
	// Profile is the terminal's colour profile, as Bubble Tea is told it
	// (tea.WithColorProfile); Unknown means stdout's, by its environment.
	Profile colorprofile.Profile
	// Light is a guess that the terminal's background is light, until
	// it answers (Init asks): the colours of a theme are picked for it.
	Light bool
	// Shell makes the command enter runs; nil disables enter.
	Shell func(session, shell string) ShellCommand
	// Now is the clock for "5m ago"; nil means time.Now.
	Now func() time.Time
	// NoTick turns off the refresh every few seconds (tests).
	NoTick bool
}

// mode is what fills the screen.
type mode int

const (
	modeList mode = iota
	modeHelp
	modeDiff
	modeBases
	modeLog
)

// status is the line above the footer.
type status struct {
	text string
	err  bool
	ok   bool
}

// Model is the whole interface.
type Model struct {
	log    []logEntry // what the status line said, oldest first
	c      *common
	opts   Options
	cfg    Config
	keys   *KeyMap
	themes []themes.Theme
	theme  int

	width, height int
	mode          mode
	list          sessionList
	detail        *detail
	dialog        dialog
	diff          *diffView
	bases         *basesView
	help          help.Model

	filtering bool
	filter    textinput.Model

	status   status
	spinner  spinner.Model
	spinning bool
	tasks    map[int64]taskStartMsg
	taskList []int64
	bar      progress.Model

	loading     bool
	reloadAgain bool
	baseList    []*layers.Base
	pending     string // a session to choose once it is listed
}

// New builds the model: config, themes and styles; nothing is read from
// the store until Init's commands run.
func New(o Options) *Model {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Profile == colorprofile.Unknown {
		o.Profile = colorprofile.Detect(os.Stdout, os.Environ())
	}
	if o.NoColor {
		o.Profile = colorprofile.ASCII
	}
	m := &Model{opts: o, keys: DefaultKeyMap(), tasks: map[int64]taskStartMsg{}}
	m.c = &common{store: o.Store, profile: o.Profile, now: o.Now}
	var problems []string
	if o.ConfigDir != "" {
		cfg, err := LoadConfig(filepath.Join(o.ConfigDir, "config.toml"))
		if err != nil {
			problems = append(problems, err.Error())
		}
		m.cfg = cfg
		var errs []error
		m.themes, errs = themes.Load(filepath.Join(o.ConfigDir, "themes"))
		for _, e := range errs {
			problems = append(problems, e.Error())
		}
	} else {
		m.themes = themes.Builtin()
	}
	want := m.cfg.Theme
	if o.Theme != "" {
		want = o.Theme
	}
	if want != "" {
		found := false
		for i, t := range m.themes {
			if t.Name == want {
				m.theme, found = i, true
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("no theme %q (have %s); using %s", want, m.themeNames(), themes.Default))
		}
	}
	m.c.restyle(m.themes[m.theme], !o.Light)
	if s, ok := parseSort(m.cfg.Sort); ok {
		m.list.sort = s
	}
	m.list.c = m.c
	m.detail = newDetail(m.c)
	m.help = help.New()
	m.spinner = spinner.New(spinner.WithSpinner(spinner.MiniDot))
	m.bar = progress.New(progress.WithoutPercentage(), progress.WithWidth(20))
	m.applyStyles()
	if len(problems) > 0 {
		// Paths relative to the config dir: the file's name must fit.
		text := strings.Join(problems, "; ")
		if o.ConfigDir != "" {
			text = strings.ReplaceAll(text, o.ConfigDir+string(filepath.Separator), "")
		}
		m.say(status{text: text, err: true})
	}
	m.filter = newInput(m.c, "fuzzy filter")
	m.filter.Prompt = "/ "
	m.filter.Blur()
	m.updateKeys()
	return m
}

func (m *Model) themeNames() string {
	names := make([]string, len(m.themes))
	for i, t := range m.themes {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

// applyStyles passes the theme's styles to the pieces that keep their own.
func (m *Model) applyStyles() {
	st := m.c.styles
	m.help.Styles.ShortKey, m.help.Styles.FullKey = st.Help.Key, st.Help.Key
	m.help.Styles.ShortDesc, m.help.Styles.FullDesc = st.Help.Desc, st.Help.Desc
	m.help.Styles.ShortSeparator, m.help.Styles.FullSeparator = st.Help.Sep, st.Help.Sep
	m.help.Styles.Ellipsis = st.Help.Sep
	m.spinner.Style = st.Status.Spinner
	m.bar.FullColor = st.Accent.GetForeground() // for the profile, and the background
	m.filter.SetStyles(inputStyles(st))
}

// Init starts reading the store, and asks the terminal for its
// background: its answer picks the light or dark colours of the theme.
func (m *Model) Init() tea.Cmd {
	m.loading = true
	cmds := []tea.Cmd{loadCmd(m.c.store), basesCmd(m.c.store), tea.RequestBackgroundColor}
	if !m.opts.NoTick {
		cmds = append(cmds, tickCmd())
	}
	return tea.Batch(cmds...)
}

// reload reads the sessions again, unless a read is under way (then
// once more after it).
func (m *Model) reload() tea.Cmd {
	if m.loading {
		m.reloadAgain = true
		return nil
	}
	m.loading = true
	return loadCmd(m.c.store)
}

// Update routes a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case entriesMsg:
		return m, m.onEntries(msg)
	case basesMsg:
		if msg.err != nil {
			m.setError(msg.err)
		} else {
			m.baseList = msg.bases
			m.detail.setBases(msg.bases)
			if d, ok := m.dialog.(*newDialog); ok && d.bases == nil {
				d.setBases(msg.bases, m.cfg.DefaultBase)
			}
		}
		if m.bases != nil {
			m.bases.setBases(msg.bases, m.baseUsers(), msg.err)
		}
		return m, nil
	case diffWantMsg:
		if r := m.list.selected(); r != nil && keyOf(r) == msg.key {
			return m, diffCmd(m.c.store, msg.key)
		}
		return m, nil
	case diffMsg:
		m.detail.diffs[msg.key] = msg
		if m.diff != nil && m.diff.name == msg.key.name {
			m.diff.setChanges(msg.changes, msg.err)
		}
		return m, nil
	case previewMsg:
		if m.diff != nil {
			m.diff.setPreview(msg)
		}
		return m, nil
	case planMsg:
		if m.diff != nil {
			m.diff.setPlan(msg)
		}
		return m, nil
	case applyAskMsg:
		return m, m.askApply(msg)
	case taskStartMsg:
		m.tasks[msg.id] = msg
		m.taskList = append(m.taskList, msg.id)
		if !m.spinning {
			m.spinning = true
			return m, m.spinner.Tick
		}
		return m, nil
	case taskDoneMsg:
		return m, m.onTaskDone(msg)
	case quitMsg:
		return m, m.quit()
	case spinner.TickMsg:
		if len(m.tasks) == 0 {
			m.spinning = false
			return m, nil
		}
		var cmd tea.Cmd
		m.spinner, cmd = m.spinner.Update(msg)
		return m, cmd
	case execDoneMsg:
		switch {
		case msg.err != nil:
			m.setError(fmt.Errorf("shell in %s: %w", msg.name, msg.err))
		case msg.stopped != "":
			m.say(status{text: "left " + msg.name + ": " + msg.stopped, err: true})
		case msg.status == 0:
			m.say(status{text: fmt.Sprintf("left %s (exit status 0)", msg.name), ok: true})
		default:
			m.say(status{text: fmt.Sprintf("left %s (exit status %d)", msg.name, msg.status)})
		}
		return m, tea.Batch(m.reload(), basesCmd(m.c.store))
	case tickMsg:
		return m, tea.Batch(m.reload(), tickCmd())
	case configSavedMsg:
		if msg.err != nil {
			m.setError(msg.err)
		}
		return m, nil
	case tea.KeyPressMsg:
		return m, m.onKey(msg)
	case tea.PasteMsg:
		return m, m.onPaste(msg)
	case tea.BackgroundColorMsg:
		m.c.restyle(m.themes[m.theme], msg.IsDark())
		m.applyStyles()
		return m, nil
	}
	return m, nil
}

// baseUsers maps each base to the sessions listed on it.
func (m *Model) baseUsers() map[string][]string {
	users := map[string][]string{}
	for _, r := range m.list.rows {
		users[r.Meta.Base] = append(users[r.Meta.Base], r.name())
	}
	return users
}

func (m *Model) setError(err error) {
	m.say(status{text: err.Error(), err: true})
}

// say shows st on the status line and keeps it for the messages view
// (L), where a line too long for the screen is read whole.
func (m *Model) say(st status) {
	m.status = st
	m.log = append(m.log, logEntry{at: m.c.now(), status: st})
	if len(m.log) > maxLog {
		m.log = m.log[len(m.log)-maxLog:]
	}
}

// maxLog is how many messages L shows: the recent ones.
const maxLog = 50

type logEntry struct {
	at time.Time
	status
}

func (m *Model) onEntries(msg entriesMsg) tea.Cmd {
	m.loading = false
	var cmds []tea.Cmd
	if m.reloadAgain {
		m.reloadAgain = false
		cmds = append(cmds, m.reload())
	}
	if msg.err != nil {
		m.setError(msg.err)
		return tea.Batch(cmds...)
	}
	m.list.setRows(msg.rows)
	if m.bases != nil {
		m.bases.setBases(m.baseList, m.baseUsers(), nil)
	}
	if m.pending != "" && m.list.find(m.pending) != nil {
		m.list.choose(m.pending)
		m.pending = ""
	}
	m.updateKeys()
	return tea.Batch(append(cmds, m.selectionChanged())...)
}

// diffDelay is how long a row must stay chosen before its diff is read.
const diffDelay = 120 * time.Millisecond

// selectionChanged asks for the chosen session's diff, after a moment,
// unless it is cached.
func (m *Model) selectionChanged() tea.Cmd {
	r := m.list.selected()
	if r == nil || r.Meta.Damaged != "" {
		return nil
	}
	k := keyOf(r)
	if _, ok := m.detail.diffs[k]; ok {
		return nil
	}
	return tea.Tick(diffDelay, func(time.Time) tea.Msg { return diffWantMsg{key: k} })
}

// requestQuit is the command of every quit key.
func requestQuit() tea.Msg { return quitMsg{} }

// quit ends the program, first asking when work still runs (an import,
// a clone): quitting abandons it.
func (m *Model) quit() tea.Cmd {
	if len(m.tasks) == 0 {
		return tea.Quit
	}
	var what []string
	for _, id := range m.taskList {
		if t, ok := m.tasks[id]; ok {
			what = append(what, t.what)
		}
	}
	verb := " is"
	if len(what) > 1 {
		verb = " are"
	}
	body := strings.Join(what, ", ") + verb + " still running: quitting abandons it (what it made so far is cleared at the next start)."
	m.dialog = newConfirm(m.c, "Quit now?", body, func() tea.Cmd { return tea.Quit })
	return nil
}

func (m *Model) onTaskDone(msg taskDoneMsg) tea.Cmd {
	delete(m.tasks, msg.id)
	for i, id := range m.taskList {
		if id == msg.id {
			m.taskList = append(m.taskList[:i], m.taskList[i+1:]...)
			break
		}
	}
	if msg.err != nil {
		m.setError(msg.err)
	} else if msg.msg != "" {
		m.say(status{text: msg.msg, ok: true})
	}
	if msg.selectName != "" {
		m.pending = msg.selectName
	}
	cmds := []tea.Cmd{m.reload(), basesCmd(m.c.store)}
	if m.diff != nil {
		// The diff view shows what is left after an apply.
		cmds = append(cmds, diffCmd(m.c.store, diffKey{name: m.diff.name}), planCmd(m.c.store, m.diff.name))
	}
	return tea.Batch(cmds...)
}

// askApply asks before an apply from the diff view, saying how many
// paths of each kind will change on the host.
func (m *Model) askApply(msg applyAskMsg) tea.Cmd {
	what := "every change of " + msg.name
	if len(msg.paths) > 0 {
		what = plural(len(msg.paths), "marked path", "marked paths") + " of " + msg.name
	}
	body := "This writes " + m.diff.applySummary(msg.paths) + " to the host. Each file lands whole; applied changes leave the session."
	st, name, paths := m.c.store, msg.name, msg.paths
	m.dialog = newConfirm(m.c, "Apply "+what+" to the host?", body, func() tea.Cmd {
		prog := newProgressLine()
		return m.c.taskWithProgress("applying "+name+" to the host", prog, func() (string, error) {
			steps, err := st.Apply(name, session.ApplyOptions{Paths: paths, Progress: prog})
			if err != nil {
				return "", err
			}
			applied := 0
			for _, s := range steps {
				if s.Conflict == "" && s.Denied == "" {
					applied++
				}
			}
			msg := fmt.Sprintf("applied %d of %d paths of %s to the host", applied, len(steps), name)
			if left := len(steps) - applied; left > 0 {
				msg += fmt.Sprintf("; %d left alone (marked !)", left)
			}
			return msg, nil
		})
	})
	return nil
}

// updateKeys enables the keys that apply now.
func (m *Model) updateKeys() {
	r := m.list.selected()
	m.keys.setHaveSession(r != nil)
	if r != nil && r.Meta.Damaged != "" {
		for _, b := range m.keys.sessionKeys() {
			b.SetEnabled(false)
		}
		m.keys.Discard.SetEnabled(true)
		m.keys.Up.SetEnabled(true)
		m.keys.Down.SetEnabled(true)
	}
	if m.opts.Shell == nil {
		m.keys.Enter.SetEnabled(false)
	}
}

// Layout: the title bar, the list, a rule, the detail pane, the status
// line and the footer.
const chromeLines = 4

func (m *Model) detailHeight() int {
	switch {
	case m.height < 16:
		return 0
	case m.height <= 30:
		return 6
	}
	return min(14, m.height/4)
}

func (m *Model) layout() {
	body := m.height - chromeLines - m.detailHeight()
	m.list.setHeight(max(2, body))
	m.help.SetWidth(m.width)
	if m.diff != nil {
		m.diff.setSize(m.width, m.height-3)
	}
	if m.bases != nil {
		m.bases.setSize(m.width, m.height-3)
	}
}
