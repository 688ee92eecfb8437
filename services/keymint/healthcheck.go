package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheckTimeout bounds the whole probe.
const healthcheckTimeout = 2 * time.Second

// healthcheckCmd is `keymint healthcheck`: is the keymint on --http-addr
// ready (GET /readyz)? For container healthchecks: the image has no shell
// or curl. A wildcard listen address is probed on loopback.
type healthcheckCmd struct {
	HTTPAddr string `name:"http-addr" env:"KEYMINT_HTTP_ADDR" default:"127.0.0.1:8080" help:"The listen address of the keymint to probe."`
}

func (c *healthcheckCmd) Run(env *cliEnv) error {
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http-addr %q: %w", c.HTTPAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(env.ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", resp.StatusCode)
	}
	return nil
}
