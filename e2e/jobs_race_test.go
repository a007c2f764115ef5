package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/server/client"
)

// A push by someone else lands between the job's fetch and its push: the
// job redoes its edit on top of it, so both commits are on the branch and
// nothing is overwritten, and the job note is on the job's commit.
//
// The race is made by the server, not by timing: a pre-receive hook moves
// main to the other person's commit while fluxd's first push to main is
// being received. That push was made from the head fluxd fetched, so git
// refuses it ("failed to update ref": main is no longer where the push
// expected it), exactly as when another push wins the race; fluxd must
// fetch and redo. The hook fires once, so the retry goes through.
func TestJobsExternalPushRacesTheJob(t *testing.T) {
	t.Parallel()
	ns, w := testName(t), newWorkRepo(t)
	base := w.commit("workloads", map[string]string{
		"ns.yaml":      namespaceYAML(ns),
		"podinfo.yaml": deploymentYAML(ns, "podinfo", "ghcr.io/example/podinfo:1.0.0", 0),
	})

	// Someone else's commit on top of base, changing another file. Its
	// objects reach the server through a side branch, so that the hook
	// only has to move main.
	team := configMapYAML(ns, "team", map[string]string{"owner": "someone else"})
	if err := os.WriteFile(filepath.Join(w.dir, "team.yaml"), []byte(team), 0o644); err != nil {
		t.Fatal(err)
	}
	w.git("add", "team.yaml")
	w.git("commit", "-q", "-m", "Someone else's change", "--author", "Someone Else <else@example.com>")
	other := w.git("rev-parse", "HEAD")
	w.git("push", "-q", "origin", "HEAD:refs/heads/other")
	w.git("reset", "-q", "--hard", base)

	fired := filepath.Join(w.remote.Path, "race-fired")
	// The hook runs inside git's quarantine of the pushed objects, where
	// git refuses ref updates; the other commit is already in the object
	// store, so update-ref runs outside it.
	writeHook(t, w, `#!/bin/sh
while read old new ref; do
  if [ "$ref" = refs/heads/main ] && [ ! -f "`+fired+`" ]; then
    echo "$old $new" > "`+fired+`"
    env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main `+other+` "$old" || exit 1
  fi
done
exit 0
`)

	d := startFluxd(t, "fluxd", fluxdArgs(w, ns)...)
	waitTag(t, w, ns, base)
	out, stderr, code := fluxctl(t, d, "", "lock", "-w", ns+":deployment/podinfo", "-m", "hold during the race", "--user", "Kim <kim@example.com>")
	if code != 0 || !strings.Contains(stderr, "Commit pushed") {
		t.Fatalf("lock: exit %d\n%s%s", code, out, stderr)
	}

	// The race happened: the hook moved main under fluxd's first push.
	raced, err := os.ReadFile(fired)
	if err != nil {
		t.Fatalf("the hook never saw a push to main, so there was no race: %v", err)
	}
	if f := strings.Fields(string(raced)); len(f) != 2 || f[0] != base {
		t.Fatalf("the push the hook raced was not made on %s: %q", base[:7], raced)
	}

	c := cloneWithNotes(t, w)
	head := c.git("rev-parse", "HEAD")
	if parent := c.git("rev-parse", "HEAD^"); parent != other {
		t.Errorf("the job's commit %s has parent %s, want the other person's commit %s\n%s",
			head[:7], parent[:7], other[:7], c.git("log", "--format=%h %an: %s", base+"^..HEAD"))
	}
	if n := c.git("rev-list", "--count", base+"..HEAD"); n != "2" {
		t.Errorf("%s commits on main since %s, want 2 (the other person's and one of fluxd's):\n%s",
			n, base[:7], c.git("log", "--format=%h %an: %s", base+"..HEAD"))
	}
	if a := c.git("log", "-1", "--format=%an <%ae>", "HEAD"); a != "Kim <kim@example.com>" {
		t.Errorf("the head of main is by %q, want the job's commit by Kim", a)
	}
	if got := c.git("show", "HEAD:team.yaml"); got != strings.TrimSpace(team) {
		t.Errorf("team.yaml, the other person's change, is not intact:\n%s", got)
	}
	if got := c.git("show", "HEAD:podinfo.yaml"); !strings.Contains(got, `fluxcd.io/locked: "true"`) {
		t.Errorf("podinfo.yaml lacks the lock:\n%s", got)
	}
	if log := c.git("log", "-1", "--notes=flux", "HEAD"); !strings.Contains(log, `"type": "job"`) || !strings.Contains(log, `"kind": "policy"`) {
		t.Errorf("git log --notes=flux shows no job note on the job's commit:\n%s", log)
	}
	rec := jobNote(t, c, head)
	if r, ok := rec.Results[resource.MakeID(ns, "deployment", "podinfo")]; !ok || r.Status != notes.WorkloadSuccess {
		t.Errorf("the job note on %s does not say podinfo was locked: %+v", head[:7], rec.Results)
	}
	checkNotesOnBranch(t, c, nil)
	waitFor(t, syncWait, "podinfo to show as locked", func() (bool, string) {
		p := listWorkloads(t, d, ns)["podinfo"]
		return p.Locked, fmt.Sprintf("%+v", p)
	})
}

