package events

import (
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Normalizer canonicalises identities so the same person always produces
// the same identity values whatever channel they came from.
type Normalizer struct {
	// DefaultRegion is used for phone numbers written without a country code.
	DefaultRegion string
}

// Normalize lower-cases and trims emails, turns phones into E.164 and
// drops empty identities. An unparseable phone is moved into
// properties.invalid_phone rather than failing the whole event.
func (n Normalizer) Normalize(e *Event) {
	for kind, v := range e.Identities {
		v = strings.TrimSpace(v)
		switch kind {
		case Email:
			v = NormalizeEmail(v)
		case Phone:
			p, ok := n.Phone(v)
			if !ok && v != "" {
				if e.Properties == nil {
					e.Properties = map[string]any{}
				}
				e.Properties["invalid_phone"] = v
			}
			v = p
		}
		if v == "" {
			delete(e.Identities, kind)
			continue
		}
		e.Identities[kind] = v
	}
	if e.Context.Channel != "" {
		e.Context.Channel = strings.ToLower(strings.TrimSpace(e.Context.Channel))
	}
	e.Type = strings.ToLower(strings.TrimSpace(e.Type))
	if e.OccurredAt.IsZero() {
		e.OccurredAt = e.ReceivedAt
	}
	e.OccurredAt = e.OccurredAt.UTC()
	e.ReceivedAt = e.ReceivedAt.UTC()
}

// NormalizeEmail returns the canonical form of an email address, or "" when
// it is not one.
func NormalizeEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n") {
		return ""
	}
	return s
}

// Phone returns the E.164 form of a phone number and whether it parsed as a
// possible number.
func (n Normalizer) Phone(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	region := n.DefaultRegion
	if region == "" {
		region = "US"
	}
	// WhatsApp ids and some vendors send international numbers without "+".
	if !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "0") && len(digits(s)) > 10 {
		if num, err := phonenumbers.Parse("+"+digits(s), ""); err == nil && phonenumbers.IsPossibleNumber(num) {
			return phonenumbers.Format(num, phonenumbers.E164), true
		}
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", false
	}
	return phonenumbers.Format(num, phonenumbers.E164), true
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
