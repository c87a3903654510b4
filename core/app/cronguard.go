package app

import (
	"sync"

	"github.com/pocketbase/pocketbase/tools/cron"
)

// cronGuard lets a stopping server wait for the cron jobs still running
// before its databases close. PocketBase stops its cron as it resets the
// app, but does not wait for a job already started: one that fires as the
// server stops (the MFA and OTP clean-ups run at the top of every hour)
// then queries a closed database and panics, which ends the process in
// the middle of its shutdown.
type cronGuard struct {
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

// guard wraps the jobs registered on c so far (PocketBase's own, added as
// the app is made): a job runs only while the guard is open, and close
// waits for it. A job registered later (a backup schedule saved in the
// settings) is not guarded.
func (g *cronGuard) guard(c *cron.Cron) {
	for _, job := range c.Jobs() {
		c.MustAdd(job.Id(), job.Expression(), func() { // replaces job, which keeps its function
			if !g.enter() {
				return
			}
			defer g.running.Done()
			job.Run()
		})
	}
}

func (g *cronGuard) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running.Add(1)
	return true
}

// close stops c, lets no guarded job start and waits for those running.
func (g *cronGuard) close(c *cron.Cron) {
	c.Stop()
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.running.Wait()
}
