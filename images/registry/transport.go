package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/fluxd/fluxd/images"
)

// host is the state of one registry host: its limiter, counters and last
// host-wide error. Every HTTP request made for a repository on the host,
// token requests to its auth server included, goes through its transport.
type host struct {
	name string
	lim  *limiter
	rt   http.RoundTripper

	requests atomic.Int64

	mu        sync.Mutex
	lastErr   error
	lastErrAt time.Time
	lastOK    time.Time
}

// pausedError is returned, without a request being sent, while a host is
// paused after a 429.
type pausedError struct {
	host  string
	until time.Time
}

func (e *pausedError) Error() string {
	return fmt.Sprintf("%s is rate-limiting fluxd: paused until %s", e.host, e.until.UTC().Format(time.RFC3339))
}

func (h *host) setErr(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr, h.lastErrAt = err, now
}

func (h *host) ok(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr, h.lastOK = nil, now
}

func (h *host) status(now time.Time) images.HostStatus {
	cur, configured, paused := h.lim.state(now)
	h.mu.Lock()
	defer h.mu.Unlock()
	st := images.HostStatus{
		Host:           h.name,
		Rate:           cur,
		ConfiguredRate: configured,
		RateLimited:    now.Before(paused) || cur < configured,
		Requests:       h.requests.Load(),
		LastError:      h.lastErr,
		LastErrorAt:    h.lastErrAt,
		LastSuccessAt:  h.lastOK,
	}
	if now.Before(paused) {
		st.PausedUntil = paused
	}
	return st
}

// hostTransport limits the requests to one host and watches the answers
// for rate limiting.
type hostTransport struct {
	h    *host
	base http.RoundTripper
}

func (t *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	wait, cancel, until, paused := t.h.lim.reserve(time.Now())
	if paused {
		return nil, &pausedError{host: t.h.name, until: until}
	}
	if wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			cancel()
			return nil, ctx.Err()
		case <-timer.C:
		}
		// A 429 may have paused the host while this request waited.
		if until, paused := t.h.lim.paused(time.Now()); paused {
			return nil, &pausedError{host: t.h.name, until: until}
		}
	}
	sent := time.Now()
	t.h.requests.Add(1)
	resp, err := t.base.RoundTrip(req)
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			t.h.setErr(&images.RegistryError{Kind: images.ErrUnavailable, Host: t.h.name, Err: err}, now)
		}
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode >= 400 && tooManyRequests(resp)):
		ra := parseRetryAfter(resp.Header.Get("Retry-After"), now)
		t.h.lim.penalize(now, sent, ra)
		until, _ := t.h.lim.paused(now)
		t.h.setErr(&images.RegistryError{Kind: images.ErrRateLimited, Host: t.h.name, StatusCode: resp.StatusCode, RetryAfter: until.Sub(now)}, now)
	case resp.StatusCode >= 500:
		t.h.setErr(&images.RegistryError{Kind: images.ErrUnavailable, Host: t.h.name, StatusCode: resp.StatusCode}, now)
	default:
		t.h.ok(now)
	}
	return resp, nil
}

// maxErrorBody bounds how much of an error body is read to find its codes.
const maxErrorBody = 64 << 10

// tooManyRequests reports whether an error response carries the
// distribution error code TOOMANYREQUESTS (some registries send it with a
// status other than 429). It decodes the body as the error envelope of
// the distribution spec, and puts the body back for the caller.
func tooManyRequests(resp *http.Response) bool {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	if err != nil {
		return false
	}
	var env struct {
		Errors []struct {
			Code transport.ErrorCode `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &env) != nil {
		return false
	}
	for _, e := range env.Errors {
		if e.Code == transport.TooManyRequestsErrorCode {
			return true
		}
	}
	return false
}
