package klaviyo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// mapping says what a Klaviyo metric becomes in Omni.
type mapping struct {
	Type    string
	Channel string // email or sms
	Consent string // for consent.changed: subscribed / unsubscribed
	Reason  string
}

// engagementMetrics are Klaviyo's built-in metrics Omni pulls, in the
// order backfill walks them (the order is part of the cursor's meaning).
var engagementMetrics = []struct {
	Name  string
	Topic string // system webhook topic
	mapping
}{
	{"Received Email", "event:klaviyo.received_email", mapping{Type: events.MessageDelivered, Channel: "email"}},
	{"Opened Email", "event:klaviyo.opened_email", mapping{Type: events.EmailOpened, Channel: "email"}},
	{"Clicked Email", "event:klaviyo.clicked_email", mapping{Type: events.EmailClicked, Channel: "email"}},
	{"Bounced Email", "event:klaviyo.bounced_email", mapping{Type: events.MessageFailed, Channel: "email", Reason: "bounced"}},
	{"Marked Email as Spam", "event:klaviyo.marked_email_as_spam", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "unsubscribed", Reason: "spam_complaint"}},
	{"Unsubscribed from Email Marketing", "event:klaviyo.unsubscribed_from_email_marketing", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "unsubscribed"}},
	{"Subscribed to Email Marketing", "event:klaviyo.subscribed_to_email_marketing", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "subscribed"}},
	{"Unsubscribed from SMS Marketing", "event:klaviyo.unsubscribed_from_sms_marketing", mapping{Type: events.ConsentChanged, Channel: "sms", Consent: "unsubscribed"}},
	{"Subscribed to SMS Marketing", "event:klaviyo.subscribed_to_sms_marketing", mapping{Type: events.ConsentChanged, Channel: "sms", Consent: "subscribed"}},
	// Older accounts report email unsubscribes under this name.
	{"Unsubscribed", "", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "unsubscribed"}},
}

func mappingByName(name string) (mapping, bool) {
	for _, m := range engagementMetrics {
		if m.Name == name {
			return m.mapping, true
		}
	}
	return mapping{}, false
}

func mappingByTopic(topic string) (mapping, string, bool) {
	for _, m := range engagementMetrics {
		if m.Topic != "" && m.Topic == topic {
			return m.mapping, m.Name, true
		}
	}
	return mapping{}, "", false
}

// resource is a JSON:API resource object.
type resource struct {
	Type          string                     `json:"type"`
	ID            string                     `json:"id"`
	Attributes    map[string]any             `json:"attributes"`
	Relationships map[string]json.RawMessage `json:"relationships"`
}

func (r resource) related(name string) string {
	var rel struct {
		Data *struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if raw, ok := r.Relationships[name]; ok && json.Unmarshal(raw, &rel) == nil && rel.Data != nil {
		return rel.Data.ID
	}
	return ""
}

type document struct {
	Data     []resource `json:"data"`
	Included []resource `json:"included"`
	Links    struct {
		Next *string `json:"next"`
	} `json:"links"`
}

// eventToOmni maps one Klaviyo event resource. metricName comes from the
// query (polling) or the webhook topic; profiles holds included profiles.
func eventToOmni(ev resource, metricName string, m mapping, profiles map[string]resource, now time.Time) (sdk.Event, bool) {
	if ev.ID == "" {
		return sdk.Event{}, false
	}
	props := map[string]any{}
	ep, _ := ev.Attributes["event_properties"].(map[string]any)
	ids := map[string]string{}
	if pid := ev.related("profile"); pid != "" {
		ids[events.KlaviyoProfile] = pid
		if p, ok := profiles[pid]; ok {
			if e, _ := p.Attributes["email"].(string); e != "" {
				ids[events.Email] = e
			}
			if ph, _ := p.Attributes["phone_number"].(string); ph != "" {
				ids[events.Phone] = ph
			}
			if x, _ := p.Attributes["external_id"].(string); x != "" {
				props["external_id"] = x
			}
		}
	}
	if ids[events.Email] == "" {
		for _, k := range []string{"email_address", "$email", "Email"} {
			if e, _ := ep[k].(string); e != "" {
				ids[events.Email] = e
				break
			}
		}
	}
	if len(ids) == 0 {
		return sdk.Event{}, false
	}
	props["klaviyo_event_id"] = ev.ID
	props["metric"] = metricName
	if mid := ev.related("metric"); mid != "" {
		props["metric_id"] = mid
	}
	ctx := sdk.EventContext{Channel: m.Channel}
	for src, dst := range map[string]string{
		"Subject": "subject", "Campaign Name": "campaign_name", "URL": "url", "$message": "klaviyo_message_id",
		"$flow": "flow_id", "Email Domain": "email_domain", "Bounce Type": "bounce_type", "method": "method",
		"method_detail": "method_detail", "List": "list", "omni_message_id": "outbound_id", "Client Name": "client_name",
	} {
		if v, ok := ep[src]; ok && v != nil && v != "" {
			props[dst] = v
		}
	}
	if cn, _ := ep["Campaign Name"].(string); cn != "" {
		ctx.Campaign = &sdk.Campaign{Name: cn, Source: "klaviyo", Medium: m.Channel}
	}
	if m.Type == events.ConsentChanged {
		props["channel"] = m.Channel
		props["status"] = m.Consent
		props["source"] = "klaviyo"
	}
	if m.Reason != "" {
		props["reason"] = m.Reason
	}
	return sdk.Event{
		ID:         "klaviyo:event:" + ev.ID,
		Type:       m.Type,
		OccurredAt: eventTime(ev, now),
		Identities: ids,
		Properties: props,
		Context:    ctx,
	}, true
}

func eventTime(ev resource, now time.Time) time.Time {
	if s, _ := ev.Attributes["datetime"].(string); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC()
		}
	}
	if f, ok := ev.Attributes["timestamp"].(float64); ok && f > 946684800 {
		return time.Unix(int64(f), 0).UTC()
	}
	return now.UTC()
}

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
