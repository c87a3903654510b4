package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/security"
)

// Source kinds, after Segment's client/server split. A browser source's
// write key is public (it ships in page source), so its events are not
// trusted to grant consent or speak for another source; a server source
// authenticates with a secret key and is trusted like a connector.
const (
	KindBrowser = "browser"
	KindServer  = "server"
)

// Key prefixes make keys recognisable in configs and snippets, and tell
// the two kinds apart before any lookup.
const (
	writeKeyPrefix  = "wk_"
	secretKeyPrefix = "sk_"
)

// reservedSourceNames cannot name a source: "omni" is the source of the
// events Omni derives itself (profile.erased, segment.entered, …), which
// connectors and modules act on; "staff" of changes staff make in the admin
// (a consent ledger entry names who made it only for that source); "chat"
// of the website chat widget's messages, which the inbox trusts as the
// visitor's ("webchat" is its outbox).
var reservedSourceNames = map[string]bool{"omni": true, "staff": true, "customer": true, "chat": true, "webchat": true}

// NewWriteKey returns a fresh random write key (browser sources).
func NewWriteKey() string { return writeKeyPrefix + security.RandomString(32) }

// NewSecretKey returns a fresh random secret key (server sources).
func NewSecretKey() string { return secretKeyPrefix + security.RandomString(40) }

// keyHash is what is stored of a secret key, and what the key cache is
// keyed by. Keys are 40 random characters, so a fast hash is enough.
func keyHash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// RegisterSourceHooks checks every source saved, whether from the CLI, the
// web admin, the REST API or /_/: a default kind and a write key for
// browser sources, no write key for server sources, no reserved or
// connector names, and no change of kind (a browser source's public key
// must never become trusted).
func RegisterSourceHooks(app core.App) {
	app.OnRecordCreate("sources").BindFunc(func(e *core.RecordEvent) error {
		r := e.Record
		r.Set("name", strings.TrimSpace(r.GetString("name")))
		if r.GetString("kind") == "" {
			r.Set("kind", KindBrowser)
		}
		if err := checkSourceName(e.App, r.GetString("name")); err != nil {
			return validation.Errors{"name": err}
		}
		switch r.GetString("kind") {
		case KindServer:
			r.Set("write_key", "")
			if r.GetString("secret_hash") == "" {
				return validation.Errors{"kind": validation.NewError("validation_server_source",
					"server sources are created with POST /api/v1/sources or `omni source create --kind server`, which show the secret key once")}
			}
		case KindBrowser:
			r.Set("secret_hash", "")
			if r.GetString("write_key") == "" {
				r.Set("write_key", NewWriteKey())
			}
		}
		return e.Next()
	})
	app.OnRecordUpdate("sources").BindFunc(func(e *core.RecordEvent) error {
		r, old := e.Record, e.Record.Original()
		if was := old.GetString("kind"); was != "" && r.GetString("kind") != was {
			return validation.Errors{"kind": validation.NewError("validation_kind_fixed",
				"cannot be changed; create a new source of the other kind")}
		}
		if name := strings.TrimSpace(r.GetString("name")); name != old.GetString("name") {
			r.Set("name", name)
			if err := checkSourceName(e.App, name); err != nil {
				return validation.Errors{"name": err}
			}
		}
		if r.GetString("kind") == KindServer {
			r.Set("write_key", "")
		}
		return e.Next()
	})
}

// checkSourceName refuses names that would let a source speak as Omni or as
// a connector: events carry the source name, and consent, vendor traits and
// bus subjects are keyed by it.
func checkSourceName(app core.App, name string) error {
	if reservedSourceNames[strings.ToLower(name)] {
		return validation.NewError("validation_reserved_name", fmt.Sprintf("%q is reserved for events Omni makes itself", name))
	}
	if _, err := app.FindCollectionByNameOrId("connectors"); err == nil {
		var n int
		_ = app.DB().NewQuery("SELECT COUNT(*) FROM connectors WHERE lower(name) = lower({:n})").Bind(dbx.Params{"n": name}).Row(&n)
		if n > 0 {
			return validation.NewError("validation_connector_name", fmt.Sprintf("%q is the name of a connector; choose another name", name))
		}
	}
	return nil
}

// NewSource is a created source with its key. SecretKey is set only for
// server sources and exists only here: Omni keeps its hash.
type NewSource struct {
	Record    *core.Record
	WriteKey  string
	SecretKey string
}

// InputError is a problem with what the caller asked for (bad kind, empty
// or taken name), as opposed to a failure to store it.
type InputError struct {
	Field, Message string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// CreateSource adds a source of kind (browser when empty).
func CreateSource(app core.App, name, kind string) (*NewSource, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, &InputError{"name", "must not be empty"}
	}
	if kind == "" {
		kind = KindBrowser
	}
	if kind != KindBrowser && kind != KindServer {
		return nil, &InputError{"kind", fmt.Sprintf("%q is not a source kind (browser or server)", kind)}
	}
	col, err := app.FindCollectionByNameOrId("sources")
	if err != nil {
		return nil, err
	}
	if existing, _ := app.FindFirstRecordByData(col, "name", name); existing != nil {
		return nil, &InputError{"name", fmt.Sprintf("a source named %q already exists", name)}
	}
	if err := checkSourceName(app, name); err != nil {
		return nil, &InputError{"name", err.Error()}
	}
	out := &NewSource{Record: core.NewRecord(col)}
	out.Record.Set("name", name)
	out.Record.Set("kind", kind)
	if kind == KindServer {
		out.SecretKey = NewSecretKey()
		out.Record.Set("secret_hash", keyHash(out.SecretKey))
	} else {
		out.WriteKey = NewWriteKey()
		out.Record.Set("write_key", out.WriteKey)
	}
	if err := app.Save(out.Record); err != nil {
		return nil, err
	}
	return out, nil
}

// sourceByKey finds the enabled source a write key or secret key belongs to.
func sourceByKey(app core.App, key string) (*core.Record, error) {
	unknown := errors.New("unknown write key")
	var recs []*core.Record
	var err error
	if strings.HasPrefix(key, secretKeyPrefix) {
		h := keyHash(key)
		recs, err = app.FindRecordsByFilter("sources", "secret_hash = {:h} && kind = 'server'", "", 1, 0, dbx.Params{"h": h})
		if err != nil || len(recs) == 0 || subtle.ConstantTimeCompare([]byte(recs[0].GetString("secret_hash")), []byte(h)) != 1 {
			return nil, unknown
		}
	} else {
		if !strings.HasPrefix(key, writeKeyPrefix) && len(key) < 8 {
			return nil, unknown
		}
		recs, err = app.FindRecordsByFilter("sources", "write_key = {:k} && kind != 'server'", "", 1, 0, dbx.Params{"k": key})
		// The index lookup is exact; compare again in constant time anyway.
		if err != nil || len(recs) == 0 || subtle.ConstantTimeCompare([]byte(recs[0].GetString("write_key")), []byte(key)) != 1 {
			return nil, unknown
		}
	}
	if recs[0].GetBool("disabled") {
		return nil, errors.New("source is disabled")
	}
	return recs[0], nil
}
