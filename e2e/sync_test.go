package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/fluxd/fluxd/notes"
)

const syncWait = 60 * time.Second

// waitTag waits until the remote's sync tag of cluster points at commit.
func waitTag(t *testing.T, w *workRepo, cluster, commit string) {
	t.Helper()
	waitFor(t, syncWait, "sync tag "+cluster+" at "+commit[:7], func() (bool, string) {
		got := w.syncTag(cluster)
		return got == commit, "tag at " + got
	})
}

func waitData(t *testing.T, ns, name, key, want string) {
	t.Helper()
	waitFor(t, syncWait, fmt.Sprintf("configmap %s/%s %s=%q", ns, name, key, want), func() (bool, string) {
		d := configMapData(t, ns, name)
		return d != nil && d[key] == want, fmt.Sprint(d)
	})
}

func TestSyncFirstThenOneFieldChange(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("Add app", map[string]string{
		"deploy/ns.yaml":  namespaceYAML(ns),
		"deploy/app.yaml": configMapYAML(ns, "app", map[string]string{"color": "blue", "size": "m"}) + "---\n" + configMapYAML(ns, "other", map[string]string{"x": "1"}),
	})
	startFluxd(t, "fluxd", fluxdArgs(w, ns, "--git-path", "deploy")...)
	waitTag(t, w, ns, c1)
	if d := configMapData(t, ns, "app"); d["color"] != "blue" || configMapData(t, ns, "other") == nil {
		t.Fatalf("after the first sync: app=%v other=%v", d, configMapData(t, ns, "other"))
	}
	rec, ok := w.syncRecord(ns, c1)
	if !ok || rec.Counts.Applied != 3 || !rec.OK() || rec.Cluster != ns || rec.Commit != c1 {
		t.Fatalf("sync record on the first commit: %+v (found %v)", rec, ok)
	}

	c2 := w.commit("Make it green", map[string]string{
		"deploy/app.yaml": configMapYAML(ns, "app", map[string]string{"color": "green", "size": "m"}) + "---\n" + configMapYAML(ns, "other", map[string]string{"x": "1"}),
	})
	waitTag(t, w, ns, c2)
	waitData(t, ns, "app", "color", "green")
	rec, _ = w.syncRecord(ns, c2)
	if rec.Counts.Applied != 1 || rec.Counts.Unchanged != 2 {
		t.Fatalf("sync record of a one-field change: %+v, want 1 applied and 2 unchanged", rec.Counts)
	}
	// The tag is annotated and says what was applied.
	w.git("fetch", "-q", "origin", "+refs/tags/flux-sync/"+ns+":refs/tags/flux-sync/"+ns)
	if msg := w.git("for-each-ref", "--format=%(contents)", "refs/tags/flux-sync/"+ns); !strings.Contains(msg, "Sync of "+c2[:7]) {
		t.Fatalf("tag message %q", msg)
	}
}

func TestSyncDeletedManifest(t *testing.T) {
	for _, gc := range []bool{true, false} {
		t.Run(fmt.Sprintf("gc=%v", gc), func(t *testing.T) {
			t.Parallel()
			ns, w := testName(t), newWorkRepo(t)
			w.commit("Add", map[string]string{
				"ns.yaml":   namespaceYAML(ns),
				"keep.yaml": configMapYAML(ns, "keep", map[string]string{"a": "1"}),
				"gone.yaml": configMapYAML(ns, "gone", map[string]string{"a": "1"}),
			})
			args := fluxdArgs(w, ns)
			if gc {
				args = append(args, "--sync-garbage-collection")
			}
			startFluxd(t, "fluxd", args...)
			waitData(t, ns, "gone", "a", "1")
			c2 := w.commit("Remove gone", map[string]string{"gone.yaml": ""})
			waitTag(t, w, ns, c2)
			rec, _ := w.syncRecord(ns, c2)
			if gc {
				waitFor(t, syncWait, "gone to be pruned", func() (bool, string) {
					return configMapData(t, ns, "gone") == nil, "still there"
				})
				if rec.Counts.Pruned != 1 {
					t.Fatalf("record %+v, want 1 pruned", rec.Counts)
				}
			} else {
				time.Sleep(2 * time.Second)
				if configMapData(t, ns, "gone") == nil {
					t.Fatal("gone was deleted without --sync-garbage-collection")
				}
				if rec.Counts.Pruned != 0 {
					t.Fatalf("record %+v, want nothing pruned", rec.Counts)
				}
			}
			if configMapData(t, ns, "keep") == nil {
				t.Fatal("keep was deleted")
			}
		})
	}
}

