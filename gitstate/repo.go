package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	git "github.com/libgit2/git2go/v34"
	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/kube/resource"
)

// Config says which remote branch to mirror, and where.
type Config struct {
	URL    string // ssh://, https://, http://, file:// or git@host:path
	Branch string
	Auth   Auth
	Dir    string // the bare mirror; created if absent
	// Log receives warnings (such as an unchecked host key). The zero
	// Logger discards them.
	Log zerolog.Logger
}

// Signature is the author, committer or tagger of a commit, tag or note.
// A zero When means time.Now().
type Signature struct {
	Name, Email string
	When        time.Time
}

// Reader reads the mirror. It never touches the network.
type Reader interface {
	Head() (string, error)
	ResolveRevision(rev string) (string, error)
	Commit(rev string) (CommitInfo, error)
	IsAncestor(ancestor, commit string) (bool, error)
	Files(commit string, paths []string) ([]resource.File, error)
	ChangedPaths(from, to string, paths []string) ([]string, error)
	CommitsBetween(from, to string, paths []string) ([]string, error)
	Tag(name string) (string, error)
	TagMessage(name string) (string, error)
	Note(notesRef, commit string) ([]byte, error)
	Notes(notesRef string) (map[string][]byte, error)
}

// Writer writes objects and refs in the mirror only; Push publishes them.
type Writer interface {
	CommitFiles(parent string, files map[string][]byte, message string, author, committer Signature) (string, error)
	SetTag(name, commit, message string, tagger Signature) error
	SetNote(notesRef, commit string, data []byte, sig Signature) error
	RemoveNote(notesRef, commit string, sig Signature) error
}

// Syncer moves refs between the mirror and the remote.
type Syncer interface {
	Fetch(ctx context.Context) error
	Push(ctx context.Context, refspecs ...string) error
}

// Mirror is everything a Repo, or a Tx inside Repo.Update, can do.
type Mirror interface {
	Reader
	Writer
	Syncer
}

var (
	_ Mirror = (*Repo)(nil)
	_ Mirror = (*Tx)(nil)
)

// Repo is a bare local mirror of one branch of a remote repository, with
// its flux-sync tags and its notes. It is safe for concurrent use: every
// method holds the Repo's lock, because libgit2 must not be used from two
// goroutines on one repository at once. Fetch and Push hold it for as long
// as the network takes.
type Repo struct {
	mu sync.Mutex
	tx *Tx // nil once closed
}

// Tx is the mirror while its lock is held: see Repo.Update. It has the
// same methods as Repo, and must not be used after Update returns.
type Tx struct {
	git    *git.Repository
	branch string
	url    remoteURL
	creds  *creds
}

// Open opens the bare mirror in cfg.Dir, creating it if needed, and points
// its remote "origin" at cfg.URL. It does not fetch.
func Open(cfg Config) (*Repo, error) {
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if err := checkBranch(cfg.Branch); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("gitstate: no directory for the mirror")
	}
	if u.IsSSH() {
		if err := registerSSHTransport(); err != nil {
			return nil, err
		}
	}
	repo, err := openOrInit(cfg.Dir)
	if err != nil {
		return nil, err
	}
	tx := &Tx{git: repo, branch: cfg.Branch, url: u}
	if tx.creds, err = newCreds(u, cfg.Auth, cfg.Dir, cfg.Log); err == nil {
		err = tx.setRemote()
	}
	if err != nil {
		repo.Free()
		return nil, err
	}
	return &Repo{tx: tx}, nil
}

func checkBranch(branch string) error {
	if branch == "" {
		return errors.New("gitstate: no branch given")
	}
	if ok, err := git.ReferenceNameIsValid("refs/heads/" + branch); err != nil || !ok {
		return fmt.Errorf("gitstate: %q is not a valid branch name", branch)
	}
	return nil
}

func openOrInit(dir string) (*git.Repository, error) {
	if _, err := os.Stat(dir); err == nil {
		repo, err := git.OpenRepository(dir)
		if err == nil && !repo.IsBare() {
			repo.Free()
			err = errors.New("not a bare repository")
		}
		if err == nil {
			return repo, nil
		}
		if empty, _ := isEmptyDir(dir); !empty {
			return nil, fmt.Errorf("gitstate: %s exists and is not a git mirror: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	repo, err := git.InitRepository(dir, true)
	if err != nil {
		return nil, fmt.Errorf("gitstate: init mirror in %s: %w", dir, err)
	}
	return repo, nil
}

func isEmptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) == 0, err
}

// setRemote makes "origin" point at the URL. Fetch passes its refspecs
// explicitly, so the remote has none configured.
func (t *Tx) setRemote() error {
	remote, err := t.git.Remotes.Lookup("origin")
	if isCode(err, git.ErrorCodeNotFound) {
		remote, err = t.git.Remotes.CreateWithOptions(t.url.String(), &git.RemoteCreateOptions{
			Name:  "origin",
			Flags: git.RemoteCreateSkipDefaultFetchspec,
		})
	}
	if err != nil {
		return fmt.Errorf("gitstate: remote origin: %w", err)
	}
	defer remote.Free()
	if remote.Url() != t.url.String() {
		return t.git.Remotes.SetUrl("origin", t.url.String())
	}
	return nil
}

// Close frees the mirror. The Repo must not be used afterwards; calls
// return ErrClosed.
func (r *Repo) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tx != nil {
		r.tx.creds.pool.close()
		r.tx.git.Free()
		r.tx = nil
	}
}

// Update runs fn with the Repo locked, so that no Fetch or other writer
// can run between the changes fn makes and the Push that publishes them:
// Fetch overwrites local tags and notes with the remote's. fn must not
// call methods of r itself (they would wait for the lock forever).
func (r *Repo) Update(fn func(tx *Tx) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tx == nil {
		return ErrClosed
	}
	return fn(r.tx)
}

// locked runs f on the Tx with the Repo locked.
func locked[T any](r *Repo, f func(*Tx) (T, error)) (T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tx == nil {
		var zero T
		return zero, ErrClosed
	}
	return f(r.tx)
}

// lockedErr is locked for methods that return only an error.
func lockedErr(r *Repo, f func(*Tx) error) error {
	_, err := locked(r, func(t *Tx) (struct{}, error) { return struct{}{}, f(t) })
	return err
}

// toGit converts a signature for libgit2.
func (s Signature) toGit() *git.Signature {
	when := s.When
	if when.IsZero() {
		when = time.Now()
	}
	return &git.Signature{Name: s.Name, Email: s.Email, When: when}
}

func fromGit(s *git.Signature) Signature {
	if s == nil {
		return Signature{}
	}
	return Signature{Name: s.Name, Email: s.Email, When: s.When}
}
