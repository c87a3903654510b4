package shopify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// recordingSink keeps what a host would store and persist.
type recordingSink struct {
	events   []sdk.Event
	cursors  []string
	progress []sdk.Progress
	failAt   int // return an error on this Batch call (1-based), simulating a crash
	calls    int
}

var errInterrupted = errors.New("interrupted")

func (s *recordingSink) Batch(_ context.Context, evs []sdk.Event, cursor string, p sdk.Progress) error {
	s.calls++
	if s.failAt > 0 && s.calls == s.failAt {
		return errInterrupted
	}
	s.events = append(s.events, evs...)
	s.cursors = append(s.cursors, cursor)
	s.progress = append(s.progress, p)
	return nil
}

func (s *recordingSink) lastCursor() string {
	if len(s.cursors) == 0 {
		return ""
	}
	return s.cursors[len(s.cursors)-1]
}

func TestBackfillPaginatesHonoursRateLimitsAndResumes(t *testing.T) {
	f := newFakeShopify(t)
	f.Seed(t, 230, 60)   // 3 customer pages (100) and 3 order pages (25)
	f.Fail429[3] = true  // second customers page first answered 429
	f.Throttle[6] = true // a THROTTLED GraphQL answer later on
	c, _, waits := newTestConnector(t, f, nil)

	// First run dies after three stored batches.
	first := &recordingSink{failAt: 4}
	err := c.Backfill(context.Background(), &sdk.BackfillRequest{}, first)
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("first run err = %v", err)
	}
	if len(first.cursors) != 3 {
		t.Fatalf("stored %d batches before the crash", len(first.cursors))
	}
	// Resume from the persisted cursor.
	second := &recordingSink{}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Cursor: first.lastCursor()}, second); err != nil {
		t.Fatalf("resume: %v", err)
	}
	all := append(first.events, second.events...)
	seen := map[string]bool{}
	var customers, consents, orders int
	for _, e := range all {
		if seen[e.ID] {
			t.Fatalf("event %s delivered twice across the resume", e.ID)
		}
		seen[e.ID] = true
		switch e.Type {
		case events.CustomerUpdated:
			customers++
		case events.ConsentChanged:
			consents++
		case events.OrderPlaced:
			orders++
		}
	}
	// The interrupted fourth batch (orders page 1) is re-fetched, not lost.
	if customers != 230 || consents != 230 || orders != 60 {
		t.Fatalf("customers=%d consents=%d orders=%d", customers, consents, orders)
	}
	checkValid(t, all)

	// Rate limits: the 429's Retry-After (2.0 s) and the THROTTLED answer's
	// bucket refill ((52-2)/100 → 1 s) were waited out.
	if len(*waits) < 2 || (*waits)[0] != 2*time.Second || (*waits)[1] != time.Second {
		t.Fatalf("waits = %v", *waits)
	}
	// Progress: totals from customersCount + ordersCount; done grows.
	last := second.progress[len(second.progress)-1]
	if last.Done != 290 || last.Total != 290 || !strings.Contains(last.Message, "complete") {
		t.Fatalf("last progress = %+v", last)
	}
	if p := first.progress[0]; p.Done != 100 || p.Total != 290 {
		t.Fatalf("first progress = %+v", p)
	}
	if second.lastCursor() != `{"phase":"done","done":290,"total":290}` {
		t.Fatalf("final cursor %s", second.lastCursor())
	}

	// Backfilled orders carry UTM attribution from customerJourneySummary.
	for _, e := range all {
		if e.Type == events.OrderPlaced {
			if e.Context.Campaign == nil || e.Context.Campaign.Source != "newsletter" || e.Properties["total"] != 598.94 {
				t.Fatalf("backfilled order = %+v", e)
			}
			if e.ID != "shopify:order:"+e.Properties["order_id"].(string) {
				t.Fatalf("backfill id %s differs from the webhook's", e.ID)
			}
			break
		}
	}
	// Backfilled customers carry consent (GraphQL still exposes it).
	for _, e := range all {
		if e.Type == events.ConsentChanged {
			if e.Properties["status"] != "subscribed" || e.Properties["channel"] != "email" {
				t.Fatalf("consent = %+v", e.Properties)
			}
			break
		}
	}
}

