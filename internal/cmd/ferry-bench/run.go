package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sample is one measured run of a command.
type sample struct {
	Wall time.Duration
	CPU  time.Duration // user + system of the command and every child it waited for
	RSS  int64         // peak resident set of the largest process in the tree, bytes
}

// env is the environment every measured command runs in: an isolated HOME
// (so no tool reads a user's credentials or configuration) and the tools
// directory first on PATH.
func (b *bench) env() []string {
	return append(os.Environ(),
		"HOME="+b.home,
		"PATH="+b.toolsBin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"DOCKER_CONFIG="+filepath.Join(b.home, ".docker"),
		"REGCTL_CONFIG="+filepath.Join(b.home, ".regctl", "config.json"),
	)
}

// measure runs script with bash and returns its wall time, CPU time and
// peak RSS. The script is started by a fresh copy of this program (see
// rusageMain), not by the harness itself: Linux counts the memory of the
// process that forked a child in the child's peak RSS, and the harness holds
// far more than a tool under test.
func (b *bench) measure(ctx context.Context, script string) (sample, error) {
	self, err := os.Executable()
	if err != nil {
		return sample{}, err
	}
	res, err := os.CreateTemp(b.work, "rusage-*.json")
	if err != nil {
		return sample{}, err
	}
	res.Close()
	defer os.Remove(res.Name())
	cmd := exec.CommandContext(ctx, self, script)
	cmd.Env = append(b.env(), rusageEnv+"="+res.Name())
	cmd.Dir = b.work
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		return sample{}, fmt.Errorf("%w\n%s", err, strings.TrimSpace(tail))
	}
	data, err := os.ReadFile(res.Name())
	if err != nil {
		return sample{}, err
	}
	var s sample
	if err := json.Unmarshal(data, &s); err != nil {
		return sample{}, fmt.Errorf("reading the measurement: %w", err)
	}
	return s, nil
}

const rusageEnv = "FERRY_BENCH_RUSAGE_OUT"

// rusageMain is this program started by measure: it runs the script in
// os.Args[1] with bash, then writes wall time, CPU time and peak RSS from
// wait4's rusage (which covers every child the shell waited for, so a
// pipeline counts whole) to the file named by rusageEnv.
func rusageMain(outPath string) int {
	cmd := exec.Command("bash", "-eo", "pipefail", "-c", os.Args[1])
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return max(ee.ExitCode(), 1)
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s := sample{Wall: wall}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s.RSS = ru.Maxrss << 10 // kilobytes on Linux
	}
	data, _ := json.Marshal(s)
	if err := os.WriteFile(outPath, data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// run runs a setup command (not measured), echoing nothing unless it fails.
func (b *bench) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = b.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// distRegistry is one docker-registry process (the reference OCI
// distribution registry, Debian package docker-registry) on loopback with
// filesystem storage.
type distRegistry struct {
	bin  string
	dir  string // storage root
	conf string
	addr string
	cmd  *exec.Cmd
	log  *os.File
}

func newDistRegistry(bin, dir string) (*distRegistry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return &distRegistry{bin: bin, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *distRegistry) start(ctx context.Context) error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	r.conf = r.dir + ".yml"
	conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, r.dir, r.addr)
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	lf, err := os.Create(r.dir + ".log")
	if err != nil {
		return err
	}
	r.log = lf
	r.cmd = exec.Command(r.bin, "serve", r.conf)
	r.cmd.Stdout, r.cmd.Stderr = lf, lf
	if err := r.cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("starting %s: %w", r.bin, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			r.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.stop()
	return fmt.Errorf("%s on %s did not answer within 20 s (log: %s)", r.bin, r.addr, r.dir+".log")
}

func (r *distRegistry) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
	if r.log != nil {
		r.log.Close()
	}
}

// reset empties the registry: stop, remove its storage, start again.
func (r *distRegistry) reset(ctx context.Context) error {
	r.stop()
	if err := os.RemoveAll(r.dir); err != nil {
		return err
	}
	return r.start(ctx)
}
