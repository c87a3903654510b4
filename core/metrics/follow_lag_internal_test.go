package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/internal/testkit/queryplan"
)

// queueBacklog stops the follower and queues batches rows of perBatch
// record ids each, as a writer far ahead of the rollups leaves them.
func queueBacklog(tb testing.TB, batches, perBatch int) *Module {
	tb.Helper()
	m := New(Options{})
	s := omnitest.Start(tb, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{m} }})
	m.follow.stop(context.Background())
	ids := make([]string, perBatch)
	for i := range ids {
		ids[i] = fmt.Sprintf("%015d", i) // a record id's length
	}
	raw := `["` + strings.Join(ids, `","`) + `"]`
	at := time.Now().Add(-time.Hour).UnixMilli()
	for i := range batches {
		if _, err := s.PB.DB().NewQuery("INSERT INTO " + queueTable + " (ids, events, queued_at) VALUES ({:ids}, {:n}, {:at})").
			Bind(dbx.Params{"ids": raw, "n": perBatch, "at": at + int64(i)}).Execute(); err != nil {
			tb.Fatal(err)
		}
	}
	return m
}

// What health asks the follower (Lag) and what the follower asks before
// each chunk (oldestQueued) are answered from an index, not by reading
// every queued batch's ids: a backlog is exactly when health is polled.
func TestFollowerLagWithABacklog(t *testing.T) {
	m := queueBacklog(t, 300, 1000)
	ctx := context.Background()
	n, _, err := m.follow.Lag(ctx)
	if err != nil || n != 300*1000 {
		t.Fatalf("Lag = %d, %v; want %d", n, err, 300*1000)
	}
	oldest, err := m.follow.oldestQueued(ctx)
	if err != nil || oldest.IsZero() || time.Since(oldest) < time.Hour {
		t.Fatalf("oldest queued = %v, %v; want an hour ago", oldest, err)
	}
	for _, q := range []string{lagSQL, oldestSQL} {
		if got := strings.Join(queryplan.Steps(t, m.app.DB(), q, nil), "; "); !strings.Contains(got, "COVERING INDEX") {
			t.Errorf("%s\n  plan: %s; want it answered from a covering index", q, got)
		}
	}
}

// BenchmarkFollowerLag is health's question with 2,000 batches of 500
// events waiting (a million events behind).
//
//	go test ./core/metrics/ -run '^$' -bench FollowerLag
func BenchmarkFollowerLag(b *testing.B) {
	m := queueBacklog(b, 2000, 500)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, _, err := m.follow.Lag(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := m.follow.oldestQueued(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
