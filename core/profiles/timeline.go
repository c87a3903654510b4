package profiles

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
)

// The timeline reads in a shop owner's words. Each event is shaped here,
// once, so every client shows the same title, lines and amounts; the raw
// event stays on the entry for "details".

// Money is an amount in a currency (ISO 4217; empty when the event had none).
type Money struct {
	Value    float64 `json:"value"`
	Currency string  `json:"currency,omitempty"`
}

// Line is one product line of an order, checkout or refund.
type Line struct {
	Title    string   `json:"title"`
	Quantity float64  `json:"quantity,omitempty"`
	Price    *float64 `json:"price,omitempty"` // per unit
	Total    *float64 `json:"total,omitempty"` // for the line (refunds carry only this)
	Currency string   `json:"currency,omitempty"`
}

// Link is a URL worth a click (a checkout's recovery link, a clicked link).
type Link struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// Fact is one labelled value under an entry ("Discount codes: TENOFF").
type Fact struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Shape is what a timeline entry says, on top of the raw event.
type Shape struct {
	Title    string `json:"title"`
	Text     string `json:"text,omitempty"`     // a message's text, a refund note, a consent reason
	Amount   *Money `json:"amount,omitempty"`   // order total, checkout value, refund
	Lines    []Line `json:"lines,omitempty"`    // products
	Link     *Link  `json:"link,omitempty"`     // recovery link, clicked URL, viewed page
	Status   string `json:"status,omitempty"`   // an outgoing message's delivery: sent, delivered, read, failed
	Campaign string `json:"campaign,omitempty"` // the campaign/UTM that brought them
	By       string `json:"by,omitempty"`       // who did it, when not the customer
	// Group names entries a client may fold when they follow one another
	// ("page_views": a browsing session reads as "Viewed 5 pages").
	Group       string `json:"group,omitempty"`
	Facts       []Fact `json:"facts,omitempty"`
	ChannelName string `json:"channel_name,omitempty"`
	SourceName  string `json:"source_name,omitempty"`
}

// ChannelNames are the channel words of the admin (events.Channel*).
var ChannelNames = map[string]string{
	events.ChannelWeb: "Web", events.ChannelApp: "App", events.ChannelServer: "Server",
	events.ChannelEmail: "Email", events.ChannelSMS: "SMS", events.ChannelWhatsApp: "WhatsApp",
	events.ChannelPOS: "Point of sale", events.ChannelChat: "Chat",
}

func channelName(ch string) string {
	if n, ok := ChannelNames[ch]; ok {
		return n
	}
	return humanWords(ch)
}

func sourceName(src string) string {
	if src == SourceStaff {
		return "Staff"
	}
	if n, ok := sourceNames[src]; ok { // ledger.go
		return n
	}
	if strings.HasPrefix(src, "src:") || strings.HasPrefix(src, "source:") {
		return "Tracking"
	}
	return humanWords(src)
}

