package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Help is asked for in three ways; each prints to stdout, status 0, and
// says the same. A mistake goes to stderr, status 2.
func TestHelpGoesToStdout(t *testing.T) {
	h := newHarness(t, rootUser)
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		out, errOut, status := h.run(args...)
		if status != 0 || errOut != "" || !strings.HasPrefix(out, "incarnate: throwaway") {
			t.Errorf("incarnate %v: status %d, stderr %q, stdout starts %.40q", args, status, errOut, out)
		}
	}
	for _, cmd := range commands() {
		words := strings.Fields(cmd.name)
		viaFlag, errOut, status := h.run(append(words, "--help")...)
		if status != 0 || errOut != "" || !strings.HasPrefix(viaFlag, "usage: incarnate "+cmd.name+" ") {
			t.Errorf("incarnate %s --help: status %d, stderr %q, stdout %.60q", cmd.name, status, errOut, viaFlag)
		}
		if viaHelp := h.ok(append([]string{"help"}, words...)...); viaHelp != viaFlag {
			t.Errorf("incarnate help %s says\n%s\nbut --help says\n%s", cmd.name, viaHelp, viaFlag)
		}
		if strings.Contains(viaFlag, "\n  -"+"root") || strings.Contains(viaFlag, " -base") {
			t.Errorf("incarnate %s --help spells a long flag with one dash:\n%s", cmd.name, viaFlag)
		}
	}
	if _, errOut, status := h.run("nosuch"); status != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("incarnate nosuch: status %d, stderr %q", status, errOut)
	}
	if out, errOut, status := h.run("base"); status != 2 || out != "" || !strings.Contains(errOut, "base needs a subcommand") {
		t.Errorf("incarnate base: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

// Each shell's completion script, loaded into that shell, completes
// commands, flags, session and base names from the store, through the
// shell's own completion entry; `__complete` starts nothing.
func TestCompletionAnswers(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "alpha")
	h.ok("new", "--base", "bb", "beta")
	bin := incarnateOnPath(t, h)
	// Each program gets the script in $1 and the line in $2 and prints
	// the candidates, one a line.
	shells := map[string]struct {
		argv []string
		prog string
	}{
		// readline's COMP_WORDS and COMP_CWORD, then the -F function.
		"bash": {[]string{"bash", "--norc", "--noprofile", "-c"}, `source "$1"; read -ra COMP_WORDS <<< "$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); ` +
			`COMP_CWORD=$((${#COMP_WORDS[@]}-1)); f=$(complete -p incarnate | sed -n 's/.*-F \([^ ]*\).*/\1/p'); $f; printf '%s\n' "${COMPREPLY[@]}"`},
		// zle's words and CURRENT, compadd and _files standing in for
		// the completion system's own.
		"zsh": {[]string{"zsh", "-f", "-c"}, `compdef() {}; _files() {}; compadd() { while [[ $1 != -- ]]; do shift; done; shift; printf '%s\n' "$@" }; source "$1"; ` +
			`words=(${(z)2}); [[ $2 == *" " ]] && words+=(""); CURRENT=${#words}; _incarnate`},
		// fish's own test hook.
		"fish": {[]string{"fish", "--no-config", "-c"}, `source $argv[1]; complete -C $argv[2]`},
	}
	for name, sh := range shells {
		t.Run(name, func(t *testing.T) {
			if _, err := exec.LookPath(sh.argv[0]); err != nil {
				t.Skipf("%s is not installed", name)
			}
			script := filepath.Join(h.dir, "incarnate."+name)
			if err := os.WriteFile(script, []byte(h.ok("completion", name)), 0o644); err != nil {
				t.Fatal(err)
			}
			complete := func(line string) []string {
				t.Helper()
				argv := append(slices.Clone(sh.argv), sh.prog, name, script, line)
				if name == "fish" {
					argv = append(slices.Clone(sh.argv), sh.prog, script, line)
				}
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Env = append(h.env(), "PATH="+bin+":/usr/bin:/bin")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s completion of %q: %v\n%s", name, line, err, out)
				}
				var words []string // fish's come with a tab and a description
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					if word, _, _ := strings.Cut(line, "\t"); word != "" {
						words = append(words, word)
					}
				}
				return words
			}
			for _, tc := range []struct {
				line string
				want []string
			}{
				{"incarnate r", []string{"run", "rm", "reset", "rename"}},
				{"incarnate run ", []string{"alpha", "beta"}},
				{"incarnate enter a", []string{"alpha"}},
				{"incarnate rm alpha ", []string{"beta"}},
				{"incarnate new --base ", []string{"host", "bb"}},
				{"incarnate base rm ", []string{"bb"}},
				{"incarnate base ", []string{"export", "import", "ls", "pull", "push", "rm"}},
				{"incarnate base push ", []string{"bb"}},
				{"incarnate base export ", []string{"bb"}},
				{"incarnate new --n", []string{"--nested", "--net"}},
				{"incarnate new --net ", []string{"host", "none"}},
				{"incarnate completion ", []string{"bash", "zsh", "fish"}},
				{"incarnate run alpha -- ", nil},
			} {
				got := complete(tc.line)
				slices.Sort(got)
				want := slices.Clone(tc.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("completing %q: %q, want %q", tc.line, got, want)
				}
			}
		})
	}
	if !sessionFree(h, "alpha") {
		t.Errorf("completion started a keeper")
	}
}

