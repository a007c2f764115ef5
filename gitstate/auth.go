package gitstate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	git "github.com/libgit2/git2go/v34"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Auth holds the credentials for the remote.
type Auth struct {
	// SSHPrivateKey is an unencrypted private key in OpenSSH or PEM format,
	// for ssh:// and scp-like URLs.
	SSHPrivateKey []byte
	// SSHPublicKey is its public half in authorized_keys format; derived from
	// the private key when empty.
	SSHPublicKey []byte
	// KnownHosts holds known_hosts lines the ssh host key must match. Empty
	// means any host key is accepted, with a warning in the log.
	KnownHosts []byte
	// Username and Password are for https:// and http:// URLs.
	Username, Password string
}

// creds is Auth prepared once at Open for the libgit2 callbacks.
type creds struct {
	url      remoteURL
	auth     Auth
	sshPub   string              // authorized_keys line
	hostKeys ssh.HostKeyCallback // nil: accept any host key
	log      zerolog.Logger
	pool     sshPool // the open ssh connection, for ssh:// remotes
}

// newCreds validates auth for u. The known_hosts lines are written to
// dir/fluxd_known_hosts, the file x/crypto's knownhosts reads.
func newCreds(u remoteURL, auth Auth, dir string, log zerolog.Logger) (*creds, error) {
	c := &creds{url: u, auth: auth, log: log}
	if len(auth.SSHPrivateKey) > 0 {
		signer, err := ssh.ParsePrivateKey(auth.SSHPrivateKey)
		if err != nil {
			return nil, fmt.Errorf("ssh private key: %w (it must be unencrypted)", err)
		}
		c.sshPub = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		if len(auth.SSHPublicKey) > 0 {
			c.sshPub = strings.TrimSpace(string(auth.SSHPublicKey))
		}
	}
	if !u.IsSSH() {
		return c, nil
	}
	if len(auth.KnownHosts) == 0 {
		log.Warn().Str("url", u.Redacted()).Msg("no known_hosts given: any ssh host key will be accepted")
		return c, nil
	}
	path := filepath.Join(dir, "fluxd_known_hosts")
	if err := os.WriteFile(path, auth.KnownHosts, 0o600); err != nil {
		return nil, err
	}
	var err error
	if c.hostKeys, err = knownhosts.New(path); err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return c, nil
}

// session is the state of one network operation: its context, how often
// libgit2 asked for credentials, and the refs the remote rejected.
type session struct {
	ctx      context.Context
	creds    *creds
	attempts int
	rejected []error

	// Set by the ssh transport, whose errors reach libgit2 only as text.
	mu           sync.Mutex
	transportErr error          // why the transport failed, with its sentinel
	hostKeyErr   error          // why the host key was refused
	stderr       *limitedBuffer // the remote git command's stderr
}

// fail records the transport's error for the operation and returns it.
func (s *session) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transportErr == nil {
		s.transportErr = err
	}
	return err
}

func (s *session) setHostKeyError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostKeyErr = err
}

func (s *session) hostKeyError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostKeyErr
}

func (s *session) setStderr(b *limitedBuffer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stderr = b
}

// explain turns a failed operation's error into the most telling one: the
// transport's own error when it failed, else libgit2's with what the
// remote command printed on stderr.
func (s *session) explain(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transportErr != nil {
		return s.transportErr
	}
	if s.stderr != nil {
		if msg := s.stderr.String(); msg != "" {
			return fmt.Errorf("%w (the server said: %s)", err, msg)
		}
	}
	return err
}

func (c *creds) session(ctx context.Context) *session {
	return &session{ctx: ctx, creds: c}
}

// callbacks wires the session into libgit2. Every progress callback aborts
// the operation once the context is done.
func (s *session) callbacks() git.RemoteCallbacks {
	return git.RemoteCallbacks{
		CredentialsCallback:          s.credential,
		CertificateCheckCallback:     s.checkCertificate,
		SidebandProgressCallback:     func(string) error { return s.ctx.Err() },
		TransferProgressCallback:     func(git.TransferProgress) error { return s.ctx.Err() },
		PackProgressCallback:         func(int32, uint32, uint32) error { return s.ctx.Err() },
		PushTransferProgressCallback: func(uint32, uint32, uint) error { return s.ctx.Err() },
		PushUpdateReferenceCallback:  s.pushStatus,
	}
}

