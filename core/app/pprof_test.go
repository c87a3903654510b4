package app

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestPprofRefusesAddressesBeyondLoopback(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{"0.0.0.0:6060", "10.0.0.1:6060", "example.org:6060", "6060"} {
		t.Setenv(PprofEnv, addr)
		err := startPprof(log)
		if err == nil || !strings.Contains(err.Error(), PprofEnv) {
			t.Errorf("%s=%q: got %v, want an error naming %s", PprofEnv, addr, err, PprofEnv)
		}
	}
	t.Setenv(PprofEnv, "")
	if err := startPprof(log); err != nil {
		t.Fatalf("unset: %v", err)
	}
}
