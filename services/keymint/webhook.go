package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/server"
	"github.com/keymint/keymint/services/webhooks"
)

// webhookCmd manages an organization's webhook endpoints on the store
// directly, as an operator acting for the org's admins (like user create).
// It goes through the same WebhookService code as the API, so the same
// checks apply (https, public addresses unless --webhooks-allow-private).
type webhookCmd struct {
	Create     webhookCreateCmd     `cmd:"" help:"Add a webhook endpoint; prints its signing secret once."`
	List       webhookListCmd       `cmd:"" help:"List the organization's webhook endpoints."`
	Delete     webhookDeleteCmd     `cmd:"" help:"Delete a webhook endpoint."`
	Deliveries webhookDeliveriesCmd `cmd:"" help:"List an endpoint's deliveries, newest first."`
	Replay     webhookReplayCmd     `cmd:"" help:"Queue a delivery again."`
}

// webhookStore is what every webhook command opens: the org's store and
// the webhook settings.
type webhookStore struct {
	Org string `name:"org" help:"Organization name (required)."`
	server.StoreConfig
	server.LogConfig
	server.WebhooksConfig
}

// BeforeApply reads the webhook key, never a flag (flags show in ps).
func (c *webhookStore) BeforeApply() error {
	c.Key = os.Getenv("KEYMINT_WEBHOOK_KEY")
	return nil
}

func (c *webhookStore) Validate() error {
	var missing []string
	if c.Org == "" {
		missing = append(missing, "--org is required")
	}
	return server.ProblemsOf(missing, c.StoreConfig.Problems(), c.LogConfig.Problems(), c.WebhooksConfig.Problems())
}

// open runs f with the WebhookService acting as an admin of the org.
func (c *webhookStore) open(env *cliEnv, f func(ctx context.Context, srv *webhooks.Server, tw *tabwriter.Writer) error) error {
	log := c.Logger(env.stderr)
	st, err := server.OpenStore(env.ctx, c.StoreConfig, log)
	if err != nil {
		return err
	}
	defer st.Close()
	sealer, err := c.Sealer(c.DataDir, c.DatabaseURL == "", log)
	if err != nil {
		return err
	}
	o, err := st.EnsureOrg(env.ctx, c.Org)
	if err != nil {
		return err
	}
	srv := webhooks.NewServer(webhooks.ServerConfig{Store: st, Sealer: sealer, Guard: webhooks.Guard{AllowPrivate: c.AllowPrivate},
		MaxEndpoints: int(c.MaxEndpoints), Logger: log})
	ctx := authn.WithPrincipal(env.ctx, authn.Principal{OrgID: o.ID, Admin: true, Email: "keymint-cli"})
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	return f(ctx, srv, tw)
}

type webhookCreateCmd struct {
	webhookStore
	URL         string `name:"url" help:"The endpoint's URL (required)."`
	Events      string `name:"events" help:"Comma-separated event types, or \"*\" for all (required)."`
	Description string `name:"description" help:"What the endpoint is for."`
}

func (c *webhookCreateCmd) Run(env *cliEnv) error {
	return c.open(env, func(ctx context.Context, srv *webhooks.Server, _ *tabwriter.Writer) error {
		r, err := srv.CreateWebhook(ctx, &keymintv1.CreateWebhookRequest{Url: c.URL, Description: c.Description, EventTypes: splitList(c.Events)})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "created webhook %s for %s (%s)\nsigning secret, shown this once: %s\n",
			r.Webhook.Id, r.Webhook.Url, strings.Join(r.Webhook.EventTypes, ","), r.Secret)
		return nil
	})
}

type webhookListCmd struct{ webhookStore }

func (c *webhookListCmd) Run(env *cliEnv) error {
	return c.open(env, func(ctx context.Context, srv *webhooks.Server, tw *tabwriter.Writer) error {
		r, err := srv.ListWebhooks(ctx, &keymintv1.ListWebhooksRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tURL\tEVENTS\tENABLED\tFAILING SINCE")
		for _, w := range r.Webhooks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", w.Id, w.Url, strings.Join(w.EventTypes, ","), w.Enabled, stamp(w.FailingSince.AsTime(), w.FailingSince != nil))
		}
		return nil
	})
}

type webhookDeleteCmd struct {
	webhookStore
	ID string `name:"id" help:"The webhook's id (required)."`
}

func (c *webhookDeleteCmd) Run(env *cliEnv) error {
	return c.open(env, func(ctx context.Context, srv *webhooks.Server, _ *tabwriter.Writer) error {
		if _, err := srv.DeleteWebhook(ctx, &keymintv1.DeleteWebhookRequest{Id: c.ID}); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "deleted webhook %s\n", c.ID)
		return nil
	})
}

type webhookDeliveriesCmd struct {
	webhookStore
	ID    string `name:"id" help:"The webhook's id (required)."`
	Limit int    `name:"limit" default:"20" help:"Deliveries to list, newest first (at most 100)."`
}

func (c *webhookDeliveriesCmd) Run(env *cliEnv) error {
	return c.open(env, func(ctx context.Context, srv *webhooks.Server, tw *tabwriter.Writer) error {
		r, err := srv.ListWebhookDeliveries(ctx, &keymintv1.ListWebhookDeliveriesRequest{WebhookId: c.ID, PageSize: int32(min(max(c.Limit, 1), 100))})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tEVENT\tTYPE\tSTATE\tATTEMPTS\tSTATUS\tLATENCY\tERROR\tNEXT TRY")
		for _, d := range r.Deliveries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", d.Id, d.EventId, d.EventType, d.State, d.Attempts,
				d.LastStatusCode, d.LastLatency.AsDuration().Round(time.Millisecond), d.LastError,
				stamp(d.NextAttemptTime.AsTime(), d.NextAttemptTime != nil))
		}
		return nil
	})
}

type webhookReplayCmd struct {
	webhookStore
	Delivery string `name:"delivery" help:"The delivery's id (required)."`
}

func (c *webhookReplayCmd) Run(env *cliEnv) error {
	return c.open(env, func(ctx context.Context, srv *webhooks.Server, _ *tabwriter.Writer) error {
		d, err := srv.ReplayWebhookDelivery(ctx, &keymintv1.ReplayWebhookDeliveryRequest{Id: c.Delivery})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "queued delivery %s of event %s again\n", d.Id, d.EventId)
		return nil
	})
}

func stamp(t time.Time, set bool) string {
	if !set {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
