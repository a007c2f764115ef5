package gitstate_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/kube/resource"
)

func paths(files []resource.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

func TestRepoFetchHeadFiles(t *testing.T) {
	r := newRemote(t)
	m := r.open(t)
	if _, err := m.Head(); !errors.Is(err, gitstate.ErrNoBranch) {
		t.Fatalf("Head before any fetch: got %v, want ErrNoBranch", err)
	}
	fetch(t, m) // an empty remote fetches fine
	want := r.seed(t, "seed", map[string]string{
		"a.yaml":             "a: 1\n",
		"dir/b.yml":          "b: 1\n",
		"dir/sub/c.json":     `{"c": 1}`,
		"dir/sub/deep/d.YML": "d: 1\n",
		"dir/README.md":      "# not a manifest\n",
		"dir/script.sh":      "#!/bin/sh\n",
		"other/e.yaml":       "e: 1\n",
	})
	fetch(t, m)
	got := head(t, m)
	if got != want {
		t.Fatalf("Head = %s, want %s", got, want)
	}

	for _, tc := range []struct {
		paths []string
		want  []string
	}{
		{nil, []string{"a.yaml", "dir/b.yml", "dir/sub/c.json", "dir/sub/deep/d.YML", "other/e.yaml"}},
		{[]string{"."}, []string{"a.yaml", "dir/b.yml", "dir/sub/c.json", "dir/sub/deep/d.YML", "other/e.yaml"}},
		{[]string{"dir"}, []string{"dir/b.yml", "dir/sub/c.json", "dir/sub/deep/d.YML"}},
		{[]string{"dir/sub/", "other"}, []string{"dir/sub/c.json", "dir/sub/deep/d.YML", "other/e.yaml"}},
		{[]string{"dir", "dir/sub"}, []string{"dir/b.yml", "dir/sub/c.json", "dir/sub/deep/d.YML"}},
		{[]string{"dir/README.md"}, []string{"dir/README.md"}},
	} {
		files, err := m.Files(got, tc.paths)
		if err != nil {
			t.Fatalf("Files(%q): %v", tc.paths, err)
		}
		if !reflect.DeepEqual(paths(files), tc.want) {
			t.Errorf("Files(%q) = %q, want %q", tc.paths, paths(files), tc.want)
		}
	}
	files, err := m.Files(got, []string{"dir/sub"})
	if err != nil || string(files[0].Data) != `{"c": 1}` {
		t.Errorf("Files(dir/sub)[0] = %q, %v", files[0].Data, err)
	}

	_, err = m.Files(got, []string{"dir", "nope/missing"})
	if !errors.Is(err, gitstate.ErrPathNotFound) || !strings.Contains(err.Error(), "nope/missing") {
		t.Errorf("Files of a missing path: got %v, want ErrPathNotFound naming it", err)
	}
}

func TestRepoCommitFiles(t *testing.T) {
	r := newRemote(t)
	base := r.seed(t, "seed", map[string]string{
		"keep.yaml":      "keep: 1\n",
		"change.yaml":    "old: 1\n",
		"gone.yaml":      "gone: 1\n",
		"old/x.yaml":     "x: 1\n",
		"old/sub/y.yaml": "y: 1\n",
		"run.sh":         "#!/bin/sh\n",
	})
	m := r.openFetched(t)

	id, err := m.CommitFiles(base, map[string][]byte{
		"change.yaml":         []byte("new: 1\n"),
		"gone.yaml":           nil,
		"old":                 nil,
		"new/nested/z.yaml":   []byte("z: 1\n"),
		"./dotted/../w.yaml":  []byte("w: 1\n"),
		"run.sh":              []byte("#!/bin/sh\necho hi\n"),
		"new/nested/z2.json":  []byte("{}"),
		"new/nested/deeper/q": []byte("q"),
	}, "Edit files", sig, sig)
	if err != nil {
		t.Fatal(err)
	}
	push(t, m, id+":refs/heads/main")
	if got := head(t, m); got != id {
		t.Errorf("Head after push = %s, want %s", got, id)
	}
	if _, err := m.ResolveRevision("refs/fluxd/push/0"); !errors.Is(err, gitstate.ErrNotFound) {
		t.Errorf("the temporary push ref is left behind: %v", err)
	}
	files := r.git(t, "ls-tree", "-r", "--name-only", "main")
	want := "change.yaml\nkeep.yaml\nnew/nested/deeper/q\nnew/nested/z.yaml\nnew/nested/z2.json\nrun.sh\nw.yaml"
	if files != want {
		t.Errorf("files on the remote:\n%s\nwant:\n%s", files, want)
	}
	if got := r.git(t, "show", "main:change.yaml"); got != "new: 1" {
		t.Errorf("change.yaml = %q", got)
	}
	if got := r.git(t, "log", "-1", "--format=%an <%ae> %at %s", "main"); got != "fluxd <fluxd@example.com> 1700000000 Edit files" {
		t.Errorf("commit = %q", got)
	}
	if got := r.git(t, "rev-parse", "main^"); got != base {
		t.Errorf("parent = %s, want %s", got, base)
	}

	if _, err := m.CommitFiles(id, map[string][]byte{"keep.yaml": []byte("keep: 1\n")}, "nothing", sig, sig); !errors.Is(err, gitstate.ErrNoChanges) {
		t.Errorf("CommitFiles changing nothing: got %v, want ErrNoChanges", err)
	}
	if _, err := m.CommitFiles(id, map[string][]byte{"not/there.yaml": nil}, "rm", sig, sig); !errors.Is(err, gitstate.ErrPathNotFound) {
		t.Errorf("deleting a missing file: got %v, want ErrPathNotFound", err)
	}
	if _, err := m.CommitFiles(id, map[string][]byte{"../escape.yaml": []byte("x")}, "bad", sig, sig); err == nil {
		t.Error("a path outside the repository was accepted")
	}
}

func TestRepoCommitFilesKeepsMode(t *testing.T) {
	r := newRemote(t)
	r.seed(t, "seed", map[string]string{"run.sh": "#!/bin/sh\n"})
	work := filepath.Join(t.TempDir(), "w")
	runGit(t, "", "clone", "--quiet", r.Path, work)
	runGit(t, work, "update-index", "--chmod=+x", "run.sh")
	runGit(t, work, "commit", "--quiet", "-m", "exec")
	runGit(t, work, "push", "--quiet", "origin", "HEAD:main")
	m := r.openFetched(t)
	commit(t, m, head(t, m), "edit", map[string][]byte{"run.sh": []byte("#!/bin/sh\necho\n")})
	if got := r.git(t, "ls-tree", "main", "run.sh"); !strings.HasPrefix(got, "100755") {
		t.Errorf("run.sh lost its mode: %s", got)
	}
}

func TestRepoNotesRoundTrip(t *testing.T) {
	r := newRemote(t)
	a := r.openFetched(t)
	c1 := commit(t, a, "", "one", map[string][]byte{"a.yaml": []byte("a: 1\n")})
	c2 := commit(t, a, c1, "two", map[string][]byte{"a.yaml": []byte("a: 2\n")})
	if _, err := a.Note("refs/notes/flux", c1); !errors.Is(err, gitstate.ErrNotFound) {
		t.Fatalf("Note before any: got %v, want ErrNotFound", err)
	}
	if err := a.SetNote("refs/notes/flux", c1, []byte(`{"id":"first"}`), sig); err != nil {
		t.Fatal(err)
	}
	if err := a.SetNote("refs/notes/flux", c1, []byte(`{"id":"one"}`), sig); err != nil { // overwrite
		t.Fatal(err)
	}
	if err := a.SetNote("refs/notes/flux", c2[:7], []byte(`{"id":"two"}`), sig); err != nil {
		t.Fatal(err)
	}
	if err := a.SetNote("refs/notes/flux-sync/prod", c2, []byte(`{"synced":true}`), sig); err != nil {
		t.Fatal(err)
	}
	push(t, a, "refs/notes/flux", "refs/notes/flux-sync/prod")

	b := r.openFetched(t)
	if got, err := b.Note("refs/notes/flux", c1); err != nil || string(got) != `{"id":"one"}` {
		t.Errorf("Note(c1) = %q, %v", got, err)
	}
	all, err := b.Notes("refs/notes/flux")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{c1: []byte(`{"id":"one"}`), c2: []byte(`{"id":"two"}`)}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("Notes = %q, want %q", all, want)
	}
	if got, err := b.Note("refs/notes/flux-sync/prod", c2); err != nil || string(got) != `{"synced":true}` {
		t.Errorf("sync note = %q, %v", got, err)
	}
	if none, err := b.Notes("refs/notes/nothing"); err != nil || len(none) != 0 {
		t.Errorf("Notes of a missing ref = %v, %v", none, err)
	}
	if log := r.git(t, "log", "--notes=flux", "--format=%H %N", "main"); !strings.Contains(log, c1+` {"id":"one"}`) {
		t.Errorf("git log --notes=flux on the remote:\n%s", log)
	}
}

