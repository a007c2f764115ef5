package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/fluxd/fluxd/e2e/harness"
	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
)

// The tests in this file run against a real etcd, kube-apiserver and
// kube-controller-manager from $FLUXD_KUBEBIN, started once, on first use,
// and stopped by TestMain. Each test works in namespaces of its own and
// under a GC mark of its own, so pruning in one test never sees another's
// objects.

var (
	cpOnce sync.Once
	cp     *harness.ControlPlane
	cpErr  error
	cpDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		cp.Stop()
	}
	if cpDir != "" && code == 0 {
		os.RemoveAll(cpDir)
	} else if cpDir != "" {
		fmt.Fprintf(os.Stderr, "control plane logs kept in %s\n", cpDir)
	}
	os.Exit(code)
}

// controlPlane starts the shared control plane. Without FLUXD_KUBEBIN (set
// by `make test`) the test fails, saying how to run it: it is never skipped.
func controlPlane(tb testing.TB) *harness.ControlPlane {
	tb.Helper()
	cpOnce.Do(func() {
		var bin string
		if bin, cpErr = harness.KubeBinDir(); cpErr != nil {
			return
		}
		if cpDir, cpErr = os.MkdirTemp("", "fluxd-kube-test-"); cpErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cp, cpErr = harness.StartControlPlane(ctx, bin, cpDir)
	})
	if cpErr != nil {
		tb.Fatalf("control plane: %v", cpErr)
	}
	return cp
}

// restConfig is the control plane's config with client-go's default rate
// limit, so that kube.New chooses its own.
func restConfig(tb testing.TB) *rest.Config {
	cfg := controlPlane(tb).RESTConfig()
	cfg.QPS, cfg.Burst = 0, 0
	return cfg
}

type env struct {
	t       *testing.T
	ctx     context.Context
	cluster *kube.Cluster
	dyn     dynamic.Interface
	ns      string // a namespace name unique to the test (not created)
	mark    string
}

var nameRE = regexp.MustCompile(`[^a-z0-9]+`)

