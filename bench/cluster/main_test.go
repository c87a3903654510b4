package main

import (
	"os"
	"strings"
	"testing"

	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// The short version of the bench: the same real processes (3 NATS nodes,
// a writer, two front ends), fewer events. It asserts what must hold, not
// how fast: every acknowledged event stored once, through a NATS node's
// crash and restart and a front end's crash, and a second writer refused.
func TestClusterStoresEveryAcknowledgedEventOnce(t *testing.T) {
	var progress, summary strings.Builder
	// TEST_OMNI_BIN (set by .ci/run) is an omni built from this checkout;
	// without it the bench builds one.
	o := options{bin: os.Getenv("TEST_OMNI_BIN"), events: 2000, batch: 50, clients: 4, rounds: 1, replicas: 3, log: &progress,
		hooks: 100, order: vendorfixtures.Read(t, "shopify", "order.json")}
	rep, err := run(o)
	t.Log(progress.String())
	if err != nil {
		t.Fatal(err)
	}
	rep.print(&summary, o)
	t.Log(summary.String())
	if rep.acked != 3*2000 {
		t.Errorf("acknowledged %d events, want every one of %d", rep.acked, 3*2000)
	}
	if rep.lost != 0 || rep.dups != 0 || rep.extras != 0 {
		t.Errorf("lost %d, duplicated %d, stored unacknowledged %d; want 0 each", rep.lost, rep.dups, rep.extras)
	}
	if rep.stored != rep.acked {
		t.Errorf("stored %d rows for %d acknowledged events", rep.stored, rep.acked)
	}
	// Shopify's webhooks to the front ends through the same faults.
	if rep.hooksAcked != 100 || rep.hooksLost != 0 || rep.hooksDups != 0 || rep.hooksStored != 100 {
		t.Errorf("webhooks: answered %d of 100, orders stored %d, lost %d, duplicated %d", rep.hooksAcked, rep.hooksStored, rep.hooksLost, rep.hooksDups)
	}
	if !strings.Contains(rep.secondWriter, "another writer holds the lease") {
		t.Errorf("second writer refused with %q, want the lease named", rep.secondWriter)
	}
}
