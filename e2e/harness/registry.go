package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is the distribution registry server (Debian's docker-registry),
// serving plain http on a loopback port with filesystem storage.
type Registry struct {
	Dir  string
	Host string // 127.0.0.1:<port>, the registry part of image references
	proc *Process
}

// StartRegistry starts a registry under dir.
func StartRegistry(ctx context.Context, dir string) (*Registry, error) {
	bin, err := LookBin("docker-registry")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "storage"), host)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	p, err := StartProcess(dir, "registry", bin, "serve", cfgPath)
	if err != nil {
		return nil, err
	}
	r := &Registry{Dir: dir, Host: host, proc: p}
	err = WaitFor(ctx, p, 20*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// Stop stops the registry.
func (r *Registry) Stop() {
	if r != nil {
		r.proc.Stop(5 * time.Second)
	}
}

// PushRandomImage pushes a small random image as <Host>/<repo>:<tag> and
// returns its reference and digest.
func (r *Registry) PushRandomImage(ctx context.Context, repo, tag string) (ref, digest string, err error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", "", err
	}
	// A creation time, as real builds have, so tags order by it.
	if img, err = mutate.CreatedAt(img, v1.Time{Time: time.Now().UTC()}); err != nil {
		return "", "", err
	}
	ref = fmt.Sprintf("%s/%s:%s", r.Host, repo, tag)
	tagRef, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return "", "", err
	}
	if err := remote.Write(tagRef, img, remote.WithContext(ctx)); err != nil {
		return "", "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	return ref, d.String(), nil
}
