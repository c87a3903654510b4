package profiles

import (
	"testing"

	"github.com/omni/omni/core/events"
)

func BenchmarkBlocked(b *testing.B) {
	var entries []BlockEntry
	for _, e := range DefaultBlocklist {
		entries = append(entries, BlockEntry{Entry: e})
	}
	bl, err := buildBlocklist(entries, events.Normalizer{DefaultRegion: "US"})
	if err != nil {
		b.Fatal(err)
	}
	vals := []string{"jane.doe@gmail.com", "+14155552671", "anon-7f3a9c2e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if bl.blocked(vals[i%3]) != "" {
			b.Fatal("blocked")
		}
	}
}

// Globs match the whole value, ignoring case, with * standing for any
// run of characters (also none); exact entries ignore case and a phone
// entry matches its E.164 form; regular expressions match as written.
func TestBlocklistMatching(t *testing.T) {
	var entries []BlockEntry
	for _, e := range append(DefaultBlocklist, "*@*mail*.co", "(415) 555-0100", "/^Guest-[0-9]+$/") {
		entries = append(entries, BlockEntry{Entry: e})
	}
	bl, err := buildBlocklist(entries, events.Normalizer{DefaultRegion: "US"})
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]string{
		"0": "/^[0-]*$/", "00000000-0000-0000-0000-000000000000": "/^[0-]*$/", "-1": "-1", "NULL": "null", "Undefined": "undefined",
		"Test@Test.com": "test@test.com", "NoReply@shop.com": "noreply@*", "jane@example.com": "*@example.com",
		"jane@mail.example.org": "*@*.example.org", "a@shop.test": "*@*.test", "root@localhost": "*@localhost",
		"x@hotmail.co": "*@*mail*.co", "x@mail.co": "*@*mail*.co", "+14155550100": "(415) 555-0100", "Guest-12": "/^Guest-[0-9]+$/",
		"jane@gmail.com": "", "jane@example.com.au": "", "jane@notexample.com": "", "+14155550101": "", "guest-12": "", "10": "",
		"example.com": "", "a@test": "", "x@ma.co": "", "anon-00": "",
	} {
		if got := bl.blocked(v); got != want {
			t.Errorf("%q blocked by %q, want %q", v, got, want)
		}
	}
}
