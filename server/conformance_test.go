package server

// A conformance test: a client that behaves as Flux v1's fluxctl does
// (FLUX-V1-WIRE.md §3 and §5) and decodes into the shapes it uses, run
// over real HTTP against the server. The shapes below are written from
// the wire reference: Go field names as keys, image refs decoded into
// parts (an empty or malformed bare ref is an error, an image Info
// tolerates one), policy sets and IDs as plain strings.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fluxd/fluxd/server/api"
)

// --- the shapes fluxctl 1.x decodes into

type v1Ref struct{ Domain, Image, Tag string }

func parseV1Ref(s string) (v1Ref, error) {
	if s == "" || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
		return v1Ref{}, fmt.Errorf("invalid image ref %q", s)
	}
	var r v1Ref
	elems := strings.Split(s, "/")
	if len(elems) > 1 && strings.ContainsAny(elems[0], ".:") {
		r.Domain, elems = elems[0], elems[1:]
	}
	r.Image = strings.Join(elems, "/")
	switch parts := strings.Split(r.Image, ":"); len(parts) {
	case 1:
	case 2:
		if parts[0] == "" || parts[1] == "" {
			return v1Ref{}, fmt.Errorf("invalid image ref %q", s)
		}
		r.Image, r.Tag = parts[0], parts[1]
	default:
		return v1Ref{}, fmt.Errorf("invalid image ref %q", s)
	}
	return r, nil
}

func (r *v1Ref) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	var err error
	*r, err = parseV1Ref(s)
	return err
}

type v1Info struct {
	ID          v1Ref
	Digest      string
	ImageID     string
	Labels      map[string]string
	CreatedAt   time.Time
	LastFetched time.Time
}

// fluxctl decodes an image Info leniently: a bad ID leaves it empty.
func (i *v1Info) UnmarshalJSON(b []byte) error {
	var w struct {
		ID                     string
		Digest, ImageID        string
		Labels                 map[string]string
		CreatedAt, LastFetched string
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	i.ID, _ = parseV1Ref(w.ID)
	i.Digest, i.ImageID, i.Labels = w.Digest, w.ImageID, w.Labels
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{w.CreatedAt, &i.CreatedAt}, {w.LastFetched, &i.LastFetched}} {
		if t.s == "" {
			continue
		}
		var err error
		if *t.dst, err = time.Parse(time.RFC3339, t.s); err != nil {
			return err
		}
	}
	return nil
}

type v1Container struct {
	Name                    string
	Current, LatestFiltered v1Info
	Available               []v1Info
	AvailableError          string
	AvailableImagesCount    int
	NewAvailableImagesCount int
	FilteredImagesCount     int
	NewFilteredImagesCount  int
}

type v1ControllerStatus struct {
	ID         string
	Containers []v1Container
	ReadOnly   string
	Status     string
	Rollout    struct {
		Desired, Updated, Ready, Available, Outdated int32
		Messages                                     []string
	}
	SyncError  string
	Antecedent string
	Labels     map[string]string
	Automated  bool
	Locked     bool
	Ignore     bool
	Policies   map[string]string
}

type v1ImageStatus struct {
	ID         string
	Containers []v1Container
}

type v1ContainerUpdate struct {
	Container       string
	Current, Target v1Ref
}

type v1JobStatus struct {
	Result struct {
		Revision string `json:"revision"`
		Spec     *struct {
			Type  string `json:"type"`
			Cause struct{ Message, User string }
			Spec  json.RawMessage `json:"spec"`
		} `json:"spec"`
		Result map[string]struct {
			Status       string
			Error        string
			PerContainer []v1ContainerUpdate
		} `json:"result"`
	}
	Err          string
	StatusString string
}

type v1GitConfig struct {
	Remote struct {
		URL    string `json:"url"`
		Branch string `json:"branch"`
		Path   string `json:"path"`
	} `json:"remote"`
	PublicSSHKey struct {
		Key          string `json:"key"`
		Fingerprints map[string]struct {
			Hash      string `json:"hash"`
			Randomart string `json:"randomart"`
		} `json:"fingerprints"`
	} `json:"publicSSHKey"`
	Status string `json:"status"`
	Error  string `json:"errors"`
}

// --- the client: fluxctl's request and response handling

type v1Client struct {
	base  string
	token string
}

// v1Error is an error envelope as fluxctl shows it: it prints the help.
type v1Error struct{ typ, help, err string }

func (e *v1Error) Error() string { return e.err }

