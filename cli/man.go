package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/muesli/mango"
	"github.com/muesli/roff"
)

// manCommand prints the man page, incarnate.1, made from the command
// table and each command's flags; `make man` and `make install` write it.
const manCommand = "__man"

const manDescription = `incarnate gives you throwaway environments that stay until you throw them away. A base is a read-only root filesystem that many sessions share: the built-in host base is the machine's own /, copy-on-write; others come from a directory, a rootfs tarball, an OCI image, or a session committed as a new layer. A session is a named upper directory over a base: it persists until it is discarded, the base is never written, and its changes can be listed, exported, committed, and applied back to the host file by file, with conflicts caught.

Run without a command on a terminal, incarnate opens its interface, which lists the sessions and does all of the below from the keyboard (? shows the keys). Every command is also here, for scripts.

A process in a session owns nothing on the host: root inside is an unprivileged id range outside (an ordinary user's own id, or its sub-ids), with no new privileges, a seccomp filter, and no host file descriptor or terminal handed in.`

var manSections = [][2]string{
	{"Exit status", `0 on success; 1 when a command fails (the message says why and what to do); 2 for a mistake in the command line. run and enter exit with the status of the command inside; 126 when it is not executable and 127 when it is not found there, as sh does. A sandbox set-up step that fails exits with its own status from 97 to 125 (see incarnate doctor).`},
	{"Environment", `INCARNATE_ROOT: the store (else $XDG_DATA_HOME/incarnate, else ~/.local/share/incarnate). XDG_RUNTIME_DIR: where keeper sockets live (else a private incarnate-UID directory in $TMPDIR or /tmp). XDG_CONFIG_HOME: where config.toml and themes/ are read (else ~/.config/incarnate). INCARNATE_LINGER: how long a session's keeper stays after its last command (a duration such as 30s or 5m; 0 ends it at once; default 30s). INCARNATE_STAGE: off makes a plain run or enter take the Go path; must makes it fail with status 98 when the pre-runtime stage would step aside (for tests). NO_COLOR: the interface draws without colours. PAGER: what diff -p pages through (default less -FRX). SHELL: the shell enter starts when the session has it. TERM, COLORTERM, LANG, LANGUAGE, TZ and LC_*: passed into sessions; nothing else is, unless --env says so.`},
	{"Files", `~/.local/share/incarnate/: the store: sessions/ (one directory each: upper/, work/, meta.json), bases/ and layers/ (the read-only bases and their layers), trash/ and tmp/ (work in progress, cleaned up at the next start). ~/.config/incarnate/config.toml: default_base, theme; ~/.config/incarnate/themes/: themes of your own. $XDG_RUNTIME_DIR/incarnate/: the keepers' sockets. Completion scripts, as make install puts them under its PREFIX: share/bash-completion/completions/incarnate, share/zsh/site-functions/_incarnate (on $fpath; it also works sourced, running compinit when nothing has) and share/fish/vendor_completions.d/incarnate.fish; incarnate completion SHELL prints them.`},
	{"See also", `bwrap(1), unshare(1), systemd-nspawn(1), podman(1)`},
}

func cmdMan(c *ctx, args []string) error {
	if len(args) != 0 {
		return usagef("%s takes no arguments", manCommand)
	}
	// The description heads the page too, between its corners: short.
	m := mango.NewManPage(1, "incarnate", "throwaway environments that stay until discarded").
		WithLongDescription(manDescription)
	global, _, _ := globalFlags(&ctx{}, &tuiFlags{})
	for _, f := range manFlags(globalCmd, global, true) {
		if err := m.Root.AddFlag(f); err != nil {
			return err
		}
	}
	for _, cmd := range commands() {
		if err := m.Root.AddCommand(manCommandOf(cmd)); err != nil {
			return err
		}
	}
	for _, s := range manSections {
		m.WithSection(s[0], s[1])
	}
	_, err := fmt.Fprint(c.stdout, m.Build(roff.NewDocument()))
	return err
}

// manCommandOf is cmd with its flags; --root, which every command
// takes, is said once, at the top.
func manCommandOf(cmd command) *mango.Command {
	mc := mango.NewCommand(cmd.name, cmd.summary, cmd.name+" "+cmd.args)
	for _, f := range manFlags(cmd, flagsOf(cmd), false) {
		_ = mc.AddFlag(f)
	}
	return mc
}

// manFlags are the flags of cmd's fs as mango takes them, one-letter
// aliases folded into the flags they stand for (--root only withRoot).
func manFlags(cmd command, fs *flag.FlagSet, withRoot bool) []mango.Flag {
	flags := flagList(cmd, fs)
	var out []mango.Flag
	for _, f := range flags {
		if (f.name == "root" && !withRoot) || f.aliasOf != "" {
			continue
		}
		out = append(out, mango.Flag{Name: strings.TrimLeft(f.spelling(), "-"), Short: aliasFor(flags, f.name), Usage: f.usage, PFlag: len(f.name) > 1})
	}
	return out
}
