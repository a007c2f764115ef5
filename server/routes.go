package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
)

// routes builds the router. Paths match exactly: a trailing slash, a
// wrong method or an unknown path is 404 (never a redirect or 405), and
// paths under /v1/ to /v5/ are 410, as in Flux v1.
func (s *Server) routes() *httprouter.Router {
	rt := httprouter.New()
	rt.RedirectTrailingSlash = false
	rt.RedirectFixedPath = false
	rt.HandleMethodNotAllowed = false
	rt.HandleOPTIONS = false
	for _, x := range []struct {
		method, path string
		public       bool
		f            apiFunc
	}{
		{http.MethodGet, "/v11/ping", true, s.ping},
		{http.MethodGet, "/v11/version", false, s.version},
		{http.MethodPost, "/v11/notify", false, s.notify},

		{http.MethodGet, "/v6/services", false, s.listWorkloads},
		{http.MethodGet, "/v11/services", false, s.listWorkloads},
		{http.MethodGet, "/v6/images", false, s.listImages},
		{http.MethodGet, "/v10/images", false, s.listImages},
		{http.MethodPost, "/v9/update-manifests", false, s.updateManifests},
		{http.MethodGet, "/v6/jobs", false, s.jobStatus},
		{http.MethodGet, "/v6/sync", false, s.syncStatus},
		{http.MethodGet, "/v6/export", false, s.export},
		{http.MethodHead, "/v6/export", false, s.export},
		{http.MethodPost, "/v9/git-repo-config", false, s.gitRepoConfig},

		// Kept for older fluxctls.
		{http.MethodPost, "/v6/update-images", false, s.updateImages},
		{http.MethodPatch, "/v6/policies", false, s.updatePolicies},
		{http.MethodGet, "/v6/identity.pub", false, s.publicKey},
		{http.MethodPost, "/v6/identity.pub", false, s.regenerateKey},

		// fluxd's own.
		{http.MethodGet, "/v12/status", false, s.status},
		{http.MethodGet, "/v12/diff", false, s.diff},
	} {
		rt.Handler(x.method, x.path, s.wrap(x.path, x.public, x.f))
	}
	rt.NotFound = s.wrap("notfound", false, s.notFound)
	return rt
}

func (s *Server) notFound(r *http.Request) (reply, error) {
	for _, v := range []string{"/v1/", "/v2/", "/v3/", "/v4/", "/v5/"} {
		if strings.HasPrefix(r.URL.Path, v) {
			if info := infoFrom(r.Context()); info != nil {
				info.route = "deprecated"
			}
			return reply{}, errDeprecated
		}
	}
	return reply{}, routeNotFound(Prefix + r.URL.Path)
}

func (s *Server) ping(*http.Request) (reply, error) { return noBody(http.StatusNoContent), nil }

func (s *Server) version(*http.Request) (reply, error) { return respond(s.deps.Version), nil }

func (s *Server) notify(r *http.Request) (reply, error) {
	var c api.Change
	if err := decodeBody(r, &c); err != nil {
		return reply{}, err
	}
	if s.deps.Notifier == nil {
		return reply{}, notAvailable("take notifications of changes")
	}
	if err := s.deps.Notifier.Notify(r.Context(), c); err != nil {
		return reply{}, err
	}
	return noBody(http.StatusAccepted), nil
}

func (s *Server) listWorkloads(r *http.Request) (reply, error) {
	q, err := query(r)
	if err != nil {
		return reply{}, err
	}
	namespace := q.Get("namespace")
	var ids []resource.ID
	if list := q.Get("services"); list != "" {
		for _, w := range strings.Split(list, ",") {
			id, err := resource.ParseID(w)
			if err != nil {
				return reply{}, badRequest("parsing workload ID %q: %v", w, err)
			}
			ids = append(ids, id)
		}
	}
	if namespace != "" && len(ids) > 0 {
		return reply{}, userError(errors.New("cannot filter by 'namespace' and 'workloads' at the same time"))
	}
	if s.deps.Workloads == nil {
		return reply{}, notAvailable("list workloads")
	}
	key := ""
	if v, ok := s.deps.Workloads.(Versioned); ok {
		key = "workloads\x00" + v.Version() + "\x00" + namespace + "\x00" + q.Get("services")
		if b, ok := s.encoded.get(key); ok {
			return reply{code: http.StatusOK, hasBody: true, raw: b}, nil
		}
	}
	res, err := s.deps.Workloads.ListWorkloads(r.Context(), namespace, ids)
	if err != nil {
		return reply{}, err
	}
	if len(res) == 0 {
		res = nil // Flux v1 sends null for an empty list
	}
	b, err := json.Marshal(res)
	if err != nil {
		return reply{}, internalError(fmt.Errorf("encode the workloads: %w", err))
	}
	if key != "" {
		s.encoded.put(key, b)
	}
	return reply{code: http.StatusOK, hasBody: true, raw: b}, nil
}

