package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
)

// versionedLister counts calls and says when its answer changes.
type versionedLister struct {
	calls   int
	version string
}

func (v *versionedLister) ListWorkloads(context.Context, string, []resource.ID) ([]api.ControllerStatus, error) {
	v.calls++
	return []api.ControllerStatus{{ID: resource.MakeID("a", "deployment", v.version)}}, nil
}

func (v *versionedLister) Version() string { return v.version }

func TestWorkloadsEncodedOncePerVersion(t *testing.T) {
	l := &versionedLister{version: "one"}
	s, err := New(Deps{Workloads: l})
	if err != nil {
		t.Fatal(err)
	}
	get := func(q string) string {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/flux/v6/services"+q, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	first := get("?namespace=")
	if again := get("?namespace="); again != first || l.calls != 1 {
		t.Fatalf("second call: %d calls, body %s", l.calls, again)
	}
	get("?namespace=a")
	if l.calls != 2 {
		t.Fatalf("another query reused the cache: %d calls", l.calls)
	}
	l.version = "two"
	if b := get("?namespace="); b == first || l.calls != 3 {
		t.Fatalf("a new version reused the old answer: %s", b)
	}
}
