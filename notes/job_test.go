package notes

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
)

func TestJobRecordRoundTrip(t *testing.T) {
	cart := resource.MakeID("shop", "Deployment", "cart")
	db := resource.MakeID("shop", "Deployment", "db")
	spec := json.RawMessage(`{"type":"image","cause":{"Message":"","User":"Kim"},"spec":{"ServiceSpecs":["shop:deployment/cart"],"ImageSpec":"ghcr.io/shop/cart:2.4.0","Kind":"execute","Excludes":null,"Force":false}}`)
	results := map[resource.ID]WorkloadResult{
		cart: {Status: WorkloadSuccess, Containers: []ContainerUpdate{{Container: "cart", Current: "ghcr.io/shop/cart:2.3.0", Target: "ghcr.io/shop/cart:2.4.0"}}},
		db:   {Status: WorkloadIgnored, Error: ReasonDoesNotUse},
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 500, time.FixedZone("x", 3600))
	r := NewJobRecord("6e0c41aa-0000-4000-8000-000000000001", KindImage, spec, Cause{User: "Kim", Message: "hotfix"}, at, results)
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"type": "job"`, `"version": 1`, `"jobID": "6e0c41aa-`, `"kind": "image"`,
		`"shop:deployment/cart": {`, `"status": "success"`, `"error": "does not use image(s)"`, `"user": "Kim"`,
		`"time": "2026-11-25T09:00:00Z"`, "\n      \"ImageSpec\": "} {
		if !strings.Contains(string(b), s) {
			t.Errorf("encoded note lacks %q:\n%s", s, b)
		}
	}
	got, err := DecodeJobRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.JobID != r.JobID || got.Kind != KindImage || got.Cause != r.Cause || !got.Time.Equal(at.Truncate(time.Second)) ||
		!reflect.DeepEqual(got.Results, results) {
		t.Fatalf("decoded %+v", got)
	}
	var a, c any
	_ = json.Unmarshal(spec, &a)
	_ = json.Unmarshal(got.Spec, &c)
	if !reflect.DeepEqual(a, c) {
		t.Fatalf("spec changed: %s", got.Spec)
	}
}

func TestJobRecordEncodeRejects(t *testing.T) {
	if _, err := (JobRecord{}).Encode(); err == nil {
		t.Error("a record without a job ID was encoded")
	}
	if _, err := NewJobRecord("x", KindPolicy, json.RawMessage(`{`), Cause{}, time.Now(), nil).Encode(); err == nil {
		t.Error("a record with a broken spec was encoded")
	}
}

func TestDecodeJobRecordRejects(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		notJob   bool
	}{
		{`not json`, "not JSON", true},
		{`{"type":"sync","version":1}`, `type "sync"`, true},
		{`{"type":"job","version":99,"jobID":"x"}`, "upgrade fluxd", false},
		{`{"type":"job","version":0,"jobID":"x"}`, "not supported", false},
		{`{"type":"job","version":1}`, "no job ID", false},
		{`{"type":"job","version":1,"jobID":"x","results":{"not an id":{"status":"success"}}}`, "invalid resource ID", false},
	} {
		_, err := DecodeJobRecord([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.in, err, tc.want)
		}
		if err != nil && errors.Is(err, ErrNotJobNote) != tc.notJob {
			t.Errorf("%s: errors.Is(ErrNotJobNote) = %v, want %v", tc.in, !tc.notJob, tc.notJob)
		}
	}
}

// A note as Flux v1 wrote it in refs/notes/flux.
func TestDecodeFluxV1JobNote(t *testing.T) {
	in := `{"jobID":"0b1c6d34-9d7f-4a6e-b7a4-2b2a1c0d9e8f","spec":{"type":"image","cause":{"Message":"go","User":"Kim <kim@shop.test>"},"spec":{"ServiceSpecs":["<all>"],"ImageSpec":"ghcr.io/shop/cart:2.4.0","Kind":"execute","Excludes":null,"Force":false}},"result":{"shop:deployment/cart":{"Status":"success","PerContainer":[{"Container":"cart","Current":"ghcr.io/shop/cart:2.3.0","Target":"ghcr.io/shop/cart:2.4.0"}]},"shop/legacy":{"Status":"skipped","Error":"locked","PerContainer":null}}}`
	r, err := DecodeJobRecord([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[resource.ID]WorkloadResult{
		resource.MakeID("shop", "deployment", "cart"):        {Status: WorkloadSuccess, Containers: []ContainerUpdate{{"cart", "ghcr.io/shop/cart:2.3.0", "ghcr.io/shop/cart:2.4.0"}}},
		{Namespace: "shop", Kind: "service", Name: "legacy"}: {Status: WorkloadSkipped, Error: ReasonLocked},
	}
	if r.Version != 0 || r.JobID != "0b1c6d34-9d7f-4a6e-b7a4-2b2a1c0d9e8f" || r.Kind != KindImage ||
		r.Cause != (Cause{User: "Kim <kim@shop.test>", Message: "go"}) || !reflect.DeepEqual(r.Results, want) {
		t.Fatalf("decoded %+v", r)
	}
}
