package events

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"
)

// Marshal must produce exactly json.Marshal's bytes: consumers, the event
// store and dedupe all see the bus payload.
func TestMarshalIsByteEqualToEncodingJSON(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
	cases := []*Event{
		{},
		{ID: "a", Type: "track", Source: "web", OccurredAt: at, ReceivedAt: at.In(time.FixedZone("x", 3600))},
		{ID: `q"uote\back<tag>&amp;` + "\u2028\u2029\x00\x1f\b\f\n\r\t\x7f", Type: "order.placed", Name: "Ünïcode ✓ \xff bad",
			Source: "shopify", OccurredAt: at, ReceivedAt: at, Identities: Identities{"user_id": "u1", "email": "a@omni-shop.dev", "anonymous_id": ""},
			Properties: map[string]any{"price": 19.99, "qty": float64(3), "tiny": 1e-7, "huge": 1e21, "neg": -0.000001, "zero": 0.0,
				"ok": true, "none": nil, "list": []any{"x", 1.5, false, nil, map[string]any{"z": "1", "a": []any{}}}, "nilmap": map[string]any(nil),
				"nillist": []any(nil), "": "empty key", "<k>": "v"},
			Context: Context{Channel: "web", Campaign: &Campaign{Source: "google", Term: "shoes"}, JourneyRun: "jr1",
				Page: &Page{URL: "https://omni-shop.dev/?a=1&b=<2>", Search: "?a=1"}, IP: "127.0.0.1", UserAgent: "Mozilla", Locale: "de-DE",
				Extra: map[string]any{"library": map[string]any{"name": "analytics.js", "version": "2.0"}}}},
		{ID: "b", Identities: Identities{}, Properties: map[string]any{}, Context: Context{Campaign: &Campaign{}, Page: &Page{}, Extra: map[string]any{}}},
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		cases = append(cases, randomEvent(rng))
	}
	for i, e := range cases {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Marshal()
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
		if _, ok := e.appendJSON(nil); !ok {
			t.Fatalf("case %d fell back to encoding/json", i)
		}
	}
}

// What the fast encoder does not know still encodes, through encoding/json.
func TestMarshalFallsBackForOtherValues(t *testing.T) {
	e := &Event{ID: "a", Properties: map[string]any{"n": 3, "s": []string{"x"}}}
	got, err := e.Marshal()
	want, _ := json.Marshal(e)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %s, %v; want %s", got, err, want)
	}
	if _, err := (&Event{Properties: map[string]any{"x": math.NaN()}}).Marshal(); err == nil {
		t.Fatal("NaN encoded without error")
	}
	if _, err := (&Event{OccurredAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).Marshal(); err == nil {
		t.Fatal("year 10000 encoded without error")
	}
}

func randomEvent(r *rand.Rand) *Event {
	e := &Event{ID: randString(r), Type: randString(r), Name: randString(r), Source: randString(r),
		OccurredAt: time.Unix(r.Int63n(4e9), r.Int63n(1e9)).UTC(), ReceivedAt: time.Unix(r.Int63n(4e9), 0)}
	if r.Intn(3) > 0 {
		e.Identities = Identities{}
		for i := r.Intn(4); i > 0; i-- {
			e.Identities[randString(r)] = randString(r)
		}
	}
	if r.Intn(2) == 0 {
		e.Properties = randMap(r, 0)
	}
	if r.Intn(2) == 0 {
		e.Context.Extra = randMap(r, 0)
		e.Context.Page = &Page{URL: randString(r), Title: randString(r)}
	}
	e.Context.Channel, e.Context.IP = randString(r), randString(r)
	return e
}

func randMap(r *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for i := r.Intn(5); i > 0; i-- {
		m[randString(r)] = randValue(r, depth+1)
	}
	return m
}

func randValue(r *rand.Rand, depth int) any {
	switch r.Intn(7) {
	case 0:
		return randString(r)
	case 1:
		return math.Float64frombits(r.Uint64())
	case 2:
		return float64(r.Intn(1000)) / []float64{1, 10, 3, 1e9, 1e-25}[r.Intn(5)]
	case 3:
		return r.Intn(2) == 0
	case 4:
		return nil
	case 5:
		if depth < 4 {
			return randMap(r, depth)
		}
	case 6:
		if depth < 4 {
			return []any{randValue(r, depth+1), randValue(r, depth+1)}
		}
	}
	return "leaf"
}

func randString(r *rand.Rand) string {
	const alphabet = "aZ09 _-.<>&\"\\/\n\t\x01\x7fé✓\u2028"
	var b strings.Builder
	for i := r.Intn(12); i > 0; i-- {
		if r.Intn(20) == 0 {
			b.WriteByte(byte(0x80 + r.Intn(0x40))) // invalid UTF-8
			continue
		}
		rs := []rune(alphabet)
		b.WriteRune(rs[r.Intn(len(rs))])
	}
	return b.String()
}
