package inbox

import (
	"testing"
	"time"
)

// An agent's reply is sent as typed; an owner's Liquid text (a bot rule,
// the away message) is rendered by the gate for the customer.
func TestLiquidRepliesAreRenderedByTheGate(t *testing.T) {
	typed := sendRequest(&Message{ID: "m1", Text: "{{ not a template }}"}, "whatsapp", "")
	bot := sendRequest(&Message{ID: "m2", Text: "Hi {{ first_name }}", Send: map[string]any{"liquid": true}}, "whatsapp", "")
	if !typed.Raw || bot.Raw || bot.Body != "Hi {{ first_name }}" || bot.Kind != "conversation" {
		t.Fatalf("typed raw=%v, bot raw=%v body=%q kind=%q", typed.Raw, bot.Raw, bot.Body, bot.Kind)
	}
}

// Keywords match whole words and phrases, whatever the case and
// punctuation.
func TestKeywordsMatchWholeWords(t *testing.T) {
	for text, want := range map[string]bool{
		"Hi, WHERE is my order?!": true,
		"where is my order":       true,
		"where is my orders":      false,
		"somewhere is my order":   false,
		"where  is\nmy order.":    true,
	} {
		if _, got := matchesAny(normalize(text), []string{"where is my order"}); got != want {
			t.Errorf("%q matched %v, want %v", text, got, want)
		}
	}
}

func TestBusinessHours(t *testing.T) {
	raw := []byte(`{"timezone": "Europe/London", "week": {"mon": [{"from": "09:00", "to": "17:30"}]},
		"channels": {"whatsapp": {"week": {"mon": [{"from": "08:00", "to": "24:00"}]}}}}`)
	v, err := checkHours(raw)
	if err != nil {
		t.Fatal(err)
	}
	h := v.(Hours)
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	at := func(hh, mm int) time.Time { return time.Date(2026, 11, 30, hh, mm, 0, 0, london) } // a Monday
	cases := []struct {
		ch   string
		t    time.Time
		want bool
	}{
		{"email", at(8, 59), false}, {"email", at(9, 0), true}, {"email", at(17, 29), true}, {"email", at(17, 30), false},
		{"whatsapp", at(8, 0), true}, {"whatsapp", at(23, 59), true}, {"email", time.Date(2026, 12, 1, 10, 0, 0, 0, london), false},
	}
	for _, c := range cases {
		if got := h.Open(c.ch, c.t); got != c.want {
			t.Errorf("%s at %s open=%v, want %v", c.ch, c.t, got, c.want)
		}
	}
	if !(Hours{}).Open("email", at(3, 0)) {
		t.Error("no hours set should mean always open")
	}
}
