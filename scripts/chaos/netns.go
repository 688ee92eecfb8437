package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The netns mode runs standalone Redis in a network namespace of its own,
// reached over a veth pair, so that the network between keymint and Redis
// can fail while both processes run. What the kernel this was written on
// allows (no sch_netem, no tc classifiers or actions, no iptables): link
// state and the tbf qdisc. So the faults are
//
//   - redis-partition: the namespace's end of the veth goes down. The host
//     end loses its carrier and drops every packet silently, both ways:
//     connections stay open, nothing arrives, as with a cut cable or a
//     firewall dropping packets. Not a refused connection.
//   - redis-congested: a tbf qdisc on both ends (8 kbit/s, a 2 KiB queue):
//     packets beyond the queue are dropped and the rest delayed by about a
//     second, as on a saturated link. Loss under load, not random loss.
const (
	nsHostIP, nsRedisIP = "10.203.0.1", "10.203.0.2"
	hostVeth, nsVeth    = "kmchaos0", "kmchaos1"
)

func (e *env) netnsName() string { return "kmchaos-" + strconv.Itoa(os.Getpid()) }

// ip runs ip(8) with args, inside the namespace when inNS.
func (e *env) ip(inNS bool, args ...string) error {
	if inNS {
		args = append([]string{"netns", "exec", e.netnsName(), "ip"}, args...)
	}
	if out, err := command(e.root, "ip", args...); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (e *env) tc(inNS bool, args ...string) error {
	name := "tc"
	if inNS {
		args = append([]string{"netns", "exec", e.netnsName(), "tc"}, args...)
		name = "ip"
	}
	if out, err := command(e.root, name, args...); err != nil {
		return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// startNetnsRedis makes the namespace and the veth pair and starts
// redis-server inside it.
func (e *env) startNetnsRedis() error {
	ns := e.netnsName()
	if err := e.ip(false, "netns", "add", ns); err != nil {
		return fmt.Errorf("%w (the netns mode needs root)", err)
	}
	e.stops = append(e.stops, func() { _ = e.ip(false, "netns", "del", ns) })
	steps := []struct {
		inNS bool
		args []string
	}{
		{false, []string{"link", "add", hostVeth, "type", "veth", "peer", "name", nsVeth}},
		{false, []string{"link", "set", nsVeth, "netns", ns}},
		{false, []string{"addr", "add", nsHostIP + "/30", "dev", hostVeth}},
		{false, []string{"link", "set", hostVeth, "up"}},
		{true, []string{"addr", "add", nsRedisIP + "/30", "dev", nsVeth}},
		{true, []string{"link", "set", nsVeth, "up"}},
		{true, []string{"link", "set", "lo", "up"}},
	}
	e.stops = append(e.stops, func() { _ = e.ip(false, "link", "del", hostVeth) })
	for _, st := range steps {
		if err := e.ip(st.inNS, st.args...); err != nil {
			return err
		}
	}
	dir := filepath.Join(e.work, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	const port = "6390"
	pidfile := filepath.Join(dir, "redis.pid")
	if out, err := command(e.root, "ip", "netns", "exec", ns, "redis-server", "--port", port, "--bind", nsRedisIP,
		"--protected-mode", "no", "--save", "", "--appendonly", "no", "--daemonize", "yes",
		"--pidfile", pidfile, "--dir", dir, "--logfile", filepath.Join(dir, "redis.log")); err != nil {
		return fmt.Errorf("redis-server in %s: %v: %s", ns, err, out)
	}
	e.stops = append(e.stops, func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	e.redisURL = "redis://" + nsRedisIP + ":" + port + "/0"
	fmt.Fprintf(os.Stderr, "chaos: redis in network namespace %s at %s\n", ns, e.redisURL)
	return nil
}

// netFault starts a network fault between keymint and Redis.
func (e *env) netFault(name string) (func(), error) {
	switch name {
	case "redis-partition":
		if err := e.ip(true, "link", "set", nsVeth, "down"); err != nil {
			return nil, err
		}
		return func() { _ = e.ip(true, "link", "set", nsVeth, "up") }, nil
	case "redis-congested":
		tbf := []string{"qdisc", "add", "dev", "", "root", "tbf", "rate", "8kbit", "burst", "1540", "limit", "2048"}
		tbf[3] = hostVeth
		if err := e.tc(false, tbf...); err != nil {
			return nil, err
		}
		tbf[3] = nsVeth
		if err := e.tc(true, tbf...); err != nil {
			_ = e.tc(false, "qdisc", "del", "dev", hostVeth, "root")
			return nil, err
		}
		return func() {
			_ = e.tc(false, "qdisc", "del", "dev", hostVeth, "root")
			_ = e.tc(true, "qdisc", "del", "dev", nsVeth, "root")
		}, nil
	}
	return nil, fmt.Errorf("unknown network fault %q", name)
}
