package metrics

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// The inbox report over days, weeks or months reads metrics_inbox_days:
// per day of the shop's zone (the conversations' first opening), channel
// and assignee, the counts that add up and, for the medians, p90 and
// first-contact resolution (which depend on the fcr_days setting and on
// the clock), the day's durations and (first resolution, follow-up)
// pairs. A day's rows carry the stamp of its conversation rows (their
// count and the sum of their versions, which change on every write): the
// report works out again, from metrics_conversations, each day whose
// stamp moved, so the rollup heals itself as the rows do and a rebuild
// (which empties both) needs nothing more.

// inboxDay is what the conversations of one group (a day, a channel, an
// assignee) add up to.
type inboxDay struct {
	channel, assignee                  string
	n, bot, handed, breaches, breached int
	csat                               [6]int // answers by score 1–5
	replies                            map[string]int
	frt, res                           []float64 // seconds
	fcr                                []int64   // first resolution, follow-up (0 none), unix ms, in pairs
}

func (d *inboxDay) add(c *inboxRow) {
	d.n++
	if c.Bot {
		d.bot++
	}
	if c.HandedOff {
		d.handed++
	}
	d.breaches += c.SLABreaches
	if c.SLABreaches > 0 {
		d.breached++
	}
	if c.CSAT >= 1 && c.CSAT <= 5 {
		d.csat[c.CSAT]++
	}
	if v, ok := c.frt(); ok {
		d.frt = append(d.frt, v)
	}
	if v, ok := c.resolution(); ok {
		d.res = append(d.res, v)
	}
	if c.FirstResolved != 0 {
		d.fcr = append(d.fcr, c.FirstResolved, c.Follow)
	}
	if c.Replies != "" {
		if d.replies == nil {
			d.replies = map[string]int{}
		}
		inboxAddReplies(d.replies, c.Replies)
	}
}

// inboxGroupRows adds rows up by channel and assignee, in a stable order.
func inboxGroupRows(rows []*inboxRow) []*inboxDay {
	type key struct{ channel, assignee string }
	by := map[key]*inboxDay{}
	var out []*inboxDay
	for _, c := range rows {
		k := key{c.Channel, c.Assignee}
		d := by[k]
		if d == nil {
			d = &inboxDay{channel: c.Channel, assignee: c.Assignee}
			by[k] = d
			out = append(out, d)
		}
		d.add(c)
	}
	return out
}

// pack writes the figures as one text: the counts, "|", the replies
// ("staff:n,…"), "|", the first responses, "|", the resolutions, "|", the
// first-contact pairs ("r1:follow,…").
func (d *inboxDay) pack() string {
	b := make([]byte, 0, 64+12*(len(d.frt)+len(d.res))+28*len(d.fcr)/2)
	for i, n := range []int{d.n, d.bot, d.handed, d.breaches, d.breached, d.csat[1], d.csat[2], d.csat[3], d.csat[4], d.csat[5]} {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, '|')
	for i, staff := range slices.Sorted(func(yield func(string) bool) {
		for k := range d.replies {
			if !yield(k) {
				return
			}
		}
	}) {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(append(b, staff...), ':'), int64(d.replies[staff]), 10)
	}
	for _, list := range [][]float64{d.frt, d.res} {
		b = append(b, '|')
		for i, v := range list {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
	}
	b = append(b, '|')
	for i := 0; i+1 < len(d.fcr); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(strconv.AppendInt(b, d.fcr[i], 10), ':'), d.fcr[i+1], 10)
	}
	return string(b)
}

// unpack reads what pack wrote.
func (d *inboxDay) unpack(s string) bool {
	var f [5]string
	if !cutFields(s, f[:]) {
		return false
	}
	var counts [10]int
	rest := f[0]
	for i := range counts {
		var v string
		v, rest, _ = strings.Cut(rest, ",")
		n, err := strconv.Atoi(v)
		if err != nil {
			return false
		}
		counts[i] = n
	}
	d.n, d.bot, d.handed, d.breaches, d.breached = counts[0], counts[1], counts[2], counts[3], counts[4]
	copy(d.csat[1:], counts[5:])
	if f[1] != "" {
		d.replies = map[string]int{}
		inboxAddReplies(d.replies, f[1])
	}
	for i, list := range []*[]float64{&d.frt, &d.res} {
		s := f[2+i]
		if s == "" {
			continue
		}
		*list = make([]float64, 0, strings.Count(s, ",")+1)
		for s != "" {
			var v string
			v, s, _ = strings.Cut(s, ",")
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return false
			}
			*list = append(*list, x)
		}
	}
	if s := f[4]; s != "" {
		d.fcr = make([]int64, 0, 2*(strings.Count(s, ",")+1))
		for s != "" {
			var pair string
			pair, s, _ = strings.Cut(s, ",")
			a, b, _ := strings.Cut(pair, ":")
			r1, err1 := strconv.ParseInt(a, 10, 64)
			follow, err2 := strconv.ParseInt(b, 10, 64)
			if err1 != nil || err2 != nil {
				return false
			}
			d.fcr = append(d.fcr, r1, follow)
		}
	}
	return true
}