func TestSyncIgnore(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	ctx := context.Background()
	// An object made by hand, then described in git with ignore: never touched.
	if _, err := env.Kube.Kubectl(ctx, "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.Kubectl(ctx, "create", "configmap", "byhand", "-n", ns, "--from-literal=owner=human"); err != nil {
		t.Fatal(err)
	}
	c1 := w.commit("Add", map[string]string{
		"byhand.yaml":   configMapYAML(ns, "byhand", map[string]string{"owner": "git"}, "fluxcd.io/ignore", "true"),
		"ignored.yaml":  configMapYAML(ns, "ignored", map[string]string{"a": "1"}, "flux.weave.works/ignore", "true"),
		"synconly.yaml": configMapYAML(ns, "synconly", map[string]string{"a": "1"}, "fluxcd.io/ignore", "sync_only"),
		"normal.yaml":   configMapYAML(ns, "normal", map[string]string{"a": "1"}),
	})
	startFluxd(t, "fluxd", fluxdArgs(w, ns, "--sync-garbage-collection")...)
	waitTag(t, w, ns, c1)
	if d := configMapData(t, ns, "byhand"); d["owner"] != "human" {
		t.Fatalf("an ignored object was changed: %v", d)
	}
	if configMapData(t, ns, "ignored") != nil {
		t.Fatal("an object annotated flux.weave.works/ignore was created")
	}
	if configMapData(t, ns, "synconly") == nil {
		t.Fatal("an object annotated ignore: sync_only was not applied")
	}
	c2 := w.commit("Remove all", map[string]string{"synconly.yaml": "", "normal.yaml": "", "byhand.yaml": ""})
	waitTag(t, w, ns, c2)
	waitFor(t, syncWait, "normal to be pruned", func() (bool, string) { return configMapData(t, ns, "normal") == nil, "still there" })
	if configMapData(t, ns, "synconly") == nil {
		t.Fatal("an object annotated ignore: sync_only was pruned")
	}
	if configMapData(t, ns, "byhand") == nil {
		t.Fatal("an object fluxd never applied was pruned")
	}
}

func TestSyncBrokenFileBlocksPruning(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("Add", map[string]string{
		"ns.yaml": namespaceYAML(ns),
		"a.yaml":  configMapYAML(ns, "a", map[string]string{"v": "1"}),
		"b.yaml":  configMapYAML(ns, "b", map[string]string{"v": "1"}),
	})
	startFluxd(t, "fluxd", fluxdArgs(w, ns, "--sync-garbage-collection")...)
	waitTag(t, w, ns, c1)

	c2 := w.commit("Break one file, change a, drop b", map[string]string{
		"a.yaml":      configMapYAML(ns, "a", map[string]string{"v": "2"}),
		"b.yaml":      "",
		"broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n   namespace: x\n: [\n",
	})
	waitData(t, ns, "a", "v", "2") // the good files still sync
	rec := waitRecord(t, w, ns, c2)
	if rec.OK() || rec.PruneBlocked == "" || len(rec.Errors) != 1 || rec.Errors[0].Path != "broken.yaml" {
		t.Fatalf("record of the broken commit: %+v", rec)
	}
	if configMapData(t, ns, "b") == nil {
		t.Fatal("b was pruned while a manifest failed to parse")
	}
	if got := w.syncTag(ns); got != c1 {
		t.Fatalf("sync tag moved to %s, a commit that was not fully applied", got)
	}

	c3 := w.commit("Fix it", map[string]string{"broken.yaml": configMapYAML(ns, "broken", map[string]string{"v": "1"})})
	waitTag(t, w, ns, c3)
	waitFor(t, syncWait, "b to be pruned once the repo parses", func() (bool, string) { return configMapData(t, ns, "b") == nil, "b still there" })
}

