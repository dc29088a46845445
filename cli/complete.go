package cli

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/session"
)

// completeCommand is the hidden command the completion scripts call
// with the words typed so far (the last one the one being completed);
// it prints the candidates, one a line. It reads the store's directories
// as they are, opening nothing and starting nothing, so that it answers
// in a few milliseconds.
const completeCommand = "__complete"

// The scripts are thin: every shell asks the same question of
// __complete, and falls back to file names when it answers nothing.
var completionScripts = map[string]string{
	"bash": `# bash completion for incarnate (incarnate completion bash)
_incarnate() {
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$(incarnate __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
}
complete -o default -F _incarnate incarnate
`,
	"zsh": `#compdef incarnate
# zsh completion for incarnate (incarnate completion zsh)
_incarnate() {
	local -a candidates
	candidates=("${(@f)$(incarnate __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if (( ${#candidates[@]} )) && [[ -n ${candidates[1]} ]]; then
		compadd -- "${candidates[@]}"
	else
		_files
	fi
}
compdef _incarnate incarnate
`,
	"fish": `# fish completion for incarnate (incarnate completion fish)
function __incarnate_complete
	set -l words (commandline -opc)[2..-1] (commandline -ct)
	incarnate __complete $words 2>/dev/null
end
complete -c incarnate -f -a '(__incarnate_complete)'
`,
}

func cmdCompletion(c *ctx, args []string) error {
	fs := newFlags(c, "completion")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || completionScripts[pos[0]] == "" {
		return usagef("completion needs a shell: bash, zsh or fish")
	}
	_, err = fmt.Fprint(c.stdout, completionScripts[pos[0]])
	return err
}

func cmdComplete(c *ctx, words []string) error {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, done := words[len(words)-1], words[:len(words)-1]
	for _, w := range complete(done, cur) {
		if strings.HasPrefix(w, cur) {
			fmt.Fprintln(c.stdout, w)
		}
	}
	return nil
}

// takesValue reports whether word is a flag before the command that
// takes a value (--root DIR), and whether it is one at all.
func takesValue(global *flag.FlagSet, word string) (value, ok bool) {
	if !strings.HasPrefix(word, "-") {
		return false, false
	}
	f := global.Lookup(strings.TrimLeft(word, "-"))
	return f != nil && !isSwitch(f), f != nil
}

// complete lists what may follow done.
func complete(done []string, cur string) []string {
	root := ""
	i := 0
	global, _, _ := globalFlags(&ctx{}, &tuiFlags{})
	if n := len(done); n > 0 {
		if value, _ := takesValue(global, done[n-1]); value {
			return nil // --root's directory, --theme's name: the shell's own
		}
	}
	for i < len(done) && strings.HasPrefix(done[i], "-") {
		if value, _ := takesValue(global, done[i]); value && i+1 < len(done) {
			if done[i] == "--root" {
				root = done[i+1]
			}
			i++
		}
		i++
	}
	done = done[i:]
	if len(done) == 0 {
		if strings.HasPrefix(cur, "-") {
			var out []string
			for _, f := range flagList(globalCmd, global) {
				out = append(out, strings.Fields(f.spelling())[0])
			}
			return out
		}
		return commandWords()
	}
	cmd, rest, ok := lookup(done)
	if !ok {
		if group := subcommands(done[0]); len(group) > 0 && len(done) == 1 {
			var out []string
			for _, sub := range group {
				out = append(out, strings.TrimPrefix(sub.name, done[0]+" "))
			}
			return out
		}
		return nil
	}
	return completeArgs(cmd, rest, cur, root)
}

// completeArgs completes cmd's flags, their values and its operands.
func completeArgs(cmd command, rest []string, cur, root string) []string {
	fs := flagsOf(cmd)
	var positional []string
	for i := 0; i < len(rest); i++ {
		switch w := rest[i]; {
		case w == "--":
			return nil // a command line of the session's own
		case strings.HasPrefix(w, "-"):
			if f := fs.Lookup(strings.TrimLeft(w, "-")); f != nil && !isSwitch(f) && !strings.Contains(w, "=") {
				if i == len(rest)-1 {
					return flagValues(f.Name, root)
				}
				i++
			}
		default:
			positional = append(positional, w)
		}
	}
	if strings.HasPrefix(cur, "-") {
		var out []string
		for _, f := range flagList(cmd, fs) {
			out = append(out, strings.Fields(f.spelling())[0])
		}
		return out
	}
	return operandWords(cmd.operands, positional, root)
}

// operandWords are the candidates for the operand after given.
func operandWords(operands, given []string, root string) []string {
	if len(operands) == 0 {
		return nil
	}
	n, kind := len(given), ""
	if n < len(operands) {
		kind = operands[n]
	} else if last := operands[len(operands)-1]; strings.HasSuffix(last, "...") {
		kind = last
	}
	words := kindWords(strings.TrimSuffix(kind, "..."), root)
	if strings.HasSuffix(kind, "...") {
		words = slices.DeleteFunc(words, func(w string) bool { return slices.Contains(given, w) })
	}
	return words
}

// flagValues are the values a flag can take, where they are few.
func flagValues(flagName, root string) []string {
	switch flagName {
	case "base":
		return baseNames(root)
	case "net":
		return []string{"host", "none"}
	case "theme":
		return nil // the themes' names come from the files the user has
	}
	return nil // files, or anything
}

func kindWords(kind, root string) []string {
	switch kind {
	case "session":
		return sessionNames(root)
	case "base":
		return baseNames(root)
	case "imported-base":
		return baseNames(root)[1:] // host is built in
	case "command":
		return commandWords()
	case "", "file":
		return nil
	}
	return strings.Fields(kind)
}

// commandWords are the first words of the commands ("base" once).
func commandWords() []string {
	seen := map[string]bool{}
	var out []string
	for _, cmd := range commands() {
		w, _, _ := strings.Cut(cmd.name, " ")
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// completionRoot is the store the words point at (--root, else the
// environment's); "" when none can be found.
func completionRoot(root string) string {
	r, err := storeRoot(root)
	if err != nil {
		return ""
	}
	return r
}

func sessionNames(root string) []string { return session.Names(completionRoot(root)) }

func baseNames(root string) []string { return layers.BaseNames(completionRoot(root)) }
