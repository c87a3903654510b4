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
	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// whatsappVector reads Meta's real signed delivery from the shared fixtures.
func whatsappVector(t *testing.T) (secret, header, body string) {
	t.Helper()
	var v struct {
		AppSecret   string `json:"app_secret"`
		HeaderValue string `json:"header_value"`
		RawBody     string `json:"raw_body"`
	}
	if err := json.Unmarshal(vendorfixtures.Read(t, "whatsapp", "signature_test_vector.json"), &v); err != nil {
		t.Fatal(err)
	}
	return v.AppSecret, v.HeaderValue, v.RawBody
}

// The built-in whatsapp and klaviyo connectors, run by the real omni
// binary as `omni plugin run NAME` subprocesses: configured and enabled
// from the CLI, Meta's handshake and a signed delivery over HTTP.
func TestBuiltinWhatsAppThroughTheBinary(t *testing.T) {
	secret, sig, body := whatsappVector(t)
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190}}`)
			return
		}
		io.WriteString(w, `{"id":"277321005464405","display_phone_number":"15550953877"}`)
	}))
	defer graph.Close()

	dir := t.TempDir()
	if _, errOut, code := omni(t, dir, nil, "superuser", "upsert", "root@example.com", "s3cret-pass-123"); code != 0 {
		t.Fatalf("superuser: %s", errOut)
	}
	_, errOut, code := omni(t, dir, nil, "connector", "enable", "klaviyo")
	if code == 0 || !strings.Contains(errOut, "api_key") {
		t.Fatalf("klaviyo without api_key: %d %s", code, errOut)
	}
	if out, errOut, code := omni(t, dir, nil, "connector", "configure", "whatsapp", "phone_number_id=277321005464405",
		"access_token=tok", "app_secret="+secret, "verify_token=vt-123", "base_url="+graph.URL); code != 0 || strings.Contains(out, secret) {
		t.Fatalf("configure: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := omni(t, dir, nil, "connector", "enable", "whatsapp"); code != 0 {
		t.Fatalf("enable: %s", errOut)
	}
	s := startServer(t, dir)
	base := "http://" + s.addr + "/webhooks/whatsapp"

	// The plugin takes a moment to start: Omni answers 503 until then.
	var challenge string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "?hub.mode=subscribe&hub.challenge=777&hub.verify_token=vt-123")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 503 {
			t.Fatalf("handshake: %d %s\n%s", resp.StatusCode, b, s.logs)
		}
		challenge = string(b)
		return resp.StatusCode == 200
	}, "the handshake to pass (503 until the plugin runs)\n%s", s.logs)
	if challenge != "777" {
		t.Fatalf("challenge %q", challenge)
	}

	post := func(signature string) int {
		req, _ := http.NewRequest("POST", base, strings.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", signature)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=" + strings.Repeat("0", 64)); code != 401 {
		t.Fatalf("forged signature: %d", code)
	}
	if code := post(sig); code != 200 {
		t.Fatalf("signed delivery: %d\n%s", code, s.logs)
	}
	// The message, and the conversation the inbox opened for it.
	omnitest.Eventually(t, 20*time.Second, func() bool {
		return countEventsOf(t, s.addr, dir, "message.received") == 1 && countEventsOf(t, s.addr, dir, "conversation.opened") == 1
	}, "the whatsapp message stored\n%s", s.logs)
	if strings.Contains(s.logs.String(), secret) {
		t.Fatal("the app secret appeared in the server log")
	}
}
