package events

import (
	"fmt"
	"strconv"
)

// Bounds every event keeps, whatever its way in (tracking API, connector
// webhook, Emit, backfill). They keep one stored row from breaking the
// queries that read it: SQLite's JSON functions fail with "malformed JSON"
// on documents nested more than 1,000 deep, so one such row used to fail the
// dashboard for as long as it was in range.
const (
	// MaxDepth is how deeply objects and arrays may nest inside properties
	// or context.extra (the properties object itself is level 1).
	MaxDepth = 32
	// MaxKeys is how many keys one object (properties itself or any
	// object inside it) may have.
	MaxKeys = 500
	// MaxStringBytes bounds every string value.
	MaxStringBytes = 64 << 10
	// MaxNameLength bounds an event's name (a Segment track event name).
	MaxNameLength = 200
	// MaxIDLength bounds the event id and every identity value.
	MaxIDLength = 256
)

// checkBounds reports the first field that breaks a bound.
func (e *Event) checkBounds() error {
	if len(e.ID) > MaxIDLength {
		return &FieldError{"id", fmt.Sprintf("is longer than %d characters", MaxIDLength)}
	}
	if len(e.Name) > MaxNameLength {
		return &FieldError{"name", fmt.Sprintf("is longer than %d characters", MaxNameLength)}
	}
	for kind, v := range e.Identities {
		if len(v) > MaxIDLength {
			return &FieldError{"identities." + pathKey(kind), fmt.Sprintf("is longer than %d characters", MaxIDLength)}
		}
	}
	if err := CheckTree("properties", e.Properties); err != nil {
		return err
	}
	// A fixed list, not a map: this runs for every event.
	type str struct{ field, s string }
	c := &e.Context
	strs := make([]str, 0, 15)
	strs = append(strs, str{"context.channel", c.Channel}, str{"context.journey_run", c.JourneyRun}, str{"context.ip", c.IP},
		str{"context.user_agent", c.UserAgent}, str{"context.locale", c.Locale})
	if p := c.Page; p != nil {
		strs = append(strs, str{"context.page.url", p.URL}, str{"context.page.path", p.Path}, str{"context.page.title", p.Title},
			str{"context.page.referrer", p.Referrer}, str{"context.page.search", p.Search})
	}
	if cp := c.Campaign; cp != nil {
		strs = append(strs, str{"context.campaign.source", cp.Source}, str{"context.campaign.medium", cp.Medium},
			str{"context.campaign.name", cp.Name}, str{"context.campaign.term", cp.Term}, str{"context.campaign.content", cp.Content})
	}
	for _, f := range strs {
		if len(f.s) > MaxStringBytes {
			return tooLong(f.field)
		}
	}
	return CheckTree("context.extra", c.Extra)
}

// CheckTree checks a decoded JSON object against MaxDepth, MaxKeys and
// MaxStringBytes; the error names the offending field by its path, such
// as properties.a.b.c.
func CheckTree(field string, obj map[string]any) error {
	if obj == nil {
		return nil
	}
	if fe := walk(obj, 1); fe != nil {
		fe.Field = field + fe.Field
		return fe
	}
	return nil
}

// walk returns the first violation in v with its path relative to v (""
// for v itself, then ".key" or "[i]" segments). The path is built on the
// way back up, only when something is wrong: every stored event is walked,
// and almost all of them pass.
func walk(v any, depth int) *FieldError {
	switch x := v.(type) {
	case map[string]any:
		if depth > MaxDepth {
			return &FieldError{"", fmt.Sprintf("nesting deeper than %d levels", MaxDepth)}
		}
		if len(x) > MaxKeys {
			return &FieldError{"", fmt.Sprintf("has %d keys, more than %d", len(x), MaxKeys)}
		}
		for k, child := range x {
			if len(k) > MaxStringBytes {
				return &FieldError{"", fmt.Sprintf("has a key longer than %d KB", MaxStringBytes>>10)}
			}
			if fe := walk(child, depth+1); fe != nil {
				fe.Field = "." + pathKey(k) + fe.Field
				return fe
			}
		}
	case []any:
		if depth > MaxDepth {
			return &FieldError{"", fmt.Sprintf("nesting deeper than %d levels", MaxDepth)}
		}
		for i, child := range x {
			if fe := walk(child, depth+1); fe != nil {
				fe.Field = "[" + strconv.Itoa(i) + "]" + fe.Field
				return fe
			}
		}
	case string:
		if len(x) > MaxStringBytes {
			return tooLong("")
		}
	}
	return nil
}

func tooLong(field string) *FieldError {
	return &FieldError{field, fmt.Sprintf("is a string longer than %d KB", MaxStringBytes>>10)}
}

// pathKey shortens a key for an error's field path, so a huge key does not
// make a huge error message.
func pathKey(k string) string {
	const max = 64
	if len(k) <= max {
		return k
	}
	cut := max
	for cut > 0 && !utf8Start(k[cut]) {
		cut--
	}
	return k[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
