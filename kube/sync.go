package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/fluxd/fluxd/kube/resource"
)

// SyncOptions are the settings of one Sync. The zero value, with GCMark
// set, applies what changed and prunes nothing.
type SyncOptions struct {
	// GCMark is the value of GCMarkLabel for this sync set (see GCMark).
	// Required.
	GCMark string
	// Prune deletes the objects carrying GCMark that left git.
	Prune bool
	// DryRun asks the apiserver what would happen (server-side dry run)
	// and changes nothing.
	DryRun bool
	// Force applies every object, also those whose ChecksumAnnotation
	// shows that their manifest has not changed since the last apply, to
	// revert changes made by hand (drift). Without it, such objects are
	// Unchanged with no request at all. Sync loops set it on their
	// periodic pass.
	Force bool
	// PruneBlocked, when set, says why nothing may be pruned this time
	// (for example, a git path could not be read), and stops pruning.
	PruneBlocked string
}

// Sync makes the cluster match the manifests: it parses files, applies the
// objects with server-side apply, and, with opts.Prune, deletes the objects
// carrying opts.GCMark that left git. Objects are applied by concurrent
// workers in three stages: Namespaces and CustomResourceDefinitions; once
// the CRDs are Established and their kinds served, everything but
// workloads; then workloads (Deployments, StatefulSets, Pods, Jobs, ...).
//
// Problems with single files or objects are in the ChangeSet: parse errors
// (which block pruning), objects of unknown kinds and objects the apiserver
// rejects. The error is for failures of the whole sync, such as an
// unreachable apiserver; the ChangeSet then holds what was done before.
func (c *Cluster) Sync(ctx context.Context, files []resource.File, opts SyncOptions) (resource.ChangeSet, error) {
	if err := validMark(opts.GCMark); err != nil {
		return resource.ChangeSet{}, fmt.Errorf("sync: %w", err)
	}
	objs, perrs := c.parsed.parse(files)
	r := &syncRun{
		c:        c,
		opts:     opts,
		selector: GCMarkLabel + "=" + opts.GCMark,
		live:     map[objKey]*liveObject{},
		listed:   map[schema.GroupResource]bool{},
		unlisted: map[schema.GroupResource]bool{},
		keys:     map[objKey]*item{},
	}
	cs := resource.ChangeSet{Changes: []resource.Change{}, ParseErrors: perrs}
	changes, err := r.run(ctx, objs, len(perrs))
	cs.Changes = append(cs.Changes, changes...)
	cs.PruneBlocked = r.pruneBlocked
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		return cs, fmt.Errorf("sync: %w", err)
	}
	return cs, nil
}

// item is one desired object on its way through a sync.
type item struct {
	obj     Object
	ignore  Ignore
	u       *unstructured.Unstructured // obj.Obj with its effective namespace
	key     objKey
	mapping *meta.RESTMapping // nil while the kind is unknown
	// defines is, for a CRD, the group and kind it serves.
	defines schema.GroupKind
	change  resource.Change
	done    bool // change is final
}

func (it *item) finish(a resource.Action, msg string) {
	it.change.Action, it.change.Error, it.done = a, msg, true
}

// listTarget is a resource to LIST for the live index.
type listTarget struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}

// syncRun is the state of one Sync. Its maps are written only between the
// concurrent phases, never while workers read them.
type syncRun struct {
	c            *Cluster
	opts         SyncOptions
	selector     string
	items        []*item
	keys         map[objKey]*item
	live         map[objKey]*liveObject
	listed       map[schema.GroupResource]bool // listed into live
	unlisted     map[schema.GroupResource]bool // LIST refused; objects applied blindly
	nsCreated    sync.Map                      // dry run: namespaces that would be created
	pruneBlocked string
}

