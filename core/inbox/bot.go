package inbox

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/pocketbase/dbx"
)

// The bot: with the "bot" setting on, a new conversation starts pending
// (the bot has it) and each customer message is matched against the
// owner's inbox_rules, in position order, by whole words or phrases,
// case-insensitive. A rule replies (Liquid, rendered by the gate for the
// customer), answers "where is my order" from the customer's latest order
// events, labels, assigns or hands off. A customer asking for a person, or
// a message no rule answers, hands off: the conversation opens for staff
// with the bot's messages still in it. No AI: rules only.

// Bot is the "bot" setting.
type Bot struct {
	Enabled bool `json:"enabled"`
	// HandoffKeywords: words or phrases that mean "let me talk to a person".
	HandoffKeywords []string `json:"handoff_keywords"`
	// Fallback is what happens to a message no rule answers: "handoff"
	// (a person takes over) or "none" (it waits in the pending view).
	Fallback string `json:"fallback"`
}

// DefaultHandoffKeywords are the words that ask for a person when the
// owner sets none.
var DefaultHandoffKeywords = []string{"human", "agent", "person", "real person", "someone", "operator", "speak to someone"}

func defaultBot() any {
	return Bot{Enabled: false, HandoffKeywords: DefaultHandoffKeywords, Fallback: "handoff"}
}

func checkBot(raw json.RawMessage) (any, error) {
	b := Bot{Fallback: "handoff"}
	if err := strictJSON(raw, &b); err != nil {
		return nil, fieldErr("bot", err.Error())
	}
	switch b.Fallback {
	case "":
		b.Fallback = "handoff"
	case "handoff", "none":
	default:
		return nil, fieldErr("bot.fallback", "must be handoff or none")
	}
	if b.HandoffKeywords == nil {
		b.HandoffKeywords = DefaultHandoffKeywords
	}
	kws, err := cleanKeywords(b.HandoffKeywords)
	if err != nil {
		return nil, fieldErr("bot.handoff_keywords", err.Error())
	}
	b.HandoffKeywords = kws
	return b, nil
}

// cleanKeywords trims keywords and refuses empty ones.
func cleanKeywords(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, k := range in {
		k = strings.TrimSpace(k)
		if normalize(k) == " " {
			return nil, fmt.Errorf("keyword %d has no letters or digits", i+1)
		}
		out = append(out, k)
	}
	return out, nil
}

func (m *Module) bot() Bot {
	b := Bot{HandoffKeywords: DefaultHandoffKeywords, Fallback: "handoff"}
	m.setting("bot", &b)
	return b
}

// normalize lower-cases s and turns everything but letters and digits
// into single spaces, padded with one on each side, so a keyword matches
// whole words: " where is my order ".
func normalize(s string) string {
	var b strings.Builder
	b.WriteByte(' ')
	space := true
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
			space = false
		} else if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	if !space {
		b.WriteByte(' ')
	}
	return b.String()
}

// matchesAny reports whether text (normalized) holds any keyword as whole
// words, and which.
func matchesAny(text string, keywords []string) (string, bool) {
	for _, k := range keywords {
		if n := normalize(k); n != " " && strings.Contains(text, n) {
			return k, true
		}
	}
	return "", false
}

// Rule is a row of inbox_rules.
type Rule struct {
	ID       string   `db:"id" json:"id"`
	Name     string   `db:"name" json:"name"`
	Enabled  bool     `db:"enabled" json:"enabled"`
	Position int      `db:"position" json:"position"`
	Channels JSONList `db:"channels" json:"channels"`
	Keywords JSONList `db:"keywords" json:"keywords"`
	Action   string   `db:"action" json:"action"`
	Reply    string   `db:"reply" json:"reply"`
	Value    string   `db:"value" json:"value"`
	Created  string   `db:"created" json:"created"`
	Updated  string   `db:"updated" json:"updated"`
}

// Rule actions.
const (
	ActionReply       = "reply"
	ActionOrderStatus = "order_status"
	ActionHandoff     = "handoff"
	ActionLabel       = "label"
	ActionAssign      = "assign"
)

var ruleActions = []string{ActionReply, ActionOrderStatus, ActionHandoff, ActionLabel, ActionAssign}

func stringsOf(l JSONList) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// appliesTo reports whether the rule works on channel.
func (r *Rule) appliesTo(channel string) bool {
	chs := stringsOf(r.Channels)
	if len(chs) == 0 {
		return true
	}
	for _, c := range chs {
		if c == channel {
			return true
		}
	}
	return false
}

