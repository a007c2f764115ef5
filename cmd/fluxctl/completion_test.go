package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func fluxctlModel(t *testing.T) *kong.Application {
	t.Helper()
	var c cli
	p, err := kong.New(&c, parserOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return p.Model
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeCompletion(&b, fluxctlModel(t), shell); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// commandNames are every command and alias of fluxctl, from its model.
func commandNames(t *testing.T) []string {
	var out []string
	for _, n := range fluxctlModel(t).Children {
		if !n.Hidden {
			out = append(out, n.Name)
			out = append(out, n.Aliases...)
		}
	}
	for _, want := range []string{"list-workloads", "list-services", "list-controllers", "list-images", "completion", "check-release"} {
		if !slices.Contains(out, want) {
			t.Fatalf("the model has no command %s: %v", want, out)
		}
	}
	return out
}

// globalFlags are the long names of fluxctl's own flags.
func globalFlags(t *testing.T) []string {
	var out []string
	for _, f := range fluxctlModel(t).Flags {
		if !f.Hidden {
			out = append(out, f.Name)
		}
	}
	for _, want := range []string{"url", "token", "timeout", "output", "help"} {
		if !slices.Contains(out, want) {
			t.Fatalf("the model has no flag --%s: %v", want, out)
		}
	}
	return out
}

// Each script names every command and alias, where it offers commands,
// and every global flag.
func TestCompletionNamesEverything(t *testing.T) {
	commands, flags := commandNames(t), globalFlags(t)
	for shell, names := range map[string]struct {
		command func(string) string
		flag    func(string) []string // any of
	}{
		"bash": {
			command: func(c string) string { return "'fluxctl " + c + "'" },
			flag:    func(f string) []string { return []string{" --" + f + " ", " --" + f + "'"} },
		},
		"zsh": {
			command: func(c string) string { return "'" + c + ":" },
			flag:    func(f string) []string { return []string{"--" + f + "[", "--" + f + "=["} },
		},
		"fish": {
			command: func(c string) string { return "-a '" + c + "'" },
			flag:    func(f string) []string { return []string{"-l '" + f + "'"} },
		},
	} {
		script := completionScript(t, shell)
		for _, c := range commands {
			if !strings.Contains(script, names.command(c)) {
				t.Errorf("%s: no command %s (%q)", shell, c, names.command(c))
			}
		}
		for _, f := range flags {
			if !slices.ContainsFunc(names.flag(f), func(s string) bool { return strings.Contains(script, s) }) {
				t.Errorf("%s: no flag --%s (%q)", shell, f, names.flag(f))
			}
		}
		for _, v := range []string{"table", "json", "bash", "zsh", "fish"} {
			if !strings.Contains(script, v) {
				t.Errorf("%s: no value %s", shell, v)
			}
		}
	}
}

// bashComplete sources the bash script and calls its completion function
// as bash does for the command line words, the last being the word under
// the cursor; it returns the candidates, sorted.
func bashComplete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, shQuote(w))
	}
	prog := "source " + shQuote(script) + " || exit 1\n" +
		"COMP_WORDS=(" + strings.Join(quoted, " ") + ")\n" +
		"COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n" +
		"COMP_LINE=" + shQuote(strings.Join(words, " ")) + "\n" +
		"COMP_POINT=${#COMP_LINE}\n" +
		"_fluxctl fluxctl " + shQuote(words[len(words)-1]) + " " + shQuote(words[len(words)-2]) + " || exit 1\n" +
		"printf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("%q: %v\n%s", words, err, stderr.String())
	}
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	return got
}

func TestBashCompletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fluxctl.bash")
	if err := os.WriteFile(path, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "exported"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		words []string
		want  []string
	}{
		{[]string{"fluxctl", "list-w"}, []string{"list-workloads"}},
		{[]string{"fluxctl", "list-"}, []string{"list-controllers", "list-images", "list-services", "list-workloads"}},
		{[]string{"fluxctl", "comp"}, []string{"completion"}},
		// Flag values are skipped, so the command is found after them.
		{[]string{"fluxctl", "--url", "http://127.0.0.1:3030/api/flux", "-o", "json", "list-services", "--na"}, []string{"--namespace"}},
		{[]string{"fluxctl", "--timeout=5s", "list-controllers", "--all"}, []string{"--all-namespaces"}},
		{[]string{"fluxctl", "lock", "-w", "shop:deployment/cart", "--u"}, []string{"--url", "--user"}},
		{[]string{"fluxctl", "-o", ""}, []string{"json", "table"}},
		{[]string{"fluxctl", "list-images", "--output", "t"}, []string{"table"}},
		// --output=j, as bash splits it at "=" by default, and as one word.
		{[]string{"fluxctl", "list-images", "--output", "=", "j"}, []string{"json"}},
		{[]string{"fluxctl", "list-images", "--output", "="}, []string{"json", "table"}},
		{[]string{"fluxctl", "list-images", "--output=j"}, []string{"--output=json"}},
		{[]string{"fluxctl", "completion", ""}, []string{"bash", "fish", "zsh"}},
		{[]string{"fluxctl", "completion", "z"}, []string{"zsh"}},
		{[]string{"fluxctl", "save", "--out", filepath.Join(dir, "exp")}, []string{filepath.Join(dir, "exported")}},
		// Nothing where fluxctl takes nothing, or anything.
		{[]string{"fluxctl", "status", ""}, nil},
		{[]string{"fluxctl", "--url", ""}, nil},
		{[]string{"fluxctl", "check-release", ""}, nil},
		{[]string{"fluxctl", "nope", "--na"}, nil},
	} {
		if got := bashComplete(t, path, c.words...); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", strings.Join(c.words, " "), got, c.want)
		}
	}
}

// The zsh and fish scripts parse.
func TestCompletionScriptsParse(t *testing.T) {
	for shell, check := range map[string][]string{"zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}} {
		if _, err := exec.LookPath(check[0]); err != nil {
			t.Fatalf("%s is not installed (make deps installs it): its completion script cannot be checked", shell)
		}
		path := filepath.Join(t.TempDir(), "fluxctl."+shell)
		if err := os.WriteFile(path, []byte(completionScript(t, shell)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(check[0], append(check[1:], path)...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(check, " "), err, out)
		}
	}
}

// fish offers what the command line has reached.
func TestFishCompletion(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Fatal("fish is not installed (make deps installs it): its completion script cannot be checked")
	}
	path := filepath.Join(t.TempDir(), "fluxctl.fish")
	if err := os.WriteFile(path, []byte(completionScript(t, "fish")), 0o644); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string][]string{
		"fluxctl list-w": {"list-workloads"},
		"fluxctl --url http://x list-services --na": {"--namespace"},
		"fluxctl completion ":                       {"bash", "fish", "zsh"},
		"fluxctl -o ":                               {"json", "table"},
	} {
		out, err := exec.Command("fish", "--no-config", "-c", "source "+shQuote(path)+"; complete -C "+shQuote(line)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

func TestCompletionRefusesJSON(t *testing.T) {
	if err := (completionCmd{Shell: "bash"}).Run(nil, &globals{Output: "json"}); err == nil || !strings.Contains(err.Error(), "-o json") {
		t.Errorf("got %v", err)
	}
}
