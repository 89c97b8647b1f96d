package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/liqstream/liqstream/pkg/testenv"
)

// The helper process: this test binary run again with storeHelperEnv set,
// for what needs a second process. DuckDB's lock is a POSIX record lock,
// which is per process: a second Open of the same file in this process
// succeeds (checked with this DuckDB version), so "held by another process"
// needs another process; and RLIMIT_FSIZE is best set on a process that does
// nothing else.
const (
	storeHelperEnv  = "LIQSTREAM_STORE_TEST_HELPER" // "hold" or "fsize"
	storeHelperPath = "LIQSTREAM_STORE_TEST_PATH"
)

// helperResult is what the fsize helper prints: its Open's error.
type helperResult struct {
	Fault Fault  `json:"fault"`
	Err   string `json:"err"`
}

// TestHelperProcess is not a test: run by helperCmd, it opens the store at
// $LIQSTREAM_STORE_TEST_PATH and either holds it until its stdin closes
// ("hold", printing "ready" once open) or opens it under a file size limit
// and prints the result ("fsize").
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(storeHelperEnv)
	if mode == "" {
		return
	}
	path := os.Getenv(storeHelperPath)
	switch mode {
	case "hold":
		st, err := Open(context.Background(), path)
		if err != nil {
			fmt.Println("open failed:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		st.Close()
	case "fsize":
		// Past the limit a write fails with EFBIG, unless SIGXFSZ kills the
		// process first (its default action); Go ignores it already, this
		// says so.
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4096, Max: 4096}); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(1)
		}
		res := helperResult{}
		st, err := Open(context.Background(), path)
		var fe *FileError
		switch {
		case err == nil:
			st.Close()
		case errors.As(err, &fe):
			res = helperResult{fe.Fault, err.Error()}
		default:
			res = helperResult{"not a *FileError", err.Error()}
		}
		json.NewEncoder(os.Stdout).Encode(res)
	default:
		fmt.Println("unknown helper mode", mode)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperCmd(t *testing.T, mode, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), storeHelperEnv+"="+mode, storeHelperPath+"="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

// holdInOtherProcess opens path in a helper process and returns its pid once
// the file is open; the helper closes it when the test ends.
func holdInOtherProcess(t *testing.T, path string) int {
	t.Helper()
	cmd := helperCmd(t, "hold", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper did not open %s: %q %v", path, line, err)
	}
	return cmd.Process.Pid
}

// tmpfs mounts a tmpfs of size bytes on a fresh directory for the test's
// length: a disk that really fills. ok is false where this process may not
// mount (not root, or a container without CAP_SYS_ADMIN); callers then fall
// back to what needs no privilege.
func tmpfs(t *testing.T, size int64) (dir string, ok bool) {
	t.Helper()
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Logf("cannot mount a tmpfs here (%v)", err)
			return "", false
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	// Registered after TempDir's removal, so it runs before it.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir, true
}

