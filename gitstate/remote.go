package gitstate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	git "github.com/libgit2/git2go/v34"
)

// Fetch brings the mirror up to date with the remote: the branch into
// refs/remotes/origin/<branch>, and every flux-sync tag and notes ref onto
// the local ones, by force. Local tags and notes that were never pushed are
// lost, and so are the ones the remote does not have (a notes ref made
// locally whose first push failed, say): the mirror holds what the remote
// holds. See Repo.Update.
func (r *Repo) Fetch(ctx context.Context) error {
	return lockedErr(r, func(t *Tx) error { return t.Fetch(ctx) })
}

// Push pushes refspecs ("src:dst", "+src:dst" to force, or a ref name that
// is the same on both sides) to the remote. A ref the remote refuses is a
// *RejectedError: errors.Is(err, ErrNonFastForward) when the remote ref
// has moved on. Push is not atomic: of several refspecs, some may land.
// After a push to the mirrored branch, Head returns the pushed commit.
func (r *Repo) Push(ctx context.Context, refspecs ...string) error {
	return lockedErr(r, func(t *Tx) error { return t.Push(ctx, refspecs...) })
}

// fetchRefspecs are the refs the mirror keeps.
func (t *Tx) fetchRefspecs() []string {
	return []string{
		"+refs/heads/" + t.branch + ":refs/remotes/origin/" + t.branch,
		"+refs/tags/flux-sync/*:refs/tags/flux-sync/*",
		"+refs/notes/*:refs/notes/*",
	}
}

// Fetch is Repo.Fetch.
func (t *Tx) Fetch(ctx context.Context) error {
	_, err := t.withRemote(ctx, func(remote *git.Remote, cbs git.RemoteCallbacks) error {
		return remote.Fetch(t.fetchRefspecs(), &git.FetchOptions{
			RemoteCallbacks: cbs,
			Prune:           git.FetchPruneOn,
			DownloadTags:    git.DownloadTagsNone,
		}, "fetch")
	})
	return t.wrapRemote("fetch", err)
}

// Push is Repo.Push.
func (t *Tx) Push(ctx context.Context, refspecs ...string) error {
	if len(refspecs) == 0 {
		return nil
	}
	specs, err := t.parsePushSpecs(refspecs)
	if err != nil {
		return err
	}
	gitSpecs, cleanup, err := t.refSources(refspecs, specs)
	defer cleanup()
	if err != nil {
		return err
	}
	s, err := t.withRemote(ctx, func(remote *git.Remote, cbs git.RemoteCallbacks) error {
		return remote.Push(gitSpecs, &git.PushOptions{RemoteCallbacks: cbs})
	})
	if isCode(err, git.ErrorCodeNonFastForward) {
		// libgit2 refuses before sending when the remote ref is not an
		// ancestor of ours; the remote's refusals come per ref, below.
		err = &RejectedError{Ref: joinDsts(specs), Reason: err.Error(), nonFF: true}
	}
	if err == nil && len(s.rejected) > 0 {
		err = errors.Join(s.rejected...)
	}
	if err != nil {
		return t.wrapRemote("push to", err)
	}
	return t.trackPushed(specs)
}

// withRemote runs op against origin with the callbacks of a new session
// for ctx, and returns the session (which holds the refs the remote
// refused). A done ctx is reported as such, before and after.
func (t *Tx) withRemote(ctx context.Context, op func(*git.Remote, git.RemoteCallbacks) error) (*session, error) {
	s := t.creds.session(ctx)
	if err := ctx.Err(); err != nil {
		return s, err
	}
	remote, err := t.git.Remotes.Lookup("origin")
	if err != nil {
		return s, err
	}
	defer remote.Free()
	operations.Store(remote, s)
	defer operations.Delete(remote)
	err = op(remote, s.callbacks())
	if ctxErr := ctx.Err(); ctxErr != nil && err != nil {
		return s, ctxErr
	}
	if err != nil {
		err = s.explain(err)
	}
	return s, err
}

// wrapRemote names the remote in err and classifies libgit2's errors,
// keeping passwords out of the message.
func (t *Tx) wrapRemote(op string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("%s %s: %w", op, t.url.Redacted(), classify(err))
	return redact(err, t.url.Password(), t.creds.auth.Password)
}

// pushSpec is one parsed push refspec.
type pushSpec struct {
	src, dst string
	id       *git.Oid // what src resolves to; nil for a deletion
}

func (t *Tx) parsePushSpecs(refspecs []string) ([]pushSpec, error) {
	specs := make([]pushSpec, 0, len(refspecs))
	for _, rs := range refspecs {
		src, dst, ok := strings.Cut(strings.TrimPrefix(rs, "+"), ":")
		if !ok {
			dst = src
		}
		if !strings.HasPrefix(dst, "refs/") {
			return nil, fmt.Errorf("push refspec %q: the destination must be a full ref name (refs/...)", rs)
		}
		spec := pushSpec{src: src, dst: dst}
		if src != "" {
			id, err := t.resolve(src)
			if err != nil {
				return nil, fmt.Errorf("push refspec %q: %w", rs, err)
			}
			spec.id = id
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// refSources rewrites refspecs whose source is not a ref (a commit ID,
// say) to push from a temporary ref refs/fluxd/push/<n>, as libgit2 pushes
// only refs. cleanup deletes the temporary refs.
func (t *Tx) refSources(refspecs []string, specs []pushSpec) (_ []string, cleanup func(), err error) {
	var temps []*git.Reference
	cleanup = func() {
		for _, ref := range temps {
			_ = ref.Delete()
			ref.Free()
		}
	}
	out := append([]string(nil), refspecs...)
	for i, s := range specs {
		if s.src == "" || strings.HasPrefix(s.src, "refs/") {
			continue
		}
		name := fmt.Sprintf("refs/fluxd/push/%d", i)
		ref, err := t.git.References.Create(name, s.id, true, "push")
		if err != nil {
			return nil, cleanup, err
		}
		temps = append(temps, ref)
		force := ""
		if strings.HasPrefix(refspecs[i], "+") {
			force = "+"
		}
		out[i] = force + name + ":" + s.dst
	}
	return out, cleanup, nil
}

func joinDsts(specs []pushSpec) string {
	dsts := make([]string, len(specs))
	for i, s := range specs {
		dsts[i] = s.dst
	}
	return strings.Join(dsts, ", ")
}

// trackPushed moves refs/remotes/origin/<branch> to a commit just pushed to
// the branch, as git does, so that Head needs no Fetch to see it.
func (t *Tx) trackPushed(specs []pushSpec) error {
	for _, s := range specs {
		if s.dst != "refs/heads/"+t.branch || s.id == nil {
			continue
		}
		ref, err := t.git.References.Create(t.trackingRef(), s.id, true, "push")
		if err != nil {
			return fmt.Errorf("pushed, but could not update %s: %w", t.trackingRef(), err)
		}
		ref.Free()
	}
	return nil
}

func (t *Tx) trackingRef() string { return "refs/remotes/origin/" + t.branch }
