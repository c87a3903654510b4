package profiles

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/store"
)

// EventRef names an event in the merge ledger the way a shop knows it:
// source, type, name and a label such as Shopify's order name "#1086".
// It is a copy, so the ledger still reads after the event is gone.
type EventRef struct {
	EventID string `json:"event_id"`
	Source  string `json:"source"`
	Type    string `json:"type"`
	Name    string `json:"name,omitempty"`
	Label   string `json:"label,omitempty"`
	Channel string `json:"channel,omitempty"`
	At      string `json:"at,omitempty"`
}

func refOf(ev *events.Event) *EventRef {
	return &EventRef{EventID: ev.ID, Source: ev.Source, Type: ev.Type, Name: ev.Name, Label: eventLabel(ev.Type, ev.Properties),
		Channel: ev.Context.Channel, At: fmtT(ev.OccurredAt)}
}

// eventLabel is what the shop calls the thing an event is about: an order's
// name ("#1086", Shopify's order_name) rather than the vendor's long id.
func eventLabel(typ string, props map[string]any) string {
	if !strings.HasPrefix(typ, "order.") && !strings.HasPrefix(typ, "checkout.") {
		return ""
	}
	for _, k := range []string{"order_name", "order_number", "order_id", "checkout_id"} {
		var s string
		switch v := props[k].(type) {
		case string:
			s = strings.TrimSpace(v)
		case float64:
			s = fmt.Sprintf("%.0f", v)
		}
		if s == "" {
			continue
		}
		if allDigits(s) {
			s = "#" + s
		}
		return s
	}
	return ""
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// mergeLedgerRow is what merge() records besides survivor and loser.
type mergeLedgerRow struct {
	kind, value string
	cause       *EventRef
	earlier     *EventRef // nil when no stored event of the holder carries the identifier
	loserIDs    map[string][]string
	moved       map[string][]string // person-owned collection → ids of the loser's rows it moved
}

// earlierEvent finds the first stored event of profile holder that carried
// kind=value: the event that put the identifier there. Runs only on merges
// (rare), along the (profile, occurred_at) index, stopping at the first hit.
func (b *batch) earlierEvent(holder, kind, value, except string) (*EventRef, error) {
	if !events.KnownIdentity(kind) {
		return nil, nil
	}
	var row struct {
		EventID    string `db:"event_id"`
		Type       string `db:"type"`
		Name       string `db:"name"`
		Source     string `db:"source"`
		Channel    string `db:"channel"`
		OccurredAt string `db:"occurred_at"`
		Properties string `db:"properties"`
	}
	var rowID string
	err := b.tx.DB().NewQuery(`SELECT id, event_id, type, name, source, channel, occurred_at, properties FROM events
WHERE profile={:p} AND event_id != {:x} AND json_extract(identities, '$.`+kind+`') = {:v} ORDER BY occurred_at, id LIMIT 1`).
		Bind(dbx.Params{"p": holder, "v": value, "x": except}).Row(&rowID, &row.EventID, &row.Type, &row.Name, &row.Source, &row.Channel, &row.OccurredAt, &row.Properties)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("merge ledger: earlier event: %w", err)
	}
	// This batch's events resolved so far are not rows yet (they are
	// inserted with their profile after the batch resolves): look at them
	// too, in the same order.
	for _, s := range b.resolved {
		ev := s.Event
		if ev.ID == except || ev.Identities[kind] != value || b.canonical(s.Profile) != holder {
			continue
		}
		at := store.FormatTime(ev.OccurredAt)
		if found && (at > row.OccurredAt || (at == row.OccurredAt && s.RecordID > rowID)) {
			continue
		}
		props := []byte("null")
		if ev.Properties != nil {
			props, _ = json.Marshal(ev.Properties)
		}
		found, rowID = true, s.RecordID
		row.EventID, row.Type, row.Name, row.Source, row.Channel, row.OccurredAt, row.Properties = ev.ID, ev.Type, ev.Name, ev.Source, ev.Context.Channel, at, string(props)
	}
	if !found {
		return nil, nil
	}
	return storedRef(row.EventID, row.Source, row.Type, row.Name, row.Channel, row.OccurredAt, row.Properties), nil
}

func storedRef(id, source, typ, name, channel, at, props string) *EventRef {
	var p map[string]any
	_ = json.Unmarshal([]byte(props), &p) // a label is a nicety: unreadable properties only lose it
	return &EventRef{EventID: id, Source: source, Type: typ, Name: name, Label: eventLabel(typ, p), Channel: channel,
		At: strings.Replace(at, " ", "T", 1)}
}

