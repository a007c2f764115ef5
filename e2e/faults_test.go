package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fluxd/fluxd/e2e/harness"
)

// proxied gives fluxd the git server and the apiserver through proxies
// the test can cut, with a known_hosts file and a kubeconfig for them.
type proxied struct {
	git, kube *harness.Proxy
	args      []string
}

func newProxied(t *testing.T, w *workRepo, cluster string) *proxied {
	t.Helper()
	gp, err := harness.StartProxy("127.0.0.1:" + strconv.Itoa(env.Git.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gp.Stop)
	host := strings.TrimPrefix(env.Kube.Host, "https://")
	kp, err := harness.StartProxy(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kp.Stop)

	dir := t.TempDir()
	known := strings.ReplaceAll(env.Git.KnownHosts, "]:"+strconv.Itoa(env.Git.Port)+" ", "]:"+strconv.Itoa(gp.Port)+" ")
	knownPath := filepath.Join(dir, "known_hosts")
	kc, err := os.ReadFile(env.Kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(knownPath, []byte(known+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kcPath, []byte(strings.ReplaceAll(string(kc), host, kp.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	gitURL := strings.Replace(w.remote.SSHURL, ":"+strconv.Itoa(env.Git.Port)+"/", ":"+strconv.Itoa(gp.Port)+"/", 1)
	return &proxied{git: gp, kube: kp, args: []string{
		"--kubeconfig", kcPath,
		"--git-url", gitURL,
		"--git-branch", "main",
		"--git-ssh-key-file", env.Git.ClientKey.PrivatePath,
		"--git-known-hosts-file", knownPath,
		"--git-poll-interval", "1s",
		"--sync-interval", "1h",
		"--cluster-name", cluster,
		"--log-format", "console",
	}}
}

// An unreachable apiserver and then an unreachable git server: fluxd logs
// the fault, changes nothing in git, and catches up by itself once the
// fault clears.
func TestSyncRecoversFromOutages(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("v1", map[string]string{"all.yaml": namespaceYAML(ns) + "---\n" + configMapYAML(ns, "cm", map[string]string{"v": "1"})})
	p := newProxied(t, w, ns)
	d := startFluxd(t, "fluxd", p.args...)
	waitTag(t, w, ns, c1)

	p.kube.Cut()
	c2 := w.commit("v2", map[string]string{"all.yaml": namespaceYAML(ns) + "---\n" + configMapYAML(ns, "cm", map[string]string{"v": "2"})})
	waitFor(t, syncWait, "fluxd to report the unreachable apiserver", func() (bool, string) {
		return strings.Contains(d.proc.Tail(1<<20), "sync failed"), "not yet"
	})
	if got := w.syncTag(ns); got != c1 {
		t.Fatalf("sync tag moved to %s while the apiserver was unreachable", got)
	}
	if _, ok := w.syncRecord(ns, c2); ok {
		t.Fatal("a sync record was written for a sync that could not reach the apiserver")
	}
	if err := p.kube.Restore(); err != nil {
		t.Fatal(err)
	}
	waitTag(t, w, ns, c2)
	waitData(t, ns, "cm", "v", "2")

	p.git.Cut()
	c3 := w.commit("v3", map[string]string{"all.yaml": namespaceYAML(ns) + "---\n" + configMapYAML(ns, "cm", map[string]string{"v": "3"})})
	waitFor(t, syncWait, "fluxd to report the unreachable git server", func() (bool, string) {
		return strings.Contains(d.proc.Tail(1<<20), "git fetch failed"), "not yet"
	})
	if v := configMapData(t, ns, "cm")["v"]; v != "2" {
		t.Fatalf("cm v=%s while git was unreachable", v)
	}
	if err := p.git.Restore(); err != nil {
		t.Fatal(err)
	}
	waitTag(t, w, ns, c3)
	waitData(t, ns, "cm", "v", "3")
}

// The git server refuses the push of the sync tag and notes: the cluster is
// still synced, the tag does not move, and the push goes through once the
// server accepts it again.
func TestSyncPushRejectedThenRecovers(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	deny := filepath.Join(w.remote.Path, "deny-flux")
	hook := `#!/bin/sh
while read old new ref; do
  case "$ref" in
    refs/tags/flux-sync/*|refs/notes/*)
      if [ -f "` + deny + `" ]; then echo "sync refs are frozen by the test" >&2; exit 1; fi ;;
  esac
done
exit 0
`
	if err := os.WriteFile(filepath.Join(w.remote.Path, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(deny, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c1 := w.commit("v1", map[string]string{"all.yaml": namespaceYAML(ns) + "---\n" + configMapYAML(ns, "cm", map[string]string{"v": "1"})})
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns)...)
	waitData(t, ns, "cm", "v", "1")
	waitFor(t, syncWait, "fluxd to report the refused push", func() (bool, string) {
		return strings.Contains(d.proc.Tail(1<<20), "push of the sync record failed"), "not yet"
	})
	if got := w.syncTag(ns); got != "" {
		t.Fatalf("the tag is on the remote although its push was refused: %s", got)
	}
	if err := os.Remove(deny); err != nil {
		t.Fatal(err)
	}
	waitTag(t, w, ns, c1)
	if rec, ok := w.syncRecord(ns, c1); !ok || rec.Commit != c1 {
		t.Fatalf("sync record after the push went through: %+v %v", rec, ok)
	}
}
