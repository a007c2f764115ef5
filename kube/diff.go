package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pmezard/go-difflib/difflib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/fluxd/fluxd/kube/resource"
)

// ObjectDiff is what a sync would do to one object.
type ObjectDiff struct {
	ID resource.ID
	// Source is the manifest file ("" for an object that would be pruned).
	Source string
	// Action is what the sync would do: Created, Configured, Unchanged,
	// Pruned, Skipped (ignored, or kept although it left git), or Failed
	// (the manifest does not parse, or the apiserver refuses it).
	Action resource.Action
	// Diff is a unified diff (three lines of context) from the live object
	// to the object as the apiserver says the apply would leave it, both
	// as YAML without status and without the metadata that changes on
	// every write (see diffYAML). It is "" when nothing would change.
	// Created objects diff from nothing, pruned ones to nothing.
	Diff string
	// Error says why the object was Skipped or Failed.
	Error string
}

// Diff tells what Sync(ctx, files, opts) would do to each object, and
// shows it as a diff, without changing anything: every object is applied
// with a server-side dry run (with force, whatever its
// ChecksumAnnotation says, so changes made by hand show too) and the
// result compared with the live object. With opts.Prune the objects
// carrying opts.GCMark that left git show as Pruned, unless pruning is
// blocked (opts.PruneBlocked, a manifest error, no manifests at all).
// opts.DryRun and opts.Force change nothing here.
//
// The result holds the manifest errors first, then the objects in
// manifest order, then those that would be pruned. The error is for
// failures of the whole diff, such as an unreachable apiserver.
func (c *Cluster) Diff(ctx context.Context, files []resource.File, opts SyncOptions) ([]ObjectDiff, error) {
	if err := validMark(opts.GCMark); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	objs, perrs := Parse(files)
	out := make([]ObjectDiff, 0, len(perrs)+len(objs))
	for _, e := range perrs {
		d := ObjectDiff{Source: e.Path, Action: resource.Failed, Error: e.Error}
		if id, err := resource.ParseID(e.Object); err == nil {
			d.ID = id
		}
		out = append(out, d)
	}

	type diffItem struct {
		obj     Object
		u       *unstructured.Unstructured
		key     objKey
		mapping *meta.RESTMapping
		d       ObjectDiff
		done    bool
	}
	items := make([]*diffItem, len(objs))
	keys := map[objKey]*diffItem{}
	newKinds := map[schema.GroupKind]bool{}
	for i, o := range objs {
		gvk := o.Obj.GroupVersionKind()
		it := &diffItem{obj: o, u: o.Obj, d: ObjectDiff{ID: o.ID(), Source: o.Source}}
		it.key = objKey{Group: gvk.Group, Kind: gvk.Kind, Namespace: o.Obj.GetNamespace(), Name: o.Obj.GetName()}
		items[i] = it
		if isCRD(gvk.Group, gvk.Kind) {
			g, _, _ := unstructured.NestedString(o.Obj.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Obj.Object, "spec", "names", "kind")
			newKinds[schema.GroupKind{Group: g, Kind: k}] = true
		}
		m, err := c.mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
		switch {
		case meta.IsNoMatchError(err) && newKinds[gvk.GroupKind()]:
			it.d.Action, it.done = resource.Created, true // with its CRD
		case meta.IsNoMatchError(err):
			it.d.Action, it.done = resource.Failed, true
			it.d.Error = fmt.Sprintf("%s: unknown kind %s (apiVersion %s): the cluster serves no such resource; is its CustomResourceDefinition installed?", o.Source, gvk.Kind, gvk.GroupVersion())
		case err != nil:
			return out, fmt.Errorf("diff: discover the resource of %s: %w", gvk, err)
		}
		if it.done {
			continue
		}
		it.mapping = m
		ns := it.u.GetNamespace()
		switch {
		case m.Scope.Name() == meta.RESTScopeNameNamespace && ns == "":
			ns = c.opts.defaultNamespace
		case m.Scope.Name() != meta.RESTScopeNameNamespace && ns != "":
			ns = ""
		}
		if ns != it.u.GetNamespace() {
			it.u = it.u.DeepCopy()
			it.u.SetNamespace(ns)
		}
		it.key.Namespace = ns
		it.d.ID = it.key.id()
		if other, dup := keys[it.key]; dup {
			it.d.Action, it.done = resource.Failed, true
			it.d.Error = fmt.Sprintf("duplicate definition of %s (also in %s)", it.d.ID, other.obj.Source)
			continue
		}
		keys[it.key] = it
	}
	// Created objects whose kind is not served yet diff from nothing to
	// their manifest.
	for _, it := range items {
		if it.done && it.d.Action == resource.Created {
			desired, _, err := prepare(it.u, opts.GCMark, c.opts.fieldManager)
			if err != nil {
				it.d.Action, it.d.Error = resource.Failed, err.Error()
				continue
			}
			it.d.Diff = unifiedDiff(it.d.ID, nil, desired)
		}
	}

	// Namespaces first: what is in a namespace that would be created
	// cannot be dry-run applied.
	var newNamespaces sync.Map
	one := func(it *diffItem) {
		if it.done {
			return
		}
		it.d = c.diffOne(ctx, it.u, it.mapping, it.d, opts, func(ns string) bool {
			_, ok := newNamespaces.Load(ns)
			return ok
		})
		if isNamespace(it.key.Group, it.key.Kind) && it.d.Action == resource.Created {
			newNamespaces.Store(it.key.Name, true)
		}
	}
	var first, second []*diffItem
	for _, it := range items {
		if isNamespace(it.key.Group, it.key.Kind) {
			first = append(first, it)
		} else {
			second = append(second, it)
		}
	}
	parallel(c.opts.workers, len(first), func(i int) { one(first[i]) })
	parallel(c.opts.workers, len(second), func(i int) { one(second[i]) })
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("diff: %w", err)
	}
	for _, it := range items {
		out = append(out, it.d)
	}

	if !opts.Prune {
		return out, nil
	}
	blocked := opts.PruneBlocked
	switch {
	case blocked != "":
	case len(perrs) > 0:
		blocked = fmt.Sprintf("%d manifest error(s); nothing is pruned until every manifest parses", len(perrs))
	case len(objs) == 0:
		blocked = "no manifests found; nothing is pruned while the git paths hold no objects"
	}
	pruned, err := c.diffPrune(ctx, keys2set(keys), opts.GCMark, blocked)
	if err != nil {
		return out, fmt.Errorf("diff: %w", err)
	}
	return append(out, pruned...), nil
}

