package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
)

// seedCounts says what the seed wrote.
type seedCounts struct {
	Events        int `json:"events"`
	Customers     int `json:"customers"`
	Orders        int `json:"orders"`
	Refunds       int `json:"refunds"`
	Messages      int `json:"messages"`
	JourneyRuns   int `json:"journey_runs"`
	Conversations int `json:"conversations"`
}

const pbTime = "2006-01-02 15:04:05.000Z"

// seeder writes a shop's history straight into the tables the modules
// own, with plain SQL in large transactions: the rows the events consumer
// and the modules would have written, minus their cost. Every number comes
// from one seeded generator, so two runs seed the same shop.
type seeder struct {
	o       *app.Omni
	rng     *rand.Rand
	now     time.Time
	span    time.Duration // history length, ending now
	agents  []string
	journey []string
	n       seedCounts

	// a customer's last order, for refunds and cancellations of it
	lastOrder map[int]order
}

type order struct {
	id       string
	total    float64
	currency string
	at       time.Time
}

var (
	campaigns = []map[string]string{
		{"source": "newsletter", "medium": "email", "name": "spring-sale"},
		{"source": "google", "medium": "cpc", "name": "brand"},
		{"source": "instagram", "medium": "social", "name": "summer-drop"},
		{"source": "facebook", "medium": "paid_social", "name": "black-friday"},
		{"source": "newsletter", "medium": "email", "name": "weekly"},
	}
	orderChannels = []string{"web", "web", "web", "web", "web", "web", "web", "pos", "pos", "whatsapp"}
)

// insert is one prepared INSERT for table with the given columns (the
// others take their PocketBase defaults).
func insert(tx core.App, table string, cols ...string) *dbx.Query {
	sql := "INSERT INTO " + table + " ("
	vals := ""
	for i, c := range cols {
		if i > 0 {
			sql += ", "
			vals += ", "
		}
		sql += "[[" + c + "]]"
		vals += "{:" + c + "}"
	}
	return tx.DB().NewQuery(sql + ") VALUES (" + vals + ")").Prepare()
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *seeder) at() time.Time {
	return s.now.Add(-time.Duration(s.rng.Int64N(int64(s.span))))
}

// staff creates the owner (whose token the bench uses) and three agents.
func (s *seeder) staff() (string, error) {
	col, err := s.o.PB.FindCollectionByNameOrId("staff")
	if err != nil {
		return "", err
	}
	var token string
	for i, role := range []string{"owner", "agent", "agent", "agent"} {
		r := core.NewRecord(col)
		r.SetEmail(fmt.Sprintf("staff%d@omni-shop.dev", i))
		r.SetPassword("password-123456")
		r.Set("role", role)
		r.Set("name", fmt.Sprintf("Staff %d", i))
		if err := s.o.PB.Save(r); err != nil {
			return "", err
		}
		if role == "owner" {
			if token, err = r.NewAuthToken(); err != nil {
				return "", err
			}
		} else {
			s.agents = append(s.agents, r.Id)
		}
	}
	return token, nil
}

func profileID(c int) string { return fmt.Sprintf("p%014d", c) }

func email(c int) string { return fmt.Sprintf("c%d@omni-shop.dev", c) }