func TestRepoTagRoundTrip(t *testing.T) {
	r := newRemote(t)
	a := r.openFetched(t)
	c1 := commit(t, a, "", "one", map[string][]byte{"a.yaml": []byte("a: 1\n")})
	c2 := commit(t, a, c1, "two", map[string][]byte{"a.yaml": []byte("a: 2\n")})
	if _, err := a.Tag("flux-sync/prod"); !errors.Is(err, gitstate.ErrNotFound) {
		t.Fatalf("Tag before any: got %v, want ErrNotFound", err)
	}
	if err := a.SetTag("flux-sync/prod", c1, "applied c1", sig); err != nil {
		t.Fatal(err)
	}
	push(t, a, "+refs/tags/flux-sync/prod")
	if err := a.SetTag("flux-sync/prod", c2, "applied c2", sig); err != nil { // move it
		t.Fatal(err)
	}
	push(t, a, "+refs/tags/flux-sync/prod")

	b := r.openFetched(t)
	if got, err := b.Tag("flux-sync/prod"); err != nil || got != c2 {
		t.Errorf("Tag = %s, %v; want %s", got, err, c2)
	}
	if got, err := b.TagMessage("refs/tags/flux-sync/prod"); err != nil || got != "applied c2" {
		t.Errorf("TagMessage = %q, %v", got, err)
	}
	if got := r.git(t, "cat-file", "-t", "flux-sync/prod"); got != "tag" {
		t.Errorf("the remote's flux-sync/prod is a %s, want an annotated tag", got)
	}
	if got := r.git(t, "for-each-ref", "--format=%(taggername) %(taggerdate:unix)", "refs/tags/flux-sync/prod"); got != "fluxd 1700000000" {
		t.Errorf("tagger = %q", got)
	}

	// A lightweight tag made with the CLI moves the mirror's tag on fetch.
	r.git(t, "tag", "-f", "flux-sync/prod", c1)
	fetch(t, b)
	if got, err := b.Tag("flux-sync/prod"); err != nil || got != c1 {
		t.Errorf("Tag after a lightweight force-move = %s, %v; want %s", got, err, c1)
	}
	if got, err := b.TagMessage("flux-sync/prod"); err != nil || got != "" {
		t.Errorf("TagMessage of a lightweight tag = %q, %v", got, err)
	}
}

