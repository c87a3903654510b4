package whatsapp

import "strings"

// Opt-out and opt-in keywords (compared case-insensitively on the whole
// trimmed message, inner spaces, dashes and underscores ignored). These are
// the carrier-style keywords customers type; WhatsApp itself also reports
// marketing opt-outs through user_preferences notifications.
var (
	stopKeywords  = []string{"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke", "stoppromotions"}
	startKeywords = []string{"start", "unstop", "subscribe", "optin", "resume"}
)

// consentKeyword returns "unsubscribed", "subscribed" or "".
func consentKeyword(text string) string {
	t := strings.ToLower(strings.TrimSpace(text))
	if len(t) == 0 || len(t) > 20 {
		return ""
	}
	t = strings.TrimRight(t, ".!")
	t = strings.NewReplacer(" ", "", "-", "", "_", "").Replace(t)
	for _, k := range stopKeywords {
		if t == k {
			return "unsubscribed"
		}
	}
	for _, k := range startKeywords {
		if t == k {
			return "subscribed"
		}
	}
	return ""
}
