package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/server/client"
)

// lockRuns is how many locks the lock benchmark times.
const lockRuns = 20

// lockLoad is the time from a lock request to its commit pushed (the job
// succeeded), over lockRuns workloads of the 1,000-object repo.
type lockLoad struct {
	p50, max time.Duration
}

func benchLock(ctx context.Context, url string) (lockLoad, error) {
	var l lockLoad
	c, err := client.New(url, "", nil)
	if err != nil {
		return l, err
	}
	var took []time.Duration
	for i := 0; i < lockRuns; i++ {
		id := resource.MakeID(fmt.Sprintf("flx-%02d", i), "deployment", "app-00")
		start := time.Now()
		job, err := c.UpdateManifests(ctx, api.Spec{Type: api.UpdatePolicy, Cause: api.Cause{User: "Bench <bench@example.com>"},
			Spec: api.PolicyUpdates{id: {Add: api.PolicySet{"locked": "true", "locked_msg": "bench"}}}})
		if err != nil {
			return l, fmt.Errorf("lock %s: %w", id, err)
		}
		for {
			st, err := c.JobStatus(ctx, job)
			if err != nil {
				return l, err
			}
			if st.StatusString == api.JobFailed {
				return l, fmt.Errorf("lock %s: %s", id, st.Err)
			}
			if st.StatusString == api.JobSucceeded {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	l.p50, l.max = took[len(took)/2], took[len(took)-1]
	return l, nil
}

func (l lockLoad) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nPolicy jobs: a lock request to its commit pushed over ssh (validate at the fetched head, record the job in the journal, fetch, edit, commit, push the commit and its note), %d workloads of the 1,000-object repo, one after another:\n\n", lockRuns)
	b.WriteString("| p50 | max |\n|---|---|\n")
	fmt.Fprintf(&b, "| %.0f ms | %.0f ms |\n", ms(l.p50), ms(l.max))
	fmt.Fprintf(&b, "\nTarget: p50 under 300 ms (%.0f ms: %s).\n", ms(l.p50), pass(l.p50 < 300*time.Millisecond))
	return b.String()
}
