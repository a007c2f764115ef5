package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxd/fluxd/server/api"
)

func deploymentYAML(ns, name, image string, replicas int, annotations ...string) string {
	var ann strings.Builder
	if len(annotations) > 0 {
		ann.WriteString("  annotations:\n")
		for i := 0; i+1 < len(annotations); i += 2 {
			fmt.Fprintf(&ann, "    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[2]s
  namespace: %[1]s
  labels:
    app: %[2]s
%[5]sspec:
  replicas: %[4]d
  selector:
    matchLabels:
      app: %[2]s
  template:
    metadata:
      labels:
        app: %[2]s
    spec:
      containers:
        - name: %[2]s
          image: %[3]s
          ports:
            - containerPort: 8080
`, ns, name, image, replicas, ann.String())
}

func TestListWorkloadsAndSave(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("workloads", map[string]string{
		"ns.yaml": namespaceYAML(ns),
		"podinfo.yaml": deploymentYAML(ns, "podinfo", "ghcr.io/example/podinfo:1.0.0", 2,
			"fluxcd.io/automated", "true", "fluxcd.io/tag.podinfo", "semver:~1.0"),
		"cart.yaml": deploymentYAML(ns, "cart", "ghcr.io/example/cart:2.3.0", 0,
			"flux.weave.works/locked", "true", "flux.weave.works/locked_msg", "freeze", "flux.weave.works/locked_user", "Kim"),
		"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n  namespace: " + ns + "\nspec:\n  selector:\n    app: podinfo\n  ports:\n    - port: 80\n      targetPort: 8080\n",
	})
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns)...)
	waitTag(t, w, ns, c1)
	// A workload made by hand, not in git.
	if _, err := env.Kube.Kubectl(context.Background(), "create", "deployment", "byhand", "-n", ns, "--image=nginx:1.27", "--replicas=0"); err != nil {
		t.Fatal(err)
	}

	var ws []api.ControllerStatus
	waitFor(t, syncWait, "three workloads", func() (bool, string) {
		out, stderr, code := fluxctl(t, d, "", "list-workloads", "-n", ns, "-o", "json")
		if code != 0 {
			return false, stderr
		}
		ws = nil
		if err := json.Unmarshal([]byte(out), &ws); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return len(ws) == 3, out
	})
	byName := map[string]api.ControllerStatus{}
	for _, w := range ws {
		byName[w.ID.Name] = w
	}
	p := byName["podinfo"]
	if p.ID.String() != ns+":deployment/podinfo" || !p.Automated || p.Locked || p.Ignore || p.ReadOnly != "" ||
		p.Policies["tag.podinfo"] != "semver:~1.0" || p.Labels["app"] != "podinfo" ||
		len(p.Containers) != 1 || p.Containers[0].Name != "podinfo" || string(p.Containers[0].Current.ID) != "ghcr.io/example/podinfo:1.0.0" ||
		p.Status != api.StatusUpdating || p.Rollout.Desired != 2 {
		t.Errorf("podinfo: %+v", p)
	}
	c := byName["cart"]
	if !c.Locked || c.Automated || c.Policies["locked_msg"] != "freeze" || c.Policies["locked_user"] != "Kim" || c.Status != api.StatusReady {
		t.Errorf("cart: %+v", c)
	}
	if b := byName["byhand"]; b.ReadOnly != api.ReadOnlyMissing || b.Policies != nil {
		t.Errorf("byhand: %+v", b)
	}
	out, _, _ := fluxctl(t, d, "", "list-workloads", "-n", ns)
	for _, want := range []string{"WORKLOAD", ns + ":deployment/podinfo", "ghcr.io/example/podinfo:1.0.0", "automated", "tag.podinfo=semver:~1.0", "locked"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if _, stderr, code := fluxctl(t, d, "", "list-workloads", "-n", "no-such-namespace"); code == 0 || !strings.Contains(stderr, "no-such-namespace") {
		t.Errorf("a missing namespace: exit %d, %s", code, stderr)
	}
	for _, w := range ws {
		for _, c := range w.Containers {
			if c.RepoImage != "" {
				t.Errorf("%s %s: RepoImage %q while the cluster matches git", w.ID, c.Name, c.RepoImage)
			}
		}
	}

	// An image changed by hand: the live one, and git's beside it, until
	// the next full re-sync (5m) puts git's back.
	if _, err := env.Kube.Kubectl(context.Background(), "set", "image", "deployment/cart", "-n", ns, "cart=ghcr.io/example/cart:2.4.0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncWait, "git's image beside the live one", func() (bool, string) {
		out, stderr, code := fluxctl(t, d, "", "list-workloads", "-n", ns, "-o", "json")
		if code != 0 {
			return false, stderr
		}
		var ws []api.ControllerStatus
		if err := json.Unmarshal([]byte(out), &ws); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, w := range ws {
			if w.ID.Name != "cart" || len(w.Containers) != 1 {
				continue
			}
			c := w.Containers[0]
			return c.Current.ID == "ghcr.io/example/cart:2.4.0" && c.RepoImage == "ghcr.io/example/cart:2.3.0", out
		}
		return false, out
	})
	if out, _, _ := fluxctl(t, d, "", "list-workloads", "-n", ns); !strings.Contains(out, "ghcr.io/example/cart:2.4.0 (repo: ghcr.io/example/cart:2.3.0)") {
		t.Errorf("table lacks git's image beside the live one:\n%s", out)
	}

	// save, then re-apply what it wrote into an empty namespace.
	dir := t.TempDir()
	if _, stderr, code := fluxctl(t, d, "", "save", "--out", dir); code != 0 {
		t.Fatalf("save: %s", stderr)
	}
	saved, err := os.ReadFile(filepath.Join(dir, ns, "podinfo-deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, noise := range []string{"status:", "managedFields", "resourceVersion", "uid:", "creationTimestamp", "fluxd.io/sync-checksum"} {
		if strings.Contains(string(saved), noise) {
			t.Errorf("saved YAML has %s:\n%s", noise, saved)
		}
	}
	copyNS := ns + "-copy"
	if _, err := env.Kube.Kubectl(context.Background(), "create", "namespace", copyNS); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"podinfo-deployment.yaml", "cart-deployment.yaml", "podinfo-service.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, ns, f))
		if err != nil {
			t.Fatal(err)
		}
		moved := filepath.Join(t.TempDir(), f)
		if err := os.WriteFile(moved, []byte(strings.ReplaceAll(string(b), "namespace: "+ns, "namespace: "+copyNS)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := env.Kube.Kubectl(context.Background(), "apply", "--server-side", "-f", moved); err != nil {
			t.Fatalf("re-apply %s: %v\n%s", f, err, out)
		}
	}
	if out, err := env.Kube.Kubectl(context.Background(), "get", "deployment,service", "-n", copyNS, "-o", "name"); err != nil || strings.Count(string(out), "\n") != 3 {
		t.Fatalf("objects in the copy: %v\n%s", err, out)
	}
}

// fluxd without --git-ssh-key-file makes a deploy key in a Secret; once it
// is authorized on the git server fluxd syncs; a regenerated key replaces
// it, and fluxd uses the new one.
func TestIdentityAndRegenerate(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	if _, err := env.Kube.Kubectl(context.Background(), "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	c1 := w.commit("v1", map[string]string{"cm.yaml": configMapYAML(ns, "cm", map[string]string{"v": "1"})})
	var args []string
	for _, a := range fluxdArgs(w, ns, "--k8s-secret-namespace", ns, "--k8s-secret-name", "deploy-key") {
		args = append(args, a)
	}
	for i := 0; i < len(args); i++ {
		if args[i] == "--git-ssh-key-file" {
			args = append(args[:i], args[i+2:]...)
			break
		}
	}
	d := startFluxd(t, "fluxd", args...)
	var key string
	waitFor(t, syncWait, "fluxctl identity", func() (bool, string) {
		out, stderr, code := fluxctl(t, d, "", "identity")
		key = strings.TrimSpace(out)
		return code == 0 && strings.HasPrefix(key, "ssh-ed25519 "), stderr
	})
	if out, err := env.Kube.Kubectl(context.Background(), "get", "secret", "deploy-key", "-n", ns, "-o", "jsonpath={.data.identity\\.pub}"); err != nil || len(out) == 0 {
		t.Fatalf("the key is not in the Secret: %v %s", err, out)
	}
	fp, _, _ := fluxctl(t, d, "", "identity", "-l", "-v")
	if !strings.HasPrefix(fp, "MD5:") || !strings.Contains(fp, "+--[ED25519 256]--+") {
		t.Errorf("identity -l -v:\n%s", fp)
	}
	if err := env.Git.AuthorizeKey(key); err != nil {
		t.Fatal(err)
	}
	waitTag(t, w, ns, c1)

	out, stderr, code := fluxctl(t, d, "", "identity", "--regenerate")
	newKey := strings.TrimSpace(out)
	if code != 0 || newKey == key || !strings.HasPrefix(newKey, "ssh-ed25519 ") {
		t.Fatalf("regenerate: exit %d, %q, %s", code, newKey, stderr)
	}
	if again, _, _ := fluxctl(t, d, "", "identity"); strings.TrimSpace(again) != newKey {
		t.Fatalf("identity after regenerate: %q, want %q", again, newKey)
	}
	if err := env.Git.AuthorizeKey(newKey); err != nil {
		t.Fatal(err)
	}
	c2 := w.commit("v2", map[string]string{"cm.yaml": configMapYAML(ns, "cm", map[string]string{"v": "2"})})
	waitTag(t, w, ns, c2)
	waitData(t, ns, "cm", "v", "2")
}
