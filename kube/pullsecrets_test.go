package kube_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
)

func dockerSecretYAML(ns, name, typ, key, payload string) string {
	return fmt.Sprintf("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\ntype: %s\ndata:\n  %s: %s\n",
		name, ns, typ, key, base64.StdEncoding.EncodeToString([]byte(payload)))
}

func payloads(t *testing.T, p *kube.PullSecrets, repo string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	bs, err := p.DockerConfigs(ctx, repo)
	if err != nil {
		t.Fatalf("DockerConfigs(%s): %v", repo, err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, string(b))
	}
	return out
}

func TestPullSecrets(t *testing.T) {
	e := newEnv(t)
	ns := e.ns
	const (
		podCfg    = `{"auths":{"registry.example.com":{"auth":"cG9kOnNlY3JldA=="}}}`
		saCfg     = `{"auths":{"registry.example.com":{"auth":"c2E6c2VjcmV0"}}}`
		legacyCfg = `{"registry.example.com":{"auth":"bGVnYWN5OnNlY3JldA=="}}`
		nextCfg   = `{"auths":{"ghcr.io":{"auth":"bmV4dDpzZWNyZXQ="}}}`
	)
	workload := fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: %[1]s}
spec:
  replicas: 0
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      serviceAccountName: builder
      imagePullSecrets: [{name: pod-creds}, {name: not-docker}, {name: missing}]
      initContainers: [{name: init, image: "registry.example.com/init:1"}]
      containers: [{name: app, image: "registry.example.com/app:1.0@sha256:%[2]s"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: %[1]s}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          imagePullSecrets: [{name: legacy-creds}, {name: pod-creds}]
          containers: [{name: report, image: registry.example.com/app:2.0}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: %[1]s}
imagePullSecrets: [{name: sa-creds}, {name: pod-creds}]
---
apiVersion: v1
kind: Secret
metadata: {name: not-docker, namespace: %[1]s}
stringData: {password: hunter2}
`, ns, strings.Repeat("ab", 32))
	e.sync(kube.SyncOptions{}, file(ns+"/all.yaml", namespaceYAML(ns)+workload+
		dockerSecretYAML(ns, "pod-creds", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", podCfg)+
		dockerSecretYAML(ns, "sa-creds", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", saCfg)+
		dockerSecretYAML(ns, "legacy-creds", "kubernetes.io/dockercfg", ".dockercfg", legacyCfg)+
		dockerSecretYAML(ns, "next-creds", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", nextCfg)))

	p := e.cluster.NewPullSecrets()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// Workloads in ID order: the CronJob's pod secrets (its service account
	// has none), then the Deployment's and its service account's; each
	// once; the Opaque and the missing one left out.
	got := payloads(t, p, "registry.example.com/app")
	if want := []string{legacyCfg, podCfg, saCfg}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("app: got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := payloads(t, p, "registry.example.com/init"); len(got) != 2 || got[0] != podCfg || got[1] != saCfg {
		t.Errorf("an init container's image: %q", got)
	}
	if got := payloads(t, p, "registry.example.com/other"); got != nil {
		t.Errorf("an image no workload uses: %q", got)
	}
	if err := p.Problem(); err != nil {
		t.Errorf("Problem: %v", err)
	}

	// A workload only in the manifests (not applied yet).
	objs, errs := kube.Parse([]resource.File{file("next.yaml", fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: next, namespace: %s}
spec:
  selector: {matchLabels: {app: next}}
  template:
    metadata: {labels: {app: next}}
    spec:
      imagePullSecrets: [{name: next-creds}]
      containers: [{name: next, image: ghcr.io/shop/next:0.1}]
`, ns))})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p.SetManifests(objs)
	if got := payloads(t, p, "ghcr.io/shop/next"); len(got) != 1 || got[0] != nextCfg {
		t.Errorf("a workload in the manifests: %q", got)
	}

	// A change of the service account is seen.
	patch := []byte(`{"imagePullSecrets":[{"name":"next-creds"}]}`)
	serviceAccounts := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	if _, err := e.dyn.Resource(serviceAccounts).Namespace(ns).Patch(e.ctx, "builder", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := payloads(t, p, "registry.example.com/init")
		if len(got) == 2 && got[1] == nextCfg {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service account's new secret is not used: %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Without permission to read Secrets (and the rest), pull secrets are not
// used, Problem says why, and DockerConfigs does not hold scans up.
func TestPullSecretsForbidden(t *testing.T) {
	cfg := restConfig(t)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "fluxd-test-nobody"}
	c, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := c.NewPullSecrets()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	start := time.Now()
	if got := payloads(t, p, "registry.example.com/app"); got != nil {
		t.Errorf("got %q", got)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("DockerConfigs took %s", took)
	}
	if err := p.Problem(); err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "secrets") {
		t.Errorf("Problem: %v", err)
	}
}
