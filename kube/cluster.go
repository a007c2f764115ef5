package kube

import (
	"context"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Defaults of the options of New.
const (
	DefaultFieldManager     = "fluxd"
	DefaultWorkers          = 16
	DefaultCRDWaitTimeout   = 30 * time.Second
	DefaultNamespace        = "default"
	DefaultQPS              = 1000
	DefaultBurst            = 2000
	maxWorkers              = 256
	crdEstablishedPollEvery = 100 * time.Millisecond
)

type options struct {
	fieldManager     string
	workers          int
	crdWaitTimeout   time.Duration
	defaultNamespace string
	qps              float32
	burst            int
}

// Option configures a Cluster.
type Option func(*options) error

// WithFieldManager sets the server-side apply field manager that owns every
// field fluxd applies. Default DefaultFieldManager ("fluxd"). Changing it
// makes objects applied under the old name look foreign to pruning.
func WithFieldManager(name string) Option {
	return func(o *options) error {
		if name == "" || len(name) > 128 {
			return fmt.Errorf("field manager %q: want 1 to 128 characters", name)
		}
		o.fieldManager = name
		return nil
	}
}

// WithWorkers sets how many objects are applied (and pruned, and kinds
// listed) at once. Default DefaultWorkers (16).
func WithWorkers(n int) Option {
	return func(o *options) error {
		if n < 1 || n > maxWorkers {
			return fmt.Errorf("workers %d: want 1 to %d", n, maxWorkers)
		}
		o.workers = n
		return nil
	}
}

// WithCRDWaitTimeout bounds the wait for newly applied
// CustomResourceDefinitions to become Established (and served) before
// their custom resources are applied. Default DefaultCRDWaitTimeout (30s).
func WithCRDWaitTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("CRD wait timeout %s: want more than zero", d)
		}
		o.crdWaitTimeout = d
		return nil
	}
}

// WithDefaultNamespace sets the namespace of namespaced objects whose
// manifest names none. Default DefaultNamespace ("default").
func WithDefaultNamespace(ns string) Option {
	return func(o *options) error {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("default namespace %q: %v", ns, errs)
		}
		o.defaultNamespace = ns
		return nil
	}
}

// WithRateLimit sets the client-side rate limit New uses when the
// rest.Config leaves it at client-go's defaults (see New). Default
// DefaultQPS (1000) and DefaultBurst (2000): concurrency is bounded by the
// workers, and the apiserver's priority and fairness protects it.
func WithRateLimit(qps float32, burst int) Option {
	return func(o *options) error {
		if qps <= 0 || burst < 1 {
			return fmt.Errorf("rate limit %v/s burst %d: want both more than zero", qps, burst)
		}
		o.qps, o.burst = qps, burst
		return nil
	}
}

// Cluster applies manifests to one Kubernetes cluster. It is safe for
// concurrent use.
type Cluster struct {
	opts options
	// rest is the dynamic client's REST client; apply uses it directly to
	// see the HTTP status (201 Created).
	rest rest.Interface
	// metaRest is a REST client like the metadata client's, for applies
	// that return metadata only.
	metaRest rest.Interface
	dyn      dynamic.Interface
	meta     metadata.Interface
	disc     discovery.CachedDiscoveryInterfaceWithContext
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	parsed   parseCache
}

// New returns a Cluster talking to the apiserver of cfg. cfg is copied, not
// changed. When cfg's rate limit is client-go's default (QPS 0 or 5 and
// Burst 0 or 10, no RateLimiter), New raises it to WithRateLimit's values:
// at 5 requests a second, syncing 1,000 objects would take minutes.
func New(cfg *rest.Config, opts ...Option) (*Cluster, error) {
	o := options{
		fieldManager:     DefaultFieldManager,
		workers:          DefaultWorkers,
		crdWaitTimeout:   DefaultCRDWaitTimeout,
		defaultNamespace: DefaultNamespace,
		qps:              DefaultQPS,
		burst:            DefaultBurst,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	if cfg == nil {
		return nil, fmt.Errorf("kube: no rest.Config")
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.RateLimiter == nil && (cfg.QPS == 0 || cfg.QPS == rest.DefaultQPS) && (cfg.Burst == 0 || cfg.Burst == rest.DefaultBurst) {
		cfg.QPS, cfg.Burst = o.qps, o.burst
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "fluxd"
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: HTTP client: %w", err)
	}
	return newCluster(cfg, hc, o)
}

func newCluster(cfg *rest.Config, hc *http.Client, o options) (*Cluster, error) {
	dcfg := dynamic.ConfigFor(cfg)
	// JSON both ways, whatever client-go's CBOR feature gates say: apply
	// decodes the response itself.
	dcfg.ContentType = "application/json"
	dcfg.AcceptContentTypes = "application/json"
	rc, err := rest.UnversionedRESTClientForConfigAndClient(dcfg, hc)
	if err != nil {
		return nil, fmt.Errorf("kube: REST client: %w", err)
	}
	// The LISTs of every kind for pruning would log deprecation warnings
	// (v1 Endpoints) on every sync.
	quiet := rest.CopyConfig(cfg)
	quiet.WarningHandler = rest.NoWarnings{}
	mcfg := metadata.ConfigFor(cfg)
	mcfg.GroupVersion = &schema.GroupVersion{}
	mrc, err := rest.RESTClientForConfigAndClient(mcfg, hc)
	if err != nil {
		return nil, fmt.Errorf("kube: REST client: %w", err)
	}
	mc, err := metadata.NewForConfigAndClient(quiet, hc)
	if err != nil {
		return nil, fmt.Errorf("kube: metadata client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("kube: discovery client: %w", err)
	}
	cached := memory.NewMemCacheClientWithContext(dc)
	return &Cluster{
		opts:     o,
		rest:     rc,
		metaRest: mrc,
		dyn:      dynamic.New(rc),
		meta:     mc,
		disc:     cached,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapperWithContext(cached),
	}, nil
}

var (
	namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	crdGVR       = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// ClusterID returns the UID of the kube-system namespace, which identifies
// a cluster for as long as it exists.
func (c *Cluster) ClusterID(ctx context.Context) (string, error) {
	ns, err := c.meta.Resource(namespaceGVR).Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("cluster ID: get namespace kube-system: %w", err)
	}
	return string(ns.GetUID()), nil
}
