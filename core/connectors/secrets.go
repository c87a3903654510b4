package connectors

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// encPrefix marks an encrypted config value: "enc:v1:" + base64(nonce|ciphertext).
const encPrefix = "enc:v1:"

// Masked is what secret values look like in API responses and logs.
const Masked = "********"

// KeyFile is where the generated secret key lives in the data dir.
const KeyFile = "connectors.key"

// Sealer encrypts connector secrets at rest with AES-256-GCM.
type Sealer struct{ aead cipher.AEAD }

// LoadKey returns the sealing key: from configured (any string, hashed to
// 32 bytes) or from <dataDir>/connectors.key, created on first use.
func LoadKey(configured, dataDir string) (*Sealer, error) {
	var key []byte
	if configured != "" {
		sum := sha256.Sum256([]byte(configured))
		key = sum[:]
	} else {
		path := filepath.Join(dataDir, KeyFile)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			key, err = hex.DecodeString(strings.TrimSpace(string(b)))
			if err != nil || len(key) != 32 {
				return nil, fmt.Errorf("secret key file %s is corrupt (want 64 hex characters)", path)
			}
		case errors.Is(err, os.ErrNotExist):
			key = make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(dataDir, 0o750); err != nil {
				return nil, err
			}
			// O_EXCL: two processes starting at once must not both write.
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				if errors.Is(err, os.ErrExist) {
					return LoadKey("", dataDir)
				}
				return nil, fmt.Errorf("write secret key: %w", err)
			}
			_, err = f.WriteString(hex.EncodeToString(key) + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("write secret key: %w", err)
			}
		default:
			return nil, fmt.Errorf("read secret key: %w", err)
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts one value; aad binds it to its connector and field so a
// ciphertext cannot be moved to another field.
func (s *Sealer) Seal(plain, aad string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), []byte(aad))
	return encPrefix + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal; values without the prefix are
// returned as they are (settings that are not secret).
func (s *Sealer) Open(val, aad string) (string, error) {
	if !IsSealed(val) {
		return val, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(val, encPrefix))
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("encrypted value is corrupt")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(aad))
	if err != nil {
		return "", errors.New("cannot decrypt (was secret_key changed?)")
	}
	return string(plain), nil
}

// IsSealed reports whether val is an encrypted value.
func IsSealed(val string) bool { return strings.HasPrefix(val, encPrefix) }
