package klaviyo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/omni/omni/plugins/sdk"
)

// backfillCursor is the resume point: the metric being read and the next
// page URL within it ("" = first page). Metrics are read in the fixed
// engagementMetrics order, so earlier ones are done.
type backfillCursor struct {
	Metric string `json:"metric"`
	Next   string `json:"next,omitempty"`
}

// Backfill pages through GET /api/events for every engagement metric since
// req.Since, handing each page to sink with a cursor to resume from.
func (c *Connector) Backfill(ctx context.Context, req *sdk.BackfillRequest, sink sdk.BackfillSink) error {
	s, _, err := c.settings()
	if err != nil {
		return err
	}
	var cur backfillCursor
	if req.Cursor != "" {
		if err := json.Unmarshal([]byte(req.Cursor), &cur); err != nil {
			return fmt.Errorf("klaviyo: cursor %q is not one this connector issued", req.Cursor)
		}
	}
	ids, err := c.resolveMetrics(ctx, s)
	if err != nil {
		return fmt.Errorf("klaviyo: %w", err)
	}
	var names []string
	for _, m := range engagementMetrics {
		if ids[m.Name] != "" {
			names = append(names, m.Name)
		}
	}
	start := 0
	if cur.Metric != "" {
		start = -1
		for i, n := range names {
			if n == cur.Metric {
				start = i
			}
		}
		if start < 0 {
			return fmt.Errorf("klaviyo: cursor names metric %q, which this account does not have", cur.Metric)
		}
	}
	var done int64
	for i := start; i < len(names); i++ {
		name := names[i]
		m, _ := mappingByName(name)
		pageURL := eventsURL(s, ids[name], req.Since, true)
		if i == start && cur.Next != "" {
			if !strings.HasPrefix(cur.Next, s.baseURL+"/") {
				return fmt.Errorf("klaviyo: cursor page %q is not on %s", cur.Next, s.baseURL)
			}
			pageURL = cur.Next
		}
		for pageURL != "" {
			pr, err := c.fetchPage(ctx, s, pageURL, name, m)
			if err != nil {
				return fmt.Errorf("klaviyo: reading %s events: %w", name, err)
			}
			done += int64(len(pr.events))
			resume := backfillCursor{Metric: name, Next: pr.next}
			if pr.next == "" && i+1 < len(names) {
				resume = backfillCursor{Metric: names[i+1]}
			}
			cb, _ := json.Marshal(resume)
			cursor := string(cb)
			if pr.next == "" && i+1 == len(names) {
				cursor = "" // finished
			}
			if err := sink.Batch(ctx, pr.events, cursor, sdk.Progress{Done: done,
				Message: fmt.Sprintf("%s (%d of %d metrics)", name, i+1, len(names))}); err != nil {
				return err
			}
			pageURL = pr.next
		}
	}
	return nil
}
