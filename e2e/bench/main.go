// Command fluxd-bench measures fluxd's sync beside kubectl on one real
// control plane, in one run: a generated repo of 1,000 objects (20
// Namespaces, 400 Deployments, 300 Services, 280 ConfigMaps) applied cold,
// re-applied unchanged, and changed by a one-line commit. It prints a
// markdown table with the ratios. Then it measures the image scanner
// against the registry (images.go). `make bench` runs it; -only images
// runs the image part alone.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fluxd/fluxd/e2e/harness"
)

func main() {
	fluxd := flag.String("fluxd", "bin/fluxd", "the fluxd binary to measure")
	out := flag.String("o", "", "also write the report to this file")
	only := flag.String("only", "", "run only this part: sync (the sync beside kubectl, the API and the policy jobs) or images (the image scanner); default: every part")
	var img imagesConfig
	flag.IntVar(&img.repos, "images-repos", 200, "image repositories the image part pushes and scans")
	flag.IntVar(&img.tags, "images-tags", 100, "tags per image repository")
	flag.Float64Var(&img.rps, "images-rps", 100, "--registry-rps of the image part's fluxd")
	flag.Parse()
	if *only != "" && *only != "images" && *only != "sync" {
		fmt.Fprintf(os.Stderr, "bench: -only %q: the parts are sync and images\n", *only)
		os.Exit(2)
	}
	if img.repos < 1 || img.tags < 1 || !(img.rps > 0) {
		fmt.Fprintln(os.Stderr, "bench: -images-repos, -images-tags and -images-rps must be above 0")
		os.Exit(2)
	}
	if err := run(*fluxd, *out, *only, img); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// fluxdArgs are the flags of every fluxd the bench runs: the repo over
// ssh, the control plane, JSON logs, and hour-long intervals, so that only
// what the bench asks for happens.
func fluxdArgs(env *harness.Env, gitURL, cluster, listen string) []string {
	return []string{
		"--kubeconfig", env.Kube.Kubeconfig,
		"--git-url", gitURL,
		"--git-ssh-key-file", env.Git.ClientKey.PrivatePath,
		"--git-known-hosts-file", env.Git.KnownHostsPath,
		"--cluster-name", cluster,
		"--git-poll-interval", "1h",
		"--sync-interval", "1h",
		"--log-format", "json",
		"--listen", listen,
	}
}

// noopRuns is how many no-op re-syncs of fluxd are timed.
const noopRuns = 5

// counts of the generated objects, per namespace.
const (
	namespaces = 20
	deploys    = 20 // 400
	services   = 15 // 300
	configMaps = 14 // 280
)

type result struct {
	name     string
	cold     time.Duration
	noop     time.Duration
	change   time.Duration // one-line commit to applied
	rss      int64         // peak, KiB
	coldNote string
}

func run(fluxdBin, outPath, only string, img imagesConfig) error {
	fluxdBin, err := filepath.Abs(fluxdBin)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	dir, err := os.MkdirTemp("", "fluxd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env, err := harness.StartEnv(ctx, dir)
	if err != nil {
		return err
	}
	defer env.Stop()
	logf("environment up in %s", dir)

	var report string
	if only != "images" {
		if report, err = benchSync(ctx, env, dir, fluxdBin); err != nil {
			return err
		}
	}
	// When the image part fails, the sync part's report is still given.
	var imagesErr error
	if only != "sync" {
		var images imagesResult
		if images, imagesErr = benchImages(ctx, env, dir, fluxdBin, img); imagesErr == nil {
			report += images.render()
		}
	}
	fmt.Print(report)
	if outPath != "" {
		if err := os.WriteFile(outPath, []byte(report), 0o644); err != nil {
			return err
		}
	}
	if imagesErr != nil {
		return fmt.Errorf("images: %w", imagesErr)
	}
	return nil
}

// benchSync runs the sync parts: kubectl and fluxd on the 1,000 objects,
// the API and the policy jobs, and returns their report.
func benchSync(ctx context.Context, env *harness.Env, dir, fluxdBin string) (string, error) {
	var results []result
	for _, mode := range []struct {
		name, prefix string
		args         []string
	}{
		{"kubectl apply (client-side)", "kcs", nil},
		{"kubectl apply --server-side", "kss", []string{"--server-side"}},
	} {
		r, err := benchKubectl(ctx, env, dir, mode.name, mode.prefix, mode.args)
		if err != nil {
			return "", err
		}
		results = append(results, r)
	}
	var (
		load  apiLoad
		locks lockLoad
	)
	r, err := benchFluxd(ctx, env, dir, fluxdBin, func(url string) error {
		var err error
		if load, err = benchAPI(ctx, url, filepath.Join(filepath.Dir(fluxdBin), "fluxctl")); err != nil {
			return err
		}
		logf("locks: %d policy jobs", lockRuns)
		locks, err = benchLock(ctx, url)
		return err
	})
	if err != nil {
		return "", err
	}
	results = append(results, r)
	return render(results) + load.render() + locks.render(), nil
}

// generate writes the 1,000 objects, one file each, under dir/<prefix>.
func generate(dir, prefix string) (string, error) {
	root := filepath.Join(dir, prefix)
	write := func(p, s string) error {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(s), 0o644)
	}
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("%s-%02d", prefix, n)
		d := filepath.Join(root, ns)
		if err := write(filepath.Join(d, "namespace.yaml"), fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)); err != nil {
			return "", err
		}
		for i := 0; i < deploys; i++ {
			if err := write(filepath.Join(d, fmt.Sprintf("deploy-%02d.yaml", i)), deployment(ns, i)); err != nil {
				return "", err
			}
		}
		for i := 0; i < services; i++ {
			s := fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: app-%02d\n  namespace: %s\nspec:\n  selector:\n    app: app-%02d\n  ports:\n    - port: 80\n      targetPort: 8080\n", i, ns, i)
			if err := write(filepath.Join(d, fmt.Sprintf("svc-%02d.yaml", i)), s); err != nil {
				return "", err
			}
		}
		for i := 0; i < configMaps; i++ {
			if err := write(filepath.Join(d, fmt.Sprintf("cm-%02d.yaml", i)), configMap(ns, i, "info")); err != nil {
				return "", err
			}
		}
	}
	return root, nil
}