// customers writes the profiles and their email identities.
func (s *seeder) customers(n int) error {
	s.n.Customers = n
	return s.o.PB.RunInTransaction(func(tx core.App) error {
		p := insert(tx, "profiles", "id", "name", "email", "traits", "computed", "consent", "first_seen", "last_seen", "known", "created", "updated")
		id := insert(tx, "identities", "id", "kind", "value", "profile", "created")
		defer p.Close()
		defer id.Close()
		now := s.now.Format(pbTime)
		first := s.now.Add(-s.span).Format(pbTime)
		for c := range n {
			if _, err := p.Bind(dbx.Params{"id": profileID(c), "name": fmt.Sprintf("Customer %d", c), "email": email(c),
				"traits": "{}", "computed": `{"lifecycle_stage":"customer"}`, "consent": "{}", "first_seen": first, "last_seen": now,
				"known": true, "created": now, "updated": now}).Execute(); err != nil {
				return err
			}
			if _, err := id.Bind(dbx.Params{"id": fmt.Sprintf("i%014d", c), "kind": "email", "value": email(c), "profile": profileID(c),
				"created": now}).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
}

// journeys writes five journeys, paused (so the engine leaves them alone:
// their runs below are history) with their published version.
func (s *seeder) journeys() error {
	return s.o.PB.RunInTransaction(func(tx core.App) error {
		q := insert(tx, "journeys", "id", "name", "status", "version", "graph", "settings", "published_at", "created", "updated")
		v := insert(tx, "journey_versions", "id", "journey", "version", "graph", "settings", "created")
		defer q.Close()
		defer v.Close()
		for i, name := range []string{"Welcome", "Abandoned checkout", "Win-back", "Post-purchase", "Birthday"} {
			id := fmt.Sprintf("j%014d", i)
			s.journey = append(s.journey, id)
			t := s.now.Add(-s.span).Format(pbTime)
			if _, err := v.Bind(dbx.Params{"id": fmt.Sprintf("k%014d", i), "journey": id, "version": 1, "graph": "{}", "settings": "{}",
				"created": t}).Execute(); err != nil {
				return err
			}
			if _, err := q.Bind(dbx.Params{"id": id, "name": name, "status": "paused", "version": 1, "graph": "{}", "settings": "{}",
				"published_at": t, "created": t, "updated": t}).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
}

// events writes total events over customers in transactions of 20,000:
// page views (some with UTM), checkouts, orders in GBP and EUR with line
// items and some refunds and cancellations, sends with their ledger rows
// and journey runs, opens, clicks, deliveries and inbound messages.
func (s *seeder) events(total, customers int, progress func(done int)) error {
	const per = 20000
	for start := 0; start < total; start += per {
		err := s.o.PB.RunInTransaction(func(tx core.App) error {
			ev := insert(tx, "events", "id", "event_id", "type", "name", "source", "channel", "occurred_at", "received_at",
				"identities", "properties", "context", "profile", "created")
			msg := insert(tx, "messages", "id", "profile", "channel", "kind", "template", "to", "status", "connector", "journey_run",
				"event", "attempts", "enqueued", "queued_at", "sent_at", "delivered_at", "read_at", "created", "updated")
			run := insert(tx, "journey_runs", "id", "journey", "version", "profile", "node", "status", "exit_reason", "context",
				"trigger_event", "entered_at", "ended_at", "goal_at", "goal_event", "goal_value", "goal_currency", "holdout", "created", "updated")
			step := insert(tx, "journey_steps", "id", "run", "journey", "version", "profile", "node", "type", "exit", "detail", "at")
			defer ev.Close()
			defer msg.Close()
			defer run.Close()
			defer step.Close()
			for i := start; i < min(start+per, total); i++ {
				if err := s.event(i, customers, ev, msg, run, step); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		progress(min(start+per, total))
	}
	s.n.Events = total
	return nil
}

func (s *seeder) event(i, customers int, ev, msg, run, step *dbx.Query) error {
	// A few customers buy often, most rarely: the square skews towards 0.
	f := s.rng.Float64()
	c := int(f * f * float64(customers))
	t := s.at()
	typ, channel := "", "web"
	props := map[string]any{}
	ctx := map[string]any{}
	r := s.rng.IntN(1000)
	switch {
	case r < 550:
		typ = "page.viewed"
		props["url"] = fmt.Sprintf("https://omni-shop.dev/p/%d", s.rng.IntN(200))
		ctx["page"] = map[string]any{"url": props["url"]}
		if s.rng.IntN(10) < 3 {
			ctx["campaign"] = campaigns[s.rng.IntN(len(campaigns))]
		}
	case r < 620:
		typ = "checkout.started"
		props["checkout_token"] = fmt.Sprintf("tok-%d", i)
		props["total"] = float64(10 + s.rng.IntN(290))
	case r < 670:
		typ, channel = "order.placed", orderChannels[s.rng.IntN(len(orderChannels))]
		cur := "GBP"
		if s.rng.IntN(5) == 0 {
			cur = "EUR"
		}
		var items []map[string]any
		total := 0.0
		for k := range 1 + s.rng.IntN(3) {
			price := float64(5 + s.rng.IntN(95))
			qty := 1 + s.rng.IntN(2)
			items = append(items, map[string]any{"sku": fmt.Sprintf("SKU-%03d", (i+k)%200), "title": fmt.Sprintf("Product %d", (i+k)%200),
				"quantity": qty, "price": price})
			total += price * float64(qty)
		}
		o := order{id: fmt.Sprintf("%d", 100000+i), total: total, currency: cur, at: t}
		s.lastOrder[c] = o
		props["order_id"], props["total"], props["currency"], props["line_items"] = o.id, total, cur, items
		if s.rng.IntN(5) == 0 {
			ctx["campaign"] = campaigns[s.rng.IntN(len(campaigns))]
		}
		s.n.Orders++
	case r < 678:
		o, ok := s.lastOrder[c]
		if !ok {
			return s.pageView(i, c, t, ev)
		}
		typ, channel = "order.refunded", ""
		t = o.at.Add(time.Duration(s.rng.Int64N(int64(10 * 24 * time.Hour))))
		if t.After(s.now) {
			t = s.now
		}
		amount := o.total
		if s.rng.IntN(2) == 0 {
			amount = float64(int(o.total / 2))
		}
		props["refund_id"], props["order_id"], props["total"], props["currency"] = fmt.Sprintf("r-%d", i), o.id, amount, o.currency
		delete(s.lastOrder, c)
		s.n.Refunds++
	case r < 681:
		o, ok := s.lastOrder[c]
		if !ok {
			return s.pageView(i, c, t, ev)
		}
		typ, channel = "order.cancelled", ""
		t = o.at.Add(time.Hour)
		if t.After(s.now) {
			t = s.now
		}
		props["order_id"] = o.id
		delete(s.lastOrder, c)
	case r < 800:
		typ = "message.sent"
		channel = "email"
		if s.rng.IntN(10) < 3 {
			channel = "whatsapp"
		}
		mid := fmt.Sprintf("m%014d", i)
		props["message_id"] = mid
		runID := ""
		if s.rng.IntN(10) < 4 { // sent by a journey
			runID = fmt.Sprintf("r%014d", i)
			ctx["journey_run"] = runID
			j := s.journey[s.rng.IntN(len(s.journey))]
			status, reason, goalAt, goalValue, goalEvent, goalCur := "completed", "end", "", 0.0, "", ""
			if s.rng.IntN(10) == 0 {
				status, reason = "exited", "goal"
				goalAt, goalValue, goalEvent, goalCur = t.Add(time.Hour).Format(pbTime), float64(20+s.rng.IntN(100)), fmt.Sprintf("seed-goal-%d", i), "GBP"
			}
			ts := t.Format(pbTime)
			if _, err := run.Bind(dbx.Params{"id": runID, "journey": j, "version": 1, "profile": profileID(c), "node": "send", "status": status,
				"exit_reason": reason, "context": "{}", "trigger_event": fmt.Sprintf("seed-%d", i), "entered_at": ts, "ended_at": t.Add(2 * time.Hour).Format(pbTime),
				"goal_at": goalAt, "goal_event": goalEvent, "goal_value": goalValue, "goal_currency": goalCur, "holdout": s.rng.IntN(20) == 0,
				"created": ts, "updated": ts}).Execute(); err != nil {
				return err
			}
			for k, node := range []string{"trigger", "send"} {
				if _, err := step.Bind(dbx.Params{"id": fmt.Sprintf("s%013d%d", i, k), "run": runID, "journey": j, "version": 1,
					"profile": profileID(c), "node": node, "type": node, "exit": "next", "detail": "{}", "at": ts}).Execute(); err != nil {
					return err
				}
			}
			s.n.JourneyRuns++
		}
		ts := t.Format(pbTime)
		status, read := "delivered", ""
		if s.rng.IntN(3) == 0 {
			status, read = "read", t.Add(time.Hour).Format(pbTime)
		}
		if _, err := msg.Bind(dbx.Params{"id": mid, "profile": profileID(c), "channel": channel, "kind": "marketing", "template": "newsletter",
			"to": email(c), "status": status, "connector": channel, "journey_run": runID, "event": fmt.Sprintf("seed-%d", i), "attempts": "[]",
			"enqueued": true, "queued_at": ts, "sent_at": ts, "delivered_at": ts, "read_at": read, "created": ts, "updated": ts}).Execute(); err != nil {
			return err
		}
		s.n.Messages++
	case r < 860:
		typ, channel = "email.opened", "email"
	case r < 880:
		typ, channel = "email.clicked", "email"
		props["url"] = "https://omni-shop.dev/sale"
	case r < 900:
		typ, channel = "message.delivered", "whatsapp"
	case r < 930:
		typ, channel = "message.received", "whatsapp"
		props["text"] = "Hi, is this in stock?"
	default:
		typ = "product.viewed"
		props["sku"] = fmt.Sprintf("SKU-%03d", s.rng.IntN(200))
	}
	ctx["channel"] = channel
	return s.write(ev, i, typ, c, channel, t, props, ctx)
}

func (s *seeder) pageView(i, c int, t time.Time, ev *dbx.Query) error {
	u := fmt.Sprintf("https://omni-shop.dev/p/%d", s.rng.IntN(200))
	return s.write(ev, i, "page.viewed", c, "web", t, map[string]any{"url": u}, map[string]any{"channel": "web", "page": map[string]any{"url": u}})
}

func (s *seeder) write(ev *dbx.Query, i int, typ string, c int, channel string, t time.Time, props, ctx map[string]any) error {
	ts := t.Format(pbTime)
	_, err := ev.Bind(dbx.Params{"id": fmt.Sprintf("e%014d", i), "event_id": fmt.Sprintf("seed-%d", i), "type": typ, "name": "",
		"source": "bench", "channel": channel, "occurred_at": ts, "received_at": ts, "identities": js(map[string]string{"email": email(c)}),
		"properties": js(props), "context": js(ctx), "profile": profileID(c), "created": ts}).Execute()
	return err
}

// conversations writes n inbox conversations of four messages each, most
// resolved, some rated, spread over the agents.
func (s *seeder) conversations(n, customers int) error {
	s.n.Conversations = n
	return s.o.PB.RunInTransaction(func(tx core.App) error {
		cv := insert(tx, "conversations", "id", "profile", "channel", "status", "assignee", "priority", "labels", "address",
			"last_message_at", "last_message", "last_author", "first_response_at", "resolved_at", "resolved_by", "csat_asked_at",
			"csat_score", "sla_breaches", "context", "opened_at", "created", "updated")
		cm := insert(tx, "conversation_messages", "id", "conversation", "profile", "direction", "author", "author_staff", "text",
			"attachments", "mentions", "send", "created")
		defer cv.Close()
		defer cm.Close()
		channels := []string{"whatsapp", "whatsapp", "email", "chat"}
		for i := range n {
			c := s.rng.IntN(customers)
			id := fmt.Sprintf("v%014d", i)
			opened := s.at()
			agent := s.agents[s.rng.IntN(len(s.agents))]
			first := opened.Add(time.Duration(1+s.rng.IntN(180)) * time.Minute)
			last := first.Add(time.Duration(1+s.rng.IntN(600)) * time.Minute)
			status, resolved, by, asked, score := "open", "", "", "", 0
			if s.rng.IntN(10) < 8 {
				status, resolved, by = "resolved", last.Add(10*time.Minute).Format(pbTime), agent
				if s.rng.IntN(2) == 0 {
					asked, score = resolved, 1+s.rng.IntN(5)
				}
			}
			if _, err := cv.Bind(dbx.Params{"id": id, "profile": profileID(c), "channel": channels[s.rng.IntN(len(channels))], "status": status,
				"assignee": agent, "priority": "none", "labels": "[]", "address": email(c), "last_message_at": last.Format(pbTime),
				"last_message": "Thanks!", "last_author": "agent", "first_response_at": first.Format(pbTime), "resolved_at": resolved,
				"resolved_by": by, "csat_asked_at": asked, "csat_score": score, "sla_breaches": s.rng.IntN(10) / 9, "context": "{}",
				"opened_at": opened.Format(pbTime), "created": opened.Format(pbTime), "updated": last.Format(pbTime)}).Execute(); err != nil {
				return err
			}
			for k, at := range []time.Time{opened, first, first.Add((last.Sub(first)) / 2), last} {
				dir, author, staff := "in", "customer", ""
				if k%2 == 1 {
					dir, author, staff = "out", "agent", agent
				}
				if _, err := cm.Bind(dbx.Params{"id": fmt.Sprintf("w%013d%d", i, k), "conversation": id, "profile": profileID(c), "direction": dir,
					"author": author, "author_staff": staff, "text": "…", "attachments": "[]", "mentions": "[]", "send": "{}",
					"created": at.Format(pbTime)}).Execute(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
