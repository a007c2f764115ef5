package server

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"
)

// Option configures a Server. Options check their values: New returns
// the first error.
type Option func(*config) error

type config struct {
	token        string
	log          zerolog.Logger
	metrics      *Metrics
	maxBodyBytes int64
	timeouts     Timeouts
}

// DefaultMaxBodyBytes is the default limit on request bodies.
const DefaultMaxBodyBytes = 1 << 20

// Timeouts bound slow clients and slow handlers. A zero field keeps its
// default.
type Timeouts struct {
	// ReadHeader is the time to read the request headers (default 10s).
	ReadHeader time.Duration
	// Read is the time to read the whole request, body included
	// (default 1m).
	Read time.Duration
	// Write is the time from the end of the request headers to the end of
	// the response (default 3m). A release plan runs within it.
	Write time.Duration
	// Idle is how long a keep-alive connection may wait for its next
	// request (default 2m).
	Idle time.Duration
	// Handler is the deadline of the context the dependencies get
	// (default 2m30s); keep it under Write so that the answer, even an
	// error, can still be written.
	Handler time.Duration
}

// DefaultTimeouts are the timeouts when none are set.
var DefaultTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,
	Read:       time.Minute,
	Write:      3 * time.Minute,
	Idle:       2 * time.Minute,
	Handler:    150 * time.Second,
}

// WithToken requires every request except GET /v11/ping and /metrics to
// carry the token, as `Authorization: Bearer <token>` or Flux v1's
// `Authorization: Scope-Probe token=<token>`. Without it, the API is open.
func WithToken(token string) Option {
	return func(c *config) error {
		if token == "" {
			return errors.New("server: empty API token (leave WithToken out to run without one)")
		}
		if strings.IndexFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return errors.New("server: the API token contains white space or control characters, which cannot be sent in an Authorization header")
		}
		c.token = token
		return nil
	}
}

// WithLogger sets the logger (default: none). Requests are logged at
// debug, failures at warn and error; the token never is.
func WithLogger(l zerolog.Logger) Option {
	return func(c *config) error { c.log = l; return nil }
}

// WithMetrics sets the metrics, and with them the registry /metrics
// serves (default: NewMetrics(nil), on a registry of its own). Make them
// first with NewMetrics to share them with the sync loop and git code.
func WithMetrics(m *Metrics) Option {
	return func(c *config) error {
		if m == nil {
			return errors.New("server: nil metrics")
		}
		c.metrics = m
		return nil
	}
}

// WithMaxBodyBytes limits request bodies (default DefaultMaxBodyBytes).
// A larger body is answered 413.
func WithMaxBodyBytes(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("server: body limit must be positive, got %d", n)
		}
		c.maxBodyBytes = n
		return nil
	}
}

// WithTimeouts overrides DefaultTimeouts, field by field.
func WithTimeouts(t Timeouts) Option {
	return func(c *config) error {
		for _, d := range []time.Duration{t.ReadHeader, t.Read, t.Write, t.Idle, t.Handler} {
			if d < 0 {
				return fmt.Errorf("server: negative timeout %s", d)
			}
		}
		set := func(dst *time.Duration, v time.Duration) {
			if v > 0 {
				*dst = v
			}
		}
		set(&c.timeouts.ReadHeader, t.ReadHeader)
		set(&c.timeouts.Read, t.Read)
		set(&c.timeouts.Write, t.Write)
		set(&c.timeouts.Idle, t.Idle)
		set(&c.timeouts.Handler, t.Handler)
		if c.timeouts.Handler >= c.timeouts.Write {
			return fmt.Errorf("server: the handler timeout (%s) must be shorter than the write timeout (%s)", c.timeouts.Handler, c.timeouts.Write)
		}
		return nil
	}
}
