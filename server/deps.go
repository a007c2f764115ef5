package server

import (
	"context"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
)

// The server's dependencies are small interfaces, each serving a few
// routes. One value may implement several. Errors they return choose the
// status code: wrap an *api.Error (api.MissingError 404, api.UserError
// 422, api.ServerError 500) to say whose fault it is and give help text;
// any other error is answered as Flux v1 does, 422 with generic help.

// Notifier is told that a git branch or an image repository changed
// (POST /v11/notify). It must not block: it triggers a fetch and sync, or
// an image refresh, and returns.
type Notifier interface {
	Notify(ctx context.Context, c api.Change) error
}

// WorkloadLister lists the workloads in the cluster with their policies
// from git (list-workloads). ids, when not empty, selects workloads by ID
// and namespace is "". Otherwise namespace selects one namespace, or all
// when "".
type WorkloadLister interface {
	ListWorkloads(ctx context.Context, namespace string, ids []resource.ID) ([]api.ControllerStatus, error)
}

// Versioned is optional for a WorkloadLister or an ImageLister: Version
// changes whenever the answer of ListWorkloads (ListImages) may have
// changed, so the server can reuse the encoded answer of an earlier call
// with the same query.
type Versioned interface {
	Version() string
}

// ImageLister lists workloads' containers with their current and
// available images (list-images). ids and namespace select workloads as
// for WorkloadLister. The server applies the containerFields query
// itself: return every field. It may be Versioned too, for its answers;
// an empty version means "do not reuse".
type ImageLister interface {
	ListImages(ctx context.Context, namespace string, ids []resource.ID) ([]api.ImageStatus, error)
}

// SyncStatuser answers how far the cluster is behind a commit
// (GET /v6/sync): the full SHAs of the commits after the sync tag up to and
// including ref that touch the git paths, newest first; none when ref is
// applied. ref is a full SHA or an abbreviation of at least 7 characters,
// never "". An unknown ref is api.UnknownRevision.
type SyncStatuser interface {
	SyncStatus(ctx context.Context, ref string) ([]string, error)
}

// Exporter exports the cluster's workloads as a multi-document YAML
// stream (GET /v6/export).
type Exporter interface {
	Export(ctx context.Context) ([]byte, error)
}

// RepoConfigurer describes the git repository and the deploy key
// (POST /v9/git-repo-config, /v6/identity.pub); regenerate makes a new key
// first.
type RepoConfigurer interface {
	GitRepoConfig(ctx context.Context, regenerate bool) (api.GitConfig, error)
}

// Jobs runs updates: releases, policy changes and syncs. UpdateManifests
// gets a spec that passed api.Spec.Validate (never "auto"), queues it, and
// returns its job ID; a plan may run before it returns. JobStatus reports
// a job by ID (never ""); finished jobs stay readable, and an unknown ID
// is api.UnknownJob.
type Jobs interface {
	UpdateManifests(ctx context.Context, spec api.Spec) (jobID string, err error)
	JobStatus(ctx context.Context, jobID string) (api.JobStatus, error)
}

// StatusReporter reports fluxd's own status (GET /v12/status). The server
// fills in Version when it is empty.
type StatusReporter interface {
	Status(ctx context.Context) (api.Status, error)
}

// Differ tells what a sync would change in the cluster now, per object,
// from a server-side dry run (GET /v12/diff).
type Differ interface {
	Diff(ctx context.Context) ([]api.ObjectDiff, error)
}

// Deps are the server's dependencies. Every one may be nil: its routes
// then answer 501 with an error envelope saying the capability is not
// available in this fluxd yet, so that fluxd can be wired step by step.
type Deps struct {
	// Version of fluxd, for GET /v11/version and /v12/status.
	Version string

	Notifier  Notifier
	Workloads WorkloadLister
	Images    ImageLister
	Sync      SyncStatuser
	Exporter  Exporter
	Repo      RepoConfigurer
	Jobs      Jobs
	Status    StatusReporter
	Differ    Differ
}

// missing names the nil dependencies.
func (d Deps) missing() []string {
	var out []string
	for _, m := range []struct {
		name string
		nil  bool
	}{
		{"Notifier", d.Notifier == nil},
		{"Workloads", d.Workloads == nil},
		{"Images", d.Images == nil},
		{"Sync", d.Sync == nil},
		{"Exporter", d.Exporter == nil},
		{"Repo", d.Repo == nil},
		{"Jobs", d.Jobs == nil},
		{"Status", d.Status == nil},
		{"Differ", d.Differ == nil},
	} {
		if m.nil {
			out = append(out, m.name)
		}
	}
	return out
}