func keys2set[T any](m map[objKey]T) map[objKey]bool {
	s := make(map[objKey]bool, len(m))
	for k := range m {
		s[k] = true
	}
	return s
}

// diffOne dry-runs the apply of u and diffs the result with the live
// object.
func (c *Cluster) diffOne(ctx context.Context, u *unstructured.Unstructured, m *meta.RESTMapping, d ObjectDiff, opts SyncOptions, newNamespace func(string) bool) ObjectDiff {
	if IgnoreOf(u.GetAnnotations()) == IgnoreAlways {
		d.Action = resource.Skipped
		return d
	}
	ns := u.GetNamespace()
	live, err := c.dyn.Resource(m.Resource).Namespace(ns).Get(ctx, u.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		d.Action, d.Error = resource.Failed, fmt.Sprintf("get: %v", err)
		return d
	case IgnoreOf(live.GetAnnotations()) == IgnoreAlways:
		d.Action, d.Error = resource.Skipped, "annotated "+IgnoreAnnotation+": true in the cluster"
		return d
	}
	desired, _, err := prepare(u, opts.GCMark, c.opts.fieldManager)
	if err != nil {
		d.Action, d.Error = resource.Failed, err.Error()
		return d
	}
	_, res, err := c.apply(ctx, m, desired, true)
	if err != nil {
		if apierrors.IsNotFound(err) && newNamespace(ns) {
			d.Action, d.Diff = resource.Created, unifiedDiff(d.ID, nil, desired)
			return d
		}
		d.Action, d.Error = resource.Failed, err.Error()
		return d
	}
	after, _ := res.(*unstructured.Unstructured)
	d.Diff = unifiedDiff(d.ID, live, after)
	switch {
	case live == nil:
		d.Action = resource.Created
	case d.Diff == "":
		d.Action = resource.Unchanged
	default:
		d.Action = resource.Configured
	}
	return d
}

