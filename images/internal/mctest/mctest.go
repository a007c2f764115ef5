// Package mctest runs a real memcached for the tests of the images
// packages. A missing memcached binary fails the test: it is part of the
// test environment, not optional.
package mctest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Memcached is a memcached process on a loopback port.
type Memcached struct {
	Addr string
	port int
	bin  string
	t    testing.TB

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts memcached on a free port; it is killed when the test ends.
func Start(t testing.TB) *Memcached {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Fatalf("memcached is required by this test (apt-get install memcached): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &Memcached{Addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, bin: bin, t: t}
	m.Restart()
	t.Cleanup(m.Kill)
	return m
}

// Restart starts memcached again on the same port (after Kill).
func (m *Memcached) Restart() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		m.t.Fatal("memcached is already running")
	}
	cmd := exec.Command(m.bin, "-l", "127.0.0.1", "-p", strconv.Itoa(m.port), "-U", "0", "-u", "root", "-m", "64")
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting memcached: %v", err)
	}
	m.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("memcached did not listen on %s: %v", m.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops memcached (its contents are lost).
func (m *Memcached) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}
