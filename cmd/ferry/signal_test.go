package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryproject/ferry/internal/registrytest"
)

// buildFerry builds the ferry binary into a temporary directory.
func buildFerry(t *testing.T) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Skip("the go tool is not available to build the ferry binary, which the signal tests run as a process")
		}
	}
	bin := filepath.Join(t.TempDir(), "ferry")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// slowProxy is a reverse proxy on 127.0.0.1 in front of target that holds
// every blob request for delay; blobSeen is closed at the first one.
func slowProxy(t *testing.T, target string, delay time.Duration) (host string, blobSeen <-chan struct{}) {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	seen := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			once.Do(func() { close(seen) })
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.Listener.Addr().(*net.TCPAddr).String(), seen
}

// runSignalled starts the ferry binary, sends sig once the proxy sees the
// first blob request, and returns the exit code and stderr.
func runSignalled(t *testing.T, bin string, seen <-chan struct{}, sig os.Signal, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("ferry made no blob request within 20 s; stderr:\n%s", stderr.String())
	}
	time.Sleep(50 * time.Millisecond)
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ferry did not exit within 10 s of %v; stderr:\n%s", sig, stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatal(err)
	return -1, ""
}

// TestSignals: SIGINT during an export and SIGTERM during an import stop
// ferry with exit code 130, saying it was interrupted, leaving no file in
// the output directory and no tag at the destination.
func TestSignals(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the test sends POSIX SIGINT and SIGTERM, which Windows cannot deliver to a process")
	}
	bin := buildFerry(t)
	src, sample := source(t)

	t.Run("SIGINT during export", func(t *testing.T) {
		proxy, seen := slowProxy(t, src.Host, 400*time.Millisecond)
		args := []string{"export", "-q", "-j", "2"}
		dir := t.TempDir()
		args = append(args, "-o", filepath.Join(dir, "images.tar.zst"))
		for _, ref := range sample.Refs {
			args = append(args, strings.Replace(ref, src.Host, proxy, 1))
		}
		code, stderr := runSignalled(t, bin, seen, syscall.SIGINT, args...)
		if code != exitInterrupted {
			t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitInterrupted, stderr)
		}
		if !strings.Contains(stderr, "interrupted") {
			t.Errorf("stderr does not say interrupted:\n%s", stderr)
		}
		assertDirEmpty(t, dir)
	})

	t.Run("SIGTERM during import", func(t *testing.T) {
		dst := registrytest.New(t, registrytest.Options{})
		proxy, seen := slowProxy(t, dst.Host, 400*time.Millisecond)
		path := writeFile(t, "images.tar.zst", sampleBundle(t))
		code, stderr := runSignalled(t, bin, seen, syscall.SIGTERM,
			"import", "-q", "-j", "2", "--insecure-skip-verify", path, "--to", proxy+"/mirror")
		if code != exitInterrupted {
			t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitInterrupted, stderr)
		}
		if !strings.Contains(stderr, "interrupted") {
			t.Errorf("stderr does not say interrupted:\n%s", stderr)
		}
		assertNoTags(t, dst.Host, dst.Host+"/mirror", sample, basicAuth{})
	})
}
