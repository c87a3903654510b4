package config

import (
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

const masked = "********"

// IsSecretKey reports whether a setting's name says it holds a secret, so
// printing and logging can mask it.
func IsSecretKey(name string) bool {
	n := strings.ToLower(name)
	if strings.HasSuffix(n, "_file") {
		return false // a path to a secret, not the secret (secret_key_file)
	}
	for _, s := range []string{"secret", "password", "token", "credentials", "api_key", "apikey", "private", "signature_key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// Masked returns the configuration as a nested map, secrets replaced.
func (c *Config) Masked() map[string]any {
	flat := map[string]any{
		"http":                    c.HTTP,
		"data_dir":                c.DataDir,
		"plugins_dir":             c.PluginsDir,
		"durability":              c.Durability,
		"role":                    c.Role,
		"secret_key":              c.SecretKey,
		"secret_key_file":         c.SecretKeyPath(),
		"log.level":               c.Log.Level,
		"log.format":              c.Log.Format,
		"bus.embedded":            c.Bus.Embedded,
		"bus.url":                 c.Bus.URL,
		"bus.credentials":         c.Bus.Credentials,
		"bus.listen":              c.Bus.Listen,
		"bus.store_dir":           c.NATSStoreDir(),
		"bus.max_store_mb":        c.Bus.MaxStoreMB,
		"bus.max_memory_mb":       c.Bus.MaxMemoryMB,
		"bus.dedupe_window":       c.Bus.DedupeWindow.String(),
		"bus.max_age":             c.Bus.MaxAge.String(),
		"bus.replicas":            c.Bus.Replicas,
		"ingest.max_batch_bytes":  c.Ingest.MaxBatchBytes,
		"ingest.max_event_bytes":  c.Ingest.MaxEventBytes,
		"ingest.max_webhook_kb":   c.Ingest.MaxWebhookKB,
		"ingest.default_region":   c.Ingest.DefaultRegion,
		"ingest.ack_first":        c.Ingest.AckFirst.String(),
		"journeys.quiet_hours":    c.Journeys.QuietHours,
		"public_url":              c.PublicURL,
		"messaging.frequency_cap": c.Messaging.FrequencyCap,
		"messaging.quiet_hours":   c.Messaging.QuietHours,
		"messaging.timezone":      c.Messaging.Timezone,
		"journeys.frequency_cap":  c.Journeys.FrequencyCap,
		"profiles.identity_cap":   c.Profiles.IdentityCap,
		"profiles.write_delay":    c.Profiles.WriteDelay.String(),
		"profiles.base_currency":  c.Profiles.BaseCurrency,
		"profiles.exchange_rates": c.Profiles.ExchangeRates,
		"metrics.enabled":         c.Metrics.Enabled,
		"metrics.max_delay":       c.Metrics.MaxDelay.String(),

		"profiles.identity.blocklist":         c.Profiles.Identity.Blocklist,
		"profiles.identity.default_blocklist": c.Profiles.Identity.DefaultBlocklist,
	}
	out := map[string]any{}
	for k, v := range flat {
		if IsSecretKey(k) && v != "" {
			v = masked
		}
		parts := strings.Split(k, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			if _, ok := m[p].(map[string]any); !ok {
				m[p] = map[string]any{}
			}
			m = m[p].(map[string]any)
		}
		m[parts[len(parts)-1]] = v
	}
	conns := map[string]any{}
	for name, settings := range c.Connectors {
		conns[name] = MaskSecrets(settings)
	}
	out["connectors"] = conns
	return out
}

// MaskSecrets copies settings with the values of secret-looking keys masked.
func MaskSecrets(settings map[string]any) map[string]any {
	out := make(map[string]any, len(settings))
	for k, v := range settings {
		switch {
		case IsSecretKey(k) && v != "" && v != nil:
			out[k] = masked
		default:
			if sub, ok := v.(map[string]any); ok {
				out[k] = MaskSecrets(sub)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

// YAML renders the masked configuration, keys sorted.
func (c *Config) YAML() (string, error) {
	b, err := yaml.Marshal(sortedNode(c.Masked()))
	return string(b), err
}

func sortedNode(m map[string]any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kn := &yaml.Node{Kind: yaml.ScalarNode, Value: k}
		var vn *yaml.Node
		if sub, ok := m[k].(map[string]any); ok {
			vn = sortedNode(sub)
		} else {
			vn = &yaml.Node{}
			_ = vn.Encode(m[k])
		}
		n.Content = append(n.Content, kn, vn)
	}
	return n
}
