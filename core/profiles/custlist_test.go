package profiles_test

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/webui"
)

type listAnswer struct {
	Page       int                `json:"page"`
	PerPage    int                `json:"perPage"`
	TotalItems int                `json:"totalItems"`
	Items      []profiles.Summary `json:"items"`
}

// list calls GET /api/v1/profiles?query as the owner.
func (e *env) list(t *testing.T, query string) listAnswer {
	t.Helper()
	var a listAnswer
	e.get(t, "/api/v1/profiles?"+query, &a)
	return a
}

func ids(a listAnswer) []string {
	out := []string{}
	for _, s := range a.Items {
		out = append(out, s.ID)
	}
	return out
}

// shop seeds three customers and a visitor as connectors would send them:
// Jane (Shopify, order #1086 with its long id, GBP 30, email subscribed),
// Janet (Segment web client, two orders GBP 50), Sam (Square POS order,
// GBP 10, whatsapp chat) and an anonymous visitor who only browsed.
type shop struct{ jane, janet, sam, visitor string }

func seedShop(t *testing.T, e *env) shop {
	t.Helper()
	now := e.clock.Now()
	e.publish(t,
		ev(events.CustomerUpdated, "shopify", now.Add(-5*time.Hour), events.Identities{events.Email: "jane.doherty@omni-shop.dev", events.ShopifyCustomer: "207119551"},
			map[string]any{"first_name": "Jane", "last_name": "Doherty-Smith"}, ""),
		ev(events.OrderPlaced, "shopify", now.Add(-4*time.Hour), events.Identities{events.Email: "jane.doherty@omni-shop.dev", events.ShopifyCustomer: "207119551"},
			map[string]any{"order_id": "5600001086123", "order_name": "#1086", "order_number": "1086", "total": 30.0, "currency": "GBP"}, events.ChannelWeb),
		ev(events.ConsentChanged, "shopify", now.Add(-4*time.Hour), events.Identities{events.Email: "jane.doherty@omni-shop.dev"},
			map[string]any{"channel": "email", "status": "subscribed"}, ""),
		ev(events.Identify, "website", now.Add(-3*time.Hour), events.Identities{events.Email: "janet@omni-shop.dev", events.AnonymousID: "anon-janet"},
			map[string]any{"traits": map[string]any{"name": "Janet Jones"}}, events.ChannelWeb),
		ev(events.OrderPlaced, "website", now.Add(-3*time.Hour), events.Identities{events.Email: "janet@omni-shop.dev"},
			map[string]any{"order_id": "2001", "total": 20.0, "currency": "GBP"}, events.ChannelWeb),
		ev(events.OrderPlaced, "website", now.Add(-2*time.Hour), events.Identities{events.Email: "janet@omni-shop.dev"},
			map[string]any{"order_id": "2002", "total": 30.0, "currency": "GBP"}, events.ChannelWeb),
		ev(events.OrderPlaced, "square", now.Add(-90*time.Minute), events.Identities{events.SquareCustomer: "SQCUST9", events.Phone: "+14155550199"},
			map[string]any{"order_id": "CAISEOJmZ4vB9zF2", "total": 10.0, "currency": "GBP"}, events.ChannelPOS),
		ev(events.CustomerUpdated, "square", now.Add(-90*time.Minute), events.Identities{events.SquareCustomer: "SQCUST9"},
			map[string]any{"first_name": "Sam", "last_name": "Adams"}, ""),
		ev(events.MessageReceived, "whatsapp", now.Add(-time.Hour), events.Identities{events.Phone: "+14155550199"}, map[string]any{"text": "hi"}, events.ChannelWhatsApp),
		ev(events.PageViewed, "website", now.Add(-30*time.Minute), events.Identities{events.AnonymousID: "anon-visitor"}, nil, events.ChannelWeb),
	)
	s := shop{jane: e.profileOf(t, events.Email, "jane.doherty@omni-shop.dev"), janet: e.profileOf(t, events.Email, "janet@omni-shop.dev"),
		sam: e.profileOf(t, events.SquareCustomer, "SQCUST9"), visitor: e.profileOf(t, events.AnonymousID, "anon-visitor")}
	if s.jane == "" || s.janet == "" || s.sam == "" || s.visitor == "" {
		t.Fatalf("seed: %+v", s)
	}
	return s
}

