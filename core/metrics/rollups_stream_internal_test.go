package metrics

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
)

// rollupSnapshot lists the rollups' rows in a fixed order, without ids
// and write times: metrics_daily (money to the millionth), every fact's
// derived flags and every customer's row.
func rollupSnapshot(t testing.TB, app core.App) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		"SELECT 'daily|' || metric || '|' || day || '|' || dim || '|' || currency || '|' || printf('%.6f', value) || '|' || count FROM metrics_daily ORDER BY 1",
		`SELECT 'fact|' || event || '|' || profile || '|' || kind || '|' || channel || '|' || duplicate || '|' || "returning" || '|' || repeat_buyer || '|' || prev_day || '|' || printf('%.6f', amount_base) FROM metrics_orders ORDER BY 1`,
		"SELECT 'customer|' || profile || '|' || first_order_at || '|' || first_month || '|' || first_channel || '|' || last_order_at || '|' || orders || '|' || printf('%.6f', net_base) || '|' || months || '|' || contrib FROM metrics_customers ORDER BY 1",
	} {
		var rows []string
		if err := app.DB().NewQuery(q).Column(&rows); err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
	}
	return out
}

// The rollups kept as order events are stored in batches (several orders,
// refunds and cancellations of one customer in a batch, out of time
// order, second reports of an order, currencies without a rate) are the
// ones a derivation of every customer from their facts alone gives; a
// batch of redelivered events changes nothing.
func TestRollupsStreamMatchDerivation(t *testing.T) {
	e := attrStart(t, nil)
	rnd := rand.New(rand.NewPCG(3, 5))
	base := time.Now().UTC().AddDate(0, -3, 0).Truncate(time.Hour)
	var evs []*events.Event
	for c := range 12 {
		for k := range 9 {
			at := base.Add(time.Duration(rnd.IntN(80*24)) * time.Hour)
			if c%4 == 0 { // in time order
				at = base.Add(time.Duration(k*50) * time.Hour)
			}
			orderID := fmt.Sprintf("o%d-%d", c, k)
			typ := events.OrderPlaced
			switch r := rnd.IntN(10); {
			case k > 0 && r < 2: // a refund of an earlier order (maybe one stored later)
				typ, orderID = events.OrderRefunded, fmt.Sprintf("o%d-%d", c, rnd.IntN(k))
			case k > 0 && r < 3:
				typ, orderID = events.OrderCancelled, fmt.Sprintf("o%d-%d", c, rnd.IntN(k))
			case k > 0 && r < 4: // the same order reported again
				orderID = fmt.Sprintf("o%d-%d", c, rnd.IntN(k))
			}
			props := map[string]any{"order_id": orderID, "total": 10 + rnd.IntN(90), "currency": []string{"EUR", "EUR", "USD", "JPY"}[rnd.IntN(4)],
				"line_items": []any{map[string]any{"sku": fmt.Sprintf("SKU-%d", rnd.IntN(5)), "quantity": 1 + rnd.IntN(2), "price": 7.25}}}
			if props["currency"] == "USD" {
				props["exchange_rate"] = 0.9
			}
			evs = append(evs, attrEvent(fmt.Sprintf("rs-%d-%d", c, k), typ, "shop", at,
				events.Identities{events.Email: fmt.Sprintf("rs%d@omni-shop.dev", c)}, props,
				events.Context{Channel: []string{"web", "pos", ""}[rnd.IntN(3)]}))
		}
	}
	rnd.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for i := 0; i < len(evs); i += 36 {
		e.publish(evs[i:min(i+36, len(evs))]...)
	}
	streamed := rollupSnapshot(t, e.s.PB)
	var stored []struct {
		RecordID string `db:"id"`
		EventID  string `db:"event_id"`
		Profile  string `db:"profile"`
	}
	if err := e.s.PB.DB().NewQuery("SELECT id, event_id, profile FROM events WHERE event_id LIKE 'rs-%' ORDER BY event_id").All(&stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(evs) || !slices.ContainsFunc(streamed, func(s string) bool { return len(s) > 9 && s[:9] == "customer|" }) {
		t.Fatalf("%d events stored, want %d; rollups %q", len(stored), len(evs), streamed)
	}

	// Every event again in one batch, as a redelivery after a crash would.
	byID := map[string]*events.Event{}
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	var batch []*eventstore.Stored
	for _, s := range stored {
		batch = append(batch, &eventstore.Stored{RecordID: s.RecordID, Event: byID[s.EventID], Profile: s.Profile})
	}
	if err := e.s.PB.RunInTransaction(func(tx core.App) error { return e.m.rollups.process(tx, batch) }); err != nil {
		t.Fatal(err)
	}
	if again := rollupSnapshot(t, e.s.PB); !slices.Equal(again, streamed) {
		t.Errorf("redelivery changed the rollups:\n%q\nwant\n%q", again, streamed)
	}

	// Every customer derived afresh from their facts.
	var profiles []string
	if err := e.s.PB.DB().NewQuery("SELECT DISTINCT profile FROM metrics_orders").Column(&profiles); err != nil {
		t.Fatal(err)
	}
	if err := e.s.PB.RunInTransaction(func(tx core.App) error {
		for _, q := range []string{"DELETE FROM metrics_customers", "DELETE FROM metrics_daily",
			`UPDATE metrics_orders SET "returning" = 0, repeat_buyer = 0, prev_day = ''`} {
			if _, err := tx.DB().NewQuery(q).Execute(); err != nil {
				return err
			}
		}
		return e.m.rollups.recomputeProfiles(tx, profiles, false)
	}); err != nil {
		t.Fatal(err)
	}
	if derived := rollupSnapshot(t, e.s.PB); !slices.Equal(streamed, derived) {
		t.Errorf("streamed rollups differ from derived ones:\nstreamed %q\nderived  %q", streamed, derived)
	}
}

// Items are written by json.Marshal and read back by hand; other shapes
// fall back to encoding/json.
func TestParseItems(t *testing.T) {
	for _, raw := range []string{`[{"key":"MUG","quantity":2,"amount":60}]`, `[{"key":"a","quantity":1.5,"amount":0.000001},{"key":"b","quantity":1,"amount":1e21}]`,
		`[{"key":"Mug \"large\" \u003cred\u003e","quantity":1,"amount":2}]`, `[{"amount":3,"key":"x","quantity":1}]`, `[]`, `null`, ``} {
		var want []item
		if raw != "" {
			if err := json.Unmarshal([]byte(raw), &want); err != nil {
				t.Fatal(err)
			}
		}
		if got := parseItems(raw); !slices.Equal(got, want) {
			t.Errorf("parseItems(%s) = %v, want %v", raw, got, want)
		}
	}
	// What insert writes reads back the same.
	its := []item{{"SKU-1", 1, 20}, {"Tasse à café", 2.5, 0.1 + 0.2}}
	raw, _ := json.Marshal(its)
	if got, ok := scanItems(string(raw)); !ok || !slices.Equal(got, its) {
		t.Errorf("scanItems(%s) = %v %v, want %v", raw, got, ok, its)
	}
}
