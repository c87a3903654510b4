package ingest

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// A body is read whole up to the limit whether or not the client sent
// Content-Length (chunked calls send none), and one byte past the limit
// is enough to refuse it.
func TestReadBodyWithAndWithoutContentLength(t *testing.T) {
	long := strings.Repeat("x", 1500) // past the 512 bytes a body without a length starts from
	cases := []struct {
		name       string
		body       string
		sendLength bool
		limit      int
		wantOK     bool
	}{
		{"declared, under the limit", long, true, 2000, true},
		{"declared, at the limit", long, true, 1500, true},
		{"declared, over the limit", long, true, 1000, false},
		{"chunked, under the limit", long, false, 2000, true},
		{"chunked, at the limit", long, false, 1500, true},
		{"chunked, over the limit", long, false, 1499, false},
		{"empty", "", true, 100, true},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/v1/batch", strings.NewReader(c.body))
		if !c.sendLength {
			r.ContentLength = -1
		}
		got, ok, err := readBody(r, c.limit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ok != c.wantOK {
			t.Errorf("%s: within the limit = %v, want %v", c.name, ok, c.wantOK)
		}
		if ok && !bytes.Equal(got, []byte(c.body)) {
			t.Errorf("%s: read %d bytes, want the %d sent", c.name, len(got), len(c.body))
		}
		if !ok && len(got) != c.limit+1 {
			t.Errorf("%s: read %d bytes of an oversized body, want limit+1 = %d", c.name, len(got), c.limit+1)
		}
	}
}
