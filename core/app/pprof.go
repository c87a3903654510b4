package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"time"
)

// PprofEnv names the environment variable that, when set to a loopback
// address (e.g. 127.0.0.1:6060), serves Go's profiler there while Omni runs:
// how an operator finds where a busy server's CPU and memory go
// (docs/operations.md#profiling). It is off by default and never listens
// beyond loopback, since profiles reveal the process's memory.
const PprofEnv = "OMNI_PPROF"

// SampleHeapOnlyWhenProfiling turns Go's heap sampling off unless
// OMNI_PPROF is set. Go samples allocations for memory profiles unless
// told not to, and the samples' hash table stays resident (about 1.5 MB of
// an idle server's 60); only OMNI_PPROF serves those profiles. The binary's
// main calls it first, before the server allocates, as the runtime asks.
func SampleHeapOnlyWhenProfiling() {
	if os.Getenv(PprofEnv) == "" {
		runtime.MemProfileRate = 0
	}
}

// startPprof serves net/http/pprof on the address in OMNI_PPROF, if any.
func startPprof(log *slog.Logger) error {
	addr := os.Getenv(PprofEnv)
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: expected host:port, got %q", PprofEnv, addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s: %q is not a loopback address; the profiler only listens on 127.0.0.1 or ::1", PprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", PprofEnv, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiler listening", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}
