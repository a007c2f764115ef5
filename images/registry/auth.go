package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// PullSecrets is the cluster's side of registry credentials: the image pull
// secrets of the workloads that use an image. The kube package implements
// it; the images packages never read the cluster themselves. Its signature
// holds only standard types, so an implementation needs no import from
// here.
type PullSecrets interface {
	// DockerConfigs returns the contents of the image pull secrets that
	// apply to repo: for every workload (live or in the manifests) whose
	// containers or init containers use an image from repo, the secrets
	// named in its pod spec's imagePullSecrets and in those of its service
	// account, in that order, without duplicates.
	//
	// repo is the repository as the caller passed it to the scanner, with
	// no tag or digest (e.g. "nginx", "ghcr.io/shop/cart"); compare it with
	// the workloads' images the same way, after stripping their tags.
	//
	// Each element is one secret's payload, as stored in the Secret:
	// Data[".dockerconfigjson"] for type kubernetes.io/dockerconfigjson
	// ({"auths":{"<host>":{...}}}), Data[".dockercfg"] for type
	// kubernetes.io/dockercfg (the legacy {"<host>":{...}}). Secrets of
	// other types, and missing secrets, are left out. The scanner uses the
	// first entry whose host matches the repository's registry.
	//
	// Return nil, nil when no secret applies; return an error only when the
	// cluster could not be read (the refresh then fails with it). It is
	// called once per refresh of a repository, so it should answer from
	// memory (an informer's cache), not from the API server.
	DockerConfigs(ctx context.Context, repo string) ([][]byte, error)
}

// dockerConfig is the part of a docker config file fluxd reads: the auths
// map, keyed by normalised registry host. Credential helpers (credsStore,
// credHelpers) are not run: a daemon has none installed.
type dockerConfig map[string]authn.AuthConfig

// parseDockerConfig reads a docker config: the modern form
// {"auths":{host:{...}}} or the legacy .dockercfg form {host:{...}}.
func parseDockerConfig(b []byte) (dockerConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	var auths map[string]authn.AuthConfig
	if raw, modern := top["auths"]; modern {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return nil, fmt.Errorf("auths: %w", err)
		}
	} else if err := json.Unmarshal(b, &auths); err != nil {
		return nil, fmt.Errorf("neither {\"auths\":{...}} nor a legacy .dockercfg: %w", err)
	}
	cfg := dockerConfig{}
	for k, v := range auths {
		h := normaliseHost(k)
		if _, dup := cfg[h]; !dup {
			cfg[h] = v
		}
	}
	return cfg, nil
}

// normaliseHost turns a docker config key ("https://index.docker.io/v1/",
// "docker.io", "ghcr.io") into the registry host go-containerregistry uses.
func normaliseHost(k string) string {
	k = strings.ToLower(strings.TrimSpace(k))
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	if i := strings.Index(k, "/"); i >= 0 {
		k = k[:i]
	}
	switch k {
	case "docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "index.docker.io"
	}
	return k
}

func (c dockerConfig) lookup(host string) (authn.AuthConfig, bool) {
	a, ok := c[normaliseHost(host)]
	return a, ok && (a.Username != "" || a.Password != "" || a.IdentityToken != "" || a.RegistryToken != "")
}

// configFile is a docker config file read again when it changes (a
// mounted Secret is updated in place).
type configFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	cfg     dockerConfig
}

func loadConfigFile(path string) (*configFile, error) {
	f := &configFile{path: path}
	if _, err := f.get(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *configFile) get() (dockerConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", f.path, err)
	}
	if f.cfg != nil && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.cfg, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", f.path, err)
	}
	cfg, err := parseDockerConfig(b)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", f.path, err)
	}
	f.cfg, f.modTime, f.size = cfg, st.ModTime(), st.Size()
	return cfg, nil
}

// credentials finds the credentials for a repository: the pull secrets
// first, then the docker config file, else anonymous. fp identifies them,
// so a change of credentials makes a new authenticated session.
func (c *Client) credentials(ctx context.Context, r Repo) (auth authn.Authenticator, fp string, err error) {
	var found *authn.AuthConfig
	if c.secrets != nil {
		payloads, err := c.secrets.DockerConfigs(ctx, r.Given)
		if err != nil {
			return nil, "", fmt.Errorf("%s: reading image pull secrets: %w", r.Given, err)
		}
		for i, p := range payloads {
			cfg, err := parseDockerConfig(p)
			if err != nil {
				c.log.Warn().Err(err).Str("repo", r.Given).Int("secret", i).Msg("ignoring an image pull secret that does not parse")
				continue
			}
			if a, ok := cfg.lookup(r.Host); ok {
				found = &a
				break
			}
		}
	}
	if found == nil && c.configFile != nil {
		cfg, err := c.configFile.get()
		if err != nil {
			return nil, "", err
		}
		if a, ok := cfg.lookup(r.Host); ok {
			found = &a
		}
	}
	if found == nil {
		return authn.Anonymous, "anonymous", nil
	}
	b, _ := json.Marshal(found)
	sum := sha256.Sum256(b)
	return authn.FromConfig(*found), hex.EncodeToString(sum[:]), nil
}