func (r *syncRun) run(ctx context.Context, objs []Object, parseErrors int) ([]resource.Change, error) {
	for _, o := range objs {
		it := &item{obj: o, ignore: o.Ignore(), u: o.Obj, change: resource.Change{ID: o.ID(), Source: o.Source}}
		gvk := o.Obj.GroupVersionKind()
		it.key = objKey{Group: gvk.Group, Kind: gvk.Kind, Namespace: o.Obj.GetNamespace(), Name: o.Obj.GetName()}
		if isCRD(gvk.Group, gvk.Kind) {
			g, _, _ := unstructured.NestedString(o.Obj.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Obj.Object, "spec", "names", "kind")
			it.defines = schema.GroupKind{Group: g, Kind: k}
		}
		r.items = append(r.items, it)
	}

	// Map kinds to resources; custom resources whose CRD is new wait.
	var pending []*item
	for _, it := range r.items {
		ok, err := r.mapItem(ctx, it)
		if err != nil {
			return r.changes(nil), err
		}
		if !ok {
			pending = append(pending, it)
		}
	}

	// Index the live objects that carry our mark: every kind we apply,
	// and, to prune, every kind there is.
	var targets []listTarget
	for _, it := range r.items {
		if it.mapping != nil {
			targets = append(targets, mappingTarget(it.mapping))
		}
	}
	if r.opts.Prune {
		pt, err := r.c.prunableResources(ctx)
		if err != nil {
			return r.changes(nil), err
		}
		targets = append(targets, pt...)
	}
	if err := r.index(ctx, targets); err != nil {
		return r.changes(nil), err
	}

	// Stage 1: Namespaces and CRDs.
	var first, second []*item
	for _, it := range r.items {
		switch {
		case it.done:
		case it.mapping == nil:
		case isNamespace(it.key.Group, it.key.Kind) || isCRD(it.key.Group, it.key.Kind):
			first = append(first, it)
		default:
			second = append(second, it)
		}
	}
	r.applyAll(ctx, first)

	// Wait for new CRDs, then learn their kinds.
	crdChanged := false
	for _, it := range first {
		if isCRD(it.key.Group, it.key.Kind) && (it.change.Action == resource.Created || it.change.Action == resource.Configured) {
			crdChanged = true
		}
	}
	deadline := time.Now().Add(r.c.opts.crdWaitTimeout)
	if crdChanged && !r.opts.DryRun {
		r.waitEstablished(ctx, first, deadline)
	}
	if len(pending) > 0 || crdChanged {
		mapped, err := r.mapPending(ctx, pending, deadline)
		if err != nil {
			return r.changes(nil), err
		}
		targets = targets[:0]
		for _, it := range mapped {
			targets = append(targets, mappingTarget(it.mapping))
		}
		if err := r.index(ctx, targets); err != nil {
			return r.changes(nil), err
		}
		second = append(second, mapped...)
	}

	// Stage 2: everything else, workloads last (see isWorkload).
	var config, workloads []*item
	for _, it := range second {
		if isWorkload(it.key.Group, it.key.Kind) {
			workloads = append(workloads, it)
		} else {
			config = append(config, it)
		}
	}
	r.applyAll(ctx, config)
	r.applyAll(ctx, workloads)

	if !r.opts.Prune {
		return r.changes(nil), nil
	}
	switch {
	case r.opts.PruneBlocked != "":
		r.pruneBlocked = r.opts.PruneBlocked
	case parseErrors > 0:
		r.pruneBlocked = fmt.Sprintf("%d manifest error(s); nothing is pruned until every manifest parses", parseErrors)
	case len(objs) == 0:
		// An empty set would delete everything fluxd ever applied: far more
		// likely a wrong --git-path or a botched commit than the intent.
		r.pruneBlocked = "no manifests found; nothing is pruned while the git paths hold no objects"
	}
	return r.changes(r.prune(ctx)), nil
}

// changes returns the change of every item (in manifest order) and then
// the pruning changes.
func (r *syncRun) changes(pruned []resource.Change) []resource.Change {
	out := make([]resource.Change, 0, len(r.items)+len(pruned))
	for _, it := range r.items {
		if it.change.Action == "" {
			it.change.Action = resource.Failed
			it.change.Error = "not applied: the sync stopped early"
		}
		out = append(out, it.change)
	}
	return append(out, pruned...)
}