func (s *Server) listImages(r *http.Request) (reply, error) {
	q, err := query(r)
	if err != nil {
		return reply{}, err
	}
	service := q.Get("service")
	if service == "" {
		service = string(api.ResourceSpecAll)
	}
	spec, err := api.ParseResourceSpec(service)
	if err != nil {
		return reply{}, badRequest("parsing service spec %q: %v", service, err)
	}
	var fields []string
	if f := q.Get("containerFields"); f != "" {
		fields = strings.Split(f, ",")
	}
	namespace := q.Get("namespace")
	var ids []resource.ID
	if id, ok := spec.ID(); ok {
		ids = []resource.ID{id}
	}
	if namespace != "" && len(ids) > 0 {
		return reply{}, userError(errors.New("cannot filter by 'namespace' and 'workload' at the same time"))
	}
	if err := api.CheckContainerFields(fields); err != nil {
		return reply{}, userError(err)
	}
	if s.deps.Images == nil {
		return reply{}, notAvailable("list images")
	}
	key := ""
	if v, ok := s.deps.Images.(Versioned); ok {
		if version := v.Version(); version != "" {
			key = "images\x00" + version + "\x00" + namespace + "\x00" + service + "\x00" + strings.Join(fields, ",")
			if b, ok := s.encoded.get(key); ok {
				return reply{code: http.StatusOK, hasBody: true, raw: b}, nil
			}
		}
	}
	res, err := s.deps.Images.ListImages(r.Context(), namespace, ids)
	if err != nil {
		return reply{}, err
	}
	if len(res) == 0 {
		return respond([]api.ImageStatus(nil)), nil
	}
	out := make([]api.ImageStatus, len(res))
	for i, st := range res {
		out[i] = api.ImageStatus{ID: st.ID}
		if st.Containers != nil {
			// A copy: the dependency may answer from a cache.
			out[i].Containers = make([]api.Container, len(st.Containers))
			for j, c := range st.Containers {
				out[i].Containers[j] = c.OnlyFields(fields)
			}
		}
	}
	if key == "" {
		return respond(out), nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return reply{}, internalError(fmt.Errorf("encode the images: %w", err))
	}
	s.encoded.put(key, b)
	return reply{code: http.StatusOK, hasBody: true, raw: b}, nil
}

func (s *Server) updateManifests(r *http.Request) (reply, error) {
	var spec api.Spec
	if err := decodeBody(r, &spec); err != nil {
		return reply{}, err
	}
	return s.submit(r, spec)
}

// submit validates spec and hands it to the jobs; the answer is the job ID.
func (s *Server) submit(r *http.Request, spec api.Spec) (reply, error) {
	if err := spec.Validate(); err != nil {
		return reply{}, userError(err)
	}
	if s.deps.Jobs == nil {
		return reply{}, notAvailable("run releases, policy changes or syncs")
	}
	id, err := s.deps.Jobs.UpdateManifests(r.Context(), spec)
	if err != nil {
		return reply{}, err
	}
	return respond(id), nil
}

func (s *Server) jobStatus(r *http.Request) (reply, error) {
	q, err := query(r)
	if err != nil {
		return reply{}, err
	}
	if err := required(r, q, "id"); err != nil {
		return reply{}, err
	}
	id := q.Get("id")
	if id == "" {
		return reply{}, api.UnknownJob(id)
	}
	if s.deps.Jobs == nil {
		return reply{}, notAvailable("report jobs")
	}
	st, err := s.deps.Jobs.JobStatus(r.Context(), id)
	if err != nil {
		return reply{}, err
	}
	return respond(st), nil
}

func (s *Server) syncStatus(r *http.Request) (reply, error) {
	q, err := query(r)
	if err != nil {
		return reply{}, err
	}
	if err := required(r, q, "ref"); err != nil {
		return reply{}, err
	}
	ref := q.Get("ref")
	if ref == "" {
		return reply{}, userError(errors.New("no ref given: want a commit SHA"))
	}
	if s.deps.Sync == nil {
		return reply{}, notAvailable("report sync status")
	}
	revs, err := s.deps.Sync.SyncStatus(r.Context(), ref)
	if err != nil {
		return reply{}, err
	}
	if revs == nil {
		revs = []string{} // fluxctl waits for [], as Flux v1 sends
	}
	return respond(revs), nil
}

