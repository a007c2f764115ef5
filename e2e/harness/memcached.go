package harness

import (
	"context"
	"fmt"
	"os/user"
	"strconv"
	"time"
)

// Memcached is a memcached server on a loopback port.
type Memcached struct {
	Addr string // 127.0.0.1:<port>
	proc *Process
}

// StartMemcached starts memcached in the foreground under dir.
func StartMemcached(ctx context.Context, dir string) (*Memcached, error) {
	bin, err := LookBin("memcached")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64"}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		args = append(args, "-u", "root") // memcached refuses to run as root without it
	}
	p, err := StartProcess(dir, "memcached", bin, args...)
	if err != nil {
		return nil, err
	}
	m := &Memcached{Addr: fmt.Sprintf("127.0.0.1:%d", port), proc: p}
	if err := WaitTCP(ctx, p, m.Addr, 10*time.Second); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// Stop stops memcached.
func (m *Memcached) Stop() {
	if m != nil {
		m.proc.Stop(5 * time.Second)
	}
}
