package graph

import (
	"encoding/json"
	"fmt"
)

// Settings are a journey's rules around its runs, kept beside the graph.
type Settings struct {
	// Reentry: "once" (ever), "cooldown" (again after Cooldown since the
	// last entry) or "every_time" (default "once"). A customer never has
	// two active runs of one journey, whatever the setting.
	Reentry  string `json:"reentry,omitempty"`
	Cooldown string `json:"cooldown,omitempty"`
	// HoldDuringConversation holds marketing sends while the customer has
	// an open conversation with staff (default true; "false" to turn off).
	HoldDuringConversation *bool `json:"hold_during_conversation,omitempty"`
	// SkipAfterBadCSAT skips marketing sends for this long after the
	// customer gave a bad satisfaction score (default "14d"; "off").
	SkipAfterBadCSAT string `json:"skip_after_bad_csat,omitempty"`
}

// Defaults fills what is unset.
func (s *Settings) Defaults() {
	if s.Reentry == "" {
		s.Reentry = "once"
	}
	if s.HoldDuringConversation == nil {
		t := true
		s.HoldDuringConversation = &t
	}
	if s.SkipAfterBadCSAT == "" {
		s.SkipAfterBadCSAT = "14d"
	}
}

// ParseSettings decodes and checks settings (empty: the defaults).
func ParseSettings(raw []byte) (*Settings, Problems) {
	var s Settings
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, Problems{{Field: "settings", Message: "is not valid: " + err.Error()}}
		}
	}
	s.Defaults()
	var ps Problems
	switch s.Reentry {
	case "once", "every_time":
	case "cooldown":
		if _, err := ParseDuration(s.Cooldown); err != nil {
			ps = append(ps, Problem{Field: "settings.cooldown", Message: err.Error()})
		}
	default:
		ps = append(ps, Problem{Field: "settings.reentry", Message: fmt.Sprintf("%q: use once, cooldown or every_time", s.Reentry)})
	}
	if s.SkipAfterBadCSAT != "off" {
		if _, err := ParseDuration(s.SkipAfterBadCSAT); err != nil {
			ps = append(ps, Problem{Field: "settings.skip_after_bad_csat", Message: err.Error() + ` (or "off")`})
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return &s, nil
}
