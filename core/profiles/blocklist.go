package profiles

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/events"
)

// DefaultBlocklist is the built-in list of junk identifiers: placeholders
// that broken clients send instead of an id (Segment's suggested ^[0-]*$,
// "-1", "null", …) and addresses nobody reads: test and no-reply addresses
// and the domains reserved for documentation and testing by RFC 2606 and
// RFC 6761 (example.com/.net/.org and their subdomains, .test, .invalid,
// .example, .localhost). profiles.identity.default_blocklist: false turns
// it off.
var DefaultBlocklist = []string{
	"/^[0-]*$/", // 0, 000, 00000000-0000-0000-0000-000000000000
	"-1", "null", "nil", "none", "nan", "undefined", "anonymous",
	"test@test.com",
	"noreply@*", "no-reply@*", "donotreply@*", "do-not-reply@*",
	"*@example.com", "*@*.example.com", "*@example.net", "*@*.example.net", "*@example.org", "*@*.example.org",
	"*@*.test", "*@*.invalid", "*@*.example", "*@localhost", "*@*.localhost",
}

// Origins of blocklist entries, shown in the admin.
const (
	originDefault   = "default"
	originConfig    = "config"
	originAdmin     = "admin"
	originConnector = "connector:" // + connector name
)

// BlockEntry is one blocklist entry and where it comes from. Only "admin"
// entries (ID set) can be removed in the admin; the others come from the
// built-in list, omni.yaml or connector settings.
type BlockEntry struct {
	ID     string `json:"id,omitempty"`
	Entry  string `json:"entry"`
	Origin string `json:"origin"`
	Note   string `json:"note,omitempty"`
}

// blocklist matches identifiers that must never join people. It is
// immutable once built; the module swaps the whole list when an entry
// changes, so the hot path reads it without a lock.
type blocklist struct {
	entries []BlockEntry
	exact   map[string]string // lower-cased value → entry
	globs   []blockGlob
	regexps []blockRegexp
}

// blockGlob is an entry with *, kept as its lower-cased pieces: matching
// with string functions costs nanoseconds where a regexp per glob cost
// microseconds on every identity of every event.
type blockGlob struct {
	entry string
	parts []string // the text between the *s
}

