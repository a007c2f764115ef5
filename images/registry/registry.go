// Package registry reads container registries for the image scanner: the
// tags of a repository, the manifest a tag points at, and the creation
// time, labels and digest of the image for the chosen platform. It is the
// only place that uses go-containerregistry's client.
//
// Every request for a registry host goes through that host's limiter (see
// WithRPS and WithBurst): when the host answers 429 or TOOMANYREQUESTS,
// its rate is halved, it is paused for the Retry-After, and the rate then
// recovers by 10% a minute. While a host is paused, calls for it fail at
// once with ErrRateLimited instead of waiting, so a caller never stalls.
// Errors are *images.RegistryError, classified by errors.Is against
// images.ErrUnauthorized, ErrNotFound, ErrRateLimited, ErrUnavailable and
// ErrBadResponse.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/images"
)

// Defaults of the options.
const (
	DefaultRPS      = 20
	DefaultBurst    = 10
	DefaultPlatform = "linux/amd64"
	// DefaultUserAgent is sent to registries unless WithUserAgent says
	// otherwise.
	DefaultUserAgent = "fluxd"
	// DefaultTimeout bounds the wait for a registry's response headers.
	DefaultTimeout = 30 * time.Second
)

// Option configures a Client.
type Option func(*options) error

type options struct {
	rps         float64
	burst       int
	platform    *v1.Platform
	insecure    map[string]bool
	configPath  string
	secrets     PullSecrets
	base        http.RoundTripper
	userAgent   string
	log         zerolog.Logger
	respTimeout time.Duration
}

// WithRPS sets the requests per second allowed to each registry host
// (--registry-rps). Default DefaultRPS.
func WithRPS(rps float64) Option {
	return func(o *options) error {
		if !(rps > 0) {
			return fmt.Errorf("registry rps must be above 0, not %v", rps)
		}
		o.rps = rps
		return nil
	}
}

// WithBurst sets how many requests may go to a host at once after a quiet
// spell (--registry-burst). Default DefaultBurst.
func WithBurst(burst int) Option {
	return func(o *options) error {
		if burst < 1 {
			return fmt.Errorf("registry burst must be at least 1, not %d", burst)
		}
		o.burst = burst
		return nil
	}
}

// WithPlatform sets the platform whose image is read from a multi-platform
// index: "os/arch" or "os/arch/variant". Default DefaultPlatform.
func WithPlatform(p string) Option {
	return func(o *options) error {
		pl, err := v1.ParsePlatform(p)
		if err != nil || pl.OS == "" || pl.Architecture == "" {
			return fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/arm64", p)
		}
		o.platform = pl
		return nil
	}
}

// WithInsecure lists registry hosts ("host[:port]") that may be reached
// over plain http. All others are https only (go-containerregistry also
// allows http for localhost and loopback addresses).
func WithInsecure(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			h = strings.TrimSpace(h)
			if h == "" || strings.ContainsAny(h, "/ ") {
				return fmt.Errorf("insecure registry %q: want host[:port]", h)
			}
			o.insecure[h] = true
		}
		return nil
	}
}

// WithDockerConfig reads registry credentials from a docker config file
// ({"auths":{...}}). It is read at New, so a bad file fails start-up, and
// again whenever it changes. Pull secrets (WithPullSecrets) come first.
func WithDockerConfig(path string) Option {
	return func(o *options) error {
		o.configPath = path
		return nil
	}
}

// WithPullSecrets takes credentials from the cluster's image pull secrets.
func WithPullSecrets(s PullSecrets) Option {
	return func(o *options) error {
		o.secrets = s
		return nil
	}
}

// WithTransport sets the HTTP transport under the limiter (tests).
// Default: go-containerregistry's remote.DefaultTransport with a
// response header timeout.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("nil transport")
		}
		o.base = rt
		return nil
	}
}

// WithUserAgent sets the User-Agent sent to registries.
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// Client reads registries. It is safe for concurrent use.
type Client struct {
	platform   v1.Platform
	insecure   map[string]bool
	configFile *configFile
	secrets    PullSecrets
	base       http.RoundTripper
	userAgent  string
	rps        float64
	burst      int
	log        zerolog.Logger

	mu      sync.Mutex
	hosts   map[string]*host
	pullers map[string]*session
}

// session is an authenticated puller for one repository: it pings the
// registry and fetches a token once, then reuses them.
type session struct {
	fp     string
	puller *remote.Puller
}

