package twilio

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
	"github.com/omni/omni/plugins/twilio/twiliofake"
)

// The test binary doubles as the plugin executable for StartSelf.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, New) }

const (
	shopNumber = "+14155550100"
	customer   = "+14155550123"
)

func fakeConfig(f *twiliofake.Fake) sdk.Config {
	return sdk.Config{KeyAccountSID: f.AccountSID, KeyAuthToken: f.AuthToken, KeyFromPhone: shopNumber, KeyTestBaseURL: f.URL}
}

// Sends as Omni runs the connector: a subprocess behind go-plugin's gRPC,
// talking to the local Twilio fake; typed errors cross the boundary.
func TestSendThroughPluginSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin subprocess")
	}
	fake := twiliofake.New(t)
	h := sdktest.StartSelf(t, fakeConfig(fake))

	res, err := h.Send(&sdk.OutboundMessage{ID: "msg-1", Channel: "sms", To: map[string]string{"phone": customer},
		Text: "Your order #1001 has shipped", Properties: map[string]any{
			"kind": "transactional", "status_callback_url": "https://shop.omni-shop.dev/webhooks/twilio/status"}})
	if err != nil {
		t.Fatal(err)
	}
	sent := fake.Messages()
	if len(sent) != 1 || res.ProviderMessageID != sent[0].SID || !strings.HasPrefix(res.ProviderMessageID, "SM") {
		t.Fatalf("result %+v, fake saw %+v", res, sent)
	}
	form := sent[0].Form
	if form.Get("To") != customer || form.Get("From") != shopNumber || form.Get("Body") != "Your order #1001 has shipped" ||
		form.Get("StatusCallback") != "https://shop.omni-shop.dev/webhooks/twilio/status?outbound_id=msg-1" {
		t.Fatalf("form at the fake: %v", form)
	}

	var se *sdk.SendError
	// 429 with Retry-After: the host is asked to wait that long.
	fake.Fail("+14155550124", twiliofake.Failure{Status: 429, Code: 20429, Message: "Too Many Requests", RetryAfter: "3"})
	_, err = h.Send(&sdk.OutboundMessage{ID: "msg-2", To: map[string]string{"phone": "+14155550124"}, Text: "hi"})
	if !errors.As(err, &se) || se.Kind != sdk.KindRateLimited || se.RetryAfter != 3*time.Second {
		t.Fatalf("429: %#v", err)
	}
	// 5xx: retryable.
	fake.Fail("+14155550124", twiliofake.Failure{Status: 503})
	_, err = h.Send(&sdk.OutboundMessage{ID: "msg-2", To: map[string]string{"phone": "+14155550124"}, Text: "hi"})
	if !errors.As(err, &se) || se.Kind != sdk.KindRetryable {
		t.Fatalf("503: %#v", err)
	}
	// 21211 invalid number: permanent with Twilio's code.
	fake.Fail("+14155550125", twiliofake.Failure{Status: 400, Code: 21211, Message: "The 'To' number +14155550125 is not a valid phone number."})
	_, err = h.Send(&sdk.OutboundMessage{ID: "msg-3", To: map[string]string{"phone": "+14155550125"}, Text: "hi"})
	if !errors.As(err, &se) || se.Kind != sdk.KindPermanent || se.Code != CodeInvalidNumber {
		t.Fatalf("21211: %#v", err)
	}
	if len(h.Emitted()) != 0 {
		t.Fatalf("21211 emitted %+v", h.Emitted())
	}
	// 21610: the customer once texted STOP to this number: permanent, and
	// SMS consent is recorded as unsubscribed.
	fake.Fail(customer, twiliofake.Failure{Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"})
	_, err = h.Send(&sdk.OutboundMessage{ID: "msg-4", To: map[string]string{"phone": customer}, Text: "20% off today"})
	if !errors.As(err, &se) || se.Kind != sdk.KindPermanent || se.Code != CodeUnsubscribed {
		t.Fatalf("21610: %#v", err)
	}
	em := h.Emitted()
	if len(em) != 1 || em[0].Type != events.ConsentChanged || em[0].Identities["phone"] != customer ||
		em[0].Properties["channel"] != "sms" || em[0].Properties["status"] != "unsubscribed" || em[0].Properties["source"] != "twilio" {
		t.Fatalf("21610 emitted %+v", em)
	}
	// 21609, Twilio cannot use the callback URL: sent again without it.
	fake.Fail("+14155550127", twiliofake.Failure{Status: 400, Code: 21609, Message: "Invalid 'StatusCallback'"})
	if _, err := h.Send(&sdk.OutboundMessage{ID: "msg-6", To: map[string]string{"phone": "+14155550127"}, Text: "hi",
		Properties: map[string]any{"status_callback_url": "https://shop.omni-shop.dev/webhooks/twilio/status"}}); err != nil {
		t.Fatalf("21609: %v", err)
	}
	if all := fake.Messages(); fake.Hits("+14155550127") != 2 || all[len(all)-1].Form.Has("StatusCallback") {
		t.Fatalf("21609: %d attempts, last form %v", fake.Hits("+14155550127"), all[len(all)-1].Form)
	}
	// Refused before calling Twilio.
	for _, m := range []*sdk.OutboundMessage{
		{ID: "x1", To: map[string]string{"email": "ann@omni-shop.dev"}, Text: "hi"},
		{ID: "x2", To: map[string]string{"phone": "07700 900123"}, Text: "hi"},
		{ID: "x3", To: map[string]string{"phone": customer}, Text: "  "},
		{ID: "x4", Channel: "email", To: map[string]string{"phone": customer}, Text: "hi"},
		{ID: "x5", To: map[string]string{"phone": customer}, Text: strings.Repeat("a", 1601)},
	} {
		if _, err := h.Send(m); !errors.As(err, &se) || se.Kind != sdk.KindPermanent {
			t.Errorf("%s: %#v", m.ID, err)
		}
	}
	if n := len(fake.Messages()); n != 2 {
		t.Fatalf("fake accepted %d messages", n)
	}
	if err := h.Connector.Health(context.Background()); err != nil {
		t.Fatalf("health: %v", err)
	}

	// An API key sends instead of the auth token; the token still signs webhooks.
	fake.APIKeySID, fake.APIKeySecret = "SK"+strings.Repeat("ef", 16), "key-secret"
	cfg := fakeConfig(fake)
	cfg[KeyAPIKeySID], cfg[KeyAPIKeySecret] = fake.APIKeySID, fake.APIKeySecret
	cfg[KeyMessagingServiceSID] = "MG" + strings.Repeat("34", 16)
	h2 := sdktest.StartSelf(t, cfg)
	if _, err := h2.Send(&sdk.OutboundMessage{ID: "msg-5", To: map[string]string{"phone": "+14155550126"}, Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	if f := fake.Messages()[2].Form; f.Get("MessagingServiceSid") != cfg[KeyMessagingServiceSID] || f.Has("From") {
		t.Fatalf("messaging service send: %v", f)
	}
	// Wrong credentials: health says so.
	cfg[KeyAPIKeySecret] = "wrong"
	h3 := sdktest.StartSelf(t, cfg)
	if err := h3.Connector.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "20003") {
		t.Fatalf("health with a wrong secret: %v", err)
	}
}

// Webhooks through the subprocess: signature valid, invalid, missing;
// inbound SMS, STOP, HELP and a status callback.
func TestWebhooksThroughPluginSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin subprocess")
	}
	fake := twiliofake.New(t)
	h := sdktest.StartSelf(t, fakeConfig(fake))
	// sdktest's Webhook presents this URL as the one called.
	const base = "http://omni.test/webhooks/test"
	post := func(path string, p url.Values, sig string) *sdk.WebhookResponse {
		hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		if sig != "" {
			hdr[SignatureHeader] = sig
		}
		return h.Webhook(t, "POST", path, hdr, []byte(p.Encode()))
	}
	inbound := url.Values{"MessageSid": {"SM" + strings.Repeat("1", 32)}, "AccountSid": {fake.AccountSID}, "From": {customer},
		"To": {shopNumber}, "Body": {"Do you have this in blue?"}, "NumMedia": {"0"}}
	sig := twiliofake.Signature(fake.AuthToken, base+PathInbound, inbound)

	for name, s := range map[string]string{"missing": "", "wrong": twiliofake.Signature("other-token", base+PathInbound, inbound),
		"other path": twiliofake.Signature(fake.AuthToken, base+PathStatus, inbound)} {
		if r := post(PathInbound, inbound, s); r.Status != http.StatusForbidden || len(r.Events) != 0 ||
			!strings.Contains(string(r.Body), `"status":403`) {
			t.Fatalf("%s signature: %d %s", name, r.Status, r.Body)
		}
	}
	// Three refusals, one warning in the log (at most one a minute).
	refusals := 0
	for _, l := range h.Logs() {
		if strings.Contains(l.Message, "X-Twilio-Signature does not match") {
			refusals++
		}
	}
	if refusals != 1 {
		t.Fatalf("%d refusal warnings logged: %+v", refusals, h.Logs())
	}
	r := post(PathInbound, inbound, sig)
	if r.Status != 200 || r.Headers["Content-Type"] != "text/xml; charset=utf-8" || !strings.Contains(string(r.Body), "<Response/>") {
		t.Fatalf("signed inbound: %d %v %s", r.Status, r.Headers, r.Body)
	}
	if len(r.Events) != 1 || r.Events[0].Type != events.MessageReceived || r.Events[0].ID != inbound.Get("MessageSid") ||
		r.Events[0].Identities["phone"] != customer || r.Events[0].Properties["text"] != "Do you have this in blue?" ||
		r.Events[0].Properties["conversation_key"] != customer || r.Events[0].Context.Channel != "sms" {
		t.Fatalf("message.received: %+v", r.Events)
	}
	// A tampered body fails the signature.
	tampered := url.Values{}
	for k, v := range inbound {
		tampered[k] = v
	}
	tampered.Set("Body", "STOP")
	if r := post(PathInbound, tampered, sig); r.Status != http.StatusForbidden {
		t.Fatalf("tampered: %d", r.Status)
	}

	// STOP: the message and an SMS unsubscribe; HELP: the message only.
	stop := url.Values{"MessageSid": {"SM" + strings.Repeat("2", 32)}, "From": {customer}, "To": {shopNumber}, "Body": {"Stop"}, "OptOutType": {"STOP"}}
	r = post(PathInbound, stop, twiliofake.Signature(fake.AuthToken, base+PathInbound, stop))
	if r.Status != 200 || len(r.Events) != 2 || r.Events[1].Type != events.ConsentChanged ||
		r.Events[1].Properties["status"] != "unsubscribed" || r.Events[1].Properties["channel"] != "sms" ||
		r.Events[1].Properties["reason"] != "replied STOP" || r.Events[1].Properties["source"] != "twilio" {
		t.Fatalf("STOP: %d %+v", r.Status, r.Events)
	}
	help := url.Values{"MessageSid": {"SM" + strings.Repeat("3", 32)}, "From": {customer}, "To": {shopNumber}, "Body": {"help"}, "OptOutType": {"HELP"}}
	r = post(PathInbound, help, twiliofake.Signature(fake.AuthToken, base+PathInbound, help))
	if r.Status != 200 || len(r.Events) != 1 || r.Events[0].Properties["opt_out_type"] != "HELP" {
		t.Fatalf("HELP: %d %+v", r.Status, r.Events)
	}

	// Status callback: the URL Send set, query included, is what is signed.
	status := url.Values{"MessageSid": {"SM" + strings.Repeat("4", 32)}, "MessageStatus": {"delivered"}, "To": {customer}, "From": {shopNumber}}
	req := &sdk.WebhookRequest{Method: "POST", Path: PathStatus, Query: "outbound_id=msg-9", Body: []byte(status.Encode()),
		URL:     base + PathStatus + "?outbound_id=msg-9",
		Headers: map[string][]string{SignatureHeader: {twiliofake.Signature(fake.AuthToken, base+PathStatus+"?outbound_id=msg-9", status)}}}
	resp, err := h.Connector.HandleWebhook(context.Background(), req)
	if err != nil || resp.Status != 200 || len(resp.Events) != 1 || resp.Events[0].Type != events.MessageDelivered ||
		resp.Events[0].Properties["outbound_id"] != "msg-9" {
		t.Fatalf("status: %v %+v", err, resp)
	}
	// Unknown paths and GETs are refused with a JSON message.
	if r := h.Webhook(t, "POST", "/voice", nil, nil); r.Status != 404 {
		t.Fatalf("unknown path: %d", r.Status)
	}
	if r := h.Webhook(t, "GET", PathInbound, nil, nil); r.Status != 405 {
		t.Fatalf("GET: %d", r.Status)
	}
}

