package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxd/fluxd/gitstate"
	"github.com/fluxd/fluxd/gitstate/adapt"
	"github.com/fluxd/fluxd/kube"
	"github.com/fluxd/fluxd/notes"
	"github.com/fluxd/fluxd/server"
	"github.com/fluxd/fluxd/server/api"
	"github.com/fluxd/fluxd/sync"
	"github.com/fluxd/fluxd/sync/jobs"
)

// run wires the daemon together and runs it until ctx is done.
func run(ctx context.Context, f *flags) error {
	log := newLogger(f)
	log.Info().Str("version", version).Str("git_url", redactURL(f.GitURL)).Str("branch", f.GitBranch).
		Strs("paths", f.GitPath).Bool("readonly", f.GitReadonly).Bool("gc", f.SyncGarbageCollection).Msg("fluxd starting")

	cluster, err := kube.Connect(f.Kubeconfig, kube.WithWorkers(f.SyncWorkers))
	if err != nil {
		return fmt.Errorf("connect to Kubernetes: %w", err)
	}
	name, err := clusterName(ctx, f, cluster, log)
	if err != nil {
		return err
	}

	key, keys, err := loadDeployKey(ctx, f, cluster)
	if err != nil {
		return err
	}
	repo, cleanup, err := openRepo(f, key, log)
	if err != nil {
		return err
	}
	defer cleanup()

	metrics, err := server.NewMetrics(nil)
	if err != nil {
		return err
	}
	identity := gitstate.Signature{Name: f.GitUser, Email: f.GitEmail}
	syncOpts := kube.SyncOptions{GCMark: kube.GCMark(name, f.GitURL, f.GitBranch, f.GitPath), Prune: f.SyncGarbageCollection}
	loop, err := sync.New(sync.Config{
		Cluster:      name,
		Paths:        f.GitPath,
		ReadOnly:     f.GitReadonly,
		PollInterval: f.GitPollInterval,
		SyncInterval: f.SyncInterval,
	},
		fetchMetrics{&adapt.SyncRepo{Repo: repo, Identity: identity}, metrics.ObserveFetch},
		&syncCluster{cluster: cluster, opts: syncOpts},
		sync.WithLogger(log.With().Str("loop", "sync").Logger()),
		sync.WithOnSync(metrics.ObserveSyncRecord),
	)
	if err != nil {
		return err
	}
	keys.onChange = repo.SetSSHKey
	queue, err := jobs.New(&adapt.JobsRepo{Repo: repo}, jobs.Config{
		Branch: f.GitBranch, Paths: f.GitPath, NotesRef: "refs/notes/" + f.GitNotesRef, JournalRef: notes.JobJournalRef(name),
		Committer: jobs.Signature{Name: f.GitUser, Email: f.GitEmail}, ReadOnly: f.GitReadonly,
	}, jobs.WithLogger(log.With().Str("loop", "jobs").Logger()), jobs.WithResume(resumeJob),
		jobs.WithOnDone(func(s jobs.Status) {
			metrics.ObserveJob(s.Kind, s.Finished.Sub(s.Started), s.State == jobs.Succeeded)
			loop.Trigger()
		}))
	if err != nil {
		return err
	}
	d := &daemonAPI{repo: repo, loop: loop, cluster: name, url: f.GitURL, branch: f.GitBranch, paths: f.GitPath,
		ro: f.GitReadonly, log: log.With().Str("component", "api").Logger(), jobs: newSyncJobs(), key: keys,
		policy: &policyJobs{queue: queue, repo: repo, paths: f.GitPath}}
	c := &clusterAPI{cluster: cluster, cache: cluster.NewWorkloadCache(), repo: repo, loop: loop, paths: f.GitPath,
		readOnly: f.GitReadonly, syncOpts: syncOpts}
	imgs, err := newImages(ctx, &f.Images, cluster, c, log)
	if err != nil {
		return err
	}
	d.images = imgs
	srv, err := newServer(f, d, c, imgs, metrics, log)
	if err != nil {
		return err
	}
	go triggerOnHangup(ctx, loop, log)
	log.Info().Str("cluster", name).Str("tag", notes.SyncTag(name)).Str("notes", notes.SyncNotesRef(name)).
		Str("listen", f.Listen).Msg("syncing")
	err = runAll(ctx, log, srv, loop.Run, afterFirstSync(loop, c.cache.Run), queue.Run, afterFirstSync(loop, imgs.Run))
	log.Info().Msg("fluxd stopped")
	return err
}

// newServer builds the HTTP API server.
func newServer(f *flags, d *daemonAPI, c *clusterAPI, imgs *imageAPI, metrics *server.Metrics, log zerolog.Logger) (*http.Server, error) {
	token, err := f.apiToken()
	if err != nil {
		return nil, err
	}
	opts := []server.Option{server.WithMetrics(metrics), server.WithLogger(log.With().Str("component", "http").Logger())}
	if token != "" {
		opts = append(opts, server.WithToken(token))
	}
	s, err := server.New(server.Deps{
		Version:   version,
		Notifier:  d,
		Sync:      d,
		Jobs:      d,
		Status:    d,
		Repo:      d,
		Workloads: c,
		Images:    imgs,
		Exporter:  c,
		Differ:    c,
	}, opts...)
	if err != nil {
		return nil, err
	}
	return s.HTTPServer(f.Listen), nil
}

