package klaviyo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// pollOverlap is how far before its position each poll reads again, so
// events Klaviyo makes visible a little after their datetime are not lost.
const pollOverlap = 10 * time.Minute

// pollState is the poll loop's position: for each metric, the datetime of
// the newest event emitted, and the events emitted within pollOverlap
// before it (skipped when read again). Kept in memory and, when state_file
// is set, in that file.
type pollState struct {
	Since  map[string]time.Time            `json:"since"`
	Recent map[string]map[string]time.Time `json:"recent,omitempty"`
}

func loadState(path string) pollState {
	st := pollState{Since: map[string]time.Time{}, Recent: map[string]map[string]time.Time{}}
	if path == "" {
		return st
	}
	b, err := os.ReadFile(path)
	if err == nil {
		_ = json.Unmarshal(b, &st)
	}
	if st.Since == nil {
		st.Since = map[string]time.Time{}
	}
	if st.Recent == nil {
		st.Recent = map[string]map[string]time.Time{}
	}
	return st
}

func saveState(path string, st pollState) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pollLoop pulls new engagement events every poll_interval until ctx ends.
func (c *Connector) pollLoop(ctx context.Context, s *settings, host sdk.Host) {
	st := loadState(s.stateFile)
	for {
		if err := c.pollOnce(ctx, s, host, &st); err != nil && ctx.Err() == nil {
			host.Log("warn", "klaviyo engagement poll failed; will retry", "error", err.Error())
		}
		if err := c.sleep(ctx, s.pollInterval); err != nil {
			return
		}
	}
}

// pollOnce reads every metric from pollOverlap before its position to the
// end, emits what it has not emitted yet and moves the position.
func (c *Connector) pollOnce(ctx context.Context, s *settings, host sdk.Host, st *pollState) error {
	ids, err := c.resolveMetrics(ctx, s)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ids))
	for n := range ids {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		m, _ := mappingByName(name)
		since, ok := st.Since[name]
		from := since.Add(-pollOverlap)
		if !ok {
			since = c.now().Add(-s.pollLookback)
			from = since
		}
		recent := st.Recent[name]
		if recent == nil {
			recent = map[string]time.Time{}
		}
		pageURL := eventsURL(s, ids[name], from, true)
		for pageURL != "" {
			pr, err := c.fetchPage(ctx, s, pageURL, name, m)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			var fresh []sdk.Event
			for _, e := range pr.events {
				if _, dup := recent[e.ID]; !dup {
					fresh = append(fresh, e)
				}
			}
			if len(fresh) > 0 {
				if err := host.Emit(ctx, fresh); err != nil {
					return fmt.Errorf("storing %s events: %w", name, err)
				}
			}
			for _, e := range fresh {
				recent[e.ID] = e.OccurredAt
				if e.OccurredAt.After(since) {
					since = e.OccurredAt
				}
			}
			pageURL = pr.next
		}
		for id, at := range recent {
			if at.Before(since.Add(-pollOverlap)) {
				delete(recent, id)
			}
		}
		st.Since[name], st.Recent[name] = since, recent
		if err := saveState(s.stateFile, *st); err != nil {
			host.Log("warn", "could not write klaviyo poll state", "file", s.stateFile, "error", err.Error())
		}
	}
	return nil
}
