package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
	"github.com/pocketbase/pocketbase/core"
)

// shop is a running Omni with profiles and metrics, and an owner and an agent.
type shop struct {
	*omnitest.Server
	owner, agent string
	dataDir      string
}

// coreApp is PocketBase's app (transactions in benchmarks).
type coreApp = core.App

func startShopB(b *testing.B) *shop {
	b.Helper()
	s := omnitest.Start(b, omnitest.Options{
		Modules: func(o *app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{Interval: -1}), metrics.New(metrics.Options{Quiet: time.Millisecond})}
		},
		Configure: func(c *config.Config) { c.Profiles.BaseCurrency = "EUR" },
	})
	return &shop{Server: s, owner: s.Staff(b, "owner@omni-shop.dev", "owner")}
}

func startShop(t *testing.T, dataDir string) *shop {
	t.Helper()
	return startShopWith(t, dataDir, 0, time.Millisecond)
}

// startShopWith starts a shop whose rollups follow the stored events with
// the given metrics.max_delay and quiet time (0: in the events
// transaction).
func startShopWith(t *testing.T, dataDir string, maxDelay, quiet time.Duration) *shop {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	s := omnitest.Start(t, omnitest.Options{DataDir: dataDir,
		Modules: func(o *app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{Interval: -1}), metrics.New(metrics.Options{Quiet: quiet})}
		},
		Configure: func(c *config.Config) {
			c.Messaging.Timezone = "UTC"
			c.Metrics.MaxDelay = maxDelay
		},
	})
	sh := &shop{Server: s, dataDir: dataDir}
	sh.owner = s.Staff(t, fmt.Sprintf("owner%d@omni-shop.dev", seq.Add(1)), "owner")
	sh.agent = s.Staff(t, fmt.Sprintf("agent%d@omni-shop.dev", seq.Add(1)), "agent")
	return sh
}

var seq atomic.Int64

func auth(tok string) http.Header { return http.Header{"Authorization": {tok}} }

// publish sends events as a connector would and waits until each is
// stored and rolled up.
func (s *shop) publish(t *testing.T, evs ...*events.Event) {
	t.Helper()
	s.waitStored(t, s.send(t, evs...)...)
}

// send sends events as a connector would and returns their ids.
func (s *shop) send(t *testing.T, evs ...*events.Event) []string {
	t.Helper()
	norm := events.Normalizer{DefaultRegion: "GB"}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		if ev.ReceivedAt.IsZero() {
			ev.ReceivedAt = time.Now().UTC()
		}
		norm.Normalize(ev)
		if err := ev.Validate(time.Now()); err != nil {
			t.Fatalf("event %s: %v", ev.ID, err)
		}
		ids[i] = ev.ID
	}
	for i, err := range ingest.Publish(context.Background(), s.Bus, evs) {
		if err != nil {
			t.Fatalf("publish %s: %v", evs[i].ID, err)
		}
	}
	return ids
}

// waitStored waits until the events are stored and the rollups have
// taken them (with a follower, its queue is empty).
func (s *shop) waitStored(t *testing.T, ids ...string) {
	t.Helper()
	s.waitInEvents(t, ids...)
	omnitest.Eventually(t, 60*time.Second, func() bool {
		return s.count(t, "SELECT COUNT(*) FROM metrics_queue", nil) == 0
	}, "the rollups to take events %v", ids)
}

// waitInEvents waits until the events are stored.
func (s *shop) waitInEvents(t *testing.T, ids ...string) {
	t.Helper()
	omnitest.Eventually(t, 60*time.Second, func() bool {
		for _, id := range ids {
			if s.count(t, "SELECT COUNT(*) FROM events WHERE event_id={:id}", map[string]any{"id": id}) != 1 {
				return false
			}
		}
		return true
	}, "events %v stored", ids)
}

func (s *shop) count(t *testing.T, q string, params map[string]any) int {
	t.Helper()
	var n int
	if err := s.PB.DB().NewQuery(q).Bind(params).Row(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// get calls the API as the owner and decodes the JSON answer.
func (s *shop) get(t *testing.T, path string, out any) []byte {
	t.Helper()
	code, body := s.Do(t, "GET", path, nil, auth(s.owner))
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return body
}

func (s *shop) sales(t *testing.T, query string) *metrics.Report {
	t.Helper()
	var r metrics.Report
	s.get(t, "/api/v1/metrics/sales?"+query, &r)
	return &r
}

// job returns the background job's status.
func (s *shop) job(t *testing.T) metrics.JobStatus {
	t.Helper()
	var st metrics.JobStatus
	s.get(t, "/api/v1/metrics/rebuild", &st)
	return st
}

// waitJob waits for a job that finishes after the given previous status.
func (s *shop) waitJob(t *testing.T, prev metrics.JobStatus) metrics.JobStatus {
	t.Helper()
	var st metrics.JobStatus
	omnitest.Eventually(t, 60*time.Second, func() bool {
		st = s.job(t)
		return !st.Running && st.FinishedAt != "" && st.FinishedAt != prev.FinishedAt
	}, "the metrics job to finish")
	if st.Error != "" {
		t.Fatalf("metrics job failed: %s", st.Error)
	}
	return st
}

// putSetting saves a setting as the owner.
func (s *shop) putSetting(t *testing.T, key string, body any) {
	t.Helper()
	code, raw := s.Do(t, "PUT", "/api/v1/metrics/settings/"+key, body, auth(s.owner))
	if code != 200 {
		t.Fatalf("PUT settings/%s: %d %s", key, code, raw)
	}
}

// daily dumps metrics_daily, one line a row, sorted.
func (s *shop) daily(t *testing.T) string {
	t.Helper()
	var rows []struct {
		Day      string  `db:"day"`
		Metric   string  `db:"metric"`
		Dim      string  `db:"dim"`
		Currency string  `db:"currency"`
		Value    float64 `db:"value"`
		Count    float64 `db:"count"`
	}
	if err := s.PB.DB().NewQuery("SELECT day, metric, dim, currency, value, count FROM metrics_daily ORDER BY metric, day, dim, currency").All(&rows); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s %s %q %q %v %v\n", r.Metric, r.Day, r.Dim, r.Currency, r.Value, r.Count)
	}
	return b.String()
}

var evSeq atomic.Int64

// order builds an order event of a customer known by email.
func order(typ, source, email string, at time.Time, channel string, props map[string]any) *events.Event {
	return &events.Event{ID: fmt.Sprintf("%s-%s-%d", source, typ, evSeq.Add(1)), Type: typ, Source: source, OccurredAt: at,
		Identities: events.Identities{events.Email: email}, Properties: props, Context: events.Context{Channel: channel}}
}

// tableRows returns a table's rows by name.
func tableRows(t *testing.T, r *metrics.Report, name string) [][]any {
	t.Helper()
	for _, tb := range r.Tables {
		if tb.Name == name {
			return tb.Rows
		}
	}
	t.Fatalf("no table %s in %+v", name, r.Tables)
	return nil
}

// wantTotals compares the named totals.
func wantTotals(t *testing.T, what string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %s = %v (present %v), want %v", what, k, g, ok, v)
		}
	}
}
