package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/fluxd/fluxd/images"
	"github.com/fluxd/fluxd/images/internal/regtest"
	"github.com/fluxd/fluxd/images/registry"
)

var ctx = context.Background()

func newClient(t *testing.T, opts ...registry.Option) *registry.Client {
	t.Helper()
	c, err := registry.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func resolve(t *testing.T, c *registry.Client, s string) registry.Repo {
	t.Helper()
	r, err := c.Resolve(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolve(t *testing.T) {
	c := newClient(t)
	for _, tc := range []struct{ in, given, name, host string }{
		{"nginx", "nginx", "index.docker.io/library/nginx", "index.docker.io"},
		{"nginx:1.27", "nginx", "index.docker.io/library/nginx", "index.docker.io"},
		{"docker.io/fluxcd/flux", "docker.io/fluxcd/flux", "index.docker.io/fluxcd/flux", "index.docker.io"},
		{"ghcr.io/shop/cart@sha256:0123456789012345678901234567890123456789012345678901234567890123", "ghcr.io/shop/cart", "ghcr.io/shop/cart", "ghcr.io"},
		{"localhost:5000/app:1.0", "localhost:5000/app", "localhost:5000/app", "localhost:5000"},
	} {
		r, err := c.Resolve(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if r.Given != tc.given || r.Name != tc.name || r.Host != tc.host {
			t.Errorf("Resolve(%q) = %+v", tc.in, r)
		}
	}
	if _, err := c.Resolve("UPPER/Case"); err == nil {
		t.Error("an invalid repository resolved")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, opt := range []registry.Option{
		registry.WithRPS(0), registry.WithBurst(0), registry.WithPlatform("amd64"),
		registry.WithInsecure("http://x"), registry.WithDockerConfig(filepath.Join(t.TempDir(), "missing.json")),
	} {
		if _, err := registry.New(opt); err == nil {
			t.Error("a bad option was accepted")
		} else {
			t.Log(err)
		}
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestTagsManifestImage(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "shop/cart", "1.0", regtest.Image(t, t0, nil))
	srv.Push(t, "shop/cart", "1.1", regtest.Image(t, time.Time{}, map[string]string{images.LabelCreated: "2026-02-01T00:00:00Z"}))
	srv.Push(t, "shop/cart", "1.2", regtest.Image(t, time.Unix(0, 0), map[string]string{images.LabelBuildDate: "2026-03-01T00:00:00Z"}))
	srv.Push(t, "shop/cart", "nodate", regtest.Image(t, time.Time{}, map[string]string{images.LabelCreated: "not a time"}))

	c := newClient(t)
	r := resolve(t, c, srv.Host+"/shop/cart")
	tags, err := c.Tags(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"1.0", "1.1", "1.2", "nodate"}) {
		t.Fatalf("tags %v", tags)
	}
	want := map[string]time.Time{
		"1.0":    t0,
		"1.1":    time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		"1.2":    time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), // the epoch is "unknown"
		"nodate": {},
	}
	for tag, created := range want {
		m, err := c.Manifest(ctx, r, tag)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Digest, "sha256:") {
			t.Fatalf("digest %q", m.Digest)
		}
		d, err := c.Head(ctx, r, tag)
		if err != nil || d != m.Digest {
			t.Fatalf("HEAD %s: %s, %v; GET said %s", tag, d, err, m.Digest)
		}
		img, err := c.Image(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if !img.CreatedAt.Equal(created) {
			t.Errorf("%s: created %s, want %s", tag, img.CreatedAt, created)
		}
		if !strings.HasPrefix(img.ImageID, "sha256:") {
			t.Errorf("%s: image ID %q", tag, img.ImageID)
		}
	}
}

func platformImage(t *testing.T, created time.Time, p v1.Platform) mutate.IndexAddendum {
	img := regtest.Image(t, created, nil)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}
}

func TestIndexPicksPlatform(t *testing.T) {
	srv := regtest.New(t)
	amd := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	arm := time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC)
	idx := mutate.AppendManifests(empty.Index,
		platformImage(t, amd, v1.Platform{OS: "linux", Architecture: "amd64"}),
		platformImage(t, arm, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}),
	)
	srv.PushIndex(t, "multi", "1.0", idx)
	srv.PushIndex(t, "multi", "armonly", mutate.AppendManifests(empty.Index,
		platformImage(t, arm, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})))
	idxDigest, _ := idx.Digest()

	for _, tc := range []struct {
		platform string
		want     time.Time
	}{
		{"", amd},
		{"linux/arm64", arm},
		{"linux/arm64/v8", arm},
	} {
		var opts []registry.Option
		if tc.platform != "" {
			opts = append(opts, registry.WithPlatform(tc.platform))
		}
		c := newClient(t, opts...)
		r := resolve(t, c, srv.Host+"/multi")
		srv.Count()
		m, err := c.Manifest(ctx, r, "1.0")
		if err != nil {
			t.Fatal(err)
		}
		if m.Digest != idxDigest.String() {
			t.Errorf("the tag's digest is the index's: got %s want %s", m.Digest, idxDigest)
		}
		img, err := c.Image(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if !img.CreatedAt.Equal(tc.want) {
			t.Errorf("platform %q: created %s, want %s", tc.platform, img.CreatedAt, tc.want)
		}
		// Index, the platform's manifest, its config: no more.
		if got := srv.Counts(); got[regtest.Manifest] != 2 || got[regtest.Blob] != 1 {
			t.Errorf("platform %q: requests %v", tc.platform, got)
		}
	}

	c := newClient(t)
	r := resolve(t, c, srv.Host+"/multi")
	m, err := c.Manifest(ctx, r, "armonly")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Image(ctx, m); !errors.Is(err, registry.ErrNoPlatform) || !registry.IsPermanent(err) {
		t.Errorf("an index without linux/amd64: %v", err)
	}
}

func jsonError(status int, code string, header ...string) regtest.Fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) != regtest.List {
			return false
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected"}]}`, code)
		return true
	}
}

