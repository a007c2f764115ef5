package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// apiLoad is the result of the API benchmark: GET /v11/services for every
// namespace from 16 concurrent clients, and fluxctl list-workloads.
type apiLoad struct {
	workloads  int
	requests   int
	took       time.Duration
	p50, p99   time.Duration
	fluxctlAll time.Duration
	// paced is the same load offered at apiRate requests/s in all.
	paced loadRun
}

// loadRun is one run of the load: how many requests, and their latencies.
type loadRun struct {
	requests int
	took     time.Duration
	p50, p99 time.Duration
}

// apiRate is the rate of the paced run: the target's 1,000 requests/s.
const apiRate = 1000

const (
	apiClients  = 16
	apiDuration = 5 * time.Second
)

func benchAPI(ctx context.Context, url, fluxctl string) (apiLoad, error) {
	var l apiLoad
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: apiClients}}
	get := func(count bool) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v11/services?namespace=&services=", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return 0, fmt.Errorf("GET /v11/services: %s: %s", resp.Status, b)
		}
		if !count {
			_, err := io.Copy(io.Discard, resp.Body)
			return 0, err
		}
		var ws []json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&ws); err != nil {
			return 0, err
		}
		return len(ws), nil
	}
	// Wait until the workload cache has them all.
	for deadline := time.Now().Add(time.Minute); ; {
		n, err := get(true)
		if err != nil {
			return l, err
		}
		if l.workloads = n; n >= 1000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("api: %d workloads, %d clients for %s", l.workloads, apiClients, apiDuration)
	closed, err := runLoad(get, 0)
	if err != nil {
		return l, err
	}
	l.requests, l.took, l.p50, l.p99 = closed.requests, closed.took, closed.p50, closed.p99
	logf("api: paced at %d requests/s", apiRate)
	if l.paced, err = runLoad(get, apiRate); err != nil {
		return l, err
	}
	t := time.Now()
	cmd := exec.CommandContext(ctx, fluxctl, "list-workloads", "--all-namespaces", "--url", url)
	if out, err := cmd.CombinedOutput(); err != nil {
		return l, fmt.Errorf("fluxctl list-workloads: %v\n%s", err, out)
	}
	l.fluxctlAll = time.Since(t)
	return l, nil
}

// runLoad runs apiClients clients for apiDuration. rate 0 means each
// sends its next request as soon as the last is answered; otherwise the
// clients together send rate requests a second, each on its own schedule.
func runLoad(get func(bool) (int, error), rate int) (loadRun, error) {
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
		errs = make(chan error, apiClients)
	)
	start := time.Now()
	stop := start.Add(apiDuration)
	for i := 0; i < apiClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var every time.Duration
			if rate > 0 {
				every = time.Duration(apiClients) * time.Second / time.Duration(rate)
			}
			next := start.Add(every * time.Duration(i) / apiClients)
			for time.Now().Before(stop) {
				if every > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(every)
				}
				t := time.Now()
				if _, err := get(false); err != nil {
					errs <- err
					return
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := loadRun{took: time.Since(start)}
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	r.requests = len(lats)
	if len(lats) > 0 {
		r.p50, r.p99 = lats[len(lats)/2], lats[len(lats)*99/100]
	}
	return r, nil
}

func (l apiLoad) render() string {
	var b strings.Builder
	rps := float64(l.requests) / l.took.Seconds()
	fmt.Fprintf(&b, "\nAPI: GET /v11/services for all namespaces (%d workloads), %d concurrent clients for %s, fluxd and the clients on this machine:\n\n", l.workloads, apiClients, apiDuration)
	prps := float64(l.paced.requests) / l.paced.took.Seconds()
	b.WriteString("| load | requests/s | p50 | p99 |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| as fast as answered (saturated) | %.0f | %.1f ms | %.1f ms |\n", rps, ms(l.p50), ms(l.p99))
	fmt.Fprintf(&b, "| paced at %d/s | %.0f | %.1f ms | %.1f ms |\n", apiRate, prps, ms(l.paced.p50), ms(l.paced.p99))
	fmt.Fprintf(&b, "\n`fluxctl list-workloads -a`: %.3f s.\n", l.fluxctlAll.Seconds())
	fmt.Fprintf(&b, "\nTarget: at least 1,000 requests/s (%.0f/s at saturation: %s) with p99 under 50 ms at that rate (%.1f ms: %s).\n",
		rps, pass(rps >= 1000), ms(l.paced.p99), pass(prps >= 0.95*apiRate && l.paced.p99 < 50*time.Millisecond))
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