// Behind a proxy that changes the host Omni sees, webhook_base_url names
// the URL Twilio signed.
func TestWebhookBaseURLBehindProxy(t *testing.T) {
	fake := twiliofake.New(t)
	c := newConnector()
	cfg := fakeConfig(fake)
	cfg[KeyWebhookBaseURL] = "https://shop.omni-shop.dev/"
	if err := c.Configure(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	p := url.Values{"MessageSid": {"SM5"}, "From": {customer}, "To": {shopNumber}, "Body": {"hi"}}
	sig := twiliofake.Signature(fake.AuthToken, "https://shop.omni-shop.dev/webhooks/twilio/sms", p)
	req := &sdk.WebhookRequest{Method: "POST", Path: "/sms", Body: []byte(p.Encode()), URL: "http://10.0.0.5:8090/webhooks/twilio/sms",
		Headers: map[string][]string{"x-twilio-signature": {sig}}}
	if r, _ := c.HandleWebhook(context.Background(), req); r.Status != 200 || len(r.Events) != 1 {
		t.Fatalf("behind a proxy: %d %s", r.Status, r.Body)
	}
	c2 := newConnector()
	_ = c2.Configure(context.Background(), fakeConfig(fake), nil)
	if r, _ := c2.HandleWebhook(context.Background(), req); r.Status != 403 {
		t.Fatalf("without webhook_base_url: %d", r.Status)
	}
}
