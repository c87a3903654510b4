package money

import "testing"

func TestParseDecimal(t *testing.T) {
	cases := []struct {
		in, cur string
		want    float64
		ok      bool
	}{
		{"598.94", "USD", 598.94, true},
		{"0.00", "USD", 0, true},
		{"1000", "JPY", 1000, true},
		{"1.2345", "KWD", 1.235, true},
		{"10.005", "USD", 10.01, true},
		{"-3.33", "USD", -3.33, true},
		{"abc", "USD", 0, false},
		{"", "USD", 0, false},
		{"1e3", "USD", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseDecimal(c.in, c.cur)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseDecimal(%q,%s) = %v,%v want %v,%v", c.in, c.cur, got, ok, c.want, c.ok)
		}
	}
}

func TestFromMinor(t *testing.T) {
	if got := FromMinor(550, "USD"); got != 5.5 {
		t.Fatalf("550 USD = %v", got)
	}
	if got := FromMinor(550, "JPY"); got != 550 {
		t.Fatalf("550 JPY = %v", got)
	}
	if got := FromMinor(1234, "BHD"); got != 1.234 {
		t.Fatalf("1234 BHD = %v", got)
	}
}