// mapItem finds the resource of it's kind. It reports false, with no error,
// for a kind the apiserver does not (yet) serve.
func (r *syncRun) mapItem(ctx context.Context, it *item) (bool, error) {
	gvk := it.obj.Obj.GroupVersionKind()
	m, err := r.c.mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover the resource of %s: %w", gvk, err)
	}
	it.mapping = m
	u := it.obj.Obj
	ns := u.GetNamespace()
	switch {
	case m.Scope.Name() == meta.RESTScopeNameNamespace && ns == "":
		ns = r.c.opts.defaultNamespace
	case m.Scope.Name() != meta.RESTScopeNameNamespace && ns != "":
		ns = ""
	}
	if ns != u.GetNamespace() {
		u = u.DeepCopy()
		u.SetNamespace(ns)
	}
	it.u = u
	it.key.Namespace = ns
	it.change.ID = it.key.id()
	if other, dup := r.keys[it.key]; dup {
		it.finish(resource.Failed, fmt.Sprintf("duplicate definition of %s (also in %s)", it.change.ID, other.obj.Source))
		return true, nil
	}
	r.keys[it.key] = it
	if it.ignore == IgnoreAlways {
		it.finish(resource.Skipped, "")
	}
	return true, nil
}

// mapPending maps the items whose kind was unknown, after resetting the
// mapper. While some are custom resources of CRDs applied in this sync,
// it retries until deadline: the apiserver serves a new kind shortly after
// the CRD is Established. It returns the items it mapped; the others are
// Failed (or, in a dry run, would be Created with their new CRD).
func (r *syncRun) mapPending(ctx context.Context, pending []*item, deadline time.Time) ([]*item, error) {
	newKinds := map[schema.GroupKind]bool{}
	for _, it := range r.items {
		if it.defines.Kind != "" && it.change.Action != resource.Failed {
			newKinds[it.defines] = true
		}
	}
	var mapped []*item
	for {
		r.c.mapper.ResetWithContext(ctx)
		var still []*item
		waiting := false
		for _, it := range pending {
			ok, err := r.mapItem(ctx, it)
			if err != nil {
				return mapped, err
			}
			if ok {
				if !it.done {
					mapped = append(mapped, it)
				}
				continue
			}
			still = append(still, it)
			waiting = waiting || newKinds[it.key.groupKind()]
		}
		pending = still
		if len(pending) == 0 || !waiting || r.opts.DryRun || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return mapped, ctx.Err()
		case <-time.After(crdEstablishedPollEvery):
		}
	}
	for _, it := range pending {
		gvk := it.obj.Obj.GroupVersionKind()
		switch {
		case it.ignore == IgnoreAlways:
			it.finish(resource.Skipped, "")
		case r.opts.DryRun && newKinds[it.key.groupKind()]:
			it.finish(resource.Created, "")
		case newKinds[it.key.groupKind()]:
			it.finish(resource.Failed, fmt.Sprintf("%s: kind %s (apiVersion %s) is not served %s after its CustomResourceDefinition was applied", it.obj.Source, gvk.Kind, gvk.GroupVersion(), r.c.opts.crdWaitTimeout))
		default:
			it.finish(resource.Failed, fmt.Sprintf("%s: unknown kind %s (apiVersion %s): the cluster serves no such resource; is its CustomResourceDefinition installed?", it.obj.Source, gvk.Kind, gvk.GroupVersion()))
		}
	}
	return mapped, nil
}

func (k objKey) groupKind() schema.GroupKind { return schema.GroupKind{Group: k.Group, Kind: k.Kind} }

func mappingTarget(m *meta.RESTMapping) listTarget {
	return listTarget{gvr: m.Resource, kind: m.GroupVersionKind.Kind, namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}
}

// prunableResources returns every resource discovery shows that can be
// listed and deleted, except events.
//
// Prune kinds: a live object with our mark can be of any kind that was
// ever in git, including kinds no longer there. Listing every resource
// (one metadata LIST with our label selector each, concurrently) finds them
// all with no state outside the cluster. A bare 1.34 apiserver serves 55
// such resources; listing them added 40 to 80 ms to a no-op sync of 1,000
// objects on a 2-core machine. Recording the kinds applied in git (in the
// sync record) would save those LISTs, but would lose kinds whenever a
// record is missing: in read-only mode, or after a crash between the apply
// and the record.
func (c *Cluster) prunableResources(ctx context.Context) ([]listTarget, error) {
	lists, err := c.disc.ServerPreferredResourcesWithContext(ctx)
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		// A failing aggregated API only hides its own kinds.
		return nil, fmt.Errorf("discover resources to prune: %w", err)
	}
	var out []listTarget
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range l.APIResources {
			if strings.Contains(res.Name, "/") || !hasVerb(res.Verbs, "list") || !hasVerb(res.Verbs, "delete") {
				continue
			}
			if res.Name == "events" && (gv.Group == "" || gv.Group == "events.k8s.io") {
				continue
			}
			out = append(out, listTarget{gvr: gv.WithResource(res.Name), kind: res.Kind, namespaced: res.Namespaced})
		}
	}
	return out, nil
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