func TestRepoPushNonFastForward(t *testing.T) {
	r := newRemote(t)
	base := r.seed(t, "seed", map[string]string{"a.yaml": "a: 0\n"})
	a, b := r.openFetched(t), r.openFetched(t)
	commit(t, a, base, "from a", map[string][]byte{"a.yaml": []byte("a: 1\n")})

	// b has never seen a's commit.
	fromB, err := b.CommitFiles(base, map[string][]byte{"b.yaml": []byte("b: 1\n")}, "from b", sig, sig)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Push(context.Background(), fromB+":refs/heads/main")
	if !errors.Is(err, gitstate.ErrNonFastForward) || !errors.Is(err, gitstate.ErrRejected) {
		t.Fatalf("push over an unseen commit: got %v, want ErrNonFastForward", err)
	}
	// b has fetched a's commit, and still pushes a commit that does not
	// descend from it.
	fetch(t, b)
	err = b.Push(context.Background(), fromB+":refs/heads/main")
	if !errors.Is(err, gitstate.ErrNonFastForward) {
		t.Fatalf("push of a diverged commit: got %v, want ErrNonFastForward", err)
	}
	// Redo on top, as the job loop does.
	commit(t, b, head(t, b), "from b, again", map[string][]byte{"b.yaml": []byte("b: 1\n")})

	// Notes written on both sides: the second push is refused.
	if err := a.SetNote("refs/notes/flux", base, []byte("a"), sig); err != nil {
		t.Fatal(err)
	}
	if err := b.SetNote("refs/notes/flux", base, []byte("b"), sig); err != nil {
		t.Fatal(err)
	}
	push(t, a, "refs/notes/flux")
	if err := b.Push(context.Background(), "refs/notes/flux"); !errors.Is(err, gitstate.ErrNonFastForward) {
		t.Fatalf("push of diverged notes: got %v, want ErrNonFastForward", err)
	}
	fetch(t, b)
	if got, _ := b.Note("refs/notes/flux", base); string(got) != "a" {
		t.Fatalf("after fetch b's note = %q, want the remote's", got)
	}
	// A forced push of a sync tag always lands.
	if err := b.SetTag("flux-sync/prod", base, "m", sig); err != nil {
		t.Fatal(err)
	}
	push(t, b, "+refs/tags/flux-sync/prod")
}

