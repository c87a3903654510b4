package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// `omni superuser --help` speaks of the command the user typed, and needs
// no database for it.
func TestSuperuserHelpSaysOmniSuperuser(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(omniBin, append(args, "--data-dir", dataDir)...)
		cmd.Dir, cmd.Env = dir, cleanEnv()
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errb.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), 0
	}

	out, errOut, code := run("superuser", "--help")
	if code != 0 || !strings.Contains(out, "\n  omni superuser [command]\n") || !strings.Contains(out, `Use "omni superuser [command] --help"`) {
		t.Fatalf("superuser --help: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "superuser ") || strings.Contains(line, "completion") {
			t.Fatalf("usage line without omni, or a completion command, in:\n%s", out)
		}
	}
	out, _, code = run("superuser", "upsert", "--help")
	if code != 0 || !strings.Contains(out, "  omni superuser upsert [flags]") || !strings.Contains(out, "omni superuser upsert test@example.com") {
		t.Fatalf("superuser upsert --help: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("help created the data dir (%v)", err)
	}
	_, errOut, code = run("superuser", "upsertt", "a@example.com", "pass-1234567")
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, `unknown command "upsertt" for "omni superuser"`) {
		t.Fatalf("unknown subcommand: exit %d %q", code, errOut)
	}
	// And it still does its job.
	out, errOut, code = run("superuser", "upsert", "root@example.com", "s3cret-pass-123")
	if code != 0 || !strings.Contains(out+errOut, "root@example.com") {
		t.Fatalf("superuser upsert: exit %d %s %s", code, out, errOut)
	}
}

// OMNI_SOURCE (omni plugin new) and OMNI_FIXTURES_DIR (tests) are read
// outside the configuration; having them set must not stop Omni.
func TestNonConfigOmniVariablesAreAccepted(t *testing.T) {
	dir := t.TempDir()
	env := []string{"OMNI_SOURCE=" + dir, "OMNI_FIXTURES_DIR=" + dir}
	if _, errOut, code := omni(t, dir, env, "config", "print"); code != 0 {
		t.Fatalf("config print with OMNI_SOURCE/OMNI_FIXTURES_DIR: exit %d %s", code, errOut)
	}
	if _, errOut, code := omni(t, dir, []string{"OMNI_SOURCES=" + dir}, "config", "print"); code != 2 || !strings.Contains(errOut, "OMNI_SOURCES: unknown environment variable") {
		t.Fatalf("typo still caught: exit %d %s", code, errOut)
	}
}