// index LISTs (metadata only, with our label selector, all namespaces) the
// targets not listed yet, concurrently, into r.live. A LIST the apiserver
// refuses (forbidden, gone) leaves its resource unlisted: its objects are
// applied without the no-op check, and not pruned. Any other failure (the
// apiserver is unreachable) fails the sync.
func (r *syncRun) index(ctx context.Context, targets []listTarget) error {
	var todo []listTarget
	for _, t := range targets {
		gr := t.gvr.GroupResource()
		if r.listed[gr] || r.unlisted[gr] {
			continue
		}
		r.listed[gr] = true
		todo = append(todo, t)
	}
	results := make([][]liveObject, len(todo))
	errs := make([]error, len(todo))
	parallel(r.c.opts.workers, len(todo), func(i int) {
		results[i], errs[i] = r.c.listMarked(ctx, todo[i], r.selector)
	})
	for i, t := range todo {
		if err := errs[i]; err != nil {
			var status apierrors.APIStatus
			if !errors.As(err, &status) {
				return fmt.Errorf("list %s: %w", t.gvr.GroupResource(), err)
			}
			delete(r.listed, t.gvr.GroupResource())
			r.unlisted[t.gvr.GroupResource()] = true
			continue
		}
		for j := range results[i] {
			l := &results[i][j]
			r.live[l.Key] = l
		}
	}
	return nil
}

func (c *Cluster) listMarked(ctx context.Context, t listTarget, selector string) ([]liveObject, error) {
	list, err := c.meta.Resource(t.gvr).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := make([]liveObject, 0, len(list.Items))
	for i := range list.Items {
		m := &list.Items[i]
		l := liveObject{
			Key:             objKey{Group: t.gvr.Group, Kind: t.kind, Namespace: m.Namespace, Name: m.Name},
			GVR:             t.gvr,
			Namespaced:      t.namespaced,
			UID:             m.UID,
			ResourceVersion: m.ResourceVersion,
			Checksum:        m.Annotations[ChecksumAnnotation],
			Ignore:          IgnoreOf(m.Annotations),
			Controlled:      metav1.GetControllerOfNoCopy(m) != nil,
		}
		l.Entry = c.appliedEntry(m.ManagedFields)
		l.Applied = l.Entry != nil
		out = append(out, l)
	}
	return out, nil
}

// applyAll applies items by concurrent workers.
func (r *syncRun) applyAll(ctx context.Context, items []*item) {
	parallel(r.c.opts.workers, len(items), func(i int) { r.applyItem(ctx, items[i]) })
}

func (r *syncRun) applyItem(ctx context.Context, it *item) {
	if it.done {
		return
	}
	desired, sum, err := prepare(it.u, r.opts.GCMark, r.c.opts.fieldManager)
	if err != nil {
		it.finish(resource.Failed, err.Error())
		return
	}
	live := r.live[it.key]
	switch decideApply(it.ignore, live, sum, r.opts.Force) {
	case stepSkip:
		it.finish(resource.Skipped, "")
		return
	case stepUnchanged:
		it.finish(resource.Unchanged, "")
		return
	}
	status, out, err := r.c.apply(ctx, it.mapping, desired, r.opts.DryRun)
	if err != nil {
		if _, ok := r.nsCreated.Load(desired.GetNamespace()); ok && apierrors.IsNotFound(err) {
			it.finish(resource.Created, "") // dry run: its namespace is new too
			return
		}
		it.finish(resource.Failed, err.Error())
		return
	}
	if r.opts.DryRun {
		it.finish(r.dryRunAction(ctx, it, status, out.(*unstructured.Unstructured)), "")
		if isNamespace(it.key.Group, it.key.Kind) && it.change.Action == resource.Created {
			r.nsCreated.Store(it.key.Name, true)
		}
		return
	}
	it.finish(appliedAction(status, live, sum, out.GetResourceVersion(), func() bool {
		return sameEntry(live.Entry, r.c.appliedEntry(out.GetManagedFields()))
	}), "")
}