func rawAnswer(status int, body string) regtest.Fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if regtest.Kind(r) != regtest.List {
			return false
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
		return true
	}
}

func TestErrorsAreClassified(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  regtest.Fault
		kind   error
		status int
	}{
		{"401", jsonError(401, "UNAUTHORIZED"), images.ErrUnauthorized, 401},
		{"403 denied", jsonError(403, "DENIED"), images.ErrUnauthorized, 403},
		{"404", jsonError(404, "NAME_UNKNOWN"), images.ErrNotFound, 404},
		{"429", jsonError(429, "TOOMANYREQUESTS", "Retry-After", "7"), images.ErrRateLimited, 429},
		{"TOOMANYREQUESTS as 403", jsonError(403, "TOOMANYREQUESTS"), images.ErrRateLimited, 403},
		{"500", rawAnswer(500, "<html>oops</html>"), images.ErrUnavailable, 500},
		{"503 UNAVAILABLE", jsonError(503, "UNAVAILABLE"), images.ErrUnavailable, 503},
		{"garbage 200", rawAnswer(200, "<html>a captive portal</html>"), images.ErrBadResponse, 0},
		{"truncated 200", rawAnswer(200, `{"name":"x","tags":["a"`), images.ErrBadResponse, 0},
		{"418", rawAnswer(418, "teapot"), images.ErrBadResponse, 418},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := regtest.New(t)
			srv.Push(t, "app", "1", regtest.Image(t, t0, nil))
			srv.SetFault(tc.fault)
			c := newClient(t)
			r := resolve(t, c, srv.Host+"/app")
			_, err := c.Tags(ctx, r)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("want %v, got %v", tc.kind, err)
			}
			var re *images.RegistryError
			if !errors.As(err, &re) || re.StatusCode != tc.status || re.Host != srv.Host {
				t.Fatalf("registry error %+v", re)
			}
			t.Log(err)
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := newClient(t)
		_, err = c.Tags(ctx, resolve(t, c, addr+"/app"))
		if !errors.Is(err, images.ErrUnavailable) {
			t.Fatalf("want ErrUnavailable, got %v", err)
		}
		t.Log(err)
	})
}

