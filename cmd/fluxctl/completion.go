package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/alecthomas/kong"
)

// completionCmd prints a completion script for a shell, made from the
// command-line model itself: every command and alias, every flag, and the
// values of enum flags and arguments (-o table|json, completion
// bash|zsh|fish), so the script never lags behind the commands.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// Help is shown by fluxctl completion --help.
func (completionCmd) Help() string {
	return `Load the script in the running shell:

  bash:  source <(fluxctl completion bash)
  zsh:   source <(fluxctl completion zsh)     (after compinit)
  fish:  fluxctl completion fish | source

or install it for every new shell:

  bash:  fluxctl completion bash > /etc/bash_completion.d/fluxctl
  zsh:   fluxctl completion zsh > "${fpath[1]}/_fluxctl"
  fish:  fluxctl completion fish > ~/.config/fish/completions/fluxctl.fish`
}

func (c completionCmd) Run(ctx *kong.Context, g *globals) error {
	if g.Output == "json" {
		return errors.New("fluxctl completion prints a shell script, not JSON: leave out -o json")
	}
	return writeCompletion(os.Stdout, ctx.Model, c.Shell)
}

// writeCompletion writes the completion script of app for shell.
func writeCompletion(w io.Writer, app *kong.Application, shell string) error {
	root := completionTree(app.Node, nil)
	var script string
	switch shell {
	case "bash":
		script = bashCompletion(root)
	case "zsh":
		script = zshCompletion(root)
	case "fish":
		script = fishCompletion(root)
	default:
		return fmt.Errorf("no completion for the shell %q: use bash, zsh or fish", shell)
	}
	_, err := io.WriteString(w, script)
	return err
}

// compNode is a command, with what completion needs of it.
type compNode struct {
	// path is the command's words, from the program's name on.
	path     []string
	aliases  []string
	help     string
	flags    []compFlag // its own, not its parents'
	args     []compValue
	children []*compNode
	parent   *compNode
}

// compValue is what a flag or an argument takes.
type compValue struct {
	name string
	// takes is false for a flag that takes no value.
	takes   bool
	choices []string // an enum's values
	files   bool     // a path
	help    string
}

// compFlag is one flag and its names.
type compFlag struct {
	compValue
	long     []string // without "--": the name, then aliases
	short    rune
	negation string // "--no-<name>" or the like, for a negatable flag
	repeat   bool
}

func completionTree(n *kong.Node, parent *compNode) *compNode {
	c := &compNode{aliases: n.Aliases, help: n.Help, parent: parent}
	if parent == nil {
		c.path = []string{n.Name}
	} else {
		c.path = append(append([]string{}, parent.path...), n.Name)
	}
	for _, f := range n.Flags {
		if f.Hidden {
			continue
		}
		cf := compFlag{compValue: valueOf(f.Value), long: append([]string{f.Name}, f.Aliases...), short: f.Short, repeat: f.IsCumulative() || f.IsCounter()}
		if f.Tag != nil && f.Tag.Negatable != "" {
			if f.Tag.Negatable == "_" {
				cf.negation = "--no-" + f.Name
			} else {
				cf.negation = "--" + f.Tag.Negatable
			}
		}
		c.flags = append(c.flags, cf)
	}
	for _, p := range n.Positional {
		c.args = append(c.args, valueOf(p))
	}
	for _, child := range n.Children {
		if child.Hidden || child.Type != kong.CommandNode {
			continue
		}
		c.children = append(c.children, completionTree(child, c))
	}
	return c
}

func valueOf(v *kong.Value) compValue {
	cv := compValue{name: v.Name, help: v.Help, takes: v.Flag == nil || !(v.IsBool() || v.IsCounter())}
	if v.Enum != "" {
		cv.choices = v.EnumSlice()
	}
	if v.Tag != nil {
		switch v.Tag.Type {
		case "path", "existingfile", "existingdir", "filecontent":
			cv.files = true
		}
	}
	return cv
}

func (c *compNode) key() string { return strings.Join(c.path, " ") }

// names are the words that run the command: its name and its aliases.
func (c *compNode) names() []string {
	return append([]string{c.path[len(c.path)-1]}, c.aliases...)
}

