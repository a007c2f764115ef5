package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/images/filter"
	"github.com/fluxd/fluxd/kube/manifest"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/sync/jobs"
)

// defaultNamespace is the namespace of manifests that name none.
const defaultNamespace = "default"

// policyJobs turns policy updates into jobs that commit annotation edits.
type policyJobs struct {
	queue     *jobs.Queue
	repo      *gitstate.Repo
	paths     []string
	committer gitstate.Signature
}

// located is one object found in the manifests.
type located struct {
	path string
	obj  manifest.Object
}

// locate finds the objects in files, by ID. Only files that mention one of
// the names of ids are parsed: in a repo of a thousand files a policy
// change reads a handful.
func locate(files []resource.File, ids []resource.ID) map[resource.ID][]located {
	out := map[resource.ID][]located{}
	for _, f := range files {
		if !mentionsAny(f.Data, ids) {
			continue
		}
		objs, err := manifest.Objects(f.Data, defaultNamespace)
		if err != nil {
			continue // the sync reports files that do not parse
		}
		for _, o := range objs {
			out[o.ID] = append(out[o.ID], located{path: f.Path, obj: o})
		}
	}
	return out
}

func mentionsAny(data []byte, ids []resource.ID) bool {
	for _, id := range ids {
		if bytes.Contains(data, []byte(id.Name)) {
			return true
		}
	}
	return false
}

// changes are the annotation edits of one workload: policy -> value, nil
// to remove.
type changes map[string]*string

