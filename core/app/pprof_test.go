package app

import (
	"io"
	"log/slog"
	"runtime"
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

// Without OMNI_PPROF nothing serves heap profiles, so none are sampled.
func TestHeapSampledOnlyWhenProfiling(t *testing.T) {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	const rate = 512 * 1024 // Go's default
	runtime.MemProfileRate = rate
	t.Setenv(PprofEnv, "127.0.0.1:6060")
	SampleHeapOnlyWhenProfiling()
	if runtime.MemProfileRate != rate {
		t.Fatalf("with %s set: MemProfileRate %d, want %d", PprofEnv, runtime.MemProfileRate, rate)
	}
	t.Setenv(PprofEnv, "")
	SampleHeapOnlyWhenProfiling()
	if runtime.MemProfileRate != 0 {
		t.Fatalf("without %s: MemProfileRate %d, want 0", PprofEnv, runtime.MemProfileRate)
	}
}
