package app

import (
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/tools/cron"
)

// A stopping server waits for a cron job that is running, and starts no
// other after.
func TestCronGuardWaitsForRunningJobs(t *testing.T) {
	c := cron.New()
	started, release := make(chan struct{}), make(chan struct{})
	runs := 0
	c.MustAdd("clean-up", "0 * * * *", func() {
		runs++
		close(started)
		<-release
	})
	var g cronGuard
	g.guard(c)
	job := c.Jobs()[0]
	go job.Run() // as the cron runs a due job
	<-started

	closed := make(chan struct{})
	go func() {
		g.close(c)
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("close returned while the job was still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return once the job ended")
	}
	job.Run() // due again after the stop: does nothing
	if runs != 1 {
		t.Fatalf("the job ran %d times, want 1", runs)
	}
}
