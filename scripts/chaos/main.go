// Command chaos measures how fast a revoked token is refused everywhere,
// under one fault at a time (not part of make test; run scripts/chaos/run.sh).
//
// It starts PostgreSQL and Redis (standalone, Cluster or Sentinel) from
// scripts/, three `keymint serve` replicas, a TCP forwarder standing in for
// a Kubernetes Service in front of them, two `keymint sidecar`s and one Go
// client.Validator behind the forwarder. With validation load on every
// validator, each round mints a token, has every validator cache it as
// valid, revokes it through a replica, and polls every validator until it
// refuses. It prints, per fault and validator, the propagation from the
// revoke call returning (min / median / p99 / max) and the stale positives:
// answers of "valid" after that validator had refused the token.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/client"
)

const (
	email, password = "chaos@example.com", "a long chaos password"
	pepper          = "1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	// giveUp bounds one validator's wait for a refusal (longer than any
	// cache TTL, so a lost revocation shows as a value near it).
	giveUp = 40 * time.Second
)

func main() {
	mode := flag.String("redis", "standalone", "Redis: standalone, cluster, sentinel, netns (standalone in a network namespace, for partitions; root) or none")
	rounds := flag.Int("rounds", 5, "revocations per fault")
	faults := flag.String("faults", "", "comma-separated faults (default: every fault the Redis mode has)")
	flag.Parse()
	if err := run(*mode, *rounds, *faults); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// env is everything the run started, stopped in reverse order.
type env struct {
	root, work, bin string
	pgURL, redisURL string
	mode            string
	stops           []func()
	replicas        []*proc
	forward         *forwarder
	sidecars        []*proc
	validator       *client.Validator
}

func (e *env) stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
}

// proc is a keymint process.
type proc struct {
	name       string
	args       []string
	cmd        *exec.Cmd
	grpc, http string
	conn       *grpc.ClientConn
	api        keymintv1.TokenServiceClient
	alive      atomic.Bool
}

func run(mode string, rounds int, faultList string) error {
	e := &env{mode: mode}
	defer e.stop()
	var err error
	if e.root, err = repoRoot(); err != nil {
		return err
	}
	if e.work, err = os.MkdirTemp("", "keymint-chaos-"); err != nil {
		return err
	}
	// PostgreSQL runs as its own user, which must reach its directory.
	if err := os.Chmod(e.work, 0o755); err != nil {
		return err
	}
	e.stops = append(e.stops, func() { os.RemoveAll(e.work) })
	e.bin = filepath.Join(e.work, "keymint")
	if out, err := command(e.root, "go", "build", "-o", e.bin, "./services/keymint"); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	if err := e.startServices(); err != nil {
		return err
	}
	if err := e.startKeymint(); err != nil {
		return err
	}
	all := map[string][]string{
		"none":       {"baseline", "replica-kill"},
		"standalone": {"baseline", "redis-down", "redis-sigstop", "replica-kill"},
		"sentinel":   {"baseline", "redis-sigstop", "sentinel-failover", "replica-kill"},
		"cluster":    {"baseline", "redis-sigstop", "cluster-failover", "replica-kill"},
		"netns":      {"baseline", "redis-partition", "redis-congested"},
	}[mode]
	if faultList != "" {
		all = strings.Split(faultList, ",")
	}
	var results []result
	for _, f := range all {
		fmt.Fprintf(os.Stderr, "chaos: fault %s, %d rounds\n", f, rounds)
		r, err := e.runFault(f, rounds)
		if err != nil {
			return fmt.Errorf("fault %s: %w", f, err)
		}
		results = append(results, r...)
	}
	report(os.Stdout, mode, results)
	return nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the keymint repository")
		}
		dir = parent
	}
}

func command(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return strings.TrimSpace(out.String()), nil
}

