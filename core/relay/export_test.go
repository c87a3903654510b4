package relay

import "context"

// Drain runs one drain as the relay's loop does.
func (r *Relay) Drain(ctx context.Context) { r.drain(ctx) }

// Published is the ids of rows on the bus that wait to be deleted.
func (r *Relay) Published() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.published...)
}
