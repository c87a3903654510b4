package relay

import "context"

// Drain runs one drain as the relay's loop does.
func (r *Relay) Drain(ctx context.Context) { r.drain(ctx) }

// Waiting is how many rows are on the bus and wait to be deleted.
func (r *Relay) Waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.published)
}
