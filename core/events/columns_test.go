package events

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"testing"
	"time"
)

// The events table's identities, properties and context columns must hold
// exactly what json.Marshal wrote for each member before ColumnsJSON, or
// stored rows would change: checked over hand-made edge cases, random
// events, and the same events after a trip over the bus (as the writer
// gets them).
func TestColumnsJSONIsByteEqualToEncodingJSON(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
	cases := []*Event{
		{},
		{ID: "a", Identities: Identities{}, Properties: map[string]any{}, Context: Context{Campaign: &Campaign{}, Page: &Page{}, Extra: map[string]any{}}},
		{ID: "b", Identities: Identities{"user_id": "u1", "email": "a@omni-shop.dev", "anonymous_id": "", "phone": "+4917", "wa_id": "1",
			"shopify_customer_id": "2", "square_customer_id": "3", "klaviyo_profile_id": "4", "x<&>": "\u2028\xff"},
			Properties: map[string]any{"price": 19.99, "tiny": 1e-7, "huge": 1e21, "none": nil, "list": []any{"x", 1.5, false, nil, map[string]any{"z": "1"}},
				"nilmap": map[string]any(nil), "nillist": []any(nil), "": "empty key"},
			Context: Context{Channel: "web", Campaign: &Campaign{Source: "google", Medium: "cpc", Name: "n", Term: "shoes", Content: "c"}, JourneyRun: "jr1",
				Page: &Page{URL: "https://omni-shop.dev/?a=1&b=<2>", Path: "/", Title: "T", Referrer: "r", Search: "?a=1"}, IP: "127.0.0.1",
				UserAgent: "Mozilla", Locale: "de-DE", Extra: map[string]any{"library": map[string]any{"name": "analytics.js", "version": "2.0"}}}},
		{ID: "c", OccurredAt: at, Context: Context{Page: &Page{Title: "only"}, Extra: map[string]any{"k": []any{}}}},
		// Values only encoding/json writes, or refuses.
		{ID: "d", Properties: map[string]any{"n": 3, "s": []string{"x"}}, Context: Context{Extra: map[string]any{"i": int64(2)}}},
		{ID: "e", Properties: map[string]any{"x": math.NaN()}},
		{ID: "f", Identities: Identities{"email": "a@omni-shop.dev"}, Context: Context{Extra: map[string]any{"x": math.Inf(1)}}},
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 500; i++ {
		e := randomEvent(rng)
		cases = append(cases, e)
		if data, err := e.Marshal(); err == nil {
			back, err := Unmarshal(data)
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, back)
		}
	}
	buf := []byte("prefix")
	for i, e := range cases {
		ids, _ := json.Marshal(e.Identities)
		props := []byte("null")
		if e.Properties != nil {
			props, _ = json.Marshal(e.Properties)
		}
		ctx, _ := json.Marshal(e.Context)
		out, idsEnd, propsEnd := e.ColumnsJSON(buf)
		if string(out[:6]) != "prefix" {
			t.Fatalf("case %d: overwrote what was in the buffer", i)
		}
		got := [3][]byte{out[6:idsEnd], out[idsEnd:propsEnd], out[propsEnd:]}
		for k, want := range [3][]byte{ids, props, ctx} {
			if !bytes.Equal(got[k], want) {
				t.Fatalf("case %d, column %d:\n got %s\nwant %s", i, k, got[k], want)
			}
		}
	}
}
