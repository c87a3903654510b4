package connectors

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/spf13/cobra"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
)

// encPrefix marks an encrypted config value: "enc:v1:" + base64(nonce|ciphertext).
const encPrefix = "enc:v1:"

// Masked is what secret values look like in API responses and logs.
const Masked = "********"

// LegacyKeyFile is where keys were generated before they moved out of the
// data dir (<data_dir>/connectors.key); OpenSealer moves one it finds.
const LegacyKeyFile = "connectors.key"

// Sealer encrypts connector secrets at rest with AES-256-GCM.
type Sealer struct{ aead cipher.AEAD }

// KeyError is a problem with the secrets key that the operator must solve;
// it names the settings involved and counts as a configuration error.
func KeyError(problem string) error {
	return &config.Error{Key: "secret_key_file / OMNI_SECRET_KEY", Problem: problem}
}

// OpenSealer returns the sealer for cfg and checks it against the data:
//   - secret_key (OMNI_SECRET_KEY), when set, is the key;
//   - otherwise the key in cfg.SecretKeyPath(), generated there on first
//     start; a key left in the data dir by an older version is moved there;
//   - when the data holds encrypted settings, the key must decrypt them. A
//     data dir restored from a backup on another machine has no key (the
//     backup never carries it), and Omni says so instead of generating a
//     new key that would open nothing.
func OpenSealer(app core.App, cfg *config.Config, log *slog.Logger) (*Sealer, error) {
	keyPath := cfg.SecretKeyPath()
	if err := moveLegacyKey(cfg.DataDir, keyPath, log); err != nil {
		return nil, err
	}
	sealedName, sealedField, sealedVal, err := firstSealed(app)
	if err != nil {
		return nil, err
	}
	var s *Sealer
	if cfg.SecretKey != "" {
		s, err = LoadKey(cfg.SecretKey, "")
	} else {
		if _, statErr := os.Stat(keyPath); errors.Is(statErr, os.ErrNotExist) && sealedVal != "" {
			return nil, KeyError(fmt.Sprintf("the data holds encrypted connector settings but there is no key at %s (a backup of data_dir does not contain it): copy the key file of the install the data came from to %s, or set OMNI_SECRET_KEY to its secret_key; if that key is lost, run `omni connector forget-secrets` and enter the settings again", keyPath, keyPath))
		}
		var created bool
		s, created, err = loadOrCreateKey(keyPath)
		if created {
			log.Warn("generated the key that encrypts connector secrets; back it up separately from data_dir, which does not contain it", "secret_key_file", keyPath)
		}
	}
	if err != nil {
		return nil, err
	}
	if sealedVal != "" {
		if _, err := s.Open(sealedVal, sealedName+"."+sealedField); err != nil {
			from := "the key in " + keyPath
			if cfg.SecretKey != "" {
				from = "secret_key (OMNI_SECRET_KEY)"
			}
			return nil, KeyError(fmt.Sprintf("%s does not decrypt the connector settings in the data (%s.%s; restored from another install?): use that install's key file or secret_key, or if it is lost run `omni connector forget-secrets` and enter the settings again", from, sealedName, sealedField))
		}
	}
	return s, nil
}

// LoadKey returns the sealer for configured (any string, hashed to 32
// bytes) or, when that is empty, the key in keyFile, created if missing.
func LoadKey(configured, keyFile string) (*Sealer, error) {
	if configured != "" {
		sum := sha256.Sum256([]byte(configured))
		return newSealer(sum[:])
	}
	s, _, err := loadOrCreateKey(keyFile)
	return s, err
}

func loadOrCreateKey(path string) (*Sealer, bool, error) {
	key, err := readKeyFile(path)
	if err == nil {
		s, err := newSealer(key)
		return s, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	if err := writeKeyFile(path, key); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Another process starting at the same moment wrote it first.
			s, _, err := loadOrCreateKey(path)
			return s, false, err
		}
		return nil, false, KeyError(fmt.Sprintf("cannot create the key file %s: %v (choose a writable place outside data_dir, or set OMNI_SECRET_KEY)", path, errors.Unwrap(err)))
	}
	s, err := newSealer(key)
	return s, true, err
}

func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, KeyError(fmt.Sprintf("cannot read the key file: %v", err))
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, KeyError(fmt.Sprintf("the key file %s is corrupt (want 64 hex characters)", path))
	}
	return key, nil
}

// writeKeyFile creates path with the key, readable by its owner only, and
// syncs it: losing it loses every connector secret. O_EXCL: two processes
// starting at once must not both write.
func writeKeyFile(path string, key []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// moveLegacyKey moves <dataDir>/connectors.key to keyPath, once: the new
// file is written and synced before the old one is removed, so a crash in
// between leaves a key in both places, never in none.
func moveLegacyKey(dataDir, keyPath string, log *slog.Logger) error {
	legacy := filepath.Join(dataDir, LegacyKeyFile)
	old, err := readKeyFile(legacy)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cur, err := readKeyFile(keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := writeKeyFile(keyPath, old); err != nil {
			return KeyError(fmt.Sprintf("cannot move the key out of data_dir (%s) to %s: %v (choose a writable place outside data_dir, or set OMNI_SECRET_KEY)", legacy, keyPath, err))
		}
	case err != nil:
		return err
	case !bytes.Equal(cur, old):
		return KeyError(fmt.Sprintf("two different keys: %s (left by an older Omni) and %s; keep the one that decrypts your connector settings at %s and delete the other", legacy, keyPath, keyPath))
	}
	if err := os.Remove(legacy); err != nil {
		return KeyError(fmt.Sprintf("moved the key to %s but cannot remove %s, which backups would carry: %v", keyPath, legacy, err))
	}
	log.Warn("moved the key that encrypts connector secrets out of data_dir, so backups no longer carry it; back it up separately", "from", legacy, "secret_key_file", keyPath)
	return nil
}

// firstSealed finds one encrypted setting, to check the key against.
func firstSealed(app core.App) (name, field, val string, err error) {
	var rows []struct {
		Name   string `db:"name"`
		Config string `db:"config"`
	}
	err = app.DB().NewQuery("SELECT name, config FROM " + Collection + " WHERE config LIKE {:p} ORDER BY name").
		Bind(dbx.Params{"p": "%" + encPrefix + "%"}).All(&rows)
	if err != nil {
		return "", "", "", fmt.Errorf("read connector settings: %w", err)
	}
	for _, r := range rows {
		var cfg map[string]string
		if json.Unmarshal([]byte(r.Config), &cfg) != nil {
			continue
		}
		keys := make([]string, 0, len(cfg))
		for k := range cfg {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if IsSealed(cfg[k]) {
				return r.Name, k, cfg[k], nil
			}
		}
	}
	return "", "", "", nil
}

// ForgetSecrets removes every encrypted connector setting, for when the
// key is lost: they cannot be decrypted any more, and while they are there
// Omni refuses to start with another key. Returns how many were removed.
func ForgetSecrets(app core.App) (int, error) {
	recs, err := app.FindAllRecords(Collection)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		stored := storedConfig(rec)
		before := len(stored)
		for k, v := range stored {
			if IsSealed(v) {
				delete(stored, k)
			}
		}
		if len(stored) == before {
			continue
		}
		n += before - len(stored)
		rec.Set("config", stored)
		if err := SaveSettings(app, rec); err != nil {
			return n, err
		}
	}
	return n, nil
}

// forgetSecretsCmd is the way out when the key is lost for good.
func forgetSecretsCmd(env *app.Env) *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "forget-secrets --yes",
		Short: "Remove every encrypted connector setting (when the key that decrypts them is lost)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if !yes {
				return errors.New("forget-secrets removes every encrypted connector setting for good; run it with --yes if the key that decrypts them is lost")
			}
			o, err := env.OpenApp()
			if err != nil {
				return err
			}
			defer o.PB.ResetBootstrapState()
			n, err := ForgetSecrets(o.PB)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "removed %d encrypted connector settings; enter them again with `omni connector configure` or the web admin\n", n)
			return nil
		},
	}
	c.Flags().BoolVar(&yes, "yes", false, "really remove them")
	return c
}

func newSealer(key []byte) (*Sealer, error) {
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
		return "", errors.New("cannot decrypt (was the key changed? see secret_key_file / OMNI_SECRET_KEY)")
	}
	return string(plain), nil
}

// IsSealed reports whether val is an encrypted value.
func IsSealed(val string) bool { return strings.HasPrefix(val, encPrefix) }