// runAll serves HTTP and runs each component until ctx is done or one of
// them fails; then it stops the others.
func runAll(ctx context.Context, log zerolog.Logger, srv *http.Server, components ...func(context.Context) error) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", srv.Addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(components)+1)
	for _, run := range components {
		go func() { errs <- run(ctx) }()
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("http server: %w", err)
			return
		}
		errs <- nil
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving the API under /api/flux, and /metrics")
	first := <-errs
	cancel()
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdown)
	all := []error{first}
	for range components {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// loadDeployKey returns the ssh key for git: --git-ssh-key-file, or for an
// ssh URL without one, the key fluxd keeps in a Secret (made on first start).
func loadDeployKey(ctx context.Context, f *flags, cluster *kube.Cluster) ([]byte, *deployKey, error) {
	if f.GitSSHKeyFile != "" {
		key, err := readFileFlag("--git-ssh-key-file", f.GitSSHKeyFile)
		if err != nil {
			return nil, nil, err
		}
		public, err := publicKeyOf(key)
		return key, &deployKey{public: public}, err
	}
	keys := &deployKey{cluster: cluster, namespace: f.K8sSecretNamespace, name: f.K8sSecretName,
		public: api.PublicKey{Fingerprints: map[string]api.Fingerprint{}}}
	if !isSSHURL(f.GitURL) {
		return nil, keys, nil
	}
	key, err := keys.fromSecret(ctx, false)
	return key, keys, err
}

func isSSHURL(u string) bool {
	return strings.HasPrefix(u, "ssh://") || !strings.Contains(u, "://")
}

// clusterName is --cluster-name, or else the UID of kube-system, which
// stays the same for the life of the cluster.
func clusterName(ctx context.Context, f *flags, cluster *kube.Cluster, log zerolog.Logger) (string, error) {
	if f.ClusterName != "" {
		return f.ClusterName, notes.ValidateClusterName(f.ClusterName)
	}
	var (
		id  string
		err error
	)
	// The apiserver may still be starting: retry for a while.
	for wait := time.Second; ; wait = min(2*wait, 15*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		id, err = cluster.ClusterID(cctx)
		cancel()
		if err == nil {
			log.Info().Str("cluster", id).Msg("cluster name derived from the UID of the kube-system namespace (set --cluster-name to choose one)")
			return id, notes.ValidateClusterName(id)
		}
		log.Error().Err(err).Msg("cannot read the kube-system namespace to name this cluster; retrying (or set --cluster-name)")
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster name: %w", err)
		case <-time.After(wait):
		}
	}
}

// openRepo opens the local mirror, in --git-dir or a temporary directory.
func openRepo(f *flags, key []byte, log zerolog.Logger) (*gitstate.Repo, func(), error) {
	known, err := readFileFlag("--git-known-hosts-file", f.GitKnownHostsFile)
	if err != nil {
		return nil, nil, err
	}
	password, err := readFileFlag("--git-password-file", f.GitPasswordFile)
	if err != nil {
		return nil, nil, err
	}
	dir, remove := f.GitDir, func() {}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fluxd-git-"); err != nil {
			return nil, nil, err
		}
		remove = func() { os.RemoveAll(dir) }
	}
	repo, err := gitstate.Open(gitstate.Config{
		URL:    f.GitURL,
		Branch: f.GitBranch,
		Dir:    dir,
		Log:    log.With().Str("component", "git").Logger(),
		Auth: gitstate.Auth{
			SSHPrivateKey: key,
			KnownHosts:    known,
			Username:      f.GitUsername,
			Password:      strings.TrimSpace(string(password)),
		},
	})
	if err != nil {
		remove()
		return nil, nil, fmt.Errorf("open git mirror of %s: %w", redactURL(f.GitURL), err)
	}
	return repo, func() { repo.Close(); remove() }, nil
}

// triggerOnHangup syncs at once on SIGHUP, like a git notify.
func triggerOnHangup(ctx context.Context, loop *sync.Loop, log zerolog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info().Msg("SIGHUP: syncing now")
			loop.Trigger()
		}
	}
}

func newLogger(f *flags) zerolog.Logger {
	level, _ := zerolog.ParseLevel(f.LogLevel)
	var log zerolog.Logger
	if f.LogFormat == "console" {
		st, err := os.Stderr.Stat()
		tty := err == nil && st.Mode()&os.ModeCharDevice != 0
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly, NoColor: !tty})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(level).With().Timestamp().Logger()
}

// redactURL hides a password in an https URL.
func redactURL(s string) string {
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if creds, host, ok := strings.Cut(rest, "@"); ok {
			if user, _, ok := strings.Cut(creds, ":"); ok {
				return scheme + "://" + user + ":***@" + host
			}
		}
	}
	return s
}

// afterFirstSync delays run until the first sync is done (or half a minute
// passed), so the workload cache's initial LISTs do not compete with the
// first apply for the apiserver. Until then list-workloads reads the
// cluster directly.
func afterFirstSync(loop *sync.Loop, run func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		deadline := time.Now().Add(30 * time.Second)
		for loop.Status().LastRecord == nil && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
		return run(ctx)
	}
}
