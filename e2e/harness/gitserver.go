package harness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHKey is an ed25519 key pair, in memory and on disk (mode 0600).
type SSHKey struct {
	PrivatePEM       []byte // OpenSSH private key format
	PublicAuthorized []byte // one authorized_keys line
	PrivatePath      string
	PublicPath       string
}

// GitServer is OpenSSH's sshd on a loopback port, serving the bare
// repositories under Dir/repos over ssh:// to the holder of ClientKey.
type GitServer struct {
	Dir            string
	Port           int
	User           string // the login name in SSH URLs: the user running sshd
	ClientKey      SSHKey
	HostKey        ssh.PublicKey
	KnownHosts     string // "[127.0.0.1]:<port> ssh-ed25519 AAAA..."
	KnownHostsPath string
	proc           *Process
}

// GitRepo is one bare repository served by a GitServer.
type GitRepo struct {
	Path    string // absolute path of the bare repository
	SSHURL  string // ssh://<user>@127.0.0.1:<port><Path>
	FileURL string // file://<Path>
	Branch  string // the branch HEAD names
}

// StartGitServer starts sshd under dir (created if needed), with a fresh
// host key and client key, and checks that `git ls-remote` works over it.
func StartGitServer(ctx context.Context, dir string) (_ *GitServer, err error) {
	bin, err := LookBin("sshd")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	g := &GitServer{Dir: dir, User: u.Username}
	if g.Port, err = FreePort(); err != nil {
		return nil, err
	}
	cfgPath, err := g.writeFiles()
	if err != nil {
		return nil, err
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("sshd needs /run/sshd: %w", err)
	}
	if g.proc, err = StartProcess(dir, "sshd", bin, "-D", "-e", "-f", cfgPath); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.Stop()
		}
	}()
	if err := WaitTCP(ctx, g.proc, g.addr(), 10*time.Second); err != nil {
		return nil, err
	}
	if err := g.probe(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *GitServer) addr() string { return "127.0.0.1:" + strconv.Itoa(g.Port) }

// writeFiles writes the keys, authorized_keys, known_hosts and sshd_config,
// and returns the path of the config.
func (g *GitServer) writeFiles() (string, error) {
	home := filepath.Join(g.Dir, "home")
	for _, d := range []string{filepath.Join(g.Dir, "repos"), home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	hostKey, err := writeSSHKey(filepath.Join(g.Dir, "ssh_host_ed25519_key"), "fluxd-e2e-host")
	if err != nil {
		return "", fmt.Errorf("host key: %w", err)
	}
	if g.ClientKey, err = writeSSHKey(filepath.Join(g.Dir, "client_ed25519"), "fluxd-e2e-client"); err != nil {
		return "", fmt.Errorf("client key: %w", err)
	}
	if g.HostKey, _, _, _, err = ssh.ParseAuthorizedKey(hostKey.PublicAuthorized); err != nil {
		return "", err
	}
	authorized := filepath.Join(g.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, g.ClientKey.PublicAuthorized, 0o600); err != nil {
		return "", err
	}
	g.KnownHosts = fmt.Sprintf("[127.0.0.1]:%d %s", g.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(g.HostKey))))
	g.KnownHostsPath = filepath.Join(g.Dir, "known_hosts")
	if err := os.WriteFile(g.KnownHostsPath, []byte(g.KnownHosts+"\n"), 0o600); err != nil {
		return "", err
	}
	cfg := strings.Join([]string{
		"Port " + strconv.Itoa(g.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKey.PrivatePath,
		"AuthorizedKeysFile " + authorized,
		"PidFile " + filepath.Join(g.Dir, "sshd.pid"),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password",
		"UseDNS no",
		"PrintMotd no",
		"LogLevel VERBOSE",
		// git-upload-pack and git-receive-pack run through the account's
		// shell; a HOME of their own keeps its rc files (which may start
		// slow tools) out of every git operation, as on a git host.
		"SetEnv HOME=" + home,
		"",
	}, "\n")
	cfgPath := filepath.Join(g.Dir, "sshd_config")
	return cfgPath, os.WriteFile(cfgPath, []byte(cfg), 0o600)
}

// writeSSHKey generates an ed25519 key and writes it to path and path.pub.
func writeSSHKey(path, comment string) (SSHKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SSHKey{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return SSHKey{}, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return SSHKey{}, err
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment + "\n"
	k := SSHKey{
		PrivatePEM:       pem.EncodeToMemory(block),
		PublicAuthorized: []byte(authorized),
		PrivatePath:      path,
		PublicPath:       path + ".pub",
	}
	if err := os.WriteFile(k.PrivatePath, k.PrivatePEM, 0o600); err != nil {
		return SSHKey{}, err
	}
	return k, os.WriteFile(k.PublicPath, k.PublicAuthorized, 0o600)
}

// probe checks that sshd really serves git: `git ls-remote` of a scratch
// repository over ssh, with the client key and known_hosts.
func (g *GitServer) probe(ctx context.Context) error {
	repo, err := g.NewRepo(".probe", "main")
	if err != nil {
		return err
	}
	defer os.RemoveAll(repo.Path)
	return WaitFor(ctx, g.proc, 10*time.Second, func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, "git", "ls-remote", repo.SSHURL)
		cmd.Env = append(os.Environ(), g.GitEnv()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git ls-remote %s: %v: %s", repo.SSHURL, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// NewRepo creates the bare repository Dir/repos/<name>.git whose HEAD names
// branch. The repository is empty: the branch is born by the first push.
func (g *GitServer) NewRepo(name, branch string) (*GitRepo, error) {
	path := filepath.Join(g.Dir, "repos", name+".git")
	out, err := exec.Command("git", "init", "--quiet", "--bare", "--initial-branch="+branch, path).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("git init --bare %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return &GitRepo{
		Path:    path,
		SSHURL:  fmt.Sprintf("ssh://%s@%s%s", g.User, g.addr(), path),
		FileURL: "file://" + path,
		Branch:  branch,
	}, nil
}

// GitEnv returns the environment variables, to append to os.Environ(), that
// let the git CLI reach this server over ssh with the client key, checking
// the host key strictly and never prompting.
func (g *GitServer) GitEnv() []string {
	sshCmd := strings.Join([]string{
		"ssh", "-F", "/dev/null",
		"-i", shellQuote(g.ClientKey.PrivatePath),
		"-o", "IdentitiesOnly=yes",
		"-o", shellQuote("UserKnownHostsFile=" + g.KnownHostsPath),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
	}, " ")
	return []string{"GIT_SSH_COMMAND=" + sshCmd, "GIT_TERMINAL_PROMPT=0"}
}

// shellQuote quotes s for sh, which runs GIT_SSH_COMMAND.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Stop stops sshd and every session it started. It is safe to call on nil
// and more than once.
func (g *GitServer) Stop() {
	if g != nil && g.proc != nil {
		g.proc.Stop(5 * time.Second)
	}
}

// authorizeMu serialises edits of authorized_keys.
var authorizeMu sync.Mutex

// AuthorizeKey adds an authorized_keys line (a deploy key) to the server.
func (g *GitServer) AuthorizeKey(line string) error {
	authorizeMu.Lock()
	defer authorizeMu.Unlock()
	f, err := os.OpenFile(filepath.Join(g.Dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(strings.TrimSpace(line) + "\n")
	return err
}