// listRules reads the rules in the order they are tried.
func listRules(db dbx.Builder, enabledOnly bool) ([]Rule, error) {
	q := db.Select("*").From(RulesCollection).OrderBy("position ASC", "created ASC", "id ASC")
	if enabledOnly {
		q = q.Where(dbx.HashExp{"enabled": true})
	}
	var out []Rule
	if err := q.All(&out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []Rule{}
	}
	return out, nil
}

// Order is a customer's order as the bot tells it.
type Order struct {
	ID     string
	Name   string // "#1001"
	At     time.Time
	Status string // placed | paid | fulfilled | shipped | cancelled | refunded | …
	// Tracking, when the shop's events carry it.
	TrackingURL     string
	TrackingNumber  string
	TrackingCompany string
}

// latestOrder reads the customer's most recent order from their events
// (order.placed from Shopify, Square or the tracking API) and its status
// from the latest order.* event about that order (order.cancelled,
// order.refunded, order.fulfilled, order.shipped, …); nil when they have
// none.
func latestOrder(db dbx.Builder, profile string) (*Order, error) {
	var placed []struct {
		Properties string `db:"properties"`
		OccurredAt string `db:"occurred_at"`
	}
	err := db.NewQuery(`SELECT properties, occurred_at FROM events WHERE profile = {:p} AND type = 'order.placed'
		ORDER BY occurred_at DESC LIMIT 1`).Bind(dbx.Params{"p": profile}).All(&placed)
	if err != nil || len(placed) == 0 {
		return nil, err
	}
	props := map[string]any{}
	_ = json.Unmarshal([]byte(placed[0].Properties), &props)
	o := &Order{ID: propString(props, "order_id"), Status: "placed"}
	o.At, _ = time.Parse("2006-01-02 15:04:05.000Z", placed[0].OccurredAt)
	o.Name = propString(props, "order_name")
	if o.Name == "" && propString(props, "order_number") != "" {
		o.Name = "#" + propString(props, "order_number")
	}
	if o.Name == "" {
		o.Name = o.ID
	}
	if fs := propString(props, "financial_status"); fs == "paid" {
		o.Status = "paid"
	}
	o.readTracking(props)
	if o.ID == "" {
		return o, nil
	}
	var later []struct {
		Type       string `db:"type"`
		Properties string `db:"properties"`
	}
	err = db.NewQuery(`SELECT type, properties FROM events WHERE profile = {:p} AND type LIKE 'order.%' AND type != 'order.placed'
		AND occurred_at >= {:at} AND json_extract(properties, '$.order_id') = {:id} ORDER BY occurred_at ASC`).
		Bind(dbx.Params{"p": profile, "at": placed[0].OccurredAt, "id": o.ID}).All(&later)
	if err != nil {
		return nil, err
	}
	for _, e := range later {
		p := map[string]any{}
		_ = json.Unmarshal([]byte(e.Properties), &p)
		if s := propString(p, "status"); s != "" {
			o.Status = s
		} else if s := propString(p, "fulfillment_status"); s != "" {
			o.Status = s
		} else {
			o.Status = pastTense(strings.TrimPrefix(e.Type, "order."))
		}
		o.readTracking(p)
	}
	return o, nil
}

func (o *Order) readTracking(p map[string]any) {
	if s := propString(p, "tracking_url"); s != "" {
		o.TrackingURL = s
	}
	if s := propString(p, "tracking_number"); s != "" {
		o.TrackingNumber = s
	}
	if s := propString(p, "tracking_company"); s != "" {
		o.TrackingCompany = s
	}
}

// pastTense turns an event verb into a status ("ship" would be unusual;
// the well-known ones are already past tense).
func pastTense(v string) string {
	v = strings.ReplaceAll(v, "_", " ")
	if v == "" {
		return "updated"
	}
	return v
}

func propString(p map[string]any, k string) string {
	switch v := p[k].(type) {
	case string:
		return v
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%.0f", v), ".")
	case json.Number:
		return v.String()
	}
	return ""
}

// Text is the bot's answer about the order.
func (o *Order) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Your order %s", o.Name)
	if !o.At.IsZero() {
		fmt.Fprintf(&b, " from %s", o.At.Format("2 January 2006"))
	}
	fmt.Fprintf(&b, " is %s.", o.Status)
	if o.TrackingNumber != "" || o.TrackingURL != "" {
		b.WriteString(" Tracking:")
		if o.TrackingCompany != "" {
			b.WriteString(" " + o.TrackingCompany)
		}
		if o.TrackingNumber != "" {
			b.WriteString(" " + o.TrackingNumber)
		}
		if o.TrackingURL != "" {
			b.WriteString(" " + o.TrackingURL)
		}
	}
	return b.String()
}