// fill writes a file into dir until at most leave bytes are free on its
// filesystem, and returns a func that deletes it.
func fill(t *testing.T, dir string, leave int64) (free func()) {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(fs.Bavail)*fs.Bsize - leave
	buf := make([]byte, 64<<10)
	for n := int64(0); n < want; {
		w, err := f.Write(buf[:min(int64(len(buf)), want-n)])
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// Each fault at start is a *FileError whose text names the file and the
// cause in plain words, and wraps the driver's error.
func TestOpenFaults(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup returns the path to open and what the error must say besides
		// the path; ok false skips the case (a privilege this process lacks).
		setup     func(t *testing.T) (path string, want []string, ok bool)
		fault     Fault
		inProcess bool // false: setup opened it elsewhere and checked itself
		after     func(t *testing.T, path string)
	}{
		{
			name: "locked by another process",
			setup: func(t *testing.T) (string, []string, bool) {
				path := filepath.Join(t.TempDir(), "held.duckdb")
				pid := holdInOtherProcess(t, path)
				return path, []string{fmt.Sprintf("the file is locked by another process (pid %d holds it; DuckDB allows one writer process)", pid),
					"Conflicting lock is held"}, true
			},
			fault: FaultLocked, inProcess: true,
		},
		{
			name: "path is a directory",
			setup: func(t *testing.T) (string, []string, bool) {
				path := filepath.Join(t.TempDir(), "dir.duckdb")
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
				return path, []string{"the path is a directory, not a DuckDB file"}, true
			},
			fault: FaultIsDirectory, inProcess: true,
		},
		{
			name: "another kind of file",
			setup: func(t *testing.T) (string, []string, bool) {
				path := filepath.Join(t.TempDir(), "notes.duckdb")
				if err := os.WriteFile(path, []byte(strings.Repeat("symbol,open_time,close\n", 1000)), 0o644); err != nil {
					t.Fatal(err)
				}
				return path, []string{"the file is not a DuckDB database (another kind of file, or its header is corrupt)"}, true
			},
			fault: FaultNotDuckDB, inProcess: true,
		},
		{
			name: "corrupt header",
			setup: func(t *testing.T) (string, []string, bool) {
				path := filepath.Join(t.TempDir(), "corrupt.duckdb")
				st, err := Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				if err := st.UpsertKlines(ctx, []Kline{kl("BTCUSDT", 0, 100, 110, 90, 105)}); err != nil {
					t.Fatal(err)
				}
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				// Bytes 8-11 of the main header are DuckDB's magic, "DUCK".
				f, err := os.OpenFile(path, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte("XXXX"), 8); err != nil {
					t.Fatal(err)
				}
				f.Close()
				return path, []string{"the file is not a DuckDB database"}, true
			},
			fault: FaultNotDuckDB, inProcess: true,
		},
		{
			name: "empty file",
			setup: func(t *testing.T) (string, []string, bool) {
				path := filepath.Join(t.TempDir(), "empty.duckdb")
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return path, []string{"the file is empty (0 bytes), not a DuckDB database"}, true
			},
			fault: FaultNotDuckDB, inProcess: true,
		},
		{
			name: "parent is a file",
			setup: func(t *testing.T) (string, []string, bool) {
				parent := filepath.Join(t.TempDir(), "data")
				if err := os.WriteFile(parent, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(parent, "store.duckdb"), []string{"a parent of the path is a file, not a directory", "create directory"}, true
			},
			fault: FaultNotDir, inProcess: true,
		},
		{
			// A real full disk: a tmpfs filled to the last byte.
			name: "disk full",
			setup: func(t *testing.T) (string, []string, bool) {
				dir, ok := tmpfs(t, 1<<20)
				if !ok {
					return "", nil, false
				}
				fill(t, dir, 0)
				return filepath.Join(dir, "store.duckdb"), []string{"the disk is full (no space left on device)", "No space left on device"}, true
			},
			fault: FaultNoSpace, inProcess: true,
			after: func(t *testing.T, path string) {
				// The failed create leaves no file that the next start would
				// call "not a DuckDB database"; with space again it opens.
				if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("failed create left %s behind (%v)", path, err)
				}
				if err := os.Remove(filepath.Join(filepath.Dir(path), "filler")); err != nil {
					t.Fatal(err)
				}
				st, err := Open(ctx, path)
				if err != nil {
					t.Fatalf("open after freeing space: %v", err)
				}
				st.Close()
			},
		},
		{
			// Needs no privilege, so the no-space path is exercised for real
			// even where a tmpfs cannot be mounted: the helper process lowers
			// its own RLIMIT_FSIZE below DuckDB's 12 KiB header.
			name: "file size limit",
			setup: func(t *testing.T) (string, []string, bool) {
				path := filepath.Join(t.TempDir(), "big.duckdb")
				out, err := helperCmd(t, "fsize", path).Output()
				if err != nil {
					t.Fatalf("fsize helper: %v", err)
				}
				var res helperResult
				if err := json.Unmarshal(out, &res); err != nil {
					t.Fatalf("fsize helper said %q: %v", out, err)
				}
				want := []string{path, "the file reached the largest size allowed (file too large", "File too large"}
				t.Log(res.Err)
				if res.Fault != FaultTooLarge {
					t.Fatalf("fault %q, want %q: %s", res.Fault, FaultTooLarge, res.Err)
				}
				for _, w := range want {
					if !strings.Contains(res.Err, w) {
						t.Errorf("error %q lacks %q", res.Err, w)
					}
				}
				return path, nil, true
			},
			fault: FaultTooLarge,
			after: func(t *testing.T, path string) {
				if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("failed create left %s behind (%v)", path, err)
				}
			},
		},
		{
			// Root reads any file whatever its mode, but not one on a
			// read-only mount.
			name: "read-only filesystem",
			setup: func(t *testing.T) (string, []string, bool) {
				dir, ok := tmpfs(t, 4<<20)
				if !ok {
					return "", nil, false
				}
				path := filepath.Join(dir, "store.duckdb")
				st, err := Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
					t.Fatalf("remount read-only: %v", err)
				}
				return path, []string{"the filesystem is mounted read-only", "Read-only file system"}, true
			},
			fault: FaultReadOnly, inProcess: true,
			after: func(t *testing.T, path string) {
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Fatalf("the existing file was harmed: %v %v", fi, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, want, ok := tc.setup(t)
			if !ok {
				// Missing fails under CI, where the machine mounts tmpfs (.ci/run runs as root).
				testenv.Missing(t, "needs a tmpfs mount; the file size limit case covers a write that runs out of room")
			}
			if tc.inProcess {
				st, err := Open(ctx, path)
				if err == nil {
					st.Close()
					t.Fatalf("Open(%s) succeeded", path)
				}
				var fe *FileError
				if !errors.As(err, &fe) {
					t.Fatalf("error %T %v, want a *FileError", err, err)
				}
				if fe.Fault != tc.fault || fe.Path != path || fe.Op != "open store" {
					t.Errorf("fault %q op %q path %q, want %q, open store, %s", fe.Fault, fe.Op, fe.Path, tc.fault, path)
				}
				msg := err.Error()
				t.Log(msg)
				if !strings.HasPrefix(msg, "open store "+path+": ") {
					t.Errorf("error %q does not start with the operation and the file", msg)
				}
				for _, w := range want {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q lacks %q", msg, w)
					}
				}
			}
			if tc.after != nil {
				tc.after(t, path)
			}
		})
	}
}
