package fastjson_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/internal/fastjson"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// batch is the shape the tracking API decodes.
type batch struct {
	Batch    []events.SegmentMessage `json:"batch"`
	Context  map[string]any          `json:"context"`
	SentAt   *time.Time              `json:"sentAt"`
	WriteKey string                  `json:"writeKey"`
}

// same decodes data with both decoders into fresh values of v's type and
// fails unless results and errors are identical.
func same[T any](t *testing.T, data []byte) {
	t.Helper()
	var want, got T
	wantErr := json.Unmarshal(data, &want)
	gotErr := fastjson.Unmarshal(data, &got)
	if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
		t.Fatalf("errors differ on %s:\nencoding/json: %v\nfastjson:      %v", data, wantErr, gotErr)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("results differ on %s:\nencoding/json: %#v\nfastjson:      %#v", data, want, got)
	}
}

func TestVendorFixturesDecodeIdentically(t *testing.T) {
	n := 0
	for _, vendor := range []string{"shopify", "square", "whatsapp", "klaviyo"} {
		dir := filepath.Join(vendorfixtures.Dir(t, vendor), vendor)
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			same[any](t, data)
			same[map[string]any](t, data)
			same[batch](t, data)
			same[events.SegmentMessage](t, data)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no fixture files found")
	}
}

// numbers are valid number texts a client may send, edge cases included;
// badNumbers are not JSON numbers (or overflow a float64).
var numbers = []string{"0", "-0", "1", "-1", "19.99", "0.1", "1e3", "1E-7", "-2.5e+10", "123456789012345678901234567890",
	"9007199254740993", "1.7976931348623157e308", "4.9e-324", "1e-400", "0.30000000000000004", "42", "-7.25", "1.0", "100"}
var badNumbers = []string{"1e309", "-1e309", "01", "1.", ".5", "-", "+1", "1e", "0x10", "NaN", "Infinity", "1_000"}

// strs are valid string literals (escapes, surrogates, bad UTF-8, times);
// badStrs are not valid JSON strings.
var strs = []string{`""`, `"a"`, `"Product Viewed"`, `"\u00e9t\u00e9"`, `"été"`, `"\ud83d\ude00"`, `"\ud800"`, `"a\nb\t\"c\"\\"`,
	`"<script>&"`, "\"\xff\xfe\"", `"\u0000"`, `"2024-05-01T10:00:00Z"`, `"2024-05-01T10:00:00.123+02:00"`,
	`"2024-13-01T00:00:00Z"`, `"not a time"`}
var badStrs = []string{`"\x"`, `"unterminated`, "\"a\nb\""}

var keys = []string{"type", "messageId", "MessageID", "messageid", "userId", "anonymousId", "previousId", "groupId", "event",
	"name", "category", "properties", "traits", "context", "channel", "timestamp", "originalTimestamp", "sentAt",
	"integrations", "writeKey", "batch", "extra", "price", "sku", "ip", "page", "url", "é", ""}

func randValue(r *rand.Rand, depth int) string {
	switch k := r.IntN(10); {
	case r.IntN(200) == 0:
		return badNumbers[r.IntN(len(badNumbers))]
	case r.IntN(200) == 0:
		return badStrs[r.IntN(len(badStrs))]
	case k < 3:
		return numbers[r.IntN(len(numbers))]
	case k < 6:
		return strs[r.IntN(len(strs))]
	case k == 6:
		return []string{"true", "false", "null"}[r.IntN(3)]
	case k == 7 && depth < 4:
		parts := make([]string, r.IntN(4))
		for i := range parts {
			parts[i] = randValue(r, depth+1)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case depth < 4:
		return randObject(r, depth+1)
	}
	return strconv.Itoa(r.IntN(1000))
}

func randObject(r *rand.Rand, depth int) string {
	parts := make([]string, r.IntN(6))
	for i := range parts {
		parts[i] = strconv.Quote(keys[r.IntN(len(keys))]) + ":" + randValue(r, depth)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// randBatch is a Segment batch of mostly well-formed items with random
// values in every field (numbers, strings, times, nested objects).
func randBatch(r *rand.Rand) string {
	items := make([]string, 1+r.IntN(5))
	for i := range items {
		fields := []string{`"type":"track"`, `"event":"Product Viewed"`,
			`"messageId":` + strconv.Quote(fmt.Sprint("m-", r.IntN(1e6))), `"userId":` + randValue(r, 3),
			`"properties":` + randObject(r, 1), `"context":` + randObject(r, 1)}
		for j := r.IntN(4); j > 0; j-- {
			fields = append(fields, strconv.Quote(keys[r.IntN(len(keys))])+":"+randValue(r, 2))
		}
		r.Shuffle(len(fields), func(a, b int) { fields[a], fields[b] = fields[b], fields[a] })
		items[i] = "{" + strings.Join(fields, ",") + "}"
	}
	return `{"batch":[` + strings.Join(items, ",") + `],"sentAt":` + randValue(r, 4) + `}`
}

func TestRandomPayloadsDecodeIdentically(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	valid := 0
	for i := 0; i < 20000; i++ {
		b := []byte(randBatch(r))
		if json.Valid(b) {
			valid++
		}
		same[batch](t, b)
		same[any](t, b)
		o := []byte(randObject(r, 0))
		same[events.SegmentMessage](t, o)
		same[map[string]any](t, o)
	}
	// Invalid JSON is decoded by encoding/json alone: most payloads must
	// be valid for the comparison to test the fast decoder.
	if valid < 10000 {
		t.Fatalf("only %d of 20000 random batches are valid JSON", valid)
	}
}

func TestNumbersDecodeIdentically(t *testing.T) {
	for _, n := range append(numbers, badNumbers...) {
		same[any](t, []byte(n))
		same[any](t, []byte(`{"price":`+n+`}`))
		same[events.SegmentMessage](t, []byte(`{"userId":`+n+`,"properties":{"price":`+n+`}}`))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		f := r.NormFloat64() * float64(r.Int64N(1<<62)) / float64(int64(1)<<r.IntN(62))
		for _, s := range []string{strconv.FormatFloat(f, 'g', -1, 64), strconv.FormatFloat(f, 'e', r.IntN(20), 64), strconv.FormatFloat(f, 'f', r.IntN(12), 64)} {
			same[any](t, []byte(s))
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20; i++ {
		f.Add([]byte(randBatch(r)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		same[batch](t, data)
		same[any](t, data)
	})
}
