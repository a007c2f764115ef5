package kube

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

func mustObject(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	// As client-go decodes: integers are int64.
	if err := utiljson.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func kindOf(t *testing.T, kind string) workloadKind {
	for _, k := range workloadKinds {
		if k.kind == kind {
			return k
		}
	}
	t.Fatalf("no kind %s", kind)
	return workloadKind{}
}

// Statuses and rollouts the test cluster cannot show: no Pod ever runs
// there.
func TestMakeWorkload(t *testing.T) {
	for _, tc := range []struct {
		name, kind, obj string
		status          WorkloadStatus
		rollout         Rollout
	}{{
		name: "deployment past its progress deadline",
		kind: "Deployment",
		obj: `
metadata: {name: web, namespace: shop, generation: 2}
spec: {replicas: 3}
status:
  observedGeneration: 2
  replicas: 4
  updatedReplicas: 2
  readyReplicas: 3
  availableReplicas: 3
  conditions:
  - {type: Progressing, status: "False", reason: ProgressDeadlineExceeded, message: "ReplicaSet web-1 has timed out progressing."}
`,
		status:  StatusError,
		rollout: Rollout{Desired: 3, Updated: 2, Ready: 3, Available: 3, Outdated: 2, Messages: []string{"Progress deadline exceeded"}},
	}, {
		name: "deployment rolled out",
		kind: "Deployment",
		obj: `
metadata: {name: web, namespace: shop, generation: 2}
spec: {replicas: 3}
status:
  observedGeneration: 2
  replicas: 3
  updatedReplicas: 3
  readyReplicas: 3
  availableReplicas: 3
  conditions:
  - {type: Progressing, status: "True", reason: NewReplicaSetAvailable}
  - {type: Available, status: "True", reason: MinimumReplicasAvailable}
`,
		status:  StatusReady,
		rollout: Rollout{Desired: 3, Updated: 3, Ready: 3, Available: 3},
	}, {
		name: "deployment not observed yet",
		kind: "Deployment",
		obj: `
metadata: {name: web, namespace: shop, generation: 3}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3}
`,
		status:  StatusUpdating,
		rollout: Rollout{Desired: 3, Updated: 3, Ready: 3, Available: 3},
	}, {
		name: "deployment being deleted",
		kind: "Deployment",
		obj: `
metadata: {name: web, namespace: shop, generation: 1, deletionTimestamp: "2024-01-01T00:00:00Z"}
spec: {replicas: 1}
`,
		status:  StatusUnknown,
		rollout: Rollout{Desired: 1},
	}, {
		name: "statefulset rolling out a partition",
		kind: "StatefulSet",
		obj: `
metadata: {name: db, namespace: shop, generation: 2}
spec:
  replicas: 5
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 3}}
status:
  observedGeneration: 2
  replicas: 5
  readyReplicas: 5
  availableReplicas: 5
  currentReplicas: 3
  updatedReplicas: 2
  currentRevision: db-1
  updateRevision: db-2
`,
		status:  StatusReady,
		rollout: Rollout{Desired: 2, Updated: 2, Ready: 5, Available: 5},
	}, {
		name: "daemonset rolling out",
		kind: "DaemonSet",
		obj: `
metadata: {name: agent, namespace: shop, generation: 4}
status:
  observedGeneration: 4
  desiredNumberScheduled: 3
  currentNumberScheduled: 3
  updatedNumberScheduled: 1
  numberReady: 2
  numberAvailable: 2
`,
		status:  StatusUpdating,
		rollout: Rollout{Desired: 3, Updated: 1, Ready: 2, Available: 2, Outdated: 2},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := makeWorkload(kindOf(t, tc.kind), mustObject(t, tc.obj))
			if w.Status != tc.status {
				t.Errorf("status %q (%s), want %q", w.Status, w.Message, tc.status)
			}
			if !reflect.DeepEqual(w.Rollout, tc.rollout) {
				t.Errorf("rollout %+v, want %+v", w.Rollout, tc.rollout)
			}
			if w.Containers == nil {
				t.Error("containers nil, want empty")
			}
		})
	}
}

func TestMakeWorkloadMetadata(t *testing.T) {
	w := makeWorkload(kindOf(t, "CronJob"), mustObject(t, `
metadata:
  name: report
  namespace: shop
  annotations:
    flux.weave.works/antecedent: "shop:helmrelease/report"
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{name: migrate, image: "db:1"}]
          containers: [{name: report, image: "report:2"}]
`))
	if w.ID.String() != "shop:cronjob/report" || w.Antecedent.String() != "shop:helmrelease/report" {
		t.Errorf("ID %s, antecedent %s", w.ID, w.Antecedent)
	}
	if _, ok := w.Annotations[lastAppliedAnnotation]; ok || len(w.Annotations) != 1 {
		t.Errorf("annotations %v", w.Annotations)
	}
	want := []Container{{Name: "report", Image: "report:2"}, {Name: "migrate", Image: "db:1", Init: true}}
	if !reflect.DeepEqual(w.Containers, want) {
		t.Errorf("containers %+v, want %+v", w.Containers, want)
	}
	if w.Status != StatusReady || w.Labels != nil {
		t.Errorf("status %q, labels %v", w.Status, w.Labels)
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                      "Always",
		"nginx:latest":               "Always",
		"nginx:1.27":                 "IfNotPresent",
		"localhost:5000/app":         "Always",
		"localhost:5000/app:2":       "IfNotPresent",
		"ghcr.io/a/b@sha256:abcdef":  "IfNotPresent",
		"ghcr.io/a/b:1@sha256:abcde": "IfNotPresent",
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

func TestCleanServiceSpec(t *testing.T) {
	u := mustObject(t, `
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop, uid: x, resourceVersion: "1", annotations: {fluxd.io/sync-checksum: "sha256:1"}}
spec:
  type: LoadBalancer
  clusterIP: 10.0.0.7
  clusterIPs: [10.0.0.7]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  externalTrafficPolicy: Local
  healthCheckNodePort: 31000
  allocateLoadBalancerNodePorts: true
  internalTrafficPolicy: Cluster
  sessionAffinity: None
  ports:
  - {port: 80, targetPort: 80, nodePort: 30080, protocol: TCP}
  - {port: 53, targetPort: dns, protocol: UDP}
status: {loadBalancer: {}}
`)
	cleanObject(u.Object)
	want := mustObject(t, `
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports:
  - {port: 80}
  - {port: 53, targetPort: dns, protocol: UDP}
`)
	if !reflect.DeepEqual(u.Object, want.Object) {
		got, _ := yaml.Marshal(u.Object)
		t.Errorf("cleaned:\n%s", got)
	}
}
