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
// it prints the candidates, one a line, each with a tab and its one-line
// description where it has one (a command's, a flag's). It reads the
// store's directories as they are, opening nothing and starting nothing,
// so that it answers in a few milliseconds.
const completeCommand = "__complete"

// The scripts are thin: every shell asks the same question of
// __complete, and falls back to file names when it answers nothing.
// bash shows words alone; zsh and fish show the descriptions too.
//
// zsh's script is both a file of its completion system's (make install
// puts it on $fpath as _incarnate, where compinit finds it by its
// #compdef line and runs its body as the function) and a script to
// source, which registers the function: with compdef when compinit has
// run, and otherwise with compinit first, run here, for compdef and
// compadd come with it.
var completionScripts = map[string]string{
	"bash": `# bash completion for incarnate (incarnate completion bash)
_incarnate() {
	local IFS=$'\n' line
	COMPREPLY=()
	while read -r line; do
		COMPREPLY+=("${line%%$'\t'*}")
	done < <(incarnate __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
}
complete -o default -F _incarnate incarnate
`,
	"zsh": `#compdef incarnate
# zsh completion for incarnate (incarnate completion zsh)
_incarnate() {
	local -a lines found shown
	local line width=0
	lines=("${(@f)$(incarnate __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	for line in "${lines[@]}"; do
		[[ -n $line ]] && found+=("${line%%$'\t'*}")
		(( ${#found[-1]} > width )) && width=${#found[-1]}
	done
	for line in "${lines[@]}"; do
		[[ -n $line ]] || continue
		if [[ $line == *$'\t'* ]]; then
			shown+=("${(r:width:)${line%%$'\t'*}}  -- ${line#*$'\t'}")
		else
			shown+=("$line")
		fi
	done
	if (( ${#found[@]} )); then
		compadd -l -d shown -- "${found[@]}"
	else
		_files
	fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
	_incarnate "$@"
else
	(( ${+functions[compdef]} )) || { autoload -Uz compinit && compinit -i; }
	compdef _incarnate incarnate
fi
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
		if !strings.HasPrefix(w.word, cur) {
			continue
		}
		if w.desc == "" {
			fmt.Fprintln(c.stdout, w.word)
		} else {
			fmt.Fprintf(c.stdout, "%s\t%s\n", w.word, w.desc)
		}
	}
	return nil
}

// candidate is a word completion offers, with what it is in a line.
type candidate struct{ word, desc string }

// plain are words without descriptions (names, values).
func plain(words []string) []candidate {
	out := make([]candidate, len(words))
	for i, w := range words {
		out[i] = candidate{word: w}
	}
	return out
}

// flagCandidates are cmd's flags, each with its usage.
func flagCandidates(cmd command, fs *flag.FlagSet) []candidate {
	var out []candidate
	for _, f := range flagList(cmd, fs) {
		out = append(out, candidate{strings.Fields(f.spelling())[0], f.usage})
	}
	return out
}

// summaryLine is a command's summary up to its first clause, which fits
// the shells' one line.
func summaryLine(summary string) string {
	for _, cut := range []string{"; ", ": ", " ("} {
		summary, _, _ = strings.Cut(summary, cut)
	}
	return summary
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
func complete(done []string, cur string) []candidate {
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
			return flagCandidates(globalCmd, global)
		}
		return commandWords()
	}
	cmd, rest, ok := lookup(done)
	if !ok {
		if group := subcommands(done[0]); len(group) > 0 && len(done) == 1 {
			var out []candidate
			for _, sub := range group {
				out = append(out, candidate{strings.TrimPrefix(sub.name, done[0]+" "), summaryLine(sub.summary)})
			}
			return out
		}
		return nil
	}
	return completeArgs(cmd, rest, cur, root)
}

// completeArgs completes cmd's flags, their values and its operands.
func completeArgs(cmd command, rest []string, cur, root string) []candidate {
	fs := flagsOf(cmd)
	var positional []string
	for i := 0; i < len(rest); i++ {
		switch w := rest[i]; {
		case w == "--":
			return nil // a command line of the session's own
		case strings.HasPrefix(w, "-"):
			if f := fs.Lookup(strings.TrimLeft(w, "-")); f != nil && !isSwitch(f) && !strings.Contains(w, "=") {
				if i == len(rest)-1 {
					return plain(flagValues(f.Name, root))
				}
				i++
			}
		default:
			positional = append(positional, w)
		}
	}
	if strings.HasPrefix(cur, "-") {
		return flagCandidates(cmd, fs)
	}
	return operandWords(cmd.operands, positional, root)
}

// operandWords are the candidates for the operand after given.
func operandWords(operands, given []string, root string) []candidate {
	if len(operands) == 0 {
		return nil
	}
	n, kind := len(given), ""
	if n < len(operands) {
		kind = operands[n]
	} else if last := operands[len(operands)-1]; strings.HasSuffix(last, "...") {
		kind = last
	}
	if strings.TrimSuffix(kind, "...") == "command" {
		return commandWords()
	}
	words := kindWords(strings.TrimSuffix(kind, "..."), root)
	if strings.HasSuffix(kind, "...") {
		words = slices.DeleteFunc(words, func(w string) bool { return slices.Contains(given, w) })
	}
	return plain(words)
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
	case "", "file":
		return nil
	}
	return strings.Fields(kind)
}

// commandWords are the first words of the commands ("base" once, its
// description naming its subcommands).
func commandWords() []candidate {
	var out []candidate
	for _, cmd := range commands() {
		w, sub, grouped := strings.Cut(cmd.name, " ")
		i := slices.IndexFunc(out, func(c candidate) bool { return c.word == w })
		switch {
		case !grouped:
			out = append(out, candidate{w, summaryLine(cmd.summary)})
		case i < 0:
			out = append(out, candidate{w, w + "s: " + sub})
		default:
			out[i].desc += ", " + sub
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
