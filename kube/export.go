package kube

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/fluxd/fluxd/kube/resource"
)

// ExportedObject is one live object as a clean manifest (see Export).
type ExportedObject struct {
	ID resource.ID
	// Path is a file name for the object, for a repository with one file
	// per object: `<namespace>/<kind>-<name>.yaml`, lower-case kind; a
	// Namespace goes in its own directory, `<name>/namespace-<name>.yaml`.
	Path string
	// YAML is the object, one YAML document without a `---` line, with
	// its keys sorted.
	YAML []byte
}

// exportKind is a kind Export exports, in the order it writes them within
// a namespace.
type exportKind struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}

var exportKinds = []exportKind{
	{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, "Namespace", false},
	{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "ServiceAccount", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "ConfigMap", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, "Service", true},
	{schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}, "Ingress", true},
	{workloadKinds[0].gvr, "Deployment", true},
	{workloadKinds[1].gvr, "DaemonSet", true},
	{workloadKinds[2].gvr, "StatefulSet", true},
	{workloadKinds[3].gvr, "CronJob", true},
}

// systemNamespaces are exported neither as Namespaces nor with what they
// hold; the Namespace "default" is not exported, what it holds is.
var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// Export returns the cluster's workloads and what usually goes with them,
// in namespace or in all namespaces when namespace is "", as manifests
// that can be applied elsewhere: Namespaces, ServiceAccounts, ConfigMaps,
// Services, Ingresses, Deployments, DaemonSets, StatefulSets and CronJobs.
// Secrets are never exported.
//
// Left out are the system namespaces (kube-system, kube-public,
// kube-node-lease) with their contents, the Namespace "default", what the
// cluster makes by itself (the ConfigMap kube-root-ca.crt, the
// ServiceAccount default, the Service default/kubernetes, objects that
// another object controls, add-ons) and objects being deleted.
//
// Each object is cleaned of what the cluster wrote: status, the metadata
// that belongs to this incarnation of the object (uid, resourceVersion,
// generation, creationTimestamp, managedFields, owner references,
// finalizers), fluxd's and kubectl's bookkeeping (GCMarkLabel,
// ChecksumAnnotation, last-applied-configuration, the Deployment
// revision), a Service's allocated IPs and node ports, and the fields that
// hold the apiserver's defaults (see cleanObject). The objects come
// grouped by namespace (its Namespace first), then by kind in the order
// above, then by name.
//
// A namespace that does not exist gives an error matching
// ErrNamespaceNotFound.
func (c *Cluster) Export(ctx context.Context, namespace string) ([]ExportedObject, error) {
	if namespace != "" {
		if _, err := c.meta.Resource(namespaceGVR).Get(ctx, namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("export: namespace %q: %w", namespace, ErrNamespaceNotFound)
		} else if err != nil {
			return nil, fmt.Errorf("export: get namespace %s: %w", namespace, err)
		}
	}
	lists := make([][]unstructured.Unstructured, len(exportKinds))
	errs := make([]error, len(exportKinds))
	parallel(c.opts.workers, len(exportKinds), func(i int) {
		k := exportKinds[i]
		opts := metav1.ListOptions{}
		ri := c.dyn.Resource(k.gvr)
		var l *unstructured.UnstructuredList
		var err error
		switch {
		case !k.namespaced && namespace != "":
			opts.FieldSelector = "metadata.name=" + namespace
			l, err = ri.List(ctx, opts)
		case k.namespaced:
			l, err = ri.Namespace(namespace).List(ctx, opts)
		default:
			l, err = ri.List(ctx, opts)
		}
		switch {
		case apierrors.IsNotFound(err): // not served
		case err != nil:
			errs[i] = fmt.Errorf("export: list %s: %w", k.gvr.GroupResource(), err)
		default:
			lists[i] = l.Items
		}
	})
	type entry struct {
		rank int
		ns   string // the namespace, or the name of a Namespace
		u    *unstructured.Unstructured
		k    exportKind
		out  ExportedObject
		err  error
	}
	var entries []*entry
	for i, k := range exportKinds {
		if errs[i] != nil {
			return nil, errs[i]
		}
		for j := range lists[i] {
			u := &lists[i][j]
			if !exported(k, u) {
				continue
			}
			ns := u.GetNamespace()
			if !k.namespaced {
				ns = u.GetName()
			}
			entries = append(entries, &entry{rank: i, ns: ns, u: u, k: k})
		}
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.ns != b.ns {
			return a.ns < b.ns
		}
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		return a.u.GetName() < b.u.GetName()
	})
	parallel(runtime.GOMAXPROCS(0), len(entries), func(i int) {
		e := entries[i]
		if e.u.GetKind() == "" {
			e.u.SetGroupVersionKind(e.k.gvr.GroupVersion().WithKind(e.k.kind))
		}
		id := resource.MakeID(e.u.GetNamespace(), e.k.kind, e.u.GetName())
		cleanObject(e.u.Object)
		y, err := yaml.Marshal(e.u.Object)
		if err != nil {
			e.err = fmt.Errorf("export %s: %w", id, err)
			return
		}
		e.out = ExportedObject{ID: id, Path: fmt.Sprintf("%s/%s-%s.yaml", e.ns, strings.ToLower(e.k.kind), e.u.GetName()), YAML: y}
	})
	out := make([]ExportedObject, 0, len(entries))
	for _, e := range entries {
		if e.err != nil {
			return nil, e.err
		}
		out = append(out, e.out)
	}
	return out, nil
}

