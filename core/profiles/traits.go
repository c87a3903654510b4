package profiles

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
)

// timeLayout is how computed traits store times: fixed width, so string
// comparison in SQL orders them correctly.
const timeLayout = "2006-01-02T15:04:05.000Z"

// dbTime is PocketBase's date column layout (events.occurred_at, profile dates).
const dbTime = "2006-01-02 15:04:05.000Z"

func fmtT(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseT(s string) time.Time {
	if s == "" {
		return time.Time{} // never set (a failed parse costs two errors)
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		t, _ = time.Parse(time.RFC3339Nano, s)
	}
	return t
}

func fmtDB(s string) string {
	if s == "" {
		return ""
	}
	return parseT(s).Format(dbTime)
}

// Lifecycle stages and engagement levels (see docs/profiles.md).
const (
	StageAwareness     = "awareness"
	StageConsideration = "consideration"
	StagePurchase      = "purchase"
	StagePostPurchase  = "post_purchase"
	StageLoyal         = "loyal"

	// Buying stages: the words a shop owner uses (New → Browsing → First
	// purchase → Repeat → Loyal → At risk), derived alongside the
	// lifecycle stage, which stays as it was so saved segment rules on
	// lifecycle_stage keep their meaning.
	BuyingNew           = "new"
	BuyingBrowsing      = "browsing"
	BuyingFirstPurchase = "first_purchase"
	BuyingRepeat        = "repeat"
	BuyingLoyal         = "loyal"
	BuyingAtRisk        = "at_risk"

	EngagementHigh    = "highly_engaged"
	EngagementNormal  = "engaged"
	EngagementLess    = "less_engaged"
	EngagementDormant = "dormant"
)

const (
	day            = 24 * time.Hour
	loyalWindow    = 365 * day
	loyalOrders    = 2
	purchaseWindow = 30 * day
	atRiskAfter    = 90 * day // no order for this long: a buyer is at risk
	// buyingLoyalOrders within loyalWindow make a loyal buyer; two are a
	// repeat buyer (lifecycle_stage's loyal, two, is kept for its rules).
	buyingLoyalOrders = 3
	activeWindow      = 30 * day
	highRecency       = 7 * day
	highActiveDays    = 3
	engagedRecency    = 30 * day
	lessRecency       = 90 * day
	maxRecentOrders   = 50
	maxActiveDayList  = 31
)

// Computed holds the traits derived from a profile's events. Counters are
// kept incrementally; the derived fields are refreshed by derive.
type Computed struct {
	FirstSeen             string             `json:"first_seen,omitempty"`
	LastSeen              string             `json:"last_seen,omitempty"`
	OrdersCount           int                `json:"orders_count"`
	LifetimeValue         map[string]float64 `json:"lifetime_value,omitempty"`
	OrdersByCurrency      map[string]int     `json:"orders_by_currency,omitempty"`
	AverageOrderValue     map[string]float64 `json:"average_order_value,omitempty"`
	LifetimeValueBase     *float64           `json:"lifetime_value_base,omitempty"`
	AverageOrderValueBase *float64           `json:"average_order_value_base,omitempty"`
	BaseCurrency          string             `json:"base_currency,omitempty"`
	Unconverted           []string           `json:"unconverted_currencies,omitempty"`
	LastOrderAt           string             `json:"last_order_at,omitempty"`
	RecentOrders          []string           `json:"recent_orders,omitempty"`
	Channels              []string           `json:"channels,omitempty"`
	PreferredChannel      string             `json:"preferred_channel,omitempty"`
	LastTwoWayAt          string             `json:"last_two_way_at,omitempty"`
	ActiveDays            []string           `json:"active_days,omitempty"`
	Identified            bool               `json:"identified,omitempty"`
	Checkout              bool               `json:"checkout_started,omitempty"`
	LifecycleStage        string             `json:"lifecycle_stage"`
	BuyingStage           string             `json:"buying_stage,omitempty"`
	EngagementLevel       string             `json:"engagement_level"`
}

// Currency settings for base-currency figures.
type Currency struct {
	Base  string
	Rates map[string]float64 // value of one unit in Base
}

// outbound message statuses say nothing about the customer's activity.
func customerActivity(typ string) bool {
	switch typ {
	case events.MessageSent, events.MessageDelivered, events.MessageFailed:
		return false
	}
	return !systemType(typ)
}

// systemType marks Omni's own derived events, which never feed traits or
// segments (so segment events cannot loop, and entering a journey is not
// customer activity).
func systemType(typ string) bool {
	return strings.HasPrefix(typ, "segment.") || strings.HasPrefix(typ, "profile.") || strings.HasPrefix(typ, "journey.")
}

// amount reads an order's money value from the usual property names.
func amount(props map[string]any, keys ...string) (float64, bool) {
	for _, k := range keys {
		switch v := props[k].(type) {
		case float64:
			return v, true
		case int:
			return float64(v), true
		case int64:
			return float64(v), true
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f, true
			}
		}
	}
	return 0, false
}

