package notes

import (
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
)

func TestSyncRecordRoundTrip(t *testing.T) {
	cs := resource.ChangeSet{
		Changes: []resource.Change{
			{ID: resource.MakeID("demo", "Deployment", "a"), Action: resource.Created},
			{ID: resource.MakeID("demo", "Service", "a"), Action: resource.Configured},
			{ID: resource.MakeID("demo", "ConfigMap", "c"), Action: resource.Unchanged},
			{ID: resource.MakeID("demo", "ConfigMap", "old"), Action: resource.Pruned},
			{ID: resource.MakeID("demo", "Widget", "w"), Source: "deploy/w.yaml", Action: resource.Failed, Error: "no matches for kind"},
		},
		ParseErrors:  []resource.FileError{{Path: "deploy/bad.yaml", Error: "yaml: line 3: did not find expected key"}},
		PruneBlocked: "1 file failed to parse",
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	r := NewSyncRecord("prod", "abc123", at, 1500*time.Millisecond, cs)
	want := Counts{Applied: 2, Unchanged: 1, Pruned: 1, Failed: 2}
	if r.Counts != want {
		t.Fatalf("counts %+v, want %+v", r.Counts, want)
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"type": "sync"`, `"version": 1`, `"deploy/bad.yaml"`, `"demo:widget/w"`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("encoded note lacks %s:\n%s", s, b)
		}
	}
	got, err := DecodeSyncRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != "abc123" || got.Counts != want || len(got.Errors) != 2 || got.OK() || !got.Time.Equal(at) {
		t.Fatalf("decoded %+v", got)
	}
}

func TestDecodeSyncRecordRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`not json`, "not JSON"},
		{`{"type":"job","version":1}`, `type "job"`},
		{`{"type":"sync","version":99}`, "upgrade fluxd"},
	} {
		if _, err := DecodeSyncRecord([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.in, err, tc.want)
		}
	}
}

func TestValidateClusterName(t *testing.T) {
	for _, ok := range []string{"prod", "eu-west-1", "a", "cluster.local", "f3e1c2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f"} {
		if err := ValidateClusterName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a..b", "a/b", "x.lock", "a b", "a-", strings.Repeat("a", 64)} {
		if err := ValidateClusterName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
