package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	gosync "sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/gitstate/adapt"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/sync"
)

// daemonAPI answers the API routes that read git and the sync loop.
type daemonAPI struct {
	repo    *gitstate.Repo
	loop    *sync.Loop
	cluster string
	url     string
	branch  string
	paths   []string
	ro      bool
	log     zerolog.Logger
	jobs    *syncJobs
	key     *deployKey
	policy  *policyJobs
	images  *imageAPI
}

// Notify triggers a fetch and sync for a git change, and a scan of the
// repository for an image change.
func (d *daemonAPI) Notify(_ context.Context, c api.Change) error {
	switch c.Kind {
	case api.GitChange:
		d.log.Info().Str("url", c.Git.URL).Str("branch", c.Git.Branch).Msg("notified of a git change: syncing now")
		d.loop.Trigger()
	case api.ImageChange:
		d.images.Notify(c.Image.Name.String())
	}
	return nil
}

// SyncStatus lists the commits after the sync tag up to ref that touch
// the git paths.
func (d *daemonAPI) SyncStatus(ctx context.Context, ref string) ([]string, error) {
	commit, err := d.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	pending, err := d.repo.CommitsBetween(d.loop.Status().Applied, commit, d.paths)
	if err != nil {
		return nil, api.ServerError(err, "fluxd could not walk the history of its git mirror; see its log.")
	}
	if pending == nil {
		pending = []string{}
	}
	return pending, nil
}

// resolve finds ref in the mirror, fetching once if it is not there yet.
func (d *daemonAPI) resolve(ctx context.Context, ref string) (string, error) {
	commit, err := d.repo.ResolveRevision(ref)
	if err == nil {
		return commit, nil
	}
	if !errors.Is(err, gitstate.ErrNotFound) {
		return "", api.UserError(err, "Give a full commit SHA, or at least its first 7 characters.")
	}
	if ferr := d.repo.Fetch(ctx); ferr != nil {
		return "", api.UnknownRevision(ref)
	}
	if commit, err = d.repo.ResolveRevision(ref); err != nil {
		return "", api.UnknownRevision(ref)
	}
	return commit, nil
}

// Status reports the mirror and the sync loop.
func (d *daemonAPI) Status(_ context.Context) (api.Status, error) {
	s := d.loop.Status()
	st := api.Status{
		Cluster: d.cluster,
		Git: api.GitStatus{URL: redactURL(d.url), Branch: d.branch, Paths: d.paths, ReadOnly: d.ro,
			Head: s.Head, Error: s.FetchError},
		Sync: api.SyncSummary{Tag: notes.SyncTag(d.cluster), Applied: s.Applied, LastRecord: s.LastRecord,
			LastError: s.LastError, PendingPush: s.PendingPush, Pending: []string{}},
	}
	if !s.LastFetch.IsZero() {
		st.Git.LastFetch = &s.LastFetch
	}
	if !s.LastSync.IsZero() {
		st.Sync.LastSync = &s.LastSync
	}
	if d.images != nil {
		st.Registry = d.images.registryStatus()
	}
	if s.Head != "" && s.Head != s.Applied {
		if pending, err := d.repo.CommitsBetween(s.Applied, s.Head, d.paths); err == nil && pending != nil {
			st.Sync.Pending = pending
		}
	}
	return st, nil
}

// UpdateManifests runs sync jobs: fetch now, sync, and report the head.
// Releases and policy changes come with the job queue.
func (d *daemonAPI) UpdateManifests(ctx context.Context, spec api.Spec) (string, error) {
	switch spec.Type {
	case api.UpdateSync:
	case api.UpdatePolicy:
		if d.ro {
			return "", api.UserError(errors.New("fluxd runs with --git-readonly and writes nothing to git"),
				"Change the annotations in the manifests yourself and push, or run fluxd without --git-readonly.")
		}
		return d.policy.submit(ctx, spec)
	default:
		return "", api.UserError(fmt.Errorf("%q updates are not available in this fluxd yet", spec.Type),
			"This fluxd syncs git and changes policies; releases are not built yet.\nChange the image in the manifests and push, then run 'fluxctl sync'.")
	}
	id := d.jobs.add()
	err := d.repo.Fetch(ctx)
	var head string
	if err == nil {
		head, err = d.repo.Head()
	}
	if err != nil {
		d.jobs.finish(id, api.JobStatus{StatusString: api.JobFailed, Err: err.Error()})
		return id, nil
	}
	d.loop.Trigger()
	d.jobs.finish(id, api.JobStatus{StatusString: api.JobSucceeded, Result: api.JobResult{Revision: head}})
	return id, nil
}