func (c *Computed) currency(props map[string]any, cur Currency) string {
	if s, ok := props["currency"].(string); ok && strings.TrimSpace(s) != "" {
		return strings.ToUpper(strings.TrimSpace(s))
	}
	if cur.Base != "" {
		return cur.Base
	}
	return "USD"
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// twoWayChannel says on which channel an event shows the customer talking
// back, if it does.
func twoWayChannel(ev *events.Event) string {
	switch ev.Type {
	case events.MessageReceived, events.SurveyAnswered:
		if ev.Context.Channel != "" {
			return ev.Context.Channel
		}
		if _, ok := ev.Identities[events.WhatsAppID]; ok {
			return events.ChannelWhatsApp
		}
		return ""
	case events.EmailClicked, events.EmailOpened:
		return events.ChannelEmail
	}
	return ""
}

// apply folds one event into the counters.
func (c *Computed) apply(ev *events.Event, cur Currency) {
	t := fmtT(ev.OccurredAt)
	if customerActivity(ev.Type) && ev.Source != SourceStaff { // staff acting for a customer is not the customer's visit
		if c.FirstSeen == "" || t < c.FirstSeen {
			c.FirstSeen = t
		}
		if t > c.LastSeen {
			c.LastSeen = t
		}
		d := t[:10]
		if !slices.Contains(c.ActiveDays, d) {
			c.ActiveDays = append(c.ActiveDays, d)
			slices.Sort(c.ActiveDays)
			if len(c.ActiveDays) > maxActiveDayList {
				c.ActiveDays = c.ActiveDays[len(c.ActiveDays)-maxActiveDayList:]
			}
		}
	}
	if ch := ev.Context.Channel; ch != "" && !slices.Contains(c.Channels, ch) {
		c.Channels = append(c.Channels, ch)
		slices.Sort(c.Channels)
	}
	if ch := twoWayChannel(ev); ch != "" && t >= c.LastTwoWayAt {
		c.LastTwoWayAt = t
		c.PreferredChannel = ch
	}
	switch ev.Type {
	case events.OrderPlaced:
		c.OrdersCount++
		cc := c.currency(ev.Properties, cur)
		if v, ok := amount(ev.Properties, "total", "revenue", "value", "amount"); ok {
			if c.LifetimeValue == nil {
				c.LifetimeValue = map[string]float64{}
			}
			c.LifetimeValue[cc] = round2(c.LifetimeValue[cc] + v)
		}
		if c.OrdersByCurrency == nil {
			c.OrdersByCurrency = map[string]int{}
		}
		c.OrdersByCurrency[cc]++
		if t > c.LastOrderAt {
			c.LastOrderAt = t
		}
		c.RecentOrders = append(c.RecentOrders, t)
		slices.Sort(c.RecentOrders)
		if len(c.RecentOrders) > maxRecentOrders {
			c.RecentOrders = c.RecentOrders[len(c.RecentOrders)-maxRecentOrders:]
		}
	case events.OrderRefunded:
		if v, ok := amount(ev.Properties, "total", "refund", "amount", "revenue", "value"); ok {
			cc := c.currency(ev.Properties, cur)
			if c.LifetimeValue == nil {
				c.LifetimeValue = map[string]float64{}
			}
			c.LifetimeValue[cc] = round2(c.LifetimeValue[cc] - math.Abs(v))
		}
	case events.CheckoutStarted, events.CheckoutUpdated:
		c.Checkout = true
	}
}

// mergeFrom folds a merged profile's counters into c.
func (c *Computed) mergeFrom(o *Computed) {
	if o.FirstSeen != "" && (c.FirstSeen == "" || o.FirstSeen < c.FirstSeen) {
		c.FirstSeen = o.FirstSeen
	}
	if o.LastSeen > c.LastSeen {
		c.LastSeen = o.LastSeen
	}
	c.OrdersCount += o.OrdersCount
	for k, v := range o.LifetimeValue {
		if c.LifetimeValue == nil {
			c.LifetimeValue = map[string]float64{}
		}
		c.LifetimeValue[k] = round2(c.LifetimeValue[k] + v)
	}
	for k, v := range o.OrdersByCurrency {
		if c.OrdersByCurrency == nil {
			c.OrdersByCurrency = map[string]int{}
		}
		c.OrdersByCurrency[k] += v
	}
	if o.LastOrderAt > c.LastOrderAt {
		c.LastOrderAt = o.LastOrderAt
	}
	c.RecentOrders = append(c.RecentOrders, o.RecentOrders...)
	slices.Sort(c.RecentOrders)
	if len(c.RecentOrders) > maxRecentOrders {
		c.RecentOrders = c.RecentOrders[len(c.RecentOrders)-maxRecentOrders:]
	}
	for _, ch := range o.Channels {
		if !slices.Contains(c.Channels, ch) {
			c.Channels = append(c.Channels, ch)
		}
	}
	slices.Sort(c.Channels)
	if o.LastTwoWayAt > c.LastTwoWayAt {
		c.LastTwoWayAt, c.PreferredChannel = o.LastTwoWayAt, o.PreferredChannel
	}
	for _, d := range o.ActiveDays {
		if !slices.Contains(c.ActiveDays, d) {
			c.ActiveDays = append(c.ActiveDays, d)
		}
	}
	slices.Sort(c.ActiveDays)
	if len(c.ActiveDays) > maxActiveDayList {
		c.ActiveDays = c.ActiveDays[len(c.ActiveDays)-maxActiveDayList:]
	}
	c.Identified = c.Identified || o.Identified
	c.Checkout = c.Checkout || o.Checkout
}

// derive refreshes the figures that depend on the counters and on the
// clock, and returns when they next change by the passage of time alone
// (zero when never).
func (c *Computed) derive(now time.Time, cur Currency) time.Time {
	c.AverageOrderValue = nil
	for k, v := range c.LifetimeValue {
		if n := c.OrdersByCurrency[k]; n > 0 {
			if c.AverageOrderValue == nil {
				c.AverageOrderValue = map[string]float64{}
			}
			c.AverageOrderValue[k] = round2(v / float64(n))
		}
	}
	c.LifetimeValueBase, c.AverageOrderValueBase, c.BaseCurrency, c.Unconverted = nil, nil, "", nil
	if cur.Base != "" {
		var total float64
		for k, v := range c.LifetimeValue {
			rate := 1.0
			if k != cur.Base {
				r, ok := cur.Rates[k]
				if !ok {
					c.Unconverted = append(c.Unconverted, k)
					continue
				}
				rate = r
			}
			total += v * rate
		}
		slices.Sort(c.Unconverted)
		total = round2(total)
		c.LifetimeValueBase, c.BaseCurrency = &total, cur.Base
		if c.OrdersCount > 0 {
			aov := round2(total / float64(c.OrdersCount))
			c.AverageOrderValueBase = &aov
		}
	}

	var due time.Time
	later := func(t time.Time) {
		if t.After(now) && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	// Lifecycle.
	var inYear []time.Time
	for _, s := range c.RecentOrders {
		if t := parseT(s); now.Sub(t) < loyalWindow {
			inYear = append(inYear, t)
		}
	}
	lastOrder := parseT(c.LastOrderAt)
	switch {
	case len(inYear) >= loyalOrders:
		c.LifecycleStage = StageLoyal
		// Loyal until the second most recent order leaves the window.
		later(inYear[len(inYear)-loyalOrders].Add(loyalWindow))
	case c.OrdersCount > 0 && now.Sub(lastOrder) < purchaseWindow:
		c.LifecycleStage = StagePurchase
		later(lastOrder.Add(purchaseWindow))
	case c.OrdersCount > 0:
		c.LifecycleStage = StagePostPurchase
	case c.Identified || c.Checkout:
		c.LifecycleStage = StageConsideration
	default:
		c.LifecycleStage = StageAwareness
	}
	c.BuyingStage = buyingStage(c.LifecycleStage, c.OrdersCount, len(inYear), lastOrder, now)
	if c.OrdersCount > 0 {
		later(lastOrder.Add(atRiskAfter))
	}
	if len(inYear) >= buyingLoyalOrders {
		later(inYear[len(inYear)-buyingLoyalOrders].Add(loyalWindow))
	}
	// Keep only the year of orders the rule needs.
	if len(c.RecentOrders) > 0 {
		cut := fmtT(now.Add(-loyalWindow))
		i := 0
		for i < len(c.RecentOrders)-1 && c.RecentOrders[i] < cut {
			i++
		}
		c.RecentOrders = c.RecentOrders[i:]
	}
	// Engagement.
	lastSeen := parseT(c.LastSeen)
	active := 0
	cutDay := now.Add(-activeWindow).UTC().Format("2006-01-02")
	for _, d := range c.ActiveDays {
		if d > cutDay {
			active++
		}
	}
	since := now.Sub(lastSeen)
	switch {
	case c.LastSeen == "":
		c.EngagementLevel = EngagementDormant
	case since < highRecency && active >= highActiveDays:
		c.EngagementLevel = EngagementHigh
		later(lastSeen.Add(highRecency))
		// the oldest counted day leaving the window can drop the level
		for _, d := range c.ActiveDays {
			if d > cutDay {
				t, _ := time.Parse("2006-01-02", d)
				later(t.Add(activeWindow + day))
				break
			}
		}
	case since < engagedRecency:
		c.EngagementLevel = EngagementNormal
		later(lastSeen.Add(engagedRecency))
	case since < lessRecency:
		c.EngagementLevel = EngagementLess
		later(lastSeen.Add(lessRecency))
	default:
		c.EngagementLevel = EngagementDormant
	}
	return due
}

// buyingStage says where a customer is, in a shop owner's words: three
// orders within a year are loyal; another buyer is at risk after
// atRiskAfter without an order, else a first-time or a repeat buyer;
// before any order, browsing once known (or at a checkout), else new.
func buyingStage(lifecycle string, orders, ordersInYear int, lastOrder, now time.Time) string {
	switch {
	case ordersInYear >= buyingLoyalOrders:
		return BuyingLoyal
	case orders > 0 && now.Sub(lastOrder) >= atRiskAfter:
		return BuyingAtRisk
	case orders > 1:
		return BuyingRepeat
	case orders == 1:
		return BuyingFirstPurchase
	case lifecycle == StageConsideration:
		return BuyingBrowsing
	}
	return BuyingNew
}
