package main

import (
	"net"
	"strings"
	"testing"
)

// Papercuts a newcomer hits in the first minutes, each with the real binary.

// A port that is taken is reported as one line naming the address, before
// anything claims to be serving, and leaves nothing behind.
func TestServeOnAPortInUseSaysSoBeforeServing(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()

	_, stderr, code := omni(t, dir, nil, "serve", "--http", addr)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 2 || len(lines) != 1 || !strings.Contains(stderr, "http: cannot listen on "+addr+": address already in use") {
		t.Fatalf("serve on a taken port: exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "omni serving") {
		t.Fatalf("logged serving although it never could:\n%s", stderr)
	}
	// The data dir lock and the database were released: the same data dir
	// serves on a free port.
	startServer(t, dir)
}

