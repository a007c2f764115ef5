package gitstate

import (
	"errors"
	"fmt"
	"strings"

	git "github.com/libgit2/git2go/v34"
)

// Errors to test with errors.Is. Every error gitstate returns about the
// remote names the remote's URL (never a password) and wraps one of the
// remote errors when it can tell the cause.
var (
	// ErrBadURL: the git URL has a form gitstate does not support.
	ErrBadURL = errors.New("unsupported git URL")
	// ErrUnreachable: the remote could not be reached, or has no repository
	// at that path.
	ErrUnreachable = errors.New("git remote unreachable")
	// ErrAuth: the remote refused the credentials, or none were configured.
	ErrAuth = errors.New("git authentication failed")
	// ErrHostKey: the remote's ssh host key is not in known_hosts, or its
	// TLS certificate is not valid.
	ErrHostKey = errors.New("git remote host key or certificate not trusted")
	// ErrRejected: the remote refused to update a ref on push.
	ErrRejected = errors.New("push rejected")
	// ErrNonFastForward: a push was refused because the remote ref has
	// moved on; fetch, redo the change on top, and push again. It is also
	// an ErrRejected.
	ErrNonFastForward = errors.New("non-fast-forward update")

	// ErrNoBranch: the configured branch does not exist on the remote (as of
	// the last Fetch).
	ErrNoBranch = errors.New("branch not found")
	// ErrNotFound: no such revision, tag or note.
	ErrNotFound = errors.New("not found")
	// ErrPathNotFound: a path is not in the commit's tree.
	ErrPathNotFound = errors.New("path not found")
	// ErrNoChanges: CommitFiles would make a commit with the same tree as
	// its parent.
	ErrNoChanges = errors.New("no changes to commit")
	// ErrClosed: the Repo was closed.
	ErrClosed = errors.New("git mirror closed")
)

// RejectedError is one ref the remote refused to update on push. It is an
// ErrRejected, and also an ErrNonFastForward when the ref had moved on.
type RejectedError struct {
	Ref    string // the remote ref, e.g. refs/heads/main
	Reason string // as the remote or libgit2 gave it
	nonFF  bool
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s rejected: %s", e.Ref, e.Reason)
}

// Is makes errors.Is match ErrRejected and, when it applies,
// ErrNonFastForward.
func (e *RejectedError) Is(target error) bool {
	return target == ErrRejected || (target == ErrNonFastForward && e.nonFF)
}

// newRejected classifies a per-ref status from the remote. git's
// receive-pack says "non-fast-forward" when it denies a rewind, and "failed
// to update ref" / "failed to lock" when another push moved the ref while
// this one was in flight: both mean fetch and retry.
func newRejected(ref, reason string) *RejectedError {
	nonFF := false
	for _, s := range []string{"non-fast-forward", "fetch first", "stale info", "failed to update ref", "failed to lock"} {
		if strings.Contains(reason, s) {
			nonFF = true
		}
	}
	return &RejectedError{Ref: ref, Reason: reason, nonFF: nonFF}
}

// errorClassHTTP is GIT_ERROR_HTTP, which git2go v34 does not name.
const errorClassHTTP git.ErrorClass = 34

// classify adds one of the remote sentinels to an error from a libgit2
// network operation, where libgit2's code or class tells the cause. Errors
// that are already ours (returned from callbacks) pass through.
func classify(err error) error {
	var ge *git.GitError
	if !errors.As(err, &ge) {
		return err
	}
	switch {
	case ge.Code == git.ErrorCodeAuth:
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case ge.Code == git.ErrorCodeCertificate:
		return fmt.Errorf("%w: %w", ErrHostKey, err)
	case ge.Code == git.ErrorCodeNonFastForward:
		return fmt.Errorf("%w: %w", &RejectedError{Reason: ge.Message, nonFF: true}, err)
	case ge.Class == git.ErrorClassNet, ge.Class == git.ErrorClassSSH,
		ge.Class == git.ErrorClassOS, ge.Class == git.ErrorClassSSL,
		ge.Class == errorClassHTTP, ge.Code == git.ErrorCodeEOF,
		ge.Class == git.ErrorClassRepository && ge.Code == git.ErrorCodeNotFound:
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}

// isCode reports whether err is a libgit2 error with the given code.
func isCode(err error, code git.ErrorCode) bool {
	var ge *git.GitError
	return errors.As(err, &ge) && ge.Code == code
}

// redactedError hides secrets that libgit2 may echo in its messages, while
// keeping the error chain for errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact replaces every secret in err's message with "xxxxx".
func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}