// credential answers libgit2's request for credentials. libgit2 asks again
// after each failed attempt, forever, so the second request for the same
// kind of credential means the remote refused the first.
func (s *session) credential(_, userFromURL string, allowed git.CredentialType) (*git.Credential, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	a := s.creds.auth
	user := userFromURL
	if user == "" {
		user = "git"
		if !s.creds.url.IsSSH() && a.Username != "" {
			user = a.Username
		}
	}
	switch {
	case allowed == git.CredentialTypeUsername:
		return git.NewCredentialUsername(user)
	case allowed&git.CredentialTypeSSHMemory != 0 && s.creds.sshPub != "":
		if s.attempts++; s.attempts > 1 {
			return nil, fmt.Errorf("%w: the ssh server refused the key %s for user %s", ErrAuth, s.creds.fingerprint(), user)
		}
		return git.NewCredentialSSHKeyFromMemory(user, s.creds.sshPub, string(a.SSHPrivateKey), "")
	case allowed&git.CredentialTypeUserpassPlaintext != 0 && s.creds.password() != "":
		if s.attempts++; s.attempts > 1 {
			return nil, fmt.Errorf("%w: the server refused the password for user %s", ErrAuth, user)
		}
		return git.NewCredentialUserpassPlaintext(user, s.creds.password())
	}
	return nil, fmt.Errorf("%w: the remote asks for credentials (%s) and none of that kind are configured", ErrAuth, allowed)
}

// password is Auth.Password, or else the one in the URL.
func (c *creds) password() string {
	if c.auth.Password != "" {
		return c.auth.Password
	}
	return c.url.Password()
}

// fingerprint names the configured ssh key in messages.
func (c *creds) fingerprint() string {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.sshPub))
	if err != nil {
		return "(unparseable public key)"
	}
	return ssh.FingerprintSHA256(pub)
}

// checkCertificate verifies the ssh host key against known_hosts, or that
// libgit2 found the TLS certificate valid.
func (s *session) checkCertificate(cert *git.Certificate, valid bool, host string) error {
	switch cert.Kind {
	case git.CertificateHostkey:
		return s.creds.checkHostKey(cert.Hostkey)
	case git.CertificateX509:
		if !valid {
			return fmt.Errorf("%w: the TLS certificate of %s is not valid", ErrHostKey, host)
		}
		return nil
	}
	return fmt.Errorf("%w: %s presented an unknown kind of certificate", ErrHostKey, host)
}

func (c *creds) checkHostKey(hk git.HostkeyCertificate) error {
	if hk.Kind&git.HostkeyRaw == 0 || hk.SSHPublicKey == nil {
		return fmt.Errorf("%w: libgit2 gave no host key for %s to check", ErrHostKey, c.url.HostPort())
	}
	return c.checkKey(hk.SSHPublicKey)
}

// checkKey checks the remote's ssh host key against known_hosts.
func (c *creds) checkKey(key ssh.PublicKey) error {
	hostPort := c.url.HostPort()
	if c.hostKeys == nil {
		c.log.Debug().Str("host", hostPort).Str("key", ssh.FingerprintSHA256(key)).Msg("accepting ssh host key unchecked")
		return nil
	}
	if err := c.hostKeys(hostPort, tcpAddr(hostPort), key); err != nil {
		return fmt.Errorf("%w: %s offered %s %s: %v", ErrHostKey, hostPort, key.Type(), ssh.FingerprintSHA256(key), err)
	}
	return nil
}

// tcpAddr is a host:port as a net.Addr, for knownhosts.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

// pushStatus records a ref the remote refused; libgit2's push itself
// succeeds in that case.
func (s *session) pushStatus(ref, status string) error {
	if status != "" {
		s.rejected = append(s.rejected, newRejected(ref, status))
	}
	return nil
}

// SetSSHKey replaces the ssh private key used from the next fetch or push
// on, as when the deploy key is regenerated.
func (r *Repo) SetSSHKey(private []byte) error {
	return lockedErr(r, func(t *Tx) error {
		signer, err := ssh.ParsePrivateKey(private)
		if err != nil {
			return fmt.Errorf("ssh private key: %w (it must be unencrypted)", err)
		}
		t.creds.auth.SSHPrivateKey = private
		t.creds.auth.SSHPublicKey = nil
		t.creds.sshPub = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		t.creds.pool.close() // the next operation authenticates with the new key
		return nil
	})
}
