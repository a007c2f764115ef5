package kube

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/fluxd/fluxd/kube/resource"
)

// PullSecrets finds the registry credentials the cluster holds for an image
// repository: the image pull secrets of the workloads that use it. It
// implements the PullSecrets interface of fluxd's registry client
// (DockerConfigs) with standard types only.
//
// It watches, with informers of its own, the workloads (keeping only their
// images, imagePullSecrets and service account), the service accounts
// (their imagePullSecrets) and the Secrets of type
// kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg (their
// payload), so DockerConfigs answers from memory. Workloads that are only in
// the manifests count too: see SetManifests.
//
// Make one with Cluster.NewPullSecrets and Run it. It needs permission to
// list and watch Secrets and ServiceAccounts; without it (403) it answers
// as if there were none, and Problem says so.
type PullSecrets struct {
	c       *Cluster
	started atomic.Bool
	state   atomic.Pointer[pullState]
	gen     atomic.Uint64 // bumped by every change of a workload or of the manifests

	mu        sync.Mutex
	manifests []podRef
	indexGen  uint64
	index     map[string][]podRef // repository -> workloads using it
}

// pullState is what a running PullSecrets reads from.
type pullState struct {
	workloads []cache.Store
	accounts  *watched
	secrets   []*watched
	all       []*watched
}

// watched is one informer: its store, and whether the apiserver refused to
// let fluxd list it.
type watched struct {
	what      string
	store     cache.Store
	synced    func() bool
	forbidden atomic.Pointer[error]
}

func (w *watched) done() bool { return w.synced() || w.forbidden.Load() != nil }

// readable reports whether the store holds what the cluster has.
func (w *watched) readable() bool { return w.synced() }

// podRef is what PullSecrets keeps of a workload.
type podRef struct {
	id             string // namespace/kind/name, for a stable order
	namespace      string
	repos          []string // images without tag or digest
	secrets        []string // imagePullSecrets
	serviceAccount string
}

var (
	serviceAccountGVR = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
)

// Secret types that hold registry credentials, and the key of each.
var dockerSecretTypes = []struct{ typ, key string }{
	{"kubernetes.io/dockerconfigjson", ".dockerconfigjson"},
	{"kubernetes.io/dockercfg", ".dockercfg"},
}

// pullSecretsWait bounds how long DockerConfigs waits for the informers to
// fill after a start.
const pullSecretsWait = 30 * time.Second

// NewPullSecrets returns a PullSecrets of c's cluster, not yet running.
func (c *Cluster) NewPullSecrets() *PullSecrets {
	return &PullSecrets{c: c}
}

// Run watches the cluster until ctx is done, then returns nil. It fails
// only when called twice.
func (p *PullSecrets) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("pull secrets: Run called twice")
	}
	kinds, err := (&WorkloadCache{c: p.c}).servedKinds(ctx)
	if err != nil {
		return nil // ctx is done
	}
	st := &pullState{}
	var informers []cache.SharedIndexInformer
	add := func(what string, gvr schema.GroupVersionResource, tweak dynamicinformer.TweakListOptionsFunc, transform cache.TransformFunc, onChange bool) (*watched, error) {
		inf := dynamicinformer.NewFilteredDynamicInformer(p.c.dyn, gvr, "", 0, cache.Indexers{}, tweak).Informer()
		if err := inf.SetTransform(transform); err != nil {
			return nil, err
		}
		w := &watched{what: what, store: inf.GetStore()}
		if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			if apierrors.IsForbidden(err) {
				// Said once, by Problem, not at every retry.
				e := fmt.Errorf("list %s: %w", what, err)
				w.forbidden.Store(&e)
				return
			}
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}); err != nil {
			return nil, err
		}
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(interface{}) { p.changed(onChange) },
			UpdateFunc: func(_, _ interface{}) { p.changed(onChange) },
			DeleteFunc: func(interface{}) { p.changed(onChange) },
		})
		if err != nil {
			return nil, err
		}
		w.synced = reg.HasSynced
		informers = append(informers, inf)
		st.all = append(st.all, w)
		return w, nil
	}
	for _, k := range kinds {
		w, err := add(k.gvr.Resource, k.gvr, nil, slimPod(k), true)
		if err != nil {
			return fmt.Errorf("pull secrets: %w", err)
		}
		st.workloads = append(st.workloads, w.store)
	}
	if st.accounts, err = add("serviceaccounts", serviceAccountGVR, nil, slimAccount, false); err != nil {
		return fmt.Errorf("pull secrets: %w", err)
	}
	for _, t := range dockerSecretTypes {
		selector := "type=" + t.typ
		w, err := add("secrets of type "+t.typ, secretGVR, func(o *metav1.ListOptions) { o.FieldSelector = selector }, slimSecret(t.key), false)
		if err != nil {
			return fmt.Errorf("pull secrets: %w", err)
		}
		st.secrets = append(st.secrets, w)
	}
	p.state.Store(st)
	defer p.state.Store(nil)
	var wg sync.WaitGroup
	for _, inf := range informers {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	wg.Wait()
	return nil
}

