package gitstate_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fluxd/fluxd/gitstate"
)

// openSSH opens a mirror of url's main with an ssh key and known_hosts.
func openSSH(t *testing.T, url string, key sshKey, knownHosts []byte) *gitstate.Repo {
	t.Helper()
	m, err := gitstate.Open(gitstate.Config{
		URL:    url,
		Branch: "main",
		Dir:    filepath.Join(t.TempDir(), "mirror"),
		Auth:   gitstate.Auth{SSHPrivateKey: key.private, KnownHosts: knownHosts},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// sshSetup is a server with a seeded repository, and a mirror of it that
// knows the server's host keys and whose key the server accepts.
type sshSetup struct {
	srv  *sshServer
	key  sshKey
	repo remote
	seed string // the seeded commit
	m    *gitstate.Repo
}

func newSSHSetup(t *testing.T) sshSetup {
	t.Helper()
	key := newSSHKey(t)
	srv := newSSHServer(t, nil, key)
	repo := srv.newRepo(t, "org/repo.git")
	seed := repo.seed(t, "seed", map[string]string{"a.yaml": "a: 1\n"})
	return sshSetup{srv: srv, key: key, repo: repo, seed: seed, m: openSSH(t, repo.URL, key, srv.knownHosts())}
}

func TestSSHFetchPushOneConnection(t *testing.T) {
	ctx := context.Background()
	s := newSSHSetup(t)

	// 1: fetch
	fetch(t, s.m)
	if got := head(t, s.m); got != s.seed {
		t.Fatalf("Head = %s, want the seeded %s", got, s.seed)
	}
	// 2: push a commit
	id := commit(t, s.m, s.seed, "over ssh", map[string][]byte{"b.yaml": []byte("b: 1\n")})
	if got := s.repo.git(t, "rev-parse", "main"); got != id {
		t.Fatalf("remote main = %s, want the pushed %s", got, id)
	}
	if got := s.repo.git(t, "show", "main:b.yaml"); got != "b: 1" {
		t.Fatalf("b.yaml on the remote = %q", got)
	}
	// 3: push a note
	if err := s.m.SetNote("refs/notes/flux", id, []byte(`{"job":1}`), sig); err != nil {
		t.Fatal(err)
	}
	push(t, s.m, "refs/notes/flux")
	if got := s.repo.git(t, "notes", "--ref=flux", "show", id); got != `{"job":1}` {
		t.Fatalf("note on the remote = %q", got)
	}
	// 4: fetch a commit made on the remote
	other := s.repo.seed(t, "elsewhere", map[string]string{"c.yaml": "c: 1\n"})
	fetch(t, s.m)
	if got := head(t, s.m); got != other {
		t.Fatalf("Head = %s, want %s from the remote", got, other)
	}
	// 5: fetch again, nothing new
	if err := s.m.Fetch(ctx); err != nil {
		t.Fatal(err)
	}

	conns, sessions := s.srv.counts()
	if conns != 1 {
		t.Errorf("five operations used %d TCP connections, want 1", conns)
	}
	if sessions < 5 {
		t.Errorf("five operations ran %d ssh sessions, want at least 5", sessions)
	}
	for _, c := range s.srv.commands() {
		if c != "git-upload-pack '/org/repo.git'" && c != "git-receive-pack '/org/repo.git'" {
			t.Errorf("unexpected command run on the server: %q", c)
		}
	}
}

// A push runs git-receive-pack, and nothing else: libgit2 asks the
// transport for the upload-pack stream when it disconnects (to say goodbye
// on a stream it already has), which must not start a new command.
func TestSSHPushRunsOneCommand(t *testing.T) {
	s := newSSHSetup(t)
	fetch(t, s.m)
	before := len(s.srv.commands())
	_, sessionsBefore := s.srv.counts()
	commit(t, s.m, s.seed, "one push", map[string][]byte{"b.yaml": []byte("b: 1\n")})
	got := s.srv.commands()[before:]
	if strings.Join(got, "\n") != "git-receive-pack '/org/repo.git'" {
		t.Errorf("a push ran %q on the server, want only git-receive-pack", got)
	}
	if _, sessions := s.srv.counts(); sessions-sessionsBefore != 1 {
		t.Errorf("a push opened %d sessions, want 1", sessions-sessionsBefore)
	}

	// And a fetch runs one git-upload-pack.
	before = len(s.srv.commands())
	fetch(t, s.m)
	if got := s.srv.commands()[before:]; strings.Join(got, "\n") != "git-upload-pack '/org/repo.git'" {
		t.Errorf("a fetch ran %q on the server, want one git-upload-pack", got)
	}
}

func TestSSHQuotedPath(t *testing.T) {
	key := newSSHKey(t)
	srv := newSSHServer(t, nil, key)
	repo := srv.newRepo(t, "it's a repo.git")
	want := repo.seed(t, "seed", map[string]string{"a.yaml": "a: 1\n"})
	m := openSSH(t, srv.url("it's%20a%20repo.git"), key, srv.knownHosts())
	fetch(t, m)
	if got := head(t, m); got != want {
		t.Fatalf("Head = %s, want %s", got, want)
	}
	if cmds := srv.commands(); len(cmds) != 1 || cmds[0] != `git-upload-pack '/it'\''s a repo.git'` {
		t.Errorf("commands = %q", cmds)
	}
}

func TestSSHReconnectAfterDrop(t *testing.T) {
	s := newSSHSetup(t)
	fetch(t, s.m)
	s.srv.dropAll()
	// A commit lands while the connection is down, so that the fetch
	// afterwards has something to bring.
	next := s.repo.seed(t, "next", map[string]string{"b.yaml": "b: 1\n"})
	if err := s.m.Fetch(context.Background()); err != nil {
		t.Fatalf("fetch after the server dropped the connection: %v", err)
	}
	if got := head(t, s.m); got != next {
		t.Errorf("Head = %s, want %s", got, next)
	}
	if conns, _ := s.srv.counts(); conns != 2 {
		t.Errorf("%d TCP connections, want 2 (the dropped one and its replacement)", conns)
	}
	// And the new connection is kept.
	fetch(t, s.m)
	if conns, _ := s.srv.counts(); conns != 2 {
		t.Errorf("%d TCP connections after another fetch, want still 2", conns)
	}
}

func TestSSHHostKeyMismatch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		knownHosts func(srv *sshServer) []byte
		offered    bool // the server gets to show its key, which the error names
	}{
		{"another key for the host", func(srv *sshServer) []byte {
			return srv.knownHosts(newSSHKey(t).public())
		}, true},
		{"only other hosts", func(srv *sshServer) []byte {
			return []byte("[127.0.0.1]:1 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.hostKeys[0].PublicKey()))) + "\n")
		}, true},
		// The client may ask only for RSA host keys, which the server does
		// not have: still a host key error, not an unreachable remote.
		{"a key of another type for the host", func(srv *sshServer) []byte {
			return srv.knownHosts(newRSAKey(t).public())
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newSSHKey(t)
			srv := newSSHServer(t, nil, key)
			repo := srv.newRepo(t, "repo.git")
			repo.seed(t, "seed", map[string]string{"a.yaml": "a: 1\n"})
			m := openSSH(t, repo.URL, key, tc.knownHosts(srv))
			err := m.Fetch(context.Background())
			if !errors.Is(err, gitstate.ErrHostKey) {
				t.Fatalf("fetch from a server with an unknown host key: got %v, want ErrHostKey", err)
			}
			if fp := ssh.FingerprintSHA256(srv.hostKeys[0].PublicKey()); tc.offered && !strings.Contains(err.Error(), fp) {
				t.Errorf("the error does not name the offered host key %s: %v", fp, err)
			}
			t.Log(err)
			if _, sessions := srv.counts(); sessions != 0 {
				t.Errorf("%d sessions were opened on a server whose host key was refused", sessions)
			}
			if _, err := m.Head(); !errors.Is(err, gitstate.ErrNoBranch) {
				t.Errorf("Head after the refused fetch: got %v, want ErrNoBranch", err)
			}
		})
	}
}

func TestSSHKeyRefused(t *testing.T) {
	key := newSSHKey(t)
	srv := newSSHServer(t, nil) // accepts no key
	repo := srv.newRepo(t, "repo.git")
	repo.seed(t, "seed", map[string]string{"a.yaml": "a: 1\n"})
	m := openSSH(t, repo.URL, key, srv.knownHosts())
	err := m.Fetch(context.Background())
	if !errors.Is(err, gitstate.ErrAuth) {
		t.Fatalf("fetch with a refused key: got %v, want ErrAuth", err)
	}
	if !strings.Contains(err.Error(), key.fingerprint()) {
		t.Errorf("the error does not name the key %s: %v", key.fingerprint(), err)
	}
	t.Log(err)
	if _, sessions := srv.counts(); sessions != 0 {
		t.Errorf("%d sessions were opened without authentication", sessions)
	}
}

func TestSSHMissingRepository(t *testing.T) {
	key := newSSHKey(t)
	srv := newSSHServer(t, nil, key)
	m := openSSH(t, srv.url("nope/missing.git"), key, srv.knownHosts())
	err := m.Fetch(context.Background())
	if err == nil {
		t.Fatal("fetch of a repository the server does not have succeeded")
	}
	t.Log(err)
	if !errors.Is(err, gitstate.ErrUnreachable) {
		t.Errorf("fetch of a missing repository: got %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "does not appear to be a git repository") {
		t.Errorf("the error lacks what git said on the server: %v", err)
	}
	if strings.Count(err.Error(), "does not appear to be a git repository") != 1 {
		t.Errorf("the server's message is repeated: %v", err)
	}
	// A later success does not carry the old stderr.
	repo := srv.newRepo(t, "nope/missing.git")
	repo.seed(t, "seed", map[string]string{"a.yaml": "a: 1\n"})
	fetch(t, m)
}

// fetchWithin runs a fetch and returns its error and how long it took. A
// fetch still running after limit fails the test; the server then drops
// its connections so that the fetch ends and the test can clean up.
func fetchWithin(ctx context.Context, t *testing.T, srv *sshServer, m *gitstate.Repo, limit time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- m.Fetch(ctx) }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(limit):
		srv.dropAll()
		<-done
		t.Fatalf("fetch still running %v after it started", limit)
		return 0, nil
	}
}

func TestSSHCancelHungServer(t *testing.T) {
	s := newSSHSetup(t)
	fetch(t, s.m) // the connection is open
	s.srv.setHang(true)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	elapsed, err := fetchWithin(ctx, t, s.srv, s.m, 3*time.Second)
	if err == nil {
		t.Fatal("fetch from a hung server succeeded")
	}
	t.Log(elapsed, err)
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Errorf("fetch with a cancelled context: got %v, want the context's error", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("fetch took %v to give up after its context was done", elapsed)
	}
	if _, sessions := s.srv.counts(); sessions != 2 {
		t.Errorf("%d sessions, want 2", sessions)
	}

	// The same for a connection opened while the server hangs.
	s.srv.dropAll()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	time.AfterFunc(200*time.Millisecond, cancel2)
	elapsed, err = fetchWithin(ctx2, t, s.srv, s.m, 3*time.Second)
	if !errors.Is(err, context.Canceled) || elapsed > 2*time.Second {
		t.Errorf("fetch on a new connection to a hung server: got %v after %v, want context.Canceled", err, elapsed)
	}

	s.srv.setHang(false)
	next := s.repo.seed(t, "next", map[string]string{"b.yaml": "b: 1\n"})
	if _, err := fetchWithin(context.Background(), t, s.srv, s.m, 3*time.Second); err != nil {
		t.Fatalf("fetch once the server answers again: %v", err)
	}
	if got := head(t, s.m); got != next {
		t.Errorf("Head = %s, want %s", got, next)
	}
	commit(t, s.m, next, "push too", map[string][]byte{"c.yaml": []byte("c: 1\n")})
}

func TestSSHCancelDuringHandshake(t *testing.T) {
	// A server that accepts the TCP connection and says nothing: the
	// context bounds the ssh handshake too, and the error says so.
	addr := listenSilent(t)
	m := openSSH(t, "ssh://git@"+addr+"/repo.git", newSSHKey(t), nil)
	check := func(t *testing.T, ctx context.Context, want error) {
		t.Helper()
		start := time.Now()
		err := m.Fetch(ctx)
		elapsed := time.Since(start)
		if !errors.Is(err, want) {
			t.Fatalf("fetch from a silent server: got %v, want %v", err, want)
		}
		if elapsed > 2*time.Second {
			t.Errorf("fetch took %v to give up after its context was done", elapsed)
		}
	}
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(100*time.Millisecond, cancel)
		check(t, ctx, context.Canceled)
	})
	t.Run("late timer", func(t *testing.T) {
		// The context's timer fires late, as on a loaded machine: the
		// handshake must still end with the context, not before it as
		// an unreachable remote.
		ctx, cancel := lateDeadline(100*time.Millisecond, 50*time.Millisecond)
		defer cancel()
		check(t, ctx, context.DeadlineExceeded)
	})
	t.Run("deadline", func(t *testing.T) {
		// The connection's deadline and the context's timer expire
		// together; whichever comes first, the error is the context's.
		// Several tries, as the order varies.
		for range 20 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			check(t, ctx, context.DeadlineExceeded)
			cancel()
		}
	})
}

