package journeys

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/journeys/backtest"
	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/segmentrule"
	"github.com/omni/omni/plugins/sdk"
)

// The backtest reads the shop's tables with plain SQL (modules share
// tables, not code): events, profiles and identities (profiles), templates,
// connectors and message_suppressions (messaging, connectors).

// backtestEvents streams the stored events of the types g reads, in
// [from, to) (from 24 hours earlier when WhatsApp messages matter), in
// time order, with one query.
func backtestEvents(app core.App, types []string, from, to time.Time) iter.Seq2[backtest.Event, error] {
	return func(yield func(backtest.Event, error) bool) {
		if len(types) == 0 {
			return
		}
		start := from
		params := dbx.Params{"to": fmtT(to)}
		in := make([]string, len(types))
		for i, t := range types {
			k := fmt.Sprintf("t%d", i)
			params[k] = t
			in[i] = "{:" + k + "}"
			if t == "message.received" {
				start = from.Add(-24 * time.Hour)
			}
		}
		params["from"] = fmtT(start)
		rows, err := app.DB().NewQuery("SELECT id, type, profile, channel, occurred_at, properties FROM events WHERE type IN (" +
			strings.Join(in, ", ") + ") AND occurred_at >= {:from} AND occurred_at < {:to} AND profile != '' ORDER BY occurred_at").
			Bind(params).Rows()
		if err != nil {
			yield(backtest.Event{}, err)
			return
		}
		defer rows.Close()
		var (
			ev       backtest.Event
			occurred string
			props    []byte
		)
		for rows.Next() {
			if err := rows.Scan(&ev.ID, &ev.Type, &ev.Profile, &ev.Channel, &occurred, &props); err != nil {
				yield(backtest.Event{}, err)
				return
			}
			ev.At = parseT(occurred)
			ev.Props = nil
			// A WhatsApp message is read for its time only.
			if ev.Type != "message.received" && len(props) > 2 {
				// A row whose properties do not decode is replayed without
				// them, as the events consumer stored it.
				_ = json.Unmarshal(props, &ev.Props)
			}
			if !yield(ev, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(backtest.Event{}, err)
		}
	}
}

// storeLookups answers the simulation from the database: customers as
// they are now (consent as it was when the window opened), branch rules
// over today's profiles, templates.
type storeLookups struct {
	app       core.App
	from      time.Time
	shopTZ    *time.Location
	profile   *dbx.Query
	preloaded map[string]*backtest.Customer
	zones     map[string]*time.Location
	rules     map[string]*segmentrule.Rule
	segments  map[string]*segmentrule.Rule
	tpls      map[string]*backtest.Template
}

func newStoreLookups(app core.App, from time.Time, shopTZ *time.Location) *storeLookups {
	db := app.DB()
	return &storeLookups{app: app, from: from, shopTZ: shopTZ,
		profile:   db.NewQuery("SELECT " + customerColumns + " FROM profiles p WHERE p.id={:id}").Prepare(),
		preloaded: map[string]*backtest.Customer{},
		zones:     map[string]*time.Location{},
		rules:     map[string]*segmentrule.Rule{},
		segments:  map[string]*segmentrule.Rule{},
		tpls:      map[string]*backtest.Template{}}
}

func (l *storeLookups) close() {
	_ = l.profile.Close()
}

type consentEntry struct {
	Status string `json:"status"`
	At     string `json:"at"`
}

// customerColumns reads what the gate needs of a profile: addresses, the
// time zone trait and the consent ledger.
const customerColumns = `p.id, p.email, p.phone, p.consent,
	COALESCE(json_extract(CASE WHEN json_valid(p.traits) THEN p.traits ELSE '{}' END, '$.timezone'),
	json_extract(CASE WHEN json_valid(p.traits) THEN p.traits ELSE '{}' END, '$.time_zone'),
	json_extract(CASE WHEN json_valid(p.traits) THEN p.traits ELSE '{}' END, '$.tz'), '') AS tz,
	COALESCE((SELECT value FROM identities i WHERE i.profile = p.id AND i.kind = 'wa_id' ORDER BY i.created DESC LIMIT 1), '') AS wa_id`

type customerRow struct {
	ID      string `db:"id"`
	Email   string `db:"email"`
	Phone   string `db:"phone"`
	Consent string `db:"consent"`
	TZ      string `db:"tz"`
	WAID    string `db:"wa_id"`
}

// preload reads, in one query, every customer with an event of the
// trigger's type in the window: those the replay will ask about, without a
// query each.
func (l *storeLookups) preload(triggerType string, from, to time.Time) error {
	if triggerType == "" {
		return nil
	}
	rows, err := l.app.DB().NewQuery("SELECT " + customerColumns + ` FROM profiles p WHERE p.id IN
		(SELECT DISTINCT profile FROM events WHERE type = {:t} AND occurred_at >= {:from} AND occurred_at < {:to})`).
		Bind(dbx.Params{"t": triggerType, "from": fmtT(from), "to": fmtT(to)}).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r customerRow
		if err := rows.ScanStruct(&r); err != nil {
			return err
		}
		if l.preloaded[r.ID], err = l.customer(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// zone loads a time zone once (nil: not a zone).
func (l *storeLookups) zone(name string) *time.Location {
	loc, ok := l.zones[name]
	if !ok {
		loc, _ = time.LoadLocation(name)
		l.zones[name] = loc
	}
	return loc
}

// triggerType is the event type that enrols customers, for preload ("":
// a date trigger, whose customers come from their traits).
func triggerType(g *graph.Graph) string {
	switch {
	case g.Trigger.Event != "":
		return g.Trigger.Event
	case g.Trigger.Segment != "" && g.Trigger.On == "exit":
		return "segment.exited"
	case g.Trigger.Segment != "":
		return "segment.entered"
	}
	return ""
}

func (l *storeLookups) Customer(id string) (*backtest.Customer, error) {
	if c, ok := l.preloaded[id]; ok {
		return c, nil
	}
	var r customerRow
	err := l.profile.Bind(dbx.Params{"id": id}).One(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // erased since: nothing can reach them
	}
	if err != nil {
		return nil, err
	}
	return l.customer(r)
}

func (l *storeLookups) customer(row customerRow) (*backtest.Customer, error) {
	c := &backtest.Customer{Email: row.Email, Phone: row.Phone, WhatsApp: row.WAID, Consent: map[string]string{}}
	if row.TZ != "" {
		c.Location = l.zone(row.TZ)
	}
	if c.WhatsApp == "" {
		c.WhatsApp = strings.TrimPrefix(row.Phone, "+")
	}
	id := row.ID
	// Consent as it stood when the window opened: the ledger's entry when
	// it is older, else the last change stored before the window.
	var ledger map[string]consentEntry
	_ = json.Unmarshal([]byte(row.Consent), &ledger)
	since := map[string]bool{} // channels whose entry changed after the window opened
	for ch, e := range ledger {
		if at, ok := backtest.ParseDate(e.At, time.UTC); ok && at.Before(l.from) {
			c.Consent[ch] = e.Status
		} else {
			since[ch] = true
		}
	}
	if len(since) > 0 {
		var rows []struct {
			Properties string `db:"properties"`
		}
		err := l.app.DB().NewQuery("SELECT properties FROM events WHERE profile={:p} AND type='consent.changed' AND occurred_at < {:from} ORDER BY occurred_at").
			Bind(dbx.Params{"p": id, "from": fmtT(l.from)}).All(&rows)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			var p struct{ Channel, Status string }
			if json.Unmarshal([]byte(r.Properties), &p) != nil {
				continue
			}
			ch, st := strings.ToLower(strings.TrimSpace(p.Channel)), strings.ToLower(strings.TrimSpace(p.Status))
			if since[ch] && (st == "subscribed" || st == "unsubscribed") {
				c.Consent[ch] = st
			}
		}
	}
	return c, nil
}

// rule parses a branch rule once.
func (l *storeLookups) rule(raw json.RawMessage) (*segmentrule.Rule, error) {
	if r, ok := l.rules[string(raw)]; ok {
		return r, nil
	}
	r, err := segmentrule.ParseRule(raw)
	if err != nil {
		return nil, err
	}
	l.rules[string(raw)] = r
	return r, nil
}

// segment resolves {"segment": id} in branch rules.
func (l *storeLookups) segment(id string) (*segmentrule.Rule, bool) {
	if r, ok := l.segments[id]; ok {
		return r, r != nil
	}
	var raw string
	var r *segmentrule.Rule
	if err := l.app.DB().NewQuery("SELECT rule FROM segments WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&raw); err == nil {
		r, _ = segmentrule.ParseRule([]byte(raw))
	}
	l.segments[id] = r
	return r, r != nil
}

// compile turns a branch rule into SQL at a moment (checked before the
// replay starts, so the owner hears of a bad rule as a 400).
func (l *storeLookups) compile(raw json.RawMessage, at time.Time) (string, dbx.Params, error) {
	r, err := l.rule(raw)
	if err != nil {
		return "", nil, err
	}
	c := segmentrule.NewCompiler(at, l.segment)
	cond, err := c.Compile(r, "rule")
	if err != nil {
		return "", nil, err
	}
	return cond, c.Params, nil
}

func (l *storeLookups) Branch(raw json.RawMessage, profile string, at time.Time) (bool, error) {
	cond, params, err := l.compile(raw, at)
	if err != nil {
		return false, err
	}
	params["bt_profile"] = profile
	var n int
	err = l.app.DB().NewQuery("SELECT COUNT(*) FROM profiles p WHERE p.id = {:bt_profile} AND " + cond).Bind(params).Row(&n)
	return n > 0, err
}

func (l *storeLookups) Template(ref string) (backtest.Template, bool) {
	if t, ok := l.tpls[ref]; ok {
		if t == nil {
			return backtest.Template{}, false
		}
		return *t, true
	}
	var row struct {
		Kind       string `db:"kind"`
		WATemplate string `db:"wa_template"`
	}
	err := l.app.DB().NewQuery("SELECT kind, wa_template FROM templates WHERE id={:r} OR name={:r} ORDER BY id={:r} DESC LIMIT 1").
		Bind(dbx.Params{"r": ref}).One(&row)
	if err != nil {
		l.tpls[ref] = nil
		return backtest.Template{}, false
	}
	t := &backtest.Template{Kind: row.Kind, WATemplate: row.WATemplate != ""}
	l.tpls[ref] = t
	return *t, true
}

// gateRules reads the messaging gate's settings and what can send.
func gateRules(app core.App, cfg *config.Config) (backtest.Rules, error) {
	r := backtest.Rules{Connected: map[string]bool{}, Undeliverable: map[string]bool{}, QuietFrom: -1}
	caps, err := config.ParseFrequencyCaps(cfg.Messaging.FrequencyCap)
	if err != nil {
		return r, err
	}
	for _, c := range caps {
		r.Caps = append(r.Caps, backtest.Cap{Count: c.Count, Period: c.Period})
	}
	if r.QuietFrom, r.QuietTo, err = config.ParseQuietHours(cfg.Messaging.QuietHours); err != nil {
		return r, err
	}
	if r.ShopTZ, err = time.LoadLocation(cfg.Messaging.Timezone); err != nil {
		return r, err
	}
	// Without the connectors table (a build without connectors) nothing
	// can send, which is what the gate would say too.
	var caps2 []string
	_ = app.DB().NewQuery("SELECT capabilities FROM connectors WHERE enabled = 1").Column(&caps2)
	for _, raw := range caps2 {
		var list []string
		_ = json.Unmarshal([]byte(raw), &list)
		for _, c := range list {
			if ch, ok := strings.CutPrefix(c, sdk.CapSendPrefix); ok {
				r.Connected[ch] = true
			}
		}
	}
	var sup []struct {
		Channel string `db:"channel"`
		Address string `db:"address"`
	}
	_ = app.DB().NewQuery("SELECT channel, address FROM message_suppressions").All(&sup)
	for _, s := range sup {
		r.Undeliverable[s.Channel+"\x00"+s.Address] = true
	}
	return r, nil
}

// dateEntries turns every customer's date trait into the moments a date
// trigger would have enrolled them in [from, to). Traits are today's.
func dateEntries(app core.App, dt *graph.DateTrigger, shopTZ *time.Location, from, to time.Time) ([]backtest.Entry, error) {
	path := "$." + dt.Property
	rows, err := app.DB().NewQuery(`SELECT id, COALESCE(json_extract(CASE WHEN json_valid(computed) THEN computed ELSE '{}' END, {:path}),
		json_extract(CASE WHEN json_valid(traits) THEN traits ELSE '{}' END, {:path}), '') AS value,
		COALESCE(json_extract(CASE WHEN json_valid(traits) THEN traits ELSE '{}' END, '$.timezone'),
		json_extract(CASE WHEN json_valid(traits) THEN traits ELSE '{}' END, '$.time_zone'),
		json_extract(CASE WHEN json_valid(traits) THEN traits ELSE '{}' END, '$.tz'), '') AS tz
		FROM profiles WHERE merged_into = '' AND value != ''`).Bind(dbx.Params{"path": path}).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []backtest.Entry
	for rows.Next() {
		var id, value, tz string
		if err := rows.Scan(&id, &value, &tz); err != nil {
			return nil, err
		}
		loc := shopTZ
		if tz != "" {
			if l, err := time.LoadLocation(tz); err == nil {
				loc = l
			}
		}
		if v, ok := backtest.ParseDate(value, loc); ok {
			out = append(out, backtest.DateEntries(dt, id, v, loc, from, to)...)
		}
	}
	return out, rows.Err()
}