func (p *PullSecrets) changed(workload bool) {
	if workload {
		p.gen.Add(1)
	}
}

// Problem reports why pull secrets are not used, when the apiserver does not
// let fluxd read them; nil otherwise.
func (p *PullSecrets) Problem() error {
	st := p.state.Load()
	if st == nil {
		return nil
	}
	var errs []error
	for _, w := range st.all {
		if e := w.forbidden.Load(); e != nil && !w.synced() {
			errs = append(errs, *e)
		}
	}
	return errors.Join(errs...)
}

// SetManifests sets the workloads of the manifests (as Parse returns them;
// other objects are ignored), whose pull secrets count as the live ones'
// do. A namespaced object without a namespace is taken to be in the
// cluster's default namespace.
func (p *PullSecrets) SetManifests(objs []Object) {
	var refs []podRef
	for _, o := range objs {
		path := resource.PodSpecPath(o.Obj.GetKind())
		if path == nil {
			continue
		}
		ns := o.Obj.GetNamespace()
		if ns == "" {
			ns = p.c.opts.defaultNamespace
		}
		if r, ok := podRefOf(ns, o.Obj.GetKind(), o.Obj.GetName(), o.Obj.Object, path); ok {
			refs = append(refs, r)
		}
	}
	p.mu.Lock()
	p.manifests = refs
	p.mu.Unlock()
	p.gen.Add(1)
}

// DockerConfigs returns the payloads of the image pull secrets that apply
// to repo: for each workload (live, or in the manifests) that runs an image
// of repo, the secrets its pod spec names in imagePullSecrets, then those
// of its service account, each once. repo is compared with the workloads'
// images with their tags and digests stripped. Secrets that are missing or
// of another type are left out. It waits for the informers to fill after a
// start (up to 30s).
func (p *PullSecrets) DockerConfigs(ctx context.Context, repo string) ([][]byte, error) {
	st, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	seen := map[string]bool{}
	for _, r := range p.users(st, repo) {
		names := r.secrets
		if st.accounts.readable() {
			names = append(append([]string(nil), names...), p.accountSecrets(st, r.namespace, r.serviceAccount)...)
		}
		for _, name := range names {
			key := r.namespace + "/" + name
			if seen[key] {
				continue
			}
			seen[key] = true
			if b := secretPayload(st, key); b != nil {
				out = append(out, b)
			}
		}
	}
	return out, nil
}