func TestBackfillSinceFiltersAndRejectsForeignCursor(t *testing.T) {
	f := newFakeShopify(t)
	f.Seed(t, 2, 1)
	c, _, _ := newTestConnector(t, f, nil)
	sink := &recordingSink{}
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Since: since}, sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.events) != 5 {
		t.Fatalf("%d events", len(sink.events))
	}
	err := c.Backfill(context.Background(), &sdk.BackfillRequest{Cursor: "page_info=abc"}, &recordingSink{})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Field != "cursor" {
		t.Fatalf("foreign cursor: %v", err)
	}
}

func TestBackfillWrongTokenFails(t *testing.T) {
	f := newFakeShopify(t)
	cfg := f.Config(testSecret)
	cfg[KeyAccessToken] = "shpat_wrong"
	c, _, _ := newTestConnector(t, f, cfg)
	err := c.Backfill(context.Background(), &sdk.BackfillRequest{}, &recordingSink{})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
	if c.Health(context.Background()) == nil {
		t.Fatal("health passed with a wrong token")
	}
}

func TestRegisterWebhooks(t *testing.T) {
	f := newFakeShopify(t)
	f.Subs = append(f.Subs, map[string]any{"id": "gid://shopify/WebhookSubscription/1", "topic": "ORDERS_CREATE", "uri": "https://omni.example.com/webhooks/shopify"},
		map[string]any{"id": "gid://shopify/WebhookSubscription/2", "topic": "ORDERS_PAID", "uri": "https://elsewhere.example.com/hook"})
	cfg := f.Config(testSecret)
	cfg[KeyWebhookURL] = "https://omni.example.com/webhooks/shopify"
	cfg[KeyRegister] = "true"
	c, h, _ := newTestConnector(t, f, cfg) // Configure registers
	if len(f.CreatedTopics()) != len(Topics)-1 {
		t.Fatalf("created %v", f.CreatedTopics())
	}
	for _, topic := range f.CreatedTopics() {
		if topic == "ORDERS_CREATE" {
			t.Fatal("re-created an existing subscription")
		}
	}
	found := false
	for _, l := range h.logs {
		found = found || l.msg == "registered Shopify webhooks"
	}
	if !found {
		t.Fatalf("logs = %+v", h.logs)
	}
	// Idempotent: a second run creates nothing.
	res, err := c.RegisterWebhooks(context.Background())
	if err != nil || len(res.Created) != 0 || len(res.Existing) != len(Topics) {
		t.Fatalf("second run %+v %v", res, err)
	}
	if c.Health(context.Background()) != nil {
		t.Fatal("health failed against the fake")
	}
}

func TestRegisterWebhooksWithoutPermissionLogsInstructions(t *testing.T) {
	f := newFakeShopify(t)
	f.DenyWrite = true
	cfg := f.Config(testSecret)
	cfg[KeyWebhookURL] = "https://omni.example.com/webhooks/shopify"
	cfg[KeyRegister] = "true"
	c, h, _ := newTestConnector(t, f, cfg)
	_, err := c.RegisterWebhooks(context.Background())
	var ad *AccessDeniedError
	if !errors.As(err, &ad) {
		t.Fatalf("err = %v", err)
	}
	var instr string
	for _, l := range h.logs {
		for i := 0; i+1 < len(l.kv); i += 2 {
			if l.kv[i] == "instructions" {
				instr = l.kv[i+1].(string)
			}
		}
	}
	for _, want := range []string{"https://omni.example.com/webhooks/shopify", "orders/create", "customers/marketing_consent/update", "read_orders", "2026-07"} {
		if !strings.Contains(instr, want) {
			t.Errorf("instructions lack %q: %s", want, instr)
		}
	}
}
