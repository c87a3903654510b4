package events

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Unmarshal must decode exactly what encoding/json decodes (and fail where
// it fails), whichever path it takes.
func TestUnmarshalMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{"id":"a","type":"track","source":"web","occurred_at":"2026-03-04T05:06:07.891Z","received_at":"2026-03-04T06:06:07+01:00","identities":{"user_id":"u1"},"context":{}}`,
		` { "id" : "a" , "identities" : { "email" : "a@omni-shop.dev" } , "properties" : { "x" : [ 1 , { "y" : null } ] } , "context" : { "extra" : { } } } `,
		`{"id":"esc\"aped\u00e9\ud83d\ude00","name":"\u003ctag\u003e","identities":{"user_id":"\\"},"context":{"page":{"url":"https://omni-shop.dev/?a=1\u0026b=2"}}}`,
		`{"id":"bad \xff utf8","context":{"ip":"\xfe"}}`,
		`{"id":null,"type":null,"occurred_at":null,"identities":null,"properties":null,"context":null}`,
		`{"context":{"campaign":null,"page":null,"extra":null,"channel":null}}`,
		`{"context":{"campaign":{"source":"g","medium":"m","name":"n","term":"t","content":"c"},"page":{"url":"u","path":"p","title":"t","referrer":"r","search":"s"},"journey_run":"j","ip":"1","user_agent":"ua","locale":"de"}}`,
		`{"properties":{}}`, `{"properties":{"n":1e400}}`, `{"properties":{"n":-0.5e-3,"b":true,"s":"x"}}`,
		`{}`, `null`, ``, `[]`, `"x"`, `{"id":"a"} x`, `{"id":"a",}`, `{"id":"a"`, `{"id":1}`, `{"id":"a"}}`,
		`{"ID":"upper"}`, `{"Identities":{"email":"x"}}`, `{"unknown":1,"id":"a"}`, `{"id":"a","id":"b"}`,
		`{"identities":{"email":"a","email":"b"}}`, `{"identities":{"email":null}}`, `{"identities":{"email":1}}`, `{"identities":[]}`,
		`{"properties":[]}`, `{"properties":"x"}`, `{"properties":{"a":}}`, `{"properties":{"a":[1}]}}`, `{"properties":{"a":1}`,
		`{"occurred_at":"yesterday"}`, `{"occurred_at":"2026-03-04T05:06:07Z","occurred_at":null}`, `{"occurred_at":5}`,
		`{"context":{"page":{"url":"a","url":"b"}}}`, `{"context":{"page":{"other":"x"}}}`, `{"context":{"campaign":{"name":1}}}`,
		`{"context":{"Channel":"web"}}`, `{"context":{"extra":{"a":1},"extra":{"b":2}}}`, `{"context":[]}`,
		"{\"id\":\"ctl\x01char\"}", `{"properties":{"a":01}}`, `{"properties":{"a":+1}}`, `{"properties":{"a":1.}}`, `{"properties":{"a":.5}}`,
		`{"properties":{"a":1e}}`, `{"properties":{"a":0x10}}`, `{"properties":{"a":-}}`, `{"properties":{"a":Infinity}}`, `{"properties":{"a":NaN}}`,
		`{"properties":{"a":1E+2,"b":-0,"c":0.0e-0,"d":123456789012345678901234567890}}`, `{"properties":{"a":tru}}`, `{"properties":{"a":nul}}`,
		`{"properties":{"a":1,"a":2}}`, `{"properties":{"k\u00e9y":"v","k\ud800":"lone surrogate"}}`, `{"properties":{"a":[[[[[[1]]]]]]}}`,
		`{"properties":{"a":[],"b":{},"c":[{}],"d":[1,]}}`, `{"properties":{"a":"x" "b":1}}`, `{"properties":{"a":1}x}`, `{"id":"a\u0000b"}`, `{"\u0069d":"escaped key"}`, `{"identities":{"e\u006dail":"x"}}`,
	}
	for _, depth := range []int{maxDepth - 1, maxDepth + 5, 10001} {
		inputs = append(inputs, `{"properties":{"deep":`+strings.Repeat("[", depth)+strings.Repeat("]", depth)+`}}`)
	}
	rng := rand.New(rand.NewSource(3))
	var marshalled [][]byte // with known identity kinds, as events have
	for i := 0; i < 500; i++ {
		e := randomEvent(rng)
		if b, err := e.Marshal(); err == nil {
			inputs = append(inputs, string(b))
		}
		if e.Identities != nil {
			e.Identities = Identities{IdentityKinds[i%len(IdentityKinds)]: randString(rng), Email: randString(rng)}
		}
		if b, err := e.Marshal(); err == nil {
			inputs = append(inputs, string(b))
			marshalled = append(marshalled, b)
		}
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
	full := &Event{ID: "x", Type: "order.placed", Name: "N", Source: "shopify", OccurredAt: at, ReceivedAt: at,
		Identities: Identities{"email": "a@omni-shop.dev", "user_id": "u"}, Properties: map[string]any{"total": 10.5, "items": []any{map[string]any{"sku": "A"}}},
		Context: Context{Channel: "web", Campaign: &Campaign{Source: "g"}, Page: &Page{URL: "u"}, Extra: map[string]any{"k": "v"}}}
	b, _ := full.Marshal()
	inputs = append(inputs, string(b))
	for _, in := range inputs {
		got, gotErr := Unmarshal([]byte(in))
		var want Event
		wantErr := json.Unmarshal([]byte(in), &want)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("%s: error %v, encoding/json %v", in, gotErr, wantErr)
		}
		if wantErr == nil && !reflect.DeepEqual(*got, want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", in, *got, want)
		}
	}
	// What Marshal writes takes the scanner, not the fallback.
	for _, m := range append(marshalled, b) {
		if _, ok := decodeKnown(m); !ok {
			t.Fatalf("%s fell back to encoding/json", m)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
	e := &Event{ID: "src:abcdefghijklmno:0b7c1c3e-2f7a-4a51-9d0e-6b7f1f0c2a11", Type: "track", Name: "Product Viewed", Source: "web", OccurredAt: at, ReceivedAt: at,
		Identities: Identities{"user_id": "user-42", "anonymous_id": "anon-42"},
		Properties: map[string]any{"sku": "SKU-1", "price": 19.99, "currency": "USD"},
		Context:    Context{Channel: "web", Page: &Page{URL: "https://omni-shop.dev/p/1"}, UserAgent: "Mozilla/5.0", Extra: map[string]any{"library": map[string]any{"name": "analytics.js", "version": "2.0"}}}}
	data, _ := e.Marshal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalEncodingJSON(b *testing.B) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
	e := &Event{ID: "src:abcdefghijklmno:0b7c1c3e-2f7a-4a51-9d0e-6b7f1f0c2a11", Type: "track", Name: "Product Viewed", Source: "web", OccurredAt: at, ReceivedAt: at,
		Identities: Identities{"user_id": "user-42", "anonymous_id": "anon-42"},
		Properties: map[string]any{"sku": "SKU-1", "price": 19.99, "currency": "USD"},
		Context:    Context{Channel: "web", Page: &Page{URL: "https://omni-shop.dev/p/1"}, UserAgent: "Mozilla/5.0", Extra: map[string]any{"library": map[string]any{"name": "analytics.js", "version": "2.0"}}}}
	data, _ := e.Marshal()
	b.ReportAllocs()
	for b.Loop() {
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			b.Fatal(err)
		}
	}
}
