package kube_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
)

// workloadManifests returns a namespace with one workload of each kind:
// a Deployment "web" with replicas pods (annotated with policies and an
// antecedent) and one "idle" with none, a DaemonSet, a StatefulSet with
// no pods and a CronJob.
func workloadManifests(ns string, replicas int) resource.File {
	web := strings.Replace(deploymentYAML(ns, "web", replicas), "  namespace: "+ns+"\n",
		"  namespace: "+ns+"\n  labels: {tier: web}\n  annotations:\n    fluxcd.io/automated: \"true\"\n    fluxcd.io/antecedent: "+ns+":helmrelease/web\n", 1)
	web = strings.Replace(web, "      containers:\n", "      initContainers:\n      - name: init\n        image: busybox:1.36\n      containers:\n", 1)
	return file(ns+"/all.yaml", namespaceYAML(ns)+web+deploymentYAML(ns, "idle", 0)+fmt.Sprintf(`---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: registry.example.com/agent:2.0}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: %[1]s}
spec:
  replicas: 0
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: registry.example.com/db:3.1}]
`, ns)+cronJobYAML(ns))
}

// waitWorkloads polls list until ok accepts the result.
func waitWorkloads(t *testing.T, what string, list func() ([]kube.Workload, error), ok func([]kube.Workload) bool) []kube.Workload {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ws, err := list()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok(ws) {
			return ws
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not as wanted after 30s: %+v", what, ws)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func byID(ws []kube.Workload) map[string]kube.Workload {
	m := map[string]kube.Workload{}
	for _, w := range ws {
		m[w.ID.String()] = w
	}
	return m
}

func TestWorkloads(t *testing.T) {
	e := newEnv(t)
	other := e.ns + "-other"
	e.sync(kube.SyncOptions{}, workloadManifests(e.ns, 2), file("other.yaml", namespaceYAML(other)+deploymentYAML(other, "web", 0)))

	// kube-controller-manager makes the ReplicaSets and Pods, but with no
	// scheduler nor kubelet no Pod ever runs: "web" stays updating.
	ws := waitWorkloads(t, "Workloads", func() ([]kube.Workload, error) { return e.cluster.Workloads(e.ctx, e.ns) }, func(ws []kube.Workload) bool {
		m := byID(ws)
		return len(ws) == 5 && m[id(e.ns, "deployment", "web")].Rollout.Updated == 2 && m[id(e.ns, "deployment", "idle")].Status == kube.StatusReady
	})
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID.String())
	}
	wantIDs := []string{id(e.ns, "cronjob", "report"), id(e.ns, "daemonset", "agent"), id(e.ns, "deployment", "idle"), id(e.ns, "deployment", "web"), id(e.ns, "statefulset", "db")}
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Fatalf("IDs %v, want %v", ids, wantIDs)
	}
	m := byID(ws)
	web := m[id(e.ns, "deployment", "web")]
	t.Logf("web: %+v", web)
	if web.Status != kube.StatusUpdating || web.Message == "" {
		t.Errorf("web: status %q (%q), want updating with a message", web.Status, web.Message)
	}
	if want := (kube.Rollout{Desired: 2, Updated: 2}); !reflect.DeepEqual(web.Rollout, want) {
		t.Errorf("web rollout %+v, want %+v", web.Rollout, want)
	}
	wantContainers := []kube.Container{{Name: "main", Image: "registry.example.com/web:1.0"}, {Name: "init", Image: "busybox:1.36", Init: true}}
	if !reflect.DeepEqual(web.Containers, wantContainers) {
		t.Errorf("web containers %+v, want %+v", web.Containers, wantContainers)
	}
	if web.Labels["tier"] != "web" || web.Labels[kube.GCMarkLabel] != e.mark {
		t.Errorf("web labels %v", web.Labels)
	}
	if web.Annotations["fluxcd.io/automated"] != "true" {
		t.Errorf("web annotations %v", web.Annotations)
	}
	if got := web.Antecedent.String(); got != e.ns+":helmrelease/web" {
		t.Errorf("web antecedent %q", got)
	}

	for name, want := range map[string]struct {
		status     kube.WorkloadStatus
		containers []kube.Container
	}{
		"deployment/idle": {kube.StatusReady, []kube.Container{{Name: "main", Image: "registry.example.com/idle:1.0"}}},
		"cronjob/report":  {kube.StatusReady, []kube.Container{{Name: "report", Image: "registry.example.com/report:1.2"}}},
		"daemonset/agent": {"", []kube.Container{{Name: "agent", Image: "registry.example.com/agent:2.0"}}},
		"statefulset/db":  {"", []kube.Container{{Name: "db", Image: "registry.example.com/db:3.1"}}},
	} {
		w := m[e.ns+":"+name]
		t.Logf("%s: %s %q %+v", name, w.Status, w.Message, w.Rollout)
		if want.status != "" && w.Status != want.status {
			t.Errorf("%s: status %q (%s), want %q", name, w.Status, w.Message, want.status)
		}
		if w.Rollout.Messages != nil {
			t.Errorf("%s: rollout messages %v, want none", name, w.Rollout.Messages)
		}
		if !reflect.DeepEqual(w.Containers, want.containers) {
			t.Errorf("%s: containers %+v, want %+v", name, w.Containers, want.containers)
		}
	}

	// All namespaces holds both; a namespace filter only its own.
	all, err := e.cluster.Workloads(e.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	am := byID(all)
	if _, ok := am[id(other, "deployment", "web")]; !ok {
		t.Errorf("all namespaces: no %s", id(other, "deployment", "web"))
	}
	if _, ok := am[id(e.ns, "deployment", "web")]; !ok {
		t.Errorf("all namespaces: no %s", id(e.ns, "deployment", "web"))
	}
	ows, err := e.cluster.Workloads(e.ctx, other)
	if err != nil || len(ows) != 1 || ows[0].ID.String() != id(other, "deployment", "web") {
		t.Errorf("Workloads(%s) = %+v, %v; want its one deployment", other, ows, err)
	}

	// A namespace that does not exist is an error; an empty one is not.
	if _, err := e.cluster.Workloads(e.ctx, e.ns+"-missing"); !errors.Is(err, kube.ErrNamespaceNotFound) {
		t.Errorf("missing namespace: %v, want ErrNamespaceNotFound", err)
	} else {
		t.Logf("missing namespace: %v", err)
	}
	empty := e.ns + "-empty"
	e.sync(kube.SyncOptions{}, file("empty.yaml", namespaceYAML(empty)))
	if ws, err := e.cluster.Workloads(e.ctx, empty); err != nil || len(ws) != 0 {
		t.Errorf("empty namespace: %v, %v", ws, err)
	}
}