// walk calls f on c and every command under it, parents first.
func (c *compNode) walk(f func(*compNode)) {
	f(c)
	for _, ch := range c.children {
		ch.walk(f)
	}
}

// allFlags are the flags c accepts: its parents' and its own.
func (c *compNode) allFlags() []compFlag {
	if c.parent == nil {
		return c.flags
	}
	return append(c.parent.allFlags(), c.flags...)
}

// words are the names of f as typed: --name, aliases, -s.
func (f compFlag) words() []string {
	var out []string
	for _, l := range f.long {
		out = append(out, "--"+l)
	}
	if f.short != 0 {
		out = append(out, "-"+string(f.short))
	}
	return out
}

// longWords are the names of f offered as completions: the long ones and
// the negation.
func (f compFlag) longWords() []string {
	var out []string
	for _, l := range f.long {
		out = append(out, "--"+l)
	}
	if f.negation != "" {
		out = append(out, f.negation)
	}
	return out
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]`)

// ident makes a shell function name of words.
func ident(words ...string) string {
	return nonIdent.ReplaceAllString(strings.Join(words, "_"), "_")
}

// shQuote quotes s for POSIX shells (bash, zsh).
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// oneLine is help text as one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// bashCompletion is a bash script that completes commands, aliases,
// flags, and the values of enum and path flags and arguments. It needs
// nothing but bash 4 (not the bash-completion package), and reads
// --flag=value whether or not COMP_WORDBREAKS splits at "=".
func bashCompletion(root *compNode) string {
	prog := root.path[0]
	fn := "_" + ident(prog)
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	p("# bash completion for %s.\n", prog)
	p("# Generated by `%s completion bash`; load it with\n", prog)
	p("#   source <(%s completion bash)\n", prog)
	p("# or save it as /etc/bash_completion.d/%s.\n\n", prog)

	// The command a word leads to.
	p("# %s_command sets %s_next to the command that word $2 runs under\n", fn, fn)
	p("# the command $1 (both as the words from %q on), or to \"\".\n", prog)
	p("%s_command() {\n    case \"$1 $2\" in\n", fn)
	root.walk(func(c *compNode) {
		if c.parent == nil {
			return
		}
		var pats []string
		for _, n := range c.names() {
			pats = append(pats, shQuote(c.parent.key()+" "+n))
		}
		p("        %s) %s_next=%s ;;\n", strings.Join(pats, "|"), fn, shQuote(c.key()))
	})
	p("        *) %s_next= ;;\n    esac\n}\n\n", fn)

	// What a flag takes.
	p("# %s_value sets %s_takes to what flag $2 of the command $1 takes: \"\"\n", fn, fn)
	p("# (nothing, or no such flag), \"value\", \"files\" or \"choices\", and then\n")
	p("# %s_choices to them.\n", fn)
	p("%s_value() {\n    %s_takes= %s_choices=\n", fn, fn, fn)
	root.walk(func(c *compNode) {
		var cases []string
		for _, f := range c.flags {
			if !f.takes {
				continue
			}
			cases = append(cases, fmt.Sprintf("            %s) %s ;;\n", strings.Join(f.words(), "|"), bashTakes(fn, f.compValue)))
		}
		if len(cases) == 0 {
			return
		}
		p("    case \"$1\" in\n        %s|%s*)\n        case \"$2\" in\n%s        esac ;;\n    esac\n",
			shQuote(c.key()), shQuote(c.key()+" "), strings.Join(cases, ""))
	})
	p("}\n\n")

	// What an argument takes.
	p("# %s_arg sets %s_takes and %s_choices for argument $2 (from 0) of the\n", fn, fn, fn)
	p("# command $1: a command's subcommands, or what the argument takes.\n")
	p("%s_arg() {\n    %s_takes= %s_choices=\n    case \"$1\" in\n", fn, fn, fn)
	root.walk(func(c *compNode) {
		switch {
		case len(c.children) > 0:
			var names []string
			for _, ch := range c.children {
				names = append(names, ch.names()...)
			}
			p("        %s) %s_takes=choices %s_choices=%s ;;\n", shQuote(c.key()), fn, fn, shQuote(strings.Join(names, " ")))
		case len(c.args) > 0:
			p("        %s)\n        case \"$2\" in\n", shQuote(c.key()))
			for i, a := range c.args {
				p("            %d) %s ;;\n", i, bashTakes(fn, a))
			}
			p("        esac ;;\n")
		}
	})
	p("    esac\n}\n\n")

	// The flags of a command.
	p("# %s_flags sets %s_words to the flags of the command $1.\n", fn, fn)
	p("%s_flags() {\n    %s_words=\n", fn, fn)
	root.walk(func(c *compNode) {
		var words []string
		for _, f := range c.flags {
			words = append(words, f.longWords()...)
		}
		if len(words) == 0 {
			return
		}
		p("    case \"$1\" in %s|%s*) %s_words+=%s ;; esac\n", shQuote(c.key()), shQuote(c.key()+" "), fn, shQuote(" "+strings.Join(words, " ")))
	})
	p("}\n\n")

	p(`# %[1]s_reply sets COMPREPLY to what %[1]s_takes and %[1]s_choices