// incarnateOnPath is a directory holding incarnate under that name, for
// PATH, as the completion scripts call it.
func incarnateOnPath(t *testing.T, h *harness) string {
	bin := filepath.Join(h.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(h.bin, filepath.Join(bin, "incarnate")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return bin
}

// fish shows each command and flag with its line from the command table,
// through its own test hook.
func TestFishCompletionDescribes(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish is not installed")
	}
	h := newHarness(t, rootUser)
	script := filepath.Join(h.dir, "incarnate.fish")
	if err := os.WriteFile(script, []byte(h.ok("completion", "fish")), 0o644); err != nil {
		t.Fatal(err)
	}
	run, _, _ := lookup([]string{"run"})
	pull, _, _ := lookup([]string{"base", "pull"})
	for line, want := range map[string]string{
		"incarnate ru":        "run\trun a command inside a session",
		"incarnate ba":        "base\tbases: import, pull, push, export, ls, rm",
		"incarnate base pul":  "pull\t" + summaryLine(pull.summary),
		"incarnate run --cw":  "--cwd\t" + flagsOf(run).Lookup("cwd").Usage,
		"incarnate --ver":     "--version\tprint the version and exit",
		"incarnate new --pid": "--pids\tmost processes and threads at once, 16 to 4194304 (default: 8192)",
	} {
		cmd := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, script, line)
		cmd.Env = append(h.env(), "PATH="+incarnateOnPath(t, h)+":/usr/bin:/bin")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("fish completing %q: %q (%v), want %q", line, out, err, want)
		}
	}
}

// zsh completes from the script sourced in a .zshrc that never ran
// compinit, and from the file make install puts on $fpath (_incarnate),
// which the user's compinit autoloads: at the first Tab, each time. Real
// zsh, interactive, in tmux.
func TestZshCompletionLoads(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh is not installed")
	}
	for _, name := range []string{"sourced", "autoloaded"} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, rootUser) // and a tmux server of its own
			h.ok("new", "--base", "bb", "alpha")
			script, dir := h.ok("completion", "zsh"), filepath.Join(h.dir, "site-functions")
			load := map[string]string{
				"sourced":    "source " + filepath.Join(dir, "_incarnate"),
				"autoloaded": "fpath=(" + dir + " $fpath)\nautoload -Uz compinit && compinit -u",
			}[name]
			rc := "path=(" + incarnateOnPath(t, h) + " $path)\n" + load + "\nPS1='zsh-ready%% '\n"
			zdot := filepath.Join(h.dir, "zdot")
			for file, text := range map[string]string{filepath.Join(dir, "_incarnate"): script, filepath.Join(zdot, ".zshrc"): rc} {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := startScriptInTmux(t, h, h.dir, 120, 30, fmt.Sprintf("HOME=%q ZDOTDIR=%q exec zsh -i", zdot, zdot))
			s.waitText("zsh-ready")
			s.typeText("incarnate ren")
			s.keys("Tab")
			s.waitText("zsh-ready% incarnate rename")
			s.keys("C-u")
			s.typeText("incarnate enter al")
			s.keys("Tab")
			s.waitText("zsh-ready% incarnate enter alpha")
			s.keys("C-u")
			s.typeText("incarnate r")
			s.keys("Tab")
			s.waitText("rm      -- discard sessions and everything written in them")
		})
	}
}

