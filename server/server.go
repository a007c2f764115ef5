package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/rs/zerolog"
)

// Prefix is where the API is mounted; it is stripped before routing.
const Prefix = "/api/flux"

// Server serves fluxd's HTTP API under Prefix, and Prometheus metrics at
// /metrics. Make one with New; it is an http.Handler.
type Server struct {
	deps      Deps
	cfg       config
	log       zerolog.Logger
	metrics   *Metrics
	tokenHash []byte // sha256 of the token; nil when none is required
	router    *httprouter.Router
	promHTTP  http.Handler
	encoded   encodedCache
}

// New makes a server of deps, which may be partly nil (see Deps).
func New(deps Deps, opts ...Option) (*Server, error) {
	cfg := config{log: zerolog.Nop(), maxBodyBytes: DefaultMaxBodyBytes, timeouts: DefaultTimeouts}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, fmt.Errorf("server: metrics: %w", err)
		}
		cfg.metrics = m
	}
	s := &Server{deps: deps, cfg: cfg, log: cfg.log, metrics: cfg.metrics}
	if cfg.token != "" {
		h := sha256.Sum256([]byte(cfg.token))
		s.tokenHash = h[:]
	}
	s.router = s.routes()
	s.promHTTP = cfg.metrics.handler()
	if missing := deps.missing(); len(missing) > 0 {
		s.log.Info().Strs("deps", missing).Msg("the API routes of these dependencies answer 501 until they are wired")
	}
	return s, nil
}

// Metrics returns the server's metrics, for the sync loop and git code to
// report to.
func (s *Server) Metrics() *Metrics { return s.metrics }

// HTTPServer returns an http.Server for s on addr, with timeouts that
// stop slow clients from holding connections (see Timeouts).
func (s *Server) HTTPServer(addr string) *http.Server {
	t := s.cfg.timeouts
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(logWriter{s.log}, "", 0),
	}
}

// logWriter sends net/http's own messages (TLS handshakes, bad requests)
// to the logger.
type logWriter struct{ log zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn().Str("component", "http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// reqInfo travels in the request context, so that the route a handler
// serves reaches the request log and metrics.
type reqInfo struct {
	route string
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(infoKey{}).(*reqInfo)
	return i
}

// ServeHTTP serves /metrics and the API under Prefix. It recovers panics
// into a 500 envelope, and logs and measures every request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	info := &reqInfo{route: "notfound"}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.timeouts.Handler)
	defer cancel()
	r = r.WithContext(context.WithValue(ctx, infoKey{}, info))
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error().Str("route", info.route).Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("API handler panicked")
			if !rec.wrote {
				writeError(rec, r, internalError(errors.New("internal error: the handler panicked")))
			}
		}
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		took := time.Since(start)
		s.metrics.observeRequest(metricMethod(r.Method), info.route, code, took)
		s.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("route", info.route).
			Int("status", code).Int64("bytes", rec.bytes).Dur("took", took).Str("remote", r.RemoteAddr).Msg("request")
	}()

	path := r.URL.Path
	switch {
	case path == "/metrics":
		info.route = "/metrics"
		s.promHTTP.ServeHTTP(rec, r)
	case strings.HasPrefix(path, Prefix+"/"):
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = strings.TrimPrefix(path, Prefix)
		u.RawPath = strings.TrimPrefix(r.URL.RawPath, Prefix)
		r2.URL = &u
		s.router.ServeHTTP(rec, r2)
	default:
		s.fail(rec, r, routeNotFound(path))
	}
}

func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// recorder remembers the status and size of a response.
type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.code, r.wrote = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// reply is what a handler answers on success.
type reply struct {
	code    int
	body    any
	hasBody bool
	raw     []byte // the body, already encoded
}

// respond answers 200 with v as JSON.
func respond(v any) reply { return reply{code: http.StatusOK, body: v, hasBody: true} }

// noBody answers code with no body.
func noBody(code int) reply { return reply{code: code} }

// apiFunc is the one handler type of the API: it returns the answer or
// an error, and wrap writes either.
type apiFunc func(r *http.Request) (reply, error)

// wrap makes f a handler for route: it checks the token unless public,
// limits the body, and maps f's error to a status code and body.
func (s *Server) wrap(route string, public bool, f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := infoFrom(r.Context()); info != nil {
			info.route = route
		}
		if !public && !s.authorized(r) {
			s.fail(w, r, errUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.maxBodyBytes)
		rep, err := f(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.write(w, r, rep)
	})
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, rep reply) {
	if !rep.hasBody {
		w.WriteHeader(rep.code)
		return
	}
	b := rep.raw
	if b == nil {
		var err error
		if b, err = json.Marshal(rep.body); err != nil {
			s.fail(w, r, internalError(fmt.Errorf("encode the response: %w", err)))
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(rep.code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// fail answers err and logs it: server faults at error, the rest at warn.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := writeError(w, r, err)
	route := ""
	if info := infoFrom(r.Context()); info != nil {
		route = info.route
	}
	ev := s.log.Warn()
	if code >= 500 && code != http.StatusNotImplemented {
		ev = s.log.Error()
	}
	ev.Str("method", r.Method).Str("path", r.URL.Path).Str("route", route).Int("status", code).Err(err).Msg("request failed")
}

// decodeBody decodes the whole body into v; 400 when it does not decode,
// 413 when it is too big.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return bodyTooLarge(mbe.Limit)
		}
		return badRequest("reading the request body: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("decoding the request body: %v", err)
	}
	return nil
}

// query parses the query string; 400 when it does not parse.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("invalid query: %v", err)
	}
	return q, nil
}

// required checks that the query has every key, as Flux v1's routes
// require: a missing key means no route matched, 404.
func required(r *http.Request, q url.Values, keys ...string) error {
	for _, k := range keys {
		if _, ok := q[k]; !ok {
			return routeNotFound(Prefix + r.URL.Path)
		}
	}
	return nil
}
