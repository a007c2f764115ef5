package kube

import (
	"fmt"
	"testing"

	"github.com/fluxd/fluxd/kube/resource"
)

func TestDecideApply(t *testing.T) {
	live := func(sum string, ign Ignore) *liveObject {
		return &liveObject{Checksum: sum, Ignore: ign, ResourceVersion: "7"}
	}
	tests := []struct {
		name   string
		ign    Ignore
		live   *liveObject
		force  bool
		want   step
		reason string
	}{
		{"new object", IgnoreNone, nil, false, stepApply, ""},
		{"same checksum", IgnoreNone, live("s1", IgnoreNone), false, stepUnchanged, ""},
		{"same checksum, forced", IgnoreNone, live("s1", IgnoreNone), true, stepApply, ""},
		{"changed manifest", IgnoreNone, live("s0", IgnoreNone), false, stepApply, ""},
		{"no checksum (applied by someone else)", IgnoreNone, live("", IgnoreNone), false, stepApply, ""},
		{"ignored in git", IgnoreAlways, nil, true, stepSkip, ""},
		{"ignored in the cluster", IgnoreNone, live("s0", IgnoreAlways), true, stepSkip, ""},
		{"sync_only is applied", IgnoreSyncOnly, live("s0", IgnoreNone), false, stepApply, ""},
		{"sync_only in the cluster is applied", IgnoreNone, live("s0", IgnoreSyncOnly), false, stepApply, ""},
	}
	for _, tt := range tests {
		if got := decideApply(tt.ign, tt.live, "s1", tt.force); got != tt.want {
			t.Errorf("%s: decideApply = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAppliedAction(t *testing.T) {
	live := &liveObject{Checksum: "s1", ResourceVersion: "9"}
	same := func() bool { return true }
	differs := func() bool { return false }
	tests := []struct {
		name   string
		status int
		live   *liveObject
		sum    string
		rv     string
		entry  func() bool
		want   resource.Action
	}{
		{"created", 201, nil, "s1", "10", differs, resource.Created},
		{"existed without our mark", 200, nil, "s1", "10", same, resource.Configured},
		{"manifest changed", 200, live, "s2", "10", same, resource.Configured},
		{"nothing moved", 200, live, "s1", "9", differs, resource.Unchanged},
		{"someone else wrote meanwhile", 200, live, "s1", "10", same, resource.Unchanged},
		{"drift reverted", 200, live, "s1", "10", differs, resource.Configured},
	}
	for _, tt := range tests {
		if got := appliedAction(tt.status, tt.live, tt.sum, tt.rv, tt.entry); got != tt.want {
			t.Errorf("%s: appliedAction = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestPlanPrune(t *testing.T) {
	obj := func(group, kind, ns, name string, namespaced bool, mod func(*liveObject)) liveObject {
		l := liveObject{Key: objKey{group, kind, ns, name}, Namespaced: namespaced, Applied: true}
		if mod != nil {
			mod(&l)
		}
		return l
	}
	live := []liveObject{
		obj("", "Namespace", "", "gone-ns", false, nil),
		obj("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com", false, nil),
		obj("rbac.authorization.k8s.io", "ClusterRole", "", "gone-role", false, nil),
		obj("apps", "Deployment", "demo", "kept", true, nil),
		obj("apps", "Deployment", "demo", "gone", true, nil),
		obj("", "ConfigMap", "demo", "sync-only", true, func(l *liveObject) { l.Ignore = IgnoreSyncOnly }),
		obj("", "ConfigMap", "demo", "ignored", true, func(l *liveObject) { l.Ignore = IgnoreAlways }),
		obj("", "Endpoints", "demo", "copied-label", true, func(l *liveObject) { l.Applied = false }),
		obj("apps", "ReplicaSet", "demo", "owned", true, func(l *liveObject) { l.Controlled = true }),
	}
	desired := map[objKey]bool{{"apps", "Deployment", "demo", "kept"}: true}

	format := func(cs []pruneCandidate) []string {
		var out []string
		for _, c := range cs {
			s := c.Live.Key.id().String()
			if c.Reason != "" {
				s += " (" + c.Reason + ")"
			}
			out = append(out, s)
		}
		return out
	}
	got := format(planPrune(live, desired, ""))
	want := []string{
		"demo:configmap/ignored (not pruned: annotated fluxcd.io/ignore: true)",
		"demo:configmap/sync-only (not pruned: annotated fluxcd.io/ignore: sync_only)",
		"demo:deployment/gone",
		"<cluster>:clusterrole/gone-role",
		"<cluster>:customresourcedefinition/widgets.example.com",
		"<cluster>:namespace/gone-ns",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("planPrune =\n%q\nwant\n%q", got, want)
	}

	blocked := planPrune(live, desired, "1 manifest error(s)")
	for _, c := range blocked {
		if c.Reason == "" {
			t.Errorf("blocked prune would delete %s", c.Live.Key.id())
		}
	}
	if len(blocked) != len(want) {
		t.Errorf("blocked prune reports %d objects, want %d", len(blocked), len(want))
	}
}
