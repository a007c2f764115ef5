// Command fluxd-demo runs the local environment `make demo` shows: a real
// Kubernetes control plane, a git server over ssh holding an example repo, a
// container registry with a few images, and memcached. With --fluxd it also
// runs fluxd against them. It prints how to reach each part and stops
// everything on Ctrl-C.
package main

import (
	"context"
	"embed"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fluxd/fluxd/e2e/harness"
)

//go:embed example/*.yaml
var example embed.FS

func main() {
	fluxd := flag.String("fluxd", "", "path to a fluxd binary to run against the environment")
	keep := flag.Bool("keep", false, "keep the environment's directory on exit")
	flag.Parse()
	if err := run(*fluxd, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(fluxdBin string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "fluxd-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	fmt.Printf("starting the local environment in %s ...\n", dir)
	start := time.Now()
	env, err := harness.StartEnv(ctx, dir)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\nstopping ...")
		env.Stop()
		fmt.Println("stopped cleanly")
	}()
	repo, err := seedRepo(ctx, env)
	if err != nil {
		return err
	}
	for _, img := range []string{"demo/podinfo:1.0.0", "demo/podinfo:1.0.1", "demo/podinfo:1.1.0", "demo/cart:2.3.0", "demo/cart:2.4.0"} {
		r, tag, _ := strings.Cut(img, ":")
		if _, _, err := env.Registry.PushRandomImage(ctx, r, tag); err != nil {
			return err
		}
	}
	fmt.Printf("up in %s\n\n", time.Since(start).Round(100*time.Millisecond))

	var daemon *harness.Process
	if fluxdBin != "" {
		if fluxdBin, err = filepath.Abs(fluxdBin); err != nil {
			return err
		}
		if daemon, err = startFluxd(ctx, env, repo, fluxdBin, dir); err != nil {
			return err
		}
		defer daemon.Stop(10 * time.Second)
	}
	printGuide(env, repo, dir, daemon)
	if daemon != nil {
		select {
		case <-ctx.Done():
		case <-daemonExit(daemon):
			return fmt.Errorf("fluxd exited; its log:\n%s", daemon.Tail(4000))
		}
		return nil
	}
	<-ctx.Done()
	return nil
}

func daemonExit(p *harness.Process) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for {
			if done, _ := p.Exited(); done {
				close(ch)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return ch
}

// seedRepo creates the example repo on the git server and pushes the example
// manifests to it with the git CLI, over ssh.
func seedRepo(ctx context.Context, env *harness.Env) (*harness.GitRepo, error) {
	repo, err := env.Git.NewRepo("cluster", "main")
	if err != nil {
		return nil, err
	}
	work := filepath.Join(env.Dir, "seed")
	if err := os.MkdirAll(filepath.Join(work, "deploy"), 0o755); err != nil {
		return nil, err
	}
	err = fs.WalkDir(example, "example", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := example.ReadFile(path)
		if err != nil {
			return err
		}
		b = []byte(strings.ReplaceAll(string(b), "{{REGISTRY}}", env.Registry.Host))
		return os.WriteFile(filepath.Join(work, "deploy", filepath.Base(path)), b, 0o644)
	})
	if err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "."},
		{"-c", "user.name=Demo", "-c", "user.email=demo@example.com", "commit", "-q", "-m", "Add the demo workloads"},
		{"push", "-q", repo.SSHURL, "main"},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), env.Git.GitEnv()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return repo, nil
}

func startFluxd(ctx context.Context, env *harness.Env, repo *harness.GitRepo, bin, dir string) (*harness.Process, error) {
	d := filepath.Join(dir, "fluxd")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	return harness.StartProcess(d, "fluxd", bin,
		"--kubeconfig", env.Kube.Kubeconfig,
		"--git-url", repo.SSHURL,
		"--git-branch", "main",
		"--git-path", "deploy",
		"--git-ssh-key-file", env.Git.ClientKey.PrivatePath,
		"--git-known-hosts-file", env.Git.KnownHostsPath,
		"--cluster-name", "demo",
		"--sync-garbage-collection",
		"--git-poll-interval", "5s",
		"--sync-interval", "1m",
		"--memcached", env.Memcached.Addr,
		"--registry-insecure-host", env.Registry.Host,
		"--registry-poll-interval", "10s",
		"--listen", "127.0.0.1:3030",
		"--k8s-secret-namespace", "default",
		"--log-format", "console",
	)
}

func printGuide(env *harness.Env, repo *harness.GitRepo, dir string, daemon *harness.Process) {
	gitSSH := ""
	for _, e := range env.Git.GitEnv() {
		if v, ok := strings.CutPrefix(e, "GIT_SSH_COMMAND="); ok {
			gitSSH = v
		}
	}
	kubectl := filepath.Join(env.Kube.BinDir, "kubectl")
	fmt.Printf(`The local environment is up. Each part runs on loopback:

  Kubernetes   %s   (etcd, kube-apiserver, kube-controller-manager)
               export KUBECONFIG=%s
               %s get all -n demo
  git (ssh)    %s   (branch main, manifests under deploy/)
               export GIT_SSH_COMMAND=%q
               git clone %s demo-repo
  registry     http://%s   (images demo/podinfo and demo/cart)
               curl http://%s/v2/_catalog
  memcached    %s
`, env.Kube.Host, env.Kube.Kubeconfig, kubectl, repo.SSHURL, gitSSH, repo.SSHURL,
		env.Registry.Host, env.Registry.Host, env.Memcached.Addr)
	if daemon != nil {
		fmt.Printf(`
  fluxd        pid %d, syncing deploy/ every 5s, API on http://127.0.0.1:3030/api/flux   (log: %s)

Try it:
  export PATH=$PWD/bin:$PATH     # fluxctl, from the repository root
  fluxctl status
  fluxctl list-workloads -n demo
  fluxctl list-images -n demo
  fluxctl lock -w deployment/cart -n demo -m "QA freeze"     # a commit with a job note
  cd demo-repo && git pull -q && sed -i 's/LOG_LEVEL: info/LOG_LEVEL: debug/' deploy/cart-config.yaml
  git commit -am 'Debug logging for cart' && git push
  fluxctl sync     # or kill -HUP %d, or wait for the 5s poll
  %s get configmap cart-config -n demo -o yaml
  git fetch origin '+refs/notes/*:refs/notes/*' '+refs/tags/flux-sync/*:refs/tags/flux-sync/*'
  git log --notes=flux --notes=flux-sync/demo
  git show flux-sync/demo
`, daemon.Pid(), daemon.LogPath, daemon.Pid(), kubectl)
	}
	fmt.Printf("\nLogs of every part are under %s. Press Ctrl-C to stop everything.\n", dir)
}
