package ingest

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// liqHeader is the header of Binance's liquidationSnapshot files.
const liqHeader = "time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,last_fill_quantity,accumulated_fill_quantity\n"

func TestImportLiquidationSnapshot(t *testing.T) {
	t0 := time.Date(2023, 6, 1, 0, 0, 1, 0, time.UTC).UnixMilli()
	good := liqHeader +
		itoa64(t0) + ",SELL,LIMIT,IOC,0.5,27000.1,27010,FILLED,0.5,0.5\n" +
		itoa64(t0+1000) + ",BUY,LIMIT,IOC,2,27100,27090,FILLED,1,2\n" +
		itoa64(t0+2000) + ",BUY,LIMIT,IOC,1,27100,0,EXPIRED,0,0\n" // nothing filled: skipped
	for _, tc := range []struct {
		name, file, content string
		want                string // the report line, "" when it must be rejected
		errPart             string
		rows                int // the file's rows the summary counts; 2 when 0
	}{
		{"zip", "BTCUSDT-liquidationSnapshot-2023-06-01.zip", good,
			"OK  DIR/BTCUSDT-liquidationSnapshot-2023-06-01.zip: 2 liquidations BTCUSDT (1 orders with nothing filled skipped)", "", 0},
		// Binance's published files listed every row twice.
		// The report counts the file's rows; the store keeps each event once.
		{"every row twice", "BTCUSDT-liquidationSnapshot-2023-06-01.csv", doubled(good),
			"OK  DIR/BTCUSDT-liquidationSnapshot-2023-06-01.csv: 4 liquidations BTCUSDT (2 orders with nothing filled skipped)", "", 4},
		{"csv without header", "BTCUSDT-liquidationSnapshot-2023-06-01.csv", strings.TrimPrefix(good, liqHeader),
			"OK  DIR/BTCUSDT-liquidationSnapshot-2023-06-01.csv: 2 liquidations BTCUSDT (1 orders with nothing filled skipped)", "", 0},
		{"bad side", "BTCUSDT-liquidationSnapshot-2023-06-02.csv", liqHeader + itoa64(t0) + ",HOLD,LIMIT,IOC,1,1,1,FILLED,1,1\n",
			"", `line 2: side "HOLD", want BUY or SELL`, 0},
		{"bad price", "BTCUSDT-liquidationSnapshot-2023-06-02.csv", liqHeader + itoa64(t0) + ",BUY,LIMIT,IOC,1,x,1,FILLED,1,1\n",
			"", "line 2: price", 0},
		{"short row", "BTCUSDT-liquidationSnapshot-2023-06-02.csv", liqHeader + itoa64(t0) + ",BUY,LIMIT\n", "", "line 2:", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := openStore(t)
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			if strings.HasSuffix(tc.file, ".zip") {
				writeZip(t, path, tc.content)
			} else {
				writeFile(t, path, tc.content)
			}
			var out bytes.Buffer
			sum, err := Import(context.Background(), st, []string{path}, &out)
			if err != nil {
				t.Fatal(err)
			}
			ls, err := st.Liquidations(context.Background(), store.LiquidationQuery{Symbol: "BTCUSDT", From: time.Unix(0, 0), To: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if sum.Rejected() != 1 || !strings.Contains(out.String(), tc.errPart) || len(ls) != 0 {
					t.Fatalf("report %q with %d stored, want a rejection containing %q and nothing stored", out.String(), len(ls), tc.errPart)
				}
				return
			}
			if got := strings.TrimSpace(out.String()); got != strings.ReplaceAll(tc.want, "DIR", dir) {
				t.Fatalf("report %q, want %q", got, tc.want)
			}
			want := []store.Liquidation{
				{Symbol: "BTCUSDT", Time: time.UnixMilli(t0).UTC(), Side: store.SideLong, Price: 27000.1, Quantity: 0.5, Notional: 27010 * 0.5},
				{Symbol: "BTCUSDT", Time: time.UnixMilli(t0 + 1000).UTC(), Side: store.SideShort, Price: 27100, Quantity: 2, Notional: 27090 * 2},
			}
			if len(ls) != 2 || ls[0] != want[0] || ls[1] != want[1] {
				t.Fatalf("stored %+v, want %+v", ls, want)
			}
			if n, want := sum.Rows()[KindLiquidations], max(tc.rows, 2); n != want {
				t.Fatalf("summary counts %d liquidations, want %d (the file's rows)", n, want)
			}
			// Importing the same file again stores nothing twice.
			if _, err := Import(context.Background(), st, []string{path}, nil); err != nil {
				t.Fatal(err)
			}
			c, err := st.Count(context.Background())
			if err != nil || c.Liquidations != 2 {
				t.Fatalf("after a second import: %+v, %v; want 2 liquidations", c, err)
			}
		})
	}
}

func itoa64(v int64) string { return strconv.FormatInt(v, 10) }

// doubled repeats every row of a CSV after its header.
func doubled(csv string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(csv, "\n"), "\n")
	out := lines[0]
	for _, l := range lines[1:] {
		l = strings.TrimSuffix(l, "\n") + "\n"
		out += l + l
	}
	return out
}
