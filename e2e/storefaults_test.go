package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// storeFaultArgs make a snapshotter that does little besides opening its
// store: one symbol, a day of demo data, no simulator.
func storeFaultArgs(db string) []string {
	return []string{"--listen=127.0.0.1:0", "--db=" + db, "--symbols=BTCUSDT", "--demo.days=1",
		"--simulator.enabled=false", "--log_summary_interval=1h"}
}

// The snapshotter started on a DuckDB file it cannot use — held by another
// running snapshotter, a directory, not a DuckDB file — stops at once with
// exit status 1 and an error line naming the file and the cause, and never
// listens.
func TestStoreFaults(t *testing.T) {
	testenv.Binaries(t)
	dir := t.TempDir()

	held := filepath.Join(dir, "held", "store.duckdb")
	holder := testenv.Launch(t, "snapshotter", dir, storeFaultArgs(held)...)
	// The file is locked from the moment the store is open; the holder goes
	// on seeding, which does not matter here. Its pid is in its instance
	// (host:pid, no instance_id given).
	var opened struct {
		Instance string `json:"instance"`
	}
	if err := json.Unmarshal([]byte(holder.WaitLog(t, `"msg":"store opened"`, 60*time.Second)), &opened); err != nil {
		t.Fatal(err)
	}
	pid := opened.Instance[strings.LastIndex(opened.Instance, ":")+1:]

	directory := filepath.Join(dir, "dir.duckdb")
	if err := os.Mkdir(directory, 0o755); err != nil {
		t.Fatal(err)
	}
	notDuckDB := filepath.Join(dir, "notes.duckdb")
	if err := os.WriteFile(notDuckDB, []byte(strings.Repeat("not a database\n", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, db string
		want     string
	}{
		{"held by another snapshotter", held,
			fmt.Sprintf("open store %s: the file is locked by another process (pid %s holds it; DuckDB allows one writer process): ", held, pid)},
		{"a directory", directory, "open store " + directory + ": the path is a directory, not a DuckDB file: "},
		{"not a DuckDB file", notDuckDB, "open store " + notDuckDB + ": the file is not a DuckDB database (another kind of file, or its header is corrupt): "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.Launch(t, "snapshotter", dir, storeFaultArgs(tc.db)...)
			var stopped struct {
				Level string `json:"level"`
				Err   string `json:"err"`
			}
			if err := json.Unmarshal([]byte(p.WaitLog(t, `"msg":"snapshotter stopped"`, 30*time.Second)), &stopped); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", stopped.Level, stopped.Err)
			if stopped.Level != "ERROR" || !strings.HasPrefix(stopped.Err, tc.want) {
				t.Errorf("stop line %s %q, want ERROR starting %q", stopped.Level, stopped.Err, tc.want)
			}
			// It logged its last line and exits by itself: Stop's SIGINT, if
			// it lands first, only ends a context nothing waits on any more.
			err := p.Stop(t, 10*time.Second)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit %v, want status 1", err)
			}
			if p.HasLine(`"msg":"listening"`) {
				t.Error("it listened on a store it could not open")
			}
		})
	}
	// The holder was not disturbed by the refused start.
	if p := holder.HasLine(`"msg":"snapshotter stopped"`); p {
		t.Fatalf("the holder stopped:\n%s", holder.Logs())
	}
}
