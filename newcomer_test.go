package main

import (
	"bufio"
	"encoding/json"
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
	// A bad email or a too-short password is the caller's to fix: exit 2,
	// one line naming the problem.
	_, errOut, code = run("superuser", "upsert", "not-an-email", "s3cret-pass-123")
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "email") {
		t.Fatalf("bad email: exit %d %q", code, errOut)
	}
	_, errOut, code = run("superuser", "upsert", "root@example.com", "short")
	if code != 2 || !strings.Contains(strings.ToLower(errOut), "password") {
		t.Fatalf("short password: exit %d %q", code, errOut)
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

// The image's HEALTHCHECK runs with the image's environment: it must probe
// where OMNI_HTTP says the server listens (0.0.0.0 is probed on loopback),
// not a fixed port.
func TestDockerHealthcheckFollowsOMNI_HTTP(t *testing.T) {
	env, check := dockerfileEnvAndHealthcheck(t)
	if _, ok := env["OMNI_HTTP"]; !ok || len(check) == 0 || check[0] != "/omni" {
		t.Fatalf("Dockerfile: ENV has no OMNI_HTTP or HEALTHCHECK is not an exec-form /omni command: %v %v", env, check)
	}
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	// The image's settings, with its paths moved into the test's dir and
	// OMNI_HTTP on a port of this test's own (what docker run -e does).
	env["OMNI_HTTP"] = "0.0.0.0:" + port
	env["OMNI_DATA_DIR"] = filepath.Join(dir, "data")
	env["OMNI_SECRET_KEY_FILE"] = filepath.Join(dir, "keys", "secret.key")
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	s := startServerWith(t, dir, "127.0.0.1:"+port, envList, "serve")

	healthcheck := func() (string, string, int) {
		cmd := exec.Command(omniBin, check[1:]...)
		cmd.Dir = t.TempDir() // the image's working dir holds no omni.yaml
		cmd.Env = append(cleanEnv(), envList...)
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
	out, errOut, code := healthcheck()
	var health struct{ Status string }
	if code != 0 || json.Unmarshal([]byte(out), &health) != nil || health.Status != "ok" {
		t.Fatalf("healthcheck against a healthy server: exit %d %q %q", code, out, errOut)
	}
	// With the server gone the same check fails, naming the address it
	// probed: the one OMNI_HTTP gave.
	_ = s.cmd.Process.Kill()
	<-s.done
	s.done <- nil // for the cleanup
	_, errOut, code = healthcheck()
	if code == 0 || !strings.Contains(errOut, "http://127.0.0.1:"+port+"/api/v1/health") {
		t.Fatalf("healthcheck with the server stopped: exit %d %q", code, errOut)
	}
}

// dockerfileEnvAndHealthcheck reads the Dockerfile's ENV settings and its
// HEALTHCHECK's exec-form command.
func dockerfileEnvAndHealthcheck(t *testing.T) (map[string]string, []string) {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Join continuation lines into instructions.
	var instrs []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	env := map[string]string{}
	var check []string
	for _, in := range instrs {
		switch {
		case strings.HasPrefix(in, "ENV "):
			for _, kv := range strings.Fields(strings.TrimPrefix(in, "ENV ")) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env[k] = v
				}
			}
		case strings.HasPrefix(in, "HEALTHCHECK "):
			_, cmd, ok := strings.Cut(in, " CMD ")
			if !ok || json.Unmarshal([]byte(strings.TrimSpace(cmd)), &check) != nil {
				t.Fatalf("HEALTHCHECK is not in exec form: %s", in)
			}
		}
	}
	return env, check
}