// TestRateLimitedHostPauses: a 429 with Retry-After pauses the host (calls
// fail at once, without a request), halves its rate, and the host works
// again after the pause.
func TestRateLimitedHostPauses(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "app", "1", regtest.Image(t, t0, nil))
	c := newClient(t, registry.WithRPS(10), registry.WithBurst(4))
	r := resolve(t, c, srv.Host+"/app")
	if _, err := c.Tags(ctx, r); err != nil { // ping + list
		t.Fatal(err)
	}

	srv.SetFault(jsonError(429, "TOOMANYREQUESTS", "Retry-After", "1"))
	srv.Count()
	_, err := c.Tags(ctx, r)
	var re *images.RegistryError
	if !errors.As(err, &re) || re.Kind != images.ErrRateLimited || re.RetryAfter <= 0 || re.RetryAfter > time.Second {
		t.Fatalf("want rate limited for up to 1s, got %v", err)
	}
	srv.SetFault(nil)
	// Paused: fails at once, sends nothing.
	start := time.Now()
	_, err = c.Tags(ctx, r)
	if !errors.Is(err, images.ErrRateLimited) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a paused host: want ErrRateLimited at once, got %v after %s", err, time.Since(start))
	}
	if n := srv.Total(); n != 1 {
		t.Fatalf("%d requests reached the host; want 1 (the rate-limited one)", n)
	}
	hs := c.Hosts()
	if len(hs) != 1 || !hs[0].RateLimited || hs[0].Rate != 5 || hs[0].PausedUntil.IsZero() || !errors.Is(hs[0].LastError, images.ErrRateLimited) {
		t.Fatalf("host status %+v", hs)
	}
	if until := c.PausedUntil(srv.Host); until.IsZero() {
		t.Fatal("PausedUntil is zero")
	}

	time.Sleep(time.Until(c.PausedUntil(srv.Host)) + 10*time.Millisecond)
	if _, err := c.Tags(ctx, r); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
	hs = c.Hosts()
	if !hs[0].RateLimited || hs[0].Rate != 5 || hs[0].LastError != nil || !hs[0].PausedUntil.IsZero() {
		t.Fatalf("after the pause the host is no longer paused but still slowed: %+v", hs[0])
	}
}

// TestRequestsAreRateLimited: requests to one host go out at the configured
// rate after the burst, and another host is not held up by it.
func TestRequestsAreRateLimited(t *testing.T) {
	slow := regtest.New(t)
	fast := regtest.New(t)
	slow.Push(t, "app", "1", regtest.Image(t, t0, nil))
	fast.Push(t, "app", "1", regtest.Image(t, t0, nil))
	const rps, burst, n = 20, 5, 25
	c := newClient(t, registry.WithRPS(rps), registry.WithBurst(burst))
	rs := resolve(t, c, slow.Host+"/app")
	rf := resolve(t, c, fast.Host+"/app")
	if _, err := c.Tags(ctx, rf); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Tags(ctx, rs); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	fs := time.Now()
	if _, err := c.Tags(ctx, rf); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(fs); d > 500*time.Millisecond {
		t.Errorf("a request to another host waited %s behind the limited one", d)
	}
	wg.Wait()
	took := time.Since(start)
	// n lists + 1 ping, burst of 5 at once, then 20/s.
	want := time.Duration(float64(n+1-burst) / rps * float64(time.Second))
	t.Logf("%d requests at %d rps (burst %d): %s, ideal %s", n+1, rps, burst, took.Round(time.Millisecond), want)
	if took < want*9/10 || took > want*3 {
		t.Errorf("took %s, want about %s", took, want)
	}
}

type fakeSecrets struct {
	mu       sync.Mutex
	payloads [][]byte
	calls    []string
}

func (f *fakeSecrets) DockerConfigs(_ context.Context, repo string) ([][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, repo)
	return f.payloads, nil
}

func (f *fakeSecrets) set(p ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.payloads = p
}

