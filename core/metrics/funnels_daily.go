package metrics

import (
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Collections of per-day counts, kept by triggers on the entries and
// checkouts (1765000600_metrics_funnel_daily.go).
const (
	FunnelDailyCollection   = "metrics_funnel_daily"
	CheckoutDailyCollection = "metrics_checkout_daily"
)

// defaultAbandonSecs is the abandonment window the checkout counts start with.
const defaultAbandonSecs = 24 * 3600

// dailyDays returns the days ("2006-01-02", end exclusive) q spans when
// the per-day counts can answer it: whole days in the zone the days were
// written in, at a daily or coarser grain.
func (f *funnelPart) dailyDays(q Query) (from, to string, ok bool) {
	if q.Bucket == "hour" || q.Loc == nil || q.Loc.String() != f.m.loc.String() || !midnight(q.Start, q.Loc) || !midnight(q.End, q.Loc) {
		return "", "", false
	}
	return q.Start.In(q.Loc).Format(dayLayout), q.End.In(q.Loc).Format(dayLayout), true
}

func midnight(t time.Time, loc *time.Location) bool {
	t = t.In(loc)
	return t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0
}

// countCheckoutDays counts the checkouts per day and channel again with
// an abandonment window of secs seconds, and keeps that window.
func countCheckoutDays(app core.App, secs float64) error {
	for _, q := range []string{
		"DELETE FROM " + CheckoutDailyCollection,
		"INSERT INTO " + CheckoutDailyCollection + " (day, channel, started, completed, window) VALUES ('', '', 0, 0, {:w})",
		"INSERT INTO " + CheckoutDailyCollection + " (day, channel, started, completed) SELECT day, channel, COUNT(*), " +
			"SUM(order_after >= 0 AND order_after < {:w}) FROM " + CheckoutsCollection + " GROUP BY day, channel",
	} {
		if _, err := app.DB().NewQuery(q).Bind(dbx.Params{"w": secs}).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// checkoutWindow makes the per-day completed counts follow the
// abandonment window setting: counted again once after it changes.
func (f *funnelPart) checkoutWindow(app core.App, hours float64) error {
	secs := hours * 3600
	var kept float64
	err := app.DB().NewQuery("SELECT window FROM " + CheckoutDailyCollection + " WHERE day = '' AND channel = ''").Row(&kept)
	if err == nil && kept == secs {
		return nil
	}
	return app.RunInTransaction(func(tx core.App) error { return countCheckoutDays(tx, secs) })
}
