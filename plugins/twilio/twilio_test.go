package twilio

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/twilio/twiliofake"
)

// Twilio's published example (the request validator tests of its official
// Go library): auth token 12345, this URL and these params sign to
// RSOYDt4T1cUTdK1PDd93/VVr8B8=; with the default port :443 added to the
// URL they sign to kvajT1Ptam85bY51eRf/AJRuM3w=.
func TestSignatureKnownAnswer(t *testing.T) {
	const token, u = "12345", "https://mycompany.com/myapp.php?foo=1&bar=2"
	params := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675309"}, "Digits": {"1234"},
		"From": {"+14158675309"}, "To": {"+18005551212"}}
	if got := Sign(token, u, params); got != "RSOYDt4T1cUTdK1PDd93/VVr8B8=" {
		t.Fatalf("Sign = %s", got)
	}
	if got := twiliofake.Signature(token, u, params); got != "RSOYDt4T1cUTdK1PDd93/VVr8B8=" {
		t.Fatalf("fake signs %s", got)
	}
	for _, c := range []struct {
		url, sig string
		ok       bool
	}{
		{u, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{u, "kvajT1Ptam85bY51eRf/AJRuM3w=", true},                                                  // Twilio signed with :443
		{"https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true}, // a proxy's port
		{"http://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", false},      // scheme changed
		{"https://mycompany.com/myapp.php?foo=1&bar=3", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", false},
		{u, "", false},
		{u, "not base64!", false},
	} {
		if got := ValidSignature(token, []string{c.url}, params, c.sig); got != c.ok {
			t.Errorf("ValidSignature(%s, %q) = %v", c.url, c.sig, got)
		}
	}
	tampered := url.Values{}
	for k, v := range params {
		tampered[k] = v
	}
	tampered.Set("Digits", "1235")
	if ValidSignature(token, []string{u}, tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8=") {
		t.Error("a changed parameter still validates")
	}
	if ValidSignature("54321", []string{u}, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=") {
		t.Error("another auth token validates")
	}
}

func TestOptOutKeywords(t *testing.T) {
	for _, c := range []struct{ optOutType, body, want string }{
		{"", "STOP", optOut}, {"", " stop ", optOut}, {"", "Stop.", optOut}, {"", "unsubscribe", optOut},
		{"", "StopAll", optOut}, {"", "cancel", optOut}, {"", "end", optOut}, {"", "quit", optOut},
		{"", "optout", optOut}, {"", "revoke", optOut},
		{"", "start", optIn}, {"", "YES", optIn}, {"", "unstop", optIn},
		{"", "help", optHelp}, {"", "info", optHelp},
		{"", "stop texting me about order 1001", ""}, {"", "please cancel my order", ""}, {"", "", ""},
		// Twilio's OptOutType wins: custom keywords configured in the console.
		{"STOP", "arrêt", optOut}, {"START", "whatever", optIn}, {"HELP", "stop", optHelp},
	} {
		if got := optOutType(c.optOutType, c.body); got != c.want {
			t.Errorf("optOutType(%q, %q) = %q, want %q", c.optOutType, c.body, got, c.want)
		}
	}
}

func TestMapSendError(t *testing.T) {
	for _, c := range []struct {
		status     int
		retryAfter string
		body       string
		kind       sdk.ErrorKind
		code       string
		pause      time.Duration
	}{
		{429, "7", `{"code":20429,"message":"Too Many Requests","status":429}`, sdk.KindRateLimited, "20429", 7 * time.Second},
		{429, "", ``, sdk.KindRateLimited, "", time.Second},
		{503, "", `{"code":20503,"message":"Service Unavailable","status":503}`, sdk.KindRetryable, "20503", 0},
		{500, "", `oops`, sdk.KindRetryable, "", 0},
		{401, "", `{"code":20003,"message":"Authenticate","status":401}`, sdk.KindRetryable, "20003", 0},
		{400, "", `{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}`, sdk.KindPermanent, "21610", 0},
		{400, "", `{"code":21211,"message":"The 'To' number +1 is not a valid phone number.","status":400}`, sdk.KindPermanent, "21211", 0},
		{404, "", `not json`, sdk.KindPermanent, "http_404", 0},
	} {
		se := sdk.AsSendError(mapSendError(c.status, c.retryAfter, []byte(c.body)))
		if se.Kind != c.kind || se.Code != c.code || se.RetryAfter != c.pause {
			t.Errorf("%d %s: %+v", c.status, c.body, se)
		}
	}
}

func TestConfigureNamesTheField(t *testing.T) {
	good := sdk.Config{KeyAccountSID: "AC" + strings.Repeat("ab", 16), KeyAuthToken: "tok", KeyFromPhone: "+14155550100"}
	if err := newConnector().Configure(context.Background(), good, nil); err != nil {
		t.Fatal(err)
	}
	for field, change := range map[string]sdk.Config{
		KeyAccountSID:          {KeyAccountSID: "12345"},
		KeyAuthToken:           {KeyAuthToken: ""},
		KeyFromPhone:           {KeyFromPhone: "0207 946 0000"},
		KeyMessagingServiceSID: {KeyMessagingServiceSID: "MGnothex"},
		KeyAPIKeySID:           {KeyAPIKeySecret: "s"},
		KeyAPIKeySecret:        {KeyAPIKeySID: "SK" + strings.Repeat("cd", 16)},
		KeyWebhookBaseURL:      {KeyWebhookBaseURL: "shop.example.com"},
	} {
		cfg := sdk.Config{}
		for k, v := range good {
			cfg[k] = v
		}
		for k, v := range change {
			cfg[k] = v
		}
		var ce *sdk.ConfigError
		if err := newConnector().Configure(context.Background(), cfg, nil); !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%v: got %v, want an error naming %s", change, err, field)
		}
	}
	// A Messaging Service replaces the From number.
	svc := sdk.Config{KeyAccountSID: good[KeyAccountSID], KeyAuthToken: "tok", KeyMessagingServiceSID: "MG" + strings.Repeat("12", 16)}
	if err := newConnector().Configure(context.Background(), svc, nil); err != nil {
		t.Fatal(err)
	}
}

func TestStatusCallbackMapping(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	p := func(status, code string) url.Values {
		v := url.Values{"MessageSid": {"SM0123"}, "MessageStatus": {status}, "To": {"+14155550123"}, "From": {"+14155550100"}}
		if code != "" {
			v.Set("ErrorCode", code)
		}
		return v
	}
	for _, c := range []struct {
		status, code, typ string
		permanent         bool
	}{
		{"queued", "", "", false}, {"sending", "", "", false}, {"sent", "", "", false},
		{"delivered", "", events.MessageDelivered, false},
		{"read", "", events.MessageRead, false},
		{"undelivered", "30003", events.MessageFailed, false},
		{"undelivered", "30005", events.MessageFailed, true},
		{"failed", "21211", events.MessageFailed, true},
	} {
		evs, err := statusEvents(p(c.status, c.code), "msg-1", now)
		if err != nil {
			t.Fatal(err)
		}
		if c.typ == "" {
			if len(evs) != 0 {
				t.Errorf("%s: %+v", c.status, evs)
			}
			continue
		}
		if len(evs) != 1 || evs[0].Type != c.typ || evs[0].ID != "SM0123:"+c.status ||
			evs[0].Properties["outbound_id"] != "msg-1" || evs[0].Properties["provider_message_id"] != "SM0123" ||
			evs[0].Identities[events.Phone] != "+14155550123" || evs[0].Context.Channel != "sms" {
			t.Errorf("%s: %+v", c.status, evs)
			continue
		}
		if c.code != "" && (evs[0].Properties["error_code"] != c.code || evs[0].Properties["error_reason"] == "") {
			t.Errorf("%s %s: %+v", c.status, c.code, evs[0].Properties)
		}
		if _, perm := evs[0].Properties["permanent"]; perm != c.permanent {
			t.Errorf("%s %s: permanent = %v", c.status, c.code, perm)
		}
	}
	if _, err := statusEvents(url.Values{"MessageStatus": {"delivered"}}, "", now); err == nil {
		t.Error("a callback without MessageSid is accepted")
	}
}

func TestInboundMMSAndOtherSenders(t *testing.T) {
	now := time.Now()
	evs, err := inboundEvents(url.Values{"MessageSid": {"MM1"}, "From": {"+14155550123"}, "To": {"+14155550100"}, "Body": {"look"},
		"NumMedia": {"2"}, "MediaUrl0": {"https://api.twilio.com/m/0"}, "MediaContentType0": {"image/jpeg"},
		"MediaUrl1": {"https://api.twilio.com/m/1"}, "MediaContentType1": {"image/png"}}, now)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	urls, _ := evs[0].Properties["media_urls"].([]any)
	if evs[0].Properties["num_media"] != 2 || len(urls) != 2 || urls[1] != "https://api.twilio.com/m/1" ||
		evs[0].Properties["conversation_key"] != "+14155550123" {
		t.Fatalf("mms: %+v", evs[0].Properties)
	}
	// A WhatsApp sender on the same Twilio account is not an SMS customer.
	if evs, err := inboundEvents(url.Values{"MessageSid": {"SM2"}, "From": {"whatsapp:+14155550123"}, "Body": {"STOP"}}, now); err != nil || len(evs) != 0 {
		t.Fatalf("whatsapp sender: %v %+v", err, evs)
	}
	if _, err := inboundEvents(url.Values{"Body": {"hi"}}, now); err == nil {
		t.Fatal("an inbound message without sid and sender is accepted")
	}
}

func TestCallbackReachable(t *testing.T) {
	for u, want := range map[string]bool{
		"https://shop.omni-shop.dev/webhooks/twilio/status": true,
		"http://203.0.113.7:8090/webhooks/twilio/status":    true,
		"http://127.0.0.1:8090/webhooks/twilio/status":      false,
		"http://localhost:8090/webhooks/twilio/status":      false,
		"http://192.168.1.20/webhooks/twilio/status":        false,
		"http://[::1]:8090/webhooks/twilio/status":          false,
		"http://0.0.0.0:8090/webhooks/twilio/status":        false,
	} {
		if got := reachable(u); got != want {
			t.Errorf("reachable(%s) = %v", u, got)
		}
	}
}
