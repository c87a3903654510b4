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
	wrapped map[*cron.Job]bool // the jobs guard made
}

// guard wraps the jobs registered on c that it has not wrapped yet: a job
// runs only while the guard is open, and close waits for it. It runs as
// the server starts serving (PocketBase's own jobs, made with the app)
// and after each settings reload (a backup schedule saved in the settings
// replaces the backup job).
func (g *cronGuard) guard(c *cron.Cron) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wrapped == nil {
		g.wrapped = map[*cron.Job]bool{}
	}
	for _, job := range c.Jobs() {
		if g.wrapped[job] {
			continue
		}
		id := job.Id()
		c.MustAdd(id, job.Expression(), func() { // replaces job, which keeps its function
			if !g.enter() {
				return
			}
			defer g.running.Done()
			job.Run()
		})
		for _, j := range c.Jobs() {
			if j.Id() == id {
				g.wrapped[j] = true
			}
		}
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
