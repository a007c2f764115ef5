package gitstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	git "github.com/libgit2/git2go/v34"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// fluxd speaks ssh with Go's x/crypto/ssh rather than libgit2's libssh2, for
// speed: each mirror keeps one ssh connection open between operations and
// runs every git-upload-pack and git-receive-pack as a new session on it, so
// a fetch or push costs a session (a few milliseconds) instead of a key
// exchange and authentication (about a hundred). A connection that has
// gone away, or one idle for sshIdle, is replaced by a fresh one.
//
// libgit2 still does the git protocol; the transport only carries its bytes.
// It is registered once per process for ssh:// URLs (the scp-like form is
// turned into ssh:// by parseURL).

const (
	// sshIdle is how long an unused connection stays open.
	sshIdle = 2 * time.Minute
	// sshDialTimeout bounds the TCP connect and the ssh handshake when the
	// operation's context has no earlier deadline.
	sshDialTimeout = 30 * time.Second
	// sshSessionTimeout bounds opening a session on an open connection;
	// past it the connection is taken as dead and replaced.
	sshSessionTimeout = 10 * time.Second
	// sshExitTimeout bounds the wait for the remote command to exit once
	// libgit2 is done with its stream.
	sshExitTimeout = 10 * time.Second
	// stderrMax is how much of the remote command's stderr is kept for
	// error messages.
	stderrMax = 4096
)

var (
	registerOnce sync.Once
	registerErr  error
	// registered keeps the transport alive: git2go unregisters it when
	// the value is garbage collected.
	registered *git.RegisteredSmartTransport

	// operations maps the libgit2 remote of each network operation in
	// progress to its session, so that the transport libgit2 creates for
	// the operation finds the mirror's credentials, connection and
	// context.
	operations sync.Map // *git.Remote -> *session
)

// registerSSHTransport installs the Go ssh transport for ssh:// URLs.
func registerSSHTransport() error {
	registerOnce.Do(func() {
		registered, registerErr = git.NewRegisteredSmartTransport("ssh", false, newSSHSubtransport)
		if registerErr != nil {
			registerErr = fmt.Errorf("gitstate: register the ssh transport: %w", registerErr)
		}
	})
	return registerErr
}

func newSSHSubtransport(remote *git.Remote, _ *git.Transport) (git.SmartSubtransport, error) {
	v, ok := operations.Load(remote)
	if !ok {
		return nil, errors.New("gitstate: ssh transport used outside a fetch or push")
	}
	return &sshSubtransport{s: v.(*session)}, nil
}

// sshSubtransport carries one libgit2 operation's streams.
type sshSubtransport struct {
	s      *session
	stream *sshStream
	action git.SmartServiceAction
}

// Action starts git-upload-pack or git-receive-pack for url. libgit2 asks
// for the ref listing first and then for the pack exchange: both are one
// stream, as git's protocol over ssh has them.
func (t *sshSubtransport) Action(rawURL string, action git.SmartServiceAction) (git.SmartSubtransportStream, error) {
	var program string
	switch action {
	case git.SmartServiceActionUploadpackLs:
		program = "git-upload-pack"
	case git.SmartServiceActionReceivepackLs:
		program = "git-receive-pack"
	case git.SmartServiceActionUploadpack, git.SmartServiceActionReceivepack:
		// The exchange after the listing, or libgit2's goodbye flush when
		// it disconnects (which asks for upload-pack whatever the
		// direction): both go to the stream that is open.
		if t.stream == nil {
			return nil, t.s.fail(fmt.Errorf("gitstate: git service %d asked for before its ref listing", action))
		}
		return t.stream, nil
	default:
		return nil, fmt.Errorf("gitstate: unexpected git service %d", action)
	}
	t.closeStream()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, t.s.fail(fmt.Errorf("%w: %v", ErrBadURL, err))
	}
	path := u.Path
	if strings.HasPrefix(path, "/~") {
		path = path[1:] // ssh://host/~user/repo names a path in a home directory
	}
	st, err := t.s.creds.pool.open(t.s, program+" "+quoteArg(path))
	if err != nil {
		return nil, t.s.fail(err)
	}
	t.stream, t.action = st, action
	return st, nil
}