// fluxd is killed mid-job, then started again with the same flags, on the
// same mirror (--git-dir, kept as a restarted container keeps its volume):
// git is consistent (every commit of a job's on the
// branch has its note, every note is on a commit on the branch), and the
// restarted fluxd reports the job as succeeded with its commit, or failed
// with the reason, never as unknown. If it succeeded, the lock takes
// effect.
//
// The kill lands where each case says because the server holds the push
// there: a pre-receive hook, armed once for one ref, says it has started
// (the test waits for that, then kills fluxd), sleeps, and then lets the
// push through or refuses it, as the push would have landed or not. fluxd
// pushes the job note and the commit in two pushes, so holding one of them
// holds the job at that point. After the kill the test waits for the
// server's git-receive-pack to end, so what landed is settled before the
// restart.
func TestJobsKilled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// hold is the ref whose next push the hook holds; "" holds none,
		// and fluxd is killed as soon as the job is queued.
		hold   string
		refuse bool // the held push does not land
	}{
		// The note is on the remote; the commit is in flight and lands.
		{name: "InBranchPush", hold: "refs/heads/main"},
		// The note is in flight and lands; the commit is never pushed.
		{name: "InNotePush", hold: "refs/notes/flux"},
		// The note is in flight and does not land: nothing of the job
		// reaches git.
		{name: "BeforeAnyPushLands", hold: "refs/notes/flux", refuse: true},
		// Queued, or fetching: nothing of the job reaches git.
		{name: "RightAfterSubmit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns, w := testName(t), newWorkRepo(t)
			base := w.commit("workloads", map[string]string{
				"ns.yaml":      namespaceYAML(ns),
				"podinfo.yaml": deploymentYAML(ns, "podinfo", "ghcr.io/example/podinfo:1.0.0", 0),
			})
			args := fluxdArgs(w, ns, "--git-dir", filepath.Join(t.TempDir(), "mirror"))
			d := startFluxd(t, "first", args...)
			waitTag(t, w, ns, base)
			var hold *heldPush
			if tc.hold != "" {
				hold = holdNextPush(t, w, tc.hold, 3*time.Second, tc.refuse)
			}

			id := submitLock(t, d, ns, "podinfo")
			var pushing string
			if hold != nil {
				pushing = hold.waitStarted(t)
			}
			killFluxd(t, d)
			if hold != nil {
				hold.waitSettled(t)
			}

			d2 := startFluxd(t, "second", args...)
			st, ok := checkRelease(t, d2, id)
			// Git is consistent right after the restart, and after the
			// next job too (which runs after anything the restarted fluxd
			// runs of its own), whatever the killed job left in the mirror.
			c := cloneWithNotes(t, w)
			checkJobCommitsNoted(t, c, base)
			stray := checkNotesOnBranch(t, c, nil)
			if out, stderr, code := fluxctl(t, d2, "", "automate", "-w", ns+":deployment/podinfo", "--user", "Kim <kim@example.com>"); code != 0 || !strings.Contains(stderr, "Commit pushed") {
				t.Fatalf("automate on the restarted fluxd: exit %d\n%s%s", code, out, stderr)
			}
			c = cloneWithNotes(t, w)
			noted := checkJobCommitsNoted(t, c, base)
			checkNotesOnBranch(t, c, stray)
			if !ok {
				return
			}
			var commit string
			for sha, rec := range noted {
				if rec.JobID == id {
					commit = sha
				}
			}
			switch st.StatusString {
			case api.JobSucceeded:
				if commit == "" || st.Result.Revision != commit {
					t.Errorf("job %s succeeded with commit %q, but main has no commit of it with its note:\n%s", id, st.Result.Revision, c.git("log", "--format=%h %an: %s", base+"..HEAD"))
				}
				if tc.hold == "refs/heads/main" && st.Result.Revision != pushing {
					t.Errorf("job %s succeeded with commit %q, want the commit whose push was held, %s", id, st.Result.Revision, pushing)
				}
				waitFor(t, syncWait, "podinfo to show as locked", func() (bool, string) {
					p := listWorkloads(t, d2, ns)["podinfo"]
					return p.Locked, fmt.Sprintf("%+v", p)
				})
			case api.JobFailed:
				if commit != "" {
					t.Errorf("job %s failed, yet its commit %s is on main:\n%s", id, commit[:7], c.git("log", "--format=%h %an: %s", base+"..HEAD"))
				}
				if got := c.git("show", "HEAD:podinfo.yaml"); strings.Contains(got, "fluxcd.io/locked") {
					t.Errorf("job %s failed, yet podinfo is locked in git:\n%s", id, got)
				}
			}
		})
	}
}

