package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// MaxResponseBytes bounds how much of a response keymint reads (and
// discards): enough to reuse the connection, never a memory risk.
const MaxResponseBytes = 64 << 10

// Sender posts signed payloads. It follows no redirect (a 3xx is a failed
// attempt), uses no proxy from the environment (the dial check must see the
// receiver's own address), and bounds every attempt by its timeout.
type Sender struct {
	client *http.Client
	guard  Guard
}

// NewSender returns a Sender whose attempts take at most timeout.
func NewSender(g Guard, timeout time.Duration) *Sender {
	dialer := &net.Dialer{Timeout: timeout, Control: g.control}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Sender{guard: g, client: &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Send posts body to url with the Standard Webhooks headers and returns the
// response status. A non-nil error means no response (or an unreadable
// one); its text is short and safe to show to the org's admins.
func (s *Sender) Send(ctx context.Context, url, id string, ts time.Time, signature string, body []byte) (int, error) {
	// The dialer checks every address connected to; here only the form.
	if _, err := s.guard.checkSyntax(url); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("invalid url")
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("user-agent", "keymint-webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, signature)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, attemptError(err)
	}
	defer resp.Body.Close()
	_, _ = io.CopyN(io.Discard, resp.Body, MaxResponseBytes)
	return resp.StatusCode, nil
}

// attemptError is a short, fixed description of a failed request.
func attemptError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return ErrForbiddenAddress
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errors.New("timed out")
	case errors.Is(err, context.Canceled):
		return errors.New("canceled")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return errors.New("connection failed")
	}
	return fmt.Errorf("request failed")
}
