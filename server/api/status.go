package api

import (
	"time"

	"github.com/fluxd/fluxd/notes"
)

// Status is the answer to GET /v12/status, fluxd's own route: where fluxd
// syncs from, how far the cluster is behind git, and how the last sync
// went. Every key is always present unless marked omitempty; lists are []
// rather than null.
//
//	{"version":"0.3.0","cluster":"prod",
//	 "git":{"url":"ssh://git@example.com/ops/cluster.git","branch":"main","paths":["clusters/prod"],
//	        "readOnly":false,"head":"4be1d0c9...","error":""},
//	 "sync":{"tag":"flux-sync/prod","applied":"1d3a0e5b...","pending":["4be1d0c9..."],
//	         "lastSync":"2024-03-09T08:00:00Z","lastRecord":{...},"lastError":"","pendingPush":false}}
type Status struct {
	// Version of fluxd.
	Version string `json:"version"`
	// Cluster is the cluster name, part of the sync tag and notes refs.
	Cluster string      `json:"cluster"`
	Git     GitStatus   `json:"git"`
	Sync    SyncSummary `json:"sync"`
	// Registry is absent when fluxd does not scan registries.
	Registry *RegistryStatus `json:"registry,omitempty"`
}

// GitStatus is the state of fluxd's git mirror.
type GitStatus struct {
	// URL has any credentials stripped.
	URL    string   `json:"url"`
	Branch string   `json:"branch"`
	Paths  []string `json:"paths"`
	// ReadOnly is true with --git-readonly: no tag, notes or jobs.
	ReadOnly bool `json:"readOnly"`
	// Head is the branch head at the last fetch; "" before the first.
	Head string `json:"head"`
	// LastFetch is when fluxd last fetched successfully.
	LastFetch *time.Time `json:"lastFetch,omitempty"`
	// Error is the last fetch error, "" when the last fetch worked.
	Error string `json:"error"`
}

// SyncSummary is how far the cluster is behind git.
type SyncSummary struct {
	// Tag is the sync tag's name, e.g. flux-sync/prod.
	Tag string `json:"tag"`
	// Applied is the commit the sync tag marks; "" before the first sync.
	Applied string `json:"applied"`
	// Pending are the commits after Applied up to Head that touch the git
	// paths, newest first: what the next sync will apply.
	Pending []string `json:"pending"`
	// LastSync is when the last sync finished.
	LastSync *time.Time `json:"lastSync,omitempty"`
	// LastRecord is the record of the last sync that reached the cluster,
	// as stored in its git note.
	LastRecord *notes.SyncRecord `json:"lastRecord,omitempty"`
	// LastError is the last whole-sync error (fetch, apply, push), cleared
	// by the next success.
	LastError string `json:"lastError"`
	// PendingPush is true when a sync record or tag move has not been
	// pushed yet.
	PendingPush bool `json:"pendingPush"`
}

// BadRequest is the body of a 400 answer (a body that does not decode,
// an invalid ID or value in the query). Like Flux v1's, it is not the
// error envelope; unlike Flux v1's {}, it says what is wrong.
type BadRequest struct {
	Message string `json:"message"`
}

// ObjectDiff is one object in the answer to GET /v12/diff: what a sync
// would do to it now, and the unified diff of its fields (live, then git)
// when it would change.
//
//	[{"id":"shop:deployment/cart","source":"cart.yaml","action":"configured",
//	  "diff":"--- live/shop:deployment/cart\n+++ git/shop:deployment/cart\n@@ ...\n-  replicas: 3\n+  replicas: 2\n"}]
type ObjectDiff struct {
	ID     string `json:"id"`
	Source string `json:"source,omitempty"`
	// Action is created, configured, unchanged, pruned, skipped or failed.
	Action string `json:"action"`
	Diff   string `json:"diff,omitempty"`
	Error  string `json:"error,omitempty"`
}

// RegistryStatus is the state of the image scanner and its cache, in
// /v12/status.
type RegistryStatus struct {
	// Cache is "embedded", "memcached", or "memcached (unreachable: ...)"
	// while the embedded cache serves in its place.
	Cache string `json:"cache"`
	// ReposKnown are the image repositories fluxd watches; ReposScanned
	// those it has scanned at least once.
	ReposKnown   int `json:"reposKnown"`
	ReposScanned int `json:"reposScanned"`
	// RepoErrors are the repositories whose last scan failed.
	RepoErrors []RepoError    `json:"repoErrors"`
	Hosts      []RegistryHost `json:"hosts"`
}

// RepoError is a repository whose last scan failed, and why.
type RepoError struct {
	Repo  string    `json:"repo"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// RegistryHost is the state of one registry host.
type RegistryHost struct {
	Host string `json:"host"`
	// RateLimited is true while fluxd honours a Retry-After or runs below
	// the configured rate after a 429.
	RateLimited    bool    `json:"rateLimited"`
	Rate           float64 `json:"rate"`
	ConfiguredRate float64 `json:"configuredRate"`
	// LastError is the last host-wide failure, "" if none since a success.
	LastError string `json:"lastError"`
}
