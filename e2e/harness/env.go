package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Env is the whole local environment: control plane, git server, registry
// and memcached.
type Env struct {
	Dir       string
	Kube      *ControlPlane
	Git       *GitServer
	Registry  *Registry
	Memcached *Memcached
}

// StartEnv starts every part concurrently under dir (created if needed). If
// any part fails, the ones that started are stopped and the errors of all
// the failed parts are returned together.
func StartEnv(ctx context.Context, dir string) (*Env, error) {
	binDir, err := KubeBinDir()
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := func(name string, f func(dir string) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := filepath.Join(dir, name)
			err := os.MkdirAll(d, 0o755)
			if err == nil {
				err = f(d)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("start %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	start("kube", func(d string) (err error) { e.Kube, err = StartControlPlane(ctx, binDir, d); return })
	start("git", func(d string) (err error) { e.Git, err = StartGitServer(ctx, d); return })
	start("registry", func(d string) (err error) { e.Registry, err = StartRegistry(ctx, d); return })
	start("memcached", func(d string) (err error) { e.Memcached, err = StartMemcached(ctx, d); return })
	wg.Wait()
	if len(errs) > 0 {
		e.Stop()
		return nil, errors.Join(errs...)
	}
	return e, nil
}

// Stop stops every part that was started. It is safe to call more than once.
func (e *Env) Stop() {
	if e == nil {
		return
	}
	if e.Kube != nil {
		e.Kube.Stop()
	}
	if e.Git != nil {
		e.Git.Stop()
	}
	e.Registry.Stop()
	e.Memcached.Stop()
}