var errV1Unauthorized = errors.New("fixed help about a missing or wrong token")

func (c *v1Client) do(method, path string, q url.Values, body any, dest any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode() // sorted keys, empty values sent
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Scope-Probe token="+c.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	switch res.StatusCode {
	case 200, 201, 202, 204:
	case 401:
		return errV1Unauthorized
	default:
		if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			var env struct{ Type, Help, Error string }
			if err := json.Unmarshal(b, &env); err != nil {
				return fmt.Errorf("decoding response body of error: %w", err)
			}
			if env.Error != "" {
				return &v1Error{env.Type, env.Help, env.Error}
			}
		}
		return fmt.Errorf("executing HTTP request: %s %s", res.Status, b)
	}
	if dest == nil {
		return nil
	}
	if method == http.MethodGet {
		// A GET decodes the body as a stream: an empty one fails (EOF).
		return json.NewDecoder(bytes.NewReader(b)).Decode(dest)
	}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, dest)
}

func (c *v1Client) get(path string, q url.Values, dest any) error {
	return c.do(http.MethodGet, path, q, nil, dest)
}

func (c *v1Client) post(path string, body any, dest any) error {
	return c.do(http.MethodPost, path, nil, body, dest)
}

// --- the flows

func TestFluxctlV1Conformance(t *testing.T) {
	f := &fake{workloads: workloads(), images: images(), jobID: "6e0c41aa-0b1c-4e0d-9a4f-1c2d3e4f5a6b",
		exported: []byte("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")}
	if err := json.Unmarshal([]byte(jobJSON), &f.job); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(gitConfigJSON), &f.gitConfig); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, allDeps(f), WithToken(token))
	ts := httptest.NewServer(s)
	defer ts.Close()
	c := &v1Client{base: ts.URL + "/api/flux", token: token}

	// ping and version
	if err := c.get("/v11/ping", nil, nil); err != nil {
		t.Errorf("ping: %v", err)
	}
	var version string
	if err := c.get("/v11/version", nil, &version); err != nil || version != "1.2.3" {
		t.Errorf("version %q: %v", version, err)
	}

	// list-workloads
	var ws []v1ControllerStatus
	if err := c.get("/v6/services", url.Values{"namespace": {"shop"}}, &ws); err != nil {
		t.Fatalf("list-workloads: %v", err)
	}
	if len(ws) != 1 || ws[0].ID != "shop:deployment/cart" || ws[0].Containers[0].Current.ID.Tag != "2.3.0" || !ws[0].Locked || ws[0].Rollout.Messages != nil {
		t.Errorf("list-workloads decoded as %+v", ws)
	}

	// release --watch polls /v11/services
	if err := c.get("/v11/services", url.Values{"namespace": {""}, "services": {"shop:deployment/cart"}}, &ws); err != nil || ws[0].Status != "ready" {
		t.Errorf("release --watch: %+v %v", ws, err)
	}

	// list-images
	var is []v1ImageStatus
	if err := c.get("/v10/images", url.Values{"containerFields": {""}, "namespace": {""}, "service": {"<all>"}}, &is); err != nil {
		t.Fatalf("list-images: %v", err)
	}
	if len(is) != 1 || len(is[0].Containers[0].Available) != 2 || is[0].Containers[0].LatestFiltered.ID.Tag != "2.3.1" ||
		!is[0].Containers[0].Current.CreatedAt.Equal(time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("list-images decoded as %+v", is)
	}

	// release: POST the image spec, poll the job, wait for the sync
	spec := map[string]any{"type": "image", "cause": map[string]string{"Message": "", "User": "Kim <kim@shop.test>"},
		"spec": map[string]any{"ServiceSpecs": []string{"shop:deployment/cart"}, "ImageSpec": "ghcr.io/shop/cart:2.4.0", "Kind": "execute", "Excludes": nil, "Force": false}}
	var jobID string
	if err := c.post("/v9/update-manifests", spec, &jobID); err != nil || jobID != f.jobID {
		t.Fatalf("release: job %q: %v", jobID, err)
	}
	var job v1JobStatus
	if err := c.get("/v6/jobs", url.Values{"id": {jobID}}, &job); err != nil {
		t.Fatalf("job: %v", err)
	}
	rev := job.Result.Revision
	if job.StatusString != "succeeded" || job.Err != "" || len(rev) < 7 || job.Result.Spec == nil || job.Result.Spec.Type != "image" ||
		job.Result.Result["shop:deployment/cart"].PerContainer[0].Target.Tag != "2.4.0" || job.Result.Result["shop:deployment/db"].PerContainer != nil {
		t.Errorf("job decoded as %+v", job)
	}
	f.pending = []string{rev}
	var pending []string
	if err := c.get("/v6/sync", url.Values{"ref": {rev}}, &pending); err != nil || len(pending) != 1 {
		t.Errorf("sync wait: %v %v", pending, err)
	}
	f.pending = nil
	if err := c.get("/v6/sync", url.Values{"ref": {rev[:7]}}, &pending); err != nil || pending == nil || len(pending) != 0 {
		t.Errorf("sync wait done: %#v %v (fluxctl waits for [])", pending, err)
	}

	// sync: git-repo-config, then a sync job
	var gc v1GitConfig
	if err := c.post("/v9/git-repo-config", false, &gc); err != nil || gc.Status != "ready" || gc.Remote.Branch != "main" {
		t.Errorf("git-repo-config: %+v %v", gc, err)
	}
	if err := c.post("/v9/update-manifests", map[string]any{"type": "sync", "cause": map[string]string{"Message": "", "User": ""}, "spec": map[string]any{}}, &jobID); err != nil {
		t.Errorf("sync job: %v", err)
	}

	// identity -r, and the fingerprint fluxctl prints with -l
	if err := c.post("/v9/git-repo-config", true, &gc); err != nil || !f.regenerate || gc.PublicSSHKey.Fingerprints["md5"].Hash != "MD5:3a:9e" {
		t.Errorf("identity: %+v %v", gc, err)
	}

	// save
	var exported []byte
	if err := c.get("/v6/export", nil, &exported); err != nil || string(exported) != string(f.exported) {
		t.Errorf("save: %q %v", exported, err)
	}

	// notify, with an empty answer
	if err := c.post("/v11/notify", map[string]any{"Kind": "image", "Source": map[string]any{"Name": map[string]string{"Domain": "ghcr.io", "Image": "shop/cart"}}}, nil); err != nil {
		t.Errorf("notify: %v", err)
	}

	// Errors, as fluxctl shows them.
	var e *v1Error
	f.err = api.UnknownJob("nope")
	if err := c.get("/v6/jobs", url.Values{"id": {"nope"}}, &job); !errors.As(err, &e) || e.typ != "missing" || !strings.HasPrefix(e.help, "Job not found") {
		t.Errorf("unknown job: %v", err)
	}
	f.err = nil
	if err := c.get("/v5/services", nil, &ws); !errors.As(err, &e) || !strings.Contains(e.help, "upgrade") {
		t.Errorf("deprecated: %v", err)
	}
	if err := c.get("/v13/history", nil, &ws); !errors.As(err, &e) || !strings.Contains(e.help, "upgrade") {
		t.Errorf("unknown route: %v", err)
	}
	if err := c.post("/v9/update-manifests", map[string]any{"type": "scale", "spec": map[string]any{}}, &jobID); err == nil || errors.As(err, &e) ||
		!strings.HasPrefix(err.Error(), "executing HTTP request: 400 Bad Request {\"message\":") {
		t.Errorf("bad spec: %v", err)
	}
	if err := c.post("/v9/update-manifests", map[string]any{"type": "auto", "cause": map[string]string{}, "spec": map[string]any{"Changes": nil}}, &jobID); !errors.As(err, &e) || e.err != `unknown update type "auto"` {
		t.Errorf("auto: %v", err)
	}
	bad := &v1Client{base: c.base, token: "wrong"}
	if err := bad.get("/v6/services", nil, &ws); !errors.Is(err, errV1Unauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	if err := (&v1Client{base: c.base}).get("/v11/ping", nil, nil); err != nil {
		t.Errorf("ping without a token: %v", err)
	}

	// Every GET fluxctl decodes has a body, even when there is nothing to
	// list (an empty one fails with EOF).
	f.workloads, f.images = nil, nil
	for _, p := range []struct {
		path string
		q    url.Values
	}{
		{"/v6/services", url.Values{"namespace": {""}}},
		{"/v10/images", url.Values{"containerFields": {""}, "namespace": {""}, "service": {"<all>"}}},
		{"/v6/sync", url.Values{"ref": {"abcdef0"}}},
		{"/v6/export", nil},
		{"/v6/jobs", url.Values{"id": {"x"}}},
	} {
		var v any
		if err := c.get(p.path, p.q, &v); err != nil {
			t.Errorf("%s with nothing to list: %v", p.path, err)
		}
	}
}