// ExportYAML joins exported objects into one multi-document YAML stream,
// each document starting with a `---` line, as Flux v1's export did.
func ExportYAML(objs []ExportedObject) []byte {
	var b bytes.Buffer
	for _, o := range objs {
		b.WriteString("---\n")
		b.Write(o.YAML)
		if len(o.YAML) > 0 && o.YAML[len(o.YAML)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// exported reports whether Export writes u, of kind k.
func exported(k exportKind, u *unstructured.Unstructured) bool {
	ns, name := u.GetNamespace(), u.GetName()
	if u.GetDeletionTimestamp() != nil || systemNamespaces[ns] || metav1.GetControllerOfNoCopy(u) != nil {
		return false
	}
	labels := u.GetLabels()
	if labels["kubernetes.io/cluster-service"] == "true" || labels["addonmanager.kubernetes.io/mode"] != "" {
		return false
	}
	switch k.kind {
	case "Namespace":
		return !systemNamespaces[name] && name != "default"
	case "ConfigMap":
		return name != "kube-root-ca.crt"
	case "ServiceAccount":
		return name != "default"
	case "Service":
		return !(ns == "default" && name == "kubernetes")
	}
	return true
}

// Metadata, labels and annotations that the cluster, kubectl or fluxd
// write, removed from every exported object.
var (
	volatileMetadata = []string{
		"uid", "resourceVersion", "generation", "creationTimestamp", "selfLink", "managedFields",
		"ownerReferences", "finalizers", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName",
	}
	volatileLabels      = []string{GCMarkLabel}
	volatileAnnotations = []string{
		ChecksumAnnotation, lastAppliedAnnotation,
		"deployment.kubernetes.io/revision",
		"deprecated.daemonset.template.generation",
	}
)

// cleanObject removes from obj, in place, what the cluster wrote (see
// Export): status, volatile metadata, and fields that hold the value the
// apiserver defaults them to when they are left out, so that the manifest
// says only what someone chose.
func cleanObject(obj map[string]interface{}) {
	delete(obj, "status")
	kind, _ := obj["kind"].(string)
	if md, ok := obj["metadata"].(map[string]interface{}); ok {
		for _, f := range volatileMetadata {
			delete(md, f)
		}
		removeKeys(md, "labels", volatileLabels...)
		if kind == "Namespace" {
			removeKeys(md, "labels", "kubernetes.io/metadata.name")
		}
		removeKeys(md, "annotations", volatileAnnotations...)
	}
	spec, _ := obj["spec"].(map[string]interface{})
	switch kind {
	case "Namespace":
		delete(obj, "spec") // finalizers: [kubernetes]
	case "Service":
		cleanServiceSpec(spec)
	case "Deployment":
		dropDefaults(spec, map[string]interface{}{"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10})
		dropIfEqual(spec, "strategy", map[string]interface{}{
			"type": "RollingUpdate", "rollingUpdate": map[string]interface{}{"maxSurge": "25%", "maxUnavailable": "25%"},
		})
		cleanPodTemplate(spec, "template", false)
	case "DaemonSet":
		dropDefaults(spec, map[string]interface{}{"revisionHistoryLimit": 10})
		dropIfEqual(spec, "updateStrategy", map[string]interface{}{
			"type": "RollingUpdate", "rollingUpdate": map[string]interface{}{"maxSurge": 0, "maxUnavailable": 1},
		})
		cleanPodTemplate(spec, "template", false)
	case "StatefulSet":
		dropDefaults(spec, map[string]interface{}{"podManagementPolicy": "OrderedReady", "revisionHistoryLimit": 10})
		dropIfEqual(spec, "updateStrategy", map[string]interface{}{
			"type": "RollingUpdate", "rollingUpdate": map[string]interface{}{"partition": 0},
		})
		dropIfEqual(spec, "persistentVolumeClaimRetentionPolicy", map[string]interface{}{"whenDeleted": "Retain", "whenScaled": "Retain"})
		for _, t := range sliceOf(spec, "volumeClaimTemplates") {
			delete(t, "status")
			dropDefaults(t, map[string]interface{}{"apiVersion": "v1", "kind": "PersistentVolumeClaim"})
			if md, ok := t["metadata"].(map[string]interface{}); ok {
				delete(md, "creationTimestamp")
			}
			if ts, ok := t["spec"].(map[string]interface{}); ok {
				dropDefaults(ts, map[string]interface{}{"volumeMode": "Filesystem"})
			}
		}
		cleanPodTemplate(spec, "template", false)
	case "CronJob":
		dropDefaults(spec, map[string]interface{}{
			"concurrencyPolicy": "Allow", "failedJobsHistoryLimit": 1, "successfulJobsHistoryLimit": 3, "suspend": false,
		})
		if jt, ok := spec["jobTemplate"].(map[string]interface{}); ok {
			if md, ok := jt["metadata"].(map[string]interface{}); ok {
				delete(md, "creationTimestamp")
				if len(md) == 0 {
					delete(jt, "metadata")
				}
			}
			if js, ok := jt["spec"].(map[string]interface{}); ok {
				cleanPodTemplate(js, "template", true)
			}
		}
	}
}

func cleanServiceSpec(spec map[string]interface{}) {
	if spec == nil {
		return
	}
	if ip, _ := spec["clusterIP"].(string); ip != "None" {
		delete(spec, "clusterIP")
	}
	for _, f := range []string{"clusterIPs", "ipFamilies", "healthCheckNodePort"} {
		delete(spec, f)
	}
	dropDefaults(spec, map[string]interface{}{
		"type": "ClusterIP", "sessionAffinity": "None", "ipFamilyPolicy": "SingleStack",
		"internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true,
	})
	for _, p := range sliceOf(spec, "ports") {
		// Node ports are allocated; kept, they would clash when the
		// manifest is applied beside the original.
		delete(p, "nodePort")
		dropDefaults(p, map[string]interface{}{"protocol": "TCP"})
		if tp, ok := p["targetPort"]; ok && sameValue(tp, p["port"]) {
			delete(p, "targetPort")
		}
	}
}

// cleanPodTemplate cleans the pod template at parent[key]. In a Job's
// template restartPolicy has no default and is kept.
func cleanPodTemplate(parent map[string]interface{}, key string, job bool) {
	t, ok := parent[key].(map[string]interface{})
	if !ok {
		return
	}
	if md, ok := t["metadata"].(map[string]interface{}); ok {
		delete(md, "creationTimestamp")
		if len(md) == 0 {
			delete(t, "metadata")
		}
	}
	spec, ok := t["spec"].(map[string]interface{})
	if !ok {
		return
	}
	defaults := map[string]interface{}{
		"dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30,
	}
	if !job {
		defaults["restartPolicy"] = "Always"
	}
	dropDefaults(spec, defaults)
	dropEmpty(spec, "securityContext")
	// serviceAccount is the deprecated spelling, copied from
	// serviceAccountName.
	if sa, ok := spec["serviceAccount"]; ok && sameValue(sa, spec["serviceAccountName"]) {
		delete(spec, "serviceAccount")
	}
	for _, field := range []string{"containers", "initContainers"} {
		for _, c := range sliceOf(spec, field) {
			cleanContainer(c)
		}
	}
	for _, v := range sliceOf(spec, "volumes") {
		for _, src := range []string{"configMap", "secret", "projected", "downwardAPI"} {
			if m, ok := v[src].(map[string]interface{}); ok {
				dropDefaults(m, map[string]interface{}{"defaultMode": 420})
				for _, it := range sliceOf(m, "items") {
					cleanFieldRef(it)
				}
				for _, s := range sliceOf(m, "sources") {
					if d, ok := s["downwardAPI"].(map[string]interface{}); ok {
						for _, it := range sliceOf(d, "items") {
							cleanFieldRef(it)
						}
					}
				}
			}
		}
	}
}

func cleanContainer(c map[string]interface{}) {
	dropDefaults(c, map[string]interface{}{
		"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
	})
	image, _ := c["image"].(string)
	dropDefaults(c, map[string]interface{}{"imagePullPolicy": defaultPullPolicy(image)})
	dropEmpty(c, "resources")
	dropEmpty(c, "securityContext")
	for _, p := range sliceOf(c, "ports") {
		dropDefaults(p, map[string]interface{}{"protocol": "TCP"})
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		p, ok := c[probe].(map[string]interface{})
		if !ok {
			continue
		}
		dropDefaults(p, map[string]interface{}{"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
		if h, ok := p["httpGet"].(map[string]interface{}); ok {
			dropDefaults(h, map[string]interface{}{"scheme": "HTTP"})
		}
	}
	for _, e := range sliceOf(c, "env") {
		if vf, ok := e["valueFrom"].(map[string]interface{}); ok {
			cleanFieldRef(vf)
		}
	}
}

// cleanFieldRef drops the default apiVersion of m's fieldRef.
func cleanFieldRef(m map[string]interface{}) {
	if fr, ok := m["fieldRef"].(map[string]interface{}); ok {
		dropDefaults(fr, map[string]interface{}{"apiVersion": "v1"})
	}
}

// defaultPullPolicy is the imagePullPolicy the apiserver gives a
// container without one: Always for the tag latest or no tag, else
// IfNotPresent.
func defaultPullPolicy(image string) string {
	if strings.Contains(image, "@") {
		return "IfNotPresent"
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	if i < 0 || last[i+1:] == "latest" {
		return "Always"
	}
	return "IfNotPresent"
}

// dropDefaults deletes each key of m whose value equals its default.
func dropDefaults(m map[string]interface{}, defaults map[string]interface{}) {
	if m == nil {
		return
	}
	for k, d := range defaults {
		if v, ok := m[k]; ok && sameValue(v, d) {
			delete(m, k)
		}
	}
}

// dropIfEqual deletes m[key] when it equals want.
func dropIfEqual(m map[string]interface{}, key string, want interface{}) {
	if v, ok := m[key]; ok && sameValue(v, want) {
		delete(m, key)
	}
}

// dropEmpty deletes m[key] when it is an empty map.
func dropEmpty(m map[string]interface{}, key string) {
	if v, ok := m[key].(map[string]interface{}); ok && len(v) == 0 {
		delete(m, key)
	}
}

// removeKeys deletes keys from the string map m[field], and the field
// when nothing is left.
func removeKeys(m map[string]interface{}, field string, keys ...string) {
	sm, ok := m[field].(map[string]interface{})
	if !ok {
		return
	}
	for _, k := range keys {
		delete(sm, k)
	}
	if len(sm) == 0 {
		delete(m, field)
	}
}

// sliceOf returns the maps in the list m[key].
func sliceOf(m map[string]interface{}, key string) []map[string]interface{} {
	if m == nil {
		return nil
	}
	l, _ := m[key].([]interface{})
	out := make([]map[string]interface{}, 0, len(l))
	for _, v := range l {
		if vm, ok := v.(map[string]interface{}); ok {
			out = append(out, vm)
		}
	}
	return out
}

// sameValue compares JSON values, numbers by value whatever their Go type.
func sameValue(a, b interface{}) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	switch av := a.(type) {
	case map[string]interface{}:
		bv, ok := b.(map[string]interface{})
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, v := range av {
			w, ok := bv[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []interface{}:
		bv, ok := b.([]interface{})
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !sameValue(av[i], bv[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func number(v interface{}) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
