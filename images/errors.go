package images

import (
	"errors"
	"fmt"
	"time"
)

// Kinds of registry failure. A *RegistryError matches exactly one of these
// with errors.Is; callers classify by them, never by message text.
var (
	// ErrUnauthorized: the registry refused the credentials, or gave none
	// access (HTTP 401 or 403, UNAUTHORIZED, DENIED). Docker Hub answers
	// so for repositories that do not exist, too.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: no such repository or tag (HTTP 404, NAME_UNKNOWN,
	// MANIFEST_UNKNOWN).
	ErrNotFound = errors.New("not found")
	// ErrRateLimited: the registry asked fluxd to slow down (HTTP 429 or
	// TOOMANYREQUESTS), or fluxd is still honouring its Retry-After.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: the registry failed (HTTP 5xx) or could not be
	// reached.
	ErrUnavailable = errors.New("registry unavailable")
	// ErrBadResponse: the registry answered something fluxd cannot read: an
	// unexpected status, a body that does not parse, a manifest of an
	// unknown kind.
	ErrBadResponse = errors.New("unexpected registry response")
)

// Errors of the scanner, for repositories it has no images for.
var (
	// ErrNotScanned: the repository has never been read (successfully) into
	// the cache. It is never answered with an empty list.
	ErrNotScanned = errors.New("not scanned yet")
	// ErrExcluded: the repository matches an exclude pattern and is never
	// scanned.
	ErrExcluded = errors.New("excluded from scanning")
)

// RegistryError is a failed registry read, classified.
type RegistryError struct {
	// Kind is one of ErrUnauthorized, ErrNotFound, ErrRateLimited,
	// ErrUnavailable, ErrBadResponse.
	Kind error
	// Host is the registry host, e.g. "index.docker.io".
	Host string
	// Repo is the repository, canonical, e.g. "index.docker.io/library/nginx".
	Repo string
	// StatusCode is the HTTP status, 0 when there was none.
	StatusCode int
	// RetryAfter is how long the host is paused for, for ErrRateLimited.
	RetryAfter time.Duration
	// Err is the underlying error.
	Err error
}

func (e *RegistryError) Error() string {
	subject := e.Repo
	if subject == "" {
		subject = e.Host
	}
	msg := fmt.Sprintf("%s: %v", subject, e.Kind)
	if e.Kind == ErrRateLimited && e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retrying after %s)", e.RetryAfter.Round(time.Second))
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if help := e.help(); help != "" {
		msg += "; " + help
	}
	return msg
}

func (e *RegistryError) help() string {
	switch e.Kind {
	case ErrUnauthorized:
		return "check the image pull secrets of the workloads using it (or the docker config given to fluxd), and that the repository exists"
	case ErrRateLimited:
		return "fluxd has slowed down its requests to " + e.Host + "; lower --registry-rps or use credentials with a higher limit"
	}
	return ""
}

// Is reports whether target is the error's Kind.
func (e *RegistryError) Is(target error) bool { return target == e.Kind }

// Unwrap gives the underlying error.
func (e *RegistryError) Unwrap() error { return e.Err }

// NotScannedError says that there are no images for a repository yet, and
// why when a scan was tried: errors.Is(err, ErrNotScanned) holds, and so
// does errors.Is(err, ErrUnauthorized) and the like for the cause.
type NotScannedError struct {
	Repo  string
	Cause error // the last refresh's error, nil if none was tried
}

func (e *NotScannedError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %v: %v", e.Repo, ErrNotScanned, e.Cause)
	}
	return fmt.Sprintf("%s: %v", e.Repo, ErrNotScanned)
}

// Is matches ErrNotScanned.
func (e *NotScannedError) Is(target error) bool { return target == ErrNotScanned }

// Unwrap gives the cause.
func (e *NotScannedError) Unwrap() error { return e.Cause }
