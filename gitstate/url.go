package gitstate

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// remoteURL is a validated remote URL.
type remoteURL struct {
	u *url.URL
}

// parseURL accepts ssh://, https://, http://, file:// and the scp-like
// [user@]host:path, which becomes ssh://[user@]host/path. A relative scp
// path becomes absolute ("git@host:org/repo" is "ssh://git@host/org/repo"),
// which is what hosted git services expect.
func parseURL(raw string) (remoteURL, error) {
	bad := func(why string) (remoteURL, error) {
		return remoteURL{}, fmt.Errorf("%w %q: %s; use ssh://, https://, http://, file:// or git@host:path", ErrBadURL, redactURL(raw), why)
	}
	if raw == "" {
		return bad("empty")
	}
	if !strings.Contains(raw, "://") {
		s, ok := scpToSSH(raw)
		if !ok {
			return bad("not a URL")
		}
		raw = s
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(err.Error())
	}
	switch u.Scheme {
	case "ssh", "https", "http":
		if u.Hostname() == "" {
			return bad("no host")
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("file:// URLs name a local path, not a host")
		}
	default:
		return bad("unsupported scheme " + u.Scheme)
	}
	if strings.Trim(u.Path, "/") == "" {
		return bad("no repository path")
	}
	return remoteURL{u: u}, nil
}

// scpToSSH turns [user@]host:path into ssh://[user@]host/path.
func scpToSSH(s string) (string, bool) {
	hostPart, path, ok := strings.Cut(s, ":")
	if !ok || hostPart == "" || path == "" || strings.Contains(hostPart, "/") {
		return "", false
	}
	host := hostPart
	if at := strings.LastIndex(hostPart, "@"); at >= 0 {
		host = hostPart[at+1:]
	}
	if host == "" || strings.ContainsAny(host, " \t") {
		return "", false
	}
	return "ssh://" + hostPart + "/" + strings.TrimPrefix(path, "/"), true
}

// String is the URL libgit2 gets, with any password in it.
func (r remoteURL) String() string { return r.u.String() }

// Redacted is the URL for messages and logs.
func (r remoteURL) Redacted() string { return r.u.Redacted() }

// Password is the password in the URL, if any, to redact from messages.
func (r remoteURL) Password() string {
	p, _ := r.u.User.Password()
	return p
}

// IsSSH reports whether the URL uses ssh.
func (r remoteURL) IsSSH() bool { return r.u.Scheme == "ssh" }

// Username is the user named in the URL, if any.
func (r remoteURL) Username() string { return r.u.User.Username() }

// HostPort is host:port with the scheme's default port, as known_hosts
// lookups want it.
func (r remoteURL) HostPort() string {
	port := r.u.Port()
	if port == "" {
		port = map[string]string{"ssh": "22", "https": "443", "http": "80"}[r.u.Scheme]
	}
	return net.JoinHostPort(r.u.Hostname(), port)
}

// redactURL hides the password of a URL that may not even parse.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return raw
}