# offer for the word $1, each with the prefix $2.
%[1]s_reply() {
    local IFS=$'\n' c
    case "$%[1]s_takes" in
        choices) COMPREPLY=($(IFS=' '; compgen -W "$%[1]s_choices" -- "$1")) ;;
        files)
            COMPREPLY=($(compgen -f -- "$1"))
            compopt -o filenames 2>/dev/null ;;
    esac
    if [[ -n $2 ]]; then
        for c in "${!COMPREPLY[@]}"; do COMPREPLY[c]=$2${COMPREPLY[c]}; done
    fi
}

# %[1]s completes the command line of %[2]s.
%[1]s() {
    local cur=${COMP_WORDS[COMP_CWORD]} cmd=%[3]s word want= nargs=0 dashdash= i
    local %[1]s_next %[1]s_takes %[1]s_choices %[1]s_words
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ -n $want ]]; then
            # The value of flag $want; an "=" of its own comes first when
            # COMP_WORDBREAKS splits --flag=value.
            [[ $word == "=" ]] || want=
            continue
        fi
        if [[ -z $dashdash ]]; then
            case $word in
                --) dashdash=1; continue ;;
                -*=*) continue ;;
                -?*)
                    %[1]s_value "$cmd" "$word"
                    if [[ -n $%[1]s_takes || ${COMP_WORDS[i+1]} == "=" ]]; then want=$word; fi
                    continue ;;
            esac
        fi
        %[1]s_command "$cmd" "$word"
        if [[ -n $%[1]s_next && $nargs -eq 0 ]]; then
            cmd=$%[1]s_next
        else
            nargs=$((nargs + 1))
        fi
    done
    if [[ -n $want ]]; then
        [[ $cur == "=" ]] && cur=
        %[1]s_value "$cmd" "$want"
        %[1]s_reply "$cur" ""
    elif [[ -z $dashdash && $cur == -*=* ]]; then
        %[1]s_value "$cmd" "${cur%%%%=*}"
        %[1]s_reply "${cur#*=}" "${cur%%%%=*}="
    elif [[ -z $dashdash && $cur == -* ]]; then
        %[1]s_flags "$cmd"
        COMPREPLY=($(compgen -W "$%[1]s_words" -- "$cur"))
    else
        %[1]s_arg "$cmd" "$nargs"
        %[1]s_reply "$cur" ""
    fi
    return 0
}

