package gitstate

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for in, want := range map[string]string{
		"git@github.com:org/repo.git":           "ssh://git@github.com/org/repo.git",
		"git@host:/srv/git/repo.git":            "ssh://git@host/srv/git/repo.git",
		"host.example.com:repo":                 "ssh://host.example.com/repo",
		"ssh://root@127.0.0.1:2222/srv/r.git":   "ssh://root@127.0.0.1:2222/srv/r.git",
		"https://user:pw@example.com/r.git":     "https://user:pw@example.com/r.git",
		"file:///tmp/repo.git":                  "file:///tmp/repo.git",
		"http://example.com/some/deep/repo.git": "http://example.com/some/deep/repo.git",
	} {
		got, err := parseURL(in)
		if err != nil || got.String() != want {
			t.Errorf("parseURL(%q) = %q, %v; want %q", in, got.u, err, want)
		}
	}
	u, _ := parseURL("https://user:pw@example.com/r.git")
	if u.Redacted() != "https://user:xxxxx@example.com/r.git" || u.Password() != "pw" {
		t.Errorf("Redacted = %q", u.Redacted())
	}
	if hp := mustParse(t, "git@github.com:o/r").HostPort(); hp != "github.com:22" {
		t.Errorf("HostPort = %q", hp)
	}
	_, err := parseURL("ftp://user:topsecret@host/r")
	if !errors.Is(err, ErrBadURL) || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("bad URL error %v leaks the password or is not ErrBadURL", err)
	}
}

func mustParse(t *testing.T, s string) remoteURL {
	t.Helper()
	u, err := parseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
