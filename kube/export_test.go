package kube_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/kube/resource"
)

// exportManifests is one of each kind Export writes, with defaulted
// fields left out, and some fields set to values that are not defaults
// and must stay.
func exportManifests(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
  labels: {team: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: %[1]s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: %[1]s}
data: {greeting: hello}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: %[1]s, labels: {app: web}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: %[1]s}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: %[1]s}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 443, targetPort: 8443, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: %[1]s}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %[1]s
  annotations: {fluxcd.io/automated: "true"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: app
      containers:
      - name: web
        image: registry.example.com/web:1.0
        imagePullPolicy: Always
        ports: [{containerPort: 8080, name: http}]
        env:
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 5
        resources:
          limits: {memory: 64Mi}
        volumeMounts: [{name: config, mountPath: /etc/web}]
      volumes:
      - name: config
        configMap: {name: config}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: registry.example.com/agent}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: %[1]s}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 60
      containers:
      - name: db
        image: registry.example.com/db:3.1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
`, ns) + cronJobYAML(ns)
}

func TestExport(t *testing.T) {
	e := newEnv(t)
	cs := e.sync(kube.SyncOptions{}, file("all.yaml", exportManifests(e.ns)))
	if !cs.OK() {
		t.Fatalf("sync: %v", cs.Failures())
	}
	// Let the controllers write status and annotations.
	waitWorkloads(t, "workloads", func() ([]kube.Workload, error) { return e.cluster.Workloads(e.ctx, e.ns) }, func(ws []kube.Workload) bool {
		return byID(ws)[id(e.ns, "deployment", "web")].Rollout.Updated == 2
	})

	objs, err := e.cluster.Export(e.ctx, e.ns)
	if err != nil {
		t.Fatal(err)
	}
	stream := string(kube.ExportYAML(objs))
	t.Logf("export:\n%s", stream)

	var got []string
	for _, o := range objs {
		got = append(got, o.ID.String()+" "+o.Path)
	}
	ns := e.ns
	want := []string{
		id("", "namespace", ns) + " " + ns + "/namespace-" + ns + ".yaml",
		id(ns, "serviceaccount", "app") + " " + ns + "/serviceaccount-app.yaml",
		id(ns, "configmap", "config") + " " + ns + "/configmap-config.yaml",
		id(ns, "service", "db") + " " + ns + "/service-db.yaml",
		id(ns, "service", "edge") + " " + ns + "/service-edge.yaml",
		id(ns, "service", "web") + " " + ns + "/service-web.yaml",
		id(ns, "ingress", "web") + " " + ns + "/ingress-web.yaml",
		id(ns, "deployment", "web") + " " + ns + "/deployment-web.yaml",
		id(ns, "daemonset", "agent") + " " + ns + "/daemonset-agent.yaml",
		id(ns, "statefulset", "db") + " " + ns + "/statefulset-db.yaml",
		id(ns, "cronjob", "report") + " " + ns + "/cronjob-report.yaml",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("exported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Nothing the cluster, kubectl or fluxd wrote, nor a default.
	for _, noise := range []string{
		"status:", "managedFields", "uid:", "resourceVersion", "generation:", "creationTimestamp", "selfLink",
		"clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "sessionAffinity", "nodePort",
		"externalTrafficPolicy", "type: ClusterIP", "protocol: TCP", "targetPort: 5432",
		"fluxd.io/", "deployment.kubernetes.io/revision", "last-applied-configuration", "kubernetes.io/metadata.name",
		"deprecated.daemonset.template.generation", "finalizers",
		"terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy: IfNotPresent", "dnsPolicy",
		"restartPolicy: Always", "schedulerName", "securityContext", "terminationGracePeriodSeconds: 30",
		"progressDeadlineSeconds", "revisionHistoryLimit", "strategy:", "updateStrategy", "podManagementPolicy",
		"persistentVolumeClaimRetentionPolicy", "volumeMode", "concurrencyPolicy", "successfulJobsHistoryLimit",
		"failedJobsHistoryLimit", "suspend", "defaultMode", "timeoutSeconds", "successThreshold", "failureThreshold",
		"scheme: HTTP", "apiVersion: v1\n          fieldPath", "resources: {}", "kube-root-ca.crt", "serviceAccount: app", "kind: PersistentVolumeClaim", "name: default\n",
	} {
		if strings.Contains(stream, noise) {
			t.Errorf("export holds %q", noise)
		}
	}
	if m := regexp.MustCompile(`clusterIP: (.*)`).FindAllStringSubmatch(stream, -1); len(m) != 1 || m[0][1] != "None" {
		t.Errorf("clusterIP lines %v, want only the headless Service's None", m)
	}
	// What was chosen stays, also when it looks like a default elsewhere.
	for _, kept := range []string{
		"imagePullPolicy: Always", "restartPolicy: OnFailure", "terminationGracePeriodSeconds: 60", "periodSeconds: 5",
		"type: NodePort", "targetPort: 8080", "team: shop", "fluxcd.io/automated: \"true\"", "memory: 64Mi", "storage: 1Gi",
	} {
		if !strings.Contains(stream, kept) {
			t.Errorf("export lost %q", kept)
		}
	}
	if !strings.HasPrefix(stream, "---\napiVersion: v1\nkind: Namespace\n") {
		t.Errorf("export starts %q", stream[:min(60, len(stream))])
	}

	// Applied (server-side) into an empty namespace, the export makes
	// the same objects: exported again, they read the same.
	copyNS := ns + "-copy"
	copied := strings.ReplaceAll(stream, ns, copyNS)
	cs = e.sync(kube.SyncOptions{GCMark: kube.GCMark("test", "file:///copy/"+ns, "main", nil)}, file("copy.yaml", copied))
	if !cs.OK() || cs.Count(resource.Created) != len(objs) {
		t.Fatalf("re-apply: %d created of %d, failures %v", cs.Count(resource.Created), len(objs), cs.Failures())
	}
	waitWorkloads(t, "copied workloads", func() ([]kube.Workload, error) { return e.cluster.Workloads(e.ctx, copyNS) }, func(ws []kube.Workload) bool {
		return byID(ws)[id(copyNS, "deployment", "web")].Rollout.Updated == 2
	})
	again, err := e.cluster.Export(e.ctx, copyNS)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(kube.ExportYAML(again)); got != copied {
		t.Errorf("export of the copy differs:\n%s\nwant:\n%s", got, copied)
	}

	if _, err := e.cluster.Export(e.ctx, ns+"-missing"); !errors.Is(err, kube.ErrNamespaceNotFound) {
		t.Errorf("missing namespace: %v, want ErrNamespaceNotFound", err)
	}
}

// All namespaces: no system namespace, no Namespace default, and the
// objects of one namespace together, its Namespace first.
func TestExportAll(t *testing.T) {
	e := newEnv(t)
	e.sync(kube.SyncOptions{}, file("all.yaml", namespaceYAML(e.ns)+configMapYAML(e.ns, "cm", "v")+deploymentYAML(e.ns, "web", 0)))
	t0 := time.Now()
	objs, err := e.cluster.Export(e.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d objects exported in %s", len(objs), time.Since(t0))
	var mine []string
	for _, o := range objs {
		switch o.ID.Namespace {
		case "kube-system", "kube-public", "kube-node-lease":
			t.Errorf("exported %s", o.ID)
		}
		if o.ID.Name == "default" && o.ID.Kind == "namespace" {
			t.Errorf("exported %s", o.ID)
		}
		if o.ID.Namespace == e.ns || o.ID.Name == e.ns {
			mine = append(mine, o.ID.String())
		}
	}
	want := []string{id("", "namespace", e.ns), id(e.ns, "configmap", "cm"), id(e.ns, "deployment", "web")}
	if strings.Join(mine, " ") != strings.Join(want, " ") {
		t.Errorf("this test's objects %v, want %v", mine, want)
	}
}
