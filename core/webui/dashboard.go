package webui

import (
	"net/http"
	"sort"
	"time"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Dashboard is the answer of GET /api/v1/dashboard.
type Dashboard struct {
	Range  string    `json:"range"`
	Since  time.Time `json:"since"`
	Bucket string    `json:"bucket"` // hour, 6h or day
	// NewProfiles is nil when the profiles module is not installed.
	NewProfiles *int `json:"new_profiles"`
	// Orders counts order.placed events as they arrived. Money is not here:
	// net revenue (refunds taken off, currencies converted) is the metrics
	// module's sales report, GET /api/v1/metrics/sales.
	Orders              int             `json:"orders"`
	OrdersByChannel     []ChannelOrders `json:"orders_by_channel"`
	ActiveConversations int             `json:"active_conversations"`
	Events              int             `json:"events"`
	EventsPerSecond     float64         `json:"events_per_second"` // over the last minute
	Series              Series          `json:"series"`
}

// ChannelOrders is one channel's count of order events.
type ChannelOrders struct {
	Channel string `json:"channel"`
	Orders  int    `json:"orders"`
}

// Series is events per channel per bucket, for the chart.
type Series struct {
	Buckets  []time.Time      `json:"buckets"`
	Channels map[string][]int `json:"channels"`
}

func (m *Module) registerDashboard(pb core.App, se *core.ServeEvent) {
	se.Router.GET("/api/v1/dashboard", func(e *core.RequestEvent) error {
		rng := e.Request.URL.Query().Get("range")
		if rng == "" {
			rng = "today"
		}
		d, err := ComputeDashboard(e.App, rng, time.Now().UTC())
		if err != nil {
			if err == errBadRange {
				return api.BadRequest("range", "must be today, 7d or 30d")
			}
			return api.Internal("", err)
		}
		return e.JSON(http.StatusOK, d)
	}).Bind(api.RequireStaff())
}

type dashErr string

func (e dashErr) Error() string { return string(e) }

const errBadRange = dashErr("bad range")

// ComputeDashboard computes the operator's figures (the System page) for a
// range ending at now.
func ComputeDashboard(app core.App, rng string, now time.Time) (*Dashboard, error) {
	d := &Dashboard{Range: rng, OrdersByChannel: []ChannelOrders{}}
	var step time.Duration
	switch rng {
	case "today":
		d.Since, step, d.Bucket = now.Truncate(24*time.Hour), time.Hour, "hour"
	case "7d":
		d.Since, step, d.Bucket = now.Add(-7*24*time.Hour).Truncate(6*time.Hour), 6*time.Hour, "6h"
	case "30d":
		d.Since, step, d.Bucket = now.Add(-30*24*time.Hour).Truncate(24*time.Hour), 24*time.Hour, "day"
	default:
		return nil, errBadRange
	}
	since := store.FormatTime(d.Since)
	db := app.DB()

	// Order events by channel (columns only: no JSON is read, so a stored
	// row SQLite cannot parse still counts).
	var orderRows []struct {
		Channel string `db:"channel"`
		N       int    `db:"n"`
	}
	err := db.NewQuery(`SELECT channel, COUNT(*) AS n FROM events WHERE type = 'order.placed' AND occurred_at >= {:since} GROUP BY channel`).
		Bind(dbx.Params{"since": since}).All(&orderRows)
	if err != nil {
		return nil, err
	}
	byCh := map[string]*ChannelOrders{}
	for _, r := range orderRows {
		ch := channelName(r.Channel)
		c := byCh[ch]
		if c == nil {
			c = &ChannelOrders{Channel: ch}
			byCh[ch] = c
		}
		c.Orders += r.N
		d.Orders += r.N
	}
	for _, c := range byCh {
		d.OrdersByChannel = append(d.OrdersByChannel, *c)
	}
	sort.Slice(d.OrdersByChannel, func(i, j int) bool { return d.OrdersByChannel[i].Orders > d.OrdersByChannel[j].Orders })

	// Events over time by channel: hourly groups, folded into the range's step.
	var rows []struct {
		Hour    string `db:"hour"`
		Channel string `db:"channel"`
		N       int    `db:"n"`
	}
	err = db.NewQuery(`SELECT substr(occurred_at,1,13) AS hour, channel, COUNT(*) AS n FROM events
		WHERE occurred_at >= {:since} GROUP BY hour, channel`).Bind(dbx.Params{"since": since}).All(&rows)
	if err != nil {
		return nil, err
	}
	n := int(now.Sub(d.Since)/step) + 1
	for i := 0; i < n; i++ {
		d.Series.Buckets = append(d.Series.Buckets, d.Since.Add(time.Duration(i)*step))
	}
	d.Series.Channels = map[string][]int{}
	for _, r := range rows {
		t, err := time.Parse("2006-01-02 15", r.Hour)
		if err != nil {
			continue
		}
		i := int(t.Sub(d.Since) / step)
		if i < 0 || i >= n {
			continue
		}
		ch := channelName(r.Channel)
		if d.Series.Channels[ch] == nil {
			d.Series.Channels[ch] = make([]int, n)
		}
		d.Series.Channels[ch][i] += r.N
		d.Events += r.N
	}

	// Live rate: events received in the last minute (occurred recently, so
	// the time index bounds the scan; backfills do not count).
	var recent int
	err = db.NewQuery(`SELECT COUNT(*) FROM events WHERE occurred_at >= {:day} AND received_at >= {:min}`).
		Bind(dbx.Params{"day": store.FormatTime(now.Add(-24 * time.Hour)), "min": store.FormatTime(now.Add(-time.Minute))}).Row(&recent)
	if err != nil {
		return nil, err
	}
	d.EventsPerSecond = float64(recent) / 60

	if np, ok := countNewProfiles(app, since); ok {
		d.NewProfiles = &np
	}
	d.ActiveConversations = countActiveConversations(app)
	return d, nil
}

func channelName(c string) string {
	if c == "" {
		return "other"
	}
	return c
}

// countNewProfiles counts known customers (not anonymous visitors) first
// seen since the start of the range, when the profiles module has created
// its collection.
func countNewProfiles(app core.App, since string) (int, bool) {
	col, err := app.FindCollectionByNameOrId("profiles")
	if err != nil {
		return 0, false
	}
	field := ""
	for _, f := range []string{"first_seen", "created"} {
		if col.Fields.GetByName(f) != nil {
			field = f
			break
		}
	}
	if field == "" {
		return 0, false
	}
	q := "SELECT COUNT(*) FROM profiles WHERE " + field + " >= {:since}"
	if col.Fields.GetByName("merged_into") != nil {
		q += " AND (merged_into IS NULL OR merged_into = '')"
	}
	if col.Fields.GetByName("known") != nil {
		q += " AND known = 1" // customers, not anonymous visitors
	}
	var n int
	if err := app.DB().NewQuery(q).Bind(dbx.Params{"since": since}).Row(&n); err != nil {
		return 0, false
	}
	return n, true
}

// countActiveConversations counts the inbox's conversations that are not
// over: open (a person has or needs it), pending (the bot is on it) and
// snoozed (it comes back by itself), the same set journeys treat as an
// open conversation. 0 until the inbox module exists.
func countActiveConversations(app core.App) int {
	col, err := app.FindCollectionByNameOrId("conversations")
	if err != nil || col.Fields.GetByName("status") == nil {
		return 0
	}
	var n int
	_ = app.DB().NewQuery("SELECT COUNT(*) FROM conversations WHERE status IN ('open', 'pending', 'snoozed')").Row(&n)
	return n
}
