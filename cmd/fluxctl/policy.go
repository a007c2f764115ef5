package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/server/client"
)

// workloadFlags select workloads, as Flux v1's fluxctl does.
type workloadFlags struct {
	Workload  []string `name:"workload" short:"w" required:"" help:"Workload ID, <namespace>:<kind>/<name>, or <kind>/<name> in --namespace; repeatable: several make one commit."`
	Namespace string   `name:"namespace" short:"n" default:"default" help:"Namespace of workloads given as <kind>/<name>."`
	Message   string   `name:"message" short:"m" help:"Why: the first lines of the commit message."`
	User      string   `name:"user" help:"Who: the commit's author, 'Name <email>' (default: from git config)."`
}

// ids expands the workload names into resource IDs.
func (w workloadFlags) ids() ([]resource.ID, error) {
	var out []resource.ID
	for _, s := range w.Workload {
		if !strings.Contains(s, ":") {
			s = w.Namespace + ":" + s
		}
		id, err := resource.ParseID(s)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

func (w workloadFlags) user() string {
	if w.User != "" {
		return w.User
	}
	name, _ := exec.Command("git", "config", "user.name").Output()
	email, _ := exec.Command("git", "config", "user.email").Output()
	n, e := strings.TrimSpace(string(name)), strings.TrimSpace(string(email))
	switch {
	case n != "" && e != "":
		return n + " <" + e + ">"
	case n != "":
		return n
	}
	return ""
}

type automateCmd struct{ workloadFlags }
type deautomateCmd struct{ workloadFlags }
type lockCmd struct{ workloadFlags }
type unlockCmd struct{ workloadFlags }

func (c automateCmd) Run(g *globals) error {
	return c.update(g, api.PolicyUpdate{Add: api.PolicySet{resource.PolicyAutomated: "true"}})
}

func (c deautomateCmd) Run(g *globals) error {
	return c.update(g, api.PolicyUpdate{Remove: api.PolicySet{resource.PolicyAutomated: "true"}})
}

func (c lockCmd) Run(g *globals) error {
	return c.update(g, api.PolicyUpdate{Add: c.lock()})
}

func (w workloadFlags) lock() api.PolicySet {
	set := api.PolicySet{resource.PolicyLocked: "true"}
	if u := w.user(); u != "" {
		set[resource.PolicyLockedUser] = u
	}
	if w.Message != "" {
		set[resource.PolicyLockedMsg] = w.Message
	}
	return set
}

func (c unlockCmd) Run(g *globals) error {
	return c.update(g, api.PolicyUpdate{Remove: api.PolicySet{resource.PolicyLocked: "true", resource.PolicyLockedMsg: "true", resource.PolicyLockedUser: "true"}})
}

type policyCmd struct {
	workloadFlags
	Automate   bool     `name:"automate" help:"Turn automated releases on."`
	Deautomate bool     `name:"deautomate" help:"Turn automated releases off."`
	Lock       bool     `name:"lock" help:"Lock the workloads."`
	Unlock     bool     `name:"unlock" help:"Unlock the workloads."`
	Tag        []string `name:"tag" help:"<container>=<filter>: the tag filter of a container (glob:, semver:, regex:); <container>=* removes it. Repeatable."`
	TagAll     string   `name:"tag-all" help:"A tag filter for every container; * removes them all."`
}

func (c policyCmd) Run(g *globals) error {
	switch {
	case c.Automate && c.Deautomate:
		return fmt.Errorf("give --automate or --deautomate, not both")
	case c.Lock && c.Unlock:
		return fmt.Errorf("give --lock or --unlock, not both")
	}
	u := api.PolicyUpdate{Add: api.PolicySet{}, Remove: api.PolicySet{}}
	if c.Automate {
		u.Add[resource.PolicyAutomated] = "true"
	}
	if c.Deautomate {
		u.Remove[resource.PolicyAutomated] = "true"
	}
	if c.Lock {
		for k, v := range c.lock() {
			u.Add[k] = v
		}
	}
	if c.Unlock {
		for _, k := range []string{resource.PolicyLocked, resource.PolicyLockedMsg, resource.PolicyLockedUser} {
			u.Remove[k] = "true"
		}
	}
	for _, t := range c.Tag {
		container, f, ok := strings.Cut(t, "=")
		if !ok || container == "" || f == "" {
			return fmt.Errorf("--tag %q: want <container>=<filter>, e.g. --tag app=semver:~1.2", t)
		}
		if f == "*" || f == "glob:*" {
			u.Remove[resource.PolicyTagPrefix+container] = "true"
		} else {
			u.Add[resource.PolicyTagPrefix+container] = prefixed(f)
		}
	}
	if c.TagAll != "" {
		u.Add[resource.PolicyTagAll] = prefixed(c.TagAll)
	}
	if len(u.Add)+len(u.Remove) == 0 {
		return fmt.Errorf("nothing to change: give --automate, --deautomate, --lock, --unlock, --tag or --tag-all")
	}
	return c.update(g, u)
}

// prefixed gives a filter its kind, as Flux v1's fluxctl does: 2.3.* is glob:2.3.*.
func prefixed(f string) string {
	for _, p := range []string{"glob:", "semver:", "regex:", "regexp:"} {
		if strings.HasPrefix(f, p) {
			return f
		}
	}
	return "glob:" + f
}

// update sends one policy update for every workload, waits for the job,
// prints what it did and the commit, then waits until it is applied.
func (w workloadFlags) update(g *globals, u api.PolicyUpdate) error {
	ids, err := w.ids()
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	updates := api.PolicyUpdates{}
	for _, id := range ids {
		updates[id] = u
	}
	id, err := c.UpdateManifests(ctx, api.Spec{Type: api.UpdatePolicy, Cause: api.Cause{Message: w.Message, User: w.user()}, Spec: updates})
	if err != nil {
		return err
	}
	return finishJob(ctx, g, c, id)
}

// finishJob waits for a job, prints its result and commit, and waits until
// the commit is applied.
func finishJob(ctx context.Context, g *globals, c *client.Client, id string) error {
	st, err := waitJob(ctx, c, id)
	if err != nil {
		return err
	}
	if g.Output == "json" {
		if err := printJSON(st); err != nil {
			return err
		}
	} else {
		printResult(st.Result.Result)
	}
	rev := st.Result.Revision
	if rev == "" {
		fmt.Fprintln(os.Stderr, "Nothing to do: the manifests already say so.")
		return nil
	}
	fmt.Fprintf(os.Stderr, "Commit pushed:\t%s\n", short(rev))
	if err := waitApplied(ctx, c, rev); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Commit applied:\t%s\n", short(rev))
	return nil
}

func printResult(r api.UpdateResult) {
	ids := make([]resource.ID, 0, len(r))
	for id := range r {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "WORKLOAD\tSTATUS\tUPDATES")
	for _, id := range ids {
		res := r[id]
		detail := res.Error
		for _, c := range res.PerContainer {
			detail += fmt.Sprintf("%s: %s -> %s ", c.Container, c.Current, c.Target)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", id, res.Status, strings.TrimSpace(detail))
	}
	w.Flush()
}

type checkReleaseCmd struct {
	ID string `arg:"" name:"job-id" help:"The job's ID, as printed when it started."`
}

func (c checkReleaseCmd) Run(g *globals) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	st, err := cl.JobStatus(ctx, c.ID)
	if err != nil {
		return err
	}
	if g.Output == "json" {
		return printJSON(st)
	}
	fmt.Printf("Job %s: %s\n", c.ID, st.StatusString)
	if st.Err != "" {
		fmt.Printf("Error: %s\n", st.Err)
	}
	if st.Result.Revision != "" {
		fmt.Printf("Commit: %s\n", st.Result.Revision)
	}
	if len(st.Result.Result) > 0 {
		printResult(st.Result.Result)
	}
	if st.StatusString == api.JobFailed {
		return fmt.Errorf("job %s failed", c.ID)
	}
	return nil
}