// lateContext has a deadline, but is done only a while after it, as when
// the timer that ends a context runs late on a busy machine.
type lateContext struct {
	context.Context // done at the deadline plus the lag
	deadline        time.Time
}

func (c lateContext) Deadline() (time.Time, bool) { return c.deadline, true }

func lateDeadline(d, lag time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d+lag)
	return lateContext{Context: ctx, deadline: time.Now().Add(d)}, cancel
}

// listenSilent accepts TCP connections on 127.0.0.1 and never writes to
// them. It returns the address.
func listenSilent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestSSHHostKeyAlgorithms(t *testing.T) {
	key := newSSHKey(t)
	rsaHost, edHost := newRSAKey(t), newSSHKey(t)
	srv := newSSHServer(t, []ssh.Signer{rsaHost.signer, edHost.signer}, key)
	repo := srv.newRepo(t, "repo.git")
	want := repo.seed(t, "seed", map[string]string{"a.yaml": "a: 1\n"})

	m := openSSH(t, repo.URL, key, srv.knownHosts(edHost.public()))
	fetch(t, m)
	if got := head(t, m); got != want {
		t.Fatalf("Head = %s, want %s", got, want)
	}

	// And the other way round: only the RSA key is known.
	m2 := openSSH(t, repo.URL, key, srv.knownHosts(rsaHost.public()))
	fetch(t, m2)
}