func (g blockGlob) match(lower string) bool {
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(lower) < len(first)+len(last) || !strings.HasPrefix(lower, first) || !strings.HasSuffix(lower, last) {
		return false
	}
	rest := lower[len(first) : len(lower)-len(last)]
	for _, p := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

type blockRegexp struct {
	entry string
	re    *regexp.Regexp
}

// blocked returns the entry that blocks value ("" when none does).
func (bl *blocklist) blocked(value string) string {
	if bl == nil {
		return ""
	}
	lower := strings.ToLower(value)
	if e, ok := bl.exact[lower]; ok {
		return e
	}
	for _, g := range bl.globs {
		if g.match(lower) {
			return g.entry
		}
	}
	for _, r := range bl.regexps {
		if r.re.MatchString(value) {
			return r.entry
		}
	}
	return ""
}

// buildBlocklist compiles entries. An entry /…/ is a regular expression
// (RE2, as written: add (?i) to ignore case); an entry with * is a glob
// matched whole and ignoring case; anything else is an exact value,
// ignoring case, and a phone number also matches its E.164 form.
func buildBlocklist(entries []BlockEntry, norm events.Normalizer) (*blocklist, error) {
	bl := &blocklist{entries: entries, exact: map[string]string{}}
	for _, be := range entries {
		e := strings.TrimSpace(be.Entry)
		if err := config.CheckBlocklistEntry(e); err != nil {
			return nil, err
		}
		switch {
		case len(e) >= 2 && strings.HasPrefix(e, "/") && strings.HasSuffix(e, "/"):
			bl.regexps = append(bl.regexps, blockRegexp{e, regexp.MustCompile(e[1 : len(e)-1])}) // checked above
		case strings.Contains(e, "*"):
			bl.globs = append(bl.globs, blockGlob{e, strings.Split(strings.ToLower(e), "*")})
		default:
			bl.exact[strings.ToLower(e)] = e
			if looksLikePhone(e) {
				if p, ok := norm.Phone(e); ok {
					bl.exact[strings.ToLower(p)] = e
				}
			}
		}
	}
	return bl, nil
}

var phoneish = regexp.MustCompile(`^\+?[0-9 ().-]{7,}$`)

func looksLikePhone(s string) bool {
	return phoneish.MatchString(s) && strings.ContainsAny(s, "123456789")
}

// Blocklist lists the entries in force, in the order they are checked
// for display: built-in, omni.yaml, connector settings, admin.
func (m *Module) Blocklist() []BlockEntry {
	return append([]BlockEntry(nil), m.block.Load().entries...)
}

// reloadBlocklist rebuilds the list from the configuration, the connectors'
// settings and the owners' entries. It runs at start and whenever an owner
// or a connector's settings change; a failure keeps the previous list.
func (m *Module) reloadBlocklist(app core.App) error {
	var entries []BlockEntry
	if m.identity.DefaultBlocklist {
		for _, e := range DefaultBlocklist {
			entries = append(entries, BlockEntry{Entry: e, Origin: originDefault})
		}
	}
	for _, e := range m.identity.Blocklist {
		entries = append(entries, BlockEntry{Entry: strings.TrimSpace(e), Origin: originConfig})
	}
	entries = append(entries, m.shopIdentifiers(app)...)
	var rows []struct {
		ID    string `db:"id"`
		Entry string `db:"entry"`
		Note  string `db:"note"`
	}
	if err := app.DB().NewQuery("SELECT id, entry, note FROM profile_blocklist ORDER BY created, id").All(&rows); err != nil {
		return fmt.Errorf("load the identity blocklist: %w", err)
	}
	for _, r := range rows {
		entries = append(entries, BlockEntry{ID: r.ID, Entry: r.Entry, Origin: originAdmin, Note: r.Note})
	}
	bl, err := buildBlocklist(entries, events.Normalizer{DefaultRegion: m.defaultRegion})
	if err != nil {
		return fmt.Errorf("identity blocklist: %w", err)
	}
	m.block.Store(bl)
	return nil
}

// shopIdentifiers are the shop's own emails and phones found in connector
// settings: a clerk typing the store's phone or email for a walk-in buyer
// must not join every such buyer into one person. Profiles does not import
// the connector host; it reads the connectors collection (settings saved in
// the admin or with `omni connector configure`) and the connectors section
// of omni.yaml. A setting counts when its name ends in "email", "phone" or
// "phone_number" (e.g. Shopify's shop_email, WhatsApp's business_phone),
// it is not secret, and its value is an email address or a phone number.
func (m *Module) shopIdentifiers(app core.App) []BlockEntry {
	settings := map[string]map[string]string{} // connector → setting → value
	secret := map[string]bool{}                // connector\x00setting
	for name, kv := range m.fileConnectors {
		settings[name] = map[string]string{}
		for k, v := range kv {
			if s, ok := v.(string); ok {
				settings[name][k] = s
			}
		}
	}
	var rows []struct {
		Name   string `db:"name"`
		Config string `db:"config"`
		Schema string `db:"schema"`
	}
	// The collection belongs to the connector host; without it (a build
	// with no connectors) there is simply nothing to add.
	if err := app.DB().NewQuery("SELECT name, config, schema FROM connectors").All(&rows); err != nil {
		m.log.Debug("no connector settings to take shop identifiers from", "error", err)
	}
	for _, r := range rows {
		var cfg map[string]string
		var schema []struct {
			Name   string `json:"name"`
			Secret bool   `json:"secret"`
		}
		_ = json.Unmarshal([]byte(r.Config), &cfg)
		_ = json.Unmarshal([]byte(r.Schema), &schema)
		for _, f := range schema {
			if f.Secret {
				secret[r.Name+"\x00"+f.Name] = true
			}
		}
		if settings[r.Name] == nil {
			settings[r.Name] = map[string]string{}
		}
		for k, v := range cfg { // saved settings win over the file, as in the host
			settings[r.Name][k] = v
		}
	}
	norm := events.Normalizer{DefaultRegion: m.defaultRegion}
	var out []BlockEntry
	names := make([]string, 0, len(settings))
	for n := range settings {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		keys := make([]string, 0, len(settings[name]))
		for k := range settings[name] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := strings.TrimSpace(settings[name][k])
			lk := strings.ToLower(k)
			if v == "" || secret[name+"\x00"+k] || strings.HasPrefix(v, "enc:") {
				continue
			}
			switch {
			case strings.HasSuffix(lk, "email"):
				if e := events.NormalizeEmail(v); e != "" {
					out = append(out, BlockEntry{Entry: e, Origin: originConnector + name})
				}
			case strings.HasSuffix(lk, "phone") || strings.HasSuffix(lk, "phone_number"):
				if p, ok := norm.Phone(v); ok {
					out = append(out, BlockEntry{Entry: p, Origin: originConnector + name})
				}
			}
		}
	}
	return out
}
