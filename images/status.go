package images

import "time"

// Status is the scanner's state, for `fluxctl status` and metrics.
type Status struct {
	Repos []RepoStatus
	Hosts []HostStatus
}

// RepoStatus is the scan state of one watched repository.
type RepoStatus struct {
	// Name is the repository as first named by the caller.
	Name string
	// Canonical is the repository with the registry host made explicit,
	// e.g. "index.docker.io/library/nginx".
	Canonical string
	// Host is the registry host.
	Host string
	// Priority is true for repositories an automated workload uses.
	Priority bool
	// Excluded is true when an exclude pattern matches; it is never
	// scanned.
	Excluded bool
	// ScannedAt is the end of the last successful refresh; zero means not
	// yet scanned.
	ScannedAt time.Time
	// Tags is the number of tags found by that refresh.
	Tags int
	// ChangedAt is when a refresh last found the tags changed.
	ChangedAt time.Time
	// NextScan is when the repository is due again.
	NextScan time.Time
	// Interval is the current refresh interval.
	Interval time.Duration
	// LastError is the last refresh's error, nil when it succeeded.
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
}

// HostStatus is the state of one registry host.
type HostStatus struct {
	// Host is the registry host, e.g. "ghcr.io".
	Host string
	// Rate is the current request rate limit (requests per second); it is
	// below ConfiguredRate after the registry rate-limited fluxd, and
	// recovers slowly.
	Rate float64
	// ConfiguredRate is the rate from the options (--registry-rps).
	ConfiguredRate float64
	// PausedUntil is set while fluxd honours a Retry-After: no request is
	// sent before it.
	PausedUntil time.Time
	// RateLimited is true while paused or while the rate is reduced.
	RateLimited bool
	// Requests counts the HTTP requests sent to the host.
	Requests int64
	// LastError is the last host-wide failure (rate limit, unavailable),
	// nil if none since the last success.
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// LastSuccessAt is when a request last succeeded.
	LastSuccessAt time.Time
}
