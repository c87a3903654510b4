package connectors_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/sdk"
)

const (
	whSecret  = "whsec-TOPSECRET-5f1e"
	apiSecret = "tok-APISECRET-77aa"
)

// One server, many checks: webhook in → stored, send → provider id, the
// Emit callback, backfill, limits, auth and secrets at rest.
func TestWebhookSendBackfillAndSecrets(t *testing.T) {
	e := start(t, connectors.Options{}, func(c *config.Config) { c.Ingest.MaxWebhookKB = 4 })
	ctx := context.Background()

	// Auth: only owners and superusers.
	if st, _ := e.Do(t, "GET", "/api/v1/connectors", nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("anonymous list: %d", st)
	}
	// Staff who are not owners are refused.
	staffColl, _ := e.PB.FindCollectionByNameOrId("staff")
	agent := core.NewRecord(staffColl)
	agent.SetEmail("agent@example.com")
	agent.SetPassword("password-123456")
	agent.Set("role", "agent")
	if err := e.PB.Save(agent); err != nil {
		t.Fatal(err)
	}
	agentTok, _ := agent.NewAuthToken()
	if st, _ := e.Do(t, "GET", "/api/v1/connectors", nil, http.Header{"Authorization": {agentTok}}); st != http.StatusForbidden {
		t.Fatalf("agent list: %d", st)
	}
	// Bad input names the field in PocketBase's shape (data.<field>):
	// an unknown or missing required setting, a bad backfill date, an
	// unknown connector.
	su := http.Header{"Authorization": {e.token}}
	st, raw := e.Do(t, "PATCH", "/api/v1/connectors/example", map[string]any{"config": map[string]string{"nope": "1"}}, su)
	omnitest.WantFieldError(t, st, raw, 400, "config.nope")
	st, raw = e.Do(t, "POST", "/api/v1/connectors/example/enable", nil, su)
	if out := omnitest.WantFieldError(t, st, raw, 400, "config.webhook_secret"); !strings.Contains(out.Data["config.webhook_secret"].Message, "required") {
		t.Fatalf("enable without required: %s", raw)
	}
	st, raw = e.Do(t, "POST", "/api/v1/connectors/example/backfill", map[string]string{"since": "last tuesday"}, su)
	omnitest.WantFieldError(t, st, raw, 400, "since")
	st, raw = e.Do(t, "GET", "/api/v1/connectors/nosuch", nil, su)
	omnitest.WantFieldError(t, st, raw, 404, "name")

	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url, "api_token": apiSecret})
	e.waitState(t, "example", "running", 10*time.Second)

	// Webhook in → stored event; the vendor gets the plugin's response.
	body := []byte(`{"id":"evt-1","type":"order.placed","email":" Ann@Example.COM ","properties":{"total":12.5}}`)
	st, resp := e.webhook(t, "", whSecret, body)
	if st != 200 || string(resp) != `{"ok":true}` {
		t.Fatalf("webhook: %d %s", st, resp)
	}
	// Stored by the time of the 200 on the bus; in SQLite shortly after.
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return e.countWhere(t, "event_id = 'example:evt-1' AND source = 'example' AND identities LIKE '%%ann@example.com%%'") == 1
	}, "webhook event stored")
	// Redelivery is stored once.
	if st, _ := e.webhook(t, "", whSecret, body); st != 200 {
		t.Fatalf("redelivery: %d", st)
	}
	// Bad signature: the plugin's 401, nothing stored.
	if st, _ := e.webhook(t, "", "wrong", []byte(`{"id":"evt-bad"}`)); st != 401 {
		t.Fatalf("bad signature: %d", st)
	}
	// The Emit callback path (plugin → host over the broker).
	emitBody := []byte(`{"id":"evt-emit","type":"order.placed","email":"em@example.com"}`)
	if st, _ := e.webhook(t, "/emit", whSecret, emitBody); st != 202 {
		t.Fatalf("emit webhook: %d", st)
	}
	// Limits and routing.
	if st, _ := e.webhook(t, "", whSecret, []byte(strings.Repeat("x", 5<<10))); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", st)
	}
	if st, _ := e.Do(t, "POST", "/webhooks/nosuch", "{}", nil); st != 404 {
		t.Fatalf("unknown connector: %d", st)
	}
	if st, b := e.Do(t, "GET", "/webhooks/example/verify?challenge=abc", nil, nil); st != 200 || string(b) != "challenge=abc" {
		t.Fatalf("GET webhook: %d %s", st, b)
	}

	// Send → provider id recorded as message.sent.
	for _, id := range []string{"msg-1", "msg-2", "flaky-1"} {
		if err := connectors.Enqueue(ctx, e.Bus, "example", &sdk.OutboundMessage{ID: id, Channel: "sms", To: map[string]string{"phone": "+1 415 555 0100"}, Text: "hello"}); err != nil {
			t.Fatal(err)
		}
	}
	// Permanent failure → message.failed.
	if err := connectors.Enqueue(ctx, e.Bus, "example", &sdk.OutboundMessage{ID: "msg-blocked", Channel: "sms", To: map[string]string{"phone": "+15550000000"}, Text: "x"}); err != nil {
		t.Fatal(err)
	}
	// A connector that was never installed: message.failed.
	if err := connectors.Enqueue(ctx, e.Bus, "ghost", &sdk.OutboundMessage{ID: "ghost-1", To: map[string]string{"email": "g@example.com"}}); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		return e.countWhere(t, "event_id = 'message.failed:ghost-1' AND properties LIKE '%%unknown_connector%%'") == 1 &&
			e.countWhere(t, "event_id = 'message.sent:msg-1' AND type = 'message.sent' AND properties LIKE '%%\"provider_message_id\":\"prov-msg-1\"%%'") == 1 &&
			e.countWhere(t, "event_id = 'message.sent:msg-2'") == 1 &&
			e.countWhere(t, "event_id = 'message.sent:flaky-1'") == 1 && // retried after a 503

			e.countWhere(t, "event_id = 'message.failed:msg-blocked' AND properties LIKE '%%recipient blocked%%'") == 1 &&
			e.countWhere(t, "event_id = 'example:evt-emit'") == 1
	}, "message.sent, message.failed and emitted events")
	if e.api.count("msg-1") != 1 {
		t.Fatalf("provider got msg-1 %d times", e.api.count("msg-1"))
	}

	// Backfill through the API, with progress on the record.
	st, out := e.call(t, "POST", "/api/v1/connectors/example/backfill", map[string]string{"since": "2025-01-01"})
	if st != 202 {
		t.Fatalf("backfill start: %d %v", st, out)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		_, out := e.call(t, "GET", "/api/v1/connectors/example/backfill", nil)
		return out["state"] == "done" && out["done"] == float64(6) && out["total"] == float64(6)
	}, "backfill done 6/6")
	omnitest.Eventually(t, 10*time.Second, func() bool { return e.countWhere(t, "event_id LIKE 'example:hist%%'") == 6 }, "backfilled events stored")

	// Health shows the connector.
	_, health := e.call(t, "GET", "/api/v1/health", nil)
	if !strings.Contains(fmt.Sprint(health["connectors"]), "example:map[last_error: restarts:0 state:running vendor:reachable]") {
		t.Fatalf("health: %v", health["connectors"])
	}

	// Secrets: masked in the API, absent from logs and from the SQLite files.
	_, list := e.Do(t, "GET", "/api/v1/connectors", nil, http.Header{"Authorization": {e.token}})
	for _, sec := range []string{whSecret, apiSecret} {
		if strings.Contains(string(list), sec) {
			t.Fatalf("secret in API response: %s", list)
		}
	}
	if !strings.Contains(string(list), `"webhook_secret":"********"`) || !strings.Contains(string(list), `"webhook_url":"http://`) ||
		!strings.Contains(string(list), `"api_url":"`+e.api.url+`"`) {
		t.Fatalf("list: %s", list)
	}
	// The generic records API shows the settings masked too (even to superusers).
	_, raw = e.Do(t, "GET", "/api/collections/connectors/records", nil, http.Header{"Authorization": {e.token}})
	if strings.Contains(string(raw), "enc:v1:") || strings.Contains(string(raw), whSecret) || !strings.Contains(string(raw), `"name":"example"`) {
		t.Fatalf("records API: %s", raw)
	}
	dataDir := e.Config.DataDir
	e.Stop()
	for _, f := range []string{"data.db", "data.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dataDir, f))
		if err != nil {
			continue
		}
		for _, sec := range []string{whSecret, apiSecret} {
			if strings.Contains(string(b), sec) {
				t.Fatalf("secret %q in plaintext in %s", sec, f)
			}
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "connector=example") {
		t.Fatalf("no connector logs captured")
	}
	for _, sec := range []string{whSecret, apiSecret} {
		if strings.Contains(logs, sec) {
			t.Fatalf("secret in logs")
		}
	}
}

