package gitstate_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is an in-process ssh server that runs git-upload-pack and
// git-receive-pack on bare repositories under its root directory, as a
// git hosting service does. The path in an ssh:// URL is taken relative to
// the root: ssh://git@host:port/repo.git is root/repo.git.
type sshServer struct {
	t        *testing.T
	ln       net.Listener
	root     string
	home     string
	config   *ssh.ServerConfig
	hostKeys []ssh.Signer

	wg sync.WaitGroup

	mu       sync.Mutex
	allowed  map[string]bool   // authorized client keys, by their wire form
	live     map[net.Conn]bool // open TCP connections
	conns    int               // TCP connections accepted
	sessions int               // session channels accepted
	execs    []string          // exec commands received
	hang     bool              // accept exec requests and never answer
	closed   bool
}

// newSSHServer starts a server with the given host keys (an ed25519 one
// when none are given) that accepts the given client keys.
func newSSHServer(t *testing.T, hostKeys []ssh.Signer, clients ...sshKey) *sshServer {
	t.Helper()
	if len(hostKeys) == 0 {
		hostKeys = []ssh.Signer{newSSHKey(t).signer}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{
		t:        t,
		ln:       ln,
		root:     t.TempDir(),
		home:     t.TempDir(),
		hostKeys: hostKeys,
		allowed:  map[string]bool{},
		live:     map[net.Conn]bool{},
	}
	for _, k := range clients {
		s.allow(k)
	}
	s.config = &ssh.ServerConfig{
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if md.User() != "git" {
				return nil, fmt.Errorf("unknown user %q", md.User())
			}
			if !s.allowed[string(key.Marshal())] {
				return nil, fmt.Errorf("key %s is not authorized", ssh.FingerprintSHA256(key))
			}
			return nil, nil
		},
	}
	for _, k := range hostKeys {
		s.config.AddHostKey(k)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

// addr is the server's host:port.
func (s *sshServer) addr() string { return s.ln.Addr().String() }

// url is the ssh:// URL of the repository at path under the root.
func (s *sshServer) url(path string) string {
	return "ssh://git@" + s.addr() + "/" + strings.TrimPrefix(path, "/")
}

// knownHosts is a known_hosts line for the server with each of keys (by
// default, all its host keys).
func (s *sshServer) knownHosts(keys ...ssh.PublicKey) []byte {
	if len(keys) == 0 {
		for _, k := range s.hostKeys {
			keys = append(keys, k.PublicKey())
		}
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{s.addr()}, k) + "\n")
	}
	return []byte(b.String())
}

// newRepo makes an empty bare repository at path under the root, whose
// HEAD names main. Its URL is the ssh:// one.
func (s *sshServer) newRepo(t *testing.T, path string) remote {
	t.Helper()
	full := filepath.Join(s.root, path)
	runGit(t, "", "init", "--quiet", "--bare", "-b", "main", full)
	return remote{Path: full, URL: s.url(path)}
}

func (s *sshServer) allow(k sshKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowed[string(k.signer.PublicKey().Marshal())] = true
}

func (s *sshServer) refuse(k sshKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.allowed, string(k.signer.PublicKey().Marshal()))
}

// setHang makes exec requests succeed and then never produce output (on);
// or run normally again (off).
func (s *sshServer) setHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = on
}

// counts returns the TCP connections and sessions accepted so far.
func (s *sshServer) counts() (conns, sessions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.sessions
}

// commands returns the exec commands received so far.
func (s *sshServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

// dropAll closes every open TCP connection, as a server restart does.
func (s *sshServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.live {
		c.Close()
	}
}

func (s *sshServer) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ln.Close()
	s.dropAll()
	s.wg.Wait()
}

func (s *sshServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns++
		s.live[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handleConn(c)
	}
}

func (s *sshServer) handleConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.live, c)
		s.mu.Unlock()
		c.Close()
	}()
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.handleSession(ch, chReqs)
	}
}

func (s *sshServer) handleSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer s.wg.Done()
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			_ = req.Reply(false, nil)
			continue
		}
		s.mu.Lock()
		s.execs = append(s.execs, payload.Command)
		hang := s.hang
		s.mu.Unlock()
		_ = req.Reply(true, nil)
		s.wg.Add(1)
		go func() { // later requests, such as signals, are refused
			defer s.wg.Done()
			for r := range reqs {
				_ = r.Reply(false, nil)
			}
		}()
		if hang {
			// Never answer; wait for the client to give up.
			_, _ = io.Copy(io.Discard, ch)
			return
		}
		status := s.run(ch, payload.Command)
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// run runs an exec command, "git-upload-pack '<path>'" or
// "git-receive-pack '<path>'", wired to the channel, and returns its exit
// status.
func (s *sshServer) run(ch ssh.Channel, command string) uint32 {
	program, arg, _ := strings.Cut(command, " ")
	var sub string
	switch program {
	case "git-upload-pack":
		sub = "upload-pack"
	case "git-receive-pack":
		sub = "receive-pack"
	default:
		fmt.Fprintf(ch.Stderr(), "sh: %s: command not found\n", program)
		return 127
	}
	path, err := shellUnquote(arg)
	if err != nil {
		fmt.Fprintf(ch.Stderr(), "sh: %v\n", err)
		return 2
	}
	dir := filepath.Join(s.root, filepath.Clean("/"+path))
	cmd := exec.Command("git", sub, dir)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+s.home)
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Fprintf(ch.Stderr(), "%v\n", err)
		return 126
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return uint32(exit.ExitCode())
	}
	return 1
}

// shellUnquote undoes the quoting of one argument as a POSIX shell reads
// it: single-quoted runs, backslash escapes and plain characters.
func shellUnquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", fmt.Errorf("unterminated quote in %q", s)
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case '\\':
			if i+1 == len(s) {
				return "", fmt.Errorf("trailing backslash in %q", s)
			}
			i++
			b.WriteByte(s[i])
		case ' ', '\t', '\n':
			return "", fmt.Errorf("more than one argument in %q", s)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// sshKey is a generated ssh key pair.
type sshKey struct {
	private []byte // OpenSSH PEM
	signer  ssh.Signer
}

func (k sshKey) fingerprint() string { return ssh.FingerprintSHA256(k.signer.PublicKey()) }

func (k sshKey) public() ssh.PublicKey { return k.signer.PublicKey() }

// newSSHKey generates an ed25519 key.
func newSSHKey(t *testing.T) sshKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyFrom(t, priv)
}

// newRSAKey generates an RSA key.
func newRSAKey(t *testing.T) sshKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return keyFrom(t, priv)
}

func keyFrom(t *testing.T, priv any) sshKey {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{private: pem.EncodeToMemory(block), signer: signer}
}