// TestSearchFindsNamesOrdersTagsAndNotes: search finds last names, a prefix
// of any name word, order numbers as the shop knows them (#1086, 1086, the
// vendor's long id, Square's id in any case), tags and note text; an
// erased person is gone from the index.
func TestSearchFindsNamesOrdersTagsAndNotes(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	e := start(t, profiles.Options{})
	s := seedShop(t, e)
	e.addTag(t, e.agent, s.jane, "Wholesale")
	e.addNote(t, e.agent, s.jane, "Prefers morning delivery to the back door")

	for q, want := range map[string][]string{
		"doherty":                    {s.jane}, // last name
		"Smith":                      {s.jane}, // second part of a hyphenated last name
		"doh":                        {s.jane}, // partial
		"jan":                        {s.jane, s.janet},
		"jane doh":                   {s.jane}, // every word must match
		"#1086":                      {s.jane},
		"1086":                       {s.jane},
		"5600001086123":              {s.jane},
		"2002":                       {s.janet},
		"CAISEOJmZ4vB9zF2":           {s.sam},
		"caiseojmz4":                 {s.sam},
		"adams":                      {s.sam},
		"jane.doherty@omni-shop.dev": {s.jane},
		"(415) 555-0199":             {s.sam},
		"wholesale":                  {s.jane}, // tag
		"morning":                    {s.jane}, // note text
		"anon-visitor":               {s.visitor},
		"nobody":                     {},
	} {
		a := e.list(t, "q="+url.QueryEscape(q))
		got := ids(a)
		slices.Sort(got)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(got, w) || a.TotalItems != len(want) {
			t.Errorf("search %q: got %v (total %d), want %v", q, got, a.TotalItems, w)
		}
	}

	// Erasure removes the person from the index.
	if code, body := e.Do(t, "DELETE", "/api/v1/profiles/"+s.jane, nil, auth(e.owner)); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	for _, q := range []string{"doherty", "1086", "wholesale", "morning"} {
		if a := e.list(t, "q="+q); a.TotalItems != 0 {
			t.Errorf("after erasure, %q still finds %v", q, ids(a))
		}
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_search WHERE profile={:p}", map[string]any{"p": s.jane}); n != 0 {
		t.Errorf("%d search rows left for the erased profile", n)
	}
}

// TestOrderWordsFollowAMergeInTheSameBatch: an order's words are written as
// its event is resolved; when a later event of the same batch merges its
// customer into an older one, they move to the survivor with the rest of
// the customer's words, and no row is left on the merged profile.
func TestOrderWordsFollowAMergeInTheSameBatch(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev(events.OrderPlaced, "square", now.Add(-2*time.Hour), events.Identities{events.Phone: "+14155550123"},
		map[string]any{"order_id": "SQ-OLD-77", "total": 5.0, "currency": "GBP"}, events.ChannelPOS))
	older := e.profileOf(t, events.Phone, "+14155550123")
	e.publish(t,
		ev(events.OrderPlaced, "shopify", now.Add(-time.Hour), events.Identities{events.Email: "late.merge@omni-shop.dev"},
			map[string]any{"order_id": "5600004242001", "order_name": "#4242", "order_number": "4242", "total": 30.0, "currency": "GBP"}, events.ChannelWeb),
		ev(events.Identify, "website", now.Add(-30*time.Minute), events.Identities{events.Email: "late.merge@omni-shop.dev", events.Phone: "+14155550123"},
			map[string]any{"traits": map[string]any{"name": "Late Merge"}}, events.ChannelWeb),
	)
	if got := e.profileOf(t, events.Email, "late.merge@omni-shop.dev"); got != older {
		t.Fatalf("the email's profile is %q, want the older %q (merged)", got, older)
	}
	for _, q := range []string{"#4242", "5600004242001", "SQ-OLD-77", "late"} {
		if got := ids(e.list(t, "q="+url.QueryEscape(q))); !slices.Equal(got, []string{older}) {
			t.Errorf("search %q: got %v, want [%s]", q, got, older)
		}
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_search WHERE profile={:p} AND origin='o' AND token IN ('4242', '5600004242001')",
		map[string]any{"p": older}); n != 2 {
		t.Errorf("%d order words of #4242 on the survivor, want 2", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_search WHERE profile NOT IN (SELECT id FROM profiles WHERE merged_into = '')", nil); n != 0 {
		t.Errorf("%d search rows point at a merged or missing profile", n)
	}
}