// insertMerge writes one profile_merges row.
func (b *batch) insertMerge(s, l *profile, eventID string, led *mergeLedgerRow) error {
	js := func(v any) any {
		if v == nil {
			return nil
		}
		j, _ := json.Marshal(v)
		return string(j)
	}
	var earlier any
	if led.earlier != nil {
		earlier = js(led.earlier)
	}
	_, err := b.tx.DB().NewQuery(`INSERT INTO profile_merges (id, survivor, loser, event_id, kind, value, cause, earlier,
survivor_name, loser_name, loser_identities, moved_rows, created) VALUES ({:id},{:s},{:l},{:e},{:k},{:v},{:cause},{:earlier},{:sn},{:ln},
{:lids},{:moved},{:c})`).
		Bind(dbx.Params{"id": newID(), "s": s.id, "l": l.id, "e": eventID, "k": led.kind, "v": led.value,
			"cause": js(led.cause), "earlier": earlier, "sn": displayName(s), "ln": displayName(l),
			"lids": js(led.loserIDs), "moved": js(led.moved), "c": b.nowDB}).Execute()
	if err != nil {
		return fmt.Errorf("merge ledger: %w", err)
	}
	return nil
}

// displayName is how a profile was known at the time: name, email or phone.
func displayName(p *profile) string {
	for _, s := range []string{p.name, p.email, p.phone} {
		if s != "" {
			return s
		}
	}
	for _, k := range []string{events.Email, events.Phone} {
		if v := p.ids[k]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Merge is one row of the merge ledger as the API serves it.
type Merge struct {
	ID              string              `json:"id"`
	Survivor        string              `json:"survivor"`
	Loser           string              `json:"loser"`
	SurvivorName    string              `json:"survivor_name"`
	LoserName       string              `json:"loser_name"`
	EventID         string              `json:"event_id"`
	At              string              `json:"at"`
	Kind            string              `json:"kind"`
	Value           string              `json:"value"`
	Cause           *EventRef           `json:"cause"`
	Earlier         *EventRef           `json:"earlier"`
	LoserIdentities map[string][]string `json:"loser_identities"`
	// Explanation is the sentence the customer page shows.
	Explanation string `json:"explanation"`
	// UndoneAt and UndoneBy (the staff member's name) are set once an
	// owner un-merged it; PairBlocked when the two are kept apart since.
	UndoneAt    string `json:"undone_at,omitempty"`
	UndoneBy    string `json:"undone_by,omitempty"`
	PairBlocked bool   `json:"pair_blocked,omitempty"`
}

type mergeRow struct {
	ID           string `db:"id"`
	Survivor     string `db:"survivor"`
	Loser        string `db:"loser"`
	EventID      string `db:"event_id"`
	Created      string `db:"created"`
	Kind         string `db:"kind"`
	Value        string `db:"value"`
	Cause        string `db:"cause"`
	Earlier      string `db:"earlier"`
	SurvivorName string `db:"survivor_name"`
	LoserName    string `db:"loser_name"`
	LoserIDs     string `db:"loser_identities"`
	UndoneAt     string `db:"undone_at"`
	UndoneBy     string `db:"undone_by_name"`
	PairBlocked  bool   `db:"pair_blocked"`
	Moved        string `db:"moved_rows"`
}

// mergeCols are the profile_merges columns a mergeRow reads (JSON columns
// are NULL on rows from before the ledger had them).
const mergeCols = `id, survivor, loser, event_id, created, kind, value, COALESCE(cause, '') AS cause,
COALESCE(earlier, '') AS earlier, survivor_name, loser_name, COALESCE(loser_identities, '') AS loser_identities,
COALESCE(undone_at, '') AS undone_at, COALESCE(undone_by_name, '') AS undone_by_name, COALESCE(pair_blocked, FALSE) AS pair_blocked,
COALESCE(moved_rows, '') AS moved_rows`

// toMerge turns a ledger row into its API form, with its sentence.
func (r *mergeRow) toMerge(app core.App) Merge {
	mg := Merge{ID: r.ID, Survivor: r.Survivor, Loser: r.Loser, SurvivorName: r.SurvivorName, LoserName: r.LoserName,
		EventID: r.EventID, At: strings.Replace(r.Created, " ", "T", 1), Kind: r.Kind, Value: r.Value,
		UndoneAt: strings.Replace(r.UndoneAt, " ", "T", 1), UndoneBy: r.UndoneBy, PairBlocked: r.PairBlocked}
	decodeJSON(r.Cause, &mg.Cause)
	decodeJSON(r.Earlier, &mg.Earlier)
	decodeJSON(r.LoserIDs, &mg.LoserIdentities)
	if mg.Cause == nil && r.EventID != "" {
		// An older row: its event, if still stored, still says what caused it.
		mg.Cause = storedEvent(app, r.EventID)
	}
	mg.Explanation = explain(&mg)
	return mg
}

// merges lists the ledger rows that involve any of ids, oldest first.
func merges(app core.App, ids []string) ([]Merge, error) {
	in, ip := inList("i", ids)
	var rows []mergeRow
	if err := app.DB().NewQuery(`SELECT ` + mergeCols + `
FROM profile_merges WHERE survivor IN (` + in + `) OR loser IN (` + in + `) ORDER BY created, id`).Bind(ip).All(&rows); err != nil {
		return nil, err
	}
	out := make([]Merge, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.toMerge(app))
	}
	return out, nil
}

func decodeJSON(s string, into any) {
	if s != "" && s != "null" {
		_ = json.Unmarshal([]byte(s), into) // a damaged ledger cell only loses its detail, never the row
	}
}

func storedEvent(app core.App, eventID string) *EventRef {
	var row struct {
		Type       string `db:"type"`
		Name       string `db:"name"`
		Source     string `db:"source"`
		Channel    string `db:"channel"`
		OccurredAt string `db:"occurred_at"`
		Properties string `db:"properties"`
	}
	if err := app.DB().NewQuery("SELECT type, name, source, channel, occurred_at, properties FROM events WHERE event_id={:e}").
		Bind(dbx.Params{"e": eventID}).One(&row); err != nil {
		return nil
	}
	return storedRef(eventID, row.Source, row.Type, row.Name, row.Channel, row.OccurredAt, row.Properties)
}

// explain writes the ledger row as a sentence a shop owner reads:
// "Merged because phone +447700900123 was on Shopify order #1086 and a WhatsApp chat."
func explain(mg *Merge) string {
	if mg.Kind == "" {
		if mg.Cause != nil {
			return "Merged by " + describe(mg.Cause, false) + " (recorded before Omni kept which identifier joined them)."
		}
		return "Merged (recorded before Omni kept why)."
	}
	who := kindName(mg.Kind) + " " + mg.Value
	cause := "an event"
	if mg.Cause != nil {
		cause = describe(mg.Cause, true)
	}
	if mg.Earlier == nil {
		return "Merged because " + who + " was on " + cause + " and already on the other customer."
	}
	return "Merged because " + who + " was on " + cause + " and " + describe(mg.Earlier, true) + "."
}

// kindName is an identity kind in a shop owner's words.
func kindName(kind string) string {
	switch kind {
	case events.Email:
		return "email"
	case events.Phone:
		return "phone"
	case events.WhatsAppID:
		return "WhatsApp number"
	case events.UserID:
		return "user id"
	case events.AnonymousID:
		return "visitor id"
	case events.ShopifyCustomer:
		return "Shopify customer id"
	case events.SquareCustomer:
		return "Square customer id"
	case events.KlaviyoProfile:
		return "Klaviyo profile id"
	}
	return strings.ReplaceAll(kind, "_", " ")
}

// sourceNames spells the built-in sources as their vendors do; a tracking
// source is called by its own name.
var sourceNames = map[string]string{"shopify": "Shopify", "whatsapp": "WhatsApp", "square": "Square", "klaviyo": "Klaviyo",
	"omni": "Omni", SourceStaff: "staff"}

// describe names an event: "Shopify order #1086", "a WhatsApp chat",
// "a website sign-in" (article only when asked and there is no label).
func describe(r *EventRef, article bool) string {
	src := sourceNames[r.Source]
	if src == "" {
		src = r.Source
	}
	s := strings.TrimSpace(src + " " + eventNoun(r))
	if r.Label != "" {
		return s + " " + r.Label
	}
	if !article {
		return s
	}
	if s != "" && strings.ContainsRune("aeiouAEIOU", []rune(s)[0]) {
		return "an " + s
	}
	return "a " + s
}

func eventNoun(r *EventRef) string {
	switch r.Type {
	case events.OrderPlaced:
		return "order"
	case "order.refunded":
		return "refund"
	case "order.cancelled":
		return "cancelled order"
	case "checkout.started", "checkout.updated":
		return "checkout"
	case events.CustomerUpdated:
		return "customer record"
	case events.Identify:
		return "sign-in"
	case "page.viewed":
		return "page view"
	case "screen.viewed":
		return "app screen view"
	case events.MessageReceived:
		return "chat"
	case events.ConsentChanged:
		return "consent change"
	}
	if strings.HasPrefix(r.Type, "message.") {
		return "message"
	}
	if strings.HasPrefix(r.Type, "email.") {
		return "email"
	}
	if r.Name != "" {
		return r.Name
	}
	return strings.Map(func(c rune) rune {
		if c == '.' || c == '_' || !unicode.IsPrint(c) {
			return ' '
		}
		return c
	}, r.Type)
}
