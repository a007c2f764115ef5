package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/fluxd/fluxd/kube/resource"
)

// ErrNamespaceNotFound is the error (wrapped, with the namespace) of
// Workloads for a namespace that does not exist.
var ErrNamespaceNotFound = errors.New("namespace not found")

// WorkloadStatus is a workload's rollout status, with Flux v1's names.
type WorkloadStatus string

// The statuses of a workload: kstatus's Current, InProgress and Failed
// (see sigs.k8s.io/cli-utils/pkg/kstatus/status), and everything else.
const (
	StatusReady    WorkloadStatus = "ready"
	StatusUpdating WorkloadStatus = "updating"
	StatusError    WorkloadStatus = "error"
	StatusUnknown  WorkloadStatus = "unknown"
)

// Antecedent annotations name the object that generated a workload (a
// resource ID such as `shop:helmrelease/cart`). AntecedentAnnotation wins
// over Flux v1's LegacyAntecedentAnnotation.
const (
	AntecedentAnnotation       = "fluxcd.io/antecedent"
	LegacyAntecedentAnnotation = "flux.weave.works/antecedent"
)

// lastAppliedAnnotation is kubectl's copy of the last manifest it applied.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Workload is a live Deployment, DaemonSet, StatefulSet or CronJob.
//
// Workloads returned by a WorkloadCache share their maps and slices with
// the cache: treat them as read-only.
type Workload struct {
	ID resource.ID
	// Labels and Annotations are the object's own (nil when it has none),
	// without kubectl's last-applied-configuration; policies are
	// annotations.
	Labels      map[string]string
	Annotations map[string]string
	// Containers are those of the pod template: the containers, then the
	// init containers.
	Containers []Container
	Status     WorkloadStatus
	// Message is kstatus's account of the status, e.g. "Available: 0/3"
	// or "Deployment is available. Replicas: 3".
	Message string
	Rollout Rollout
	// Antecedent is the ID in AntecedentAnnotation (or its legacy
	// spelling), the zero ID when there is none or it does not parse.
	Antecedent resource.ID
}

// Container is one container of a workload's pod template.
type Container struct {
	Name  string
	Image string
	// Init is true for an init container.
	Init bool
}

// Rollout counts a workload's pods, as Flux v1 did. Messages holds the
// reason of an error (Status "error") and is nil otherwise: fluxctl's
// `release --watch` stops at the first workload with messages.
type Rollout struct {
	// Desired is the number of pods wanted (of a StatefulSet rolling out
	// with a partition: wanted in the updated partition).
	Desired int
	// Updated pods run the current pod template.
	Updated int
	// Ready and Available pods pass their probes (Available: for
	// minReadySeconds).
	Ready     int
	Available int
	// Outdated pods run an older pod template.
	Outdated int
	Messages []string
}

// workloadKind is one kind of workload.
type workloadKind struct {
	gvr  schema.GroupVersionResource
	kind string
}

var workloadKinds = []workloadKind{
	{gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, kind: "Deployment"},
	{gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, kind: "DaemonSet"},
	{gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, kind: "StatefulSet"},
	{gvr: schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, kind: "CronJob"},
}

// Workloads lists the workloads in namespace, or in all namespaces when
// namespace is "", sorted by namespace, kind and name. It makes one LIST
// per kind (four, concurrently), and for a namespace where it finds none,
// one GET of the namespace: one that does not exist gives an error
// matching ErrNamespaceNotFound. A kind the cluster does not serve is left
// out.
//
// A WorkloadCache answers the same from memory.
func (c *Cluster) Workloads(ctx context.Context, namespace string) ([]Workload, error) {
	lists := make([][]Workload, len(workloadKinds))
	errs := make([]error, len(workloadKinds))
	parallel(len(workloadKinds), len(workloadKinds), func(i int) {
		lists[i], errs[i] = c.listWorkloads(ctx, workloadKinds[i], namespace)
	})
	var out []Workload
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", workloadKinds[i].gvr.GroupResource(), err)
		}
		out = append(out, lists[i]...)
	}
	if len(out) == 0 && namespace != "" {
		if err := c.namespaceExists(ctx, namespace); err != nil {
			return nil, err
		}
	}
	sortWorkloads(out)
	return out, nil
}

func (c *Cluster) listWorkloads(ctx context.Context, k workloadKind, namespace string) ([]Workload, error) {
	list, err := c.dyn.Resource(k.gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil // a kind this cluster does not serve
	}
	if err != nil {
		return nil, err
	}
	out := make([]Workload, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, makeWorkload(k, &list.Items[i]))
	}
	return out, nil
}

// namespaceExists returns an error matching ErrNamespaceNotFound when ns
// does not exist. When it cannot tell (no permission to read namespaces),
// it returns nil.
func (c *Cluster) namespaceExists(ctx context.Context, ns string) error {
	_, err := c.meta.Resource(namespaceGVR).Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("namespace %q: %w", ns, ErrNamespaceNotFound)
	case err == nil, apierrors.IsForbidden(err):
		return nil
	}
	return fmt.Errorf("get namespace %s: %w", ns, err)
}

