package inbox

import "testing"

func TestParseScoreReadsOnlyAScore(t *testing.T) {
	for text, want := range map[string]int{
		"4": 4, " 5! ": 5, "3.": 3, "4/5": 4, "2 / 5": 2, "1 out of 5": 1, "⭐⭐⭐": 3, "★★★★★": 5, "⭐️⭐️": 2,
		"0": 0, "6": 0, "10": 0, "45": 0, "great": 0, "4 days late": 0, "⭐⭐⭐⭐⭐⭐": 0, "": 0, "5 stars but where is my refund": 0,
	} {
		if got := parseScore(text, false); got != want {
			t.Errorf("parseScore(%q) = %d, want %d", text, got, want)
		}
	}
	// An email reply's quoted history is not part of the answer.
	mail := "5\r\n\r\nOn Mon, 30 Nov 2026 at 09:00, Shop <help@omni-shop.dev> wrote:\r\n> How did we do? Reply with a number from 1 (bad) to 5 (great)."
	if got := parseScore(mail, true); got != 5 {
		t.Errorf("email answer = %d, want 5", got)
	}
	if got := parseScore("5\n> quoted\nBut also, my refund?", true); got != 0 {
		t.Errorf("an email with more words = %d, want 0", got)
	}
}
