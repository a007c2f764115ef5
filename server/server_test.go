package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server/api"
)

const token = "s3cr3t-T0ken"

func TestAuth(t *testing.T) {
	var logs bytes.Buffer
	f := &fake{workloads: workloads()}
	s := newServer(t, allDeps(f), WithToken(token), WithLogger(zerolog.New(&logs).Level(zerolog.DebugLevel)))
	list := get("/api/flux/v6/services")

	for name, auth := range map[string]string{
		"none":                 "",
		"wrong bearer":         "Bearer nope",
		"token prefix":         "Bearer " + token[:5],
		"token and more":       "Bearer " + token + "x",
		"wrong scope probe":    "Scope-Probe token=nope",
		"scope probe no token": "Scope-Probe " + token,
		"bare token":           token,
		"basic":                "Basic " + token,
		"empty bearer":         "Bearer ",
	} {
		w := s.do(t, list.with("Authorization", auth))
		e := envelope(t, w, 401, api.TypeUser, "request failed authentication")
		if !strings.Contains(e.Help, "--token") || !strings.Contains(e.Help, "FLUX_TOKEN") {
			t.Errorf("%s: help %q", name, e.Help)
		}
		if w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	if c := f.called(); len(c) != 0 {
		t.Errorf("unauthenticated requests reached the dependencies: %v", c)
	}

	for _, auth := range []string{"Bearer " + token, "bearer " + token, "Scope-Probe token=" + token, "scope-probe token=" + token, "  Bearer   " + token + " "} {
		expect(t, s.do(t, list.with("Authorization", auth)), 200, jsonContentType, servicesJSON)
	}

	// Ping and metrics need no token; everything else does, even unknown
	// and deprecated routes.
	expect(t, s.do(t, get("/api/flux/v11/ping")), 204, "", "")
	if w := s.do(t, get("/metrics")); w.Code != 200 {
		t.Errorf("/metrics: %d", w.Code)
	}
	for _, rq := range []request{get("/api/flux/v11/version"), get("/api/flux/nothing"), get("/api/flux/v3/services"), post("/api/flux/v11/ping", "")} {
		envelope(t, s.do(t, rq), 401, api.TypeUser, "request failed authentication")
	}

	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), token[:5]) {
		t.Errorf("the token is in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"status":401`) || !strings.Contains(logs.String(), `"route":"/v6/services"`) {
		t.Errorf("requests not logged:\n%s", logs.String())
	}
}