// diffPrune lists the live objects carrying mark that fluxd applied and
// that are not in desired, as Pruned with a diff to nothing, or, when
// blocked or annotated ignore, Skipped.
func (c *Cluster) diffPrune(ctx context.Context, desired map[objKey]bool, mark, blocked string) ([]ObjectDiff, error) {
	targets, err := c.prunableResources(ctx)
	if err != nil {
		return nil, err
	}
	lists := make([][]liveObject, len(targets))
	errs := make([]error, len(targets))
	parallel(c.opts.workers, len(targets), func(i int) {
		lists[i], errs[i] = c.listMarked(ctx, targets[i], GCMarkLabel+"="+mark)
	})
	var live []liveObject
	for i, err := range errs {
		if err != nil {
			var status apierrors.APIStatus
			if errors.As(err, &status) {
				continue // refused: not pruned by Sync either
			}
			return nil, fmt.Errorf("list %s: %w", targets[i].gvr.GroupResource(), err)
		}
		live = append(live, lists[i]...)
	}
	cands := planPrune(live, desired, blocked)
	out := make([]ObjectDiff, len(cands))
	parallel(c.opts.workers, len(cands), func(i int) {
		l := cands[i].Live
		d := ObjectDiff{ID: l.Key.id(), Action: resource.Pruned}
		if cands[i].Reason != "" {
			d.Action, d.Error = resource.Skipped, cands[i].Reason
			out[i] = d
			return
		}
		ns := ""
		if l.Namespaced {
			ns = l.Key.Namespace
		}
		u, err := c.dyn.Resource(l.GVR).Namespace(ns).Get(ctx, l.Key.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			d.Action = resource.Unchanged // gone meanwhile
		case err != nil:
			d.Action, d.Error = resource.Failed, fmt.Sprintf("get: %v", err)
		default:
			d.Diff = unifiedDiff(d.ID, u, nil)
		}
		out[i] = d
	})
	return out, nil
}

// diffYAML renders an object for a diff: YAML with sorted keys, without
// status, managedFields, resourceVersion, generation, uid, selfLink,
// creationTimestamp and ChecksumAnnotation. A nil object is "".
func diffYAML(u *unstructured.Unstructured) string {
	if u == nil {
		return ""
	}
	obj := u.DeepCopy().Object
	delete(obj, "status")
	if md, ok := obj["metadata"].(map[string]interface{}); ok {
		for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "selfLink", "creationTimestamp"} {
			delete(md, f)
		}
		removeKeys(md, "annotations", ChecksumAnnotation)
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return fmt.Sprintf("# cannot render as YAML: %v\n", err)
	}
	return string(b)
}

// unifiedDiff diffs two objects' diffYAML; "" when they are the same.
func unifiedDiff(id resource.ID, before, after *unstructured.Unstructured) string {
	a, b := diffYAML(before), diffYAML(after)
	if a == b {
		return ""
	}
	s, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        splitLines(a),
		B:        splitLines(b),
		FromFile: "live/" + id.String(),
		ToFile:   "git/" + id.String(),
		Context:  3,
	})
	if err != nil {
		return fmt.Sprintf("# cannot diff: %v\n", err)
	}
	return s
}

// splitLines splits s into lines that keep their "\n"; "" has none.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n"
	}
	return lines
}