// humanWords turns "order.placed" or "first_name" into "Order placed" / "First name".
func humanWords(s string) string {
	s = strings.TrimSpace(strings.NewReplacer("_", " ", ".", " ", "-", " ").Replace(s))
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// shaper shapes the entries of one timeline page; it looks up what an
// event refers to (an order's name, a message's delivery, a merge's
// explanation) once per page.
type shaper struct {
	app     core.App
	profile string
	orders  map[string]string // order id → the name the shop knows it by
	merges  map[string]string // merged profile id → the merge's explanation
	loaded  bool
}

func propString(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return strings.TrimSpace(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	}
	return ""
}

func propObject(m map[string]any, k string) map[string]any {
	o, _ := m[k].(map[string]any)
	return o
}

func moneyOf(p map[string]any, keys ...string) *Money {
	v, ok := amount(p, keys...)
	if !ok {
		return nil
	}
	return &Money{Value: v, Currency: strings.ToUpper(propString(p, "currency"))}
}

func floatPtr(p map[string]any, k string) *float64 {
	if v, ok := amount(p, k); ok {
		return &v
	}
	return nil
}

// entryLines reads line_items as Shopify (title, variant_title, price) and
// Square (name, variation_name, price, total) emit them, and a tracked
// order's products as Segment's e-commerce spec names them (name,
// variant, quantity, price).
func entryLines(p map[string]any) []Line {
	raw, _ := p["line_items"].([]any)
	if raw == nil {
		raw, _ = p["products"].([]any)
	}
	cur := strings.ToUpper(propString(p, "currency"))
	var out []Line
	for _, r := range raw {
		li, ok := r.(map[string]any)
		if !ok {
			continue
		}
		title := propString(li, "title")
		if title == "" {
			title = propString(li, "name")
		}
		if v := propString(li, "variant_title"); v != "" {
			title += " – " + v
		} else if v := propString(li, "variation_name"); v != "" && !strings.EqualFold(v, "regular") {
			title += " – " + v
		} else if v := propString(li, "variant"); v != "" {
			title += " – " + v
		}
		if title == "" {
			title = propString(li, "sku")
		}
		l := Line{Title: title, Price: floatPtr(li, "price"), Total: floatPtr(li, "total"), Currency: cur}
		if l.Total == nil {
			l.Total = floatPtr(li, "subtotal")
		}
		if q, ok := amount(li, "quantity"); ok {
			l.Quantity = q
		}
		out = append(out, l)
	}
	return out
}

// orderLabel is the order as the shop knows it: Shopify's name (#1086),
// else its number, else the vendor's id.
func orderLabel(p map[string]any) string {
	if n := propString(p, "order_name"); n != "" {
		return n
	}
	if n := propString(p, "order_number"); n != "" {
		return "#" + n
	}
	if n := propString(p, "receipt_number"); n != "" {
		return "#" + n
	}
	return propString(p, "order_id")
}

func campaignText(ctx map[string]any) string {
	c := propObject(ctx, "campaign")
	if c == nil {
		return ""
	}
	src, med, name := propString(c, "source"), propString(c, "medium"), propString(c, "name")
	via := strings.Join(nonEmptyStrings(src, med), " / ")
	switch {
	case name != "" && via != "":
		return name + " (" + via + ")"
	case name != "":
		return name
	}
	return via
}

func nonEmptyStrings(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func listText(v any) string {
	arr, _ := v.([]any)
	var out []string
	for _, x := range arr {
		if s, ok := x.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

func clipRunes(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// load fetches, for the page, what entries refer to: order names for
// refunds and the merge ledger's sentences.
func (s *shaper) load(items []*TimelineEvent) {
	if s.loaded {
		return
	}
	s.loaded = true
	s.orders, s.merges = map[string]string{}, map[string]string{}
	var want []string
	for _, it := range items {
		if it.Type == events.OrderRefunded || it.Type == events.OrderCancelled {
			if id := propString(it.props(), "order_id"); id != "" {
				want = append(want, id)
			}
		}
	}
	if len(want) > 0 {
		in, prm := inList("o", want)
		prm["p"] = s.profile
		var rows []struct {
			ID   string `db:"oid"`
			Name string `db:"oname"`
			Num  string `db:"onum"`
		}
		_ = s.app.DB().NewQuery(`SELECT json_extract(properties, '$.order_id') AS oid,
COALESCE(json_extract(properties, '$.order_name'), '') AS oname, COALESCE(json_extract(properties, '$.order_number'), '') AS onum
FROM events WHERE profile = {:p} AND type = 'order.placed' AND json_extract(properties, '$.order_id') IN (` + in + `)`).Bind(prm).All(&rows)
		for _, r := range rows {
			switch {
			case r.Name != "":
				s.orders[r.ID] = r.Name
			case r.Num != "":
				s.orders[r.ID] = "#" + r.Num
			}
		}
	}
	for _, it := range items {
		if it.Type == "profile.merged" {
			if ms, err := merges(s.app, []string{s.profile}); err == nil {
				for _, m := range ms {
					s.merges[m.Loser] = m.Explanation
				}
			}
			break
		}
	}
}

// status finds the latest delivery report of an outgoing message: vendors
// report on the id they gave it (provider_message_id).
func (s *shaper) status(providerID string) string {
	if providerID == "" {
		return ""
	}
	var typ string
	_ = s.app.DB().NewQuery(`SELECT type FROM events WHERE profile = {:p} AND type IN ('message.delivered', 'message.read', 'message.failed')
AND json_extract(properties, '$.message_id') = {:m} ORDER BY CASE type WHEN 'message.failed' THEN 3 WHEN 'message.read' THEN 2 ELSE 1 END DESC LIMIT 1`).
		Bind(dbx.Params{"p": s.profile, "m": providerID}).Row(&typ)
	return strings.TrimPrefix(typ, "message.")
}

func (t *TimelineEvent) props() map[string]any {
	if t.propMap == nil {
		_ = json.Unmarshal([]byte(t.PropText), &t.propMap)
		if t.propMap == nil {
			t.propMap = map[string]any{}
		}
	}
	return t.propMap
}

// shape fills the entry's words from its raw event.
func (s *shaper) shape(t *TimelineEvent) {
	p := t.props()
	var ctx map[string]any
	_ = json.Unmarshal([]byte(t.CtxText), &ctx)
	sh := &t.Shape
	sh.ChannelName, sh.SourceName = channelName(t.Channel), sourceName(t.Source)
	sh.Campaign = campaignText(ctx)
	chName := sh.ChannelName
	if chName == "" {
		chName = sh.SourceName
	}
	switch t.Type {
	case events.OrderPlaced:
		sh.Title = "Order " + orderLabel(p)
		if t.Channel == events.ChannelPOS {
			sh.Title += " in the shop"
		}
		sh.Amount, sh.Lines = moneyOf(p, "total", "revenue", "value", "amount"), entryLines(p)
		if d := listText(p["discount_codes"]); d != "" {
			sh.Facts = append(sh.Facts, Fact{"Discount codes", d})
		}
		if v := propString(p, "financial_status"); v != "" {
			sh.Facts = append(sh.Facts, Fact{"Payment", humanWords(v)})
		}
		if u := propString(p, "receipt_url"); u != "" {
			sh.Link = &Link{Label: "Receipt", URL: u}
		}
	case events.OrderCancelled:
		sh.Title = "Order " + s.orderName(p) + " cancelled"
		sh.Amount = moneyOf(p, "total")
		sh.Text = humanWords(propString(p, "cancel_reason"))
	case events.OrderRefunded:
		sh.Title = "Refund on order " + s.orderName(p)
		sh.Amount, sh.Lines = moneyOf(p, "total", "refund", "amount", "revenue", "value"), entryLines(p)
		sh.Text = propString(p, "note")
	case events.CheckoutStarted, events.CheckoutUpdated:
		sh.Title = "Started checkout"
		if t.Type == events.CheckoutUpdated {
			sh.Title = "Updated checkout"
		}
		if b, _ := p["completed"].(bool); b {
			sh.Title = "Completed checkout"
		}
		sh.Amount, sh.Lines = moneyOf(p, "total", "value", "subtotal"), entryLines(p)
		if u := propString(p, "abandoned_checkout_url"); u != "" {
			sh.Link = &Link{Label: "Recovery link", URL: u}
		}
		if d := listText(p["discount_codes"]); d != "" {
			sh.Facts = append(sh.Facts, Fact{"Discount codes", d})
		}
	case events.PageViewed, events.ScreenViewed:
		page := propObject(ctx, "page")
		what := propString(page, "title")
		if what == "" {
			what = t.Name
		}
		if what == "" {
			what = propString(p, "name")
		}
		if what == "" {
			what = propString(page, "path")
		}
		if what == "" {
			what = "a page"
		}
		sh.Title, sh.Group = "Viewed "+what, "page_views"
		if u := propString(page, "url"); u != "" {
			sh.Link = &Link{Label: "Page", URL: u}
		}
	case events.MessageReceived:
		sh.Title = chName + " message received"
		sh.Text = clipRunes(propString(p, "text"), 2000)
		if mt := propString(p, "message_type"); mt != "" && mt != "text" { // an image, a voice note… and its caption
			sh.Text = strings.TrimSpace("(" + humanWords(mt) + ") " + sh.Text)
		}
	case events.MessageSent:
		sh.Title = chName + " message sent"
		sh.Text = clipRunes(propString(p, "text"), 2000)
		if sh.Text == "" && propString(p, "template") != "" {
			sh.Text = "Template “" + propString(p, "template") + "”"
		}
		if sub := propString(p, "subject"); sub != "" {
			sh.Facts = append(sh.Facts, Fact{"Subject", sub})
		}
		sh.Status = "sent"
		if st := s.status(propString(p, "provider_message_id")); st != "" {
			sh.Status = st
		}
	case events.MessageDelivered, events.MessageRead, events.MessageFailed:
		verb := map[string]string{events.MessageDelivered: "delivered", events.MessageRead: "read", events.MessageFailed: "not delivered"}[t.Type]
		sh.Title, sh.Status = chName+" message "+verb, strings.TrimPrefix(t.Type, "message.")
		for _, k := range []string{"error", "error_reason", "reason"} {
			if sh.Text = propString(p, k); sh.Text != "" {
				break
			}
		}
		if sh.Text == "bounced" || sh.Text == "spam_complaint" {
			sh.Text = humanWords(sh.Text)
		}
		sh.Group = "message_status"
	case events.EmailOpened:
		sh.Title = "Opened an email"
		if sub := propString(p, "subject"); sub != "" {
			sh.Title = "Opened email “" + sub + "”"
		}
	case events.EmailClicked:
		sh.Title = "Clicked a link in an email"
		if u := propString(p, "url"); u != "" {
			sh.Link = &Link{Label: "Link", URL: u}
		}
	case events.ConsentChanged:
		status := map[string]string{"subscribed": "subscribed", "unsubscribed": "unsubscribed"}[propString(p, "status")]
		if status == "" {
			status = humanWords(propString(p, "status"))
		}
		sh.Title = channelName(propString(p, "channel")) + " consent: " + status
		if by := propObject(p, "by"); propString(by, "name") != "" {
			sh.By = propString(by, "name") + " (staff)"
		} else {
			sh.By = sourceName(t.Source)
		}
		switch {
		case propString(p, "reason") != "":
			sh.Text = propString(p, "reason")
		case propString(p, "keyword") != "":
			sh.Text = "Replied " + propString(p, "keyword")
		case propString(p, "detail") != "":
			sh.Text = propString(p, "detail")
		case propString(p, "method") != "": // Klaviyo: where they did it (PROFILE_PAGE, …)
			sh.Text = "Via " + strings.ToLower(humanWords(strings.ToLower(propString(p, "method"))))
		}
	case events.SegmentEntered:
		sh.Title = "Joined segment " + propString(p, "segment_name")
	case events.SegmentExited:
		sh.Title = "Left segment " + propString(p, "segment_name")
	case "profile.merged":
		sh.Title = "Merged with another customer record"
		sh.Text = s.merges[propString(p, "merged_profile_id")]
	case events.Identify, events.CustomerUpdated:
		sh.Title = "Details updated"
		if t.Source != "" && t.Type == events.CustomerUpdated {
			sh.Title = "Details updated in " + sourceName(t.Source)
		}
		traits := propObject(p, "traits")
		if traits == nil {
			traits = p
		}
		var keys []string
		for k := range traits {
			if k != "customer_id" && k != "created_at" {
				keys = append(keys, humanWords(k))
			}
		}
		if len(keys) > 0 {
			slices.Sort(keys)
			sh.Text = strings.Join(keys, ", ")
		}
	default:
		// Types this page does not know (a custom track event, a staff
		// note): a readable title, the text and who wrote it if present.
		sh.Title = humanWords(t.Name)
		if sh.Title == "" {
			sh.Title = humanWords(t.Type)
		}
		sh.Text = propString(p, "text")
		if a := propString(p, "author"); a != "" {
			sh.By = a
		} else if by := propObject(p, "by"); propString(by, "name") != "" {
			sh.By = propString(by, "name")
		}
	}
	sh.Text = clipRunes(sh.Text, 2000)
}

func (s *shaper) orderName(p map[string]any) string {
	if n := propString(p, "order_name"); n != "" {
		return n
	}
	id := propString(p, "order_id")
	if n := s.orders[id]; n != "" {
		return n
	}
	return orderLabel(p)
}
