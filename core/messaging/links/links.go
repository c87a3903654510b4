// Package links makes and checks the signed, per-customer links in
// messages that need no login: one-click unsubscribe (/p/u/{token}), the
// preference center (/p/prefs/{token}), and an email's open pixel
// (/p/o/{token}) and tracked links (/p/c/{token}).
//
// A token is "<key id>.<payload>.<signature>", all base64url: the payload
// names the purpose, the profile and (for unsubscribe) the channel; the
// signature is HMAC-SHA256 over key id and payload, cut to 128 bits to keep
// links short. Links do not expire (an unsubscribe link must work in a
// years-old email). The key id makes rotation possible: sign with a new key
// and keep accepting the old one with Accept.
package links

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/omni/omni/core/signedlink"
)

// ErrInvalid is every reason a token is refused (malformed, forged,
// signed by an unknown key): the pages say only that the link is not valid.
var ErrInvalid = errors.New("links: the link is not valid")

// Purposes in the payload.
const (
	purposeUnsubscribe = "u"
	purposePreferences = "p"
	purposeOpen        = "o"
	purposeClick       = "c"
)

// sigLen is the signature length in bytes.
const sigLen = 16

var b64 = base64.RawURLEncoding

// Signer signs and verifies link tokens.
type Signer struct {
	base    string            // public URL without a trailing slash
	current string            // key id used to sign
	keys    map[string][]byte // key id → key
}

// NewSigner returns a signer that signs with key (at least 32 bytes) and
// builds absolute links under publicURL (the shop's public_url).
func NewSigner(key []byte, publicURL string) *Signer {
	id := keyID(key)
	return &Signer{base: strings.TrimRight(publicURL, "/"), current: id, keys: map[string][]byte{id: key}}
}

// Accept also verifies tokens signed by an older key, after a rotation.
func (s *Signer) Accept(oldKey []byte) *Signer {
	s.keys[keyID(oldKey)] = oldKey
	return s
}

// keyID names a key without revealing it: the first 6 bytes of its hash.
func keyID(key []byte) string {
	h := sha256.Sum256(append([]byte("omni-links-key-id:"), key...))
	return b64.EncodeToString(h[:6])
}

// UnsubscribeURL is the one-click unsubscribe link for a channel's
// marketing (email, sms, whatsapp).
func (s *Signer) UnsubscribeURL(profileID, channel string) string {
	return s.base + "/p/u/" + s.token(purposeUnsubscribe+"|"+profileID+"|"+channel)
}

// PreferencesURL is the preference center link.
func (s *Signer) PreferencesURL(profileID string) string {
	return s.base + "/p/prefs/" + s.token(purposePreferences+"|"+profileID)
}

// OpenURL is the open pixel of one sent email (message is its id in the
// send ledger).
func (s *Signer) OpenURL(messageID, profileID string) string {
	return s.base + "/p/o/" + s.token(purposeOpen+"|"+messageID+"|"+profileID)
}

// ClickURL is a tracked link in one sent email: it leads to target. The
// target is inside the signed token, so the route cannot be made to
// redirect anywhere else (no open redirect).
func (s *Signer) ClickURL(messageID, profileID, target string) string {
	return s.base + "/p/c/" + s.token(purposeClick+"|"+messageID+"|"+profileID+"|"+target)
}

// Tracked is what an open pixel or tracked link names.
type Tracked struct {
	Click     bool   // a tracked link (else the open pixel)
	MessageID string // the send ledger's id
	ProfileID string
	Target    string // where a tracked link leads
}

// VerifyTracking checks an open pixel's or tracked link's token.
func (s *Signer) VerifyTracking(token string) (Tracked, error) {
	f, err := s.payload(token)
	if err != nil {
		return Tracked{}, err
	}
	switch {
	case len(f) == 3 && f[0] == purposeOpen && f[1] != "" && f[2] != "":
		return Tracked{MessageID: f[1], ProfileID: f[2]}, nil
	case len(f) >= 4 && f[0] == purposeClick && f[1] != "" && f[2] != "":
		// The target may itself hold "|".
		return Tracked{Click: true, MessageID: f[1], ProfileID: f[2], Target: strings.Join(f[3:], "|")}, nil
	}
	return Tracked{}, ErrInvalid
}

func (s *Signer) token(payload string) string {
	p := b64.EncodeToString([]byte(payload))
	return s.current + "." + p + "." + b64.EncodeToString(s.sign(s.keys[s.current], s.current, p))
}

func (s *Signer) sign(key []byte, id, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + payload))
	return m.Sum(nil)[:sigLen]
}

// Verify checks a token from either kind of link and returns the profile
// and, for an unsubscribe link, the channel ("" for a preferences link).
func (s *Signer) Verify(token string) (profileID, channel string, err error) {
	f, err := s.payload(token)
	if err != nil {
		return "", "", err
	}
	switch {
	case len(f) == 3 && f[0] == purposeUnsubscribe && f[1] != "" && f[2] != "":
		return f[1], f[2], nil
	case len(f) == 2 && f[0] == purposePreferences && f[1] != "":
		return f[1], "", nil
	}
	return "", "", ErrInvalid
}

// payload checks a token's signature and returns its payload's fields.
func (s *Signer) payload(token string) ([]string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrInvalid
	}
	key, ok := s.keys[parts[0]]
	if !ok {
		return nil, ErrInvalid
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.sign(key, parts[0], parts[1])) {
		return nil, ErrInvalid
	}
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, ErrInvalid
	}
	return strings.Split(string(raw), "|"), nil
}

// KeyFile is the key's file name in the data dir (signedlink owns it:
// survey links are signed with a key derived from the same one).
const KeyFile = signedlink.KeyFile

// LoadOrCreateKey reads the signing key from dataDir, making a random one
// the first time (signedlink.LoadOrCreateKey).
func LoadOrCreateKey(dataDir string) ([]byte, error) { return signedlink.LoadOrCreateKey(dataDir) }

// NPSURL is the customer's NPS survey link ({{ nps_url }}), valid for
// signedlink.NPSValidFor from now.
func (s *Signer) NPSURL(profileID string, now time.Time) string {
	return s.SurveyURL(signedlink.SurveyNPS, profileID, now.Add(signedlink.NPSValidFor))
}

// SurveyURL is a signed, expiring survey page link under the same public
// URL and key (signedlink), e.g. the NPS link in templates ({{ nps_url }}).
func (s *Signer) SurveyURL(survey, subject string, expires time.Time) string {
	return signedlink.New(s.keys[s.current], s.base).SurveyURL(survey, subject, expires)
}

// Open returns the signer for a running Omni: the key from dataDir (made on
// first use) and links under publicURL (config.PublicBaseURL()).
func Open(dataDir, publicURL string) (*Signer, error) {
	key, err := LoadOrCreateKey(dataDir)
	if err != nil {
		return nil, err
	}
	return NewSigner(key, publicURL), nil
}
