package api

// GitRepoStatus is the state of fluxd's git mirror.
type GitRepoStatus string

const (
	RepoUnconfigured GitRepoStatus = "unconfigured"
	RepoNew          GitRepoStatus = "new"
	RepoCloned       GitRepoStatus = "cloned"
	RepoReady        GitRepoStatus = "ready"
	RepoUnreachable  GitRepoStatus = "unreachable"
)

// GitConfig is the answer to POST /v9/git-repo-config. fluxctl sync stops
// unless Status is ready.
type GitConfig struct {
	Remote       GitRemote     `json:"remote"`
	PublicSSHKey PublicKey     `json:"publicSSHKey"`
	Status       GitRepoStatus `json:"status"`
	// Error is the repository's error, or "".
	Error string `json:"errors"`
}

// GitRemote is where fluxd's manifests come from.
type GitRemote struct {
	// URL has any credentials stripped.
	URL    string `json:"url"`
	Branch string `json:"branch"`
	// Path is the git paths, joined by commas.
	Path string `json:"path"`
}

// PublicKey is the public half of fluxd's SSH deploy key.
type PublicKey struct {
	// Key is in authorized_keys format, with a trailing newline.
	Key string `json:"key"`
	// Fingerprints by hash algorithm: "md5" and "sha256".
	Fingerprints map[string]Fingerprint `json:"fingerprints"`
}

// Fingerprint is a key fingerprint as ssh-keygen -l -v prints it.
type Fingerprint struct {
	Hash      string `json:"hash"`
	Randomart string `json:"randomart"`
}