// JobStatus reports a sync job, or a job of the queue.
func (d *daemonAPI) JobStatus(ctx context.Context, id string) (api.JobStatus, error) {
	if st, ok := d.jobs.get(id); ok {
		return st, nil
	}
	return d.policy.jobStatus(ctx, id)
}

// syncJobs keeps the status of the last sync jobs in memory. Sync jobs
// change nothing in git, so there is nothing to read back after a restart.
type syncJobs struct {
	mu    gosync.Mutex
	order []string
	byID  map[string]api.JobStatus
}

const keptJobs = 100

func newSyncJobs() *syncJobs { return &syncJobs{byID: map[string]api.JobStatus{}} }

func (j *syncJobs) add() string {
	id := newJobID()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.byID[id] = api.JobStatus{StatusString: api.JobRunning}
	j.order = append(j.order, id)
	if len(j.order) > keptJobs {
		delete(j.byID, j.order[0])
		j.order = j.order[1:]
	}
	return id
}

func (j *syncJobs) finish(id string, st api.JobStatus) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.byID[id]; ok {
		j.byID[id] = st
	}
}

func (j *syncJobs) get(id string) (api.JobStatus, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	st, ok := j.byID[id]
	return st, ok
}

// newJobID makes a random 8-4-4-4-12 hex ID, as Flux v1 does.
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// fetchMetrics wraps the sync loop's repo to time fetches.
type fetchMetrics struct {
	*adapt.SyncRepo
	observe func(time.Duration, error)
}

func (f fetchMetrics) Fetch(ctx context.Context) error {
	start := time.Now()
	err := f.SyncRepo.Fetch(ctx)
	f.observe(time.Since(start), err)
	return err
}

// GitRepoConfig describes the repository and the deploy key. fluxctl sync
// asks for it first and goes on only when the status is ready.
func (d *daemonAPI) GitRepoConfig(ctx context.Context, regenerate bool) (api.GitConfig, error) {
	public, err := d.key.Public(ctx, regenerate)
	if err != nil {
		return api.GitConfig{}, err
	}
	s := d.loop.Status()
	cfg := api.GitConfig{
		Remote:       api.GitRemote{URL: redactURL(d.url), Branch: d.branch, Path: strings.Join(d.paths, ",")},
		PublicSSHKey: public,
		Error:        s.FetchError,
	}
	switch {
	case s.FetchError != "":
		cfg.Status = api.RepoUnreachable
	case !s.LastFetch.IsZero():
		cfg.Status = api.RepoReady
	default:
		cfg.Status = api.RepoNew
	}
	return cfg, nil
}

// publicKeyOf describes the public half of an OpenSSH private key.
func publicKeyOf(private []byte) (api.PublicKey, error) {
	if len(private) == 0 {
		return api.PublicKey{Fingerprints: map[string]api.Fingerprint{}}, nil
	}
	signer, err := ssh.ParsePrivateKey(private)
	if err != nil {
		return api.PublicKey{}, fmt.Errorf("--git-ssh-key-file: %w", err)
	}
	pub := signer.PublicKey()
	return api.PublicKey{
		Key: string(ssh.MarshalAuthorizedKey(pub)),
		Fingerprints: map[string]api.Fingerprint{
			"sha256": {Hash: ssh.FingerprintSHA256(pub)},
			"md5":    {Hash: "MD5:" + ssh.FingerprintLegacyMD5(pub)},
		},
	}, nil
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}