// Close ends the current stream; the connection stays open for the next
// operation.
func (t *sshSubtransport) Close() error {
	t.closeStream()
	return nil
}

func (t *sshSubtransport) Free() { t.closeStream() }

func (t *sshSubtransport) closeStream() {
	if t.stream != nil {
		t.stream.close()
		t.stream = nil
	}
}

// quoteArg quotes s for the remote shell, which runs the git command.
func quoteArg(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sshPool is a mirror's ssh connection, kept between operations. Network
// operations on a mirror hold its lock, so one stream uses it at a time;
// the mutex guards it against the idle timer.
type sshPool struct {
	mu     sync.Mutex
	client *ssh.Client
	key    string // the fingerprint the connection authenticated with
	idle   *time.Timer
	busy   int       // streams open on client
	used   time.Time // when the last stream ended
}

// open runs command in a new session, on the open connection if it still
// answers, else on a new one.
func (p *sshPool) open(s *session, command string) (*sshStream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil && p.key == s.creds.fingerprint() {
		if st, err := p.start(s, command); err == nil {
			p.busy++
			return st, nil
		}
		s.creds.log.Debug().Str("url", s.creds.url.Redacted()).Msg("ssh connection gone: opening a new one")
	}
	p.closeLocked()
	client, err := dial(s)
	if err != nil {
		return nil, err
	}
	p.client, p.key = client, s.creds.fingerprint()
	st, err := p.start(s, command)
	if err != nil {
		p.closeLocked()
		return nil, fmt.Errorf("%w: ssh session: %v", ErrUnreachable, err)
	}
	p.busy++
	return st, nil
}

// start opens a session on p.client and starts command in it.
func (p *sshPool) start(s *session, command string) (*sshStream, error) {
	type result struct {
		sess *ssh.Session
		err  error
	}
	client := p.client
	got := make(chan result, 1)
	go func() {
		sess, err := client.NewSession()
		got <- result{sess, err}
	}()
	timer := time.NewTimer(sshSessionTimeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-got:
	case <-timer.C:
		client.Close() // unblocks NewSession
		r = <-got
		if r.err == nil {
			r.sess.Close()
		}
		return nil, errors.New("the ssh connection did not answer")
	case <-s.ctx.Done():
		client.Close()
		<-got
		return nil, s.ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	st := &sshStream{sess: r.sess, done: make(chan struct{}), pool: p}
	var err error
	if st.stdin, err = r.sess.StdinPipe(); err == nil {
		st.stdout, err = r.sess.StdoutPipe()
	}
	if err == nil {
		r.sess.Stderr = &st.stderr
		err = r.sess.Start(command)
	}
	if err != nil {
		r.sess.Close()
		return nil, err
	}
	s.setStderr(&st.stderr)
	go func() {
		// A cancelled operation must not wait on the remote: closing the
		// session ends libgit2's blocked read or write.
		select {
		case <-s.ctx.Done():
			r.sess.Close()
		case <-st.done:
		}
	}()
	return st, nil
}

// release notes that a stream is done with the connection, and has the
// connection closed once it has been idle for sshIdle.
func (p *sshPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy > 0 {
		p.busy--
	}
	p.used = time.Now()
	if p.idle == nil {
		p.idle = time.AfterFunc(sshIdle, p.closeIdle)
	} else {
		p.idle.Reset(sshIdle)
	}
}

// closeIdle closes the connection if no stream used it for sshIdle. The
// timer may fire just as a new stream starts: the check under the lock
// keeps that stream's connection open.
func (p *sshPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy > 0 || time.Since(p.used) < sshIdle {
		return
	}
	p.closeLocked()
}

// close closes the connection, if one is open.
func (p *sshPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

func (p *sshPool) closeLocked() {
	if p.client != nil {
		p.client.Close()
		p.client = nil
		p.busy = 0
	}
}

// dial connects and authenticates to the remote of s.
func dial(s *session) (*ssh.Client, error) {
	c := s.creds
	hostPort := c.url.HostPort()
	cfg, err := c.sshConfig(s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, sshDialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostPort)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, s.ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	// The handshake honours the context: once it is done, the
	// connection's reads and writes fail at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	sc, chans, reqs, err := ssh.NewClientConn(conn, hostPort, cfg)
	stop()
	if err != nil {
		conn.Close()
		switch {
		case s.hostKeyError() != nil:
			return nil, s.hostKeyError()
		case s.ctx.Err() != nil:
			return nil, s.ctx.Err()
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: the ssh handshake with %s took longer than %s", ErrUnreachable, hostPort, sshDialTimeout)
		case strings.Contains(err.Error(), "no common algorithm for host key"):
			return nil, fmt.Errorf("%w: %s offers no host key of a type known_hosts has for it (%s): %v", ErrHostKey, hostPort, strings.Join(cfg.HostKeyAlgorithms, ", "), err)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("%w: the ssh server %s refused the key %s for user %s", ErrAuth, hostPort, c.fingerprint(), cfg.User)
		}
		return nil, fmt.Errorf("%w: ssh: %v", ErrUnreachable, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// sshConfig is the client configuration for the mirror's remote.
func (c *creds) sshConfig(s *session) (*ssh.ClientConfig, error) {
	user := c.url.Username()
	if user == "" {
		user = "git"
	}
	var auth []ssh.AuthMethod
	if len(c.auth.SSHPrivateKey) > 0 {
		signer, err := ssh.ParsePrivateKey(c.auth.SSHPrivateKey)
		if err != nil {
			return nil, fmt.Errorf("%w: ssh private key: %v (it must be unencrypted)", ErrAuth, err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if p := c.password(); p != "" {
		auth = append(auth, ssh.Password(p))
	}
	if len(auth) == 0 {
		return nil, fmt.Errorf("%w: the remote is reached over ssh, and no ssh key is configured", ErrAuth)
	}
	return &ssh.ClientConfig{
		User: user,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			err := c.checkKey(key)
			s.setHostKeyError(err)
			return err
		},
		HostKeyAlgorithms: c.hostKeyAlgorithms(),
	}, nil
}

// hostKeyAlgorithms asks first for the kinds of host key known_hosts has
// for the remote, so that a server with several host keys shows one that
// can be checked. Nil (the default order) when known_hosts is not given or
// names none for the remote.
func (c *creds) hostKeyAlgorithms() []string {
	if c.hostKeys == nil {
		return nil
	}
	hostPort := c.url.HostPort()
	var ke *knownhosts.KeyError
	if err := c.hostKeys(hostPort, tcpAddr(hostPort), probeKey{}); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			add(a)
		}
	}
	// The others after, as OpenSSH does: a server with none of the known
	// kinds still shows its key, which the check then names as unknown.
	for _, a := range ssh.SupportedAlgorithms().HostKeys {
		add(a)
	}
	return algos
}

// algorithmsFor lists the signature algorithms a host key type can sign with.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a host key no known_hosts line matches: checking it makes
// knownhosts list the keys it knows for the host.
type probeKey struct{}

func (probeKey) Type() string                        { return "fluxd-probe" }
func (probeKey) Marshal() []byte                     { return []byte("fluxd-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// sshStream is one remote git command: libgit2 writes its stdin and reads
// its stdout.
type sshStream struct {
	sess   *ssh.Session
	stdin  io.WriteCloser
	stdout io.Reader
	stderr limitedBuffer
	done   chan struct{}
	pool   *sshPool
	once   sync.Once
}

func (st *sshStream) Read(b []byte) (int, error)  { return st.stdout.Read(b) }
func (st *sshStream) Write(b []byte) (int, error) { return st.stdin.Write(b) }
func (st *sshStream) Free()                       {}

// close ends the command: its stdin is closed, and it gets a while to exit.
func (st *sshStream) close() {
	st.once.Do(func() {
		_ = st.stdin.Close()
		exited := make(chan struct{})
		go func() {
			_ = st.sess.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-time.After(sshExitTimeout):
		}
		st.sess.Close()
		close(st.done)
		st.pool.release()
	})
}

// limitedBuffer keeps the first stderrMax bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := stderrMax - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
