package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// KubeBinNames are the binaries a KubeBinDir must hold.
var KubeBinNames = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"}

// KubeBinDir returns the directory holding the control-plane binaries
// (built by e2e/kubebin/build.sh): $FLUXD_KUBEBIN.
func KubeBinDir() (string, error) {
	dir := os.Getenv("FLUXD_KUBEBIN")
	if dir == "" {
		return "", errors.New("FLUXD_KUBEBIN is not set: run the e2e tests via `make test`, " +
			"or set FLUXD_KUBEBIN=$(e2e/kubebin/build.sh)")
	}
	for _, b := range KubeBinNames {
		p := filepath.Join(dir, b)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("FLUXD_KUBEBIN=%s has no executable %s: rebuild it with "+
				"FLUXD_KUBEBIN=$(e2e/kubebin/build.sh), or run the tests via `make test`", dir, b)
		}
	}
	return dir, nil
}

// ServiceClusterIPRange is the apiserver's --service-cluster-ip-range. A /12
// leaves room for a million Services; the `kubernetes` Service gets 10.96.0.1.
const ServiceClusterIPRange = "10.96.0.0/12"

// StartupTimes records how long each part of a control plane took to become
// ready, measured from the start of StartControlPlane.
type StartupTimes struct {
	Files             time.Duration // certificates, keys, token
	Etcd              time.Duration // etcd answers /health
	APIServer         time.Duration // kube-apiserver answers /readyz
	ControllerManager time.Duration // the `default` ServiceAccount exists
}

// ControlPlane is a real etcd, kube-apiserver and kube-controller-manager on
// loopback ports, with no kubelet, scheduler or container runtime: objects
// are stored and reconciled by the controllers, but no Pod ever runs.
type ControlPlane struct {
	Dir        string // work dir: certs, kubeconfig, logs, etcd data
	BinDir     string
	Host       string // https://127.0.0.1:<port>
	Token      string // admin bearer token (system:masters)
	CAFile     string // CA that signed the serving cert
	Kubeconfig string // path to a kubeconfig file for clients (kubectl, fluxd --kubeconfig)
	EtcdURL    string // http://127.0.0.1:<port>, etcd's client URL
	Startup    StartupTimes

	caPEM []byte

	mu      sync.Mutex
	stopped bool
	etcd    *Process
	apisrv  *Process
	kcm     *Process
}

// StartControlPlane starts etcd, kube-apiserver and kube-controller-manager
// from binDir, with all state, certificates and logs under dir, and returns
// once the apiserver is ready and the controller manager has started its
// controllers. ctx bounds the startup only; the processes run until Stop. On
// any failure it stops what it started.
func StartControlPlane(ctx context.Context, binDir, dir string) (_ *ControlPlane, err error) {
	start := time.Now()
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files, err := writeControlPlaneFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("control plane: generate certificates: %w", err)
	}
	c := &ControlPlane{
		Dir:        dir,
		BinDir:     binDir,
		Token:      files.Token,
		CAFile:     files.CACert,
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		caPEM:      files.CAPEM,
	}
	c.Startup.Files = time.Since(start)
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	c.Startup.Etcd = time.Since(start)

	hc, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	defer hc.CloseIdleConnections()
	if err := c.startAPIServer(ctx, files, hc); err != nil {
		return nil, err
	}
	c.Startup.APIServer = time.Since(start)

	if err := c.writeKubeconfig(); err != nil {
		return nil, fmt.Errorf("control plane: write kubeconfig: %w", err)
	}
	if err := c.startControllerManager(ctx, files, hc); err != nil {
		return nil, err
	}
	c.Startup.ControllerManager = time.Since(start)
	return c, nil
}

// portRetries is how often a part is restarted on fresh ports when a port picked
// by FreePort was taken by someone else before the part could bind it.
const portRetries = 3

// startOnFreePorts starts a part that listens on nports free ports, and waits
// until ready succeeds. If the part fails because a port was taken in the
// meantime, it tries again with new ports.
func startOnFreePorts(ctx context.Context, dir, name, bin string, nports int,
	args func(ports []int) []string, ready func(ctx context.Context, p *Process, ports []int) error,
) (*Process, []int, error) {
	var lastErr error
	for attempt := 0; attempt < portRetries; attempt++ {
		ports := make([]int, nports)
		for i := range ports {
			p, err := FreePort()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: free port: %w", name, err)
			}
			ports[i] = p
		}
		p, err := StartProcess(dir, name, bin, args(ports)...)
		if err != nil {
			return nil, nil, err
		}
		err = ready(ctx, p, ports)
		if err == nil {
			return p, ports, nil
		}
		p.Stop(5 * time.Second)
		lastErr = err
		if !strings.Contains(p.Tail(16000), "address already in use") || ctx.Err() != nil {
			break
		}
		appendToLog(p.LogPath, fmt.Sprintf("\n--- harness: a port was taken, restarting %s on new ports ---\n", name))
	}
	return nil, nil, lastErr
}

func appendToLog(path, msg string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	_, _ = f.WriteString(msg)
	_ = f.Close()
}

