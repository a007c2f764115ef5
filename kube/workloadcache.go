package kube

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/fluxd/fluxd/kube/resource"
)

// WorkloadCache keeps the cluster's workloads in memory, watched by
// informers (one LIST and then one WATCH per kind, and one of namespaces),
// so that Workloads answers without a request to the apiserver. Each change
// of an object is turned into its Workload (status and all) when it
// arrives, so a read only copies.
//
// Make one with Cluster.NewWorkloadCache and Run it. Until it is Ready, and
// after Run returns, Workloads asks the apiserver (Cluster.Workloads).
// It is safe for concurrent use.
type WorkloadCache struct {
	c       *Cluster
	started atomic.Bool
	state   atomic.Pointer[cacheState]

	mu    sync.Mutex
	items map[resource.ID]Workload
	// snap is items sorted (see lessID); nil when items changed since.
	snap []Workload
	gen  atomic.Uint64
}

// cacheState is what a running cache watches with.
type cacheState struct {
	synced     []func() bool
	namespaces cache.Store
}

// NewWorkloadCache returns a WorkloadCache of c's cluster, not yet running.
func (c *Cluster) NewWorkloadCache() *WorkloadCache {
	return &WorkloadCache{c: c, items: map[resource.ID]Workload{}}
}

// Run fills the cache and keeps it current until ctx is done, then
// returns nil. It fails only when it is called twice: while the apiserver
// cannot be reached it keeps trying, and the cache is not Ready. A kind
// the cluster does not serve is left out, as in Cluster.Workloads.
func (w *WorkloadCache) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("workload cache: Run called twice")
	}
	kinds, err := w.servedKinds(ctx)
	if err != nil {
		return nil // ctx is done
	}
	var (
		informers []cache.SharedIndexInformer
		synced    []func() bool
	)
	for _, k := range kinds {
		inf := dynamicinformer.NewFilteredDynamicInformer(w.c.dyn, k.gvr, "", 0, cache.Indexers{}, nil).Informer()
		if err := inf.SetTransform(slimWorkload(k)); err != nil {
			return fmt.Errorf("workload cache: %w", err)
		}
		reg, err := inf.AddEventHandler(w.handler(k))
		if err != nil {
			return fmt.Errorf("workload cache: %w", err)
		}
		informers = append(informers, inf)
		synced = append(synced, reg.HasSynced)
	}
	ns := metadatainformer.NewFilteredMetadataInformer(w.c.meta, namespaceGVR, "", 0, cache.Indexers{}, nil).Informer()
	if err := ns.SetTransform(func(obj interface{}) (interface{}, error) {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetManagedFields(nil)
			m.SetAnnotations(nil)
		}
		return obj, nil
	}); err != nil {
		return fmt.Errorf("workload cache: %w", err)
	}
	informers = append(informers, ns)
	synced = append(synced, ns.HasSynced)

	w.state.Store(&cacheState{synced: synced, namespaces: ns.GetStore()})
	defer w.state.Store(nil)
	var wg sync.WaitGroup
	for _, inf := range informers {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	wg.Wait()
	return nil
}

// servedKinds returns the workload kinds the cluster serves. It retries
// discovery, backing off up to 30s, until it succeeds or ctx is done.
func (w *WorkloadCache) servedKinds(ctx context.Context) ([]workloadKind, error) {
	wait := 250 * time.Millisecond
	for {
		var (
			kinds []workloadKind
			err   error
		)
		for _, k := range workloadKinds {
			_, err = w.c.mapper.RESTMappingWithContext(ctx, k.gvr.GroupVersion().WithKind(k.kind).GroupKind(), k.gvr.Version)
			if meta.IsNoMatchError(err) {
				err = nil
				continue
			}
			if err != nil {
				break
			}
			kinds = append(kinds, k)
		}
		if err == nil {
			return kinds, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
		w.c.mapper.ResetWithContext(ctx)
	}
}

// Ready reports whether the cache is running and holds every object its
// informers listed.
func (w *WorkloadCache) Ready() bool {
	st := w.state.Load()
	if st == nil {
		return false
	}
	for _, s := range st.synced {
		if !s() {
			return false
		}
	}
	return true
}

// Generation counts the changes the cache has seen: while it stays the
// same (and the cache Ready), Workloads returns the same. A caller can key
// what it makes of the workloads (an encoded response) on it.
func (w *WorkloadCache) Generation() uint64 { return w.gen.Load() }

// WaitReady waits until the cache is Ready, or ctx is done.
func (w *WorkloadCache) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !w.Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("workload cache not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Workloads is Cluster.Workloads from memory: the workloads in namespace,
// or in all namespaces when namespace is "", sorted by namespace, kind and
// name. The Workloads share their maps and slices with the cache: do not
// modify them.
func (w *WorkloadCache) Workloads(ctx context.Context, namespace string) ([]Workload, error) {
	st := w.state.Load()
	if st == nil || !w.Ready() {
		return w.c.Workloads(ctx, namespace)
	}
	snap := w.snapshot()
	if namespace == "" {
		if len(snap) == 0 {
			return nil, nil
		}
		return slices.Clone(snap), nil
	}
	lo := sort.Search(len(snap), func(i int) bool { return snap[i].ID.Namespace >= namespace })
	hi := lo + sort.Search(len(snap)-lo, func(i int) bool { return snap[lo+i].ID.Namespace > namespace })
	if lo == hi {
		if _, ok, _ := st.namespaces.GetByKey(namespace); !ok {
			return nil, fmt.Errorf("namespace %q: %w", namespace, ErrNamespaceNotFound)
		}
		return nil, nil
	}
	return slices.Clone(snap[lo:hi]), nil
}

// snapshot returns the sorted workloads, sorting them again if they
// changed. The slice is never modified once made.
func (w *WorkloadCache) snapshot() []Workload {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.snap == nil {
		s := make([]Workload, 0, len(w.items))
		for _, wl := range w.items {
			s = append(s, wl)
		}
		sortWorkloads(s)
		w.snap = s
	}
	return w.snap
}

func (w *WorkloadCache) handler(k workloadKind) cache.ResourceEventHandler {
	set := func(obj interface{}) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		wl := makeWorkload(k, u)
		w.mu.Lock()
		if old, ok := w.items[wl.ID]; ok && reflect.DeepEqual(old, wl) {
			w.mu.Unlock()
			return // a write that changed nothing shown
		}
		w.items[wl.ID] = wl
		w.snap = nil
		w.gen.Add(1)
		w.mu.Unlock()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { set(obj) },
		UpdateFunc: func(_, obj interface{}) { set(obj) },
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return
			}
			id := resource.MakeID(u.GetNamespace(), k.kind, u.GetName())
			w.mu.Lock()
			delete(w.items, id)
			w.snap = nil
			w.gen.Add(1)
			w.mu.Unlock()
		},
	}
}

// slimWorkload drops from a watched object what a Workload never uses and
// takes the most memory (managedFields, kubectl's last-applied
// annotation), and sets its kind if missing.
func slimWorkload(k workloadKind) cache.TransformFunc {
	return func(obj interface{}) (interface{}, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		u.SetManagedFields(nil)
		if ann := u.GetAnnotations(); ann != nil {
			if _, ok := ann[lastAppliedAnnotation]; ok {
				delete(ann, lastAppliedAnnotation)
				u.SetAnnotations(ann)
			}
		}
		if u.GetKind() == "" {
			u.SetGroupVersionKind(k.gvr.GroupVersion().WithKind(k.kind))
		}
		return u, nil
	}
}
