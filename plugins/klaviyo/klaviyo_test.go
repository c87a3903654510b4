package klaviyo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/internal/testkit/golden"
	"github.com/omni/omni/plugins/sdk"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// waits records the back-off pauses a connector asked for (and skips them).
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func configured(t *testing.T, baseURL string, extra sdk.Config) (*Connector, *recordingHost, *waits) {
	t.Helper()
	c := newConnector()
	c.now = func() time.Time { return testNow }
	w := &waits{}
	c.sleep = w.sleep
	h := &recordingHost{}
	cfg := sdk.Config{"api_key": "pk_test_123", "base_url": baseURL, "poll_interval": "0"}
	for k, v := range extra {
		cfg[k] = v
	}
	if err := c.Configure(context.Background(), cfg, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, h, w
}

func fixtureJSON(t *testing.T, name string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The constructed create-event body is exactly what klaviyo_event sends.
func TestTrackEventMatchesDocumentedBody(t *testing.T) {
	fake := newFakeKlaviyo(t)
	c, _, _ := configured(t, fake.URL, nil)
	want := fixtureJSON(t, "create_event_request.constructed.json")
	attrs := want["data"].(map[string]any)["attributes"].(map[string]any)
	pattrs := attrs["profile"].(map[string]any)["data"].(map[string]any)["attributes"].(map[string]any)
	res, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "ignored", Channel: ChannelEvent,
		To:        map[string]string{"email": "Sarah.Mason@klaviyo-demo.com", "phone": "+15005550006"},
		ProfileID: "shopify:207119551",
		Properties: map[string]any{"metric": "Placed Order", "properties": attrs["properties"], "value": 199.0,
			"value_currency": "USD", "unique_id": "shopify:order:450789469", "time": "2026-09-04T13:38:55+00:00",
			"profile_attributes": map[string]any{"first_name": pattrs["first_name"], "last_name": pattrs["last_name"]}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderMessageID != "shopify:order:450789469" {
		t.Errorf("provider id %q", res.ProviderMessageID)
	}
	got := fake.posted("/api/events")
	if len(got) != 1 {
		t.Fatalf("%d events posted", len(got))
	}
	// Klaviyo accepts any RFC 3339 offset; compare the instant.
	gt := got[0]["data"].(map[string]any)["attributes"].(map[string]any)
	if gt["time"] != "2026-09-04T13:38:55Z" {
		t.Errorf("time %v", gt["time"])
	}
	gt["time"] = attrs["time"]
	if !reflect.DeepEqual(got[0], want) {
		g, _ := json.MarshalIndent(got[0], "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("body differs from create_event_request.constructed.json\n got %s\nwant %s", g, w)
	}
}

func TestSendEmailRecordsMetricEvent(t *testing.T) {
	fake := newFakeKlaviyo(t)
	c, _, _ := configured(t, fake.URL, sdk.Config{"email_metric": "Omni Email"})
	res, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "msg-42", Channel: "email",
		To: map[string]string{"email": "sarah.mason@klaviyo-demo.com"}, ProfileID: "prof_1", JourneyRun: "run_9",
		Subject: "Your order shipped", HTML: "<p>On its way</p>", Text: "On its way"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderMessageID != "omni:msg-42" {
		t.Errorf("provider id %q", res.ProviderMessageID)
	}
	got := fake.posted("/api/events")[0]["data"].(map[string]any)["attributes"].(map[string]any)
	metric := got["metric"].(map[string]any)["data"].(map[string]any)["attributes"].(map[string]any)["name"]
	prof := got["profile"].(map[string]any)["data"].(map[string]any)["attributes"].(map[string]any)
	props := got["properties"].(map[string]any)
	if metric != "Omni Email" || got["unique_id"] != "omni:msg-42" || prof["email"] != "sarah.mason@klaviyo-demo.com" ||
		prof["external_id"] != "prof_1" || props["subject"] != "Your order shipped" || props["html"] != "<p>On its way</p>" ||
		props["text"] != "On its way" || props["journey_run"] != "run_9" || props["omni_message_id"] != "msg-42" {
		t.Errorf("event %v", got)
	}
	// No email address → permanent, nothing sent.
	_, err = c.Send(context.Background(), &sdk.OutboundMessage{ID: "x", Channel: "email", To: map[string]string{"phone": "+15005550006"}, Subject: "s"})
	if se := sdk.AsSendError(err); err == nil || se.Kind != sdk.KindPermanent || se.Code != "missing_recipient" {
		t.Errorf("no email: %v", err)
	}
}

func TestSendRateLimitedAndErrors(t *testing.T) {
	fake := newFakeKlaviyo(t)
	c, _, _ := configured(t, fake.URL, nil)
	msg := &sdk.OutboundMessage{ID: "m1", Channel: "email", To: map[string]string{"email": "a@b.co"}, Subject: "s"}
	fake.throttleNext("/api/events", 1)
	_, err := c.Send(context.Background(), msg)
	se := sdk.AsSendError(err)
	if err == nil || se.Kind != sdk.KindRateLimited || se.RetryAfter != time.Second || !strings.Contains(se.Reason, "throttled") {
		t.Fatalf("429: %v", err)
	}
	if _, err := c.Send(context.Background(), msg); err != nil {
		t.Fatalf("retry after 429: %v", err)
	}
	// A wrong key is permanent and says what to check.
	bad, _, _ := configured(t, fake.URL, sdk.Config{"api_key": "pk_wrong"})
	_, err = bad.Send(context.Background(), msg)
	if se := sdk.AsSendError(err); se.Kind != sdk.KindPermanent || !strings.Contains(se.Reason, "api_key") {
		t.Errorf("401: %v", err)
	}
	// An unsupported revision is a 400: permanent.
	fake.revision = "2099-01-01"
	_, err = c.Send(context.Background(), msg)
	if se := sdk.AsSendError(err); se.Kind != sdk.KindPermanent || !strings.Contains(se.Reason, "revision") {
		t.Errorf("400: %v", err)
	}
	fake.revision = DefaultRevision
	// Unreachable → retryable.
	dead, _, _ := configured(t, "http://127.0.0.1:1", nil)
	if se := sdk.AsSendError(errOf(dead.Send(context.Background(), msg))); se.Kind != sdk.KindRetryable {
		t.Errorf("unreachable: %v", se)
	}
	if se := sdk.AsSendError(errOf(c.Send(context.Background(), &sdk.OutboundMessage{ID: "z", Channel: "sms"}))); se.Kind != sdk.KindPermanent {
		t.Errorf("sms: %v", se)
	}
}

func errOf(_ *sdk.SendResult, err error) error {
	if err == nil {
		return errors.New("expected an error")
	}
	return err
}

// A real opt-in becomes exactly the documented bulk subscribe body.
func TestProfileSyncWithConsent(t *testing.T) {
	fake := newFakeKlaviyo(t)
	c, _, _ := configured(t, fake.URL, sdk.Config{"list_id": "TpkKTE"})
	res, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "p1", Channel: ChannelProfile,
		To: map[string]string{"email": "JaneDoe@klaviyo.com"}, ProfileID: "prof_7",
		Properties: map[string]any{"email_consent": "subscribed", "custom_source": "checkout",
			"traits": map[string]any{"first_name": "Jane", "plan": "gold"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderMessageID != "01M1PAAWG9ZV3P6AA4RTJZWYAK" {
		t.Errorf("profile id %q", res.ProviderMessageID)
	}
	imp := fake.posted("/api/profile-import")
	if len(imp) != 1 {
		t.Fatalf("%d imports", len(imp))
	}
	attrs := imp[0]["data"].(map[string]any)["attributes"].(map[string]any)
	if attrs["email"] != "janedoe@klaviyo.com" || attrs["first_name"] != "Jane" || attrs["external_id"] != "prof_7" ||
		!reflect.DeepEqual(attrs["properties"], map[string]any{"plan": "gold"}) {
		t.Errorf("import %v", attrs)
	}
	subs := fake.posted("/api/profile-subscription-bulk-create-jobs")
	if len(subs) != 1 || !reflect.DeepEqual(subs[0], fixtureJSON(t, "bulk_subscribe_request.json")) {
		g, _ := json.Marshal(subs)
		t.Errorf("subscribe job differs from bulk_subscribe_request.json: %s", g)
	}
	// An opt-out goes to the delete job, never to the subscribe job.
	_, err = c.Send(context.Background(), &sdk.OutboundMessage{ID: "p2", Channel: ChannelProfile,
		To: map[string]string{"email": "janedoe@klaviyo.com"}, Properties: map[string]any{"email_consent": "unsubscribed"}})
	if err != nil {
		t.Fatal(err)
	}
	del := fake.posted("/api/profile-subscription-bulk-delete-jobs")
	if len(del) != 1 || len(fake.posted("/api/profile-subscription-bulk-create-jobs")) != 1 {
		t.Fatalf("delete jobs %d", len(del))
	}
	p := del[0]["data"].(map[string]any)["attributes"].(map[string]any)["profiles"].(map[string]any)["data"].([]any)[0].(map[string]any)["attributes"].(map[string]any)
	if p["email"] != "janedoe@klaviyo.com" || !reflect.DeepEqual(p["subscriptions"], map[string]any{"email": map[string]any{"marketing": map[string]any{"consent": "UNSUBSCRIBED"}}}) {
		t.Errorf("delete job %v", p)
	}
}

// seedEngagement gives the fake account the built-in metrics and a history
// of opens, clicks and one unsubscribe for the recorded profiles.
func seedEngagement(t *testing.T, f *fakeKlaviyo) (total int) {
	var rec struct {
		Response struct {
			Body document `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(readFixture(t, "get_events_200.recorded.json"), &rec); err != nil {
		t.Fatal(err)
	}
	for _, p := range rec.Response.Body.Included {
		if p.Type == "profile" {
			f.addProfile(p)
		}
	}
	f.addMetric("SkDfHe", "SDK Smoke", "api")
	f.addMetric("OpnEml", "Opened Email", "klaviyo")
	f.addMetric("FakeOp", "Opened Email", "shopify") // a look-alike custom metric
	f.addMetric("ClkEml", "Clicked Email", "klaviyo")
	f.addMetric("UnsEml", "Unsubscribed from Email Marketing", "klaviyo")
	profiles := []string{"01M1PA9MBA7VB258TP74BXMQTG", "01M1PA9KFVRQEFP614XWVXGVY7"}
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		f.addEvent(fmt.Sprintf("open%d", i), "OpnEml", profiles[i%2], base.Add(time.Duration(i)*time.Minute),
			map[string]any{"Subject": "Autumn sale", "Campaign Name": "Autumn 2026", "$message": "01MSG"})
		total++
	}
	for i := 0; i < 3; i++ {
		f.addEvent(fmt.Sprintf("click%d", i), "ClkEml", profiles[i%2], base.Add(time.Duration(i)*time.Minute+30*time.Second),
			map[string]any{"Subject": "Autumn sale", "URL": "https://shop.example/sale", "Campaign Name": "Autumn 2026"})
		total++
	}
	f.addEvent("unsub0", "UnsEml", profiles[0], base.Add(time.Hour), map[string]any{"method": "PROFILE_PAGE"})
	total++
	// Something older than the backfill window.
	f.addEvent("old0", "OpnEml", profiles[0], base.AddDate(0, -6, 0), map[string]any{})
	return total
}

type batchSink struct {
	events  []sdk.Event
	cursors []string
	failAt  int // return an error on this batch number (1-based), 0 = never
	batches int
}

func (s *batchSink) Batch(ctx context.Context, evs []sdk.Event, cursor string, p sdk.Progress) error {
	s.batches++
	if s.failAt != 0 && s.batches == s.failAt {
		return errors.New("host went away")
	}
	s.events = append(s.events, evs...)
	s.cursors = append(s.cursors, cursor)
	return nil
}

func ids(evs []sdk.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestBackfillPagesThrottlesAndResumes(t *testing.T) {
	fake := newFakeKlaviyo(t)
	total := seedEngagement(t, fake)
	c, _, w := configured(t, fake.URL, nil)
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

	fake.throttleNext("/api/events", 2)
	full := &batchSink{}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Since: since}, full); err != nil {
		t.Fatal(err)
	}
	if len(full.events) != total {
		t.Fatalf("backfill got %d events %v, want %d", len(full.events), ids(full.events), total)
	}
	if full.batches < 5 || full.cursors[len(full.cursors)-1] != "" {
		t.Errorf("expected several pages ending with an empty cursor: %d batches, cursors %q", full.batches, full.cursors)
	}
	if !reflect.DeepEqual(w.d, []time.Duration{time.Second, time.Second}) {
		t.Errorf("back-off pauses %v, want Retry-After twice", w.d)
	}
	types := map[string]int{}
	for _, e := range full.events {
		types[e.Type]++
		toCore(t, e)
	}
	if types[events.EmailOpened] != 5 || types[events.EmailClicked] != 3 || types[events.ConsentChanged] != 1 {
		t.Errorf("types %v", types)
	}
	for _, q := range fake.queries() {
		if strings.Contains(q, "FakeOp") || strings.Contains(q, "SkDfHe") {
			t.Errorf("queried a metric that is not Klaviyo's engagement metric: %s", q)
		}
	}

	// Interrupted on the third page, then resumed from the last cursor the
	// host stored: the union is the full set, nothing lost.
	cut := &batchSink{failAt: 3}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Since: since}, cut); err == nil {
		t.Fatal("interrupted backfill reported success")
	}
	resume := cut.cursors[len(cut.cursors)-1]
	if resume == "" {
		t.Fatal("no resume cursor")
	}
	rest := &batchSink{}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Since: since, Cursor: resume}, rest); err != nil {
		t.Fatal(err)
	}
	union := map[string]bool{}
	for _, e := range append(cut.events, rest.events...) {
		union[e.ID] = true
	}
	if len(union) != total || len(cut.events)+len(rest.events) != total {
		t.Errorf("resume: %d + %d events, %d distinct, want %d", len(cut.events), len(rest.events), len(union), total)
	}
	// No since: the whole history, including the old open.
	all := &batchSink{}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{}, all); err != nil || len(all.events) != total+1 {
		t.Errorf("backfill without since: %d events, %v", len(all.events), err)
	}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Cursor: `{"metric":"Opened Email","next":"https://evil.example/api/events"}`}, &batchSink{}); err == nil {
		t.Error("a cursor pointing off the API host was followed")
	}
}

func TestEventsGolden(t *testing.T) {
	var rec struct {
		Response struct {
			Body document `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(readFixture(t, "get_events_200.recorded.json"), &rec); err != nil {
		t.Fatal(err)
	}
	profiles := map[string]resource{}
	for _, p := range rec.Response.Body.Included {
		profiles[p.ID] = p
	}
	m, _ := mappingByName("Opened Email")
	var out []sdk.Event
	for _, ev := range rec.Response.Body.Data {
		e, ok := eventToOmni(ev, "Opened Email", m, profiles, testNow)
		if !ok {
			t.Fatalf("event %s not mapped", ev.ID)
		}
		toCore(t, e)
		out = append(out, e)
	}
	if out[0].Identities[events.Email] != "sdk-smoke+09042132-ev2@nickdnktech.com" || out[0].Identities[events.KlaviyoProfile] != "01M1PA9MBA7VB258TP74BXMQTG" {
		t.Errorf("identities %v", out[0].Identities)
	}
	golden.JSON(t, "get_events_as_opened_email", out)
}

type webhookVector struct {
	Secret  string            `json:"secret"`
	Headers map[string]string `json:"headers"`
	RawBody string            `json:"raw_body"`
}

func TestSystemWebhook(t *testing.T) {
	var vec webhookVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.computed.json"), &vec); err != nil {
		t.Fatal(err)
	}
	if !ValidSignature(vec.Secret, []byte(vec.RawBody), vec.Headers[TimestampHeader], vec.Headers[SignatureHeader]) {
		t.Fatal("fixture signature does not verify")
	}
	c, _, _ := configured(t, "", sdk.Config{"webhook_secret": vec.Secret})
	req := &sdk.WebhookRequest{Method: http.MethodPost, Body: []byte(vec.RawBody), Headers: map[string][]string{}}
	for k, v := range vec.Headers {
		req.Headers[strings.ToLower(k)] = []string{v}
	}
	resp, err := c.HandleWebhook(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || len(resp.Events) != 1 {
		t.Fatalf("%d %s %v", resp.Status, resp.Body, resp.Events)
	}
	ev := resp.Events[0]
	toCore(t, ev)
	if ev.Type != events.ConsentChanged || ev.ID != "klaviyo:event:73WCCK7JKtE" || ev.Identities[events.Email] != "email@example.com" ||
		ev.Identities[events.KlaviyoProfile] != "01KP4EGHH8QJ3N3AY2Z6V7RMDK" || ev.Properties["status"] != "unsubscribed" ||
		ev.Properties["channel"] != "email" || ev.Properties["source"] != "klaviyo" {
		t.Errorf("event %+v", ev)
	}
	golden.JSON(t, "system_webhook_unsubscribed", resp.Events)

	// The transcribed fixture (pretty-printed) parses to the same event.
	evs, err := ParseSystemWebhook(readFixture(t, "system_webhook_unsubscribed_from_email_marketing.json"), "01KP4EGG9B0AEF4VJD749M6H9D", testNow)
	if err != nil || len(evs) != 1 || !reflect.DeepEqual(evs[0], ev) {
		t.Errorf("fixture file: %v %v", evs, err)
	}

	bad := map[string]func(r *sdk.WebhookRequest){
		"tampered body": func(r *sdk.WebhookRequest) {
			r.Body = []byte(strings.Replace(vec.RawBody, "email@example.com", "other@example.com", 1))
		},
		"other timestamp": func(r *sdk.WebhookRequest) { r.Headers["klaviyo-timestamp"] = []string{"2026-04-13T22:49:37+00:00"} },
		"no signature":    func(r *sdk.WebhookRequest) { delete(r.Headers, "klaviyo-signature") },
	}
	for name, mutate := range bad {
		r := *req
		r.Headers = map[string][]string{}
		for k, v := range req.Headers {
			r.Headers[k] = v
		}
		mutate(&r)
		resp, _ := c.HandleWebhook(context.Background(), &r)
		if resp.Status != http.StatusUnauthorized || len(resp.Events) != 0 {
			t.Errorf("%s: %d with %d events", name, resp.Status, len(resp.Events))
		}
	}
	r := *req
	r.Headers = map[string][]string{"klaviyo-webhook-id": {"someone-else"}, "klaviyo-timestamp": req.Headers["klaviyo-timestamp"], "klaviyo-signature": req.Headers["klaviyo-signature"]}
	if resp, _ := c.HandleWebhook(context.Background(), &r); resp.Status != 400 {
		t.Errorf("mismatched webhook id: %d", resp.Status)
	}
	body := []byte(`{"data":"nope"}`)
	r = sdk.WebhookRequest{Method: "POST", Body: body, Headers: map[string][]string{"klaviyo-timestamp": {"t"}, "klaviyo-signature": {Sign(vec.Secret, body, "t")}}}
	if resp, _ := c.HandleWebhook(context.Background(), &r); resp.Status != 400 || !strings.Contains(string(resp.Body), "message") {
		t.Errorf("malformed: %d %s", resp.Status, resp.Body)
	}
	off, _, _ := configured(t, "", nil)
	if resp, _ := off.HandleWebhook(context.Background(), req); resp.Status != 404 || !strings.Contains(string(resp.Body), "webhook_secret") {
		t.Errorf("without secret: %d %s", resp.Status, resp.Body)
	}
}

// The poll loop emits new engagement through the host, keeps its position
// in state_file and starts from there after a restart.
func TestPollLoopEmitsAndKeepsCursor(t *testing.T) {
	fake := newFakeKlaviyo(t)
	total := seedEngagement(t, fake)
	state := filepath.Join(t.TempDir(), "klaviyo-poll.json")
	c := newConnector()
	c.now = func() time.Time { return testNow }
	h := &recordingHost{}
	cfg := sdk.Config{"api_key": "pk_test_123", "base_url": fake.URL, "poll_interval": "1s", "poll_lookback": "240h", "state_file": state}
	if err := c.Configure(context.Background(), cfg, h); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	omnitest.Eventually(t, 20*time.Second, func() bool { return distinct(h.emitted()) == total }, "first poll emits the seeded history")

	later := time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
	fake.addEvent("open-new", "OpnEml", "01M1PA9MBA7VB258TP74BXMQTG", later, map[string]any{"Subject": "Last call"})
	omnitest.Eventually(t, 20*time.Second, func() bool { return distinct(h.emitted()) == total+1 }, "a later poll picks up the new open")
	// An open that becomes visible late, dated a few minutes before the
	// newest one, is still picked up (the poll re-reads pollOverlap).
	fake.addEvent("open-late", "OpnEml", "01M1PA9KFVRQEFP614XWVXGVY7", later.Add(-3*time.Minute), map[string]any{"Subject": "Last call"})
	omnitest.Eventually(t, 20*time.Second, func() bool { return distinct(h.emitted()) == total+2 }, "the late open is picked up")
	if n := len(h.emitted()); n != total+2 {
		t.Errorf("%d events emitted for %d distinct: the overlap re-emitted some", n, total+2)
	}
	c.Close()

	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st pollState
	if err := json.Unmarshal(b, &st); err != nil || !st.Since["Opened Email"].Equal(later) {
		t.Fatalf("state file %s (%v)", b, err)
	}
	// A restarted connector queries from the saved position, not the look-back.
	before := len(fake.queries())
	c2 := newConnector()
	c2.now = c.now
	h2 := &recordingHost{}
	if err := c2.Configure(context.Background(), cfg, h2); err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	omnitest.Eventually(t, 20*time.Second, func() bool { return len(fake.queries()) >= before+3 }, "restarted poll runs")
	c2.Close()
	var sawSaved bool
	for _, q := range fake.queries()[before:] {
		if strings.Contains(q, `"OpnEml"`) {
			sawSaved = strings.Contains(q, "2026-11-25T10:50:00Z") // position minus the overlap
		}
	}
	if !sawSaved {
		t.Errorf("restart did not resume from the saved cursor: %v", fake.queries()[before:])
	}
	if n := len(h2.emitted()); n != 0 {
		t.Errorf("restart re-emitted %d events: %v", n, ids(h2.emitted()))
	}
}

func distinct(evs []sdk.Event) int {
	m := map[string]bool{}
	for _, e := range evs {
		m[e.ID] = true
	}
	return len(m)
}

func TestConfigureAndHealth(t *testing.T) {
	var ce *sdk.ConfigError
	if err := newConnector().Configure(context.Background(), sdk.Config{}, nil); !errors.As(err, &ce) || ce.Field != "api_key" {
		t.Errorf("no key: %v", err)
	}
	for key, val := range map[string]string{"revision": "latest", "poll_interval": "often", "base_url": "a.klaviyo.com", "api_key": "Klaviyo-API-Key pk_x"} {
		cfg := sdk.Config{"api_key": "pk_x", key: val}
		if err := newConnector().Configure(context.Background(), cfg, nil); !errors.As(err, &ce) || ce.Field != key {
			t.Errorf("%s=%q: %v", key, val, err)
		}
	}
	fake := newFakeKlaviyo(t)
	c, _, _ := configured(t, fake.URL, nil)
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad, _, _ := configured(t, fake.URL, sdk.Config{"api_key": "pk_nope"})
	if err := bad.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("bad key health: %v", err)
	}
	d, _ := New().Describe(context.Background())
	for _, f := range d.Config {
		if (f.Name == "api_key" || f.Name == "webhook_secret") != f.Secret {
			t.Errorf("field %s secret=%v", f.Name, f.Secret)
		}
	}
}

func FuzzParseSystemWebhook(f *testing.F) {
	f.Add(readFixture(f, "system_webhook_unsubscribed_from_email_marketing.json"))
	var vec webhookVector
	_ = json.Unmarshal(readFixture(f, "signature_test_vector.computed.json"), &vec)
	f.Add([]byte(vec.RawBody))
	f.Add([]byte(`{"data":[{"topic":"event:klaviyo.opened_email","payload":{"data":{"id":"x","relationships":{"profile":{"data":null}}}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseSystemWebhook(body, "", testNow)
		if err != nil && evs != nil {
			t.Fatal("events with an error")
		}
		for _, e := range evs {
			if e.ID == "" || len(e.Identities) == 0 {
				t.Fatalf("incomplete %+v", e)
			}
		}
	})
}

// BenchmarkMapEventsPage measures mapping the recorded events page.
func BenchmarkMapEventsPage(b *testing.B) {
	var rec struct {
		Response struct {
			Body json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(readFixture(b, "get_events_200.recorded.json"), &rec); err != nil {
		b.Fatal(err)
	}
	m, _ := mappingByName("Opened Email")
	b.ReportAllocs()
	for b.Loop() {
		var doc document
		if err := json.Unmarshal(rec.Response.Body, &doc); err != nil {
			b.Fatal(err)
		}
		profiles := map[string]resource{}
		for _, p := range doc.Included {
			profiles[p.ID] = p
		}
		for _, ev := range doc.Data {
			if _, ok := eventToOmni(ev, "Opened Email", m, profiles, testNow); !ok {
				b.Fatal("unmapped")
			}
		}
	}
}
