package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/internal/testkit/golden"
	"github.com/omni/omni/plugins/sdk"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func configured(t *testing.T, baseURL string) (*Connector, *recordingHost) {
	t.Helper()
	c := newConnector()
	c.now = func() time.Time { return testNow }
	h := &recordingHost{}
	cfg := sdk.Config{
		"phone_number_id": "106540352242922",
		"access_token":    "test-token",
		"app_secret":      "1222e786b144d0e85b9f365372d93676",
		"verify_token":    "let-me-in",
		"base_url":        baseURL,
	}
	if err := c.Configure(context.Background(), cfg, h); err != nil {
		t.Fatal(err)
	}
	return c, h
}

func signedPost(secret string, body []byte) *sdk.WebhookRequest {
	return &sdk.WebhookRequest{Method: http.MethodPost, Path: "/", Body: body,
		Headers: map[string][]string{"X-Hub-Signature-256": {Sign(secret, body)}, "Content-Type": {"application/json"}}}
}

func TestSignatureTestVectorVerifies(t *testing.T) {
	var vec signatureVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.json"), &vec); err != nil {
		t.Fatal(err)
	}
	if !ValidSignature(vec.AppSecret, []byte(vec.RawBody), vec.HeaderValue) {
		t.Fatal("Meta's real signed delivery does not verify")
	}
	if got := Sign(vec.AppSecret, []byte(vec.RawBody)); got != vec.HeaderValue {
		t.Fatalf("Sign = %s, want %s", got, vec.HeaderValue)
	}
	tampered := strings.Replace(vec.RawBody, "Hey there!", "Hey there?", 1)
	cases := map[string]struct{ secret, body, header string }{
		"tampered body": {vec.AppSecret, tampered, vec.HeaderValue},
		"wrong secret":  {"not-the-secret", vec.RawBody, vec.HeaderValue},
		"no prefix":     {vec.AppSecret, vec.RawBody, strings.TrimPrefix(vec.HeaderValue, "sha256=")},
		"sha1 style":    {vec.AppSecret, vec.RawBody, "sha1=" + strings.TrimPrefix(vec.HeaderValue, "sha256=")},
		"empty header":  {vec.AppSecret, vec.RawBody, ""},
		"not hex":       {vec.AppSecret, vec.RawBody, "sha256=zz"},
		"truncated":     {vec.AppSecret, vec.RawBody, vec.HeaderValue[:40]},
		"trailing byte": {vec.AppSecret, vec.RawBody + " ", vec.HeaderValue},
		"empty secret":  {"", vec.RawBody, vec.HeaderValue},
	}
	for name, tc := range cases {
		if ValidSignature(tc.secret, []byte(tc.body), tc.header) {
			t.Errorf("%s: signature accepted", name)
		}
	}
}