func TestSSHSetKey(t *testing.T) {
	s := newSSHSetup(t)
	fetch(t, s.m)
	next := newSSHKey(t)
	s.srv.allow(next)
	s.srv.refuse(s.key)
	if err := s.m.SetSSHKey(next.private); err != nil {
		t.Fatal(err)
	}
	later := s.repo.seed(t, "later", map[string]string{"b.yaml": "b: 1\n"})
	if err := s.m.Fetch(context.Background()); err != nil {
		t.Fatalf("fetch with the new key: %v", err)
	}
	if got := head(t, s.m); got != later {
		t.Errorf("Head = %s, want %s", got, later)
	}
	if conns, _ := s.srv.counts(); conns != 2 {
		t.Errorf("%d TCP connections, want 2: the new key needs a new one", conns)
	}

	// Back to a key the server refuses: the open connection, authenticated
	// with the accepted key, must not be used for it.
	if err := s.m.SetSSHKey(s.key.private); err != nil {
		t.Fatal(err)
	}
	err := s.m.Fetch(context.Background())
	if !errors.Is(err, gitstate.ErrAuth) || !strings.Contains(err.Error(), s.key.fingerprint()) {
		t.Errorf("fetch with a refused key after SetSSHKey: got %v, want ErrAuth naming %s", err, s.key.fingerprint())
	}
}