complete -F %[1]s %[2]s
`, fn, prog, shQuote(root.key()))
	return b.String()
}

func bashTakes(fn string, v compValue) string {
	switch {
	case len(v.choices) > 0:
		return fmt.Sprintf("%s_takes=choices %s_choices=%s", fn, fn, shQuote(strings.Join(v.choices, " ")))
	case v.files:
		return fn + "_takes=files"
	}
	return fn + "_takes=value"
}

// zshCompletion is a zsh completion function (for compinit), with the
// help of every command and flag.
func zshCompletion(root *compNode) string {
	prog := root.path[0]
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("#compdef %s\n", prog)
	p("# zsh completion for %s.\n", prog)
	p("# Generated by `%s completion zsh`; load it with\n", prog)
	p("#   source <(%s completion zsh)\n", prog)
	p("# after compinit, or save it as _%s in a directory of $fpath.\n\n", prog)
	root.walk(func(c *compNode) {
		fn := "_" + ident(c.path...)
		p("%s() {\n", fn)
		p("    local curcontext=$curcontext state state_descr line ret=1\n")
		p("    typeset -A opt_args\n")
		p("    _arguments -C -s -S \\\n")
		for _, f := range c.allFlags() {
			for _, spec := range zshFlagSpecs(f) {
				p("        %s \\\n", spec)
			}
		}
		switch {
		case len(c.children) > 0:
			p("        %s \\\n        %s && ret=0\n", shQuote("1: :->command"), shQuote("*:: :->args"))
			p("    case $state in\n")
			p("        command)\n            local -a commands\n            commands=(\n")
			for _, ch := range c.children {
				for _, n := range ch.names() {
					p("                %s\n", shQuote(zshEscape(n, ":")+":"+oneLine(ch.help)))
				}
			}
			p("            )\n            _describe -t commands %s commands && ret=0 ;;\n", shQuote(c.key()+" command"))
			p("        args)\n            case $words[1] in\n")
			for _, ch := range c.children {
				var pats []string
				for _, n := range ch.names() {
					pats = append(pats, shQuote(n))
				}
				p("                %s) _%s && ret=0 ;;\n", strings.Join(pats, "|"), ident(ch.path...))
			}
			p("            esac ;;\n    esac\n")
		default:
			for i, a := range c.args {
				p("        %s \\\n", shQuote(fmt.Sprintf("%d:%s:%s", i+1, zshEscape(a.name, ":"), zshAction(a))))
			}
			p("        && ret=0\n")
		}
		p("    return ret\n}\n\n")
	})
	fn := "_" + ident(prog)
	p("if [[ $funcstack[1] == %s ]]; then\n    %s \"$@\"\nelse\n    compdef %s %s\nfi\n", fn, fn, fn, prog)
	return b.String()
}

// zshFlagSpecs are the _arguments specs of f.
func zshFlagSpecs(f compFlag) []string {
	help := "[" + zshEscape(oneLine(f.help), "[]:") + "]"
	value := ""
	if f.takes {
		value = ":" + zshEscape(f.name, ":") + ":" + zshAction(f.compValue)
	}
	var names []string
	for _, w := range f.words() {
		switch {
		case !f.takes:
			names = append(names, w)
		case strings.HasPrefix(w, "--"):
			names = append(names, w+"=")
		default:
			names = append(names, w+"+")
		}
	}
	exclude := ""
	if len(names) > 1 && !f.repeat {
		exclude = "(" + strings.Join(f.words(), " ") + ")"
	}
	repeat := ""
	if f.repeat {
		repeat = "*"
	}
	var specs []string
	for _, n := range names {
		specs = append(specs, shQuote(exclude+repeat+n+help+value))
	}
	if f.negation != "" {
		specs = append(specs, shQuote(f.negation+help))
	}
	return specs
}

// zshAction completes what v takes.
func zshAction(v compValue) string {
	switch {
	case len(v.choices) > 0:
		var cs []string
		for _, c := range v.choices {
			cs = append(cs, zshEscape(c, " ()"))
		}
		return "(" + strings.Join(cs, " ") + ")"
	case v.files:
		return "_files"
	}
	return " "
}

// zshEscape puts a backslash before each of chars (and backslashes) in s.
func zshEscape(s, chars string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\\' || strings.ContainsRune(chars, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fishCompletion is a fish script of complete commands, each applying
// where the command line has reached the command that has the flag,
// subcommand or argument.
func fishCompletion(root *compNode) string {
	prog := root.path[0]
	fn := "__" + ident(prog)
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# fish completion for %s.\n", prog)
	p("# Generated by `%s completion fish`; load it with\n", prog)
	p("#   %s completion fish | source\n", prog)
	p("# or save it as ~/.config/fish/completions/%s.fish.\n\n", prog)

	p("# %s_command prints the command that word $argv[2] runs under the\n# command $argv[1], if any.\n", fn)
	p("function %s_command\n    switch \"$argv[1] $argv[2]\"\n", fn)
	root.walk(func(c *compNode) {
		if c.parent == nil {
			return
		}
		var pats []string
		for _, n := range c.names() {
			pats = append(pats, fishQuote(c.parent.key()+" "+n))
		}
		p("        case %s\n            echo %s\n", strings.Join(pats, " "), fishQuote(c.key()))
	})
	p("    end\nend\n\n")

	p("# %s_takes_value succeeds if flag $argv[2] of the command $argv[1] takes a value.\n", fn)
	p("function %s_takes_value\n", fn)
	root.walk(func(c *compNode) {
		var words []string
		for _, f := range c.flags {
			if f.takes {
				words = append(words, f.words()...)
			}
		}
		if len(words) == 0 {
			return
		}
		p("    if string match -q -- %s $argv[1]; or string match -q -- %s $argv[1]\n", fishQuote(c.key()), fishQuote(c.key()+" *"))
		p("        contains -- $argv[2] %s; and return 0\n    end\n", strings.Join(words, " "))
	})
	p("    return 1\nend\n\n")

	p(`# %[1]s_path prints the command the command line has reached, and
