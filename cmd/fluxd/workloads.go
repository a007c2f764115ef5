package main

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/sync"
)

// clusterAPI answers the routes that read the cluster: list-workloads and
// export. Policies come from the manifests at the commit the sync tag
// marks, never from memory alone.
type clusterAPI struct {
	cluster  *kube.Cluster
	cache    *kube.WorkloadCache
	repo     *gitstate.Repo
	loop     *sync.Loop
	paths    []string
	readOnly bool
	syncOpts kube.SyncOptions
	manifest manifestCache
}

// ListWorkloads lists live workloads with their policies from git, and
// the image git gives each container where it is not the live one.
func (a *clusterAPI) ListWorkloads(ctx context.Context, namespace string, ids []resource.ID) ([]api.ControllerStatus, error) {
	ws, err := a.cache.Workloads(ctx, namespace)
	if errors.Is(err, kube.ErrNamespaceNotFound) {
		return nil, api.MissingError(err, fmt.Sprintf("There is no namespace %q in the cluster. List them with 'kubectl get namespaces', or use --all-namespaces.", namespace))
	}
	if err != nil {
		return nil, api.ServerError(err, "fluxd could not list the workloads in the cluster; see its log.")
	}
	st := a.loop.Status()
	commit := st.Applied
	if commit == "" {
		commit = st.Head
	}
	inRepo, err := a.manifest.workloads(a.repo, commit, a.paths)
	if err != nil {
		return nil, api.ServerError(err, "fluxd could not read the manifests at "+short(commit)+"; see its log.")
	}
	return controllerStatuses(ws, inRepo, st.LastRecord, a.readOnly, ids), nil
}

