package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
	"github.com/keymint/keymint/services/webhooks"
)

const webhookUsage = "usage: keymint webhook create --org NAME --url URL --events TYPE,... [--description D] | list --org NAME | delete --org NAME --id ID | deliveries --org NAME --id ID [--limit N] | replay --org NAME --delivery ID"

// runWebhook manages an organization's webhook endpoints on the store
// directly, as an operator acting for the org's admins (like user create).
// It goes through the same WebhookService code as the API, so the same
// checks apply (https, public addresses unless --webhooks-allow-private).
func runWebhook(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(webhookUsage)
	}
	var c Config
	var org, url, types, description, id, delivery string
	var limit int
	fs := flag.NewFlagSet("webhook "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&org, "org", "", "organization name (required)")
	switch args[0] {
	case "create":
		fs.StringVar(&url, "url", "", "the endpoint's URL (required)")
		fs.StringVar(&types, "events", "", `comma-separated event types, or "*" for all (required)`)
		fs.StringVar(&description, "description", "", "what the endpoint is for")
	case "delete", "deliveries":
		fs.StringVar(&id, "id", "", "the webhook's id (required)")
		fs.IntVar(&limit, "limit", 20, "deliveries to list, newest first (at most 100)")
	case "replay":
		fs.StringVar(&delivery, "delivery", "", "the delivery's id (required)")
	case "list":
	default:
		return errors.New(webhookUsage)
	}
	bindFlags(fs, &c, append(storeFlags, "webhooks")...)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := c.validate(fs); err != nil {
		return err
	}
	if org == "" {
		return errors.New("--org is required")
	}
	log := c.logger(stderr)
	st, err := openStore(ctx, &c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	sealer, err := c.Webhooks.sealer(c.DataDir, c.DatabaseURL == "", log)
	if err != nil {
		return err
	}
	o, err := st.EnsureOrg(ctx, org)
	if err != nil {
		return err
	}
	srv := webhooks.NewServer(webhooks.ServerConfig{Store: st, Sealer: sealer, Guard: webhooks.Guard{AllowPrivate: c.Webhooks.AllowPrivate},
		MaxEndpoints: int(c.Webhooks.MaxEndpoints), Logger: log})
	ctx = authn.WithPrincipal(ctx, authn.Principal{OrgID: o.ID, Admin: true, Email: "keymint-cli"})
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch args[0] {
	case "create":
		var list []string
		for _, t := range strings.Split(types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				list = append(list, t)
			}
		}
		r, err := srv.CreateWebhook(ctx, &keymintv1.CreateWebhookRequest{Url: url, Description: description, EventTypes: list})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created webhook %s for %s (%s)\nsigning secret, shown this once: %s\n",
			r.Webhook.Id, r.Webhook.Url, strings.Join(r.Webhook.EventTypes, ","), r.Secret)
	case "list":
		r, err := srv.ListWebhooks(ctx, &keymintv1.ListWebhooksRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tURL\tEVENTS\tENABLED\tFAILING SINCE")
		for _, w := range r.Webhooks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", w.Id, w.Url, strings.Join(w.EventTypes, ","), w.Enabled, stamp(w.FailingSince.AsTime(), w.FailingSince != nil))
		}
	case "delete":
		if _, err := srv.DeleteWebhook(ctx, &keymintv1.DeleteWebhookRequest{Id: id}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted webhook %s\n", id)
	case "deliveries":
		r, err := srv.ListWebhookDeliveries(ctx, &keymintv1.ListWebhookDeliveriesRequest{WebhookId: id, PageSize: int32(min(max(limit, 1), 100))})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tEVENT\tTYPE\tSTATE\tATTEMPTS\tSTATUS\tLATENCY\tERROR\tNEXT TRY")
		for _, d := range r.Deliveries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", d.Id, d.EventId, d.EventType, d.State, d.Attempts,
				d.LastStatusCode, d.LastLatency.AsDuration().Round(time.Millisecond), d.LastError,
				stamp(d.NextAttemptTime.AsTime(), d.NextAttemptTime != nil))
		}
	case "replay":
		d, err := srv.ReplayWebhookDelivery(ctx, &keymintv1.ReplayWebhookDeliveryRequest{Id: delivery})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "queued delivery %s of event %s again\n", d.Id, d.EventId)
	}
	return nil
}

func stamp(t time.Time, set bool) string {
	if !set {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
