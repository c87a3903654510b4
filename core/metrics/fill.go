package metrics

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// The journeys and inbox reports read rollups that heal themselves before
// each report. Filling one from nothing (the first report, after `omni
// metrics rebuild`, an erasure) takes seconds on a large shop, so it is
// done in the background, in short transactions, instead of in the
// request: a report meanwhile shows what is stored and says in its notes
// what is not yet. A small shop's rollup is still filled in the request
// (its first report is then complete at once). The fills also start when
// the server does.

// fills are the background fills running.
type fills struct {
	messages atomic.Bool // metrics_messages_daily / metrics_holdout_daily
	inbox    atomic.Bool // metrics_conversations
}

// msgFillInline: a ledger of up to this many messages is counted in the
// request (about half a second); a larger one in the background.
const msgFillInline = 20000

// msgFillDays is how many days a fill transaction counts.
const msgFillDays = 7

// msgFillKey is the state row of a fill under way.
const msgFillKey = "fill"

// msgFill is the days the messages rollup does not hold yet: [First,
// From), counted backwards from today (the days a report most often
// asks for first). Zero when none.
type msgFill struct {
	First string `json:"first"`
	From  string `json:"from"`
}

func (f msgFill) pending() bool { return f.From != "" && f.First < f.From }

// note tells a report of q what its figures leave out.
func (f msgFill) note(q Query) string {
	start := q.Start
	if q.Compare {
		start = q.Previous().Start
	}
	if !f.pending() || start.Format(dayLayout) >= f.From {
		return ""
	}
	return fmt.Sprintf("The messages of the days before %s are still being counted in the background (back to %s): "+
		"until then they are not in these figures.", f.From, f.First)
}

func readMsgFill(db dbx.Builder) msgFill {
	var raw types.JSONRaw
	_ = db.NewQuery("SELECT value FROM " + MessagesStateCollection + " WHERE key = {:k}").Bind(dbx.Params{"k": msgFillKey}).Row(&raw)
	var f msgFill
	_ = json.Unmarshal(raw, &f)
	return f
}

// fillMessagesInBackground starts counting the days of the fill state
// into the rollup, unless it runs already.
func (m *Module) fillMessagesInBackground(app core.App, loc *time.Location) {
	if !m.fills.messages.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer m.fills.messages.Store(false)
		for {
			more, err := fillMessageDays(app, loc)
			if err != nil {
				m.logger().Error("metrics: counting the messages rollup", "error", err)
				return
			}
			if !more {
				return
			}
		}
	}()
}

// fillMessageDays stores the msgFillDays days before the fill's From in one
// transaction (a rebuild that emptied the state stops it); more when days
// are left.
func fillMessageDays(app core.App, loc *time.Location) (more bool, err error) {
	err = app.RunInTransaction(func(tx core.App) error {
		f := readMsgFill(tx.DB())
		if !f.pending() {
			return nil
		}
		from, err1 := time.ParseInLocation(dayLayout, f.From, loc)
		first, err2 := time.ParseInLocation(dayLayout, f.First, loc)
		if err1 != nil || err2 != nil {
			return writeMsgState(tx, msgFillKey, nil, true)
		}
		lo := from.AddDate(0, 0, -msgFillDays)
		if lo.Before(first) {
			lo = first
		}
		if err := storeDays(tx, lo, from, loc); err != nil {
			return err
		}
		f.From = lo.Format(dayLayout)
		more = f.pending()
		return writeMsgState(tx, msgFillKey, f, !more)
	})
	return more, err
}

// startFills starts the fills a large shop's rollups need (at start, so
// the first report after a restart or a rebuild finds them under way).
func (m *Module) startFills() {
	today := dayStart(m.opts.Now(), m.loc)
	if m.app.HasTable("messages") && m.app.HasTable("journey_runs") {
		if _, err := m.refreshMessages(m.app, m.loc, today, true); err != nil {
			m.logger().Error("metrics: starting the messages rollup", "error", err)
		}
	}
	if _, err := m.inboxRefresh(m.app, true); err != nil {
		m.logger().Error("metrics: starting the inbox rows", "error", err)
	}
}

func (m *Module) logger() *slog.Logger {
	if m.log == nil {
		return slog.Default()
	}
	return m.log
}

// fillInboxInBackground works out the inbox rows that need it,
// inboxFillBatch a transaction, until none is left, unless it runs already.
func (m *Module) fillInboxInBackground(app core.App) {
	if !m.fills.inbox.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer m.fills.inbox.Store(false)
		for pass := 0; pass < 5; pass++ { // (rows changing as fast as they are worked out: the reports take them on)
			ids, full, err := inboxStale(app.DB())
			if err == nil && full {
				err = inboxWorkOutAll(app, nil, true) // rows of deleted conversations
			}
			for len(ids) > 0 && err == nil {
				n := min(len(ids), inboxFillBatch)
				err = inboxWorkOutAll(app, ids[:n], false)
				ids = ids[n:]
			}
			if err != nil {
				m.logger().Error("metrics: working out the inbox rows", "error", err)
				return
			}
			if ids, _, err = inboxStale(app.DB()); err != nil || len(ids) == 0 {
				m.warmInboxDays(app)
				return
			}
		}
	}()
}

// warmInboxDays adds the rows just worked out up by day for the last 13
// months, so the first reports after a fill need not (inbox_days.go).
func (m *Module) warmInboxDays(app core.App) {
	today := dayStart(m.opts.Now(), m.loc)
	q := Query{Loc: m.loc, Start: today.AddDate(0, -13, 0), End: today.AddDate(0, 0, 1)}
	if _, err := inboxDays(app, q); err != nil {
		m.logger().Error("metrics: adding up the inbox rows by day", "error", err)
	}
}
