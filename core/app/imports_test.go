package app_test

import (
	"os/exec"
	"strings"
	"testing"
)

// infrastructure is what domain modules may import: the plumbing under
// core/ that is not a module. Every other package under core/ is a domain
// (profiles, connectors, webui, and any module added later).
var infrastructure = map[string]bool{
	"api": true, "app": true, "app/omnitest": true, "bus": true, "cli": true, "datalock": true, "deadletter": true,
	"events": true, "eventstore": true, "ingest": true, "lift": true, "logging": true, "memtune": true, "outbox": true, "relay": true, "segmentrule": true, "signedlink": true, "staff": true,
	"store": true, "store/migrations": true, "topology": true, "webhooks": true,
}

// Modules meet on the bus and the event model, never by importing each
// other, and no module imports the command line.
func TestDomainsImportNoOtherDomainNorTheCLI(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "github.com/omni/omni/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const core = "github.com/omni/omni/core/"
	domainOf := func(pkg string) string {
		rest, ok := strings.CutPrefix(pkg, core)
		if !ok || infrastructure[rest] {
			return ""
		}
		return strings.SplitN(rest, "/", 2)[0]
	}
	domains := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		from := domainOf(f[0])
		if from == "" {
			continue
		}
		domains[from] = true
		for _, imp := range f[1:] {
			if imp == core+"cli" {
				t.Errorf("%s imports core/cli: commands reach the CLI through app.Extension", f[0])
			}
			if to := domainOf(imp); to != "" && to != from {
				t.Errorf("%s imports the %s module: modules meet on the bus and the event model", f[0], to)
			}
		}
	}
	for _, d := range []string{"profiles", "connectors", "webui"} {
		if !domains[d] {
			t.Errorf("module %s not found by go list: is the infrastructure list out of date?", d)
		}
	}
}