func TestSSHDropDuringFetch(t *testing.T) {
	s := newSSHSetup(t)
	fetch(t, s.m)
	s.srv.setHang(true)
	before := len(s.srv.commands())
	done := make(chan error, 1)
	go func() { done <- s.m.Fetch(context.Background()) }()
	deadline := time.Now().Add(2 * time.Second)
	for len(s.srv.commands()) == before {
		if time.Now().After(deadline) {
			t.Fatal("the fetch never reached the server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.srv.dropAll()
	select {
	case err := <-done:
		t.Log(err)
		if !errors.Is(err, gitstate.ErrUnreachable) {
			t.Errorf("fetch whose connection was dropped: got %v, want ErrUnreachable", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("fetch did not return after the server dropped its connection")
	}

	s.srv.setHang(false)
	next := s.repo.seed(t, "next", map[string]string{"b.yaml": "b: 1\n"})
	fetch(t, s.m)
	if got := head(t, s.m); got != next {
		t.Errorf("Head = %s, want %s", got, next)
	}
}

// Mirrors of one server, used at once, each keep their own connection.
func TestSSHConcurrentMirrors(t *testing.T) {
	key := newSSHKey(t)
	srv := newSSHServer(t, nil, key)
	repo := srv.newRepo(t, "repo.git")
	want := repo.seed(t, "seed", map[string]string{"a.yaml": "a: 1\n"})
	const mirrors, rounds = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, mirrors*rounds)
	ms := make([]*gitstate.Repo, mirrors)
	for i := range ms {
		ms[i] = openSSH(t, repo.URL, key, srv.knownHosts())
	}
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := m.Fetch(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, m := range ms {
		if got := head(t, m); got != want {
			t.Errorf("Head = %s, want %s", got, want)
		}
	}
	if conns, sessions := srv.counts(); conns != mirrors || sessions < mirrors*rounds {
		t.Errorf("%d connections and %d sessions, want %d and at least %d", conns, sessions, mirrors, mirrors*rounds)
	}
}