func deployment(ns string, i int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%02[2]d
  namespace: %[1]s
  labels:
    app: app-%02[2]d
spec:
  replicas: 1
  selector:
    matchLabels:
      app: app-%02[2]d
  template:
    metadata:
      labels:
        app: app-%02[2]d
    spec:
      containers:
        - name: app
          image: registry.example.com/app-%02[2]d:1.0.%[2]d
          ports:
            - containerPort: 8080
          resources:
            requests: {cpu: 10m, memory: 16Mi}
`, ns, i)
}

func configMap(ns string, i int, level string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-%02d\n  namespace: %s\ndata:\n  LOG_LEVEL: %s\n  INDEX: \"%d\"\n", i, ns, level, i)
}

func benchKubectl(ctx context.Context, env *harness.Env, dir, name, prefix string, extra []string) (result, error) {
	root, err := generate(dir, prefix)
	if err != nil {
		return result{}, err
	}
	apply := func() (time.Duration, error) {
		// Namespaces first, as a user would (kubectl does not order them).
		start := time.Now()
		if out, err := env.Kube.Kubectl(ctx, append([]string{"apply", "-R", "-f", root}, extra...)...); err != nil {
			return 0, fmt.Errorf("%s: %v\n%s", name, err, tail(out))
		}
		return time.Since(start), nil
	}
	// kubectl cannot create objects in a namespace it creates in the same
	// run, so the namespaces are created first and not timed.
	for n := 0; n < namespaces; n++ {
		if _, err := env.Kube.Kubectl(ctx, "apply", "-f", filepath.Join(root, fmt.Sprintf("%s-%02d", prefix, n), "namespace.yaml")); err != nil {
			return result{}, err
		}
	}
	r := result{name: name, coldNote: "namespaces made beforehand"}
	logf("%s: cold", name)
	if r.cold, err = apply(); err != nil {
		return r, err
	}
	logf("%s: no-op", name)
	if r.noop, err = apply(); err != nil {
		return r, err
	}
	// One-line change: the apply of the whole set, as a GitOps loop that
	// runs kubectl would do.
	if err := os.WriteFile(filepath.Join(root, prefix+"-00", "cm-00.yaml"), []byte(configMap(prefix+"-00", 0, "debug")), 0o644); err != nil {
		return r, err
	}
	logf("%s: one-line change", name)
	if r.change, err = apply(); err != nil {
		return r, err
	}
	return r, nil
}

func benchFluxd(ctx context.Context, env *harness.Env, dir, bin string, whileRunning func(url string) error) (result, error) {
	r := result{name: "fluxd"}
	port, err := harness.FreePort()
	if err != nil {
		return r, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	root, err := generate(dir, "flx")
	if err != nil {
		return r, err
	}
	remote, err := env.Git.NewRepo("bench", "main")
	if err != nil {
		return r, err
	}
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=Bench", "-c", "user.email=bench@example.com"}, args...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env.Git.GitEnv()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "1,000 objects"}, {"push", "-q", remote.SSHURL, "main"}} {
		if err := git(args...); err != nil {
			return r, err
		}
	}
	fdir := filepath.Join(dir, "fluxd")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		return r, err
	}
	start := time.Now()
	p, err := harness.StartProcess(fdir, "fluxd", bin, append(fluxdArgs(env, remote.SSHURL, "bench", listen),
		"--sync-garbage-collection",
		// The generated images name a registry that does not exist; the
		// scanner's retries against it are not what this measures.
		"--registry-exclude-image", "registry.example.com/*",
	)...)
	if err != nil {
		return r, err
	}
	defer p.Stop(10 * time.Second)
	syncs := func() []syncLine { return readSyncs(p.LogPath) }
	waitSync := func(n int) (syncLine, error) {
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) {
			if s := syncs(); len(s) >= n {
				return s[n-1], nil
			}
			if done, err := p.Exited(); done {
				return syncLine{}, fmt.Errorf("fluxd exited (%v):\n%s", err, p.Tail(3000))
			}
			time.Sleep(5 * time.Millisecond)
		}
		return syncLine{}, fmt.Errorf("no sync %d after 5m:\n%s", n, p.Tail(3000))
	}
	logf("fluxd: cold")
	s, err := waitSync(1)
	if err != nil {
		return r, err
	}
	if s.Applied != 1000 {
		return r, fmt.Errorf("cold sync applied %d objects, want 1000 (failed %d)", s.Applied, s.Failed)
	}
	r.cold = time.Duration(s.MS) * time.Millisecond
	r.coldNote = fmt.Sprintf("namespaces included; %.2f s from process start", time.Since(start).Seconds())

	// Let the caches fluxd starts after its first sync (workloads, pull
	// secrets, the registry scanner) fill, so the re-sync is measured in a
	// steady state.
	time.Sleep(5 * time.Second)

	// No-op: a commit that changes no manifest makes fluxd sync the whole
	// set again. One sync varies by a third from run to run on a small
	// machine: the median of noopRuns is reported, with the spread.
	logf("fluxd: no-op, %d times", noopRuns)
	var noops []time.Duration
	for i := 0; i < noopRuns; i++ {
		if err := os.WriteFile(filepath.Join(root, "README.md"), []byte(fmt.Sprintf("bench %d\n", i)), 0o644); err != nil {
			return r, err
		}
		for _, args := range [][]string{{"add", "."}, {"commit", "-q", "-m", "readme"}, {"push", "-q", remote.SSHURL, "main"}} {
			if err := git(args...); err != nil {
				return r, err
			}
		}
		_ = p.Signal(syscall.SIGHUP)
		if s, err = waitSync(2 + i); err != nil {
			return r, err
		}
		if s.Unchanged != 1000 {
			return r, fmt.Errorf("no-op sync: %d unchanged, %d applied, want 1000 unchanged", s.Unchanged, s.Applied)
		}
		noops = append(noops, time.Duration(s.MS)*time.Millisecond)
		// Let fluxd finish pushing that sync's record, so the next
		// measurement starts from an idle daemon rather than behind a push.
		if err := waitTagAtHead(ctx, root, remote.Path); err != nil {
			return r, err
		}
	}
	slices.Sort(noops)
	r.noop = noops[len(noops)/2]
	r.coldNote += fmt.Sprintf("; no-op: median of %d, %.3f–%.3f s", noopRuns, noops[0].Seconds(), noops[len(noops)-1].Seconds())

	// One-line commit to applied, once fluxd is told of the push.
	logf("fluxd: one-line change")
	cs, err := kubernetes.NewForConfig(env.Kube.RESTConfig())
	if err != nil {
		return r, err
	}
	if err := os.WriteFile(filepath.Join(root, "flx-00", "cm-00.yaml"), []byte(configMap("flx-00", 0, "debug")), 0o644); err != nil {
		return r, err
	}
	for _, args := range [][]string{{"add", "."}, {"commit", "-q", "-m", "debug"}, {"push", "-q", remote.SSHURL, "main"}} {
		if err := git(args...); err != nil {
			return r, err
		}
	}
	told := time.Now()
	_ = p.Signal(syscall.SIGHUP)
	for {
		cm, err := cs.CoreV1().ConfigMaps("flx-00").Get(ctx, "config-00", metav1.GetOptions{})
		if err == nil && cm.Data["LOG_LEVEL"] == "debug" {
			break
		}
		if time.Since(told) > time.Minute {
			return r, fmt.Errorf("the one-line change was not applied in a minute:\n%s", p.Tail(3000))
		}
		time.Sleep(2 * time.Millisecond)
	}
	r.change = time.Since(told)
	if _, err := waitSync(2 + noopRuns); err != nil {
		return r, err
	}
	r.rss = peakRSS(p.Pid())
	if err := whileRunning("http://" + listen + "/api/flux"); err != nil {
		return r, err
	}
	return r, nil
}

type syncLine struct {
	Message   string `json:"message"`
	MS        int64  `json:"ms"`
	Applied   int    `json:"applied"`
	Unchanged int    `json:"unchanged"`
	Failed    int    `json:"failed"`
}

func readSyncs(path string) []syncLine {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []syncLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l syncLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "sync done" {
			out = append(out, l)
		}
	}
	return out
}

// peakRSS reads VmHWM, the peak resident set, in KiB.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}

func render(rs []result) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Sync of 1,000 objects (20 Namespaces, 400 Deployments, 300 Services, 280 ConfigMaps)\n")
	fmt.Fprintf(&b, "on one kube-apiserver v1.34.4 + etcd v3.6, %s, %d CPUs, %s/%s, %s, %s.\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString("| tool | cold | no-op re-sync | one-line change applied | peak RSS | note |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		rss := "–"
		if r.rss > 0 {
			rss = fmt.Sprintf("%.0f MiB", float64(r.rss)/1024)
		}
		fmt.Fprintf(&b, "| %s | %.2f s | %.3f s | %.3f s | %s | %s |\n", r.name, r.cold.Seconds(), r.noop.Seconds(), r.change.Seconds(), rss, r.coldNote)
	}
	f, ssa, csa := rs[len(rs)-1], rs[1], rs[0]
	fmt.Fprintf(&b, "\nRatios (peer time / fluxd time; higher is better for fluxd):\n\n")
	fmt.Fprintf(&b, "| against | cold | no-op | one-line change |\n|---|---|---|---|\n")
	for _, peer := range []result{ssa, csa} {
		fmt.Fprintf(&b, "| %s | %.1fx | %.0fx | %.0fx |\n", peer.name, ratio(peer.cold, f.cold), ratio(peer.noop, f.noop), ratio(peer.change, f.change))
	}
	fmt.Fprintf(&b, "\nTargets: cold at least 2x faster than kubectl --server-side (%.1fx: %s); no-op under 0.3 s (%.3f s: %s); one-line change under 1 s (%.3f s: %s); RSS under 150 MiB (%.0f MiB: %s).\n",
		ratio(ssa.cold, f.cold), pass(ratio(ssa.cold, f.cold) >= 2), f.noop.Seconds(), pass(f.noop < 300*time.Millisecond),
		f.change.Seconds(), pass(f.change < time.Second), float64(f.rss)/1024, pass(f.rss > 0 && f.rss < 150*1024))
	return b.String()
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// waitTagAtHead waits until the sync tag in the bare repo at remote points
// at the work tree's head.
func waitTagAtHead(ctx context.Context, work, remote string) error {
	head, err := exec.CommandContext(ctx, "git", "-C", work, "rev-parse", "HEAD").Output()
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tag, err := exec.CommandContext(ctx, "git", "--git-dir", remote, "rev-parse", "-q", "--verify", "refs/tags/flux-sync/bench^{commit}").Output()
		if err == nil && strings.TrimSpace(string(tag)) == strings.TrimSpace(string(head)) {
			return nil
		}
	}
	return fmt.Errorf("the sync tag did not reach %s in a minute", strings.TrimSpace(string(head)))
}