func TestAccept(t *testing.T) {
	s := newServer(t, allDeps(&fake{}))
	notFound := get("/api/flux/v6/nothing")
	bad := get("/api/flux/v6/services?services=nope")

	for _, accept := range []string{"application/json", "*/*", "application/*", "text/plain;q=0.5, application/json", "application/json; charset=utf-8", "APPLICATION/JSON"} {
		envelope(t, s.do(t, notFound.with("Accept", accept)), 404, api.TypeMissing, "API endpoint not found")
	}
	for _, accept := range []string{"text/plain", "text/*", "application/json;q=0.1, text/plain", "text/plain, */*;q=0.1"} {
		w := s.do(t, notFound.with("Accept", accept))
		if w.Code != 404 || w.Header().Get("Content-Type") != textContentType || !strings.HasPrefix(w.Body.String(), "The API endpoint requested is not supported") {
			t.Errorf("Accept %q: %d %q %q", accept, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	for _, accept := range []string{"", "text/html", "application/json;q=0"} {
		expect(t, s.do(t, notFound.with("Accept", accept)), 404, textContentType, "API endpoint not found")
	}

	// A 400 has no help: the message, in each form.
	badReq(t, s.do(t, bad), `parsing workload ID "nope"`)
	w := s.do(t, bad.with("Accept", "text/plain"))
	if w.Code != 400 || !strings.HasPrefix(w.Body.String(), `parsing workload ID "nope"`) {
		t.Errorf("text 400: %d %q", w.Code, w.Body)
	}
	w = s.do(t, bad.with("Accept", ""))
	if w.Code != 400 || w.Header().Get("Content-Type") != textContentType || !strings.HasPrefix(w.Body.String(), `parsing workload ID "nope"`) {
		t.Errorf("plain 400: %d %q", w.Code, w.Body)
	}

	// Success ignores Accept.
	expect(t, s.do(t, get("/api/flux/v11/version").with("Accept", "text/plain")), 200, jsonContentType, `"1.2.3"`)
}

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                       "",
		"application/json":                       "application/json",
		"text/plain":                             "text/plain",
		"*/*":                                    "application/json",
		"*":                                      "application/json",
		"text/*":                                 "text/plain",
		"text/html":                              "",
		"text/plain, application/json":           "application/json",
		"text/plain;q=1, application/json;q=0.9": "text/plain",
		"application/json;q=0, */*":              "text/plain",
		"application/json;q=oops":                "",
		"garbage":                                "",
	} {
		if got := negotiate(accept, "application/json", "text/plain"); got != want {
			t.Errorf("negotiate(%q) = %q, want %q", accept, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, allDeps(&fake{workloads: workloads()}), WithMetrics(m))
	if s.Metrics() != m {
		t.Error("Metrics() is not the one given")
	}
	s.do(t, get("/api/flux/v6/services"))
	s.do(t, get("/api/flux/v6/nothing"))
	s.do(t, get("/api/flux/v2/services"))
	m.ObserveSync(2*time.Second, true, 3)
	m.ObserveSyncRecord(notes.SyncRecord{DurationMS: 500, Counts: notes.Counts{Applied: 1, Failed: 1}})
	m.ObserveFetch(time.Second, nil)
	m.ObserveFetch(time.Second, http.ErrHandlerTimeout)

	w := s.do(t, get("/metrics"))
	body := w.Body.String()
	for _, want := range []string{
		`fluxd_api_request_duration_seconds_count{code="200",method="GET",route="/v6/services"} 1`,
		`fluxd_api_request_duration_seconds_count{code="404",method="GET",route="notfound"} 1`,
		`fluxd_api_request_duration_seconds_count{code="410",method="GET",route="deprecated"} 1`,
		`fluxd_sync_duration_seconds_count{outcome="success"} 1`,
		`fluxd_sync_duration_seconds_count{outcome="failure"} 1`,
		`fluxd_sync_objects_applied_total 4`,
		`fluxd_git_fetch_duration_seconds_count 2`,
		`fluxd_git_fetch_errors_total 1`,
		`fluxd_sync_last_success_timestamp_seconds `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("a registry passed in got the Go collector")
	}

	// The default registry has the runtime collectors.
	d := newServer(t, Deps{})
	if body := d.do(t, get("/metrics")).Body.String(); !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "fluxd_git_fetch_errors_total") {
		t.Errorf("default /metrics:\n%s", body)
	}

	var nilMetrics *Metrics
	nilMetrics.ObserveSync(time.Second, false, 1)
	nilMetrics.ObserveFetch(time.Second, nil)
}

func TestHTTPServer(t *testing.T) {
	s := newServer(t, Deps{}, WithTimeouts(Timeouts{Write: 5 * time.Minute}))
	hs := s.HTTPServer(":3030")
	if hs.Addr != ":3030" || hs.Handler != s {
		t.Errorf("addr %q handler %v", hs.Addr, hs.Handler)
	}
	if hs.ReadHeaderTimeout != 10*time.Second || hs.ReadTimeout != time.Minute || hs.WriteTimeout != 5*time.Minute || hs.IdleTimeout != 2*time.Minute || hs.MaxHeaderBytes == 0 || hs.ErrorLog == nil {
		t.Errorf("timeouts %+v", hs)
	}
}

func TestOptions(t *testing.T) {
	for name, opt := range map[string]Option{
		"empty token":        WithToken(""),
		"token with space":   WithToken("a b"),
		"token with newline": WithToken("ab\n"),
		"nil metrics":        WithMetrics(nil),
		"zero body limit":    WithMaxBodyBytes(0),
		"negative timeout":   WithTimeouts(Timeouts{Read: -1}),
		"handler >= write":   WithTimeouts(Timeouts{Handler: 3 * time.Minute}),
	} {
		if _, err := New(Deps{}, opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	m, _ := NewMetrics(prometheus.NewRegistry())
	if _, err := New(Deps{}, WithToken("t"), WithMaxBodyBytes(10), WithMetrics(m), WithTimeouts(Timeouts{Handler: time.Second}), WithLogger(zerolog.Nop())); err != nil {
		t.Error(err)
	}
}

func TestHandlerDeadline(t *testing.T) {
	var deadline time.Time
	dl := deadlineDeps{got: &deadline}
	s := newServer(t, Deps{Exporter: dl}, WithTimeouts(Timeouts{Handler: 7 * time.Second}))
	s.do(t, get("/api/flux/v6/export"))
	if d := time.Until(deadline); d <= 6*time.Second || d > 7*time.Second {
		t.Errorf("dependency deadline in %s, want within 7s", d)
	}
}