// TestCustomersAreKnownPeople: the list and its count show known people by
// default; who=visitors shows the anonymous ones, who=all everyone.
func TestCustomersAreKnownPeople(t *testing.T) {
	e := start(t, profiles.Options{})
	s := seedShop(t, e)
	all := []string{s.jane, s.janet, s.sam}
	if a := e.list(t, ""); a.TotalItems != 3 || len(a.Items) != 3 || slices.Contains(ids(a), s.visitor) {
		t.Errorf("default list = %v (total %d), want the 3 known customers", ids(a), a.TotalItems)
	}
	if a := e.list(t, "who=visitors"); a.TotalItems != 1 || ids(a)[0] != s.visitor || a.Items[0].Known {
		t.Errorf("visitors = %+v", a)
	}
	if a := e.list(t, "who=all"); a.TotalItems != 4 {
		t.Errorf("all = %v", ids(a))
	}
	// A visitor who identifies becomes a customer.
	e.publish(t, ev(events.Identify, "website", e.clock.Now(), events.Identities{events.AnonymousID: "anon-visitor", events.Email: "vic@omni-shop.dev"}, nil, events.ChannelWeb))
	if a := e.list(t, ""); a.TotalItems != 4 || !slices.Contains(ids(a), s.visitor) {
		t.Errorf("after identify: %v", ids(a))
	}
	if a := e.list(t, "who=visitors"); a.TotalItems != 0 {
		t.Errorf("visitors after identify: %v", ids(a))
	}
	_ = all
	code, body := e.Do(t, "GET", "/api/v1/profiles?who=robots", nil, auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "who")
}

