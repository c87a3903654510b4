package square

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/plugins/internal/hosttest"
)

func omniWithSquare(t *testing.T, f *fakeSquare) (*omnitest.Server, string) {
	t.Helper()
	// The fake's address is a file setting: it is not part of the
	// connector's advertised schema, so the API would refuse it.
	s := hosttest.Start(t, Name, New, map[string]any{KeyTestBaseURL: f.URL})
	return s, hosttest.SuperuserToken(t, s)
}

// waitBackfillDone waits for the host to report the backfill finished and
// returns how many records it reported.
func waitBackfillDone(t *testing.T, s *omnitest.Server, auth http.Header) int64 {
	t.Helper()
	var v struct {
		State string
		Done  int64
		Error string
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		_, b := s.Do(t, "GET", "/api/v1/connectors/"+Name+"/backfill", nil, auth)
		json.Unmarshal(b, &v)
		if v.State == "failed" {
			t.Fatalf("backfill failed: %s", v.Error)
		}
		return v.State == "done"
	}, "backfill done")
	return v.Done
}

func countEvents(t *testing.T, s *omnitest.Server, where string, args ...any) int {
	t.Helper()
	var n int
	q := fmt.Sprintf("SELECT COUNT(*) FROM events WHERE "+where, args...)
	if err := s.PB.DB().NewQuery(q).Row(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestEndToEndInStoreSaleStored: a signed payment.updated posted to
// /webhooks/square reaches the plugin subprocess, which fetches the order
// and the buyer from the fake Square; the stored order.placed carries the
// buyer's phone (the join key with their online profile) and channel pos.
// Wrong signatures store nothing; redeliveries store once; the backfill
// through the host stores customers and orders.
func TestEndToEndInStoreSaleStored(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	f := newFakeSquare(t)
	seedOrder(t, f, "03O3USaPaAaFnI6kkwB1JxGgBsUZY", "QPTXM8PQNX3Q726ZYHPMNP46XC")
	seedCustomer(t, f, "QPTXM8PQNX3Q726ZYHPMNP46XC", "bob.norman@mail.example.com", "+16136120707")
	f.Locations = []string{"S8GWD5R9QB376"}
	f.SearchO["S8GWD5R9QB376"] = []map[string]any{f.Orders["03O3USaPaAaFnI6kkwB1JxGgBsUZY"]}
	f.SearchC = []map[string]any{f.Customers["QPTXM8PQNX3Q726ZYHPMNP46XC"]}
	s, tok := omniWithSquare(t, f)
	auth := http.Header{"Authorization": {tok}}

	st, out := s.Do(t, "PATCH", "/api/v1/connectors/square", map[string]any{"enabled": true, "config": map[string]string{
		KeyAccessToken: f.Token, KeySignatureKey: testKey}}, auth)
	if st != 200 {
		t.Fatalf("enable: %d %s", st, out)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		_, b := s.Do(t, "GET", "/api/v1/connectors/square", nil, auth)
		var v struct{ State string }
		json.Unmarshal(b, &v)
		return v.State == "running"
	}, "square connector running")

	// Square signs the URL it calls: here Omni's own address.
	url := s.URL + "/webhooks/square"
	body := fixture(t, "payment_updated.json")
	if st, b := s.Do(t, "POST", "/webhooks/square", body, http.Header{"X-Square-Hmacsha256-Signature": {Sign(body, "https://wrong.example.com/webhooks/square", testKey)}}); st != 401 {
		t.Fatalf("wrong signature: %d %s", st, b)
	}
	for i := 0; i < 2; i++ { // delivery and redelivery
		if st, b := s.Do(t, "POST", "/webhooks/square", body, http.Header{"X-Square-Hmacsha256-Signature": {Sign(body, url, testKey)}}); st != 200 {
			t.Fatalf("signed delivery: %d %s", st, b)
		}
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return countEvents(t, s, "event_id = 'square:order:03O3USaPaAaFnI6kkwB1JxGgBsUZY' AND type = 'order.placed' AND channel = 'pos'"+
			" AND identities LIKE '%%+16136120707%%' AND identities LIKE '%%QPTXM8PQNX3Q726ZYHPMNP46XC%%'") == 1
	}, "in-store sale stored with the buyer's phone")

	if st, b := s.Do(t, "POST", "/api/v1/connectors/square/backfill", map[string]any{"since": "2020-01-01"}, auth); st != 200 && st != 202 {
		t.Fatalf("backfill: %d %s", st, b)
	}
	if done := waitBackfillDone(t, s, auth); done != 2 {
		t.Fatalf("backfill reported %d records, want 1 customer + 1 order", done)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return countEvents(t, s, "source = 'square' AND type = 'customer.updated'") == 1
	}, "backfilled customer stored")
	if n := countEvents(t, s, "source = 'square' AND type = 'order.placed'"); n != 1 {
		t.Fatalf("%d orders stored (webhook, redelivery and backfill of one sale)", n)
	}
}