func sortWorkloads(ws []Workload) {
	sort.Slice(ws, func(i, j int) bool { return lessID(ws[i].ID, ws[j].ID) })
}

// lessID orders IDs by namespace, kind, then name.
func lessID(a, b resource.ID) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

// makeWorkload reads a Workload from a live object of kind k.
func makeWorkload(k workloadKind, u *unstructured.Unstructured) Workload {
	if u.GetKind() == "" {
		// kstatus picks its rules by kind; u itself may be shared.
		obj := maps.Clone(u.Object)
		obj["apiVersion"], obj["kind"] = k.gvr.GroupVersion().String(), k.kind
		u = &unstructured.Unstructured{Object: obj}
	}
	ann := u.GetAnnotations() // a copy
	delete(ann, lastAppliedAnnotation)
	if len(ann) == 0 {
		ann = nil
	}
	w := Workload{
		ID:          resource.MakeID(u.GetNamespace(), k.kind, u.GetName()),
		Labels:      u.GetLabels(),
		Annotations: ann,
		Containers:  podContainers(u.Object, resource.PodSpecPath(k.kind)),
	}
	ante, ok := ann[AntecedentAnnotation]
	if !ok {
		ante = ann[LegacyAntecedentAnnotation]
	}
	if ante != "" {
		if id, err := resource.ParseID(ante); err == nil {
			w.Antecedent = id
		}
	}
	w.Status, w.Message = workloadStatus(u)
	w.Rollout = rollout(k.kind, u.Object)
	if w.Status == StatusError && w.Message != "" {
		w.Rollout.Messages = []string{w.Message}
	}
	return w
}

// workloadStatus maps kstatus's status of u to a WorkloadStatus.
func workloadStatus(u *unstructured.Unstructured) (WorkloadStatus, string) {
	res, err := status.Compute(u)
	if err != nil {
		return StatusUnknown, err.Error()
	}
	switch res.Status {
	case status.CurrentStatus:
		return StatusReady, res.Message
	case status.InProgressStatus:
		return StatusUpdating, res.Message
	case status.FailedStatus:
		return StatusError, res.Message
	}
	return StatusUnknown, res.Message
}

// podContainers lists the containers, then the init containers, of the
// pod spec at path.
func podContainers(obj map[string]interface{}, path []string) []Container {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	spec, _ := v.(map[string]interface{})
	out := []Container{}
	for _, field := range []string{"containers", "initContainers"} {
		list, _ := spec[field].([]interface{})
		for _, c := range list {
			m, _ := c.(map[string]interface{})
			name, _ := m["name"].(string)
			image, _ := m["image"].(string)
			out = append(out, Container{Name: name, Image: image, Init: field == "initContainers"})
		}
	}
	return out
}

// rollout counts pods as Flux v1 did for each kind.
func rollout(kind string, obj map[string]interface{}) Rollout {
	n := func(path ...string) int {
		v, _, _ := unstructured.NestedInt64(obj, path...)
		return int(v)
	}
	switch kind {
	case "Deployment":
		desired := 1
		if v, ok, _ := unstructured.NestedInt64(obj, "spec", "replicas"); ok {
			desired = int(v)
		}
		return Rollout{
			Desired:   desired,
			Updated:   n("status", "updatedReplicas"),
			Ready:     n("status", "readyReplicas"),
			Available: n("status", "availableReplicas"),
			Outdated:  max(0, n("status", "replicas")-n("status", "updatedReplicas")),
		}
	case "DaemonSet":
		return Rollout{
			Desired:   n("status", "desiredNumberScheduled"),
			Updated:   n("status", "updatedNumberScheduled"),
			Ready:     n("status", "numberReady"),
			Available: n("status", "numberAvailable"),
			Outdated:  max(0, n("status", "currentNumberScheduled")-n("status", "updatedNumberScheduled")),
		}
	case "StatefulSet":
		desired := 1
		if v, ok, _ := unstructured.NestedInt64(obj, "spec", "replicas"); ok {
			desired = int(v)
		}
		r := Rollout{Desired: desired, Ready: n("status", "readyReplicas"), Available: n("status", "availableReplicas")}
		typ, _, _ := unstructured.NestedString(obj, "spec", "updateStrategy", "type")
		if p, ok, _ := unstructured.NestedInt64(obj, "spec", "updateStrategy", "rollingUpdate", "partition"); ok && (typ == "" || typ == "RollingUpdate") {
			r.Desired = max(0, desired-int(p))
		}
		cur, _, _ := unstructured.NestedString(obj, "status", "currentRevision")
		upd, _, _ := unstructured.NestedString(obj, "status", "updateRevision")
		if cur != upd {
			r.Updated = n("status", "updatedReplicas")
		} else {
			r.Updated = n("status", "currentReplicas")
		}
		r.Outdated = max(0, r.Desired-r.Updated)
		return r
	}
	return Rollout{} // CronJob: no pods of its own
}
