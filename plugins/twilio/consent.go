package twilio

import "strings"

// Keyword replies, as Twilio's Advanced Opt-Out treats them by default.
// A keyword counts only as the whole message (case and surrounding
// spaces or punctuation ignored): "stop texting me about my order" is a
// message for the inbox, not an opt-out, exactly as at Twilio.
const (
	optOut  = "STOP"
	optIn   = "START"
	optHelp = "HELP"
)

var keywords = map[string]string{
	"STOP": optOut, "STOPALL": optOut, "UNSUBSCRIBE": optOut, "CANCEL": optOut,
	"END": optOut, "QUIT": optOut, "OPTOUT": optOut, "REVOKE": optOut,
	"START": optIn, "YES": optIn, "UNSTOP": optIn,
	"HELP": optHelp, "INFO": optHelp,
}

// optOutType is STOP, START, HELP or "". Twilio's own OptOutType (sent
// when Advanced Opt-Out is on, and reflecting the account's custom
// keywords) wins over matching the text here.
func optOutType(twilioType, body string) string {
	switch t := strings.ToUpper(strings.TrimSpace(twilioType)); t {
	case optOut, optIn, optHelp:
		return t
	}
	w := strings.ToUpper(strings.Trim(strings.TrimSpace(body), ".!?"))
	if len(w) > 20 {
		return ""
	}
	return keywords[w]
}
