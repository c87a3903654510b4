package shopify

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Topics are the webhook topics Omni subscribes to, REST name → GraphQL enum.
var Topics = []struct{ Name, Enum string }{
	{"orders/create", "ORDERS_CREATE"},
	{"orders/paid", "ORDERS_PAID"},
	{"orders/cancelled", "ORDERS_CANCELLED"},
	{"refunds/create", "REFUNDS_CREATE"},
	{"checkouts/create", "CHECKOUTS_CREATE"},
	{"checkouts/update", "CHECKOUTS_UPDATE"},
	{"customers/create", "CUSTOMERS_CREATE"},
	{"customers/update", "CUSTOMERS_UPDATE"},
	{"customers/email_marketing_consent/update", "CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE"},
	{"customers/marketing_consent/update", "CUSTOMERS_MARKETING_CONSENT_UPDATE"},
}

const listSubscriptions = `query Subs($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id topic uri }
  }
}`

const createSubscription = `mutation Sub($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}`

// Registration says what RegisterWebhooks did.
type Registration struct {
	Created  []string // topics subscribed now
	Existing []string // topics already pointing at the webhook URL
}

// RegisterWebhooks makes sure every topic in Topics delivers to the
// configured webhook URL, creating only the missing subscriptions.
func (c *Connector) RegisterWebhooks(ctx context.Context) (*Registration, error) {
	s, api, ok := c.settings()
	if !ok {
		return nil, errNotConfigured
	}
	if s.webhookURL == "" {
		return nil, errors.New(KeyWebhookURL + ": is required to register webhooks")
	}
	have := map[string]bool{}
	var after any
	for {
		var out struct {
			WebhookSubscriptions struct {
				PageInfo pageInfo `json:"pageInfo"`
				Nodes    []struct {
					ID    string `json:"id"`
					Topic string `json:"topic"`
					URI   string `json:"uri"`
				} `json:"nodes"`
			} `json:"webhookSubscriptions"`
		}
		if err := api.query(ctx, listSubscriptions, map[string]any{"after": after}, &out); err != nil {
			return nil, err
		}
		for _, n := range out.WebhookSubscriptions.Nodes {
			if n.URI == s.webhookURL {
				have[n.Topic] = true
			}
		}
		if !out.WebhookSubscriptions.PageInfo.HasNextPage {
			break
		}
		after = out.WebhookSubscriptions.PageInfo.EndCursor
	}
	res := &Registration{}
	for _, t := range Topics {
		if have[t.Enum] {
			res.Existing = append(res.Existing, t.Name)
			continue
		}
		var out struct {
			WebhookSubscriptionCreate struct {
				UserErrors []struct {
					Field   []string `json:"field"`
					Message string   `json:"message"`
				} `json:"userErrors"`
			} `json:"webhookSubscriptionCreate"`
		}
		if err := api.query(ctx, createSubscription, map[string]any{"topic": t.Enum, "uri": s.webhookURL}, &out); err != nil {
			return res, fmt.Errorf("subscribing %s: %w", t.Name, err)
		}
		if ue := out.WebhookSubscriptionCreate.UserErrors; len(ue) > 0 {
			msgs := make([]string, len(ue))
			for i, e := range ue {
				msgs[i] = e.Message
			}
			return res, fmt.Errorf("subscribing %s: %s", t.Name, strings.Join(msgs, "; "))
		}
		res.Created = append(res.Created, t.Name)
	}
	return res, nil
}

// ManualInstructions says how to create the subscriptions by hand when the
// token may not (it needs the scopes of each topic's resource).
func ManualInstructions(webhookURL, version string) string {
	if webhookURL == "" {
		webhookURL = "https://<your-omni-host>/webhooks/shopify"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "In Shopify admin open Settings → Apps and sales channels → Develop apps → <your app> → Configuration, "+
		"make sure the Admin API scopes read_orders, read_customers and read_checkouts are granted, then either reinstall the app "+
		"so Omni can register the webhooks itself, or under Settings → Notifications → Webhooks create one webhook per topic "+
		"(format JSON, API version %s, URL %s): ", version, webhookURL)
	names := make([]string, len(Topics))
	for i, t := range Topics {
		names[i] = t.Name
	}
	b.WriteString(strings.Join(names, ", "))
	b.WriteString(". Note: webhooks created in Settings → Notifications are signed with the key shown on that page; put that key in webhook_secret.")
	return b.String()
}