func TestRepoResolveRevision(t *testing.T) {
	r := newRemote(t)
	c1 := r.seed(t, "one", map[string]string{"a.yaml": "a: 1\n"})
	m := r.openFetched(t)
	if err := m.SetTag("flux-sync/x", c1, "x", sig); err != nil {
		t.Fatal(err)
	}
	for _, rev := range []string{c1, c1[:7], "refs/remotes/origin/main", "origin/main", "flux-sync/x", "refs/tags/flux-sync/x"} {
		if got, err := m.ResolveRevision(rev); err != nil || got != c1 {
			t.Errorf("ResolveRevision(%q) = %s, %v; want %s", rev, got, err, c1)
		}
	}
	if _, err := m.ResolveRevision("deadbeef"); !errors.Is(err, gitstate.ErrNotFound) {
		t.Errorf("ResolveRevision of an unknown ID: got %v, want ErrNotFound", err)
	}
	info, err := m.Commit(c1[:10])
	if err != nil || info.ID != c1 || info.Message != "one\n" || info.Author.Email != "test@example.com" || len(info.Parents) != 0 {
		t.Errorf("Commit = %+v, %v", info, err)
	}
}

func TestRepoCommitsBetween(t *testing.T) {
	r := newRemote(t)
	m := r.openFetched(t)
	c1 := commit(t, m, "", "a1", map[string][]byte{"a/x.yaml": []byte("1")})
	c2 := commit(t, m, c1, "b1", map[string][]byte{"b/y.yaml": []byte("1")})
	c3 := commit(t, m, c2, "a2", map[string][]byte{"a/x.yaml": []byte("2")})
	c4 := commit(t, m, c3, "c1", map[string][]byte{"c.yaml": []byte("1")})

	for _, tc := range []struct {
		from, to string
		paths    []string
		want     []string
	}{
		{"", c4, nil, []string{c4, c3, c2, c1}},
		{c1, c4, nil, []string{c4, c3, c2}},
		{c4, c4, nil, nil},
		{"", c4, []string{"a"}, []string{c3, c1}},
		{c1, c4, []string{"b", "c.yaml"}, []string{c4, c2}},
		{"", c4, []string{"."}, []string{c4, c3, c2, c1}},
		{"", c4, []string{"nothing"}, nil},
	} {
		got, err := m.CommitsBetween(tc.from, tc.to, tc.paths)
		if err != nil {
			t.Fatalf("CommitsBetween(%.7s, %.7s, %q): %v", tc.from, tc.to, tc.paths, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("CommitsBetween(%.7s, %.7s, %q) = %.7s, want %.7s", tc.from, tc.to, tc.paths, got, tc.want)
		}
	}
	if got, err := m.ChangedPaths(c1, c4, nil); err != nil || !reflect.DeepEqual(got, []string{"a/x.yaml", "b/y.yaml", "c.yaml"}) {
		t.Errorf("ChangedPaths(c1, c4) = %q, %v", got, err)
	}
	if got, err := m.ChangedPaths(c1, c4, []string{"a", "b/"}); err != nil || !reflect.DeepEqual(got, []string{"a/x.yaml", "b/y.yaml"}) {
		t.Errorf("ChangedPaths(c1, c4, a b) = %q, %v", got, err)
	}
	if got, err := m.ChangedPaths("", c1, nil); err != nil || !reflect.DeepEqual(got, []string{"a/x.yaml"}) {
		t.Errorf("ChangedPaths('', c1) = %q, %v", got, err)
	}
	if ok, err := m.IsAncestor(c1, c4); err != nil || !ok {
		t.Errorf("IsAncestor(c1, c4) = %v, %v", ok, err)
	}
	if ok, err := m.IsAncestor(c4, c1); err != nil || ok {
		t.Errorf("IsAncestor(c4, c1) = %v, %v", ok, err)
	}
}

func TestRepoCommitsBetweenMerge(t *testing.T) {
	r := newRemote(t)
	base := r.seed(t, "base", map[string]string{"a/x.yaml": "0", "b/y.yaml": "0"})
	work := filepath.Join(t.TempDir(), "w")
	runGit(t, "", "clone", "--quiet", r.Path, work)
	runGit(t, work, "checkout", "--quiet", "-b", "side")
	writeAndCommit(t, work, "b/y.yaml", "1", "side b")
	runGit(t, work, "checkout", "--quiet", "main")
	writeAndCommit(t, work, "a/x.yaml", "1", "main a")
	runGit(t, work, "merge", "--quiet", "--no-edit", "side")
	runGit(t, work, "push", "--quiet", "origin", "main")
	m := r.openFetched(t)
	want := strings.Fields(runGit(t, work, "log", "--format=%H", base+"..main", "--", "a"))
	got, err := m.CommitsBetween(base, head(t, m), []string{"a"})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("CommitsBetween over a merge = %.7s, %v; git log says %.7s", got, err, want)
	}
}