// The man page is made from the command table and renders cleanly.
func TestManPageRenders(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man (man-db) is not installed")
	}
	h := newHarness(t, rootUser)
	page := filepath.Join(h.dir, "incarnate.1")
	if err := os.WriteFile(page, []byte(h.ok("__man")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("man", "--warnings", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "MANPAGER=cat", "PAGER=cat")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil || errOut.Len() > 0 {
		t.Fatalf("man -l: %v, warnings:\n%s", err, errOut.String())
	}
	text := out.String()
	for _, cmd := range commands() {
		if !strings.Contains(text, cmd.name+" "+strings.Fields(cmd.args + " x")[0]) && !strings.Contains(text, cmd.name) {
			t.Errorf("the man page has no %s", cmd.name)
		}
		for _, f := range flagList(cmd, flagsOf(cmd)) {
			if f.name != "root" && f.aliasOf == "" && !strings.Contains(text, f.spelling()) {
				t.Errorf("the man page has no %s of %s", f.spelling(), cmd.name)
			}
		}
	}
	for _, section := range []string{"EXIT STATUS", "ENVIRONMENT", "FILES", "INCARNATE_LINGER"} {
		if !strings.Contains(text, section) {
			t.Errorf("the man page has no %s", section)
		}
	}
}

// The release build says which revision it was built from.
func TestVersionHasRevision(t *testing.T) {
	rev, err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("not a git checkout: no revision to find")
	}
	bin := releaseBuild(t, t.TempDir())
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.Contains(string(out), strings.TrimSpace(string(rev))) {
		t.Errorf("incarnate --version: %q (%v); want revision %s in it", out, err, rev)
	}
	var v versionInfo
	h := newHarness(t, rootUser)
	h.bin = filepath.Join(h.dir, "incarnate-release")
	if err := os.Rename(bin, h.bin); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(h.ok("version", "--json")), &v); err != nil || v.Revision == "" || v.Features["seccomp"].Verdict == "" {
		t.Errorf("version --json: %+v (%v); want the revision and the machine's features", v, err)
	}
}

// show gives one session's whole record, running or not.
func TestShow(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "--env", "A=1", "--hostname", "box", "s")
		h.ok("run", "s", "--", "sh", "-c", "echo x > /root/f")
		var r showRecord
		if err := json.Unmarshal([]byte(h.ok("show", "--json", "s")), &r); err != nil {
			t.Fatal(err)
		}
		if r.Name != "s" || r.Base != "bb" || len(r.Layers) != 1 || r.Changes != 1 || r.Shells != 0 || r.KeeperPID != 0 ||
			r.Options.Hostname != "box" || !slices.Equal(r.Options.Env, []string{"A=1"}) || r.Upper != filepath.Join(h.store, "sessions", "s", "upper") {
			t.Errorf("show --json of a stopped session: %+v", r)
		}
		bg := h.command("run", "s", "--", "sleep", "100")
		if err := bg.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = bg.Process.Kill(); _ = bg.Wait() }()
		waitFor(t, "the sleep to run", func() bool { return regexpLine(h.ok("ls"), "s", "1") })
		text := h.ok("show", "s")
		if !strings.Contains(text, "1 process (keeper pid ") || !strings.Contains(text, "hostname:     box") {
			t.Errorf("show of a running session:\n%s", text)
		}
		if _, errOut, status := h.run("show", "nosuch"); status != 1 || !strings.Contains(errOut, "does not exist") {
			t.Errorf("show nosuch: status %d, %q", status, errOut)
		}
	})
}