// TestListSortsAndFilters: each sort both ways, spend and last order in
// the rows, filters by segment, channel and consent, bad params name the
// parameter.
func TestListSortsAndFilters(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	e := start(t, profiles.Options{})
	s := seedShop(t, e)
	for sort, want := range map[string][]string{
		"-last_seen": {s.sam, s.janet, s.jane},
		"last_seen":  {s.jane, s.janet, s.sam},
		"-spend":     {s.janet, s.jane, s.sam},
		"spend":      {s.sam, s.jane, s.janet},
		"-orders":    {s.janet, s.jane, s.sam},
		"orders":     {s.jane, s.sam, s.janet}, // ties (1 order) break on id
		"name":       {s.jane, s.janet, s.sam},
		"-name":      {s.sam, s.janet, s.jane},
	} {
		got := ids(e.list(t, "sort="+sort))
		if sort == "orders" || sort == "-orders" { // jane and sam tie: their order is the id's
			if janet := map[string]int{"orders": 2, "-orders": 0}[sort]; got[janet] != s.janet || len(got) != 3 {
				t.Errorf("sort=%s: %v", sort, got)
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("sort=%s: %v, want %v", sort, got, want)
		}
	}
	a := e.list(t, "sort=-spend")
	top := a.Items[0]
	if top.Spend != 50 || top.Currency != "GBP" || top.OrdersCount != 2 || top.LastOrderAt == "" || top.LifetimeValue["GBP"] != 50 {
		t.Errorf("row shows spend %v %s, %d orders, last order %q", top.Spend, top.Currency, top.OrdersCount, top.LastOrderAt)
	}
	// Filters.
	if got := ids(e.list(t, "channel=pos")); !slices.Equal(got, []string{s.sam}) {
		t.Errorf("channel=pos: %v", got)
	}
	if got := ids(e.list(t, "channel=whatsapp")); !slices.Equal(got, []string{s.sam}) {
		t.Errorf("channel=whatsapp: %v", got)
	}
	if got := ids(e.list(t, "consent=email:subscribed")); !slices.Equal(got, []string{s.jane}) {
		t.Errorf("consent=email:subscribed: %v", got)
	}
	if a := e.list(t, "consent=email:unknown"); a.TotalItems != 2 {
		t.Errorf("consent=email:unknown: %v", ids(a))
	}
	seg := e.createSegment(t, "Two orders", `{"trait":"orders_count","op":"gte","value":2}`)
	if got := ids(e.list(t, "segment="+seg)); !slices.Equal(got, []string{s.janet}) {
		t.Errorf("segment: %v", got)
	}
	// Combined with search and paging: total is of the whole view.
	if a := e.list(t, "q=jan&sort=name&perPage=1&page=2"); a.TotalItems != 2 || len(a.Items) != 1 || a.Items[0].ID != s.janet {
		t.Errorf("paged search: %+v", a)
	}
	for _, c := range []struct{ q, field string }{
		{"sort=price", "sort"}, {"sort=-", "sort"}, {"consent=email", "consent"}, {"consent=fax:subscribed", "consent"},
		{"channel=Web%20Site", "channel"}, {"perPage=500", "perPage"}, {"page=0", "page"}, {"trait.a..b=1", "trait.a..b"},
	} {
		code, body := e.Do(t, "GET", "/api/v1/profiles?"+c.q, nil, auth(e.owner))
		omnitest.WantFieldError(t, code, body, 400, c.field)
	}
}

// TestExportCSV: the current view (filters, sort, search) as CSV, with its
// total in X-Total-Count; owners only.
func TestExportCSV(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	e := start(t, profiles.Options{})
	s := seedShop(t, e)
	e.addTag(t, e.owner, s.janet, "vip")
	e.addTag(t, e.owner, s.janet, "gift card")

	get := func(tok, query string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", e.URL+"/api/v1/profiles/export.csv?"+query, nil)
		req.Header.Set("Authorization", tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	res, body := get(e.owner, "sort=-spend")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") ||
		res.Header.Get("X-Total-Count") != "3" || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v %s", res.StatusCode, res.Header, body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || strings.Join(rows[0], ",") != "id,name,email,phone,known,first_seen,last_seen,orders,spend,currency,last_order_at,lifecycle_stage,buying_stage,channels,tags" {
		t.Fatalf("rows = %v", rows)
	}
	want := [][]string{{s.janet, "Janet Jones", "janet@omni-shop.dev", "50", "gift card; vip", "repeat"}, {s.jane, "Jane Doherty-Smith", "jane.doherty@omni-shop.dev", "30", "", "first_purchase"}, {s.sam, "Sam Adams", "", "10", "", "first_purchase"}}
	for i, w := range want {
		r := rows[i+1]
		if r[0] != w[0] || r[1] != w[1] || r[2] != w[2] || r[8] != w[3] || r[9] != "GBP" || r[14] != w[4] || r[12] != w[5] {
			t.Errorf("row %d = %v, want %v", i+1, r, w)
		}
	}
	if rows[3][3] != "+14155550199" {
		t.Errorf("phone cell = %q (must stay a phone number)", rows[3][3])
	}
	// The same view as the list: search and filters apply.
	res, body = get(e.owner, "q=jan&channel=web&sort=name")
	if rows, _ := csv.NewReader(strings.NewReader(string(body))).ReadAll(); res.Header.Get("X-Total-Count") != "2" || len(rows) != 3 || rows[1][0] != s.jane || rows[2][0] != s.janet {
		t.Errorf("filtered export: %s", body)
	}
	res, body = get(e.owner, "who=visitors")
	if rows, _ := csv.NewReader(strings.NewReader(string(body))).ReadAll(); len(rows) != 2 || rows[1][0] != s.visitor || rows[1][4] != "false" {
		t.Errorf("visitors export: %s", body)
	}
	// Agents may not take personal data in bulk; bad params are a 400.
	code, b := e.Do(t, "GET", "/api/v1/profiles/export.csv", nil, auth(e.agent))
	omnitest.WantError(t, code, b, 403)
	code, b = e.Do(t, "GET", "/api/v1/profiles/export.csv?sort=zip", nil, auth(e.owner))
	omnitest.WantFieldError(t, code, b, 400, "sort")
}

func (e *env) addTag(t *testing.T, tok, pid, tag string) []profiles.TagRow {
	t.Helper()
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+pid+"/tags", map[string]string{"tag": tag}, auth(tok))
	if code != 200 {
		t.Fatalf("add tag %q: %d %s", tag, code, body)
	}
	var a struct{ Items []profiles.TagRow }
	_ = json.Unmarshal(body, &a)
	return a.Items
}

func (e *env) addNote(t *testing.T, tok, pid, text string) profiles.NoteRow {
	t.Helper()
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+pid+"/notes", map[string]string{"text": text}, auth(tok))
	if code != 201 {
		t.Fatalf("add note: %d %s", code, body)
	}
	var n profiles.NoteRow
	_ = json.Unmarshal(body, &n)
	return n
}

