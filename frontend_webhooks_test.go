package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
)

// Vendor webhooks sent to a front end (role: frontend) that runs no
// connector: the handshake is answered by the writer's connector, a
// delivery is stored on the bus and answered 200, and the writer's
// connector verifies it. One the connector refuses (here: the writer has
// the wrong app secret) is parked, not lost: fixed and retried, it is
// stored.
func TestWebhooksThroughAFrontEnd(t *testing.T) {
	secret, sig, body := whatsappVector(t)
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"277321005464405","display_phone_number":"15550953877"}`)
	}))
	defer graph.Close()

	dir := t.TempDir()
	if _, errOut, code := omni(t, dir, nil, "superuser", "upsert", "root@example.com", "s3cret-pass-123"); code != 0 {
		t.Fatalf("superuser: %s", errOut)
	}
	if _, errOut, code := omni(t, dir, nil, "connector", "configure", "whatsapp", "phone_number_id=277321005464405",
		"access_token=tok", "app_secret=not-the-app-secret", "verify_token=vt-123", "base_url="+graph.URL); code != 0 {
		t.Fatalf("configure: %s", errOut)
	}
	if _, errOut, code := omni(t, dir, nil, "connector", "enable", "whatsapp"); code != 0 {
		t.Fatalf("enable: %s", errOut)
	}
	busAddr, addr := freeAddr(t), freeAddr(t)
	writer := startServerWith(t, dir, addr, []string{"OMNI_BUS_LISTEN=" + busAddr}, "serve", "--http", addr, "--data-dir", dir)
	edgeDir, edgeAddr := t.TempDir(), freeAddr(t)
	edge := startServerWith(t, edgeDir, edgeAddr, []string{"OMNI_ROLE=frontend", "OMNI_BUS_URL=nats://" + busAddr},
		"serve", "--http", edgeAddr, "--data-dir", edgeDir)
	base := "http://" + edge.addr + "/webhooks/"

	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(url, signature string) (int, string) {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", signature)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Meta's handshake, answered by the writer's connector (503 until it runs).
	var challenge string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		code, b := get(base + "whatsapp?hub.mode=subscribe&hub.challenge=777&hub.verify_token=vt-123")
		if code != 200 && code != 503 {
			t.Fatalf("handshake: %d %s\nwriter:\n%s\nfront end:\n%s", code, b, writer.logs, edge.logs)
		}
		challenge = b
		return code == 200
	}, "the handshake through the front end\nwriter:\n%s\nfront end:\n%s", writer.logs, edge.logs)
	if challenge != "777" {
		t.Fatalf("challenge %q", challenge)
	}
	if code, b := get(base + "whatsapp?hub.mode=subscribe&hub.challenge=777&hub.verify_token=wrong"); code != 403 {
		t.Fatalf("handshake with a wrong verify token: %d %s", code, b)
	}
	if code, b := post(base+"nosuch", sig); code != 404 || !strings.Contains(b, `"field":"connector"`) {
		t.Fatalf("unknown connector: %d %s", code, b)
	}
	if code, b := post(base+"klaviyo", sig); code != 503 || !strings.Contains(b, "not enabled") {
		t.Fatalf("a connector not enabled: %d %s", code, b)
	}

	big, err := http.Post(base+"whatsapp", "application/json", strings.NewReader(strings.Repeat("x", 1025<<10)))
	if err != nil {
		t.Fatal(err)
	}
	bigBody, _ := io.ReadAll(big.Body)
	big.Body.Close()
	if big.StatusCode != 413 || !strings.Contains(string(bigBody), "max_webhook_kb") {
		t.Fatalf("a body over ingest.max_webhook_kb: %d %s", big.StatusCode, bigBody)
	}

	// Taken, then refused by the writer's connector: parked with why.
	if code, b := post(base+"whatsapp", sig); code != 200 {
		t.Fatalf("delivery: %d %s\n%s", code, b, edge.logs)
	}
	var out string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		out, _, _ = omni(t, dir, nil, "events", "dead")
		return strings.Contains(out, "webhooks")
	}, "the refused delivery parked\n%s", writer.logs)
	if !strings.Contains(out, "401") {
		t.Fatalf("events dead does not say why:\n%s", out)
	}
	if n := countEventsOf(t, writer.addr, dir, "message.received"); n != 0 {
		t.Fatalf("an unverified delivery was stored: %d", n)
	}

	// The owner fixes the secret and retries: stored once.
	if _, errOut, code := omni(t, dir, nil, "connector", "configure", "whatsapp", "app_secret="+secret); code != 0 {
		t.Fatalf("configure: %s", errOut)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		omni(t, dir, nil, "events", "retry-dead", "--wait", "5s")
		for range 20 {
			if countEventsOf(t, writer.addr, dir, "message.received") == 1 {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}, "the fixed delivery stored\n%s", writer.logs)
	// A vendor retry of the same delivery is stored once.
	if code, _ := post(base+"whatsapp", sig); code != 200 {
		t.Fatalf("redelivery: %d", code)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		var h struct {
			Bus struct {
				Consumers map[string]struct {
					Pending    *int `json:"pending"`
					AckPending *int `json:"ack_pending"`
				} `json:"consumers"`
			} `json:"bus"`
		}
		code, b := get("http://" + writer.addr + "/api/v1/health")
		if code != 200 || json.Unmarshal([]byte(b), &h) != nil {
			return false
		}
		c, ok := h.Bus.Consumers["connectors-webhooks"]
		return ok && c.Pending != nil && *c.Pending == 0 && *c.AckPending == 0 &&
			countEventsOf(t, writer.addr, dir, "conversation.opened") == 1
	}, "the webhooks consumer idle and the conversation opened\n%s", writer.logs)
	if n := countEventsOf(t, writer.addr, dir, "message.received"); n != 1 {
		t.Fatalf("message.received stored %d times", n)
	}
	for who, logs := range map[string]string{"writer": writer.logs.String(), "front end": edge.logs.String()} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the app secret appeared in the %s's log", who)
		}
	}
}
