package klaviyo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// Reading the Events API: metric ids, pages of events, links.next.

// resolveMetrics finds the ids of the engagement metrics this account has
// (GET /api/metrics, following links.next).
func (c *Connector) resolveMetrics(ctx context.Context, s *settings) (map[string]string, error) {
	c.mu.Lock()
	cached, at := c.metricsIDs, c.metricsAt
	c.mu.Unlock()
	// Re-read hourly: a new account gets "Opened Email" only after its
	// first email.
	if cached != nil && time.Since(at) < time.Hour {
		return cached, nil
	}
	ids := map[string]string{}
	next := s.baseURL + "/api/metrics?fields%5Bmetric%5D=name,integration"
	for pages := 0; next != "" && pages < 100; pages++ {
		raw, err := c.callRetrying(ctx, s, http.MethodGet, next, nil)
		if err != nil {
			return nil, fmt.Errorf("listing metrics: %w", err)
		}
		var doc document
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("listing metrics: %v", err)
		}
		for _, m := range doc.Data {
			name, _ := m.Attributes["name"].(string)
			if _, ok := mappingByName(name); !ok {
				continue
			}
			// A custom metric may share a built-in name; keep Klaviyo's own.
			if integ, ok := m.Attributes["integration"].(map[string]any); ok {
				if key, _ := integ["key"].(string); key != "" && key != "klaviyo" {
					continue
				}
			}
			ids[name] = m.ID
		}
		if next, err = c.nextLink(s, doc.Links.Next); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.metricsIDs, c.metricsAt = ids, time.Now()
	c.mu.Unlock()
	return ids, nil
}

// nextLink accepts a links.next only on the configured API host, so a
// cursor can never send the API key elsewhere.
func (c *Connector) nextLink(s *settings, next *string) (string, error) {
	if next == nil || *next == "" {
		return "", nil
	}
	if !strings.HasPrefix(*next, s.baseURL+"/") {
		return "", fmt.Errorf("links.next %q is not on %s", *next, s.baseURL)
	}
	return *next, nil
}

func eventsURL(s *settings, metricID string, since time.Time, inclusive bool) string {
	op := "greater-than"
	if inclusive {
		op = "greater-or-equal"
	}
	filter := fmt.Sprintf(`and(equals(metric_id,"%s"),%s(datetime,%s))`, metricID, op, since.UTC().Format(time.RFC3339))
	if since.IsZero() { // everything
		filter = fmt.Sprintf(`equals(metric_id,"%s")`, metricID)
	}
	q := url.Values{}
	q.Set("filter", filter)
	q.Set("include", "profile")
	q.Set("fields[profile]", "email,phone_number,external_id")
	q.Set("sort", "datetime")
	q.Set("page[size]", "200")
	return s.baseURL + "/api/events?" + q.Encode()
}

// pageResult is one fetched page of events, mapped.
type pageResult struct {
	events []sdk.Event
	latest time.Time
	next   string
}

func (c *Connector) fetchPage(ctx context.Context, s *settings, pageURL, metricName string, m mapping) (*pageResult, error) {
	raw, err := c.callRetrying(ctx, s, http.MethodGet, pageURL, nil)
	if err != nil {
		return nil, err
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("events page is not JSON:API: %v", err)
	}
	profiles := map[string]resource{}
	for _, inc := range doc.Included {
		if inc.Type == "profile" {
			profiles[inc.ID] = inc
		}
	}
	pr := &pageResult{}
	now := c.now()
	for _, ev := range doc.Data {
		if e, ok := eventToOmni(ev, metricName, m, profiles, now); ok {
			pr.events = append(pr.events, e)
			if e.OccurredAt.After(pr.latest) {
				pr.latest = e.OccurredAt
			}
		}
	}
	if pr.next, err = c.nextLink(s, doc.Links.Next); err != nil {
		return nil, err
	}
	return pr, nil
}
