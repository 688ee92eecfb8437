// Command load is keymint's benchmark load generator and its baselines: the
// same closed-loop client drives keymint and a bare server answering the
// same request with the same bytes, so their ratio is keymint's own cost.
//
//	load mint       -http URL -email E -password P -n N -out FILE
//	load grpc-echo  -listen ADDR -from GRPCADDR -tokens FILE
//	load http-echo  -listen ADDR -from URL -tokens FILE
//	load grpc       -addr ADDR -tokens FILE [-c 50] [-d 10s] [-warmup 2s] [-pid PID] -name NAME
//	load grpc       -addr ADDR -tokens FILE [-c 50] -n N   (exactly N calls: callgrind/run.sh)
//	load http       -url URL -tokens FILE [...]
//	load flood      -url URL [-c 60] [-pid PID] -name NAME   (until SIGTERM)
//	load rss        -pid PID -name NAME -out FILE   (one RSS sample: idle RSS)
//	load otlp       [-listen ADDR]   an OTLP trace collector counting spans (until SIGTERM)
//	load report     FILE
//
// scripts/bench/run.sh (make bench) strings them together.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load mint|grpc-echo|http-echo|grpc|http|flood|otlp|rss|report ...")
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "mint":
		err = runMint(args)
	case "grpc-echo":
		err = runGRPCEcho(args)
	case "http-echo":
		err = runHTTPEcho(args)
	case "grpc", "http":
		err = runLoad(os.Args[1], args)
	case "flood":
		err = runFlood(args)
	case "rss":
		err = runRSS(args)
	case "otlp":
		err = runOTLP(args)
	case "report":
		err = runReport(args)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// validateBody is a REST ValidateToken body.
func validateBody(token, clientIP string) string {
	if clientIP == "" {
		return `{"token":"` + token + `"}`
	}
	return `{"token":"` + token + `","clientIp":"` + clientIP + `"}`
}

func readTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	toks := strings.Fields(string(b))
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s holds no tokens", path)
	}
	return toks, nil
}