// plan validates a policy update against the manifests and returns the
// edits per workload. Every problem is a user error naming the workload.
func plan(updates api.PolicyUpdates, found map[resource.ID][]located) (map[resource.ID]changes, error) {
	out := map[resource.ID]changes{}
	var problems []string
	for id, u := range updates {
		locs := found[id]
		if len(locs) == 0 {
			problems = append(problems, fmt.Sprintf("%s is not in the repository (under the git paths)", id))
			continue
		}
		if len(locs) > 1 {
			problems = append(problems, fmt.Sprintf("%s is in the repository more than once (%s and %s)", id, locs[0].path, locs[1].path))
			continue
		}
		obj := locs[0].obj
		c, err := changesFor(obj, u)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		out[id] = c
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

func changesFor(obj manifest.Object, u api.PolicyUpdate) (changes, error) {
	c := changes{}
	names := map[string]bool{}
	for _, ct := range obj.Containers {
		names[ct.Name] = true
	}
	for name, value := range u.Add {
		v := value
		switch {
		case name == resource.PolicyTagAll:
			for _, ct := range obj.Containers {
				if v == "glob:*" || v == "*" {
					c[resource.PolicyTagPrefix+ct.Name] = nil
				} else {
					c[resource.PolicyTagPrefix+ct.Name] = &v
				}
			}
			if v != "glob:*" && v != "*" {
				if _, err := filter.Parse(v); err != nil {
					return nil, fmt.Errorf("tag filter %q: %w", v, err)
				}
			}
			continue
		case strings.HasPrefix(name, resource.PolicyTagPrefix):
			container := strings.TrimPrefix(name, resource.PolicyTagPrefix)
			if !names[container] {
				return nil, &manifest.ContainerNotFoundError{ID: obj.ID, Container: container, Have: containerNames(obj)}
			}
			if _, err := filter.Parse(v); err != nil {
				return nil, fmt.Errorf("tag filter %q for container %s: %w", v, container, err)
			}
		case name == resource.PolicyLocked && v == "true" && obj.Policies().Locked():
			p := obj.Policies()
			return nil, fmt.Errorf("already locked (by %q: %q); unlock it first", p[resource.PolicyLockedUser], p[resource.PolicyLockedMsg])
		}
		c[name] = &v
	}
	for name := range u.Remove {
		if strings.HasPrefix(name, resource.PolicyTagPrefix) && !names[strings.TrimPrefix(name, resource.PolicyTagPrefix)] {
			return nil, &manifest.ContainerNotFoundError{ID: obj.ID, Container: strings.TrimPrefix(name, resource.PolicyTagPrefix), Have: containerNames(obj)}
		}
		c[name] = nil // remove wins over add
	}
	return c, nil
}

func containerNames(obj manifest.Object) []string {
	var out []string
	for _, c := range obj.Containers {
		out = append(out, c.Name)
	}
	return out
}

// edit is the job's Edit: it applies the planned changes to the files at
// the head it is given, again from scratch on every attempt.
func edit(updates api.PolicyUpdates) jobs.Edit {
	return func(files []resource.File) (map[string][]byte, map[resource.ID]notes.WorkloadResult, error) {
		found := locate(files, idsOf(updates))
		changed := map[string][]byte{}
		results := map[resource.ID]notes.WorkloadResult{}
		data := map[string][]byte{}
		for _, f := range files {
			data[f.Path] = f.Data
		}
		for id, u := range updates {
			locs := found[id]
			if len(locs) != 1 {
				results[id] = notes.WorkloadResult{Status: notes.WorkloadFailed, Error: api.ReasonNotInRepo}
				continue
			}
			c, err := changesFor(locs[0].obj, u)
			if err != nil {
				results[id] = notes.WorkloadResult{Status: notes.WorkloadFailed, Error: err.Error()}
				continue
			}
			path := locs[0].path
			cur := data[path]
			if b, ok := changed[path]; ok {
				cur = b
			}
			next, err := manifest.SetPolicies(cur, id, defaultNamespace, c)
			if err != nil {
				results[id] = notes.WorkloadResult{Status: notes.WorkloadFailed, Error: err.Error()}
				continue
			}
			if string(next) == string(cur) {
				results[id] = notes.WorkloadResult{Status: notes.WorkloadSkipped, Error: notes.ReasonNoChange}
				continue
			}
			changed[path] = next
			results[id] = notes.WorkloadResult{Status: notes.WorkloadSuccess}
		}
		return changed, results, nil
	}
}

// submit validates a policy update against the manifests at the branch
// head and queues it. Nothing is committed when validation fails.
func (p *policyJobs) submit(ctx context.Context, spec api.Spec) (string, error) {
	updates, ok := spec.Spec.(api.PolicyUpdates)
	if !ok || len(updates) == 0 {
		return "", api.UserError(errors.New("a policy update names no workloads"), "Name at least one workload, e.g. --workload=default:deployment/podinfo.")
	}
	if err := p.repo.Fetch(ctx); err != nil {
		return "", api.ServerError(fmt.Errorf("fetch before the policy change: %w", err), "fluxd cannot reach its git repository; see 'fluxctl status'.")
	}
	head, err := p.repo.Head()
	if err != nil {
		return "", api.ServerError(err, "fluxd cannot read its branch; see 'fluxctl status'.")
	}
	files, err := p.repo.Files(head, p.paths)
	if err != nil && !errors.Is(err, gitstate.ErrPathNotFound) {
		return "", api.ServerError(err, "fluxd cannot read the manifests; see its log.")
	}
	planned, err := plan(updates, locate(files, idsOf(updates)))
	if err != nil {
		return "", api.UserError(err, "Nothing was changed. Check the workload IDs with 'fluxctl list-workloads', the containers they have, and the tag filter (glob:, semver: or regex:).")
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	id, err := p.queue.Submit(ctx, jobs.Job{
		Kind:    notes.KindPolicy,
		Spec:    raw,
		Cause:   notes.Cause{User: spec.Cause.User, Message: spec.Cause.Message},
		Message: policyMessage(spec.Cause.Message, updates, planned),
		Author:  author(spec.Cause.User),
		Edit:    edit(updates),
	})
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, jobs.ErrQueueFull):
		return "", api.ServerError(err, "Too many jobs are waiting; try again in a moment.")
	case errors.Is(err, jobs.ErrStopped):
		return "", api.ServerError(err, "fluxd is shutting down; try again once it is back.")
	}
	return "", api.ServerError(err, "fluxd could not record the job in git, so it did not queue it; nothing was changed. See 'fluxctl status'.")
}

// resumeJob rebuilds the Edit of a job accepted before fluxd stopped, so
// that the queue can run it again.
func resumeJob(kind string, spec json.RawMessage) (jobs.Edit, error) {
	if kind != notes.KindPolicy {
		return nil, fmt.Errorf("jobs of kind %q are not run by this fluxd", kind)
	}
	var s api.Spec
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, fmt.Errorf("read the job's spec: %w", err)
	}
	updates, ok := s.Spec.(api.PolicyUpdates)
	if !ok || len(updates) == 0 {
		return nil, errors.New("the job's spec names no policy updates")
	}
	return edit(updates), nil
}

