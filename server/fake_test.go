package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
)

// fake implements every dependency. Each method records its arguments
// and returns the canned answer, or err when set.
type fake struct {
	mu    sync.Mutex
	calls []string

	err   error // returned by every method when set
	panic bool  // every method panics when set

	change     api.Change
	namespace  string
	ids        []resource.ID
	workloads  []api.ControllerStatus
	images     []api.ImageStatus
	ref        string
	pending    []string
	exported   []byte
	regenerate bool
	gitConfig  api.GitConfig
	spec       api.Spec
	jobID      string
	jobQueried string
	job        api.JobStatus
	status     api.Status
}

var (
	_ Notifier       = (*fake)(nil)
	_ WorkloadLister = (*fake)(nil)
	_ ImageLister    = (*fake)(nil)
	_ SyncStatuser   = (*fake)(nil)
	_ Exporter       = (*fake)(nil)
	_ RepoConfigurer = (*fake)(nil)
	_ Jobs           = (*fake)(nil)
	_ StatusReporter = (*fake)(nil)
)

func (f *fake) call(name string) error {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.mu.Unlock()
	if f.panic {
		panic("fake " + name + " panicked")
	}
	return f.err
}

func (f *fake) Notify(_ context.Context, c api.Change) error {
	f.change = c
	return f.call("Notify")
}

func (f *fake) ListWorkloads(_ context.Context, namespace string, ids []resource.ID) ([]api.ControllerStatus, error) {
	f.namespace, f.ids = namespace, ids
	return f.workloads, f.call("ListWorkloads")
}

func (f *fake) ListImages(_ context.Context, namespace string, ids []resource.ID) ([]api.ImageStatus, error) {
	f.namespace, f.ids = namespace, ids
	return f.images, f.call("ListImages")
}

func (f *fake) SyncStatus(_ context.Context, ref string) ([]string, error) {
	f.ref = ref
	return f.pending, f.call("SyncStatus")
}

func (f *fake) Export(context.Context) ([]byte, error) { return f.exported, f.call("Export") }

func (f *fake) GitRepoConfig(_ context.Context, regenerate bool) (api.GitConfig, error) {
	f.regenerate = regenerate
	return f.gitConfig, f.call("GitRepoConfig")
}

func (f *fake) UpdateManifests(_ context.Context, spec api.Spec) (string, error) {
	f.spec = spec
	return f.jobID, f.call("UpdateManifests")
}

func (f *fake) JobStatus(_ context.Context, id string) (api.JobStatus, error) {
	f.jobQueried = id
	return f.job, f.call("JobStatus")
}

func (f *fake) Status(context.Context) (api.Status, error) { return f.status, f.call("Status") }

func (f *fake) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func allDeps(f *fake) Deps {
	return Deps{Version: "1.2.3", Notifier: f, Workloads: f, Images: f, Sync: f, Exporter: f, Repo: f, Jobs: f, Status: f}
}

func newServer(t *testing.T, deps Deps, opts ...Option) *Server {
	t.Helper()
	s, err := New(deps, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// request is one test request. Accept defaults to application/json, as
// fluxctl sends.
type request struct {
	method, path, body string
	header             map[string]string
}

func (s *Server) do(t *testing.T, rq request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r := httptest.NewRequest(rq.method, rq.path, body)
	r.Header.Set("Accept", "application/json")
	for k, v := range rq.header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func get(path string) request        { return request{method: http.MethodGet, path: path} }
func post(path, body string) request { return request{method: http.MethodPost, path: path, body: body} }
func (rq request) with(k, v string) request {
	h := map[string]string{}
	for hk, hv := range rq.header {
		h[hk] = hv
	}
	h[k] = v
	rq.header = h
	return rq
}

// deadlineDeps records the deadline of the context it gets.
type deadlineDeps struct{ got *time.Time }

func (d deadlineDeps) Export(ctx context.Context) ([]byte, error) {
	*d.got, _ = ctx.Deadline()
	return nil, nil
}