// inboxStamp is the stamp of a day's conversation rows.
func inboxStamp(n int, versions int64) string {
	return strconv.Itoa(n) + ":" + strconv.FormatInt(versions, 10)
}

// inboxDays returns the groups of each day of q (by the day's first
// instant, unix ms), working out again the days whose rows moved.
func inboxDays(app core.App, q Query) (map[int64][]*inboxDay, error) {
	zone := q.Loc.String()
	var days [][2]int64 // first instant, first instant of the next day
	for d := q.Start; d.Before(q.End); {
		next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, q.Loc)
		days = append(days, [2]int64{d.UnixMilli(), next.UnixMilli()})
		d = next
	}
	if len(days) == 0 {
		return map[int64][]*inboxDay{}, nil
	}
	list, _ := json.Marshal(days)
	// What each day's rows stamp now, in one text ("day:count:sum,…"):
	// one index range a day (the index alone answers; grouping the joined
	// rows instead sorts them all).
	var stamps string
	if err := app.DB().NewQuery(`SELECT COALESCE(group_concat(d.s || ':' || (SELECT COUNT(*) || ':' || COALESCE(SUM(r.version), 0)
		FROM ` + InboxConversationsCollection + ` r INDEXED BY idx_metrics_conversations_stamp WHERE r.opened_ms >= d.s AND r.opened_ms < d.e)), '')
		FROM (SELECT value ->> '$[0]' AS s, value ->> '$[1]' AS e FROM json_each({:days})) d`).
		Bind(dbx.Params{"days": string(list)}).Row(&stamps); err != nil {
		return nil, err
	}
	want := make(map[int64]string, len(days))
	for stamps != "" {
		var one string
		one, stamps, _ = strings.Cut(stamps, ",")
		day, stamp, _ := strings.Cut(one, ":")
		if n, err := strconv.ParseInt(day, 10, 64); err == nil && !strings.HasPrefix(stamp, "0:") {
			want[n] = stamp
		}
	}
	// The stored groups, in one text ("\n" between rows: day|stamp|
	// channel|assignee|packed; ids and channels hold no "|").
	var all string
	if err := app.DB().NewQuery(`SELECT COALESCE(group_concat(day_ms || '|' || stamp || '|' || channel || '|' || assignee || '|' || packed, char(10)), '')
		FROM ` + InboxDaysCollection + ` WHERE zone = {:zone} AND day_ms >= {:s} AND day_ms < {:e}`).
		Bind(dbx.Params{"zone": zone, "s": days[0][0], "e": days[len(days)-1][1]}).Row(&all); err != nil {
		return nil, err
	}
	out := make(map[int64][]*inboxDay, len(days))
	stale := map[int64]bool{}
	for all != "" {
		var line string
		line, all, _ = strings.Cut(all, "\n")
		var f [4]string
		ok := true
		for i := range f {
			if f[i], line, ok = strings.Cut(line, "|"); !ok {
				break
			}
		}
		day, err := strconv.ParseInt(f[0], 10, 64)
		if !ok || err != nil {
			continue // not the format: worked out again below if its day is wrong
		}
		d := &inboxDay{channel: f[2], assignee: f[3]}
		if f[1] != want[day] || !d.unpack(line) {
			stale[day] = true
			continue
		}
		out[day] = append(out[day], d)
	}
	var redo [][2]int64
	for _, d := range days {
		if stale[d[0]] || (want[d[0]] != "" && len(out[d[0]]) == 0) {
			redo = append(redo, d)
		}
	}
	if len(redo) == 0 {
		return out, nil
	}
	err := app.RunInTransaction(func(tx core.App) error {
		db := tx.DB()
		// Rows of another zone (the shop's zone changed) are of no use.
		if _, err := db.NewQuery("DELETE FROM " + InboxDaysCollection + " WHERE zone != {:zone}").Bind(dbx.Params{"zone": zone}).Execute(); err != nil {
			return err
		}
		ins := db.NewQuery(`INSERT INTO ` + InboxDaysCollection + ` (id, zone, day_ms, channel, assignee, stamp, packed)
			VALUES (substr(lower(hex(randomblob(8))), 1, 15), {:zone}, {:day}, {:channel}, {:assignee}, {:stamp}, {:packed})`).Prepare()
		defer ins.Close()
		for _, d := range redo {
			if _, err := db.NewQuery("DELETE FROM " + InboxDaysCollection + " WHERE zone = {:zone} AND day_ms = {:day}").
				Bind(dbx.Params{"zone": zone, "day": d[0]}).Execute(); err != nil {
				return err
			}
			rows, err := inboxRows(db, `opened_ms >= {:s} AND opened_ms < {:e}`, dbx.Params{"s": d[0], "e": d[1]})
			if err != nil {
				return err
			}
			var versions int64
			for _, c := range rows {
				versions += c.Version
			}
			stamp := inboxStamp(len(rows), versions)
			groups := inboxGroupRows(rows)
			for _, g := range groups {
				if _, err := ins.Bind(dbx.Params{"zone": zone, "day": d[0], "channel": g.channel, "assignee": g.assignee,
					"stamp": stamp, "packed": g.pack()}).Execute(); err != nil {
					return err
				}
			}
			out[d[0]] = groups
		}
		return nil
	})
	return out, err
}