// policyMessage is the commit message: the user's message first, then
// what changed, in Flux v1's words.
func policyMessage(userMsg string, updates api.PolicyUpdates, planned map[resource.ID]changes) string {
	var lines []string
	ids := make([]resource.ID, 0, len(updates))
	for id := range updates {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	for _, id := range ids {
		lines = append(lines, describe(planned[id])+": "+id.String())
	}
	subject := lines[0]
	if len(lines) > 1 {
		subject = fmt.Sprintf("Updated policies of %d workloads", len(lines))
	}
	body := ""
	if len(lines) > 1 {
		body = "\n\n" + strings.Join(lines, "\n")
	}
	if userMsg != "" {
		return userMsg + "\n\n" + subject + body
	}
	return subject + body
}

func describe(c changes) string {
	set := func(name string) bool { v, ok := c[name]; return ok && v != nil && *v == "true" }
	removed := func(name string) bool { v, ok := c[name]; return ok && v == nil }
	var verbs []string
	switch {
	case set(resource.PolicyAutomated):
		verbs = append(verbs, "Automated")
	case removed(resource.PolicyAutomated):
		verbs = append(verbs, "Deautomated")
	}
	switch {
	case set(resource.PolicyLocked):
		verbs = append(verbs, "Locked")
	case removed(resource.PolicyLocked):
		verbs = append(verbs, "Unlocked")
	}
	for name := range c {
		if strings.HasPrefix(name, resource.PolicyTagPrefix) {
			verbs = append(verbs, "Updated tag filters")
			break
		}
	}
	if len(verbs) == 0 {
		return "Updated policies"
	}
	return strings.Join(verbs, ", ")
}

// author parses "Name <email>" from the request's cause.
func author(user string) jobs.Signature {
	if user == "" {
		return jobs.Signature{}
	}
	if a, err := mail.ParseAddress(user); err == nil {
		name := a.Name
		if name == "" {
			name = a.Address
		}
		return jobs.Signature{Name: name, Email: a.Address, When: time.Now()}
	}
	return jobs.Signature{Name: user, Email: "unknown@fluxd", When: time.Now()}
}

// jobStatus reports a queued, running or finished job in Flux v1's shape.
func (p *policyJobs) jobStatus(ctx context.Context, id string) (api.JobStatus, error) {
	st, err := p.queue.Status(ctx, id)
	if errors.Is(err, jobs.ErrUnknownJob) {
		return api.JobStatus{}, api.UnknownJob(id)
	}
	if err != nil {
		return api.JobStatus{}, api.ServerError(err, "fluxd could not read its job records; see its log.")
	}
	out := api.JobStatus{StatusString: api.JobStatusString(st.State), Err: st.Err}
	if st.State == jobs.Succeeded || st.State == jobs.Failed {
		out.Result.Revision = st.Commit
		var spec api.Spec
		if json.Unmarshal(st.Spec, &spec) == nil {
			out.Result.Spec = &spec
		}
		if len(st.Results) > 0 {
			out.Result.Result = api.UpdateResult{}
			for id, r := range st.Results {
				wr := api.WorkloadResult{Status: api.WorkloadUpdateStatus(r.Status), Error: r.Error}
				for _, c := range r.Containers {
					wr.PerContainer = append(wr.PerContainer, api.ContainerUpdate{Container: c.Container, Current: api.ImageRef(c.Current), Target: api.ImageRef(c.Target)})
				}
				out.Result.Result[id] = wr
			}
		}
	}
	return out, nil
}

func idsOf(updates api.PolicyUpdates) []resource.ID {
	ids := make([]resource.ID, 0, len(updates))
	for id := range updates {
		ids = append(ids, id)
	}
	return ids
}