// TestTagsAndNotes: staff tag a customer and write notes; tags feed
// segments at once; notes are on the timeline; both follow a merge, are
// in the GDPR export and go with an erasure.
func TestTagsAndNotes(t *testing.T) {
	e := start(t, profiles.Options{})
	s := seedShop(t, e)
	vip := e.createSegment(t, "VIP", `{"trait":"tags","op":"contains","value":"VIP"}`)

	// An agent tags Janet: she enters the segment with a segment.entered event.
	tags := e.addTag(t, e.agent, s.janet, "  VIP ")
	if len(tags) != 1 || tags[0].Tag != "vip" || tags[0].ByName == "" {
		t.Fatalf("tags = %+v", tags)
	}
	e.addTag(t, e.agent, s.janet, "vip") // again: no duplicate
	e.addTag(t, e.owner, s.jane, "wholesale")
	if n := e.members(t, vip); n != 1 {
		t.Fatalf("VIP members = %d after tagging", n)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.segEvents(t, events.SegmentEntered, vip) == 1 }, "segment.entered stored")
	var sug struct {
		Items []struct {
			Tag   string
			Count int
		}
	}
	e.get(t, "/api/v1/tags?q=w", &sug)
	if len(sug.Items) != 1 || sug.Items[0].Tag != "wholesale" || sug.Items[0].Count != 1 {
		t.Errorf("suggestions for w: %+v", sug)
	}
	// Bad input names the field; guests are refused; unknown profiles 404.
	for _, c := range []struct {
		body  any
		field string
	}{{map[string]string{"tag": " "}, "tag"}, {map[string]string{"tag": strings.Repeat("x", 51)}, "tag"}, {`[1]`, "body"}} {
		code, body := e.Do(t, "POST", "/api/v1/profiles/"+s.janet+"/tags", c.body, auth(e.agent))
		omnitest.WantFieldError(t, code, body, 400, c.field)
	}
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+s.janet+"/tags", map[string]string{"tag": "x"}, nil)
	omnitest.WantError(t, code, body, 401)
	code, body = e.Do(t, "POST", "/api/v1/profiles/nope/tags", map[string]string{"tag": "x"}, auth(e.agent))
	omnitest.WantError(t, code, body, 404)
	code, body = e.Do(t, "POST", "/api/v1/profiles/"+s.janet+"/notes", map[string]string{"text": "  "}, auth(e.agent))
	omnitest.WantFieldError(t, code, body, 400, "text")
	code, body = e.Do(t, "DELETE", "/api/v1/profiles/"+s.janet+"/tags/gold", nil, auth(e.agent))
	omnitest.WantError(t, code, body, 404)

	// Removing the tag takes her out of the segment.
	code, body = e.Do(t, "DELETE", "/api/v1/profiles/"+s.janet+"/tags/VIP", nil, auth(e.agent))
	if code != 200 || e.members(t, vip) != 0 {
		t.Fatalf("remove tag: %d %s, members %d", code, body, e.members(t, vip))
	}
	e.addTag(t, e.agent, s.janet, "vip")

	// Notes: who wrote it and when; on the timeline; only the author or an owner deletes.
	e.clock.Advance(time.Minute)
	n1 := e.addNote(t, e.agent, s.janet, "Called about a late parcel")
	if n1.AuthorName != "agent" && n1.AuthorName != "agent@omni-shop.dev" || n1.Created == "" || n1.ID == "" {
		t.Errorf("note = %+v", n1)
	}
	code, body = e.Do(t, "DELETE", "/api/v1/profiles/"+s.janet+"/notes/"+n1.ID, nil, auth(e.owner))
	if code != 204 {
		t.Fatalf("owner deletes agent's note: %d %s", code, body)
	}
	n2 := e.addNote(t, e.owner, s.janet, "Gift wrap every order")
	code, body = e.Do(t, "DELETE", "/api/v1/profiles/"+s.janet+"/notes/"+n2.ID, nil, auth(e.agent))
	omnitest.WantError(t, code, body, 403)
	var tl struct {
		Items []map[string]any `json:"items"`
	}
	e.get(t, "/api/v1/profiles/"+s.janet+"/timeline", &tl)
	if len(tl.Items) == 0 || tl.Items[0]["type"] != "note" || tl.Items[0]["text"] != "Gift wrap every order" || tl.Items[0]["author"] == "" || tl.Items[0]["at"] == "" {
		t.Fatalf("timeline head = %v", tl.Items)
	}
	e.get(t, "/api/v1/profiles/"+s.janet+"/timeline?type=order.placed", &tl)
	for _, it := range tl.Items {
		if it["type"] == "note" {
			t.Errorf("a type filter without note still shows notes")
		}
	}

	// A merge moves tags and notes to the survivor; search finds them there.
	e.publish(t, ev(events.MessageReceived, "whatsapp", e.clock.Now(), events.Identities{events.Email: "janet@omni-shop.dev", events.Phone: "+14155550199"}, nil, events.ChannelWhatsApp))
	survivor := e.profileOf(t, events.Email, "janet@omni-shop.dev")
	if survivor != e.profileOf(t, events.SquareCustomer, "SQCUST9") {
		t.Fatalf("Janet and Sam did not merge")
	}
	var tg struct{ Items []profiles.TagRow }
	e.get(t, "/api/v1/profiles/"+survivor+"/tags", &tg)
	var ns struct{ Items []profiles.NoteRow }
	e.get(t, "/api/v1/profiles/"+survivor+"/notes", &ns)
	if len(tg.Items) != 1 || tg.Items[0].Tag != "vip" || len(ns.Items) != 1 || ns.Items[0].Text != "Gift wrap every order" {
		t.Errorf("after merge: tags %+v notes %+v", tg.Items, ns.Items)
	}
	for _, q := range []string{"gift", "vip", "adams", "janet"} {
		if got := ids(e.list(t, "q="+q)); !slices.Equal(got, []string{survivor}) {
			t.Errorf("after merge %q finds %v, want the survivor", q, got)
		}
	}
	// GDPR export includes them; erasure deletes them.
	var x struct {
		Records map[string][]map[string]any `json:"records"`
	}
	code, body = e.Do(t, "POST", "/api/v1/profiles/"+survivor+"/export", nil, auth(e.owner))
	if code != 200 || json.Unmarshal(body, &x) != nil || len(x.Records["profile_tags"]) != 1 || len(x.Records["profile_notes"]) != 1 {
		t.Fatalf("export: %d records %v", code, x.Records)
	}
	if code, body := e.Do(t, "DELETE", "/api/v1/profiles/"+survivor, nil, auth(e.owner)); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	if n := e.count(t, "SELECT (SELECT COUNT(*) FROM profile_tags WHERE tag='vip') + (SELECT COUNT(*) FROM profile_notes)", nil); n != 0 {
		t.Errorf("%d tags/notes left after erasure", n)
	}
	if a := e.list(t, "q=gift"); a.TotalItems != 0 {
		t.Errorf("erased note text still found: %v", ids(a))
	}
}

