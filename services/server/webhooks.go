package server

import (
	"context"
	"sync"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/audit"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/webhooks"
)

// setupWebhooks registers WebhookService and, when a webhook key is
// configured, builds the dispatcher and the expiry scheduler.
func (s *Server) setupWebhooks(_ context.Context, st store.Store, auditLog *audit.Recorder) error {
	c := &s.cfg.Webhooks
	sealer, err := c.Sealer(s.cfg.DataDir, s.cfg.DatabaseURL == "", s.log)
	if err != nil {
		return err
	}
	guard := webhooks.Guard{AllowPrivate: c.AllowPrivate}
	keymintv1.RegisterWebhookServiceServer(s.grpc, webhooks.NewServer(webhooks.ServerConfig{Store: st, Sealer: sealer,
		Guard: guard, Audit: auditLog, Logger: s.log, MaxEndpoints: int(c.MaxEndpoints)}))
	if sealer == nil {
		return nil
	}
	if c.AllowPrivate {
		s.log.Warn("webhooks may reach private and loopback addresses over plain http (--webhooks-allow-private)")
	}
	windows, err := c.windows()
	if err != nil {
		return err
	}
	s.dispatcher = webhooks.NewDispatcher(webhooks.DispatcherConfig{Store: st, Sealer: sealer,
		Sender: webhooks.NewSender(guard, c.Timeout), Audit: auditLog, Logger: s.log, Concurrency: int(c.Concurrency),
		Timeout: c.Timeout, Lease: c.Lease, RetryFor: c.RetryFor, DisableAfter: c.DisableAfter, Poll: c.Poll})
	s.expiry = webhooks.NewScheduler(webhooks.SchedulerConfig{Store: st, Logger: s.log, Windows: windows,
		Interval: c.ScanInterval})
	return nil
}

// runWebhooks starts the dispatcher and the scheduler; the channel closes
// when both stopped after ctx ended (attempts in flight finish first).
func (s *Server) runWebhooks(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if s.dispatcher != nil {
		wg.Add(3)
		go func() { defer wg.Done(); s.dispatcher.Run(ctx) }()
		go func() { defer wg.Done(); s.expiry.Run(ctx) }()
		go func() { defer wg.Done(); s.throttleNotices.Run(ctx) }()
	}
	go func() { wg.Wait(); close(done) }()
	return done
}