func (c *ControlPlane) startEtcd(ctx context.Context) error {
	dataDir := filepath.Join(c.Dir, "etcd-data")
	args := func(ports []int) []string {
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		return []string{
			"--name=default",
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=default=" + peer,
			"--initial-cluster-state=new",
			"--unsafe-no-fsync",
			// A single member on loopback: with the default timings
			// (100ms/1000ms) electing itself takes up to a second.
			"--heartbeat-interval=10",
			"--election-timeout=100",
			"--log-level=warn",
		}
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	ready := func(ctx context.Context, p *Process, ports []int) error {
		url := "http://127.0.0.1:" + strconv.Itoa(ports[0]) + "/health"
		return WaitFor(ctx, p, 30*time.Second, func(ctx context.Context) error {
			body, err := httpGet200(ctx, hc, url, "")
			if err != nil {
				return err
			}
			if !strings.Contains(body, `"health":"true"`) {
				return fmt.Errorf("GET %s: %s", url, body)
			}
			return nil
		})
	}
	p, ports, err := startOnFreePorts(ctx, c.Dir, "etcd", filepath.Join(c.BinDir, "etcd"), 2, args, ready)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	c.setProc(&c.etcd, p)
	c.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	return nil
}

func (c *ControlPlane) startAPIServer(ctx context.Context, f *controlPlaneFiles, hc *http.Client) error {
	args := func(ports []int) []string {
		return []string{
			"--etcd-servers=" + c.EtcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
			"--tls-cert-file=" + f.ServeCert,
			"--tls-private-key-file=" + f.ServeKey,
			"--client-ca-file=" + f.CACert,
			"--token-auth-file=" + f.TokenFile,
			"--authorization-mode=RBAC",
			"--service-cluster-ip-range=" + ServiceClusterIPRange,
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + f.SAPub,
			"--service-account-signing-key-file=" + f.SAKey,
			"--disable-admission-plugins=ServiceAccount",
			"--allow-privileged=true",
			"--profiling=false",
			// Without priority and fairness, the plain in-flight limits
			// apply; raise them so benchmarks measure the client, not the
			// apiserver's queueing.
			"--enable-priority-and-fairness=false",
			"--max-requests-inflight=2000",
			"--max-mutating-requests-inflight=1000",
		}
	}
	ready := func(ctx context.Context, p *Process, ports []int) error {
		url := "https://127.0.0.1:" + strconv.Itoa(ports[0]) + "/readyz"
		return WaitFor(ctx, p, 90*time.Second, func(ctx context.Context) error {
			_, err := httpGet200(ctx, hc, url, c.Token)
			return err
		})
	}
	p, ports, err := startOnFreePorts(ctx, c.Dir, "kube-apiserver", filepath.Join(c.BinDir, "kube-apiserver"), 1, args, ready)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	c.setProc(&c.apisrv, p)
	c.Host = "https://127.0.0.1:" + strconv.Itoa(ports[0])
	return nil
}

func (c *ControlPlane) startControllerManager(ctx context.Context, f *controlPlaneFiles, hc *http.Client) error {
	p, err := StartProcess(c.Dir, "kube-controller-manager", filepath.Join(c.BinDir, "kube-controller-manager"),
		"--kubeconfig="+c.Kubeconfig,
		"--service-account-private-key-file="+f.SAKey,
		"--root-ca-file="+f.CACert,
		"--cluster-signing-cert-file="+f.CACert,
		"--cluster-signing-key-file="+f.CAKey,
		"--leader-elect=false",
		"--controllers=*",
		"--use-service-account-credentials=false",
		// No serving: nothing scrapes its metrics or probes its health, and
		// it saves a port.
		"--secure-port=0",
		"--profiling=false",
		// The defaults (20/30) throttle garbage collection and namespace
		// deletion of thousands of objects.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	c.setProc(&c.kcm, p)
	// The serviceaccount controller creates the `default` ServiceAccount in
	// every namespace: once it exists in `default`, kcm is connected and its
	// controllers are running.
	url := c.Host + "/api/v1/namespaces/default/serviceaccounts/default"
	err = WaitFor(ctx, p, 90*time.Second, func(ctx context.Context) error {
		_, err := httpGet200(ctx, hc, url, c.Token)
		return err
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	return nil
}

func (c *ControlPlane) setProc(slot **Process, p *Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*slot = p
}

func (c *ControlPlane) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.caPEM) {
		return nil, errors.New("control plane: bad CA certificate")
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		},
	}, nil
}

// httpGet200 returns the body of a 200 response to GET url.
func httpGet200(ctx context.Context, hc *http.Client, url, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// writeKubeconfig writes the kubeconfig for the admin user. It is JSON, which
// every kubeconfig reader accepts as YAML, so no quoting can go wrong.
func (c *ControlPlane) writeKubeconfig() error {
	type named struct {
		Name    string         `json:"name"`
		Cluster map[string]any `json:"cluster,omitempty"`
		User    map[string]any `json:"user,omitempty"`
		Context map[string]any `json:"context,omitempty"`
	}
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"current-context": "e2e",
		"clusters":        []named{{Name: "e2e", Cluster: map[string]any{"server": c.Host, "certificate-authority": c.CAFile}}},
		"users":           []named{{Name: "admin", User: map[string]any{"token": c.Token}}},
		"contexts":        []named{{Name: "e2e", Context: map[string]any{"cluster": "e2e", "user": "admin", "namespace": "default"}}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.Kubeconfig, append(b, '\n'), 0o600)
}

// RESTConfig returns a new client config for the admin user, with client-side
// rate limits high enough not to be what a test or benchmark measures.
func (c *ControlPlane) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), c.caPEM...)},
		QPS:             200,
		Burst:           400,
	}
}

// Kubectl runs BinDir/kubectl against the control plane and returns its
// combined output. On failure the error includes the output.
func (c *ControlPlane) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{
		"--kubeconfig=" + c.Kubeconfig,
		// Keep the discovery cache out of $HOME and apart from other runs.
		"--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache"),
	}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), full...)
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, tail)
	}
	return out, nil
}

// Stop stops kube-controller-manager, kube-apiserver and etcd, in that
// order, and waits until they have exited. It is safe to call more than once.
func (c *ControlPlane) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	c.kcm.Stop(5 * time.Second)
	c.apisrv.Stop(10 * time.Second)
	c.etcd.Stop(5 * time.Second)
}
