package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// The selection gives what the sorted definition (PERCENTILE.INC) gives,
// ties and all.
func TestInboxPercentileMatchesTheSortedDefinition(t *testing.T) {
	sorted := func(v []float64, p float64) float64 {
		s := slices.Sorted(slices.Values(v))
		pos := p * float64(len(s)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(s)-1)
		return s[lo] + (pos-float64(lo))*(s[hi]-s[lo])
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n += 7 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(r.IntN(50)) // many ties
		}
		before := slices.Clone(v)
		for _, p := range []float64{0, 0.1, 0.5, 0.9, 1} {
			got, ok := inboxPercentile(v, p)
			if want := sorted(v, p); !ok || got != want {
				t.Fatalf("n=%d p=%v: got %v, want %v", n, p, got, want)
			}
		}
		if !slices.Equal(v, before) {
			t.Fatal("inboxPercentile reordered its input")
		}
	}
	if got, _ := inboxPercentile([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9); math.Abs(got-9.1) > 1e-9 {
		t.Errorf("p90 of 1..10 = %v, want 9.1", got)
	}
}

func TestInboxRowPacksAndUnpacks(t *testing.T) {
	in := inboxRow{ID: "c1", Profile: "p1", Channel: "whatsapp", Assignee: "", Opened: 1763000000123, Resolved: 0, FRT: 300.5,
		Resolution: -1, Bot: true, SLABreaches: 2, CSAT: 5, FirstResolved: 1763000100000, Reopened: 1763000200000, Replies: "a1:2,:1"}
	var out inboxRow
	if !out.unpack(in.pack()) || out != in {
		t.Fatalf("unpacked %+v from %q, want %+v", out, in.pack(), in)
	}
	if out.unpack("c1|p1|broken") {
		t.Error("a broken text unpacked")
	}
}

func TestInboxDayPacksAndUnpacks(t *testing.T) {
	in := inboxDay{channel: "email", assignee: "a1", n: 3, bot: 1, handed: 2, breaches: 4, breached: 1, csat: [6]int{0, 1, 0, 0, 2, 1},
		replies: map[string]int{"a1": 3, "": 1}, frt: []float64{300.5, 60}, res: []float64{7200}, fcr: []int64{1763000100000, 0, 1763000200000, 1763000300000}}
	out := inboxDay{channel: "email", assignee: "a1"}
	if !out.unpack(in.pack()) || !reflect.DeepEqual(out, in) {
		t.Fatalf("unpacked %+v from %q, want %+v", out, in.pack(), in)
	}
	empty := inboxDay{n: 1}
	out = inboxDay{}
	if !out.unpack(empty.pack()) || !reflect.DeepEqual(out, empty) {
		t.Fatalf("unpacked %+v from %q, want %+v", out, empty.pack(), empty)
	}
	if out.unpack("1,2|broken") {
		t.Error("a broken text unpacked")
	}
}

// The quick decoding gives what encoding/json gives.
func TestInboxJSONValueMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{`null`, `"nps"`, `" 0–10 "`, `"a\"b"`, `"\u00e9"`, `10`, `-1.5`, `1e2`, `7.0`, `true`, `{"a":1}`, `[1]`, `""`} {
		got, ok := inboxJSONValue(s)
		var want any
		if err := json.Unmarshal([]byte(s), &want); err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v (%v), want %#v", s, got, ok, want)
		}
	}
}