// TestDashboardNewCustomersAreKnownPeople: the dashboard's "New customers"
// counts known people, not anonymous visitors.
func TestDashboardNewCustomersAreKnownPeople(t *testing.T) {
	mod := profiles.New(profiles.Options{Interval: -1})
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module { return []app.Module{mod, webui.New(nil)} }})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	batch := map[string]any{"batch": []map[string]any{
		{"type": "identify", "userId": "u1", "traits": map[string]any{"email": "kim@omni-shop.dev"}},
		{"type": "track", "event": "Order Completed", "userId": "u2", "properties": map[string]any{"total": 5, "currency": "EUR"}},
		{"type": "page", "name": "Home", "anonymousId": "a1"},
		{"type": "page", "name": "Home", "anonymousId": "a2"},
		{"type": "page", "name": "Home", "anonymousId": "a3"},
	}}
	if code, b := s.Track(t, "/v1/batch", batch); code != 200 {
		t.Fatalf("batch: %d %s", code, b)
	}
	s.WaitEvents(t, 5)
	var d webui.Dashboard
	omnitest.Eventually(t, 30*time.Second, func() bool {
		code, body := s.Do(t, "GET", "/api/v1/dashboard?range=today", nil, auth(owner))
		return code == 200 && json.Unmarshal(body, &d) == nil && d.NewProfiles != nil && *d.NewProfiles == 2
	}, "new customers = 2 (of 5 profiles, 3 of them visitors)")
}
