package eventstore

import "sync"

// Waiters lets a request wait until the events store has committed an
// event it published (e.g. a staff or customer consent change that the
// page shows applied). Register Committed with Setup.OnCommit; the zero
// value is ready to use.
type Waiters struct {
	mu sync.Mutex
	w  map[string]chan struct{}
}

// Add returns a channel closed once the event with this id is committed.
// Call Drop when done waiting.
func (s *Waiters) Add(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		s.w = map[string]chan struct{}{}
	}
	c := make(chan struct{})
	s.w[id] = c
	return c
}

// Drop forgets a waiter (it timed out, or its event was committed).
func (s *Waiters) Drop(id string) {
	s.mu.Lock()
	delete(s.w, id)
	s.mu.Unlock()
}

// Committed wakes the waiters of the events in a committed batch.
func (s *Waiters) Committed(batch []*Stored) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.w) == 0 {
		return
	}
	for _, st := range batch {
		if c, ok := s.w[st.Event.ID]; ok {
			close(c)
			delete(s.w, st.Event.ID)
		}
	}
}
