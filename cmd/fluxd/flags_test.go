package main

import (
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func parse(t *testing.T, args ...string) error {
	t.Helper()
	var f flags
	p, err := kong.New(&f, kong.Name("fluxd"), kong.DefaultEnvars("FLUXD"), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(args)
	return err
}

func TestFlagValidation(t *testing.T) {
	for _, ok := range [][]string{
		{"--git-url", "ssh://git@example.com/ops/cluster.git"},
		{"--git-url", "git@github.com:ops/cluster.git", "--git-path", "clusters/prod", "--git-path", "base"},
		{"--git-url", "https://example.com/ops/cluster.git", "--sync-interval", "30s"},
		{"--git-url", "file:///srv/git/cluster.git"},
	} {
		if err := parse(t, ok...); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{nil, "--git-url"},
		{[]string{"--git-url", "ftp://x/y"}, "not supported"},
		{[]string{"--git-url", "just-a-path"}, "not a URL"},
		{[]string{"--git-url", "file:///x", "--git-poll-interval", "10ms"}, "too short"},
		{[]string{"--git-url", "file:///x", "--sync-interval", "soon"}, "sync-interval"},
		{[]string{"--git-url", "file:///x", "--git-path", "/etc"}, "relative"},
		{[]string{"--git-url", "file:///x", "--git-path", "a/../../b"}, "'..'"},
		{[]string{"--git-url", "file:///x", "--log-format", "xml"}, "log-format"},
		{[]string{"--git-url", "file:///x", "--sync-workers", "0"}, "sync-workers"},
		{[]string{"--git-url", "file:///x", "--git-ssh-key-file", "/nonexistent/key"}, "nonexistent"},
	} {
		err := parse(t, bad.args...)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want one mentioning %q", bad.args, err, bad.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("https://bot:s3cret@example.com/x.git"); strings.Contains(got, "s3cret") {
		t.Fatalf("redactURL kept the password: %s", got)
	}
	if got := redactURL("ssh://git@example.com/x.git"); got != "ssh://git@example.com/x.git" {
		t.Fatalf("redactURL changed an ssh URL: %s", got)
	}
}
