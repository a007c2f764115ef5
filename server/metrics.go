package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fluxd/fluxd/notes"
)

// Metrics are fluxd's Prometheus metrics: the API's own, and those the
// sync loop and git code report through its methods. All methods are safe
// for concurrent use, and do nothing on a nil *Metrics.
//
//	fluxd_api_request_duration_seconds{method,route,code}  histogram
//	fluxd_sync_duration_seconds{outcome="success"|"failure"} histogram
//	fluxd_sync_objects_applied_total                        counter
//	fluxd_sync_last_success_timestamp_seconds               gauge
//	fluxd_git_fetch_duration_seconds                        histogram
//	fluxd_git_fetch_errors_total                            counter
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.HistogramVec
	syncDuration    *prometheus.HistogramVec
	syncApplied     prometheus.Counter
	syncLastSuccess prometheus.Gauge
	fetchDuration   prometheus.Histogram
	fetchErrors     prometheus.Counter
	jobDuration     *prometheus.HistogramVec
}

// NewMetrics registers fluxd's metrics on reg. With a nil reg it makes a
// registry of its own, with the Go runtime and process collectors too.
func NewMetrics(reg *prometheus.Registry) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
		if err := reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, err
		}
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, err
		}
	}
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fluxd", Subsystem: "api", Name: "request_duration_seconds",
			Help:    "Time spent serving API requests, by route and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "code"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fluxd", Subsystem: "sync", Name: "duration_seconds",
			Help:    "Time spent applying a commit to the cluster, by outcome.",
			Buckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"outcome"}),
		syncApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fluxd", Subsystem: "sync", Name: "objects_applied_total",
			Help: "Objects created or changed by syncs.",
		}),
		syncLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "fluxd", Subsystem: "sync", Name: "last_success_timestamp_seconds",
			Help: "When the last sync that applied everything finished, in Unix seconds.",
		}),
		fetchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "fluxd", Subsystem: "git", Name: "fetch_duration_seconds",
			Help:    "Time spent fetching from the git remote.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "fluxd", Subsystem: "git", Name: "fetch_errors_total",
			Help: "Failed fetches from the git remote.",
		}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fluxd", Subsystem: "job", Name: "duration_seconds",
			Help:    "Time from a job's start to its end (its commit and job note pushed), by kind and outcome.",
			Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.syncDuration, m.syncApplied, m.syncLastSuccess, m.fetchDuration, m.fetchErrors, m.jobDuration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Registry is the registry the metrics are on, which /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// ObserveSync records one sync: how long it took, whether everything
// applied, and how many objects it created or changed.
func (m *Metrics) ObserveSync(d time.Duration, ok bool, applied int) {
	if m == nil {
		return
	}
	outcome := "success"
	if !ok {
		outcome = "failure"
	}
	m.syncDuration.WithLabelValues(outcome).Observe(d.Seconds())
	if applied > 0 {
		m.syncApplied.Add(float64(applied))
	}
	if ok {
		m.syncLastSuccess.SetToCurrentTime()
	}
}

// ObserveSyncRecord records the sync a sync note describes.
func (m *Metrics) ObserveSyncRecord(r notes.SyncRecord) {
	m.ObserveSync(time.Duration(r.DurationMS)*time.Millisecond, r.OK(), r.Counts.Applied)
}

// ObserveFetch records one git fetch and whether it failed.
func (m *Metrics) ObserveFetch(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.fetchDuration.Observe(d.Seconds())
	if err != nil {
		m.fetchErrors.Inc()
	}
}

// ObserveJob records a finished job: its kind, how long it ran, and
// whether it succeeded.
func (m *Metrics) ObserveJob(kind string, took time.Duration, ok bool) {
	if m == nil {
		return
	}
	outcome := "success"
	if !ok {
		outcome = "failure"
	}
	m.jobDuration.WithLabelValues(kind, outcome).Observe(took.Seconds())
}

func (m *Metrics) observeRequest(method, route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Observe(d.Seconds())
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