// basicAuth makes the registry demand basic credentials user:pass.
func basicAuth(user, pass string) regtest.Fault {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == want {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}`)
		return true
	}
}

func dockerConfig(host, user, pass string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return fmt.Appendf(nil, `{"auths":{"https://%s/v1/":{"auth":%q}}}`, host, auth)
}

func TestCredentialsFromPullSecrets(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "private/app", "1", regtest.Image(t, t0, nil))
	srv.SetFault(basicAuth("kim", "s3cret"))
	secrets := &fakeSecrets{}
	c := newClient(t, registry.WithPullSecrets(secrets))
	r := resolve(t, c, srv.Host+"/private/app:1")

	if _, err := c.Tags(ctx, r); !errors.Is(err, images.ErrUnauthorized) {
		t.Fatalf("anonymous: want ErrUnauthorized, got %v", err)
	}
	if secrets.calls[0] != srv.Host+"/private/app" {
		t.Errorf("PullSecrets asked for %q", secrets.calls[0])
	}
	// A secret for another host is not used; the legacy .dockercfg form
	// for this one is.
	legacy := fmt.Appendf(nil, `{%q:{"username":"kim","password":"s3cret"}}`, srv.Host)
	secrets.set(dockerConfig("other.example", "kim", "s3cret"), legacy)
	tags, err := c.Tags(ctx, r)
	if err != nil || len(tags) != 1 {
		t.Fatalf("with the pull secret: %v, %v", tags, err)
	}
	// Rotated to a wrong password: a new session, refused.
	secrets.set(dockerConfig(srv.Host, "kim", "wrong"))
	if _, err := c.Tags(ctx, r); !errors.Is(err, images.ErrUnauthorized) {
		t.Fatalf("wrong password: want ErrUnauthorized, got %v", err)
	}
}

func TestCredentialsFromDockerConfigFile(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "private/app", "1", regtest.Image(t, t0, nil))
	srv.SetFault(basicAuth("kim", "s3cret"))
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, registry.WithDockerConfig(path))
	r := resolve(t, c, srv.Host+"/private/app")
	if _, err := c.Tags(ctx, r); !errors.Is(err, images.ErrUnauthorized) {
		t.Fatalf("want ErrUnauthorized, got %v", err)
	}
	// The file is read again when it changes.
	if err := os.WriteFile(path, dockerConfig(srv.Host, "kim", "s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	_ = os.Chtimes(path, later, later)
	if _, err := c.Tags(ctx, r); err != nil {
		t.Fatalf("with the config file: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"credsStore":"desktop"}`), 0o600)
	if _, err := registry.New(registry.WithDockerConfig(bad)); err == nil {
		t.Error("a config without auths was accepted")
	}
}

// TestInsecureHosts: only hosts listed as insecure are reached over http.
func TestInsecureHosts(t *testing.T) {
	srv := regtest.New(t)
	srv.Push(t, "app", "1", regtest.Image(t, t0, nil))
	var mu sync.Mutex
	var schemes []string
	// Send every request for registry.example:5000 to the test server,
	// recording the scheme it was meant to use.
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		mu.Lock()
		schemes = append(schemes, req.URL.Scheme)
		mu.Unlock()
		if req.URL.Scheme != "http" {
			return nil, errors.New("tls: no https in this test")
		}
		req = req.Clone(req.Context())
		req.URL.Host = srv.Host
		return http.DefaultTransport.RoundTrip(req)
	})
	secure := newClient(t, registry.WithTransport(rt))
	if _, err := secure.Tags(ctx, resolve(t, secure, "registry.example:5000/app")); err == nil {
		t.Fatal("a host not listed as insecure was reached over http")
	}
	if slices.Contains(schemes, "http") {
		t.Fatalf("schemes tried: %v", schemes)
	}
	insecure := newClient(t, registry.WithTransport(rt), registry.WithInsecure("registry.example:5000"))
	if _, err := insecure.Tags(ctx, resolve(t, insecure, "registry.example:5000/app")); err != nil {
		t.Fatalf("insecure host: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var _ = httptest.NewServer
