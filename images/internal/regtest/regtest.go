// Package regtest runs go-containerregistry's in-process registry for the
// tests of the images packages, counting requests by kind and letting a
// test answer some requests itself (to inject 401s, 429s, 5xx, garbage,
// delays).
package regtest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Request kinds counted by the server.
const (
	Ping     = "ping"     // GET /v2/
	List     = "list"     // GET /v2/<repo>/tags/list
	Manifest = "manifest" // GET /v2/<repo>/manifests/<ref>
	Head     = "head"     // HEAD /v2/<repo>/manifests/<ref>
	Blob     = "blob"     // GET /v2/<repo>/blobs/<digest> (configs)
	Other    = "other"
)

// Fault answers a request instead of the registry when it returns true.
type Fault func(w http.ResponseWriter, r *http.Request) bool

// Server is an in-process registry.
type Server struct {
	*httptest.Server
	// Host is "127.0.0.1:<port>".
	Host string

	mu       sync.Mutex
	counting bool
	counts   map[string]int
	fault    Fault
}

// New starts a registry, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{counts: map[string]int{}}
	reg := registry.New(registry.Logger(nopLogger()))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.counting {
			s.counts[Kind(r)]++
		}
		f := s.fault
		s.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	s.Host = strings.TrimPrefix(s.URL, "http://")
	return s
}

// Kind classifies a registry request.
func Kind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return Ping
	case strings.HasSuffix(p, "/tags/list"):
		return List
	case strings.Contains(p, "/manifests/") && r.Method == http.MethodHead:
		return Head
	case strings.Contains(p, "/manifests/") && r.Method == http.MethodGet:
		return Manifest
	case strings.Contains(p, "/blobs/") && r.Method == http.MethodGet:
		return Blob
	}
	return Other
}

// SetFault installs (or, with nil, removes) a fault.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Count starts counting requests afresh (pushes are not counted).
func (s *Server) Count() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counting = true
	s.counts = map[string]int{}
}

// Counts returns the requests counted since Count, by kind.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Total is the number of requests counted since Count.
func (s *Server) Total() int {
	n := 0
	for _, v := range s.Counts() {
		n += v
	}
	return n
}

// Image makes a random image built at created (zero: no created time)
// with the given config labels.
func Image(t testing.TB, created time.Time, labels map[string]string) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Push writes an image under repo:tag ("shop/cart", "1.0").
func (s *Server) Push(t testing.TB, repo, tag string, img v1.Image) {
	t.Helper()
	s.mu.Lock()
	counting := s.counting
	s.counting = false
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.counting = counting
		s.mu.Unlock()
	}()
	ref, err := name.NewTag(s.Host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// PushIndex writes an index under repo:tag.
func (s *Server) PushIndex(t testing.TB, repo, tag string, idx v1.ImageIndex) {
	t.Helper()
	s.mu.Lock()
	counting := s.counting
	s.counting = false
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.counting = counting
		s.mu.Unlock()
	}()
	ref, err := name.NewTag(s.Host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }
