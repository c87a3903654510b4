package metrics_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/cli"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/metrics"
)

// TestSettingsDefaultsAndValidation: staff read every key with its
// default and the base currency in force; owners change them; a bad value
// is a 400 naming its field; agents may not write.
func TestSettingsDefaultsAndValidation(t *testing.T) {
	s := startShop(t, "")
	var got metrics.SettingsAnswer
	code, body := s.Do(t, "GET", "/api/v1/metrics/settings", nil, auth(s.agent))
	if code != 200 {
		t.Fatalf("GET settings as an agent: %d %s", code, body)
	}
	s.get(t, "/api/v1/metrics/settings", &got)
	if a := got.Settings["attribution"].(map[string]any); a["lookback_days"] != 7.0 || a["half_life_days"] != 7.0 || a["position_first"] != 0.4 || a["position_last"] != 0.4 {
		t.Errorf("attribution defaults: %v", a)
	}
	if got.Settings["inbox"].(map[string]any)["fcr_days"] != 3.0 || got.Settings["funnels"].(map[string]any)["abandon_hours"] != 24.0 {
		t.Errorf("defaults: %v", got.Settings)
	}
	if got.Currency.Base != "" || got.Currency.From != "" {
		t.Errorf("base currency before any: %+v", got.Currency)
	}

	for _, c := range []struct {
		key, body, field string
		status           int
	}{
		{"currency", `{"base":"EURO"}`, "base", 400},
		{"currency", `{"base":"EUR","rates":{"USD":0}}`, "rates.USD", 400},
		{"currency", `{"base":"EUR","rates":{"US":1}}`, "rates", 400},
		{"currency", `{"base":"EUR","rates":{"USD":"x"}}`, "rates", 400},
		{"attribution", `{"lookback_days":91}`, "lookback_days", 400},
		{"attribution", `{"half_life_days":0}`, "half_life_days", 400},
		{"attribution", `{"position_first":0.7,"position_last":0.4}`, "position_last", 400},
		{"attribution", `{"lookback":7}`, "lookback", 400},
		{"inbox", `{"fcr_days":0}`, "fcr_days", 400},
		{"funnels", `{"abandon_hours":-1}`, "abandon_hours", 400},
		{"planets", `{}`, "key", 400},
	} {
		code, body := s.Do(t, "PUT", "/api/v1/metrics/settings/"+c.key, c.body, auth(s.owner))
		omnitest.WantFieldError(t, code, body, c.status, c.field)
	}
	if code, _ := s.Do(t, "PUT", "/api/v1/metrics/settings/inbox", `{"fcr_days":5}`, auth(s.agent)); code != 403 {
		t.Errorf("agent PUT: %d", code)
	}

	s.putSetting(t, "attribution", map[string]any{"lookback_days": 14, "half_life_days": 3.5})
	prev := s.job(t)
	s.putSetting(t, "currency", map[string]any{"base": "gbp", "rates": map[string]any{"eur": 0.85}})
	s.waitJob(t, prev)
	s.get(t, "/api/v1/metrics/settings", &got)
	a := got.Settings["attribution"].(map[string]any)
	// Unset fields keep their defaults.
	if a["lookback_days"] != 14.0 || a["half_life_days"] != 3.5 || a["position_first"] != 0.4 {
		t.Errorf("attribution after PUT: %v", a)
	}
	if got.Currency.Base != "GBP" || got.Currency.From != "settings" || got.Currency.Rates["EUR"] != 0.85 {
		t.Errorf("currency after PUT: %+v", got.Currency)
	}
}

// TestRebuildCommand: `omni metrics rebuild` refuses while a server holds
// the data dir, and on a stopped one replays the events into the same
// rollups the server kept.
func TestRebuildCommand(t *testing.T) {
	s := startShop(t, "")
	prev := s.job(t)
	s.putSetting(t, "currency", map[string]any{"base": "EUR", "rates": map[string]any{"USD": 0.5}})
	s.waitJob(t, prev)
	// Two days ago at 10:00, so both orders (an hour apart) fall on one day
	// whatever the time the test runs.
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour).Add(10 * time.Hour)
	s.publish(t,
		order(events.OrderPlaced, "shopify", "fay@omni-shop.dev", at, events.ChannelWeb, map[string]any{"order_id": "3001", "total": 12.5, "currency": "EUR"}),
		order(events.OrderPlaced, "shopify", "fay@omni-shop.dev", at.Add(time.Hour), events.ChannelWeb, map[string]any{"order_id": "3002", "total": 7, "currency": "USD"}),
		order(events.OrderRefunded, "shopify", "fay@omni-shop.dev", at.Add(2*time.Hour), "", map[string]any{"order_id": "3001", "total": 2.5, "currency": "EUR"}),
	)
	want := s.daily(t)
	if !strings.Contains(want, `orders `+at.Format("2006-01-02")+` "" "" 16 2`) { // 12.5 + 7 × 0.5
		t.Fatalf("rollups before the rebuild:\n%s", want)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Main(append([]string{"--data-dir", s.dataDir}, args...), &out, &errb, metrics.Extension(metrics.Options{}))
		return code, out.String(), errb.String()
	}
	code, _, stderr := run("metrics", "rebuild")
	if code != 2 || !strings.Contains(stderr, "in use by") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("rebuild beside a server: exit %d, %q", code, stderr)
	}
	if code, _, stderr := run("metrics", "rebuild", "now"); code != 2 || !strings.Contains(stderr, "takes no arguments") {
		t.Errorf("rebuild now: exit %d, %q", code, stderr)
	}
	s.Stop()
	code, stdout, stderr := run("metrics", "rebuild")
	if code != 0 || !strings.Contains(stdout, "metrics rebuilt from") || !strings.Contains(stdout, "3 order facts, 1 buying customers") ||
		!strings.Contains(stderr, "100%") {
		t.Fatalf("rebuild: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	s2 := startShop(t, s.dataDir)
	if got := s2.daily(t); got != want {
		t.Errorf("after the rebuild:\n%s\nwant\n%s", got, want)
	}
}