// Protocol mismatch, a plugin that exits at start and one that hangs on
// Send each end in a clear state.
func TestBrokenPluginsGiveClearStates(t *testing.T) {
	e := start(t, connectors.Options{SendTimeout: time.Second}, nil)
	cfg := map[string]string{"webhook_secret": whSecret, "api_url": e.api.url}
	for _, n := range []string{"oldproto", "exiter", "hanger", "leaky"} {
		e.enable(t, n, cfg)
	}

	e.waitState(t, "oldproto", "failed", 15*time.Second)
	_, msg := e.state(t, "oldproto")
	if !strings.Contains(msg, "version 2") || !strings.Contains(msg, "version 1") {
		t.Fatalf("mismatch message should name both versions: %q", msg)
	}

	e.waitState(t, "exiter", "failed", 15*time.Second)
	state, msg := e.state(t, "exiter")
	if !strings.Contains(msg, "exited at start") || !strings.Contains(msg, "license file") {
		t.Fatalf("exit-at-start: %q / %q", state, msg)
	}
	rec, _ := e.PB.FindFirstRecordByData("connectors", "name", "exiter")
	if !strings.HasPrefix(rec.GetString("state"), "failed: plugin exited at start") {
		t.Fatalf("record state: %q", rec.GetString("state"))
	}

	e.waitState(t, "hanger", "running", 10*time.Second)
	if err := connectors.Enqueue(context.Background(), e.Bus, "hanger", &sdk.OutboundMessage{ID: "stuck-1", To: map[string]string{"phone": "+14155550100"}}); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 15*time.Second, func() bool {
		_, msg := e.state(t, "hanger")
		return strings.Contains(msg, "Send timed out after 1s (message stuck-1)")
	}, "send timeout reported")
	// Webhooks still work on the hanging connector.
	if st, _ := e.Do(t, "POST", "/webhooks/hanger", "{}", nil); st != 401 {
		t.Fatalf("webhook on hanger: %d", st)
	}

	// A plugin that logs its secret: masked on both log paths.
	e.waitState(t, "leaky", "running", 10*time.Second)
	// More stuck sends than there are send slots: another connector's
	// messages still go out.
	for n := 0; n < 40; n++ {
		if err := connectors.Enqueue(context.Background(), e.Bus, "hanger", &sdk.OutboundMessage{ID: fmt.Sprintf("stuck-more-%d", n), To: map[string]string{"phone": "+14155550100"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := connectors.Enqueue(context.Background(), e.Bus, "leaky", &sdk.OutboundMessage{ID: "through-1", To: map[string]string{"phone": "+14155550100"}}); err != nil {
		t.Fatal(err)
	}
	timeouts := -1
	omnitest.Eventually(t, 15*time.Second, func() bool {
		if e.countWhere(t, "event_id = 'message.sent:through-1'") == 1 {
			timeouts = strings.Count(e.logs.String(), "outbox: send timed out")
			return true
		}
		return false
	}, "send on leaky while hanger is stuck")
	// It did not wait for the stuck sends to time out: hanger held at most
	// one round of its 8 slots (plus stuck-1) when leaky's send went out.
	if timeouts > 9 {
		t.Fatalf("leaky's send waited for %d hanger timeouts", timeouts)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		l := e.logs.String()
		return strings.Contains(l, "configured with ********") && strings.Contains(l, "stderr says ********")
	}, "masked plugin log lines")
	if strings.Contains(e.logs.String(), whSecret) {
		t.Fatal("secret in logs")
	}
}