func TestWebhookHandshake(t *testing.T) {
	c, _ := configured(t, "")
	ctx := context.Background()
	resp, err := c.HandleWebhook(ctx, &sdk.WebhookRequest{Method: http.MethodGet,
		Query: "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=let-me-in"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != "1158201444" || !strings.HasPrefix(resp.Headers["Content-Type"], "text/plain") {
		t.Fatalf("handshake = %d %q %v", resp.Status, resp.Body, resp.Headers)
	}
	for _, q := range []string{
		"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong",
		"hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=let-me-in",
		"hub.challenge=1158201444",
		"",
	} {
		resp, err := c.HandleWebhook(ctx, &sdk.WebhookRequest{Method: http.MethodGet, Query: q})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusForbidden || strings.Contains(string(resp.Body), "1158201444") || len(resp.Events) != 0 {
			t.Errorf("query %q: got %d %s, want 403 without the challenge", q, resp.Status, resp.Body)
		}
	}
}

func TestWebhookRealSignedDelivery(t *testing.T) {
	var vec signatureVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.json"), &vec); err != nil {
		t.Fatal(err)
	}
	c := newConnector()
	if err := c.Configure(context.Background(), sdk.Config{"phone_number_id": "277321005464405",
		"access_token": "t", "app_secret": vec.AppSecret, "verify_token": "v"}, &recordingHost{}); err != nil {
		t.Fatal(err)
	}
	req := &sdk.WebhookRequest{Method: http.MethodPost, Body: []byte(vec.RawBody),
		Headers: map[string][]string{strings.ToLower(vec.HeaderName): {vec.HeaderValue}}}
	resp, err := c.HandleWebhook(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || len(resp.Events) != 1 {
		t.Fatalf("got %d with %d events: %s", resp.Status, len(resp.Events), resp.Body)
	}
	ev := resp.Events[0]
	if ev.Type != events.MessageReceived || ev.Identities[events.WhatsAppID] != "972544401243" ||
		ev.Identities[events.Phone] != "+972544401243" || ev.Properties["text"] != "Hey there! I am using PyWa." ||
		ev.Properties["profile_name"] != "PyWa Tests" || ev.ID != "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA" {
		t.Fatalf("unexpected event %+v", ev)
	}

	// The same bytes with one character changed must be refused.
	req.Body = []byte(strings.Replace(vec.RawBody, "PyWa Tests", "PyWa Tesst", 1))
	resp, _ = c.HandleWebhook(context.Background(), req)
	if resp.Status != http.StatusUnauthorized || len(resp.Events) != 0 {
		t.Fatalf("tampered body: %d with %d events", resp.Status, len(resp.Events))
	}
	if !strings.Contains(string(resp.Body), "X-Hub-Signature-256") {
		t.Errorf("401 body should name the header: %s", resp.Body)
	}
}

func TestWebhookMalformedBody(t *testing.T) {
	c, _ := configured(t, "")
	for name, body := range map[string]string{
		"not json":     `{"object":`,
		"wrong object": `{"object":"page","entry":[]}`,
		"wrong types":  `{"object":"whatsapp_business_account","entry":"x"}`,
	} {
		resp, err := c.HandleWebhook(context.Background(), signedPost("1222e786b144d0e85b9f365372d93676", []byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		var msg struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		}
		if resp.Status != 400 || json.Unmarshal(resp.Body, &msg) != nil || msg.Status != 400 || msg.Message == "" || len(resp.Events) != 0 {
			t.Errorf("%s: got %d %s", name, resp.Status, resp.Body)
		}
	}
	resp, _ := c.HandleWebhook(context.Background(), &sdk.WebhookRequest{Method: http.MethodPut})
	if resp.Status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", resp.Status)
	}
}

// Every fixture payload maps to exactly the checked-in events.
func TestGoldenFixtures(t *testing.T) {
	for name, body := range fixtureBodies(t) {
		t.Run(name, func(t *testing.T) {
			evs, err := ParseNotification(body, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				t.Fatal("no events")
			}
			for _, ev := range evs {
				if !strings.HasPrefix(name, "status_group") {
					toCore(t, ev)
				}
				if ev.Context.Channel != "whatsapp" {
					t.Errorf("%s: channel %q", ev.ID, ev.Context.Channel)
				}
			}
			golden.JSON(t, name, evs)
		})
	}
}

func TestStatusMapping(t *testing.T) {
	bodies := fixtureBodies(t)
	want := map[string]string{"sent": events.MessageSent, "delivered": events.MessageDelivered,
		"read": events.MessageRead, "failed": events.MessageFailed, "played": events.MessageRead}
	for st, typ := range want {
		evs, err := ParseNotification(bodies["status_"+st], testNow)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", st, evs, err)
		}
		ev := evs[0]
		if ev.Type != typ || ev.ID != "wamid.xyzxyz:"+st || ev.Properties["message_id"] != "wamid.xyzxyz" ||
			ev.Identities[events.WhatsAppID] != "972987654321" {
			t.Errorf("%s: %+v", st, ev)
		}
	}
	evs, _ := ParseNotification(bodies["status_failed"], testNow)
	if evs[0].Properties["error_code"] != 130472 {
		t.Errorf("failed status lost its error: %v", evs[0].Properties)
	}
	errs, _ := evs[0].Properties["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["details"] == nil {
		t.Errorf("errors: %v", evs[0].Properties["errors"])
	}
	evs, _ = ParseNotification(bodies["status_with_tracker"], testNow)
	if evs[0].Properties["callback_data"] != "some data" {
		t.Errorf("callback data: %v", evs[0].Properties)
	}
}

// inbound wraps one message object in a Cloud API envelope.
func inbound(msg string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"419561257915477","changes":[{"field":"messages","value":{
"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[` + msg + `]}}]}]}`)
}

func TestInboundMessageKinds(t *testing.T) {
	head := `"from":"16505551234","id":"wamid.K","timestamp":"1764000000",`
	cases := map[string]struct {
		msg  string
		want map[string]any
	}{
		"audio":        {`{` + head + `"type":"audio","audio":{"id":"A1","mime_type":"audio/ogg; codecs=opus","voice":true}}`, map[string]any{"media_id": "A1", "mime_type": "audio/ogg; codecs=opus", "voice": true}},
		"document":     {`{` + head + `"type":"document","document":{"id":"D1","filename":"invoice.pdf","caption":"my invoice","mime_type":"application/pdf"}}`, map[string]any{"media_id": "D1", "filename": "invoice.pdf", "text": "my invoice"}},
		"video":        {`{` + head + `"type":"video","video":{"id":"V1","mime_type":"video/mp4"}}`, map[string]any{"media_id": "V1"}},
		"sticker":      {`{` + head + `"type":"sticker","sticker":{"id":"S1","mime_type":"image/webp","animated":false}}`, map[string]any{"media_id": "S1", "animated": false}},
		"button":       {`{` + head + `"type":"button","button":{"payload":"TRACK_ORDER","text":"Track my order"},"context":{"from":"15550783881","id":"wamid.T"}}`, map[string]any{"button_payload": "TRACK_ORDER", "text": "Track my order", "reply_to_message_id": "wamid.T"}},
		"button reply": {`{` + head + `"type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"yes-1","title":"Yes"}}}`, map[string]any{"reply_id": "yes-1", "text": "Yes", "interactive_type": "button_reply"}},
		"list reply":   {`{` + head + `"type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"size-m","title":"M","description":"Medium"}}}`, map[string]any{"reply_id": "size-m", "text": "M", "reply_description": "Medium"}},
		"location":     {`{` + head + `"type":"location","location":{"latitude":48.8566,"longitude":2.3522,"name":"Shop","address":"1 Rue X"}}`, map[string]any{"latitude": 48.8566, "longitude": 2.3522, "location_name": "Shop"}},
		"reaction":     {`{` + head + `"type":"reaction","reaction":{"message_id":"wamid.OUR","emoji":"👍"}}`, map[string]any{"reacted_message_id": "wamid.OUR", "emoji": "👍"}},
	}
	for name, tc := range cases {
		evs, err := ParseNotification(inbound(tc.msg), testNow)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", name, evs, err)
		}
		ev := evs[0]
		toCore(t, ev)
		if ev.Type != events.MessageReceived || ev.Properties["profile_name"] != "Sheena Nelson" || ev.Properties["message_type"] == "" {
			t.Errorf("%s: %+v", name, ev)
		}
		for k, v := range tc.want {
			if !reflect.DeepEqual(ev.Properties[k], v) {
				t.Errorf("%s: %s = %#v, want %#v", name, k, ev.Properties[k], v)
			}
		}
	}
}

func TestConsentKeywords(t *testing.T) {
	for text, want := range map[string]string{
		"STOP": "unsubscribed", "stop": "unsubscribed", " Stop. ": "unsubscribed", "unsubscribe": "unsubscribed",
		"Opt-Out": "unsubscribed", "opt out": "unsubscribed", "STOPALL": "unsubscribed", "cancel": "unsubscribed",
		"START": "subscribed", "unstop": "subscribed", "Subscribe": "subscribed", "opt in": "subscribed",
		"please stop sending me these": "", "stopping by later": "", "": "", "Does it come in another color?": "",
	} {
		evs, err := ParseNotification(inbound(`{"from":"16505551234","id":"wamid.S","timestamp":"1764000000","type":"text","text":{"body":`+jsonString(text)+`}}`), testNow)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, ev := range evs {
			if ev.Type == events.ConsentChanged {
				toCore(t, ev)
				got, _ = ev.Properties["status"].(string)
				if ev.Properties["channel"] != "whatsapp" || ev.Properties["source"] != "whatsapp" || ev.ID != "wamid.S:consent" {
					t.Errorf("%q: consent event %+v", text, ev)
				}
			}
		}
		if evs[0].Type != events.MessageReceived {
			t.Errorf("%q: the message itself must still be recorded", text)
		}
		if got != want {
			t.Errorf("%q: consent %q, want %q", text, got, want)
		}
	}
	// A quick-reply button whose payload is STOP counts too.
	evs, _ := ParseNotification(inbound(`{"from":"16505551234","id":"wamid.B","timestamp":"1764000000","type":"button","button":{"payload":"STOP","text":"Stop promotions"}}`), testNow)
	if len(evs) != 2 || evs[1].Properties["status"] != "unsubscribed" {
		t.Errorf("button STOP: %+v", evs)
	}
	// Meta's own marketing-preference notification.
	evs, err := ParseNotification([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"user_preferences","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"2"},"contacts":[{"profile":{"name":"A"},"wa_id":"16505551234"}],"user_preferences":[{"wa_id":"16505551234","detail":"User requested to stop marketing messages","category":"marketing_messages","value":"stop","timestamp":1764000000}]}}]}]}`), testNow)
	if err != nil || len(evs) != 1 || evs[0].Type != events.ConsentChanged || evs[0].Properties["status"] != "unsubscribed" {
		t.Errorf("user_preferences: %+v %v", evs, err)
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestConfigureNamesMissingKey(t *testing.T) {
	full := sdk.Config{"phone_number_id": "106540352242922", "access_token": "t", "app_secret": "s", "verify_token": "v"}
	for _, key := range []string{"phone_number_id", "access_token", "app_secret", "verify_token"} {
		cfg := sdk.Config{}
		for k, v := range full {
			if k != key {
				cfg[k] = v
			}
		}
		err := newConnector().Configure(context.Background(), cfg, &recordingHost{})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Field != key {
			t.Errorf("without %s: %v", key, err)
		}
	}
	bad := map[string]string{"api_version": "23", "phone_number_id": "+1 555 0100", "base_url": "ftp://x"}
	for key, val := range bad {
		cfg := sdk.Config{}
		for k, v := range full {
			cfg[k] = v
		}
		cfg[key] = val
		err := newConnector().Configure(context.Background(), cfg, &recordingHost{})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Field != key {
			t.Errorf("%s=%q: %v", key, val, err)
		}
	}
	d, _ := New().Describe(context.Background())
	secrets := []string{}
	for _, f := range d.Config {
		if f.Secret {
			secrets = append(secrets, f.Name)
		}
	}
	sort.Strings(secrets)
	if fmt.Sprint(secrets) != "[access_token app_secret verify_token]" || !reflect.DeepEqual(d.Capabilities, []string{"webhook", "send:whatsapp"}) {
		t.Errorf("describe: secrets %v caps %v", secrets, d.Capabilities)
	}
}

func sendFixture(t *testing.T) (text, template map[string]any, response []byte) {
	var f struct {
		RequestText     map[string]any  `json:"request_text"`
		RequestTemplate map[string]any  `json:"request_template"`
		Response        json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(readFixture(t, "send_message_request_response.json"), &f); err != nil {
		t.Fatal(err)
	}
	return f.RequestText, f.RequestTemplate, f.Response
}

func TestSendTextMatchesDocumentedRequest(t *testing.T) {
	wantText, _, okResp := sendFixture(t)
	fake := newFakeMeta(t, okResp)
	c, _ := configured(t, fake.URL)
	res, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "out-1", Channel: "whatsapp",
		To: map[string]string{"phone": "+1 650-555-1234"}, Text: "text-message-content"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderMessageID != "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA" {
		t.Errorf("provider id %q", res.ProviderMessageID)
	}
	got := fake.sent()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	want := map[string]any{}
	for k, v := range wantText {
		want[k] = v
	}
	want["to"] = "16505551234"
	want["biz_opaque_callback_data"] = "omni:out-1"
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("request body\n got %v\nwant %v", got[0], want)
	}
}

func TestSendTemplate(t *testing.T) {
	_, wantTpl, okResp := sendFixture(t)
	fake := newFakeMeta(t, okResp)
	c, _ := configured(t, fake.URL)
	_, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "out-2", To: map[string]string{"wa_id": "16505551234"},
		Template: &sdk.Template{Name: "order_update", Language: "en_US", Params: []string{"Sheena", "#1001"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := fake.sent()[0]
	if got["type"] != "template" || got["recipient_type"] != wantTpl["recipient_type"] || got["text"] != nil {
		t.Errorf("template request %v", got)
	}
	tpl := got["template"].(map[string]any)
	wantComps := []any{map[string]any{"type": "body", "parameters": []any{
		map[string]any{"type": "text", "text": "Sheena"}, map[string]any{"type": "text", "text": "#1001"}}}}
	if tpl["name"] != "order_update" || !reflect.DeepEqual(tpl["language"], map[string]any{"code": "en_US"}) ||
		!reflect.DeepEqual(tpl["components"], wantComps) {
		t.Errorf("template %v", tpl)
	}
	// Documented rich components pass through untouched.
	docTpl := wantTpl["template"].(map[string]any)
	_, err = c.Send(context.Background(), &sdk.OutboundMessage{ID: "out-3", To: map[string]string{"wa_id": "16505551234"},
		Template:   &sdk.Template{Name: "template-name", Language: "language-and-locale-code"},
		Properties: map[string]any{"template_components": docTpl["components"]}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fake.sent()[1]["template"]; !reflect.DeepEqual(got, docTpl) {
		t.Errorf("documented template\n got %v\nwant %v", got, docTpl)
	}
}

// After an inbound message older than 24 h, free text is refused before
// calling Meta (so the caller can fall back), while a template still goes.
func TestSendOutsideWindow(t *testing.T) {
	_, _, okResp := sendFixture(t)
	fake := newFakeMeta(t, okResp)
	c, _ := configured(t, fake.URL)
	resp, err := c.HandleWebhook(context.Background(), signedPost("1222e786b144d0e85b9f365372d93676", readFixture(t, "inbound_text_message.json")))
	if err != nil || resp.Status != 200 {
		t.Fatal(resp, err)
	}
	_, err = c.Send(context.Background(), &sdk.OutboundMessage{ID: "late", To: map[string]string{"wa_id": "16505551234"}, Text: "hello again"})
	se := sdk.AsSendError(err)
	if err == nil || se.Kind != sdk.KindPermanent || se.Code != CodeOutsideWindow || !strings.Contains(se.Reason, "template") {
		t.Fatalf("got %v", err)
	}
	if n := len(fake.sent()); n != 0 {
		t.Fatalf("%d requests reached Meta", n)
	}
	// Inside the window (the inbox says the customer wrote an hour ago).
	_, err = c.Send(context.Background(), &sdk.OutboundMessage{ID: "fresh", To: map[string]string{"wa_id": "16505551234"}, Text: "hi",
		Properties: map[string]any{"last_inbound_at": testNow.Add(-time.Hour).Format(time.RFC3339)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(context.Background(), &sdk.OutboundMessage{ID: "tpl", To: map[string]string{"wa_id": "16505551234"},
		Template: &sdk.Template{Name: "we_miss_you", Language: "en"}})
	if err != nil || len(fake.sent()) != 2 {
		t.Fatalf("template outside window: %v (%d sent)", err, len(fake.sent()))
	}
}

func TestSendErrorMapping(t *testing.T) {
	_, _, okResp := sendFixture(t)
	fake := newFakeMeta(t, okResp)
	c, host := configured(t, fake.URL)
	cases := []struct {
		status     int
		code       int
		retryAfter string
		kind       sdk.ErrorKind
		wantCode   string
		after      time.Duration
		reason     string
	}{
		{400, 131047, "", sdk.KindPermanent, "131047", 0, "24-hour"},
		{400, 131050, "", sdk.KindPermanent, "131050", 0, "stopped marketing"},
		{400, 131026, "", sdk.KindPermanent, "131026", 0, "undeliverable"},
		{400, 132001, "", sdk.KindPermanent, "132001", 0, "template"},
		{401, 190, "", sdk.KindPermanent, "190", 0, "token"},
		{400, 131048, "", sdk.KindPermanent, "131048", 0, "spam"},
		{400, 130429, "", sdk.KindRateLimited, "130429", time.Second, "130429"},
		{400, 131056, "", sdk.KindRateLimited, "131056", 6 * time.Second, "131056"},
		{400, 80007, "", sdk.KindRateLimited, "80007", time.Minute, "80007"},
		{403, 4, "30", sdk.KindRateLimited, "4", 30 * time.Second, "4"},
		{429, 0, "7", sdk.KindRateLimited, "", 7 * time.Second, "429"},
		{503, 0, "", sdk.KindRetryable, "", 0, "503"},
		{500, 131000, "", sdk.KindRetryable, "131000", 0, "131000"},
		{400, 135000, "", sdk.KindPermanent, "135000", 0, "135000"},
	}
	for i, tc := range cases {
		to := fmt.Sprintf("1650555%04d", i)
		fake.fail(to, fakeFailure{status: tc.status, code: tc.code, message: fmt.Sprintf("error %d", tc.code), retryAfter: tc.retryAfter})
		_, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: fmt.Sprint("m", i), To: map[string]string{"wa_id": to},
			Template: &sdk.Template{Name: "x", Language: "en"}})
		if err == nil {
			t.Errorf("%d/%d: no error", tc.status, tc.code)
			continue
		}
		se := sdk.AsSendError(err)
		if se.Kind != tc.kind || se.Code != tc.wantCode || se.RetryAfter != tc.after || !strings.Contains(se.Reason+se.Code, tc.reason) {
			t.Errorf("%d/%d: got kind=%s code=%q after=%s reason=%q", tc.status, tc.code, se.Kind, se.Code, se.RetryAfter, se.Reason)
		}
	}
	// 131050 also records the opt-out.
	var optOut bool
	for _, ev := range host.emitted() {
		if ev.Type == events.ConsentChanged && ev.Properties["status"] == "unsubscribed" && ev.Identities[events.WhatsAppID] == "16505550001" {
			optOut = true
		}
	}
	if !optOut {
		t.Errorf("131050 did not emit consent.changed: %+v", host.emitted())
	}
	// Transport failure is retryable.
	dead, _ := configured(t, "http://127.0.0.1:1")
	_, err := dead.Send(context.Background(), &sdk.OutboundMessage{To: map[string]string{"wa_id": "16505551234"}, Text: "x"})
	if se := sdk.AsSendError(err); se.Kind != sdk.KindRetryable {
		t.Errorf("unreachable: %v", err)
	}
	// Bad input is permanent without a request.
	for _, m := range []*sdk.OutboundMessage{{Text: "no recipient"}, {To: map[string]string{"wa_id": "16505551234"}},
		{Channel: "email", To: map[string]string{"wa_id": "16505551234"}, Text: "x"}} {
		if se := sdk.AsSendError(mustErr(c.Send(context.Background(), m))); se.Kind != sdk.KindPermanent {
			t.Errorf("%+v: %v", m, se)
		}
	}
}

func mustErr(_ *sdk.SendResult, err error) error {
	if err == nil {
		return errors.New("expected an error")
	}
	return err
}

func TestHealth(t *testing.T) {
	fake := newFakeMeta(t, []byte(`{}`))
	c, _ := configured(t, fake.URL)
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	fake.token = "rotated"
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "190") {
		t.Fatalf("expired token: %v", err)
	}
	if err := New().Health(context.Background()); err == nil {
		t.Fatal("unconfigured connector reported healthy")
	}
}

func FuzzParseNotification(f *testing.F) {
	for _, b := range fixtureBodies(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":"1","id":"x","type":"interactive","interactive":{}}]}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseNotification(body, testNow)
		if err != nil && len(evs) != 0 {
			t.Fatal("events returned with an error")
		}
		for _, ev := range evs {
			if ev.ID == "" || ev.Type == "" || len(ev.Identities) == 0 || ev.OccurredAt.IsZero() {
				t.Fatalf("incomplete event %+v", ev)
			}
		}
	})
}

// BenchmarkWebhook measures verify + parse of Meta's real signed delivery.
func BenchmarkWebhook(b *testing.B) {
	var vec signatureVector
	if err := json.Unmarshal(readFixture(b, "signature_test_vector.json"), &vec); err != nil {
		b.Fatal(err)
	}
	c := newConnector()
	if err := c.Configure(context.Background(), sdk.Config{"phone_number_id": "1", "access_token": "t", "app_secret": vec.AppSecret, "verify_token": "v"}, &recordingHost{}); err != nil {
		b.Fatal(err)
	}
	req := &sdk.WebhookRequest{Method: "POST", Body: []byte(vec.RawBody), Headers: map[string][]string{vec.HeaderName: {vec.HeaderValue}}}
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := c.HandleWebhook(context.Background(), req)
		if resp.Status != 200 || len(resp.Events) != 1 {
			b.Fatal(resp.Status)
		}
	}
}

// A correctly signed notification for another phone number of the same
// Meta app is answered 200 (or Meta retries it for days) but yields no
// events, and is logged once per number, not once per delivery.
func TestWebhookIgnoresOtherPhoneNumbers(t *testing.T) {
	c, h := configured(t, "http://127.0.0.1:1")
	const secret = "1222e786b144d0e85b9f365372d93676"
	msg := `{"from":"16505551234","id":"wamid.OTHER","timestamp":"1764000000","type":"text","text":{"body":"hi"}}`
	foreign := []byte(strings.Replace(string(inbound(msg)), `"phone_number_id":"106540352242922"`, `"phone_number_id":"555000111222333"`, 1))
	for n := 0; n < 3; n++ {
		resp, err := c.HandleWebhook(context.Background(), signedPost(secret, foreign))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusOK || len(resp.Events) != 0 {
			t.Fatalf("delivery %d for another number: %d with %d events", n, resp.Status, len(resp.Events))
		}
	}
	if _, ok := c.lastInboundAt("16505551234"); ok {
		t.Fatal("a foreign number's message opened the 24-hour window")
	}
	h.mu.Lock()
	logged := 0
	for _, l := range h.logs {
		if strings.Contains(l, "another WhatsApp phone number") {
			logged++
		}
	}
	h.mu.Unlock()
	if logged != 1 {
		t.Fatalf("logged %d times, want once: %v", logged, h.logs)
	}

	// One delivery with a change for each number: only ours is kept.
	var env map[string]any
	if err := json.Unmarshal(inbound(msg), &env); err != nil {
		t.Fatal(err)
	}
	var other map[string]any
	if err := json.Unmarshal(foreign, &other); err != nil {
		t.Fatal(err)
	}
	entries := append(env["entry"].([]any), other["entry"].([]any)...)
	env["entry"] = entries
	mixed, _ := json.Marshal(env)
	resp, err := c.HandleWebhook(context.Background(), signedPost(secret, mixed))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || len(resp.Events) != 1 || resp.Events[0].Properties["phone_number_id"] != "106540352242922" {
		t.Fatalf("mixed delivery: %d with %+v", resp.Status, resp.Events)
	}
}