// appliedEntry returns our field manager's Apply entry of managedFields.
func (c *Cluster) appliedEntry(mfs []metav1.ManagedFieldsEntry) *metav1.ManagedFieldsEntry {
	for i := range mfs {
		f := &mfs[i]
		if f.Manager == c.opts.fieldManager && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" {
			return f
		}
	}
	return nil
}

// sameEntry compares two managedFields entries: API version, time and
// fields (as JSON values: the two may come in different encodings).
func sameEntry(a, b *metav1.ManagedFieldsEntry) bool {
	if a == nil || b == nil || a.APIVersion != b.APIVersion || !a.Time.Equal(b.Time) {
		return false
	}
	if (a.FieldsV1 == nil) != (b.FieldsV1 == nil) {
		return false
	}
	if a.FieldsV1 == nil {
		return true
	}
	var fa, fb interface{}
	if json.Unmarshal(a.FieldsV1.Raw, &fa) != nil || json.Unmarshal(b.FieldsV1.Raw, &fb) != nil {
		return false
	}
	return equality.Semantic.DeepEqual(fa, fb)
}

// dryRunAction tells, after a dry-run apply, what a real one would do. A dry
// run does not move the resourceVersion, so the result is compared with the
// live object instead.
func (r *syncRun) dryRunAction(ctx context.Context, it *item, status int, out *unstructured.Unstructured) resource.Action {
	if status == http.StatusCreated {
		return resource.Created
	}
	cur, err := r.c.dyn.Resource(it.mapping.Resource).Namespace(it.u.GetNamespace()).Get(ctx, it.u.GetName(), metav1.GetOptions{})
	if err != nil {
		return resource.Configured
	}
	if equality.Semantic.DeepEqual(withoutVolatile(cur), withoutVolatile(out)) {
		return resource.Unchanged
	}
	return resource.Configured
}

func withoutVolatile(u *unstructured.Unstructured) map[string]interface{} {
	c := u.DeepCopy()
	c.SetManagedFields(nil)
	c.SetResourceVersion("")
	c.SetGeneration(0)
	return c.Object
}

// apply sends one server-side apply, forcing conflicts, and returns the
// HTTP status (201 when it created the object) and what the apiserver
// returned: only the metadata (PartialObjectMetadata, in protobuf), which
// is all a sync needs and spares the apiserver encoding whole objects, or,
// in a dry run, the whole object, to compare with the live one.
func (c *Cluster) apply(ctx context.Context, m *meta.RESTMapping, u *unstructured.Unstructured, dryRun bool) (int, metav1.Object, error) {
	name, ns := u.GetName(), u.GetNamespace()
	for _, seg := range []string{name, ns} {
		if seg == "" {
			continue
		}
		if msgs := rest.IsValidPathSegmentName(seg); len(msgs) > 0 {
			return 0, nil, fmt.Errorf("invalid name %q: %s", seg, strings.Join(msgs, "; "))
		}
	}
	body, err := json.Marshal(u.Object)
	if err != nil {
		return 0, nil, fmt.Errorf("encode: %w", err)
	}
	rc := c.metaRest
	if dryRun {
		rc = c.rest
	}
	req := rc.Patch(types.ApplyPatchType).
		AbsPath(resourcePath(m.Resource, ns, name)...).
		Param("fieldManager", c.opts.fieldManager).
		Param("force", "true").
		Body(body)
	var (
		status int
		out    interface {
			metav1.Object
			runtime.Object
		}
	)
	if dryRun {
		req = req.Param("dryRun", metav1.DryRunAll)
		out = &unstructured.Unstructured{}
	} else {
		req = req.SetHeader("Accept", partialObjectMetadataAccept)
		out = &metav1.PartialObjectMetadata{}
	}
	if err := req.Do(ctx).StatusCode(&status).Into(out); err != nil {
		return 0, nil, err
	}
	return status, out, nil
}

