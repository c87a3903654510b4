// Package signedlink makes and checks signed, expiring links that need no
// login (the survey page's), and owns the data dir's link key that
// messaging's unsubscribe links use too. It is infrastructure: messaging
// (which puts an NPS link in templates) and the inbox (which asks for CSAT
// and serves the page) agree on the signature without importing each
// other.
//
// A survey token is "<payload>.<signature>", both base64url: the payload is
// "s|<survey>|<subject>|<expiry unix>" (subject: the conversation for CSAT,
// the profile for NPS); the signature is HMAC-SHA256 with a key derived
// from the link key for this purpose only, cut to 128 bits.
package signedlink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Errors a token can have. The pages tell the two apart: a forged link
// is "not valid", an old one "has expired".
var (
	ErrInvalid = errors.New("signedlink: the link is not valid")
	ErrExpired = errors.New("signedlink: the link has expired")
)

// KeyFile is the link key's file name in the data dir. It lives beside the
// database so backups carry it and links already sent keep working after a
// restore.
const KeyFile = "messaging_links.key"

const sigLen = 16

var b64 = base64.RawURLEncoding

// LoadOrCreateKey reads the link key from dataDir, making a random one
// (readable by the owner only) the first time. The key is never logged.
func LoadOrCreateKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, KeyFile)
	if b, err := os.ReadFile(path); err == nil {
		key, derr := b64.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) < 32 {
			return nil, fmt.Errorf("links: %s is damaged; restore it from a backup (or delete it to make a new key, which breaks links already sent)", path)
		}
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("links: read the key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // made by a concurrent start: use theirs
		return LoadOrCreateKey(dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("links: write the key: %w", err)
	}
	if _, err := f.WriteString(b64.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("links: write the key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("links: write the key: %w", err)
	}
	return key, nil
}

// Surveys a link can answer.
const (
	SurveyCSAT = "csat" // subject: the conversation; scores 1–5
	SurveyNPS  = "nps"  // subject: the profile; scores 0–10
)

// NPSValidFor is how long an NPS link in a message stays answerable.
const NPSValidFor = 30 * 24 * time.Hour

// Signer signs and checks survey links.
type Signer struct {
	base string // public URL without a trailing slash
	key  []byte // derived for survey links only
}

// New returns a signer for links under publicURL, keyed by the link key.
func New(linkKey []byte, publicURL string) *Signer {
	m := hmac.New(sha256.New, linkKey)
	m.Write([]byte("omni-survey-links"))
	return &Signer{base: strings.TrimRight(publicURL, "/"), key: m.Sum(nil)}
}

// Open returns the signer of a running Omni: the key from dataDir (made on
// first use), links under publicURL (config.PublicBaseURL()).
func Open(dataDir, publicURL string) (*Signer, error) {
	key, err := LoadOrCreateKey(dataDir)
	if err != nil {
		return nil, err
	}
	return New(key, publicURL), nil
}

// SurveyURL is the page where the customer answers survey about subject,
// valid until expires: <public_url>/survey/<token>.
func (s *Signer) SurveyURL(survey, subject string, expires time.Time) string {
	return s.base + "/survey/" + s.SurveyToken(survey, subject, expires)
}

// SurveyToken is the token of SurveyURL.
func (s *Signer) SurveyToken(survey, subject string, expires time.Time) string {
	p := b64.EncodeToString([]byte("s|" + survey + "|" + subject + "|" + strconv.FormatInt(expires.Unix(), 10)))
	return p + "." + b64.EncodeToString(s.sign(p))
}

func (s *Signer) sign(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)[:sigLen]
}

// VerifySurvey checks a survey token at now and returns what it names.
func (s *Signer) VerifySurvey(token string, now time.Time) (survey, subject string, err error) {
	p, sig, ok := strings.Cut(token, ".")
	if !ok {
		return "", "", ErrInvalid
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.sign(p)) {
		return "", "", ErrInvalid
	}
	raw, err := b64.DecodeString(p)
	if err != nil {
		return "", "", ErrInvalid
	}
	f := strings.Split(string(raw), "|")
	if len(f) != 4 || f[0] != "s" || (f[1] != SurveyCSAT && f[1] != SurveyNPS) || f[2] == "" {
		return "", "", ErrInvalid
	}
	exp, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return "", "", ErrInvalid
	}
	if now.Unix() > exp {
		return f[1], f[2], ErrExpired
	}
	return f[1], f[2], nil
}
