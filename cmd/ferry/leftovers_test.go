package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitExit waits up to 20 s for cmd and returns its exit code (-1 when a
// signal killed it).
func waitExit(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ferry did not exit within 20 s; stderr:\n%s", stderr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestExportLeftovers runs the ferry binary:
//   - killed with SIGKILL during an export, it leaves its partial file;
//     the next export of the same output removes it (and nothing else);
//   - with standard error a pipe whose reader goes away (--debug 2>&1 |
//     head -1), it stops as on SIGINT, exit 1, and leaves nothing;
//   - with -o - into a reader that goes away, it says so, exit 1.
func TestExportLeftovers(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the test sends SIGKILL and relies on SIGPIPE, which Windows does not have")
	}
	bin := buildFerry(t)
	src, sample := source(t)
	proxied := func(proxy string) []string {
		var refs []string
		for _, ref := range sample.Refs {
			refs = append(refs, strings.Replace(ref, src.Host, proxy, 1))
		}
		return refs
	}

	t.Run("SIGKILL leftover removed by the next export", func(t *testing.T) {
		proxy, seen := slowProxy(t, src.Host, 400*time.Millisecond)
		dir := t.TempDir()
		out := filepath.Join(dir, "images.tar.zst")
		notes := filepath.Join(dir, ".images.tar.zst.partial-notes")
		if err := os.WriteFile(notes, []byte("not ferry's"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stderr := runSignalled(t, bin, seen, os.Kill, append([]string{"export", "-q", "-j", "2", "-o", out}, proxied(proxy)...)...)
		if code != -1 {
			t.Fatalf("exit code %d after SIGKILL, want -1 (killed); stderr:\n%s", code, stderr)
		}
		left, _ := filepath.Glob(filepath.Join(dir, ".images.tar.zst.partial-[0-9]*"))
		if len(left) != 1 {
			t.Fatalf("SIGKILL left %q, want one partial file: nothing to test", left)
		}
		res := ferry(t, nil, append([]string{"export", "-q", "-o", out}, sample.Refs...)...)
		res.expect(t, exitOK)
		if _, err := os.Stat(left[0]); !os.IsNotExist(err) {
			t.Errorf("the leftover %s is still there after a new export (%v)", left[0], err)
		}
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if strings.Join(names, " ") != ".images.tar.zst.partial-notes images.tar.zst" {
			t.Errorf("the output directory holds %q, want the bundle and the file that is not ferry's", names)
		}
	})

	t.Run("SIGPIPE on standard error", func(t *testing.T) {
		proxy, _ := slowProxy(t, src.Host, 400*time.Millisecond)
		dir := t.TempDir()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, append([]string{"export", "--debug", "-j", "2", "-o", filepath.Join(dir, "images.tar.zst")}, proxied(proxy)...)...)
		cmd.Stdout, cmd.Stderr = pw, pw // 2>&1
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		line, err := bufio.NewReader(pr).ReadString('\n') // | head -1
		pr.Close()
		if err != nil || line != unsignedNote {
			t.Fatalf("first line %q, %v; want %q", line, err, unsignedNote)
		}
		var none bytes.Buffer
		if code := waitExit(t, cmd, &none); code != exitFailure {
			t.Errorf("exit code %d, want %d", code, exitFailure)
		}
		assertDirEmpty(t, dir)
	})

	t.Run("-o - into a reader that closes early", func(t *testing.T) {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, append([]string{"export", "-q", "-o", "-"}, sample.Refs...)...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = pw, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		if _, err := io.ReadFull(pr, make([]byte, 512)); err != nil { // | head -c 512
			t.Fatal(err)
		}
		pr.Close()
		code := waitExit(t, cmd, &stderr)
		// -q: no note, only the error.
		want := "ferry: standard output was closed by the program reading it before the bundle was complete (broken pipe): what it received is not usable\n"
		if code != exitFailure || stderr.String() != want {
			t.Errorf("exit code %d, stderr %q; want %d, %q", code, stderr.String(), exitFailure, want)
		}
	})
}