// New returns a Client.
func New(opts ...Option) (*Client, error) {
	o := options{
		userAgent: DefaultUserAgent,
		rps:       DefaultRPS,
		burst:     DefaultBurst,
		insecure:  map[string]bool{},
		log:       zerolog.Nop(),
	}
	if err := WithPlatform(DefaultPlatform)(&o); err != nil {
		return nil, err
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.base == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = DefaultTimeout
		o.base = t
	}
	c := &Client{
		platform:  *o.platform,
		insecure:  o.insecure,
		secrets:   o.secrets,
		base:      o.base,
		userAgent: o.userAgent,
		rps:       o.rps,
		burst:     o.burst,
		log:       o.log,
		hosts:     map[string]*host{},
		pullers:   map[string]*session{},
	}
	if o.configPath != "" {
		f, err := loadConfigFile(o.configPath)
		if err != nil {
			return nil, err
		}
		c.configFile = f
	}
	return c, nil
}

// Platform is the platform images are read for, e.g. "linux/amd64".
func (c *Client) Platform() string { return c.platform.String() }

// Repo is a parsed image repository.
type Repo struct {
	// Given is the repository as the caller spelled it, without tag or
	// digest: "nginx", "ghcr.io/shop/cart".
	Given string
	// Name is the canonical name: "index.docker.io/library/nginx".
	Name string
	// Host is the registry host: "index.docker.io", "ghcr.io".
	Host string

	ref name.Repository
}

// Resolve parses a repository ("nginx", "ghcr.io/shop/cart"); a tag or
// digest on it is ignored.
func (c *Client) Resolve(s string) (Repo, error) {
	given, _, _ := splitRef(strings.TrimSpace(s))
	ref, err := name.NewRepository(given)
	if err != nil {
		return Repo{}, fmt.Errorf("image repository %q: %w", s, err)
	}
	if c.insecure[ref.RegistryStr()] {
		if ref, err = name.NewRepository(given, name.Insecure); err != nil {
			return Repo{}, fmt.Errorf("image repository %q: %w", s, err)
		}
	}
	return Repo{Given: given, Name: ref.Name(), Host: ref.RegistryStr(), ref: ref}, nil
}

// splitRef strips a tag and digest from a ref.
func splitRef(s string) (repo, tag, digest string) {
	repo = s
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

func (c *Client) host(name string) *host {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hosts[name]
	if !ok {
		h = &host{name: name, lim: newLimiter(c.rps, c.burst)}
		h.rt = &hostTransport{h: h, base: c.base}
		c.hosts[name] = h
	}
	return h
}

// PausedUntil is the end of the pause of a rate-limited host, or the zero
// time when it is not paused.
func (c *Client) PausedUntil(hostname string) time.Time {
	c.mu.Lock()
	h, ok := c.hosts[hostname]
	c.mu.Unlock()
	if !ok {
		return time.Time{}
	}
	if until, paused := h.lim.paused(time.Now()); paused {
		return until
	}
	return time.Time{}
}

// Hosts is the state of every host the client has talked to, by name.
func (c *Client) Hosts() []images.HostStatus {
	c.mu.Lock()
	hs := make([]*host, 0, len(c.hosts))
	for _, h := range c.hosts {
		hs = append(hs, h)
	}
	c.mu.Unlock()
	now := time.Now()
	out := make([]images.HostStatus, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.status(now))
	}
	slices.SortFunc(out, func(a, b images.HostStatus) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// puller returns the session for a repository. With fresh set (at the
// start of a refresh: Tags) or when there is none yet, it looks the
// credentials up again and makes a new session when they changed; the
// reads of the tags that follow reuse it.
func (c *Client) puller(ctx context.Context, r Repo, fresh bool) (*remote.Puller, error) {
	c.mu.Lock()
	s, ok := c.pullers[r.Name]
	c.mu.Unlock()
	if ok && !fresh {
		return s.puller, nil
	}
	auth, fp, err := c.credentials(ctx, r)
	if err != nil {
		return nil, err
	}
	if ok && s.fp == fp {
		return s.puller, nil
	}
	h := c.host(r.Host)
	opts := []remote.Option{
		remote.WithTransport(h.rt),
		remote.WithAuth(auth),
		remote.WithPlatform(c.platform),
		// Retries are the scanner's business: a failed refresh is tried
		// again on its next turn, after any pause.
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}
	if c.userAgent != "" {
		opts = append(opts, remote.WithUserAgent(c.userAgent))
	}
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pullers[r.Name] = &session{fp: fp, puller: p}
	c.mu.Unlock()
	return p, nil
}

// Forget drops a repository's session (its token and credentials), e.g.
// when it is no longer watched, or after it was refused.
func (c *Client) Forget(r Repo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pullers, r.Name)
}
