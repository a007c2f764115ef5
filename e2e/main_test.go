// Package e2e runs fluxd and fluxctl against real parts: etcd, kube-apiserver
// and kube-controller-manager, a git server over ssh, the distribution
// registry and memcached, all started once per test binary by TestMain.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/fluxd/fluxd/e2e/harness"
)

// env is shared by every test in this package. Tests that change cluster
// state work in namespaces of their own.
var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fluxd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	start := time.Now()
	env, err = harness.StartEnv(ctx, dir)
	cancel()
	if err != nil {
		// Never skip: a missing part is a failure.
		fmt.Fprintf(os.Stderr, "e2e: the test environment did not start: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: environment up in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), dir)
	code := m.Run()
	env.Stop()
	if code == 0 && os.Getenv("FLUXD_E2E_KEEP") == "" {
		os.RemoveAll(dir)
	}
	return code
}
