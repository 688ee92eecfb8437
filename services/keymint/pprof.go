//go:build pprof

// A keymint built with -tags pprof serves net/http/pprof on
// KEYMINT_PPROF_ADDR (loopback only), for taking the CPU profile that
// default.pgo is made from (README, Performance). Default builds have no
// profiling endpoint.
package main

import (
	"net"
	"net/http"
	_ "net/http/pprof" // registers on http.DefaultServeMux
	"os"
	"time"
)

func init() {
	addr := os.Getenv("KEYMINT_PPROF_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		panic("KEYMINT_PPROF_ADDR must be a loopback host:port")
	}
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
}
