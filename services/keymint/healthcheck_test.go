package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t))
	addr := strings.TrimPrefix(srv.URL, "http://")
	if err := runHealthcheck(context.Background(), []string{"--http-addr", addr}, io.Discard); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	// A wildcard listen address is probed on loopback.
	port := addr[strings.LastIndex(addr, ":"):]
	if err := runHealthcheck(context.Background(), []string{"--http-addr", "0.0.0.0" + port}, io.Discard); err != nil {
		t.Fatalf("wildcard address: %v", err)
	}
	srv.Stop()
	if err := runHealthcheck(context.Background(), []string{"--http-addr", addr}, io.Discard); err == nil {
		t.Fatal("healthcheck passed with keymint stopped")
	}
	if err := runHealthcheck(context.Background(), []string{"--http-addr", "nonsense"}, io.Discard); err == nil {
		t.Fatal("healthcheck accepted a bad address")
	}
}
