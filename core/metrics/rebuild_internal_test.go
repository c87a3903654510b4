package metrics

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Stop cancels the running job, waits for it to end, and the job queued
// behind it never runs; a rebuild asked for afterwards is refused.
func TestStopCancelsAndWaitsForTheJob(t *testing.T) {
	e := attrStart(t, nil)
	started := make(chan struct{})
	var finished, queuedRan atomic.Bool
	e.m.queueJob("rebuild", func(ctx context.Context, progress progressFunc) (string, error) {
		close(started)
		<-ctx.Done() // a job that only ends when cancelled
		finished.Store(true)
		return "", ctx.Err()
	})
	<-started
	e.m.queueJob("recredit", func(context.Context, progressFunc) (string, error) {
		queuedRan.Store(true)
		return "", nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.m.Stop(ctx)
	if ctx.Err() != nil {
		t.Fatal("Stop returned at its deadline: the job was not cancelled")
	}
	if !finished.Load() {
		t.Fatal("Stop returned while the job was still running")
	}
	if queuedRan.Load() {
		t.Error("the job queued behind ran after Stop")
	}
	if st := e.m.rollups.jobs.get(); st.Running || !strings.Contains(st.Error, "stopped with the server") {
		t.Errorf("job status after Stop: %+v", st)
	}
	if code, body := e.s.Do(t, "POST", "/api/v1/metrics/rebuild", nil, e.owner); code != http.StatusServiceUnavailable {
		t.Errorf("POST /rebuild after Stop: %d %s, want 503", code, body)
	}
}