func (s *Server) export(r *http.Request) (reply, error) {
	if s.deps.Exporter == nil {
		return reply{}, notAvailable("export the cluster")
	}
	b, err := s.deps.Exporter.Export(r.Context())
	if err != nil {
		return reply{}, err
	}
	if b == nil {
		b = []byte{} // "" rather than null
	}
	return respond(b), nil // []byte encodes as a base64 JSON string
}

func (s *Server) gitRepoConfig(r *http.Request) (reply, error) {
	var regenerate bool
	if err := decodeBody(r, &regenerate); err != nil {
		return reply{}, err
	}
	if s.deps.Repo == nil {
		return reply{}, notAvailable("describe its git repository")
	}
	cfg, err := s.deps.Repo.GitRepoConfig(r.Context(), regenerate)
	if err != nil {
		return reply{}, err
	}
	return respond(cfg), nil
}

// updateImages is Flux v1's older release route: the spec is in the query.
func (s *Server) updateImages(r *http.Request) (reply, error) {
	q, err := query(r)
	if err != nil {
		return reply{}, err
	}
	if err := required(r, q, "service", "image", "kind"); err != nil {
		return reply{}, err
	}
	var workloads []api.ResourceSpec
	for _, w := range q["service"] {
		spec, err := api.ParseResourceSpec(w)
		if err != nil {
			return reply{}, badRequest("parsing service spec %q: %v", w, err)
		}
		workloads = append(workloads, spec)
	}
	image, err := api.ParseImageSpec(q.Get("image"))
	if err != nil {
		return reply{}, badRequest("parsing image spec %q: %v", q.Get("image"), err)
	}
	kind, err := api.ParseReleaseKind(q.Get("kind"))
	if err != nil {
		return reply{}, badRequest("parsing release kind %q: %v", q.Get("kind"), err)
	}
	var excludes []resource.ID
	for _, x := range q["exclude"] {
		id, err := resource.ParseID(x)
		if err != nil {
			return reply{}, badRequest("parsing excluded workload %q: %v", x, err)
		}
		excludes = append(excludes, id)
	}
	return s.submit(r, api.Spec{
		Type:  api.UpdateImage,
		Cause: api.Cause{User: q.Get("user"), Message: q.Get("message")},
		Spec:  api.ReleaseImageSpec{ServiceSpecs: workloads, ImageSpec: image, Kind: kind, Excludes: excludes},
	})
}

// updatePolicies is Flux v1's older policy route.
func (s *Server) updatePolicies(r *http.Request) (reply, error) {
	q, err := query(r)
	if err != nil {
		return reply{}, err
	}
	var updates api.PolicyUpdates
	if err := decodeBody(r, &updates); err != nil {
		return reply{}, err
	}
	return s.submit(r, api.Spec{
		Type:  api.UpdatePolicy,
		Cause: api.Cause{User: q.Get("user"), Message: q.Get("message")},
		Spec:  updates,
	})
}

func (s *Server) publicKey(r *http.Request) (reply, error) {
	if s.deps.Repo == nil {
		return reply{}, notAvailable("show its deploy key")
	}
	cfg, err := s.deps.Repo.GitRepoConfig(r.Context(), false)
	if err != nil {
		return reply{}, err
	}
	return respond(cfg.PublicSSHKey), nil
}

func (s *Server) regenerateKey(r *http.Request) (reply, error) {
	if s.deps.Repo == nil {
		return reply{}, notAvailable("regenerate its deploy key")
	}
	if _, err := s.deps.Repo.GitRepoConfig(r.Context(), true); err != nil {
		return reply{}, err
	}
	return noBody(http.StatusNoContent), nil
}

func (s *Server) status(r *http.Request) (reply, error) {
	if s.deps.Status == nil {
		return reply{}, notAvailable("report its status")
	}
	st, err := s.deps.Status.Status(r.Context())
	if err != nil {
		return reply{}, err
	}
	if st.Version == "" {
		st.Version = s.deps.Version
	}
	if st.Git.Paths == nil {
		st.Git.Paths = []string{}
	}
	if st.Sync.Pending == nil {
		st.Sync.Pending = []string{}
	}
	return respond(st), nil
}

func (s *Server) diff(r *http.Request) (reply, error) {
	if s.deps.Differ == nil {
		return reply{}, notAvailable("show what a sync would change")
	}
	ds, err := s.deps.Differ.Diff(r.Context())
	if err != nil {
		return reply{}, err
	}
	if ds == nil {
		ds = []api.ObjectDiff{}
	}
	return respond(ds), nil
}