func waitRecord(t *testing.T, w *workRepo, cluster, commit string) notes.SyncRecord {
	t.Helper()
	var rec notes.SyncRecord
	waitFor(t, syncWait, "a sync record on "+commit[:7], func() (bool, string) {
		r, ok := w.syncRecord(cluster, commit)
		rec = r
		return ok, "no note yet"
	})
	return rec
}

func TestSyncRevertsDrift(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("Add", map[string]string{
		"ns.yaml": namespaceYAML(ns),
		"cm.yaml": configMapYAML(ns, "cm", map[string]string{"mode": "safe"}),
	})
	startFluxd(t, "fluxd", fluxdArgs(w, ns, "--sync-interval", "2s")...)
	waitTag(t, w, ns, c1)
	if _, err := env.Kube.Kubectl(context.Background(), "patch", "configmap", "cm", "-n", ns, "--type=merge", "-p", `{"data":{"mode":"yolo"}}`); err != nil {
		t.Fatal(err)
	}
	if d := configMapData(t, ns, "cm"); d["mode"] != "yolo" {
		t.Fatalf("the hand edit did not land: %v", d)
	}
	waitData(t, ns, "cm", "mode", "safe")
}

func TestSyncCRDAndCustomResourceInOneCommit(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	group := ns + ".example.com"
	crd := fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.%[1]s
spec:
  group: %[1]s
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
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
	cr := fmt.Sprintf("apiVersion: %s/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: %s\nspec:\n  size: 3\n", group, ns)
	c1 := w.commit("CRD and a widget", map[string]string{
		"all.yaml": namespaceYAML(ns) + "---\n" + cr + "---\n" + crd,
	})
	startFluxd(t, "fluxd", fluxdArgs(w, ns)...)
	waitTag(t, w, ns, c1)
	dc, err := dynamic.NewForConfig(env.Kube.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	got, err := dc.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}).Namespace(ns).Get(context.Background(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructuredInt(got.Object, "spec", "size"); size != 3 {
		t.Fatalf("widget %v", got.Object)
	}
}

func unstructuredInt(obj map[string]interface{}, path ...string) (int64, bool, error) {
	var cur interface{} = obj
	for _, p := range path {
		m, ok := cur.(map[string]interface{})
		if !ok {
			return 0, false, nil
		}
		cur = m[p]
	}
	n, ok := cur.(int64)
	return n, ok, nil
}

func TestSyncTwoClustersOneRepo(t *testing.T) {
	t.Parallel()
	base, w := testName(t), newWorkRepo(t)
	a, b := base+"-a", base+"-b"
	c1 := w.commit("Two clusters", map[string]string{
		"a/all.yaml": namespaceYAML(a) + "---\n" + configMapYAML(a, "cm", map[string]string{"who": "a"}),
		"b/all.yaml": namespaceYAML(b) + "---\n" + configMapYAML(b, "cm", map[string]string{"who": "b"}),
	})
	startFluxd(t, "fluxd-a", fluxdArgs(w, a, "--git-path", "a", "--sync-garbage-collection")...)
	startFluxd(t, "fluxd-b", fluxdArgs(w, b, "--git-path", "b", "--sync-garbage-collection")...)
	waitTag(t, w, a, c1)
	waitTag(t, w, b, c1)
	ra, oka := w.syncRecord(a, c1)
	rb, okb := w.syncRecord(b, c1)
	if !oka || !okb || ra.Cluster != a || rb.Cluster != b || ra.Counts.Applied != 2 || rb.Counts.Applied != 2 {
		t.Fatalf("records: a=%+v b=%+v", ra, rb)
	}
	c2 := w.commit("Change b only", map[string]string{"b/all.yaml": namespaceYAML(b) + "---\n" + configMapYAML(b, "cm", map[string]string{"who": "b2"})})
	waitTag(t, w, a, c2)
	waitTag(t, w, b, c2)
	waitData(t, b, "cm", "who", "b2")
	if d := configMapData(t, a, "cm"); d["who"] != "a" {
		t.Fatalf("cluster a's object changed: %v", d)
	}
	if refs := w.git("ls-remote", "origin", "refs/notes/*"); !strings.Contains(refs, "refs/notes/flux-sync/"+a) || !strings.Contains(refs, "refs/notes/flux-sync/"+b) {
		t.Fatalf("notes refs on the remote:\n%s", refs)
	}
}

func TestSyncRestartReadsTag(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("Add", map[string]string{
		"ns.yaml": namespaceYAML(ns),
		"cm.yaml": configMapYAML(ns, "cm", map[string]string{"v": "1"}),
	})
	first := startFluxd(t, "first", fluxdArgs(w, ns)...)
	waitTag(t, w, ns, c1)
	first.stop()

	second := startFluxd(t, "second", fluxdArgs(w, ns, "--sync-interval", "1h")...)
	waitFor(t, syncWait, "the restarted fluxd to read the tag", func() (bool, string) {
		log := second.proc.Tail(1 << 20)
		return strings.Contains(log, "sync tag read"), "not yet"
	})
	time.Sleep(2 * time.Second) // a few polls
	if log := second.proc.Tail(1 << 20); strings.Contains(log, "sync done") {
		t.Fatalf("the restarted fluxd re-applied a commit the tag marks as applied:\n%s", log)
	}
	c2 := w.commit("Change", map[string]string{"cm.yaml": configMapYAML(ns, "cm", map[string]string{"v": "2"})})
	waitTag(t, w, ns, c2)
	waitData(t, ns, "cm", "v", "2")
}

func TestSyncReadOnly(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	w.commit("Add", map[string]string{
		"ns.yaml": namespaceYAML(ns),
		"cm.yaml": configMapYAML(ns, "cm", map[string]string{"v": "1"}),
	})
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns, "--git-readonly")...)
	waitData(t, ns, "cm", "v", "1")
	waitFor(t, syncWait, "the sync to finish", func() (bool, string) {
		return strings.Contains(d.proc.Tail(1<<20), "sync done"), "not yet"
	})
	time.Sleep(time.Second)
	if refs := w.git("ls-remote", "origin"); strings.Contains(refs, "flux-sync") {
		t.Fatalf("--git-readonly wrote to git:\n%s", refs)
	}
}

func TestSyncMissingPathStillSyncsTheRest(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	c1 := w.commit("Add", map[string]string{"deploy/all.yaml": namespaceYAML(ns) + "---\n" + configMapYAML(ns, "cm", map[string]string{"v": "1"})})
	d := startFluxd(t, "fluxd", fluxdArgs(w, ns, "--git-path", "deploy", "--git-path", "typo")...)
	waitData(t, ns, "cm", "v", "1")
	rec := waitRecord(t, w, ns, c1)
	if rec.OK() || len(rec.Errors) != 1 || rec.Errors[0].Path != "typo" || rec.PruneBlocked == "" {
		t.Fatalf("record: %+v", rec)
	}
	if !strings.Contains(d.proc.Tail(1<<20), "typo") {
		t.Fatal("the log does not name the missing path")
	}
	if w.syncTag(ns) != "" {
		t.Fatal("the sync tag was set although a git path is missing")
	}
}
