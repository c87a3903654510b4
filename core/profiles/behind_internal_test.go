package profiles

import (
	"slices"
	"testing"
	"time"
)

// What an events transaction changes in the waiting rows is put back when
// it does not commit, and kept when it does; due lists the rows whose
// window ended, oldest first, and the oldest beyond the bound.
func TestBehindSetUndoAndDue(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var s behindSet
	s.set("a", &behindRow{mask: 1 << 5, since: t0}, false)
	s.set("b", &behindRow{mask: 1 << 8, since: t0.Add(time.Second)}, false)
	s.confirm()

	// A transaction replaces a, forgets b, adds c, and does not commit.
	a := s.get("a")
	s.set("a", &behindRow{mask: 1<<5 | 1<<9, since: t0}, true)
	s.remove("b", true)
	s.set("c", &behindRow{mask: 1 << 5, since: t0.Add(2 * time.Second)}, true)
	s.rollback()
	if s.get("a") != a || s.get("b") == nil || s.get("c") != nil || len(s.rows) != 2 {
		t.Fatalf("after rollback: %v", s.rows)
	}
	// The same changes, committed.
	s.set("a", &behindRow{mask: 1<<5 | 1<<9, since: t0}, true)
	s.remove("b", true)
	s.set("c", &behindRow{mask: 1 << 5, since: t0.Add(2 * time.Second)}, true)
	s.confirm()
	s.rollback() // nothing left to undo
	if s.get("a").mask != 1<<5|1<<9 || s.get("b") != nil || s.get("c") == nil {
		t.Fatalf("after confirm: %v", s.rows)
	}

	if got := s.due(t0.Add(4*time.Second), 5*time.Second, 10, 100); len(got) != 0 {
		t.Fatalf("due before any window ended: %v", got)
	}
	if got := s.due(t0.Add(5*time.Second), 5*time.Second, 10, 100); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("due at 5 s: %v", got)
	}
	if got := s.due(t0.Add(9*time.Second), 5*time.Second, 10, 100); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("due at 9 s: %v", got)
	}
	if got := s.due(t0, 5*time.Second, 10, 1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("beyond the bound of 1: %v", got)
	}
	if got := s.due(t0.Add(9*time.Second), 5*time.Second, 1, 100); len(got) != 1 {
		t.Fatalf("limit 1: %v", got)
	}
}
