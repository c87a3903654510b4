package profiles_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	*omnitest.Server
	mod   *profiles.Module
	clock *clock
	owner string // tokens
	agent string
}

// start runs Omni with the profiles module; configure, when given, edits
// the configuration first (e.g. profiles.identity).
func start(t *testing.T, opts profiles.Options, configure ...func(*config.Config)) *env {
	t.Helper()
	c := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.Interval == 0 {
		opts.Interval = -1 // tests run the scheduled pass by hand
	}
	mod := profiles.New(opts)
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module { return []app.Module{mod} },
		Configure: func(c *config.Config) {
			for _, f := range configure {
				f(c)
			}
		}})
	e := &env{Server: s, mod: mod, clock: c}
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	e.agent = e.Staff(t, "agent@omni-shop.dev", "agent")
	return e
}

func auth(tok string) http.Header { return http.Header{"Authorization": {tok}} }

// get calls the API as the owner and decodes the JSON answer.
func (e *env) get(t *testing.T, path string, out any) {
	t.Helper()
	code, body := e.Do(t, "GET", path, nil, auth(e.owner))
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// publish normalises and publishes events as a connector would, then waits
// until the events consumer has taken them (stored, or dropped as Omni
// drops some), so a test never goes on with its events still on the bus.
func (e *env) publish(t *testing.T, evs ...*events.Event) {
	t.Helper()
	norm := events.Normalizer{DefaultRegion: "US"}
	for _, ev := range evs {
		if ev.ReceivedAt.IsZero() {
			ev.ReceivedAt = e.clock.Now()
		}
		norm.Normalize(ev)
		if err := ev.Validate(e.clock.Now()); err != nil {
			t.Fatalf("event %s: %v", ev.ID, err)
		}
	}
	for i, err := range ingest.Publish(context.Background(), e.Bus, evs) {
		if err != nil {
			t.Fatalf("publish %s: %v", evs[i].ID, err)
		}
	}
	e.WaitConsumed(t)
}

var seq int
var seqMu sync.Mutex

func ev(typ, source string, at time.Time, ids events.Identities, props map[string]any, channel string) *events.Event {
	seqMu.Lock()
	seq++
	n := seq
	seqMu.Unlock()
	return &events.Event{ID: fmt.Sprintf("%s-%s-%d", source, typ, n), Type: typ, Source: source, OccurredAt: at,
		Identities: ids, Properties: props, Context: events.Context{Channel: channel}}
}

// profileOf returns the live profile an identity points at ("" if none).
func (e *env) profileOf(t *testing.T, kind, value string) string {
	t.Helper()
	var pid string
	_ = e.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind={:k} AND value={:v}").
		Bind(map[string]any{"k": kind, "v": value}).Row(&pid)
	return pid
}

func (e *env) count(t *testing.T, q string, params map[string]any) int {
	t.Helper()
	var n int
	if err := e.PB.DB().NewQuery(q).Bind(params).Row(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// storedRow is a profile's row as stored.
type storedRow struct {
	Name       string `db:"name"`
	Email      string `db:"email"`
	Phone      string `db:"phone"`
	Traits     string `db:"traits"`
	Computed   string `db:"computed"`
	Consent    string `db:"consent"`
	FirstSeen  string `db:"first_seen"`
	LastSeen   string `db:"last_seen"`
	Orders     int    `db:"orders_count"`
	Stage      string `db:"lifecycle_stage"`
	Engagement string `db:"engagement_level"`
	Due        string `db:"traits_due_at"`
	Known      bool   `db:"known"`
	Updated    string `db:"updated"`
}

// storedRow reads profile id's row with SQL, as it stands in the
// database (a change waiting to be written is not in it).
func (e *env) storedRow(t *testing.T, id string) storedRow {
	t.Helper()
	var r storedRow
	if err := e.PB.DB().NewQuery(`SELECT name, email, phone, traits, computed, consent, first_seen, last_seen, orders_count,
lifecycle_stage, engagement_level, traits_due_at, known, updated FROM profiles WHERE id={:id}`).Bind(map[string]any{"id": id}).One(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// health is the profiles section of GET /api/v1/health.
func (e *env) health(t *testing.T) map[string]any {
	t.Helper()
	_, body := e.Do(t, "GET", "/api/v1/health", nil, nil)
	var h struct {
		Profiles map[string]any `json:"profiles"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Profiles == nil {
		t.Fatalf("health: %v: %s", err, body)
	}
	return h.Profiles
}

func (e *env) detail(t *testing.T, id string) *profiles.Detail {
	t.Helper()
	var d profiles.Detail
	e.get(t, "/api/v1/profiles/"+id, &d)
	return &d
}
