package connectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/plugins/sdk"
)

// DescribeInstalled returns a connector's description without the server:
// built-ins are asked in-process, external plugins are started briefly.
func DescribeInstalled(ctx context.Context, f Installed, checksum []byte) (*sdk.Description, error) {
	if f.Kind != "external" {
		newC, ok := Builtin(f.Name)
		if !ok {
			return nil, fmt.Errorf("no built-in connector named %q", f.Name)
		}
		return newC().Describe(ctx)
	}
	cc := &plugin.ClientConfig{
		HandshakeConfig: sdk.Handshake, Plugins: sdk.PluginSet(nil), Cmd: exec.Command(f.Path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC}, AutoMTLS: true, SkipHostEnv: true,
		StartTimeout: 20 * time.Second, Logger: hclog.NewNullLogger(),
	}
	if checksum != nil {
		cc.SecureConfig = &plugin.SecureConfig{Checksum: checksum, Hash: sha256.New()}
	}
	c := plugin.NewClient(cc)
	defer c.Kill()
	rpc, err := c.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return nil, err
	}
	return raw.(sdk.Connector).Describe(ctx)
}

// FileSHA256 is the hex SHA-256 of a file, for pinning.
func FileSHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// ApplyConfig merges changes into the record's stored settings, checking
// each name against the schema and encrypting secret fields. A value equal
// to Masked keeps the stored one (the admin sends back what it was shown);
// an empty value removes the setting.
func ApplyConfig(rec *core.Record, s *Sealer, schema []sdk.ConfigField, changes map[string]string) error {
	fields := map[string]sdk.ConfigField{}
	var names []string
	for _, f := range schema {
		fields[f.Name] = f
		names = append(names, f.Name)
	}
	sort.Strings(names)
	stored := storedConfig(rec)
	keys := make([]string, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := changes[k]
		f, ok := fields[k]
		if !ok {
			return &sdk.ConfigError{Field: k, Problem: fmt.Sprintf("is not a setting of %s (settings: %s)", rec.GetString("name"), strings.Join(names, ", "))}
		}
		if v == Masked {
			continue
		}
		if v == "" {
			delete(stored, k)
			continue
		}
		if err := checkType(f, v); err != nil {
			return err
		}
		if f.Secret {
			sealed, err := s.Seal(v, rec.GetString("name")+"."+k)
			if err != nil {
				return err
			}
			v = sealed
		}
		stored[k] = v
	}
	rec.Set("config", stored)
	return nil
}

func checkType(f sdk.ConfigField, v string) error {
	switch f.Type {
	case "bool":
		if _, err := strconv.ParseBool(v); err != nil {
			return &sdk.ConfigError{Field: f.Name, Problem: fmt.Sprintf("%q is not true or false", v)}
		}
	case "int":
		if _, err := strconv.Atoi(v); err != nil {
			return &sdk.ConfigError{Field: f.Name, Problem: fmt.Sprintf("%q is not a whole number", v)}
		}
	case "url":
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return &sdk.ConfigError{Field: f.Name, Problem: fmt.Sprintf("%q is not an absolute URL", v)}
		}
	}
	return nil
}

// MissingRequired returns the first required setting that has no value in
// the stored settings, the config file or the schema default.
func MissingRequired(rec *core.Record, schema []sdk.ConfigField, file map[string]string) *sdk.ConfigError {
	stored := storedConfig(rec)
	for _, f := range schema {
		if f.Required && stored[f.Name] == "" && file[f.Name] == "" && f.Default == "" {
			return &sdk.ConfigError{Field: f.Name, Problem: "is required"}
		}
	}
	return nil
}

// MaskedConfig is the record's settings for display: secrets masked.
func MaskedConfig(rec *core.Record, schema []sdk.ConfigField) map[string]string {
	secret := map[string]bool{}
	for _, f := range schema {
		secret[f.Name] = f.Secret
	}
	out := map[string]string{}
	for k, v := range storedConfig(rec) {
		if secret[k] || IsSealed(v) {
			v = Masked
		}
		out[k] = v
	}
	return out
}
