package signedlink_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/signedlink"
)

func TestSurveyTokensRoundTripExpireAndRefuseForgeries(t *testing.T) {
	dir := t.TempDir()
	s, err := signedlink.Open(dir, "https://shop.omni-shop.dev/")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	u := s.SurveyURL(signedlink.SurveyNPS, "prof123", now.Add(time.Hour))
	tok, ok := strings.CutPrefix(u, "https://shop.omni-shop.dev/survey/")
	if !ok {
		t.Fatalf("url %q", u)
	}
	survey, subject, err := s.VerifySurvey(tok, now)
	if err != nil || survey != "nps" || subject != "prof123" {
		t.Fatalf("verify = %q %q %v", survey, subject, err)
	}
	if _, _, err := s.VerifySurvey(tok, now.Add(2*time.Hour)); !errors.Is(err, signedlink.ErrExpired) {
		t.Fatalf("an expired token: %v", err)
	}
	// The same key file signs the same way; another key does not.
	again, _ := signedlink.Open(dir, "https://shop.omni-shop.dev")
	if _, _, err := again.VerifySurvey(tok, now); err != nil {
		t.Fatalf("reopened signer: %v", err)
	}
	other, _ := signedlink.Open(t.TempDir(), "https://shop.omni-shop.dev")
	if _, _, err := other.VerifySurvey(tok, now); !errors.Is(err, signedlink.ErrInvalid) {
		t.Fatalf("another key: %v", err)
	}
	forged := s.SurveyToken(signedlink.SurveyNPS, "prof124", now.Add(time.Hour))
	p, _, _ := strings.Cut(tok, ".")
	_, sig, _ := strings.Cut(forged, ".")
	for _, bad := range []string{"", "x", p + "." + sig, tok + "x", "a.b.c"} {
		if _, _, err := s.VerifySurvey(bad, now); !errors.Is(err, signedlink.ErrInvalid) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
}
