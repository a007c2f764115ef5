// Package server serves fluxd's HTTP API, wire-compatible with Flux v1's
// daemon API so that Flux v1's fluxctl works against fluxd unchanged, and
// Prometheus metrics.
//
// The API is mounted under /api/flux (the prefix is stripped before
// routing); /metrics is beside it. Routes, by the dependency that serves
// them (see Deps):
//
//	GET  /v11/ping                 204; no token needed
//	GET  /v11/version              JSON string (Deps.Version)
//	POST /v11/notify               Change → 202                  Notifier
//	GET  /v6/services, /v11/services ?namespace=&services=      Workloads
//	GET  /v6/images, /v10/images   ?service=&containerFields=&namespace=  Images
//	POST /v9/update-manifests      Spec → job ID                 Jobs
//	GET  /v6/jobs?id=              job status                    Jobs
//	GET  /v6/sync?ref=             pending commits, [] if applied Sync
//	GET, HEAD /v6/export           base64 YAML as a JSON string  Exporter
//	POST /v9/git-repo-config       true|false → GitConfig        Repo
//	POST /v6/update-images         legacy release (query)        Jobs
//	PATCH /v6/policies             legacy policy change          Jobs
//	GET, POST /v6/identity.pub     legacy deploy key             Repo
//	GET  /v12/status               fluxd's status                Status
//
// Errors follow Flux v1: the envelope {"type","help","error"} with 404
// (missing), 422 (user) or 500 (server); 410 for /v1/ to /v5/; 404 for any
// other path, a wrong method, a trailing slash or a missing required query
// key; 400 with {"message"} (not the envelope) for a body that does not
// decode or an invalid value in the query; 413 for a body over the limit;
// 401 for a missing or wrong token; 501 for a route whose dependency is
// not wired yet. The Accept header chooses the error body: JSON, the help
// text, or the short message. See FLUX-V1-WIRE.md and package api for the
// JSON types.
package server