func writeAndCommit(t *testing.T, work, path, content, message string) {
	t.Helper()
	if err := writeFile(filepath.Join(work, path), content); err != nil {
		t.Fatal(err)
	}
	runGit(t, work, "add", path)
	runGit(t, work, "commit", "--quiet", "-m", message)
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://host/repo.git", "just words", "https://", "ssh://host", "/abs/path", "host:", "file://host/repo"} {
		_, err := gitstate.Open(gitstate.Config{URL: u, Branch: "main", Dir: t.TempDir()})
		if !errors.Is(err, gitstate.ErrBadURL) {
			t.Errorf("Open(%q): got %v, want ErrBadURL", u, err)
		}
	}
	for _, u := range []string{"git@github.com:org/repo.git", "ssh://git@host:2222/org/repo", "https://host/org/repo.git", "http://host/repo", "file:///tmp/repo.git"} {
		m, err := gitstate.Open(gitstate.Config{URL: u, Branch: "main", Dir: t.TempDir()})
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		m.Close()
	}
	if _, err := gitstate.Open(gitstate.Config{URL: "file:///tmp/x", Branch: "bad..branch", Dir: t.TempDir()}); err == nil {
		t.Error("a bad branch name was accepted")
	}
}

func TestFetchErrorsClassifiedAndRedacted(t *testing.T) {
	ctx := context.Background()
	m, err := gitstate.Open(gitstate.Config{URL: "https://user:s3cret@127.0.0.1:1/repo.git", Branch: "main", Dir: t.TempDir(),
		Auth: gitstate.Auth{Username: "user", Password: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Fetch(ctx)
	if !errors.Is(err, gitstate.ErrUnreachable) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("fetch from a closed port: got %v, want ErrUnreachable without the password", err)
	}
	t.Log(err)

	missing, err := gitstate.Open(gitstate.Config{URL: "file:///nonexistent/repo.git", Branch: "main", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	err = missing.Fetch(ctx)
	if !errors.Is(err, gitstate.ErrUnreachable) {
		t.Errorf("fetch from a missing repository: got %v, want ErrUnreachable", err)
	}
	t.Log(err)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	r := newRemote(t)
	if err := r.open(t).Fetch(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("fetch with a cancelled context: got %v", err)
	}
}

func TestRepoReopen(t *testing.T) {
	r1, r2 := newRemote(t), newRemote(t)
	c1 := r1.seed(t, "one", map[string]string{"a.yaml": "a: 1\n"})
	c2 := r2.seed(t, "two", map[string]string{"b.yaml": "b: 1\n"})
	dir := filepath.Join(t.TempDir(), "mirror")
	open := func(url string) *gitstate.Repo {
		m, err := gitstate.Open(gitstate.Config{URL: url, Branch: "main", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open(r1.URL)
	fetch(t, m)
	m.Close()
	if _, err := m.Head(); !errors.Is(err, gitstate.ErrClosed) {
		t.Errorf("Head after Close: got %v, want ErrClosed", err)
	}
	m = open(r1.URL)
	if got := head(t, m); got != c1 {
		t.Errorf("Head after reopen = %s, want %s", got, c1)
	}
	m.Close()
	m = open(r2.URL) // the URL changed: origin follows it
	defer m.Close()
	fetch(t, m)
	if got := head(t, m); got != c2 {
		t.Errorf("Head after a URL change = %s, want %s", got, c2)
	}
}

func TestOpenRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(filepath.Join(dir, "precious.txt"), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := gitstate.Open(gitstate.Config{URL: "file:///tmp/x", Branch: "main", Dir: dir}); err == nil {
		t.Error("Open took over a directory that is not a mirror")
	}
}

func TestRepoUpdate(t *testing.T) {
	r := newRemote(t)
	base := r.seed(t, "seed", map[string]string{"a.yaml": "a: 0\n"})
	m := r.openFetched(t)
	err := m.Update(func(tx *gitstate.Tx) error {
		id, err := tx.CommitFiles(base, map[string][]byte{"a.yaml": []byte("a: 1\n")}, "job", sig, sig)
		if err != nil {
			return err
		}
		if err := tx.SetNote("refs/notes/flux", id, []byte(`{"job":1}`), sig); err != nil {
			return err
		}
		return tx.Push(context.Background(), id+":refs/heads/main", "refs/notes/flux")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.git(t, "notes", "--ref=flux", "show", "main"); got != `{"job":1}` {
		t.Errorf("note on the remote = %q", got)
	}
}

// TestRepoConcurrentLoop fetches and reads from several goroutines while
// another pushes, many times over: under -race it must neither race nor
// crash, and memory must be freed as it goes.
func TestRepoConcurrentLoop(t *testing.T) {
	r := newRemote(t)
	r.seed(t, "seed", map[string]string{"dir/a.yaml": "a: 0\n", "dir/b.json": "{}"})
	m := r.openFetched(t)
	writer := r.openFetched(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/2; i++ {
				if err := m.Fetch(ctx); err != nil {
					errs <- err
					return
				}
				h, err := m.Head()
				if err == nil {
					_, err = m.Files(h, []string{"dir"})
				}
				if err == nil {
					_, err = m.Notes("refs/notes/flux")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			h := head(t, writer)
			id, err := writer.CommitFiles(h, map[string][]byte{"dir/a.yaml": []byte(fmt.Sprintf("a: %d\n", i+1))}, "bump", sig, sig)
			if err == nil {
				err = writer.SetNote("refs/notes/flux", id, []byte(fmt.Sprint(i)), sig)
			}
			if err == nil {
				err = writer.Push(ctx, id+":refs/heads/main", "refs/notes/flux")
			}
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	fetch(t, m)
	files, err := m.Files(head(t, m), []string{"dir/a.yaml"})
	if err != nil || string(files[0].Data) != "a: 20\n" {
		t.Errorf("final a.yaml = %q, %v", files, err)
	}
}

// Fetch makes the mirror hold what the remote holds: a notes ref or a sync
// tag made in the mirror but never pushed is gone after it, even when the
// remote has no such ref at all; RemoveNote removes a note, also on a
// commit the mirror does not have.
func TestRepoFetchPrunesAndRemoveNote(t *testing.T) {
	r := newRemote(t)
	a := r.openFetched(t)
	c1 := commit(t, a, "", "one", map[string][]byte{"a.yaml": []byte("a: 1\n")})
	push(t, a, c1+":refs/heads/main")
	if err := a.SetNote("refs/notes/flux", c1, []byte("never pushed"), sig); err != nil {
		t.Fatal(err)
	}
	if err := a.SetTag("flux-sync/prod", c1, "never pushed", sig); err != nil {
		t.Fatal(err)
	}
	if err := a.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Note("refs/notes/flux", c1); !errors.Is(err, gitstate.ErrNotFound) {
		t.Errorf("the unpushed note outlived a fetch: %v", err)
	}
	if _, err := a.Tag("flux-sync/prod"); !errors.Is(err, gitstate.ErrNotFound) {
		t.Errorf("the unpushed tag outlived a fetch: %v", err)
	}

	// A pushed note, removed and pushed again, is gone from the remote.
	if err := a.SetNote("refs/notes/flux", c1, []byte("pushed"), sig); err != nil {
		t.Fatal(err)
	}
	push(t, a, "refs/notes/flux")
	if err := a.RemoveNote("refs/notes/flux", c1, sig); err != nil {
		t.Fatal(err)
	}
	push(t, a, "refs/notes/flux")
	if list := r.git(t, "notes", "--ref=flux", "list"); list != "" {
		t.Errorf("notes on the remote after the removal: %q", list)
	}
	if err := a.RemoveNote("refs/notes/flux", c1, sig); !errors.Is(err, gitstate.ErrNotFound) {
		t.Errorf("removing a missing note: %v, want ErrNotFound", err)
	}
	if err := a.RemoveNote("refs/notes/flux", "c0ffee", sig); err == nil {
		t.Error("removing the note of an abbreviated ID worked; a full ID is needed")
	}
}
