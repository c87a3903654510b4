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
	c := &e.Context
	strs := map[string]string{"context.channel": c.Channel, "context.journey_run": c.JourneyRun, "context.ip": c.IP,
		"context.user_agent": c.UserAgent, "context.locale": c.Locale}
	if p := c.Page; p != nil {
		strs["context.page.url"], strs["context.page.path"], strs["context.page.title"] = p.URL, p.Path, p.Title
		strs["context.page.referrer"], strs["context.page.search"] = p.Referrer, p.Search
	}
	if cp := c.Campaign; cp != nil {
		strs["context.campaign.source"], strs["context.campaign.medium"], strs["context.campaign.name"] = cp.Source, cp.Medium, cp.Name
		strs["context.campaign.term"], strs["context.campaign.content"] = cp.Term, cp.Content
	}
	for field, s := range strs {
		if len(s) > MaxStringBytes {
			return tooLong(field)
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
	return walk(field, obj, 1)
}

func walk(path string, v any, depth int) error {
	switch x := v.(type) {
	case map[string]any:
		if depth > MaxDepth {
			return &FieldError{path, fmt.Sprintf("nesting deeper than %d levels", MaxDepth)}
		}
		if len(x) > MaxKeys {
			return &FieldError{path, fmt.Sprintf("has %d keys, more than %d", len(x), MaxKeys)}
		}
		for k, child := range x {
			if len(k) > MaxStringBytes {
				return &FieldError{path, fmt.Sprintf("has a key longer than %d KB", MaxStringBytes>>10)}
			}
			if err := walk(path+"."+pathKey(k), child, depth+1); err != nil {
				return err
			}
		}
	case []any:
		if depth > MaxDepth {
			return &FieldError{path, fmt.Sprintf("nesting deeper than %d levels", MaxDepth)}
		}
		for i, child := range x {
			if err := walk(path+"["+strconv.Itoa(i)+"]", child, depth+1); err != nil {
				return err
			}
		}
	case string:
		if len(x) > MaxStringBytes {
			return tooLong(path)
		}
	}
	return nil
}

func tooLong(field string) error {
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
