package kube_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
)

func diffsByID(t *testing.T, ds []kube.ObjectDiff) map[string]kube.ObjectDiff {
	t.Helper()
	m := map[string]kube.ObjectDiff{}
	for _, d := range ds {
		t.Logf("%s %s (%s) %s\n%s", d.Action, d.ID, d.Source, d.Error, d.Diff)
		m[d.ID.String()] = d
	}
	return m
}

// hasLines reports whether diff has each of lines as a whole line.
func hasLines(diff string, lines ...string) bool {
	have := map[string]bool{}
	for _, l := range strings.Split(diff, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			return false
		}
	}
	return true
}

// changedLines counts the lines a unified diff removes or adds.
func changedLines(diff string) int {
	n := 0
	for _, l := range strings.Split(diff, "\n") {
		if (strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "--- ")) || (strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++ ")) {
			n++
		}
	}
	return n
}

func TestDiff(t *testing.T) {
	e := newEnv(t)
	files := []resource.File{
		file("ns.yaml", namespaceYAML(e.ns)),
		file("app.yaml", deploymentYAML(e.ns, "web", 2)+configMapYAML(e.ns, "config", "v1")+configMapYAML(e.ns, "old", "v")),
	}
	e.sync(kube.SyncOptions{}, files...)

	// Someone scales the Deployment by hand.
	patch := []byte(`{"spec":{"replicas":5}}`)
	if _, err := e.dyn.Resource(deployGVR).Namespace(e.ns).Patch(e.ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	// Nothing changed in git: only the hand-made change shows.
	ds, err := e.cluster.Diff(e.ctx, files, kube.SyncOptions{GCMark: e.mark})
	if err != nil {
		t.Fatal(err)
	}
	m := diffsByID(t, ds)
	if len(ds) != 4 {
		t.Errorf("%d diffs, want 4", len(ds))
	}
	web := m[id(e.ns, "deployment", "web")]
	if web.Action != resource.Configured || web.Source != "app.yaml" || !hasLines(web.Diff, "-  replicas: 5", "+  replicas: 2") {
		t.Errorf("web: %s, diff:\n%s\nwant configured, -replicas: 5 +replicas: 2", web.Action, web.Diff)
	}
	if !strings.HasPrefix(web.Diff, "--- live/"+id(e.ns, "deployment", "web")+"\n+++ git/"+id(e.ns, "deployment", "web")+"\n@@ ") {
		t.Errorf("web diff header:\n%s", web.Diff)
	}
	if n := changedLines(web.Diff); n != 2 {
		t.Errorf("web diff has %d changed lines, want 1 each way:\n%s", n, web.Diff)
	}
	for _, unchanged := range []string{id("", "namespace", e.ns), id(e.ns, "configmap", "config"), id(e.ns, "configmap", "old")} {
		if d := m[unchanged]; d.Action != resource.Unchanged || d.Diff != "" {
			t.Errorf("%s: %s, diff %q; want unchanged, no diff", unchanged, d.Action, d.Diff)
		}
	}

	// A changed manifest, a new object and one that left git.
	changed := []resource.File{
		files[0],
		file("app.yaml", deploymentYAML(e.ns, "web", 2)+configMapYAML(e.ns, "config", "v2")+configMapYAML(e.ns, "new", "fresh")),
	}
	ds, err = e.cluster.Diff(e.ctx, changed, kube.SyncOptions{GCMark: e.mark, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	m = diffsByID(t, ds)
	if d := m[id(e.ns, "configmap", "config")]; d.Action != resource.Configured || !hasLines(d.Diff, `-  key: v1`, `+  key: v2`) {
		t.Errorf("config: %s, diff:\n%s", d.Action, d.Diff)
	}
	if d := m[id(e.ns, "configmap", "new")]; d.Action != resource.Created || !hasLines(d.Diff, "--- live/"+id(e.ns, "configmap", "new"), `+  key: fresh`, "+kind: ConfigMap") || strings.Contains(d.Diff, "\n-") {
		t.Errorf("new: %s, diff:\n%s", d.Action, d.Diff)
	}
	if d := m[id(e.ns, "configmap", "old")]; d.Action != resource.Pruned || d.Source != "" || !hasLines(d.Diff, `-  key: v`, "-kind: ConfigMap") || strings.Contains(d.Diff, "\n+ ") {
		t.Errorf("old: %s, diff:\n%s", d.Action, d.Diff)
	}
	for _, noise := range []string{"managedFields", "resourceVersion", "uid:", "creationTimestamp", "generation:", kube.ChecksumAnnotation, "status:"} {
		for _, d := range ds {
			if strings.Contains(d.Diff, noise) {
				t.Errorf("%s: diff holds %q", d.ID, noise)
			}
		}
	}

	// A manifest error blocks pruning; an unknown kind fails alone.
	broken := append(changed, file("broken.yaml", "apiVersion: v1\nkind: [\n"), file("gizmo.yaml", "apiVersion: nothing.example.com/v1\nkind: Gizmo\nmetadata: {name: g, namespace: "+e.ns+"}\n"))
	ds, err = e.cluster.Diff(e.ctx, broken, kube.SyncOptions{GCMark: e.mark, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	m = diffsByID(t, ds)
	if ds[0].Action != resource.Failed || ds[0].Source != "broken.yaml" {
		t.Errorf("first diff %+v, want the parse error", ds[0])
	}
	if d := m[id(e.ns, "configmap", "old")]; d.Action != resource.Skipped || d.Diff != "" || !strings.Contains(d.Error, "manifest error") {
		t.Errorf("old with a broken manifest: %+v", d)
	}
	if d := m[id(e.ns, "gizmo", "g")]; d.Action != resource.Failed || !strings.Contains(d.Error, "unknown kind") {
		t.Errorf("gizmo: %+v", d)
	}

	// A new namespace and what is in it.
	fresh := e.ns + "-new"
	ds, err = e.cluster.Diff(e.ctx, []resource.File{file("fresh.yaml", namespaceYAML(fresh)+configMapYAML(fresh, "cm", "x"))}, kube.SyncOptions{GCMark: e.mark})
	if err != nil {
		t.Fatal(err)
	}
	m = diffsByID(t, ds)
	for _, created := range []string{id("", "namespace", fresh), id(fresh, "configmap", "cm")} {
		if d := m[created]; d.Action != resource.Created || d.Diff == "" {
			t.Errorf("%s: %+v, want created with a diff", created, d)
		}
	}

	// Diff changed nothing.
	if v, _, _ := unstructured.NestedInt64(e.get(deployGVR, e.ns, "web").Object, "spec", "replicas"); v != 5 {
		t.Errorf("replicas %d after diff, want the hand-made 5", v)
	}
	if v, _, _ := unstructured.NestedString(e.get(cmGVR, e.ns, "config").Object, "data", "key"); v != "v1" {
		t.Errorf("config data.key %q after diff, want v1", v)
	}
	if e.gone(cmGVR, e.ns, "old") || !e.gone(cmGVR, e.ns, "new") || !e.gone(nsGVR, "", fresh) {
		t.Error("diff created or deleted objects")
	}
}
