package render

// Shop is what templates know about the shop.
type Shop struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// CustomerFields are the customer variables every template can use, set
// (maybe to nothing) for every customer. Profile traits (custom
// properties sent by the shop's site or connectors) are there too, by
// their own names.
var CustomerFields = []string{
	"id", "first_name", "last_name", "name", "email", "phone", "city", "country", "timezone",
	"lifetime_value", "lifetime_value_by_currency", "average_order_value", "currency", "orders_count",
	"last_order_at", "first_seen", "last_seen", "lifecycle_stage", "buying_stage", "engagement_level", "preferred_channel",
}

// EventFields are the event variables: the event that triggered the send
// (a journey's trigger), or nothing for a message sent by hand.
var EventFields = []string{"id", "type", "name", "source", "occurred_at", "properties"}

// Vars builds the variables a template is rendered with. customer holds
// the profile's properties and computed traits (see CustomerFields);
// event the triggering event (type, name, properties, …) or nil.
// Documented names a customer or event lacks are set to nil, so
// {{ customer.first_name | default: "there" }} works for everyone.
func Vars(customer map[string]any, event map[string]any, shop Shop, unsubscribeURL, preferencesURL string) map[string]any {
	c := make(map[string]any, len(customer)+len(CustomerFields))
	for _, k := range CustomerFields {
		c[k] = nil
	}
	for k, v := range customer {
		c[k] = v
	}
	ev := make(map[string]any, len(EventFields))
	for _, k := range EventFields {
		ev[k] = nil
	}
	for k, v := range event {
		ev[k] = v
	}
	if ev["properties"] == nil {
		ev["properties"] = map[string]any{}
	}
	return map[string]any{
		"customer":        c,
		"event":           ev,
		"shop":            map[string]any{"name": shop.Name, "url": shop.URL},
		"unsubscribe_url": unsubscribeURL,
		"preferences_url": preferencesURL,
		"nps_url":         "", // the sender sets the customer's signed NPS survey link
	}
}

// CheckVars are the variables a template is checked against when it is
// saved, before any customer or event is known: every documented name,
// plus the given trait names (those the shop's profiles carry); the
// event's properties depend on the event, so any path below them passes.
func CheckVars(traitNames []string) map[string]any {
	c := map[string]any{}
	for _, k := range traitNames {
		c[k] = Any
	}
	v := Vars(c, map[string]any{"properties": Any}, Shop{}, "", "")
	return v
}