// partialObjectMetadataAccept asks for metadata only, as the metadata
// client does.
const partialObjectMetadataAccept = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

// resourcePath is the URL path of one object, as the dynamic client builds it.
func resourcePath(gvr schema.GroupVersionResource, ns, name string) []string {
	p := []string{"api", gvr.Version}
	if gvr.Group != "" {
		p = []string{"apis", gvr.Group, gvr.Version}
	}
	if ns != "" {
		p = append(p, "namespaces", ns)
	}
	return append(p, gvr.Resource, name)
}

// waitEstablished waits until every CRD applied in this sync has the
// condition Established, or until deadline; a CRD still not Established
// then is Failed, with the reason the apiserver gives.
func (r *syncRun) waitEstablished(ctx context.Context, first []*item, deadline time.Time) {
	var crds []*item
	for _, it := range first {
		if isCRD(it.key.Group, it.key.Kind) && (it.change.Action == resource.Created || it.change.Action == resource.Configured) {
			crds = append(crds, it)
		}
	}
	reasons := make([]string, len(crds))
	for {
		var waiting []*item
		var why []string
		for _, it := range crds {
			ok, reason := r.c.established(ctx, it.key.Name)
			if !ok {
				waiting = append(waiting, it)
				why = append(why, reason)
			}
		}
		crds, reasons = waiting, why
		if len(crds) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(crdEstablishedPollEvery):
		}
	}
	for i, it := range crds {
		it.finish(resource.Failed, fmt.Sprintf("applied, but not Established after %s: %s", r.c.opts.crdWaitTimeout, reasons[i]))
	}
}

// established reports whether the CRD has condition Established, and if
// not, why.
func (c *Cluster) established(ctx context.Context, name string) (bool, string) {
	crd, err := c.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	reason := "no Established condition yet"
	for _, cond := range conds {
		m, _ := cond.(map[string]interface{})
		typ, _ := m["type"].(string)
		status, _ := m["status"].(string)
		msg, _ := m["message"].(string)
		switch {
		case typ == "Established" && status == "True":
			return true, ""
		case (typ == "NamesAccepted" || typ == "Established") && status == "False":
			reason = fmt.Sprintf("%s: %s", typ, msg)
		}
	}
	return false, reason
}

// prune deletes, in order (see planPrune), the marked objects that left git.
func (r *syncRun) prune(ctx context.Context) []resource.Change {
	desired := make(map[objKey]bool, len(r.items))
	for _, it := range r.items {
		desired[it.key] = true
	}
	live := make([]liveObject, 0, len(r.live))
	for _, l := range r.live {
		live = append(live, *l)
	}
	cands := planPrune(live, desired, r.pruneBlocked)
	changes := make([]resource.Change, len(cands))
	for start := 0; start < len(cands); {
		end := start
		for end < len(cands) && pruneOrder(cands[end].Live) == pruneOrder(cands[start].Live) {
			end++
		}
		phase := cands[start:end]
		parallel(r.c.opts.workers, len(phase), func(i int) {
			changes[start+i] = r.pruneOne(ctx, phase[i])
		})
		start = end
	}
	return changes
}

func (r *syncRun) pruneOne(ctx context.Context, c pruneCandidate) resource.Change {
	l := c.Live
	ch := resource.Change{ID: l.Key.id(), Action: resource.Pruned}
	if c.Reason != "" {
		ch.Action, ch.Error = resource.Skipped, c.Reason
		return ch
	}
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{
		PropagationPolicy: &bg,
		// Delete the object that was listed, not one made since.
		Preconditions: &metav1.Preconditions{UID: &l.UID},
	}
	if r.opts.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	ns := ""
	if l.Namespaced {
		ns = l.Key.Namespace
	}
	err := r.c.meta.Resource(l.GVR).Namespace(ns).Delete(ctx, l.Key.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		ch.Action, ch.Error = resource.Failed, fmt.Sprintf("prune: %v", err)
	}
	return ch
}

// parallel calls fn(0..n-1) from up to workers goroutines.
func parallel(workers, n int, fn func(i int)) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
