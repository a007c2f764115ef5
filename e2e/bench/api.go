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
}

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
			for time.Now().Before(stop) {
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
	l.took = time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return l, err
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	l.requests = len(lats)
	if len(lats) > 0 {
		l.p50, l.p99 = lats[len(lats)/2], lats[len(lats)*99/100]
	}
	t := time.Now()
	cmd := exec.CommandContext(ctx, fluxctl, "list-workloads", "--all-namespaces", "--url", url)
	if out, err := cmd.CombinedOutput(); err != nil {
		return l, fmt.Errorf("fluxctl list-workloads: %v\n%s", err, out)
	}
	l.fluxctlAll = time.Since(t)
	return l, nil
}

func (l apiLoad) render() string {
	var b strings.Builder
	rps := float64(l.requests) / l.took.Seconds()
	fmt.Fprintf(&b, "\nAPI: GET /v11/services for all namespaces (%d workloads), %d concurrent clients for %s, fluxd and the clients on this machine:\n\n", l.workloads, apiClients, apiDuration)
	b.WriteString("| requests/s | p50 | p99 | `fluxctl list-workloads -a` |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %.0f | %.1f ms | %.1f ms | %.3f s |\n", rps, ms(l.p50), ms(l.p99), l.fluxctlAll.Seconds())
	fmt.Fprintf(&b, "\nTarget: at least 1,000 requests/s with p99 under 50 ms (%.0f/s, %.1f ms: %s).\n", rps, ms(l.p99), pass(rps >= 1000 && l.p99 < 50*time.Millisecond))
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