// controllerStatuses is the answer of ListWorkloads: the live workloads
// (only those in ids, unless there are none), with what the manifests say
// of each and the errors of the last sync record (nil when none).
func controllerStatuses(ws []kube.Workload, inRepo map[resource.ID]repoObject, rec *notes.SyncRecord, readOnly bool, ids []resource.ID) []api.ControllerStatus {
	syncErrs := map[string]string{}
	if rec != nil {
		for _, e := range rec.Errors {
			syncErrs[e.Object] = e.Error
		}
	}
	want := map[resource.ID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := make([]api.ControllerStatus, 0, len(ws))
	for _, w := range ws {
		if len(want) > 0 && !want[w.ID] {
			continue
		}
		repo, found := inRepo[w.ID]
		out = append(out, controllerStatus(w, repo, found, readOnly, syncErrs[w.ID.String()]))
	}
	return out
}

// controllerStatus describes the live workload w; repo is its manifest,
// when inRepo.
func controllerStatus(w kube.Workload, repo repoObject, inRepo, readOnly bool, syncErr string) api.ControllerStatus {
	p := resource.PoliciesFromAnnotations(repo.annotations)
	cs := api.ControllerStatus{
		ID:         w.ID,
		Containers: make([]api.Container, 0, len(w.Containers)),
		Status:     string(w.Status),
		Rollout: api.RolloutStatus{Desired: w.Rollout.Desired, Updated: w.Rollout.Updated, Ready: w.Rollout.Ready,
			Available: w.Rollout.Available, Outdated: w.Rollout.Outdated, Messages: w.Rollout.Messages},
		SyncError:  syncErr,
		Antecedent: w.Antecedent,
		Labels:     w.Labels,
		Automated:  p.Automated(),
		Locked:     p.Locked(),
		Ignore:     p.Ignored(),
	}
	if len(p) > 0 {
		cs.Policies = p
	}
	switch {
	case readOnly:
		cs.ReadOnly = api.ReadOnlyROMode
	case !inRepo:
		cs.ReadOnly = api.ReadOnlyMissing
	case w.ID.Namespace == "kube-system":
		cs.ReadOnly = api.ReadOnlySystem
	}
	for _, c := range w.Containers {
		ct := api.Container{Name: c.Name, Current: api.Info{ID: api.ImageRef(c.Image)}}
		if img, ok := repo.images[c.Name]; ok && img != c.Image {
			ct.RepoImage = img
		}
		cs.Containers = append(cs.Containers, ct)
	}
	return cs
}

// Export exports the cluster's workloads as clean YAML.
func (a *clusterAPI) Export(ctx context.Context) ([]byte, error) {
	objs, err := a.cluster.Export(ctx, "")
	if err != nil {
		return nil, api.ServerError(err, "fluxd could not read the cluster; see its log.")
	}
	return kube.ExportYAML(objs), nil
}

// manifestCache keeps the manifests at one commit, read from git and
// parsed once, so a thousand calls on one commit (list-workloads, the image
// scanner's watch list) parse it once between them.
type manifestCache struct {
	mu     gosync.Mutex
	commit string
	loaded bool
	objs   []kube.Object
	byID   map[resource.ID]repoObject
}

// repoObject is what list-workloads reads from an object's manifest.
type repoObject struct {
	annotations map[string]string
	// images maps the names of the containers and init containers of a
	// workload's pod template to their images; nil for other kinds.
	images map[string]string
}

// manifestFiles reads the manifest files under paths at a commit, as
// *gitstate.Repo does.
type manifestFiles interface {
	Files(commit string, paths []string) ([]resource.File, error)
}

// objects returns the parsed manifests at commit ("" gives none).
func (m *manifestCache) objects(repo manifestFiles, commit string, paths []string) ([]kube.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.load(repo, commit, paths); err != nil {
		return nil, err
	}
	return m.objs, nil
}

// workloads returns what the manifests at commit say of each object, by
// the ID of the object it makes in the cluster: a workload whose manifest
// names no namespace is in the default one, as sync puts it there.
func (m *manifestCache) workloads(repo manifestFiles, commit string, paths []string) (map[resource.ID]repoObject, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.load(repo, commit, paths); err != nil {
		return nil, err
	}
	return m.byID, nil
}

func (m *manifestCache) load(repo manifestFiles, commit string, paths []string) error {
	if m.loaded && commit == m.commit {
		return nil
	}
	var objs []kube.Object
	if commit != "" {
		files, err := repo.Files(commit, paths)
		if err != nil && !errors.Is(err, gitstate.ErrPathNotFound) {
			return err
		}
		objs, _ = kube.Parse(files) // files that do not parse are reported by the sync
	}
	m.commit, m.loaded, m.objs, m.byID = commit, true, objs, repoObjects(objs)
	return nil
}

// repoObjects indexes parsed manifests by the ID of what they make.
func repoObjects(objs []kube.Object) map[resource.ID]repoObject {
	byID := make(map[resource.ID]repoObject, len(objs))
	for _, o := range objs {
		id := o.ID()
		ro := repoObject{annotations: o.Obj.GetAnnotations()}
		if path := resource.PodSpecPath(id.Kind); path != nil {
			if id.Namespace == resource.ClusterScope {
				id = resource.MakeID(kube.DefaultNamespace, id.Kind, id.Name)
			}
			ro.images = podContainerImages(o.Obj.Object, path)
		}
		byID[id] = ro
	}
	return byID
}

// podContainerImages maps the names of the containers and init containers
// of the pod spec at path to their images.
func podContainerImages(obj map[string]interface{}, path []string) map[string]string {
	var cur interface{} = obj
	for _, p := range path {
		m, _ := cur.(map[string]interface{})
		cur = m[p]
	}
	spec, _ := cur.(map[string]interface{})
	out := map[string]string{}
	for _, field := range []string{"containers", "initContainers"} {
		list, _ := spec[field].([]interface{})
		for _, c := range list {
			cm, _ := c.(map[string]interface{})
			if name, _ := cm["name"].(string); name != "" {
				image, _ := cm["image"].(string)
				out[name] = image
			}
		}
	}
	return out
}

// deployKey is the deploy key: from --git-ssh-key-file, or kept in a
// Kubernetes Secret that fluxd creates on first start.
type deployKey struct {
	mu        gosync.Mutex
	cluster   *kube.Cluster // nil when the key comes from a file
	namespace string
	name      string
	public    api.PublicKey
	onChange  func(private []byte) error
}

// fromSecret reads (or creates) the key in the Secret.
func (k *deployKey) fromSecret(ctx context.Context, regenerate bool) ([]byte, error) {
	key, err := k.cluster.DeployKey(ctx, k.namespace, k.name, regenerate)
	if err != nil {
		return nil, fmt.Errorf("deploy key in secret %s/%s: %w", k.namespace, k.name, err)
	}
	k.mu.Lock()
	k.public = api.PublicKey{Key: key.PublicKey, Fingerprints: map[string]api.Fingerprint{
		"sha256": {Hash: key.SHA256.Hash, Randomart: key.SHA256.Randomart},
		"md5":    {Hash: key.MD5.Hash, Randomart: key.MD5.Randomart},
	}}
	k.mu.Unlock()
	return key.PrivateKeyPEM, nil
}

// Public returns the public half, regenerating the key first if asked.
func (k *deployKey) Public(ctx context.Context, regenerate bool) (api.PublicKey, error) {
	if regenerate {
		if k.cluster == nil {
			return api.PublicKey{}, api.UserError(errors.New("this fluxd uses the deploy key given with --git-ssh-key-file, which it cannot regenerate"),
				"Make a new key with ssh-keygen -t ed25519, install its public half as a deploy key of the repository, and restart fluxd with --git-ssh-key-file pointing at it.")
		}
		private, err := k.fromSecret(ctx, true)
		if err != nil {
			return api.PublicKey{}, api.ServerError(err, "fluxd could not write the new key to its Secret; see its log.")
		}
		if err := k.onChange(private); err != nil {
			return api.PublicKey{}, api.ServerError(err, "fluxd made a new key but cannot use it; see its log.")
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.public, nil
}

// Diff tells what a sync of the branch head would change, per object, from
// a server-side dry run.
func (a *clusterAPI) Diff(ctx context.Context) ([]api.ObjectDiff, error) {
	head := a.loop.Status().Head
	if head == "" {
		return nil, api.UserError(errors.New("fluxd has not fetched its repository yet"), "Wait for the first fetch; 'fluxctl status' shows it.")
	}
	var files []resource.File
	for _, p := range pathsOrRoot(a.paths) {
		fs, err := a.repo.Files(head, []string{p})
		if err != nil {
			return nil, api.UserError(err, "A git path cannot be read at the branch head; 'fluxctl status' shows the last sync's errors.")
		}
		files = append(files, fs...)
	}
	opts := a.syncOpts
	opts.DryRun = true
	ds, err := a.cluster.Diff(ctx, files, opts)
	if err != nil {
		return nil, api.ServerError(err, "fluxd could not ask the apiserver; see its log.")
	}
	out := make([]api.ObjectDiff, 0, len(ds))
	for _, d := range ds {
		out = append(out, api.ObjectDiff{ID: d.ID.String(), Source: d.Source, Action: string(d.Action), Diff: d.Diff, Error: d.Error})
	}
	return out, nil
}

func pathsOrRoot(paths []string) []string {
	if len(paths) == 0 {
		return []string{""}
	}
	return paths
}

// Version changes whenever ListWorkloads may answer differently: the live
// workloads, the sync tag's commit (policies and images in git), or the
// last sync (errors).
func (a *clusterAPI) Version() string {
	st := a.loop.Status()
	at := ""
	if st.LastRecord != nil {
		at = st.LastRecord.Time.String() + st.LastRecord.Commit
	}
	return fmt.Sprintf("%d|%s|%s|%s", a.cache.Generation(), st.Applied, st.Head, at)
}
