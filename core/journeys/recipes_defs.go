package journeys

import (
	"fmt"
	"sort"

	"github.com/omni/omni/core/journeys/graph"
)

// The recipes. Event types and property names are the ones the built-in
// connectors and the tracking API emit: Shopify's checkout.started and
// order.placed both carry checkout_token (the same cart), a page call
// analytics.page('Product') is page.viewed with properties.name
// "Product", a consent change is consent.changed {channel, status}.
var recipes = []*Recipe{
	{
		ID:   "abandoned_checkout",
		Name: "Abandoned checkout",
		Description: "A customer starts a checkout (Shopify) and does not finish it: a reminder on WhatsApp if they " +
			"opted in there, else by email; if there is still no order, a discount code by email. Stops as soon as they buy.",
		Needs: []string{"whatsapp", "email"},
		Params: []RecipeParam{
			{Name: "wait", Label: "Remind after", Type: "duration", Default: "1h"},
			{Name: "min_total", Label: "Only for carts of at least", Type: "number", Default: 0.0, Help: "0: every cart"},
			{Name: "second_wait", Label: "Send the discount after another", Type: "duration", Default: "24h"},
			{Name: "discount_code", Label: "Discount code", Type: "code", Default: "COMEBACK10"},
			{Name: "discount_percent", Label: "Discount (%)", Type: "number", Default: 10.0},
			{Name: "goal_within", Label: "Count an order as won within", Type: "duration", Default: "7d"},
			{Name: "whatsapp_template", Label: "Approved WhatsApp template", Type: "text", Default: "",
				Help: "The name of a template approved in WhatsApp Manager, sent with the customer's first name and the checkout link. " +
					"Empty: WhatsApp only to customers who wrote in the last 24 hours, everyone else by email."},
			{Name: "whatsapp_language", Label: "Its language code", Type: "text", Default: "en_US"},
		},
		build: func(p recipeParams) recipeDraft {
			g := &graph.Graph{
				Trigger: graph.Trigger{Event: "checkout.started"},
				Goal:    &graph.Goal{Event: "order.placed", Within: p.str("goal_within"), Exit: true},
				Start:   "wait_order",
				Nodes: map[string]*graph.Node{
					"wait_order": {Type: graph.WaitForEvent, Name: "Wait for the order", Event: "order.placed",
						Match: []string{"checkout_token"}, Timeout: p.str("wait"),
						Next: graph.Next{"happened": "done", "timed_out": "remind"}},
					"remind": {Type: graph.Send, Name: "Reminder", Channels: []string{"whatsapp", "email"},
						Template: "Abandoned checkout · reminder", Kind: "marketing",
						Next: graph.Next{"sent": "wait_again", "suppressed": "wait_again"}},
					"wait_again": {Type: graph.WaitForEvent, Name: "Wait for the order again", Event: "order.placed",
						Match: []string{"checkout_token"}, Timeout: p.str("second_wait"),
						Next: graph.Next{"happened": "done", "timed_out": "discount"}},
					"discount": {Type: graph.Send, Name: "Discount code", Channels: []string{"email"},
						Template: "Abandoned checkout · discount", Kind: "marketing",
						Next: graph.Next{"sent": "done", "suppressed": "done"}},
					"done": {Type: graph.Exit},
				},
			}
			if min := p.num("min_total"); min > 0 {
				g.Trigger.Where = &graph.Where{Property: "total", Op: "gte", Value: min}
			}
			if name := p.str("whatsapp_template"); name != "" {
				g.Nodes["remind"].WATemplate = &graph.WATemplate{Name: name, Language: p.str("whatsapp_language"),
					Params: []string{`{{ customer.first_name | default: "there" }}`, "{{ event.properties.abandoned_checkout_url }}"}}
			}
			return recipeDraft{Graph: layoutRecipe(g), Settings: graph.Settings{Reentry: "cooldown", Cooldown: "7d"},
				Templates: []recipeTemplate{
					{Name: "Abandoned checkout · reminder", Channel: "email", Kind: "marketing",
						Subject: "You left something in your cart",
						Body: `Hi {{ customer.first_name | default: "there" }},

your cart at {{ shop.name }} is still waiting for you. Pick up where you left off:
{{ event.properties.abandoned_checkout_url | default: shop.url }}

Unsubscribe: {{ unsubscribe_url }}`},
					{Name: "Abandoned checkout · discount", Channel: "email", Kind: "marketing",
						Subject: fmt.Sprintf("%g%% off to finish your order", p.num("discount_percent")),
						Body: fmt.Sprintf(`Hi {{ customer.first_name | default: "there" }},

still thinking it over? Use the code %s at checkout for %g%% off:
{{ event.properties.abandoned_checkout_url | default: shop.url }}

Unsubscribe: {{ unsubscribe_url }}`, p.str("discount_code"), p.num("discount_percent"))},
				}}
		},
	},
	{
		ID:   "browse_abandonment",
		Name: "Browse abandonment",
		Description: "A customer views a product page (analytics.page('Product')) and does not start a checkout: " +
			"one email pointing back to it. Stops if they order.",
		Needs: []string{"email"},
		Params: []RecipeParam{
			{Name: "page_name", Label: "Page name of product pages", Type: "text", Default: "Product",
				Help: "The name your storefront gives product pages in analytics.page(name)."},
			{Name: "wait", Label: "Email if no checkout within", Type: "duration", Default: "2h"},
			{Name: "goal_within", Label: "Count an order as won within", Type: "duration", Default: "3d"},
		},
		build: func(p recipeParams) recipeDraft {
			g := &graph.Graph{
				Trigger: graph.Trigger{Event: "page.viewed", Where: &graph.Where{Property: "name", Op: "eq", Value: p.str("page_name")}},
				Goal:    &graph.Goal{Event: "order.placed", Within: p.str("goal_within"), Exit: true},
				Start:   "wait_checkout",
				Nodes: map[string]*graph.Node{
					"wait_checkout": {Type: graph.WaitForEvent, Name: "Wait for a checkout", Event: "checkout.started",
						Timeout: p.str("wait"), Next: graph.Next{"happened": "done", "timed_out": "nudge"}},
					"nudge": {Type: graph.Send, Name: "Still looking?", Channels: []string{"email"},
						Template: "Browse abandonment · still looking", Kind: "marketing",
						Next: graph.Next{"sent": "done", "suppressed": "done"}},
					"done": {Type: graph.Exit},
				},
			}
			return recipeDraft{Graph: layoutRecipe(g), Settings: graph.Settings{Reentry: "cooldown", Cooldown: "7d"},
				Templates: []recipeTemplate{{Name: "Browse abandonment · still looking", Channel: "email", Kind: "marketing",
					Subject: "Still thinking about it?",
					Body: `Hi {{ customer.first_name | default: "there" }},

you were looking at {{ event.properties.title | default: "something we think you'll like" }} at {{ shop.name }}.
It's still here: {{ event.properties.url | default: shop.url }}

Unsubscribe: {{ unsubscribe_url }}`}}}
		},
	},
	{
		ID:          "welcome_series",
		Name:        "Welcome series",
		Description: "A customer subscribes to email: three emails over a week, the last with a first-order discount.",
		Needs:       []string{"email"},
		Params: []RecipeParam{
			{Name: "second_after", Label: "Second email after", Type: "duration", Default: "2d"},
			{Name: "third_after", Label: "Third email after another", Type: "duration", Default: "5d"},
			{Name: "discount_code", Label: "First-order discount code", Type: "code", Default: "WELCOME10"},
		},
		build: func(p recipeParams) recipeDraft {
			g := &graph.Graph{
				Trigger: graph.Trigger{Event: "consent.changed", Where: &graph.Where{And: []*graph.Where{
					{Property: "channel", Op: "eq", Value: "email"}, {Property: "status", Op: "eq", Value: "subscribed"}}}},
				Goal:  &graph.Goal{Event: "order.placed", Within: "14d"},
				Start: "hello",
				Nodes: map[string]*graph.Node{
					"hello": {Type: graph.Send, Name: "Welcome", Channels: []string{"email"}, Template: "Welcome · 1 hello",
						Kind: "marketing", Next: graph.Next{"sent": "pause1", "suppressed": "pause1"}},
					"pause1": {Type: graph.Wait, Duration: p.str("second_after"), Next: graph.Next{"next": "story"}},
					"story": {Type: graph.Send, Name: "Our story", Channels: []string{"email"}, Template: "Welcome · 2 our story",
						Kind: "marketing", Next: graph.Next{"sent": "pause2", "suppressed": "pause2"}},
					"pause2": {Type: graph.Wait, Duration: p.str("third_after"), Next: graph.Next{"next": "offer"}},
					"offer": {Type: graph.Send, Name: "First-order offer", Channels: []string{"email"}, Template: "Welcome · 3 offer",
						Kind: "marketing", Next: graph.Next{"sent": "done", "suppressed": "done"}},
					"done": {Type: graph.Exit},
				},
			}
			foot := "\n\nUnsubscribe: {{ unsubscribe_url }}"
			return recipeDraft{Graph: layoutRecipe(g), Settings: graph.Settings{Reentry: "once"},
				Templates: []recipeTemplate{
					{Name: "Welcome · 1 hello", Channel: "email", Kind: "marketing", Subject: "Welcome to {{ shop.name }}",
						Body: `Hi {{ customer.first_name | default: "there" }}, thanks for subscribing to {{ shop.name }}. Have a look around: {{ shop.url }}` + foot},
					{Name: "Welcome · 2 our story", Channel: "email", Kind: "marketing", Subject: "Who we are",
						Body: `Hi {{ customer.first_name | default: "there" }}, a few words about {{ shop.name }} and what we make: {{ shop.url }}` + foot},
					{Name: "Welcome · 3 offer", Channel: "email", Kind: "marketing", Subject: "A little something for your first order",
						Body: `Hi {{ customer.first_name | default: "there" }}, use the code ` + p.str("discount_code") +
							` on your first order at {{ shop.url }}` + foot},
				}}
		},
	},
	{
		ID:          "post_purchase",
		Name:        "Post-purchase thank-you and review request",
		Description: "After every order: a thank-you at once, and a review request some days later.",
		Needs:       []string{"email"},
		Params: []RecipeParam{
			{Name: "review_after", Label: "Ask for a review after", Type: "duration", Default: "7d"},
			{Name: "review_url", Label: "Review page", Type: "text", Default: "", Help: "Empty: the shop's own address."},
		},
		build: func(p recipeParams) recipeDraft {
			g := &graph.Graph{
				Trigger: graph.Trigger{Event: "order.placed"},
				Start:   "thanks",
				Nodes: map[string]*graph.Node{
					"thanks": {Type: graph.Send, Name: "Thank you", Channels: []string{"email"}, Template: "Post-purchase · thank you",
						Kind: "marketing", Next: graph.Next{"sent": "pause", "suppressed": "pause"}},
					"pause": {Type: graph.Wait, Duration: p.str("review_after"), Next: graph.Next{"next": "review"}},
					"review": {Type: graph.Send, Name: "Review request", Channels: []string{"email"}, Template: "Post-purchase · review request",
						Kind: "marketing", Next: graph.Next{"sent": "done", "suppressed": "done"}},
					"done": {Type: graph.Exit},
				},
			}
			review := "{{ shop.url }}"
			if u := p.str("review_url"); u != "" {
				review = u
			}
			return recipeDraft{Graph: layoutRecipe(g), Settings: graph.Settings{Reentry: "every_time"},
				Templates: []recipeTemplate{
					// Marketing like every recipe send: the shop's own order
					// confirmation is the transactional message.
					{Name: "Post-purchase · thank you", Channel: "email", Kind: "marketing",
						Subject: "Thank you for your order {{ event.properties.order_name }}",
						Body: `Hi {{ customer.first_name | default: "there" }}, thank you for shopping at {{ shop.name }}. We hope you love it.` +
							"\n\nUnsubscribe: {{ unsubscribe_url }}"},
					{Name: "Post-purchase · review request", Channel: "email", Kind: "marketing",
						Subject: "How was your order?",
						Body: `Hi {{ customer.first_name | default: "there" }}, we hope you're enjoying your order. Would you tell others what you think? ` +
							review + "\n\nUnsubscribe: {{ unsubscribe_url }}"},
				}}
		},
	},
	{
		ID:          "win_back",
		Name:        "Win-back",
		Description: "A customer has not ordered for 90 days: a we-miss-you email with a code, and a last reminder two weeks later.",
		Needs:       []string{"email"},
		Params: []RecipeParam{
			{Name: "after_days", Label: "Days since the last order", Type: "days", Default: 90.0},
			{Name: "discount_code", Label: "Discount code", Type: "code", Default: "MISSYOU15"},
			{Name: "reminder_after", Label: "Last reminder after", Type: "duration", Default: "14d"},
		},
		build: func(p recipeParams) recipeDraft {
			g := &graph.Graph{
				Trigger: graph.Trigger{Date: &graph.DateTrigger{Property: "last_order_at", Offset: fmt.Sprintf("%dd", int(p.num("after_days"))), At: "10:00"}},
				Goal:    &graph.Goal{Event: "order.placed", Within: "30d", Exit: true},
				Start:   "miss_you",
				Nodes: map[string]*graph.Node{
					"miss_you": {Type: graph.Send, Name: "We miss you", Channels: []string{"email"}, Template: "Win-back · we miss you",
						Kind: "marketing", Next: graph.Next{"sent": "wait_order", "suppressed": "done"}},
					"wait_order": {Type: graph.WaitForEvent, Name: "Wait for an order", Event: "order.placed", Timeout: p.str("reminder_after"),
						Next: graph.Next{"happened": "done", "timed_out": "last_call"}},
					"last_call": {Type: graph.Send, Name: "Last reminder", Channels: []string{"email"}, Template: "Win-back · last reminder",
						Kind: "marketing", Next: graph.Next{"sent": "done", "suppressed": "done"}},
					"done": {Type: graph.Exit},
				},
			}
			foot := "\n\nUnsubscribe: {{ unsubscribe_url }}"
			code := p.str("discount_code")
			return recipeDraft{Graph: layoutRecipe(g), Settings: graph.Settings{Reentry: "cooldown", Cooldown: "30d"},
				Templates: []recipeTemplate{
					{Name: "Win-back · we miss you", Channel: "email", Kind: "marketing", Subject: "We miss you at {{ shop.name }}",
						Body: `Hi {{ customer.first_name | default: "there" }}, it's been a while. Here's a code for your next order: ` + code + ` {{ shop.url }}` + foot},
					{Name: "Win-back · last reminder", Channel: "email", Kind: "marketing", Subject: "Your code is still waiting",
						Body: `Hi {{ customer.first_name | default: "there" }}, a last reminder: the code ` + code + ` still works at {{ shop.url }}` + foot},
				}}
		},
	},
	{
		ID:          "birthday",
		Name:        "Birthday",
		Description: "On a customer's birthday (the birthday trait), a greeting with a gift code, every year.",
		Needs:       []string{"email"},
		Params: []RecipeParam{
			{Name: "discount_code", Label: "Gift code", Type: "code", Default: "BIRTHDAY"},
			{Name: "at", Label: "Send at (their time)", Type: "text", Default: "09:00"},
		},
		build: func(p recipeParams) recipeDraft {
			g := &graph.Graph{
				Trigger: graph.Trigger{Date: &graph.DateTrigger{Property: "birthday", Yearly: true, At: p.str("at")}},
				Goal:    &graph.Goal{Event: "order.placed", Within: "14d"},
				Start:   "greet",
				Nodes: map[string]*graph.Node{
					"greet": {Type: graph.Send, Name: "Happy birthday", Channels: []string{"email"}, Template: "Birthday · greeting",
						Kind: "marketing", Next: graph.Next{"sent": "done", "suppressed": "done"}},
					"done": {Type: graph.Exit},
				},
			}
			return recipeDraft{Graph: layoutRecipe(g), Settings: graph.Settings{Reentry: "cooldown", Cooldown: "300d"},
				Templates: []recipeTemplate{{Name: "Birthday · greeting", Channel: "email", Kind: "marketing",
					Subject: `Happy birthday, {{ customer.first_name | default: "friend" }}!`,
					Body: `Happy birthday from all of us at {{ shop.name }}! Treat yourself with the code ` + p.str("discount_code") +
						` at {{ shop.url }}` + "\n\nUnsubscribe: {{ unsubscribe_url }}"}}}
		},
	},
	{
		ID:   "back_in_stock",
		Name: "Back in stock (placeholder)",
		Description: "Tell customers an item is available again. A placeholder until a stock event exists: enrol customers by hand " +
			"or through the API (POST /api/v1/journeys/{id}/enrol).",
		Needs:  []string{"email"},
		Params: []RecipeParam{},
		build: func(p recipeParams) recipeDraft {
			g := &graph.Graph{
				Trigger: graph.Trigger{Manual: true},
				Goal:    &graph.Goal{Event: "order.placed", Within: "7d"},
				Start:   "tell",
				Nodes: map[string]*graph.Node{
					"tell": {Type: graph.Send, Name: "Back in stock", Channels: []string{"email"}, Template: "Back in stock",
						Kind: "marketing", Next: graph.Next{"sent": "done", "suppressed": "done"}},
					"done": {Type: graph.Exit},
				},
			}
			return recipeDraft{Graph: layoutRecipe(g), Settings: graph.Settings{Reentry: "every_time"},
				Templates: []recipeTemplate{{Name: "Back in stock", Channel: "email", Kind: "marketing",
					Subject: "It's back",
					Body: `Hi {{ customer.first_name | default: "there" }}, good news: {{ event.properties.product_name | default: "the item you wanted" }} ` +
						`is back in stock at {{ shop.name }}: {{ event.properties.product_url | default: shop.url }}` + "\n\nUnsubscribe: {{ unsubscribe_url }}"}}}
		},
	},
}

// layoutRecipe places a recipe's steps on the canvas: one row per step's
// distance from the start, the steps of a row side by side.
func layoutRecipe(g *graph.Graph) *graph.Graph {
	const dx, dy = 280.0, 160.0
	depth := map[string]int{g.Start: 0}
	queue := []string{g.Start}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		n := g.Nodes[id]
		if n == nil {
			continue
		}
		exits := make([]string, 0, len(n.Next))
		for e := range n.Next {
			exits = append(exits, e)
		}
		sort.Strings(exits)
		for _, e := range exits {
			to := n.Next[e]
			if _, seen := depth[to]; !seen && g.Nodes[to] != nil {
				depth[to] = depth[id] + 1
				queue = append(queue, to)
			}
		}
	}
	rows := map[int][]string{}
	for id, d := range depth {
		rows[d] = append(rows[d], id)
	}
	g.Layout = map[string]graph.Position{}
	for d, ids := range rows {
		sort.Strings(ids)
		for i, id := range ids {
			g.Layout[id] = graph.Position{X: (float64(i) - float64(len(ids)-1)/2) * dx, Y: float64(d) * dy}
		}
	}
	return g
}