// startServices starts PostgreSQL and Redis from scripts/.
func (e *env) startServices() error {
	pgDir := filepath.Join(e.work, "pg")
	var err error
	if e.pgURL, err = command(e.root, "bash", "scripts/pg.sh", "start", pgDir); err != nil {
		return fmt.Errorf("pg.sh: %v: %s", err, e.pgURL)
	}
	e.stops = append(e.stops, func() { _, _ = command(e.root, "bash", "scripts/pg.sh", "stop", pgDir) })
	if e.mode == "netns" {
		return e.startNetnsRedis()
	}
	script := map[string]string{"standalone": "redis.sh", "cluster": "redis-cluster.sh", "sentinel": "redis-sentinel.sh"}[e.mode]
	if script == "" {
		return nil
	}
	dir := filepath.Join(e.work, "redis")
	cmd := exec.Command("bash", "scripts/"+script, "start", dir)
	cmd.Dir = e.root
	if e.mode == "cluster" {
		cmd.Env = append(os.Environ(), "REPLICAS=1") // a replica per master, for failovers
	}
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %v", script, err)
	}
	e.redisURL = strings.TrimSpace(string(out))
	e.stops = append(e.stops, func() { _, _ = command(e.root, "bash", "scripts/"+script, "stop", dir) })
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startKeymint starts the replicas, the forwarder, the sidecars and the Go
// validator, and creates the user.
func (e *env) startKeymint() error {
	if out, err := e.keymintCmd("user", "create", "--email", email, "--org", "acme", "--password-stdin",
		"--database-url", e.pgURL, "--argon2-memory-kib", "64", "--argon2-time", "1"); err != nil {
		return fmt.Errorf("user create: %v: %s", err, out)
	}
	for i := range 3 {
		p := &proc{name: fmt.Sprintf("replica-%d", i+1), grpc: freeAddr(), http: freeAddr()}
		p.args = []string{"serve", "--grpc-addr", p.grpc, "--http-addr", p.http, "--database-url", e.pgURL,
			"--data-dir", filepath.Join(e.work, p.name), "--log-format", "text", "--log-level", "warn",
			// The run mints and revokes with a password hundreds of times.
			"--signin-account-limit", "off", "--signin-ip-limit", "off"}
		if e.redisURL != "" {
			p.args = append(p.args, "--redis-url", e.redisURL)
		}
		if err := e.start(p); err != nil {
			return err
		}
		e.replicas = append(e.replicas, p)
	}
	e.forward = newForwarder(e.replicas)
	e.stops = append(e.stops, e.forward.close)
	for i := range 2 {
		p := &proc{name: fmt.Sprintf("sidecar-%d", i+1), grpc: freeAddr(), http: freeAddr()}
		p.args = []string{"sidecar", "--sidecar-grpc-addr", p.grpc, "--sidecar-http-addr", p.http,
			"--central-addr", e.forward.addr(), "--log-format", "text", "--log-level", "warn"}
		if err := e.start(p); err != nil {
			return err
		}
		e.sidecars = append(e.sidecars, p)
	}
	v, err := client.NewValidator(context.Background(), client.ValidatorConfig{Target: e.forward.addr(), TTL: 30 * time.Second})
	if err != nil {
		return err
	}
	e.validator = v
	e.stops = append(e.stops, func() { v.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for !v.Subscribed() || !e.sidecarsReady() {
		if time.Now().After(deadline) {
			return errors.New("validators never subscribed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (e *env) sidecarsReady() bool {
	for _, s := range e.sidecars {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return false
		}
	}
	return true
}

func (e *env) keymintCmd(args ...string) (string, error) {
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(), "KEYMINT_PEPPER="+pepper)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start runs p and waits until its HTTP port answers.
func (e *env) start(p *proc) error {
	log, err := os.OpenFile(filepath.Join(e.work, p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(e.bin, p.args...)
	p.cmd.Env = append(os.Environ(), "KEYMINT_PEPPER="+pepper)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		return err
	}
	cmd := p.cmd
	e.stops = append(e.stops, func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.http + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never answered; see %s.log", p.name, filepath.Join(e.work, p.name))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p.conn == nil && strings.HasPrefix(p.name, "replica") {
		if p.conn, err = grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		p.api = keymintv1.NewTokenServiceClient(p.conn)
	}
	p.alive.Store(true)
	return nil
}

// kill ends p with SIGKILL (a crash).
func (p *proc) kill() {
	p.alive.Store(false)
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// forwarder is a TCP proxy over the live replicas, round robin, like a
// Kubernetes Service address.
type forwarder struct {
	lis      net.Listener
	replicas []*proc
	next     atomic.Int64
}

func newForwarder(replicas []*proc) *forwarder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	f := &forwarder{lis: l, replicas: replicas}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *forwarder) addr() string { return f.lis.Addr().String() }
func (f *forwarder) close()       { f.lis.Close() }

func (f *forwarder) serve(c net.Conn) {
	for range len(f.replicas) {
		p := f.replicas[int(f.next.Add(1))%len(f.replicas)]
		if !p.alive.Load() {
			continue
		}
		up, err := net.DialTimeout("tcp", p.grpc, time.Second)
		if err != nil {
			continue
		}
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		_, _ = io.Copy(c, up)
		c.Close()
		return
	}
	c.Close()
}

// checker asks one validator about a token: valid, or an error (no answer).
type checker struct {
	name  string
	check func(ctx context.Context, token string) (bool, error)
}

func (e *env) checkers() []checker {
	var out []checker
	for _, r := range e.replicas {
		out = append(out, checker{r.name, func(ctx context.Context, tok string) (bool, error) {
			if !r.alive.Load() {
				return false, errDead
			}
			resp, err := r.api.ValidateToken(ctx, &keymintv1.ValidateTokenRequest{Token: tok})
			return resp.GetValid(), err
		}})
	}
	for _, s := range e.sidecars {
		out = append(out, checker{s.name, func(ctx context.Context, tok string) (bool, error) {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.http+"/v1/forward-auth", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("X-Original-URI", "/")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				return true, nil
			case 401, 403:
				return false, nil
			}
			return false, fmt.Errorf("status %d", resp.StatusCode)
		}})
	}
	out = append(out, checker{"go-client", func(ctx context.Context, tok string) (bool, error) {
		r, err := e.validator.Validate(ctx, tok)
		return r.Valid, err
	}})
	return out
}

var errDead = errors.New("killed")

func creds() context.Context {
	return metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-email", email, "x-api-password", password))
}

func (e *env) aliveReplica(i int) *proc {
	for j := range len(e.replicas) {
		if p := e.replicas[(i+j)%len(e.replicas)]; p.alive.Load() {
			return p
		}
	}
	return nil
}

// result is one validator's outcome for one revocation.
type result struct {
	fault, validator string
	propagation      time.Duration
	revokeTook       time.Duration // how long the revoke call took
	stale            int
	lost             bool
}

// applyFault starts a fault and returns how to end it.
func (e *env) applyFault(name string, round int) (func(), error) {
	redisDir := filepath.Join(e.work, "redis")
	signal := func(pidfile string, sig syscall.Signal) {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		_ = syscall.Kill(pid, sig)
	}
	switch name {
	case "baseline":
		return func() {}, nil
	case "redis-down":
		port, _ := os.ReadFile(filepath.Join(redisDir, "port"))
		signal(filepath.Join(redisDir, "redis.pid"), syscall.SIGKILL)
		return func() {
			_, _ = command(e.root, "redis-server", "--port", strings.TrimSpace(string(port)), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--daemonize", "yes", "--pidfile", filepath.Join(redisDir, "redis.pid"),
				"--dir", redisDir, "--logfile", filepath.Join(redisDir, "redis.log"))
		}, nil
	case "redis-sigstop", "sentinel-failover", "cluster-failover":
		// The node that matters: the standalone server, the current
		// Sentinel master, or the Cluster master holding the revocation
		// channel's slot. A failover fault waits for the failover to
		// complete before the revoke; redis-sigstop revokes at once, while
		// the node hangs unnoticed.
		current := func() (string, error) {
			switch e.mode {
			case "sentinel":
				return e.sentinelMaster(redisDir)
			case "cluster":
				return e.clusterChannelNode(redisDir)
			}
			return ".", nil
		}
		node, err := current()
		if err != nil {
			return nil, err
		}
		pid := filepath.Join(redisDir, node, "redis.pid")
		signal(pid, syscall.SIGSTOP)
		resume := func() { signal(pid, syscall.SIGCONT) }
		if name != "redis-sigstop" {
			deadline := time.Now().Add(60 * time.Second)
			for {
				if now, err := current(); err == nil && now != node {
					break
				}
				if time.Now().After(deadline) {
					resume()
					return nil, errors.New("no failover within 60s")
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		return resume, nil
	case "redis-partition", "redis-congested":
		if e.mode != "netns" {
			return nil, fmt.Errorf("%s needs -redis netns", name)
		}
		return e.netFault(name)
	case "replica-kill":
		// A different replica each round, so each follower loses its own
		// upstream in some round; the revoke goes through a survivor.
		victim := e.replicas[round%len(e.replicas)]
		victim.kill()
		return func() { _ = e.start(victim) }, nil
	}
	return nil, fmt.Errorf("unknown fault %q", name)
}

// sentinelMaster names the node directory of the current master.
func (e *env) sentinelMaster(redisDir string) (string, error) {
	port, err := os.ReadFile(filepath.Join(redisDir, "sentinel-1", "port"))
	if err != nil {
		return "", err
	}
	out, err := command(e.root, "redis-cli", "-p", strings.TrimSpace(string(port)), "sentinel", "get-master-addr-by-name", "keymint")
	if err != nil {
		return "", err
	}
	lines := strings.Fields(out)
	if len(lines) != 2 {
		return "", fmt.Errorf("sentinel answered %q", out)
	}
	for _, d := range []string{"master", "replica"} {
		if p, _ := os.ReadFile(filepath.Join(redisDir, d, "port")); strings.TrimSpace(string(p)) == lines[1] {
			return d, nil
		}
	}
	return "", fmt.Errorf("no node on port %s", lines[1])
}

// clusterChannelNode names the node directory of the master serving the
// slot of keymint's revocation channel.
func (e *env) clusterChannelNode(redisDir string) (string, error) {
	// Ask any node that answers: the one that matters may be stopped.
	ports, _ := filepath.Glob(filepath.Join(redisDir, "node-*", "port"))
	var slot, nodes string
	var err error
	for _, pf := range ports {
		b, _ := os.ReadFile(pf)
		port := strings.TrimSpace(string(b))
		if slot, err = command(e.root, "timeout", "2", "redis-cli", "-p", port, "cluster", "keyslot", "keymint:revocations"); err != nil {
			continue
		}
		if nodes, err = command(e.root, "timeout", "2", "redis-cli", "-p", port, "cluster", "nodes"); err == nil {
			break
		}
	}
	if err != nil {
		return "", err
	}
	s, _ := strconv.Atoi(strings.TrimSpace(slot))
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, _ := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if hi != "" {
				b, _ = strconv.Atoi(hi)
			}
			if s >= a && s <= b {
				addrPort := strings.Split(strings.Split(f[1], "@")[0], ":")[1]
				dirs, _ := filepath.Glob(filepath.Join(redisDir, "node-*", "port"))
				for _, d := range dirs {
					if p, _ := os.ReadFile(d); strings.TrimSpace(string(p)) == addrPort {
						return filepath.Base(filepath.Dir(d)), nil
					}
				}
			}
		}
	}
	return "", errors.New("no master serves the channel's slot")
}

// runFault runs the rounds under load; each round's fault starts just
// before its revoke (the transition is the hard case: a hung node not yet
// noticed, a stream about to break) and ends after it, and the next round
// waits for every follower to be live again.
func (e *env) runFault(name string, rounds int) ([]result, error) {
	checkers := e.checkers()
	stopLoad := e.load(checkers)
	defer stopLoad()
	var out []result
	for i := range rounds {
		rs, err := e.round(name, i, checkers)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
		if err := e.settle(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// settle waits until every follower is live again after a fault.
func (e *env) settle() error {
	deadline := time.Now().Add(90 * time.Second)
	for !e.validator.Subscribed() || !e.sidecarsReady() {
		if time.Now().After(deadline) {
			return errors.New("followers did not recover within 90s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // let replicas reconnect to Redis too
	return nil
}

// load keeps every validator busy with valid tokens until stopped.
func (e *env) load(checkers []checker) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tok, err := e.mint(0)
	if err != nil {
		cancel()
		return func() {}
	}
	for _, c := range checkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, time.Second)
				_, _ = c.check(cctx, tok.Secret)
				ccancel()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

func (e *env) mint(i int) (*keymintv1.CreateTokenResponse, error) {
	var last error
	for attempt := range 50 {
		p := e.aliveReplica(i + attempt)
		ctx, cancel := context.WithTimeout(creds(), 5*time.Second)
		r, err := p.api.CreateToken(ctx, &keymintv1.CreateTokenRequest{Name: "chaos"})
		cancel()
		if err == nil {
			return r, nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return nil, last
}

// round mints a token, caches it everywhere, revokes it, and waits for
// every validator to refuse it.
func (e *env) round(fault string, i int, checkers []checker) ([]result, error) {
	tok, err := e.mint(i)
	if err != nil {
		return nil, fmt.Errorf("mint: %w", err)
	}
	live := map[string]bool{}
	for _, c := range checkers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok, err := c.check(ctx, tok.Secret)
		cancel()
		live[c.name] = err == nil && ok
	}
	end, err := e.applyFault(fault, i)
	if err != nil {
		return nil, err
	}
	defer end()
	var revoked time.Time
	var took time.Duration
	for attempt := range 50 {
		p := e.aliveReplica(i + attempt)
		ctx, cancel := context.WithTimeout(creds(), 5*time.Second)
		began := time.Now()
		_, err = p.api.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: tok.Token.Id})
		cancel()
		if err == nil {
			revoked = time.Now()
			took = revoked.Sub(began)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if revoked.IsZero() {
		return nil, fmt.Errorf("revoke: %w", err)
	}
	var mu sync.Mutex
	var out []result
	var wg sync.WaitGroup
	for _, c := range checkers {
		if !live[c.name] {
			continue // killed, or had no answer: nothing to measure
		}
		wg.Go(func() {
			r := result{fault: fault, validator: c.name, revokeTook: took}
			refused := false
			deadline := revoked.Add(giveUp)
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				ok, err := c.check(ctx, tok.Secret)
				cancel()
				if errors.Is(err, errDead) {
					return // the replica this round killed: nothing to measure
				}
				switch {
				case err != nil:
				case !ok && !refused:
					refused, r.propagation = true, time.Since(revoked)
				case ok && refused:
					r.stale++
				}
				if refused && time.Since(revoked) > r.propagation+200*time.Millisecond {
					break // watched a while for a positive after the refusal
				}
				time.Sleep(5 * time.Millisecond)
			}
			r.lost = !refused
			if r.lost {
				r.propagation = giveUp
			}
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out, nil
}

func report(w io.Writer, mode string, results []result) {
	type key struct{ fault, validator string }
	var order []key
	by := map[key][]result{}
	for _, r := range results {
		k := key{r.fault, r.validator}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], r)
	}
	fmt.Fprintf(w, "redis=%s; propagation from the revoke call returning\n", mode)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tvalidator\tn\tmin\tmedian\tp99\tmax\tstale positives\tnever refused\trevoke call max")
	for _, k := range order {
		rs := by[k]
		ds := make([]time.Duration, 0, len(rs))
		stale, lost := 0, 0
		var took time.Duration
		for _, r := range rs {
			took = max(took, r.revokeTook)
			ds = append(ds, r.propagation)
			stale += r.stale
			if r.lost {
				lost++
			}
		}
		slices.Sort(ds)
		pct := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", k.fault, k.validator, len(ds),
			ms(ds[0]), ms(pct(0.5)), ms(pct(0.99)), ms(ds[len(ds)-1]), stale, lost, ms(took))
	}
	tw.Flush()
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
}
