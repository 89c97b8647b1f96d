package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
)

// TestImportCommand runs `snapshotter import` the way an operator would: one
// good and one corrupt archive file; the good one lands, the corrupt one is
// named with its line and reason, and the exit code says a file was rejected.
func TestImportCommand(t *testing.T) {
	bin := filepath.Join(testenv.Binaries(t), "snapshotter")
	dir := t.TempDir()
	good := filepath.Join(dir, "BTCUSDT-5m-2024-01-01.csv")
	bad := filepath.Join(dir, "ETHUSDT-5m-2024-01-01.csv")
	os.WriteFile(good, []byte("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"+
		"1704067200000,42000,42100,41900,42050,10,1704067499999,420000,100,5,210000,0\n"+
		"1704067500000,42050,42200,42000,42150,12,1704067799999,505000,120,6,252000,0\n"), 0o644)
	os.WriteFile(bad, []byte("1704067200000,2300,2310,2290,2305,10,1704067499999,23000,100,5,11500,0\n"+
		"1704067500000,2305,2290,2310,2300,12,1704067799999,27600,120,6,13800,0\n"), 0o644)
	db := filepath.Join(dir, "import.duckdb")

	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, append([]string{"import", "--db", db}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return out.String(), errb.String(), 0
		case errors.As(err, &ee):
			return out.String(), errb.String(), ee.ExitCode()
		}
		t.Fatal(err)
		return "", "", -1
	}
	out, errOut, code := run(good, bad)
	if code != 1 {
		t.Fatalf("exit %d with a rejected file, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "OK  "+good+": 2 klines BTCUSDT 5m") || !strings.Contains(out, "ERR "+bad+": line 2:") {
		t.Fatalf("per-file lines missing:\n%s", out)
	}
	if !strings.Contains(errOut, "imported 2 klines, 0 open interest rows and 0 liquidations; 1 file(s) rejected") {
		t.Fatalf("summary: %s", errOut)
	}
	// Importing the good file again changes nothing and succeeds.
	if out, errOut, code := run(good); code != 0 || !strings.Contains(out, "OK  ") {
		t.Fatalf("re-import: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run(); code != 2 || !strings.Contains(errOut, "usage: snapshotter import") {
		t.Fatalf("no paths: exit %d %s", code, errOut)
	}
}