// runMint mints n tokens through keymint's REST API and writes them to out.
func runMint(args []string) error {
	fs := flag.NewFlagSet("mint", flag.ExitOnError)
	base := fs.String("http", "http://127.0.0.1:8080", "keymint REST base URL")
	email := fs.String("email", "", "user email")
	password := fs.String("password", "", "user password")
	n := fs.Int("n", 100, "tokens to mint")
	out := fs.String("out", "", "file to write the tokens to, one a line")
	ttl := fs.String("ttl", "", "token lifetime, such as 7776000s (empty: none)")
	cidrs := fs.String("cidrs", "", "comma-separated allowed CIDRs (empty: anywhere)")
	uses := fs.Int64("uses", 0, "usage limit (0: none)")
	rate := fs.String("rate", "", "rate limit LIMIT/PERIOD such as 1000000/1s (empty: none)")
	_ = fs.Parse(args)
	extra := ""
	if *ttl != "" {
		extra += fmt.Sprintf(`,"ttl":%q`, *ttl)
	}
	if *cidrs != "" {
		b, _ := json.Marshal(strings.Split(*cidrs, ","))
		extra += `,"allowedCidrs":` + string(b)
	}
	if *uses > 0 {
		extra += fmt.Sprintf(`,"remainingUses":"%d"`, *uses)
	}
	if *rate != "" {
		limit, period, _ := strings.Cut(*rate, "/")
		extra += fmt.Sprintf(`,"rateLimit":{"limit":%q,"period":%q}`, limit, period)
	}
	var buf bytes.Buffer
	for i := range *n {
		body := fmt.Sprintf(`{"name":"bench-%d","scopes":["read","write"]%s}`, i, extra)
		req, _ := http.NewRequest("POST", *base+"/v1/tokens", strings.NewReader(body))
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-api-email", *email)
		req.Header.Set("x-api-password", *password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var r struct {
			Secret string `json:"secret"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || r.Secret == "" {
			return fmt.Errorf("mint: HTTP %d: %s", resp.StatusCode, b)
		}
		buf.WriteString(r.Secret + "\n")
	}
	return os.WriteFile(*out, buf.Bytes(), 0o600)
}

// echoServer answers ValidateToken with a canned copy of keymint's answer:
// the same bytes on the wire, none of keymint's work, no interceptors.
type echoServer struct {
	keymintv1.UnimplementedTokenServiceServer
	resp *keymintv1.ValidateTokenResponse
}

func (e *echoServer) ValidateToken(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error) {
	return e.resp, nil
}

// authzEcho answers ext_authz Check with a canned copy of keymint's answer.
type authzEcho struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

func (e *authzEcho) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return e.resp, nil
}

func runGRPCEcho(args []string) error {
	fs := flag.NewFlagSet("grpc-echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	from := fs.String("from", "", "keymint gRPC address to copy the answer from")
	tokens := fs.String("tokens", "", "token file")
	workers := fs.Uint("workers", 64, "gRPC stream workers, as keymint serve has (0: a goroutine per call, grpc-go's default)")
	clientIP := fs.String("client-ip", "", "client_ip to validate with (for allow-listed tokens)")
	protocol := fs.String("proto", "validate", "validate (TokenService) or authz (Envoy ext_authz)")
	_ = fs.Parse(args)
	toks, err := readTokens(*tokens)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(*from, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	var resp *keymintv1.ValidateTokenResponse
	var check *authv3.CheckResponse
	if *protocol == "authz" {
		check, err = authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/", Headers: map[string]string{"authorization": "Bearer " + toks[0]}}}}})
	} else {
		resp, err = keymintv1.NewTokenServiceClient(conn).ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: toks[0], ClientIp: *clientIP})
	}
	conn.Close()
	if err != nil {
		return fmt.Errorf("copy answer: %w", err)
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var opts []grpc.ServerOption
	if *workers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(*workers)))
	}
	s := grpc.NewServer(opts...)
	if check != nil {
		authv3.RegisterAuthorizationServer(s, &authzEcho{resp: check})
	} else {
		keymintv1.RegisterTokenServiceServer(s, &echoServer{resp: resp})
	}
	fmt.Println(lis.Addr().String())
	return s.Serve(lis)
}

func runHTTPEcho(args []string) error {
	fs := flag.NewFlagSet("http-echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	from := fs.String("from", "", "keymint validate URL to copy the answer from")
	tokens := fs.String("tokens", "", "token file")
	bodyOnly := fs.Bool("body-only", false, "answer with keymint's body and only a Content-Type header, not all of keymint's headers")
	clientIP := fs.String("client-ip", "", "client_ip to validate with (for allow-listed tokens)")
	protocol := fs.String("proto", "validate", "validate (POST validate), malformed (POST validate of a malformed token) or forward-auth (GET forward-auth)")
	_ = fs.Parse(args)
	toks, err := readTokens(*tokens)
	if err != nil {
		return err
	}
	var resp *http.Response
	if *protocol == "forward-auth" {
		req, _ := http.NewRequest("GET", *from, nil)
		req.Header.Set("Authorization", "Bearer "+toks[0])
		req.Header.Set("X-Original-URI", "/reports")
		resp, err = http.DefaultClient.Do(req)
	} else {
		resp, err = http.Post(*from, "application/json", strings.NewReader(validateBody(toks[0], *clientIP)))
	}
	if err != nil {
		return err
	}
	canned, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("copy answer: HTTP %d: %s", resp.StatusCode, canned)
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// The same answer bytes as keymint's (its security headers included),
	// so the comparison is of the work behind them; net/http adds Date and
	// Content-Length itself.
	headers := http.Header{"Content-Type": {"application/json"}}
	if !*bodyOnly {
		headers = resp.Header.Clone()
		headers.Del("Date")
		headers.Del("Content-Length")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		out := w.Header()
		for k, v := range headers {
			out[k] = v
		}
		_, _ = w.Write(canned)
	})
	fmt.Println(lis.Addr().String())
	return (&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}).Serve(lis)
}

// Result is one measured run.
type Result struct {
	Name        string  `json:"name"`
	Calls       int64   `json:"calls"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	Concurrency int     `json:"concurrency"`
	ServerCPU   float64 `json:"server_cpu,omitempty"` // cores used by the server process
	// ServerSysCPU is the kernel's part of ServerCPU, and SyscallsPerCall
	// the server's read and write system calls per answered call
	// (/proc/PID/io): how much a server's answers are batched per write.
	ServerSysCPU    float64 `json:"server_sys_cpu,omitempty"`
	SyscallsPerCall float64 `json:"syscalls_per_call,omitempty"`
	RSSStartMB      float64 `json:"rss_start_mb,omitempty"`
	RSSMaxMB        float64 `json:"rss_max_mb,omitempty"`
	RSSEndMB        float64 `json:"rss_end_mb,omitempty"`
	RSSMinMB        float64 `json:"rss_min_mb,omitempty"`
	FirstError      string  `json:"first_error,omitempty"`
	// Statuses counts a flood's answers by HTTP status.
	Statuses map[string]int `json:"statuses,omitempty"`
}

func runLoad(kind string, args []string) error {
	fs := flag.NewFlagSet(kind, flag.ExitOnError)
	name := fs.String("name", kind, "name of this run in the report")
	addr := fs.String("addr", "127.0.0.1:9090", "gRPC address")
	url := fs.String("url", "http://127.0.0.1:8080/v1/tokens:validate", "REST validate URL")
	tokens := fs.String("tokens", "", "token file")
	conc := fs.Int("c", 50, "calls in flight")
	conns := fs.Int("conns", 1, "gRPC connections the calls in flight are spread over")
	dur := fs.Duration("d", 10*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up (it also fills the cache)")
	pid := fs.Int("pid", 0, "server process to sample CPU and RSS of")
	rssSelf := fs.Bool("rss-self", false, "sample the server's RSS alone, not its children's with it (keymint serve's hash worker exits once idle, which would read as a fall)")
	out := fs.String("out", "", "append the JSON result to this file")
	clientIP := fs.String("client-ip", "", "client_ip to validate with (for allow-listed tokens)")
	protocol := fs.String("proto", "validate", "validate (ValidateToken / POST validate), authz (gRPC: Envoy ext_authz Check), forward-auth (HTTP: GET with Authorization) or malformed (HTTP: POST validate answered MALFORMED)")
	count := fs.Int64("n", 0, "gRPC: make exactly this many calls, all measured, then stop (no warm-up, no duration); any failed call fails the run")
	_ = fs.Parse(args)
	if *count > 0 && kind != "grpc" {
		return fmt.Errorf("-n is for grpc only")
	}
	var budget *atomic.Int64
	if *count > 0 {
		budget = new(atomic.Int64)
		budget.Store(*count)
	}
	toks, err := readTokens(*tokens)
	if err != nil {
		return err
	}

	var measuring, stop atomic.Bool
	var recs []*recorder
	var runs []func() error
	newRec := func() *recorder {
		r := &recorder{measuring: &measuring, stop: &stop, lats: make([]int64, 0, 1<<16)}
		recs = append(recs, r)
		return r
	}
	switch kind {
	case "grpc":
		n := max(1, min(*conns, *conc))
		for i := range n {
			inflight := *conc / n
			if i < *conc%n {
				inflight++
			}
			c, err := dialH2(*addr, toks, *clientIP, *protocol, newRec())
			if err != nil {
				return err
			}
			c.budget = budget
			runs = append(runs, func() error { return c.run(inflight) })
		}
	case "http":
		hostPath := strings.TrimPrefix(*url, "http://")
		host, path, _ := strings.Cut(hostPath, "/")
		for i := range *conc {
			c, err := dialHTTP1(host, "/"+path, toks, *clientIP, *protocol, newRec())
			if err != nil {
				return err
			}
			runs = append(runs, func() error { return c.run(i) })
		}
	}
	errc := make(chan error, len(runs))
	if budget != nil {
		return countedRun(runs, recs, &measuring, *count)
	}
	for _, run := range runs {
		go func() { errc <- run() }()
	}

	time.Sleep(*warmup)
	cpu0 := procCPU(*pid)
	io0 := procSyscalls(*pid)
	rss := &rssSampler{pid: *pid, self: *rssSelf}
	rss.sample()
	measuring.Store(true)
	t0 := time.Now()
	done := time.After(*dur)
	tick := time.NewTicker(time.Second)
	var runErr error
sampling:
	for {
		select {
		case <-tick.C:
			rss.sample()
		case <-done:
			break sampling
		case runErr = <-errc:
			break sampling
		}
	}
	tick.Stop()
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1 := procCPU(*pid)
	io1 := procSyscalls(*pid)
	rss.sample()
	stop.Store(true)
	if runErr != nil {
		return fmt.Errorf("load: %w", runErr)
	}
	for range runs {
		if err := <-errc; err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}

	var all []int64
	var calls, errs int64
	var firstErr string
	for _, r := range recs {
		all = append(all, r.lats...)
		calls += r.calls.Load()
		errs += r.errs.Load()
		if v, ok := r.firstErr.Load().(string); ok && firstErr == "" {
			firstErr = v
		}
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))]) / 1e3
	}
	r := Result{
		Name: *name, Calls: calls, Errors: errs, Seconds: elapsed.Seconds(),
		RPS:   float64(calls-errs) / elapsed.Seconds(),
		P50us: pct(0.50), P99us: pct(0.99), Concurrency: *conc, FirstError: firstErr,
	}
	if *pid != 0 && cpu0.user >= 0 && cpu1.total() >= cpu0.total() {
		r.ServerCPU = (cpu1.total() - cpu0.total()) / elapsed.Seconds()
		r.ServerSysCPU = (cpu1.sys - cpu0.sys) / elapsed.Seconds()
		if io0 >= 0 && io1 >= io0 && calls > 0 {
			r.SyscallsPerCall = float64(io1-io0) / float64(calls)
		}
		r.RSSStartMB, r.RSSMaxMB, r.RSSEndMB, r.RSSMinMB = rss.first, rss.max, rss.last, rss.min
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Write(append(line, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// countedRun makes the calls of a -n run: each connection runs until the
// shared budget is spent and its calls have answered. Every call is
// measured; a failed one fails the run, so a count is of valid answers.
func countedRun(runs []func() error, recs []*recorder, measuring *atomic.Bool, n int64) error {
	measuring.Store(true)
	errc := make(chan error, len(runs))
	t0 := time.Now()
	for _, run := range runs {
		go func() { errc <- run() }()
	}
	for range runs {
		if err := <-errc; err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	var calls, errs int64
	firstErr := ""
	for _, r := range recs {
		calls += r.calls.Load()
		errs += r.errs.Load()
		if v, ok := r.firstErr.Load().(string); ok && firstErr == "" {
			firstErr = v
		}
	}
	if calls != n || errs != 0 {
		return fmt.Errorf("load: %d of %d calls answered, %d failed (first: %s)", calls, n, errs, firstErr)
	}
	fmt.Fprintf(os.Stderr, "%d calls in %v\n", calls, time.Since(t0).Round(time.Millisecond))
	return nil
}

// cpuTimes are a process's CPU seconds in user space and in the kernel.
type cpuTimes struct{ user, sys float64 }

func (c cpuTimes) total() float64 { return c.user + c.sys }

// procCPU returns the CPU seconds pid has used; user is -1 when unknown.
func procCPU(pid int) cpuTimes {
	unknown := cpuTimes{user: -1}
	if pid == 0 {
		return unknown
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return unknown
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	s := string(b)
	s = s[strings.LastIndexByte(s, ')')+2:]
	f := strings.Fields(s)
	if len(f) < 13 {
		return unknown
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return cpuTimes{user: ut / 100, sys: st / 100} // USER_HZ is 100 on Linux
}

// procSyscalls returns the read and write system calls pid has made
// (syscr + syscw of /proc/PID/io), or -1.
func procSyscalls(pid int) int64 {
	if pid == 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	var n int64
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok && (k == "syscr" || k == "syscw") {
			c, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			n += c
			found++
		}
	}
	if found != 2 {
		return -1
	}
	return n
}

// rssSampler tracks a process's resident set size, its children's
// included (keymint serve's password hashing worker) unless self, from
// /proc/PID/status.
type rssSampler struct {
	pid              int
	self             bool
	first, max, last float64
	min              float64
	n                int
}

func (r *rssSampler) sample() {
	if r.pid == 0 {
		return
	}
	kb, ok := vmRSSKiB(r.pid)
	if !ok {
		return
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", r.pid, r.pid)); err == nil && !r.self {
		for _, c := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(c); err == nil {
				ckb, _ := vmRSSKiB(pid)
				kb += ckb
			}
		}
	}
	mb := kb / 1024
	if r.n == 0 {
		r.first, r.min = mb, mb
	}
	r.min = min(r.min, mb)
	r.n++
	r.max = max(r.max, mb)
	r.last = mb
}

// vmRSSKiB is pid's VmRSS.
func vmRSSKiB(pid int) (float64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb, err == nil
		}
	}
	return 0, false
}