// writeHook installs script as the remote's pre-receive hook.
func writeHook(t *testing.T, w *workRepo, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.remote.Path, "hooks", "pre-receive"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// heldPush is a pre-receive hook that holds the next push to one ref.
type heldPush struct {
	started string // written when the hook starts: "<receive-pack pid> <pushed object>"
	slept   string // written when the hook has slept
}

// holdNextPush arms a pre-receive hook that holds the next push to ref for
// d, then lets it through, or refuses it if refuse is set. Pushes to other
// refs (the sync tag and sync notes, and the job's other push) are not
// held.
func holdNextPush(t *testing.T, w *workRepo, ref string, d time.Duration, refuse bool) *heldPush {
	t.Helper()
	h := &heldPush{started: filepath.Join(w.remote.Path, "hold-started"), slept: filepath.Join(w.remote.Path, "hold-slept")}
	armed := filepath.Join(w.remote.Path, "hold-armed")
	status := 0
	if refuse {
		status = 1
	}
	// $PPID is git-receive-pack, which runs the hook and then updates the
	// refs. The hook prints nothing, so nothing is written to the client
	// (which may be dead by then) while it holds the push.
	writeHook(t, w, fmt.Sprintf(`#!/bin/sh
while read old new ref; do
  if [ "$ref" = %[5]q ] && [ -f %[1]q ]; then
    rm -f %[1]q
    echo "$PPID $new" > %[2]q.tmp && mv %[2]q.tmp %[2]q
    sleep %[4]d
    touch %[3]q
    exit %[6]d
  fi
done
exit 0
`, armed, h.started, h.slept, int(d.Seconds()), ref, status))
	if err := os.WriteFile(armed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// waitStarted waits until the hook holds a push, and returns the object
// being pushed.
func (h *heldPush) waitStarted(t *testing.T) string {
	t.Helper()
	var commit string
	waitFor(t, syncWait, "the push to main to be held", func() (bool, string) {
		b, err := os.ReadFile(h.started)
		if err != nil {
			return false, err.Error()
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			return false, fmt.Sprintf("hook wrote %q", b)
		}
		commit = f[1]
		return true, ""
	})
	return commit
}

// waitSettled waits until the held push is over on the server: the hook
// has slept and git-receive-pack has exited, so the branch is where that
// push left it.
func (h *heldPush) waitSettled(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(h.started)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatalf("hook wrote %q: %v", b, err)
	}
	waitFor(t, syncWait, "the held push to end on the server", func() (bool, string) {
		if _, err := os.Stat(h.slept); err != nil {
			return false, "the hook still sleeps"
		}
		if alive(pid) {
			return false, fmt.Sprintf("git-receive-pack (pid %d) still runs", pid)
		}
		return true, ""
	})
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by
// whoever inherited it) does not.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// killFluxd kills fluxd and its process group with SIGKILL: no shutdown,
// no clean-up, as when its node dies.
func killFluxd(t *testing.T, d *daemon) {
	t.Helper()
	if err := syscall.Kill(-d.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "fluxd to die", func() (bool, string) {
		done, _ := d.proc.Exited()
		return done, "still running"
	})
}

// submitLock asks d to lock a workload and returns the job's ID.
func submitLock(t *testing.T, d *daemon, ns, name string) string {
	t.Helper()
	cl, err := client.New(d.url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := cl.UpdateManifests(context.Background(), api.Spec{Type: api.UpdatePolicy, Cause: api.Cause{User: "Kim <kim@example.com>"},
		Spec: api.PolicyUpdates{resource.MakeID(ns, "deployment", name): {Add: api.PolicySet{resource.PolicyLocked: "true"}}}})
	if err != nil {
		t.Fatalf("lock %s: %v", name, err)
	}
	return id
}

// checkRelease asks d, once its API answers, for job id with `fluxctl
// check-release` until the job is over: it must end succeeded with its
// commit, or failed with a reason. Not knowing the job, or anything else,
// is an error, and ok is false. (A fluxd that runs again the jobs it had
// accepted may say queued or running first.)
func checkRelease(t *testing.T, d *daemon, id string) (st api.JobStatus, ok bool) {
	t.Helper()
	cl, err := client.New(d.url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, syncWait, "the restarted fluxd to answer", func() (bool, string) {
		_, err := cl.Status(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	deadline := time.Now().Add(syncWait)
	for {
		out, stderr, code := fluxctl(t, d, "", "check-release", "-o", "json", id)
		st = api.JobStatus{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Errorf("fluxctl check-release %s after the restart: exit %d, want the job's status (succeeded, or failed with the reason), never unknown:\n%s%s", id, code, out, stderr)
			return st, false
		}
		switch {
		case st.StatusString == api.JobSucceeded && st.Err == "" && st.Result.Revision != "":
			return st, true
		case st.StatusString == api.JobFailed && strings.TrimSpace(st.Err) != "":
			t.Logf("job %s after the restart: failed: %s", id, st.Err)
			return st, true
		case (st.StatusString == api.JobQueued || st.StatusString == api.JobRunning) && st.Err == "" && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond)
			continue
		}
		t.Errorf("fluxctl check-release %s after the restart: exit %d, want succeeded with a commit or failed with a reason:\n%s%s", id, code, out, stderr)
		return st, false
	}
}

// cloneWithNotes is a fresh clone of the remote's main, with its notes.
func cloneWithNotes(t *testing.T, w *workRepo) *workRepo {
	t.Helper()
	c := &workRepo{t: t, remote: w.remote, dir: t.TempDir()}
	c.git("clone", "-q", "-b", "main", w.remote.SSHURL, ".")
	c.git("fetch", "-q", "origin", "refs/notes/*:refs/notes/*")
	return c
}

// jobNote reads and decodes the job note on commit.
func jobNote(t *testing.T, c *workRepo, commit string) notes.JobRecord {
	t.Helper()
	out, err := gitIn(c.dir, "notes", "--ref=flux", "show", commit)
	if err != nil {
		t.Errorf("commit %s has no job note in refs/notes/flux: %v", commit[:7], err)
		return notes.JobRecord{}
	}
	rec, err := notes.DecodeJobRecord([]byte(out))
	if err != nil {
		t.Errorf("the job note on %s: %v\n%s", commit[:7], err, out)
	}
	return rec
}

// checkJobCommitsNoted checks that every commit on main since base (all
// made by fluxd's jobs in these tests) has its job note, and returns the
// notes by commit.
func checkJobCommitsNoted(t *testing.T, c *workRepo, base string) map[string]notes.JobRecord {
	t.Helper()
	out := map[string]notes.JobRecord{}
	for _, commit := range strings.Fields(c.git("rev-list", base+"..HEAD")) {
		out[commit] = jobNote(t, c, commit)
	}
	return out
}

// checkNotesOnBranch checks that every note in refs/notes/flux is on a
// commit on main: a note on any other commit is a job record of a commit
// that never reached the branch. It reports those not in known, and
// returns them all.
func checkNotesOnBranch(t *testing.T, c *workRepo, known map[string]bool) map[string]bool {
	t.Helper()
	stray := map[string]bool{}
	list, err := gitIn(c.dir, "notes", "--ref=flux", "list")
	if err != nil {
		t.Errorf("git notes --ref=flux list: %v", err)
		return stray
	}
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		commit := f[1]
		_, err := gitIn(c.dir, "merge-base", "--is-ancestor", commit, "HEAD")
		if err == nil {
			continue
		}
		stray[commit] = true
		if known[commit] {
			continue
		}
		note, _ := gitIn(c.dir, "notes", "--ref=flux", "show", commit)
		why := "not an ancestor of main"
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			why = "not in a clone of main at all"
		}
		t.Errorf("refs/notes/flux has a note on %s, which is not on main (%s):\n%s", commit[:7], why, note)
	}
	return stray
}

// gitIn runs git in dir and returns its trimmed output.
func gitIn(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}