// ready waits until every informer has listed what it may.
func (p *PullSecrets) ready(ctx context.Context) (*pullState, error) {
	deadline := time.Now().Add(pullSecretsWait)
	for {
		st := p.state.Load()
		if st != nil {
			done := true
			for _, w := range st.all {
				done = done && w.done()
			}
			if done {
				return st, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the cluster's image pull secrets are not read yet (the apiserver is slow or unreachable)")
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting to read the cluster's image pull secrets: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// users returns the workloads that run an image of repo, live ones first,
// each group in ID order.
func (p *PullSecrets) users(st *pullState, repo string) []podRef {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen := p.gen.Load(); p.index == nil || gen != p.indexGen {
		var live []podRef
		for _, s := range st.workloads {
			for _, obj := range s.List() {
				if u, ok := obj.(*unstructured.Unstructured); ok {
					if r, ok := slimPodRef(u); ok {
						live = append(live, r)
					}
				}
			}
		}
		sort.Slice(live, func(i, j int) bool { return live[i].id < live[j].id })
		manifests := append([]podRef(nil), p.manifests...)
		sort.Slice(manifests, func(i, j int) bool { return manifests[i].id < manifests[j].id })
		index := map[string][]podRef{}
		for _, r := range append(live, manifests...) {
			for i, repo := range r.repos {
				if !contains(r.repos[:i], repo) {
					index[repo] = append(index[repo], r)
				}
			}
		}
		p.index, p.indexGen = index, gen
	}
	return p.index[repo]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *PullSecrets) accountSecrets(st *pullState, namespace, name string) []string {
	if name == "" {
		name = "default"
	}
	obj, ok, _ := st.accounts.store.GetByKey(namespace + "/" + name)
	if !ok {
		return nil
	}
	u, _ := obj.(*unstructured.Unstructured)
	if u == nil {
		return nil
	}
	names, _, _ := unstructured.NestedStringSlice(u.Object, "pullSecrets")
	return names
}

func secretPayload(st *pullState, key string) []byte {
	for _, w := range st.secrets {
		obj, ok, _ := w.store.GetByKey(key)
		if !ok {
			continue
		}
		u, _ := obj.(*unstructured.Unstructured)
		if u == nil {
			continue
		}
		s, _, _ := unstructured.NestedString(u.Object, "payload")
		if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) > 0 {
			return b
		}
	}
	return nil
}

// slimMark marks an object slim already: an informer may transform an
// object more than once.
const slimMark = "fluxdPullSecrets"

func isSlim(u *unstructured.Unstructured) bool {
	_, ok := u.Object[slimMark]
	return ok
}

// slim makes the small object an informer keeps instead of obj.
func slim(u *unstructured.Unstructured, extra map[string]interface{}) *unstructured.Unstructured {
	obj := map[string]interface{}{
		slimMark:     true,
		"apiVersion": u.GetAPIVersion(),
		"kind":       u.GetKind(),
		"metadata": map[string]interface{}{
			"name":            u.GetName(),
			"namespace":       u.GetNamespace(),
			"resourceVersion": u.GetResourceVersion(),
		},
	}
	for k, v := range extra {
		obj[k] = v
	}
	return &unstructured.Unstructured{Object: obj}
}

// slimPod keeps a workload's images, pull secrets and service account.
func slimPod(k workloadKind) cache.TransformFunc {
	return func(obj interface{}) (interface{}, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || isSlim(u) {
			return obj, nil
		}
		r, _ := podRefOf(u.GetNamespace(), k.kind, u.GetName(), u.Object, resource.PodSpecPath(k.kind))
		return slim(u, map[string]interface{}{"pod": map[string]interface{}{
			"id":             r.id,
			"repos":          toInterfaces(r.repos),
			"secrets":        toInterfaces(r.secrets),
			"serviceAccount": r.serviceAccount,
		}}), nil
	}
}

func slimPodRef(u *unstructured.Unstructured) (podRef, bool) {
	pod, ok := u.Object["pod"].(map[string]interface{})
	if !ok {
		return podRef{}, false
	}
	r := podRef{namespace: u.GetNamespace()}
	r.id, _ = pod["id"].(string)
	r.serviceAccount, _ = pod["serviceAccount"].(string)
	r.repos, _, _ = unstructured.NestedStringSlice(pod, "repos")
	r.secrets, _, _ = unstructured.NestedStringSlice(pod, "secrets")
	return r, true
}

func toInterfaces(s []string) []interface{} {
	out := make([]interface{}, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// podRefOf reads a workload's pod spec at path.
func podRefOf(namespace, kind, name string, obj map[string]interface{}, path []string) (podRef, bool) {
	r := podRef{id: namespace + "/" + strings.ToLower(kind) + "/" + name, namespace: namespace}
	v, found, _ := unstructured.NestedFieldNoCopy(obj, path...)
	spec, _ := v.(map[string]interface{})
	if !found || spec == nil {
		return r, false
	}
	for _, field := range []string{"containers", "initContainers"} {
		list, _ := spec[field].([]interface{})
		for _, c := range list {
			m, _ := c.(map[string]interface{})
			image, _ := m["image"].(string)
			if repo := imageRepo(image); repo != "" {
				r.repos = append(r.repos, repo)
			}
		}
	}
	list, _ := spec["imagePullSecrets"].([]interface{})
	for _, s := range list {
		m, _ := s.(map[string]interface{})
		if name, _ := m["name"].(string); name != "" {
			r.secrets = append(r.secrets, name)
		}
	}
	r.serviceAccount, _ = spec["serviceAccountName"].(string)
	if r.serviceAccount == "" {
		r.serviceAccount, _ = spec["serviceAccount"].(string) // deprecated spelling
	}
	return r, true
}

// imageRepo strips the tag and digest from an image ref.
func imageRepo(ref string) string {
	repo := strings.TrimSpace(ref)
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo = repo[:i]
	}
	return repo
}

// slimAccount keeps a service account's imagePullSecrets, by name.
func slimAccount(obj interface{}) (interface{}, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || isSlim(u) {
		return obj, nil
	}
	var names []interface{}
	list, _, _ := unstructured.NestedSlice(u.Object, "imagePullSecrets")
	for _, s := range list {
		m, _ := s.(map[string]interface{})
		if name, _ := m["name"].(string); name != "" {
			names = append(names, name)
		}
	}
	return slim(u, map[string]interface{}{"pullSecrets": names}), nil
}

// slimSecret keeps a registry secret's payload (base64, as served).
func slimSecret(key string) cache.TransformFunc {
	return func(obj interface{}) (interface{}, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || isSlim(u) {
			return obj, nil
		}
		payload, _, _ := unstructured.NestedString(u.Object, "data", key)
		return slim(u, map[string]interface{}{"payload": payload}), nil
	}
}
