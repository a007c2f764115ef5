package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
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

// versionedImages counts calls and says when its answer changes.
type versionedImages struct {
	calls   int
	version string
}

func (v *versionedImages) ListImages(context.Context, string, []resource.ID) ([]api.ImageStatus, error) {
	v.calls++
	return []api.ImageStatus{{ID: resource.MakeID("a", "deployment", "web"), Containers: []api.Container{{
		Name: "web", Current: api.Info{ID: api.ImageRef("nginx:" + v.version)},
		Available: []api.Info{{ID: "nginx:2"}, {ID: "nginx:1"}},
	}}}}, nil
}

func (v *versionedImages) Version() string { return v.version }

func TestImagesEncodedOncePerVersion(t *testing.T) {
	l := &versionedImages{version: "1"}
	s, err := New(Deps{Images: l})
	if err != nil {
		t.Fatal(err)
	}
	get := func(q string) string {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/flux/v10/images"+q, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	first := get("")
	if again := get(""); again != first || l.calls != 1 {
		t.Fatalf("second call: %d calls, body %s", l.calls, again)
	}
	// Other fields are another answer, encoded apart.
	names := get("?containerFields=Name")
	if l.calls != 2 || names == first || strings.Contains(names, "Available") {
		t.Fatalf("containerFields reused the full answer (%d calls): %s", l.calls, names)
	}
	if get("?containerFields=Name") != names || l.calls != 2 {
		t.Fatalf("the fields' answer was not reused: %d calls", l.calls)
	}
	l.version = "2"
	if b := get(""); b == first || !strings.Contains(b, "nginx:2") || l.calls != 3 {
		t.Fatalf("a new version reused the old answer: %s", b)
	}
	// No version: no reuse.
	l.version = ""
	get("")
	get("")
	if l.calls != 5 {
		t.Fatalf("%d calls: an answer without a version was reused", l.calls)
	}
}

func TestEncodedCacheBoundsItsBytes(t *testing.T) {
	var c encodedCache
	big := make([]byte, encodedBytes/4+1)
	for i := 0; i < 4; i++ {
		c.put(string(rune('a'+i)), big)
	}
	if c.size > encodedBytes || len(c.order) != 3 {
		t.Fatalf("%d bytes in %d entries", c.size, len(c.order))
	}
	if _, ok := c.get("a"); ok {
		t.Error("the oldest answer was kept past the byte budget")
	}
	if _, ok := c.get("d"); !ok {
		t.Error("the newest answer was dropped")
	}
	c.put("huge", make([]byte, encodedBytes/2+1))
	if _, ok := c.get("huge"); ok {
		t.Error("an answer over half the budget was kept")
	}
}