# how many arguments it has after it.
function %[1]s_path
    set -l cmd %[2]s
    set -l nargs 0
    set -l want 0
    set -l dashdash 0
    for word in (commandline -opc)[2..-1]
        if test $want = 1
            set want 0
            continue
        end
        if test $dashdash = 0
            switch $word
                case --
                    set dashdash 1
                    continue
                case '-*=*'
                    continue
                case '-?*'
                    %[1]s_takes_value $cmd $word; and set want 1
                    continue
            end
        end
        set -l next (%[1]s_command $cmd $word)
        if test -n "$next" -a $nargs = 0
            set cmd $next
        else
            set nargs (math $nargs + 1)
        end
    end
    echo $cmd
    echo $nargs
end

# %[1]s_at succeeds when the command line has reached the command
# $argv[1] (and, with $argv[2], has that many arguments after it).
function %[1]s_at
    set -l at (%[1]s_path)
    test "$at[1]" = "$argv[1]"; or return 1
    test (count $argv) -lt 2; or test "$at[2]" = "$argv[2]"
end

# %[1]s_under succeeds when the command line has reached the command
# $argv[1] or one under it.
function %[1]s_under
    set -l at (%[1]s_path)
    string match -q -- $argv[1] $at[1]; or string match -q -- "$argv[1] *" $at[1]
end

complete -c %[2]s -f
`, fn, fishQuote(root.key()))
	root.walk(func(c *compNode) {
		for _, ch := range c.children {
			for _, n := range ch.names() {
				p("complete -c %s -n %s -a %s -d %s\n", prog, fishQuote(fn+"_at "+fishQuote(c.key())), fishQuote(n), fishQuote(oneLine(ch.help)))
			}
		}
		for _, f := range c.flags {
			line := fmt.Sprintf("complete -c %s -n %s", prog, fishQuote(fn+"_under "+fishQuote(c.key())))
			for _, l := range f.long {
				line += " -l " + fishQuote(l)
			}
			if f.short != 0 {
				line += " -s " + fishQuote(string(f.short))
			}
			line += fishTakes(f.compValue)
			p("%s -d %s\n", line, fishQuote(oneLine(f.help)))
			if f.negation != "" {
				p("complete -c %s -n %s -l %s -d %s\n", prog, fishQuote(fn+"_under "+fishQuote(c.key())),
					fishQuote(strings.TrimPrefix(f.negation, "--")), fishQuote(oneLine(f.help)))
			}
		}
		if len(c.children) == 0 {
			for i, a := range c.args {
				if t := fishTakes(a); t != " -x" {
					p("complete -c %s -n %s%s -d %s\n", prog, fishQuote(fmt.Sprintf("%s_at %s %d", fn, fishQuote(c.key()), i)), t, fishQuote(oneLine(a.help)))
				}
			}
		}
	})
	return b.String()
}

func fishTakes(v compValue) string {
	switch {
	case !v.takes:
		return ""
	case len(v.choices) > 0:
		var cs []string
		for _, c := range v.choices {
			cs = append(cs, fishQuote(c))
		}
		return " -x -a " + fishQuote(strings.Join(cs, " "))
	case v.files:
		return " -r -F"
	}
	return " -x"
}

// fishQuote quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
