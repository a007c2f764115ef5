package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

type flags struct {
	Version kong.VersionFlag `help:"Print the version and exit."`

	GitURL            string        `name:"git-url" required:"" help:"Repository to sync: ssh://, https://, file:// or scp-like git@host:path."`
	GitBranch         string        `name:"git-branch" default:"main" help:"Branch to sync."`
	GitPath           []string      `name:"git-path" help:"Directory (or file) of manifests in the repository; repeatable. Default: the whole repository."`
	GitUser           string        `name:"git-user" default:"fluxd" help:"Name of the committer and tagger of what fluxd writes to git."`
	GitEmail          string        `name:"git-email" default:"fluxd@localhost" help:"Email of the committer and tagger."`
	GitNotesRef       string        `name:"git-notes-ref" default:"flux" help:"Notes ref (under refs/notes/) of the job records."`
	GitPollInterval   time.Duration `name:"git-poll-interval" default:"1m" help:"How often to fetch the repository."`
	GitReadonly       bool          `name:"git-readonly" help:"Sync, but write nothing to git: no tag, no notes."`
	GitSSHKeyFile     string        `name:"git-ssh-key-file" type:"existingfile" help:"Private ssh key (OpenSSH format) for ssh:// and scp-like URLs."`
	GitKnownHostsFile string        `name:"git-known-hosts-file" type:"existingfile" help:"known_hosts file to check the git server's host key against. Without it any host key is accepted, with a warning."`
	GitUsername       string        `name:"git-username" help:"User name for https URLs."`
	GitPasswordFile   string        `name:"git-password-file" type:"existingfile" help:"File holding the password or token for https URLs."`
	GitDir            string        `name:"git-dir" help:"Where to keep the local mirror. Default: a new temporary directory."`

	ClusterName           string        `name:"cluster-name" help:"Name of this cluster in the sync tag and notes ref. Default: the UID of the kube-system namespace."`
	SyncInterval          time.Duration `name:"sync-interval" default:"5m" help:"How often to re-apply everything, reverting changes made by hand."`
	SyncGarbageCollection bool          `name:"sync-garbage-collection" help:"Delete objects fluxd applied from this repo once they leave git."`
	SyncWorkers           int           `name:"sync-workers" default:"16" help:"How many objects to apply at once."`

	Listen         string `name:"listen" default:"127.0.0.1:3030" help:"Address of the HTTP API and /metrics."`
	Token          string `name:"token" help:"API token: every route but ping and /metrics then needs 'Authorization: Bearer <token>'. Prefer --token-file."`
	TokenFile      string `name:"token-file" type:"existingfile" help:"File holding the API token."`
	InsecureNoAuth bool   `name:"insecure-no-auth" help:"Allow --listen on a non-loopback address without a token."`

	K8sSecretName      string `name:"k8s-secret-name" default:"fluxd-git-deploy" help:"Secret that holds the ssh deploy key fluxd makes when no --git-ssh-key-file is given."`
	K8sSecretNamespace string `name:"k8s-secret-namespace" default:"default" help:"Namespace of that Secret."`

	Images imageFlags `embed:""`

	Kubeconfig string `name:"kubeconfig" type:"path" help:"Kubeconfig file. Default: the in-cluster configuration, then $KUBECONFIG."`
	LogFormat  string `name:"log-format" enum:"json,console" default:"json" help:"Log format: json or console."`
	LogLevel   string `name:"log-level" enum:"debug,info,warn,error" default:"info" help:"Least severe level to log."`
}

// Validate runs after parsing, so a bad value is an error at start-up.
func (f *flags) Validate() error {
	if err := validateGitURL(f.GitURL); err != nil {
		return err
	}
	if f.GitPollInterval < time.Second {
		return fmt.Errorf("--git-poll-interval %s is too short: use 1s or more", f.GitPollInterval)
	}
	if f.SyncInterval < time.Second {
		return fmt.Errorf("--sync-interval %s is too short: use 1s or more", f.SyncInterval)
	}
	if f.SyncWorkers < 1 || f.SyncWorkers > 256 {
		return fmt.Errorf("--sync-workers %d: use 1 to 256", f.SyncWorkers)
	}
	if f.Token != "" && f.TokenFile != "" {
		return fmt.Errorf("give --token or --token-file, not both")
	}
	if err := checkListen(f.Listen, f.Token != "" || f.TokenFile != "", f.InsecureNoAuth); err != nil {
		return err
	}
	for _, p := range f.GitPath {
		if strings.HasPrefix(p, "/") || strings.Contains("/"+p+"/", "/../") {
			return fmt.Errorf("--git-path %q must be relative to the repository root, without '..'", p)
		}
	}
	return nil
}

func validateGitURL(s string) error {
	if s == "" {
		return fmt.Errorf("--git-url is required")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("--git-url %q: %w", s, err)
		}
		switch u.Scheme {
		case "ssh", "https", "http", "file":
			return nil
		}
		return fmt.Errorf("--git-url %q: scheme %q is not supported; use ssh://, https://, file:// or git@host:path", s, u.Scheme)
	}
	if host, path, ok := strings.Cut(s, ":"); ok && host != "" && path != "" && !strings.Contains(host, "/") {
		return nil // scp-like user@host:path
	}
	return fmt.Errorf("--git-url %q is not a URL: use ssh://, https://, file:// or git@host:path", s)
}

func readFileFlag(name, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// checkListen refuses to serve the API without a token on anything but
// loopback, unless told to.
func checkListen(addr string, token, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w (want host:port, e.g. 127.0.0.1:3030)", addr, err)
	}
	if token || insecure {
		return nil
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--listen %s would serve the API to the network without a token: set --token-file (or --token), or add --insecure-no-auth if that is what you want", addr)
}

// apiToken is the token from --token or --token-file.
func (f *flags) apiToken() (string, error) {
	if f.TokenFile == "" {
		return f.Token, nil
	}
	b, err := readFileFlag("--token-file", f.TokenFile)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("--token-file %s is empty", f.TokenFile)
	}
	return t, nil
}
