package resource

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	for in, want := range map[string]ID{
		"default:deployment/podinfo":    {"default", "deployment", "podinfo"},
		"shop:Deployment/cart":          {"shop", "deployment", "cart"},
		"<cluster>:namespace/shop":      {"<cluster>", "namespace", "shop"},
		"default/helloworld":            {"default", "service", "helloworld"},
		"kube-system:configmap/a.b-c:d": {"kube-system", "configmap", "a.b-c:d"},
	} {
		got, err := ParseID(in)
		if err != nil || got != want {
			t.Errorf("ParseID(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a:b", "a b:c/d", "ns:kind/"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	if s := MakeID("", "Namespace", "x").String(); s != "<cluster>:namespace/x" {
		t.Errorf("MakeID cluster-scoped: %s", s)
	}
}

func TestIDJSON(t *testing.T) {
	m := map[ID]ID{MakeID("a", "Deployment", "b"): {}}
	b, err := json.Marshal(m)
	if err != nil || string(b) != `{"a:deployment/b":""}` {
		t.Fatalf("%s %v", b, err)
	}
	var back map[ID]ID
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 1 {
		t.Fatalf("%v %v", back, err)
	}
	var bad ID
	if err := json.Unmarshal([]byte(`"nope"`), &bad); err == nil {
		t.Fatal("a bad ID decoded")
	}
}

func TestPoliciesFromAnnotations(t *testing.T) {
	p := PoliciesFromAnnotations(map[string]string{
		"fluxcd.io/automated":        "true",
		"flux.weave.works/locked":    "true",
		"flux.weave.works/automated": "false", // the current prefix wins
		"fluxcd.io/locked_msg":       "freeze",
		"fluxcd.io/tag.app":          "semver:~1.2",
		"filter.fluxcd.io/sidecar":   "glob:v*",
		"fluxcd.io/unrelated":        "x",
		"kubernetes.io/change-cause": "y",
		"flux.weave.works/tag.app":   "glob:old", // overridden
		"fluxcd.io/ignore":           "sync_only",
		"fluxcd.io/tag.":             "empty container name",
	})
	want := Policies{"automated": "true", "locked": "true", "locked_msg": "freeze", "tag.app": "semver:~1.2", "tag.sidecar": "glob:v*", "ignore": "sync_only"}
	if len(p) != len(want) {
		t.Fatalf("got %v, want %v", p, want)
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	if !p.Automated() || !p.Locked() || !p.Ignored() || p.TagFilter("app") != "semver:~1.2" {
		t.Errorf("accessors: %v", p)
	}
}

func TestChangeSetCounts(t *testing.T) {
	cs := ChangeSet{
		Changes:     []Change{{Action: Created}, {Action: Failed, Source: "f.yaml", ID: MakeID("a", "ConfigMap", "b"), Error: "boom"}},
		ParseErrors: []FileError{{Path: "bad.yaml", Error: "yaml"}},
	}
	if cs.Count(Created) != 1 || len(cs.Failures()) != 2 || cs.OK() {
		t.Fatalf("%+v", cs)
	}
	if f := cs.Failures()[1]; f.Object != "a:configmap/b" || f.Path != "f.yaml" {
		t.Fatalf("%+v", f)
	}
}

func TestPodSpecPath(t *testing.T) {
	for kind, want := range map[string]string{
		"Deployment": "spec.template.spec", "deployment": "spec.template.spec", "StatefulSet": "spec.template.spec",
		"DaemonSet": "spec.template.spec", "ReplicaSet": "spec.template.spec", "ReplicationController": "spec.template.spec",
		"Job": "spec.template.spec", "CronJob": "spec.jobTemplate.spec.template.spec", "Pod": "spec",
		"Service": "", "ConfigMap": "", "": "",
	} {
		if got := strings.Join(PodSpecPath(kind), "."); got != want {
			t.Errorf("PodSpecPath(%q) = %q, want %q", kind, got, want)
		}
	}
	p := PodSpecPath("Deployment")
	p[0] = "changed"
	if PodSpecPath("Deployment")[0] != "spec" {
		t.Error("PodSpecPath shares its slice")
	}
}
