package kube

import (
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fluxd/fluxd/kube/resource"
)

// This file holds the decisions of a sync as pure functions of the desired
// objects and what the cluster shows; sync.go does the I/O around them.

// objKey identifies an object in the cluster independent of API version.
type objKey struct {
	Group, Kind, Namespace, Name string
}

func (k objKey) id() resource.ID { return resource.MakeID(k.Namespace, k.Kind, k.Name) }

// liveObject is what a metadata LIST shows of an object carrying our mark.
type liveObject struct {
	Key             objKey
	GVR             schema.GroupVersionResource
	Namespaced      bool
	UID             types.UID
	ResourceVersion string
	// Checksum is the object's ChecksumAnnotation, "" if it has none.
	Checksum string
	// Ignore is the policy of the live object's annotations.
	Ignore Ignore
	// Applied: our field manager has an Apply entry in managedFields, so
	// fluxd itself applied (some of) this object.
	Applied bool
	// Controlled: the object has a controller owner reference.
	Controlled bool
	// Entry is our field manager's Apply entry in managedFields, if any.
	Entry *metav1.ManagedFieldsEntry
}

// step is what to do with one desired object.
type step int

const (
	stepApply     step = iota
	stepUnchanged      // no write: the live object was applied from the same manifest
	stepSkip           // ignored by annotation
)

// decideApply chooses what to do with a desired object.
//
// No-op detection: ChecksumAnnotation records a hash of what fluxd last
// applied. When the live object carries the same checksum, the manifest has
// not changed since that apply, so applying again could only revert changes
// made by hand. Without force this is taken as Unchanged with no write at
// all. With force (the periodic drift-correction pass) every object is
// applied, and the apiserver, which is the only party that knows how its
// defaulting and our field ownership combine, decides whether anything
// changed: a no-op apply does not move the resourceVersion.
//
// A cheaper drift check, comparing the fields our manager owns in
// managedFields with the live values, was not chosen: it needs the schema to
// normalise defaulted and canonicalised values (quantities, int-or-string,
// defaulted protocols) and gets subtle cases wrong, while a forced apply of
// 1,000 objects costs about a second once per sync interval.
func decideApply(ign Ignore, live *liveObject, sum string, force bool) step {
	if ign == IgnoreAlways {
		return stepSkip
	}
	if live == nil {
		return stepApply
	}
	if live.Ignore == IgnoreAlways {
		return stepSkip // annotated by hand in the cluster
	}
	if !force && live.Checksum == sum {
		return stepUnchanged
	}
	return stepApply
}

// appliedAction names the outcome of a successful apply of the object
// with checksum sum:
//   - created when the apiserver answered 201;
//   - configured when the object was not seen before the apply, without
//     our mark (the apply added it), or with another checksum (the apply
//     changed the annotation at least);
//   - unchanged when the resourceVersion did not move;
//   - when it moved, someone else may have written the object between our
//     LIST and the apply (a controller updating status, say). Our field
//     manager's managedFields entry tells: the apiserver rewrites it
//     (fields and time) only when our apply changes something, and a drift
//     made by hand moves fields out of our entry, which the apply takes
//     back. So unchanged if ourEntrySame reports the entry as it was.
func appliedAction(status int, live *liveObject, sum, newRV string, ourEntrySame func() bool) resource.Action {
	switch {
	case status == 201:
		return resource.Created
	case live == nil || live.Checksum != sum:
		return resource.Configured
	case live.ResourceVersion == newRV:
		return resource.Unchanged
	case ourEntrySame():
		return resource.Unchanged
	}
	return resource.Configured
}

// pruneCandidate is a live object that has left git.
type pruneCandidate struct {
	Live liveObject
	// Reason, when not empty, is why the object stays (Action Skipped).
	Reason string
}

// planPrune picks, among the live objects carrying our mark, those that
// left git (are not in desired). It leaves out objects fluxd did not apply
// itself (no Apply entry of our field manager: the label was copied, e.g. by
// the endpoints controller) and objects controlled by another object; those
// are not reported at all. Objects annotated ignore (true or sync_only) and,
// when blocked is not empty, all others are kept with a reason. The result
// is in deletion order: namespaced objects, cluster-scoped objects,
// CustomResourceDefinitions, then Namespaces, each sorted by key.
func planPrune(live []liveObject, desired map[objKey]bool, blocked string) []pruneCandidate {
	var out []pruneCandidate
	for _, l := range live {
		if desired[l.Key] || !l.Applied || l.Controlled {
			continue
		}
		c := pruneCandidate{Live: l}
		switch {
		case l.Ignore != IgnoreNone:
			c.Reason = "not pruned: annotated " + IgnoreAnnotation + ": " + l.Ignore.String()
		case blocked != "":
			c.Reason = "not pruned: " + blocked
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Live, out[j].Live
		if pa, pb := pruneOrder(a), pruneOrder(b); pa != pb {
			return pa < pb
		}
		ka, kb := a.Key, b.Key
		if ka.Group != kb.Group {
			return ka.Group < kb.Group
		}
		if ka.Kind != kb.Kind {
			return ka.Kind < kb.Kind
		}
		if ka.Namespace != kb.Namespace {
			return ka.Namespace < kb.Namespace
		}
		return ka.Name < kb.Name
	})
	return out
}

// pruneOrder is the deletion phase of an object: objects in namespaces
// first, CRDs (which take their custom resources with them) late,
// Namespaces (which take everything in them) last.
func pruneOrder(l liveObject) int {
	switch {
	case isNamespace(l.Key.Group, l.Key.Kind):
		return 3
	case isCRD(l.Key.Group, l.Key.Kind):
		return 2
	case !l.Namespaced:
		return 1
	}
	return 0
}

func isNamespace(group, kind string) bool { return group == "" && kind == "Namespace" }

func isCRD(group, kind string) bool {
	return group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition"
}

// isWorkload reports whether a kind runs Pods. Workloads are applied after
// everything else, so that their Pods never start before the ConfigMaps,
// Secrets, ServiceAccounts and claims they use exist; it also keeps the
// controllers' reaction to new workloads (ReplicaSets, Pods) from competing
// with the rest of the apply.
func isWorkload(group, kind string) bool {
	switch group + "/" + kind {
	case "/Pod", "/ReplicationController", "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet", "apps/ReplicaSet", "batch/Job", "batch/CronJob":
		return true
	}
	return false
}