func TestWorkloadCache(t *testing.T) {
	e := newEnv(t)
	e.sync(kube.SyncOptions{}, workloadManifests(e.ns, 1))

	ctx, cancel := context.WithCancel(e.ctx)
	wc := e.cluster.NewWorkloadCache()
	done := make(chan error, 1)
	go func() { done <- wc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if err := wc.WaitReady(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := wc.Run(ctx); err == nil {
		t.Error("a second Run did not fail")
	}

	// The cache and a direct listing agree, once the controllers are
	// done writing status.
	direct := func() ([]kube.Workload, error) { return e.cluster.Workloads(e.ctx, e.ns) }
	var cached []kube.Workload
	waitWorkloads(t, "direct", direct, func(ws []kube.Workload) bool {
		var err error
		if cached, err = wc.Workloads(e.ctx, e.ns); err != nil {
			t.Fatal(err)
		}
		return len(ws) == 5 && byID(ws)[id(e.ns, "deployment", "web")].Rollout.Updated == 1 && reflect.DeepEqual(ws, cached)
	})
	all, err := wc.Workloads(e.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range cached {
		if !reflect.DeepEqual(byID(all)[w.ID.String()], w) {
			t.Errorf("%s differs between all namespaces and its own", w.ID)
		}
	}
	if _, err := wc.Workloads(e.ctx, e.ns+"-missing"); !errors.Is(err, kube.ErrNamespaceNotFound) {
		t.Errorf("missing namespace: %v, want ErrNamespaceNotFound", err)
	}

	// A new Deployment shows within a second; a deleted one goes.
	start := time.Now()
	e.sync(kube.SyncOptions{}, file("new.yaml", deploymentYAML(e.ns, "new", 0)))
	newID := id(e.ns, "deployment", "new")
	for {
		ws, err := wc.Workloads(e.ctx, e.ns)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byID(ws)[newID]; ok {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("%s not in the cache a second after it was applied", newID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("a new Deployment was in the cache %s after the sync started", time.Since(start))
	if err := e.dyn.Resource(deployGVR).Namespace(e.ns).Delete(e.ctx, "new", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWorkloads(t, "cache after delete", func() ([]kube.Workload, error) { return wc.Workloads(e.ctx, e.ns) }, func(ws []kube.Workload) bool {
		_, ok := byID(ws)[newID]
		return !ok
	})

	// Stopped, it is not ready and lists directly.
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil // for the cleanup
	if wc.Ready() {
		t.Error("ready after Run returned")
	}
	if ws, err := wc.Workloads(e.ctx, e.ns); err != nil || len(ws) != 5 {
		t.Errorf("stopped cache: %d workloads, %v", len(ws), err)
	}
}

// With no apiserver, Run keeps trying until its context ends, the cache
// is never ready, and Workloads says why.
func TestWorkloadCacheUnreachable(t *testing.T) {
	c, err := kube.New(&rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	wc := c.NewWorkloadCache()
	done := make(chan error, 1)
	go func() { done <- wc.Run(ctx) }()
	if _, err := wc.Workloads(ctx, ""); err == nil {
		t.Error("Workloads with no apiserver: no error")
	}
	if err := wc.WaitReady(ctx); err == nil || wc.Ready() {
		t.Errorf("ready with no apiserver (%v)", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v, want nil once its context is done", err)
	}
}