func newEnv(t *testing.T, opts ...kube.Option) *env {
	t.Helper()
	cfg := restConfig(t)
	c, err := kube.New(cfg, append([]kube.Option{kube.WithCRDWaitTimeout(20 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	ns := strings.Trim(nameRE.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(ns) > 50 {
		ns = ns[:50]
	}
	ns = fmt.Sprintf("%s-%d", ns, time.Now().UnixNano()%100000)
	return &env{t: t, ctx: ctx, cluster: c, dyn: dyn, ns: ns, mark: kube.GCMark("test", "file:///"+ns, "main", nil)}
}

func (e *env) sync(opts kube.SyncOptions, files ...resource.File) resource.ChangeSet {
	e.t.Helper()
	if opts.GCMark == "" {
		opts.GCMark = e.mark
	}
	cs, err := e.cluster.Sync(e.ctx, files, opts)
	if err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return cs
}

// actions maps each change's ID to "action" or "action: error".
func actions(cs resource.ChangeSet) map[string]string {
	out := map[string]string{}
	for _, c := range cs.Changes {
		s := string(c.Action)
		if c.Error != "" {
			s += ": " + c.Error
		}
		out[c.ID.String()] = s
	}
	return out
}

// expect checks the actions of cs; want maps an ID to an action, or to
// "action: text" where text must appear in the error.
func (e *env) expect(cs resource.ChangeSet, want map[string]string) {
	e.t.Helper()
	got := actions(cs)
	for id, w := range want {
		g, ok := got[id]
		action, text, _ := strings.Cut(w, ": ")
		switch {
		case !ok:
			e.t.Errorf("%s: no change, want %s (changes: %v)", id, w, got)
		case !strings.HasPrefix(g, action) || (text != "" && !strings.Contains(g, text)):
			e.t.Errorf("%s: %s, want %s", id, g, w)
		case text == "" && g != action:
			e.t.Errorf("%s: %s, want %s with no error", id, g, action)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			e.t.Errorf("%s: unexpected change %s", id, g)
		}
	}
}

var (
	nsGVR     = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	svcGVR    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

func (e *env) get(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	e.t.Helper()
	u, err := e.dyn.Resource(gvr).Namespace(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return u
}

func (e *env) gone(gvr schema.GroupVersionResource, ns, name string) bool {
	e.t.Helper()
	u, err := e.dyn.Resource(gvr).Namespace(ns).Get(e.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true
	}
	if err != nil {
		e.t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return u.GetDeletionTimestamp() != nil
}

func file(path, data string) resource.File { return resource.File{Path: path, Data: []byte(data)} }

func namespaceYAML(ns string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)
}

func configMapYAML(ns, name, value string, annotations ...string) string {
	ann := ""
	if len(annotations) > 0 {
		ann = "  annotations:\n"
		for i := 0; i+1 < len(annotations); i += 2 {
			ann += fmt.Sprintf("    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	return fmt.Sprintf("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n%sdata:\n  key: %q\n", name, ns, ann, value)
}

// cronJobYAML is a multi-document tail: the CronJob "report" in ns, which
// runs registry.example.com/report:1.2 nightly.
func cronJobYAML(ns string) string {
	return fmt.Sprintf(`---
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
          containers: [{name: report, image: registry.example.com/report:1.2}]
`, ns)
}

func deploymentYAML(ns, name string, replicas int) string {
	return fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  replicas: %[3]d
  selector:
    matchLabels: {app: %[2]s}
  template:
    metadata:
      labels: {app: %[2]s}
    spec:
      containers:
      - name: main
        image: registry.example.com/%[2]s:1.0
        ports:
        - containerPort: 8080
`, ns, name, replicas)
}

func serviceYAML(ns, name string) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  selector: {app: %[2]s}
  ports:
  - port: 80
    targetPort: 8080
`, ns, name)
}

func id(ns, kind, name string) string { return resource.MakeID(ns, kind, name).String() }

func TestSyncCreatesThenNoOp(t *testing.T) {
	e := newEnv(t)
	files := []resource.File{
		file("ns.yaml", namespaceYAML(e.ns)),
		file("app.yaml", deploymentYAML(e.ns, "web", 1)+serviceYAML(e.ns, "web")+configMapYAML(e.ns, "config", "v1")),
	}
	objs := []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{deployGVR, "web"}, {svcGVR, "web"}, {cmGVR, "config"}}
	all := func(a string) map[string]string {
		return map[string]string{
			id("", "namespace", e.ns):       a,
			id(e.ns, "deployment", "web"):   a,
			id(e.ns, "service", "web"):      a,
			id(e.ns, "configmap", "config"): a,
		}
	}
	cs := e.sync(kube.SyncOptions{}, files...)
	e.expect(cs, all("created"))
	if !cs.OK() {
		t.Fatalf("failures: %v", cs.Failures())
	}

	// No write by fluxd shows as an unchanged managedFields entry of its
	// field manager; the resourceVersion of the Deployment moves anyway,
	// when its controller writes the status.
	rvs := map[string]string{}
	entries := map[string]string{}
	for _, o := range objs {
		u := e.get(o.gvr, e.ns, o.name)
		if got := u.GetLabels()[kube.GCMarkLabel]; got != e.mark {
			t.Errorf("%s %s: label %s = %q, want %q", o.gvr.Resource, o.name, kube.GCMarkLabel, got, e.mark)
		}
		if !strings.HasPrefix(u.GetAnnotations()[kube.ChecksumAnnotation], "sha256:") {
			t.Errorf("%s %s: no %s annotation: %v", o.gvr.Resource, o.name, kube.ChecksumAnnotation, u.GetAnnotations())
		}
		rvs[o.gvr.Resource] = u.GetResourceVersion()
		entries[o.gvr.Resource] = fluxdEntry(u)
	}

	// A re-sync writes nothing; a forced one writes nothing either.
	time.Sleep(1100 * time.Millisecond) // a write would show a later managedFields time
	e.expect(e.sync(kube.SyncOptions{}, files...), all("unchanged"))
	e.expect(e.sync(kube.SyncOptions{Force: true}, files...), all("unchanged"))
	for _, o := range objs {
		u := e.get(o.gvr, e.ns, o.name)
		if got := fluxdEntry(u); got != entries[o.gvr.Resource] || got == "" {
			t.Errorf("%s %s: fluxd's managedFields entry changed in a no-op sync:\n%s\n%s", o.gvr.Resource, o.name, entries[o.gvr.Resource], got)
		}
		if rv := u.GetResourceVersion(); rv != rvs[o.gvr.Resource] && o.gvr != deployGVR {
			t.Errorf("%s %s: resourceVersion moved from %s to %s in a no-op sync", o.gvr.Resource, o.name, rvs[o.gvr.Resource], rv)
		}
	}

	// A changed field is configured, the rest untouched.
	files[1] = file("app.yaml", deploymentYAML(e.ns, "web", 1)+serviceYAML(e.ns, "web")+configMapYAML(e.ns, "config", "v2"))
	want := all("unchanged")
	want[id(e.ns, "configmap", "config")] = "configured"
	e.expect(e.sync(kube.SyncOptions{}, files...), want)
	if v, _, _ := unstructured.NestedString(e.get(cmGVR, e.ns, "config").Object, "data", "key"); v != "v2" {
		t.Errorf("configmap data.key = %q, want v2", v)
	}
	if got := fluxdEntry(e.get(deployGVR, e.ns, "web")); got != entries["deployments"] {
		t.Errorf("deployment written when only the configmap changed:\n%s\n%s", entries["deployments"], got)
	}
}

// fluxdEntry is the managedFields entry of fluxd's Apply, as JSON.
func fluxdEntry(u *unstructured.Unstructured) string {
	for _, f := range u.GetManagedFields() {
		if f.Manager == kube.DefaultFieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			b, _ := json.Marshal(f)
			return string(b)
		}
	}
	return ""
}

func TestSyncForceRevertsDrift(t *testing.T) {
	e := newEnv(t)
	files := []resource.File{file("all.yaml", namespaceYAML(e.ns)+deploymentYAML(e.ns, "web", 2))}
	e.sync(kube.SyncOptions{}, files...)

	// Someone scales the Deployment by hand.
	patch := []byte(`{"spec":{"replicas":5}}`)
	if _, err := e.dyn.Resource(deployGVR).Namespace(e.ns).Patch(e.ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	replicas := func() int64 {
		v, _, _ := unstructured.NestedInt64(e.get(deployGVR, e.ns, "web").Object, "spec", "replicas")
		return v
	}

	// An ordinary sync sees an unchanged manifest and writes nothing.
	e.expect(e.sync(kube.SyncOptions{}, files...), map[string]string{
		id("", "namespace", e.ns):     "unchanged",
		id(e.ns, "deployment", "web"): "unchanged",
	})
	if r := replicas(); r != 5 {
		t.Fatalf("replicas = %d after an ordinary sync, want the hand-made 5", r)
	}

	// The forced pass reverts the drift.
	e.expect(e.sync(kube.SyncOptions{Force: true}, files...), map[string]string{
		id("", "namespace", e.ns):     "unchanged",
		id(e.ns, "deployment", "web"): "configured",
	})
	if r := replicas(); r != 2 {
		t.Errorf("replicas = %d after a forced sync, want 2 from git", r)
	}
}

func TestSyncCRDAndCustomResource(t *testing.T) {
	e := newEnv(t)
	group := e.ns + ".example.com"
	crd := fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.%[1]s
spec:
  group: %[1]s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`, group)
	cr := fmt.Sprintf(`apiVersion: %s/v1
kind: Widget
metadata:
  name: w1
  namespace: %s
spec:
  size: 3
`, group, e.ns)
	// The custom resource comes first in the files; the CRD still goes first.
	files := []resource.File{file("a-widget.yaml", cr), file("b-crd.yaml", crd), file("c-ns.yaml", namespaceYAML(e.ns))}
	cs := e.sync(kube.SyncOptions{}, files...)
	e.expect(cs, map[string]string{
		id(e.ns, "widget", "w1"):                             "created",
		id("", "customresourcedefinition", "widgets."+group): "created",
		id("", "namespace", e.ns):                            "created",
	})
	widgets := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}
	if size, _, _ := unstructured.NestedInt64(e.get(widgets, e.ns, "w1").Object, "spec", "size"); size != 3 {
		t.Errorf("widget size = %d, want 3", size)
	}
	e.expect(e.sync(kube.SyncOptions{}, files...), map[string]string{
		id(e.ns, "widget", "w1"):                             "unchanged",
		id("", "customresourcedefinition", "widgets."+group): "unchanged",
		id("", "namespace", e.ns):                            "unchanged",
	})
}

func TestSyncFailuresDoNotStopOthers(t *testing.T) {
	e := newEnv(t)
	unknown := fmt.Sprintf("apiVersion: nothing.example.com/v1\nkind: Gizmo\nmetadata:\n  name: g\n  namespace: %s\n", e.ns)
	invalid := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
  namespace: %s
spec:
  replicas: -1
  selector:
    matchLabels: {app: bad}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers:
      - name: main
        image: example
`, e.ns)
	files := []resource.File{
		file("ns.yaml", namespaceYAML(e.ns)),
		file("gizmo.yaml", unknown),
		file("bad.yaml", invalid),
		file("good.yaml", configMapYAML(e.ns, "good", "v")),
	}
	cs := e.sync(kube.SyncOptions{}, files...)
	e.expect(cs, map[string]string{
		id("", "namespace", e.ns):     "created",
		id(e.ns, "gizmo", "g"):        "failed: gizmo.yaml: unknown kind Gizmo (apiVersion nothing.example.com/v1)",
		id(e.ns, "deployment", "bad"): "failed: Invalid value",
		id(e.ns, "configmap", "good"): "created",
	})
	if f := cs.Failures(); len(f) != 2 {
		t.Errorf("failures = %v, want 2", f)
	}
	t.Logf("apiserver rejection: %s", actions(cs)[id(e.ns, "deployment", "bad")])
}

func TestPrune(t *testing.T) {
	e := newEnv(t)
	other := e.ns + "-x"
	files := []resource.File{
		file("ns.yaml", namespaceYAML(e.ns)+"---\n"+namespaceYAML(other)),
		file("keep.yaml", configMapYAML(e.ns, "keep", "v")),
		file("drop.yaml", configMapYAML(e.ns, "drop", "v")+deploymentYAML(e.ns, "drop", 1)+configMapYAML(other, "inside", "v")),
	}
	prune := kube.SyncOptions{Prune: true}
	e.sync(prune, files...)

	// Someone else's object carrying our mark (copied label, another field
	// manager) is not ours to delete.
	foreign := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]interface{}{"name": "foreign", "namespace": e.ns, "labels": map[string]interface{}{kube.GCMarkLabel: e.mark}},
	}}
	if _, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Create(e.ctx, foreign, metav1.CreateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}

	// A parse error blocks pruning.
	broken := []resource.File{files[0], files[1], file("broken.yaml", "apiVersion: v1\nkind: [\n")}
	cs := e.sync(prune, broken...)
	if cs.PruneBlocked == "" || len(cs.ParseErrors) != 1 {
		t.Fatalf("PruneBlocked = %q, parse errors %v; want pruning blocked by one parse error", cs.PruneBlocked, cs.ParseErrors)
	}
	e.expect(cs, map[string]string{
		id("", "namespace", e.ns):        "unchanged",
		id("", "namespace", other):       "unchanged",
		id(e.ns, "configmap", "keep"):    "unchanged",
		id(e.ns, "configmap", "drop"):    "skipped: not pruned",
		id(e.ns, "deployment", "drop"):   "skipped: not pruned",
		id(other, "configmap", "inside"): "skipped: not pruned",
	})
	if e.gone(cmGVR, e.ns, "drop") {
		t.Fatal("configmap drop pruned although a file failed to parse")
	}

	// Without the error, what left git goes; namespaces last.
	cs = e.sync(prune, files[0:2]...)
	if cs.PruneBlocked != "" {
		t.Errorf("PruneBlocked = %q", cs.PruneBlocked)
	}
	e.expect(cs, map[string]string{
		id("", "namespace", e.ns):        "unchanged",
		id("", "namespace", other):       "unchanged",
		id(e.ns, "configmap", "keep"):    "unchanged",
		id(e.ns, "configmap", "drop"):    "pruned",
		id(e.ns, "deployment", "drop"):   "pruned",
		id(other, "configmap", "inside"): "pruned",
	})
	for _, o := range []struct {
		gvr      schema.GroupVersionResource
		ns, name string
	}{{cmGVR, e.ns, "drop"}, {deployGVR, e.ns, "drop"}, {cmGVR, other, "inside"}} {
		if !e.gone(o.gvr, o.ns, o.name) {
			t.Errorf("%s %s/%s not pruned", o.gvr.Resource, o.ns, o.name)
		}
	}
	if e.gone(cmGVR, e.ns, "foreign") {
		t.Error("prune deleted an object fluxd did not apply")
	}

	// A whole namespace leaves git, and goes after its contents.
	cs = e.sync(prune, file("ns.yaml", namespaceYAML(e.ns)), files[1])
	e.expect(cs, map[string]string{
		id("", "namespace", e.ns):     "unchanged",
		id("", "namespace", other):    "pruned",
		id(e.ns, "configmap", "keep"): "unchanged",
	})
	if n := len(cs.Changes); cs.Changes[n-1].ID.String() != id("", "namespace", other) {
		t.Errorf("last change %v, want the namespace pruned last", cs.Changes[n-1])
	}
	if !e.gone(nsGVR, "", other) {
		t.Error("namespace not pruned")
	}
}

func TestPruneRespectsIgnoreAndOtherMarks(t *testing.T) {
	e := newEnv(t)
	mine := kube.SyncOptions{Prune: true}
	theirs := kube.SyncOptions{Prune: true, GCMark: kube.GCMark("test", "file:///other-repo", "main", nil)}

	// Another sync set owns "theirs".
	e.sync(theirs, file("ns.yaml", namespaceYAML(e.ns)), file("theirs.yaml", configMapYAML(e.ns, "theirs", "v")))

	files := []resource.File{
		file("ns.yaml", namespaceYAML(e.ns)),
		file("plain.yaml", configMapYAML(e.ns, "plain", "v")),
		file("synconly.yaml", configMapYAML(e.ns, "synconly", "v", kube.IgnoreAnnotation, "sync_only")),
		file("byhand.yaml", configMapYAML(e.ns, "byhand", "v")),
		file("never.yaml", configMapYAML(e.ns, "never", "v", kube.LegacyIgnoreAnnotation, "true")),
	}
	e.expect(e.sync(mine, files...), map[string]string{
		id("", "namespace", e.ns):         "configured", // now carries our mark
		id(e.ns, "configmap", "plain"):    "created",
		id(e.ns, "configmap", "synconly"): "created",
		id(e.ns, "configmap", "byhand"):   "created",
		id(e.ns, "configmap", "never"):    "skipped",
	})
	if !e.gone(cmGVR, e.ns, "never") {
		t.Error("an object annotated ignore: true was applied")
	}

	// Someone marks "byhand" ignored in the cluster; it is then neither
	// applied nor pruned.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, kube.IgnoreAnnotation)
	if _, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Patch(e.ctx, "byhand", types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-annotate"}); err != nil {
		t.Fatal(err)
	}
	e.expect(e.sync(kube.SyncOptions{Force: true, GCMark: e.mark}, files...), map[string]string{
		id("", "namespace", e.ns):         "unchanged",
		id(e.ns, "configmap", "plain"):    "unchanged",
		id(e.ns, "configmap", "synconly"): "unchanged",
		id(e.ns, "configmap", "byhand"):   "skipped",
		id(e.ns, "configmap", "never"):    "skipped",
	})

	// Everything but the namespace leaves git.
	cs := e.sync(mine, files[0])
	e.expect(cs, map[string]string{
		id("", "namespace", e.ns):         "unchanged",
		id(e.ns, "configmap", "plain"):    "pruned",
		id(e.ns, "configmap", "synconly"): "skipped: sync_only",
		id(e.ns, "configmap", "byhand"):   "skipped: annotated fluxcd.io/ignore: true",
	})
	if !e.gone(cmGVR, e.ns, "plain") {
		t.Error("plain not pruned")
	}
	for _, name := range []string{"synconly", "byhand", "theirs"} {
		if e.gone(cmGVR, e.ns, name) {
			t.Errorf("%s was pruned", name)
		}
	}
}

func TestSyncDryRun(t *testing.T) {
	e := newEnv(t)
	files := []resource.File{file("all.yaml", namespaceYAML(e.ns)+configMapYAML(e.ns, "cm", "v1"))}
	want := map[string]string{id("", "namespace", e.ns): "created", id(e.ns, "configmap", "cm"): "created"}
	e.expect(e.sync(kube.SyncOptions{DryRun: true}, files...), want)
	if !e.gone(nsGVR, "", e.ns) {
		t.Fatal("dry run created the namespace")
	}
	e.sync(kube.SyncOptions{}, files...)
	files = []resource.File{file("all.yaml", namespaceYAML(e.ns)+configMapYAML(e.ns, "cm", "v2"))}
	e.expect(e.sync(kube.SyncOptions{DryRun: true, Force: true}, files...), map[string]string{
		id("", "namespace", e.ns): "unchanged", id(e.ns, "configmap", "cm"): "configured",
	})
	if v, _, _ := unstructured.NestedString(e.get(cmGVR, e.ns, "cm").Object, "data", "key"); v != "v1" {
		t.Errorf("dry run changed data.key to %q", v)
	}
}

func TestSyncDefaultNamespace(t *testing.T) {
	e := newEnv(t, kube.WithDefaultNamespace("default"))
	name := e.ns
	files := []resource.File{file("cm.yaml", fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata: {k: v}\n", name))}
	e.expect(e.sync(kube.SyncOptions{}, files...), map[string]string{id("default", "configmap", name): "created"})
	e.get(cmGVR, "default", name)
	other := []resource.File{file("other.yaml", fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-other\ndata: {k: v}\n", name))}
	e.expect(e.sync(kube.SyncOptions{Prune: true}, other...), map[string]string{
		id("default", "configmap", name): "pruned", id("default", "configmap", name+"-other"): "created",
	})
}

// An empty set of manifests (a wrong --git-path, a botched commit) must not
// delete everything fluxd ever applied; nor may a sync whose caller says
// pruning is blocked.
func TestPruneBlockedWhenEmptyOrAsked(t *testing.T) {
	e := newEnv(t)
	files := []resource.File{file("all.yaml", namespaceYAML(e.ns)+configMapYAML(e.ns, "cm", "v1"))}
	e.sync(kube.SyncOptions{}, files...)
	cs := e.sync(kube.SyncOptions{Prune: true})
	if cs.PruneBlocked == "" || cs.Count(resource.Pruned) != 0 {
		t.Fatalf("empty set: PruneBlocked %q, pruned %d", cs.PruneBlocked, cs.Count(resource.Pruned))
	}
	cs = e.sync(kube.SyncOptions{Prune: true, PruneBlocked: "git path typo missing"}, file("ns.yaml", namespaceYAML(e.ns)))
	if cs.PruneBlocked != "git path typo missing" || cs.Count(resource.Pruned) != 0 {
		t.Fatalf("blocked by caller: PruneBlocked %q, pruned %d", cs.PruneBlocked, cs.Count(resource.Pruned))
	}
	e.get(cmGVR, e.ns, "cm")
}

func TestClusterID(t *testing.T) {
	e := newEnv(t)
	got, err := e.cluster.ClusterID(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(e.get(nsGVR, "", "kube-system").GetUID()); got != want || got == "" {
		t.Errorf("ClusterID = %q, want %q", got, want)
	}
}

func TestSyncUnreachable(t *testing.T) {
	c, err := kube.New(&rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Sync(ctx, []resource.File{file("cm.yaml", configMapYAML("ns", "cm", "v"))}, kube.SyncOptions{GCMark: "m"})
	if err == nil {
		t.Fatal("Sync against no apiserver succeeded")
	}
	t.Logf("error: %v", err)
}
