package ingest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		base    string
		want    Name
		wantErr string
	}{
		{base: "BTCUSDT-5m-2024-01-01.zip", want: Name{Kind: KindKlines, Symbol: "BTCUSDT", Interval: "5m", Date: "2024-01-01", Zipped: true}},
		{base: "BTCUSDT-5m-2024-01.zip", want: Name{Kind: KindKlines, Symbol: "BTCUSDT", Interval: "5m", Date: "2024-01", Zipped: true}},
		{base: "ETHUSDT-1h-2024-02.csv", want: Name{Kind: KindKlines, Symbol: "ETHUSDT", Interval: "1h", Date: "2024-02"}},
		{base: "1000PEPEUSDT-15m-2024-03-09.ZIP", want: Name{Kind: KindKlines, Symbol: "1000PEPEUSDT", Interval: "15m", Date: "2024-03-09", Zipped: true}},
		{base: "BTCUSDT_240628-5m-2024-06-01.zip", want: Name{Kind: KindKlines, Symbol: "BTCUSDT_240628", Interval: "5m", Date: "2024-06-01", Zipped: true}},
		{base: "BTCUSDT-metrics-2024-01-01.zip", want: Name{Kind: KindMetrics, Symbol: "BTCUSDT", Date: "2024-01-01", Zipped: true}},
		{base: "BTCUSDT-metrics-2024-01-01.csv", want: Name{Kind: KindMetrics, Symbol: "BTCUSDT", Date: "2024-01-01"}},
		{base: "BTCUSDT-1w-2024-01.zip", wantErr: `unknown candle interval "1w"`},
		{base: "BTCUSDT-1mo-2024-01.zip", wantErr: `unknown candle interval "1mo"`},
		{base: "BTCUSDT-5m-2024-13-01.zip", wantErr: "is not a date"},
		{base: "BTCUSDT-aggTrades-2024-01-01.zip", wantErr: "unrecognised file name"},
		{base: "btcusdt-5m-2024-01-01.zip", wantErr: "unrecognised file name"},
		{base: "BTCUSDT-5m-2024-01-01.zip.CHECKSUM", wantErr: "unrecognised file name"},
		{base: "klines.csv", wantErr: "want SYMBOL-INTERVAL-YYYY-MM[-DD].zip"},
	}
	for _, tc := range tests {
		t.Run(tc.base, func(t *testing.T) {
			got, err := ParseName(tc.base)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// series is what a test expects stored for one symbol and interval.
type series struct {
	symbol, interval string
	n                int
	first, last      time.Time
	firstOpen        float64
}

func checkKlines(t *testing.T, db *sql.DB, want series) {
	t.Helper()
	var (
		n           int
		first, last time.Time
		open        float64
	)
	err := db.QueryRow(`SELECT count(*), min(open_time), max(open_time), arg_min(open, open_time) FROM klines WHERE symbol = ? AND interval = ?`,
		want.symbol, want.interval).Scan(&n, &first, &last, &open)
	if err != nil {
		t.Fatal(err)
	}
	if n != want.n || !first.Equal(want.first) || !last.Equal(want.last) || open != want.firstOpen {
		t.Fatalf("%s %s: %d candles %s..%s first open %v; want %d %s..%s %v", want.symbol, want.interval,
			n, first.UTC(), last.UTC(), open, want.n, want.first, want.last, want.firstOpen)
	}
}

func TestImportFormats(t *testing.T) {
	ctx := context.Background()
	day5m := series{symbol: "BTCUSDT", interval: "5m", n: 288, first: day, last: day.Add(287 * 5 * time.Minute), firstOpen: 42000}
	tests := []struct {
		name  string
		write func(dir string) string
		want  series
		line  string // the report line, with DIR for the temp dir
	}{
		{
			name: "daily zip with header, ms",
			write: func(d string) string {
				return writeZip(t, d+"/BTCUSDT-5m-2024-01-01.zip", klineCSV(klineCSVOpts{n: 288, header: true}))
			},
			want: day5m, line: "OK  DIR/BTCUSDT-5m-2024-01-01.zip: 288 klines BTCUSDT 5m",
		},
		{
			name: "daily csv without header, ms",
			write: func(d string) string {
				return writeFile(t, d+"/BTCUSDT-5m-2024-01-01.csv", klineCSV(klineCSVOpts{n: 288}))
			},
			want: day5m, line: "OK  DIR/BTCUSDT-5m-2024-01-01.csv: 288 klines BTCUSDT 5m",
		},
		{
			name: "daily csv with header, µs",
			write: func(d string) string {
				return writeFile(t, d+"/BTCUSDT-5m-2024-01-01.csv", klineCSV(klineCSVOpts{n: 288, header: true, micros: true}))
			},
			want: day5m, line: "OK  DIR/BTCUSDT-5m-2024-01-01.csv: 288 klines BTCUSDT 5m",
		},
		{
			name: "monthly zip without header, µs",
			write: func(d string) string {
				return writeZip(t, d+"/ETHUSDT-1h-2024-01.zip", klineCSV(klineCSVOpts{n: 744, step: time.Hour, micros: true}))
			},
			want: series{symbol: "ETHUSDT", interval: "1h", n: 744, first: day, last: day.Add(743 * time.Hour), firstOpen: 42000},
			line: "OK  DIR/ETHUSDT-1h-2024-01.zip: 744 klines ETHUSDT 1h",
		},
		{
			name: "monthly csv with header, ms",
			write: func(d string) string {
				return writeFile(t, d+"/ETHUSDT-1h-2024-01.csv", klineCSV(klineCSVOpts{n: 744, step: time.Hour, header: true}))
			},
			want: series{symbol: "ETHUSDT", interval: "1h", n: 744, first: day, last: day.Add(743 * time.Hour), firstOpen: 42000},
			line: "OK  DIR/ETHUSDT-1h-2024-01.csv: 744 klines ETHUSDT 1h",
		},
		{
			name: "BOM, CRLF, blank lines and no final newline",
			write: func(d string) string {
				csv := "\ufeff" + klineCSV(klineCSVOpts{n: 288, header: true, crlf: true})
				csv = strings.Replace(csv, "\r\n", "\r\n\r\n", 3)
				return writeFile(t, d+"/BTCUSDT-5m-2024-01-01.csv", strings.TrimSuffix(csv, "\r\n"))
			},
			want: day5m, line: "OK  DIR/BTCUSDT-5m-2024-01-01.csv: 288 klines BTCUSDT 5m",
		},
		{
			name: "quoted cells",
			write: func(d string) string {
				csv := klineCSV(klineCSVOpts{n: 288})
				csv = replaceLine(csv, 1, `1704067200000,"42000.0","42050.0","41950.0","42010.0","1.000",1704067499999,"123.4",10,"1.5","60000.1","0"`)
				return writeFile(t, d+"/BTCUSDT-5m-2024-01-01.csv", csv)
			},
			want: day5m, line: "OK  DIR/BTCUSDT-5m-2024-01-01.csv: 288 klines BTCUSDT 5m",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, db := openStore(t)
			dir := t.TempDir()
			path := tc.write(dir)
			var out bytes.Buffer
			sum, err := Import(ctx, st, []string{path}, &out)
			if err != nil || sum.Rejected() != 0 {
				t.Fatalf("Import: %v, %d rejected:\n%s", err, sum.Rejected(), out.String())
			}
			if got, want := strings.TrimSpace(out.String()), strings.ReplaceAll(tc.line, "DIR", dir); got != want {
				t.Errorf("report %q, want %q", got, want)
			}
			checkKlines(t, db, tc.want)
			if v := st.Version(tc.want.symbol); v == 0 {
				t.Errorf("the import did not reach the change log of %s", tc.want.symbol)
			}
		})
	}
}

func TestImportMetrics(t *testing.T) {
	ctx := context.Background()
	withGaps := metricsCSV("BTCUSDT", 288, true)
	withGaps = replaceLine(withGaps, 3, day.Add(5*time.Minute).Format(metricsTimeLayout)+",BTCUSDT,80001.000,,1.5,1.4,1.3,0.9")
	withGaps = replaceLine(withGaps, 4, day.Add(10*time.Minute).Format(metricsTimeLayout)+",BTCUSDT,,3400100000.0,,,,")
	withGaps = replaceLine(withGaps, 5, day.Add(15*time.Minute).Format(metricsTimeLayout)+",BTCUSDT,80003.000,3400300000.0,,,,")
	tests := []struct {
		name    string
		file    string
		content string
		zipped  bool
		rows    int
		line    string
	}{
		{"zip with header", "BTCUSDT-metrics-2024-01-01.zip", metricsCSV("BTCUSDT", 288, true), true, 288,
			"OK  DIR/BTCUSDT-metrics-2024-01-01.zip: 288 open interest rows BTCUSDT"},
		{"csv without header", "BTCUSDT-metrics-2024-01-01.csv", metricsCSV("BTCUSDT", 288, false), false, 288,
			"OK  DIR/BTCUSDT-metrics-2024-01-01.csv: 288 open interest rows BTCUSDT"},
		{"empty open interest skipped, empty ratios kept", "BTCUSDT-metrics-2024-01-01.csv", withGaps, false, 286,
			"OK  DIR/BTCUSDT-metrics-2024-01-01.csv: 286 open interest rows BTCUSDT (2 rows without open interest skipped)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, db := openStore(t)
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			if tc.zipped {
				writeZip(t, path, tc.content)
			} else {
				writeFile(t, path, tc.content)
			}
			var out bytes.Buffer
			sum, err := Import(ctx, st, []string{path}, &out)
			if err != nil || sum.Rejected() != 0 {
				t.Fatalf("Import: %v:\n%s", err, out.String())
			}
			if got, want := strings.TrimSpace(out.String()), strings.ReplaceAll(tc.line, "DIR", dir); got != want {
				t.Errorf("report %q, want %q", got, want)
			}
			if oi := sum.Rows()[KindMetrics]; oi != tc.rows {
				t.Errorf("summary says %d rows, want %d", oi, tc.rows)
			}
			if f := fingerprintOf(t, db, ""); f.oi != int64(tc.rows) {
				t.Errorf("%d rows stored, want %d", f.oi, tc.rows)
			}
			o, ok, err := st.LastOpenInterest(ctx, "BTCUSDT")
			if err != nil || !ok || !o.TS.Equal(day.Add(287*5*time.Minute)) || o.OpenInterestValue != 3.4e9+287e5 {
				t.Errorf("last observation %+v %v %v", o, ok, err)
			}
		})
	}
}

func TestImportDirectory(t *testing.T) {
	ctx := context.Background()
	st, db := openStore(t)
	root := t.TempDir()
	um := filepath.Join(root, "data", "futures", "um", "daily")
	first := writeZip(t, filepath.Join(um, "klines", "BTCUSDT", "5m", "BTCUSDT-5m-2024-01-01.zip"), klineCSV(klineCSVOpts{n: 288, header: true}))
	sumFile, _ := os.ReadFile(first)
	h := sha256.Sum256(sumFile)
	writeFile(t, first+".CHECKSUM", hex.EncodeToString(h[:])+"  BTCUSDT-5m-2024-01-01.zip\n")
	writeZip(t, filepath.Join(um, "klines", "BTCUSDT", "5m", "BTCUSDT-5m-2024-01-02.zip"), klineCSV(klineCSVOpts{n: 288, start: day.AddDate(0, 0, 1), header: true}))
	writeZip(t, filepath.Join(um, "metrics", "BTCUSDT", "BTCUSDT-metrics-2024-01-01.zip"), metricsCSV("BTCUSDT", 288, true))
	writeZip(t, filepath.Join(um, "markPriceKlines", "BTCUSDT", "5m", "BTCUSDT-5m-2024-01-01.zip"), klineCSV(klineCSVOpts{n: 288}))
	writeFile(t, filepath.Join(um, ".partial", "BTCUSDT-5m-2024-01-03.csv"), "junk")
	writeFile(t, filepath.Join(um, ".DS_Store"), "junk")
	writeFile(t, filepath.Join(root, "README.txt"), "notes")

	var out bytes.Buffer
	sum, err := Import(ctx, st, []string{root}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ERR " + filepath.Join(root, "README.txt") + `: unrecognised file name "README.txt": ` + nameHelp,
		"OK  " + first + ": 288 klines BTCUSDT 5m",
		"OK  " + filepath.Join(um, "klines", "BTCUSDT", "5m", "BTCUSDT-5m-2024-01-02.zip") + ": 288 klines BTCUSDT 5m",
		"ERR " + filepath.Join(um, "markPriceKlines", "BTCUSDT", "5m", "BTCUSDT-5m-2024-01-01.zip") + ": markPriceKlines/ holds mark-price candles, not trade candles",
		"OK  " + filepath.Join(um, "metrics", "BTCUSDT", "BTCUSDT-metrics-2024-01-01.zip") + ": 288 open interest rows BTCUSDT",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("report:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if sum.Rejected() != 2 {
		t.Errorf("%d rejected, want 2", sum.Rejected())
	}
	if rows := sum.Rows(); rows[KindKlines] != 576 || rows[KindMetrics] != 288 {
		k, oi := rows[KindKlines], rows[KindMetrics]
		t.Errorf("summary rows %d klines %d oi, want 576 and 288", k, oi)
	}
	checkKlines(t, db, series{symbol: "BTCUSDT", interval: "5m", n: 576, first: day, last: day.Add(575 * 5 * time.Minute), firstOpen: 42000})
}

func TestImportIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st, db := openStore(t)
	dir := t.TempDir()
	paths := []string{
		writeZip(t, dir+"/BTCUSDT-5m-2024-01-01.zip", klineCSV(klineCSVOpts{n: 288, header: true})),
		writeZip(t, dir+"/BTCUSDT-metrics-2024-01-01.zip", metricsCSV("BTCUSDT", 288, true)),
	}
	var out1, out2 bytes.Buffer
	if _, err := Import(ctx, st, paths, &out1); err != nil {
		t.Fatal(err)
	}
	before := fingerprintOf(t, db, "")
	if _, err := Import(ctx, st, paths, &out2); err != nil {
		t.Fatal(err)
	}
	if after := fingerprintOf(t, db, ""); after != before || before.klines != 288 || before.oi != 288 {
		t.Fatalf("second import changed the store: %+v -> %+v", before, after)
	}
	if out1.String() != out2.String() {
		t.Fatalf("reports differ:\n%s\n%s", out1.String(), out2.String())
	}
}

// zipStored writes a zip whose entry is not compressed, so tests can damage
// the entry's bytes without breaking the deflate stream.
func zipStored(t *testing.T, path, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: strings.TrimSuffix(filepath.Base(path), ".zip") + ".csv", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(content))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImportRejectsCorruptFile(t *testing.T) {
	ctx := context.Background()
	good := klineCSV(klineCSVOpts{n: 288, header: true}) // line n+1 is candle n
	// Line 17 is the candle at 01:15; its close_time is that plus 5m - 1ms.
	const at17 = "1704071700000"
	const ct17 = "1704071999999"
	row17 := func(o, h, l, c, v string) string {
		return strings.Join([]string{at17, o, h, l, c, v, ct17, "1", "1", "1", "1", "0"}, ",")
	}
	const kname = "BTCUSDT-5m-2024-01-01"
	type file struct {
		name    string
		content []byte
		// checksum, when set, goes into name.CHECKSUM.
		checksum string
	}
	plain := func(name, content string) file { return file{name: name, content: []byte(content)} }
	zipped := func(name, content string) file {
		p := filepath.Join(t.TempDir(), name)
		writeZip(t, p, content)
		b, _ := os.ReadFile(p)
		return file{name: name, content: b}
	}
	tests := []struct {
		name string
		f    file
		want string // the reason after "ERR path: "
	}{
		{"high below low", plain(kname+".csv", replaceLine(good, 17, row17("94500", "94000", "95000", "94500", "1"))),
			"line 17: high 94000 below low 95000"},
		{"open above high", plain(kname+".csv", replaceLine(good, 17, row17("96000", "95500", "95000", "95100", "1"))),
			"line 17: open 96000 outside [low 95000, high 95500]"},
		{"close below low", plain(kname+".csv", replaceLine(good, 17, row17("95100", "95500", "95000", "94999.9", "1"))),
			"line 17: close 94999.9 outside [low 95000, high 95500]"},
		{"zero price", plain(kname+".csv", replaceLine(good, 17, row17("0", "0", "0", "0", "1"))),
			"line 17: open 0 is not positive"},
		{"negative low", plain(kname+".csv", replaceLine(good, 17, row17("1", "2", "-1", "1", "1"))),
			"line 17: low -1 is not positive"},
		{"non-numeric price", plain(kname+".csv", replaceLine(good, 17, row17("95100", "9550O", "95000", "95100", "1"))),
			`line 17: high "9550O" is not a number`},
		{"NaN price", plain(kname+".csv", replaceLine(good, 17, row17("NaN", "95500", "95000", "95100", "1"))),
			`line 17: open "NaN" is not a finite number`},
		{"negative volume", plain(kname+".csv", replaceLine(good, 17, row17("95100", "95500", "95000", "95100", "-2"))),
			"line 17: volume -2 is negative"},
		{"wrong column count", plain(kname+".csv", replaceLine(good, 17, "1704071700000,95100,95500,95000,95100,1,1704071999999,1,1,1,0")),
			"line 17: 11 columns, want 12"},
		{"timestamp not a number", plain(kname+".csv", replaceLine(good, 17, strings.Replace(row17("95100", "95500", "95000", "95100", "1"), at17, "2024-01-01 01:20:00", 1))),
			`line 17: open_time "2024-01-01 01:20:00" is not a number`},
		{"timestamp in seconds", plain(kname+".csv", replaceLine(good, 17, strings.Replace(row17("95100", "95500", "95000", "95100", "1"), at17, "1704071700", 1))),
			"line 17: open_time 1704071700 is neither epoch milliseconds nor microseconds"},
		{"open time off the interval", plain(kname+".csv", replaceLine(good, 17, strings.Replace(row17("95100", "95500", "95000", "95100", "1"), at17, "1704071760000", 1))),
			"line 17: open_time 2024-01-01T01:16:00Z is not on a 5m boundary"},
		{"close_time not a number", plain(kname+".csv", replaceLine(good, 17, strings.Replace(row17("95100", "95500", "95000", "95100", "1"), ct17, "x", 1))),
			`line 17: close_time "x" is not a number`},
		{"header with wrong columns", plain(kname+".csv", replaceLine(good, 1, "open_time,open,high,low,close,volume")),
			"line 1: header has 6 columns, want 12"},
		{"truncated last line", plain(kname+".csv", good[:len(good)-40]),
			"line 289: 6 columns, want 12"},
		{"empty file", plain(kname+".csv", ""), "no data rows"},
		{"header only", plain(kname+".csv", "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"),
			"no data rows"},
		{"truncated zip", func() file { f := zipped(kname+".zip", good); f.content = f.content[:len(f.content)/2]; return f }(),
			"open zip (truncated download?): zip: not a valid zip file"},
		{"damaged zip entry", func() file {
			b := zipStored(t, kname+".zip", good)
			i := bytes.Index(b, []byte("1704100500000,42"))
			b[i+14] = '5' // still a valid row, so only the CRC can tell
			return file{name: kname + ".zip", content: b}
		}(), "read: BTCUSDT-5m-2024-01-01.csv in zip: zip: checksum error"},
		{"checksum mismatch", func() file {
			f := zipped(kname+".zip", good)
			f.checksum = strings.Repeat("ab", 32) + "  " + kname + ".zip"
			return f
		}(), "does not match BTCUSDT-5m-2024-01-01.zip.CHECKSUM"},
		{"two CSVs in one zip", func() file {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			for _, n := range []string{"a.csv", "b.csv"} {
				w, _ := zw.Create(n)
				w.Write([]byte(good))
			}
			zw.Close()
			return file{name: kname + ".zip", content: buf.Bytes()}
		}(), "zip holds 2 CSV files, want 1"},
		{"unrecognised name", plain("BTCUSDT-klines.csv", good), `unrecognised file name "BTCUSDT-klines.csv"`},
		{"unsupported interval", plain("BTCUSDT-1w-2024-01.csv", good), `unknown candle interval "1w"`},
		{"metrics bad number", plain("BTCUSDT-metrics-2024-01-01.csv", replaceLine(metricsCSV("BTCUSDT", 288, true), 17, "2024-01-01 01:15:00,BTCUSDT,80000,lots,1,1,1,1")),
			`line 17: sum_open_interest_value "lots" is not a number`},
		{"metrics negative", plain("BTCUSDT-metrics-2024-01-01.csv", replaceLine(metricsCSV("BTCUSDT", 288, true), 17, "2024-01-01 01:15:00,BTCUSDT,-1,5,1,1,1,1")),
			"line 17: sum_open_interest -1 is negative"},
		{"metrics other symbol", plain("BTCUSDT-metrics-2024-01-01.csv", replaceLine(metricsCSV("BTCUSDT", 288, true), 17, "2024-01-01 01:15:00,ETHUSDT,1,5,1,1,1,1")),
			`line 17: symbol "ETHUSDT" does not match the file name's BTCUSDT`},
		{"metrics bad time", plain("BTCUSDT-metrics-2024-01-01.csv", replaceLine(metricsCSV("BTCUSDT", 288, true), 17, "2024-01-01 25:15:00,BTCUSDT,1,5,1,1,1,1")),
			`line 17: create_time "2024-01-01 25:15:00" is not a time like 2024-01-01 00:00:00`},
		{"metrics wrong columns", plain("BTCUSDT-metrics-2024-01-01.csv", replaceLine(metricsCSV("BTCUSDT", 288, true), 17, "2024-01-01 01:15:00,BTCUSDT,1,5")),
			"line 17: 4 columns, want 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, db := openStore(t)
			// The store already holds other content at the corrupt file's keys:
			// a partial write would change it.
			var ks []store.Kline
			var ois []store.OpenInterest
			for i := range 288 {
				ts := day.Add(time.Duration(i) * 5 * time.Minute)
				ks = append(ks, store.Kline{Symbol: "BTCUSDT", Interval: "5m", OpenTime: ts, Open: 10, High: 12, Low: 9, Close: 11, Volume: 3})
				ois = append(ois, store.OpenInterest{Symbol: "BTCUSDT", TS: ts, OpenInterest: 7, OpenInterestValue: 70})
			}
			if err := st.UpsertKlines(ctx, ks); err != nil {
				t.Fatal(err)
			}
			if err := st.UpsertOpenInterest(ctx, ois); err != nil {
				t.Fatal(err)
			}
			before := fingerprintOf(t, db, "")
			version := st.Version("BTCUSDT")

			dir := t.TempDir()
			bad := filepath.Join(dir, tc.f.name)
			if err := os.WriteFile(bad, tc.f.content, 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.f.checksum != "" {
				writeFile(t, bad+".CHECKSUM", tc.f.checksum)
			}
			next := writeFile(t, filepath.Join(dir, "next", "ETHUSDT-5m-2024-01-01.csv"), klineCSV(klineCSVOpts{n: 288}))

			var out bytes.Buffer
			sum, err := Import(ctx, st, []string{bad, next}, &out)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "ERR "+bad+": ") || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("report:\n%s\nwant first line ERR %s: ...%s", out.String(), bad, tc.want)
			}
			if lines[1] != "OK  "+next+": 288 klines ETHUSDT 5m" {
				t.Fatalf("the next file did not import: %q", lines[1])
			}
			if sum.Rejected() != 1 || sum.Files[0].Err == nil || !strings.Contains(sum.Files[0].Err.Error(), "import "+bad+": ") {
				t.Fatalf("summary %+v, want the first file rejected with its path", sum)
			}
			if after := fingerprintOf(t, db, "BTCUSDT"); after != before {
				t.Fatalf("the rejected file changed the store: %+v -> %+v", before, after)
			}
			if v := st.Version("BTCUSDT"); v != version {
				t.Fatalf("the rejected file moved the change log: %d -> %d", version, v)
			}
			if f := fingerprintOf(t, db, "ETHUSDT"); f.klines != 288 {
				t.Fatalf("%d ETHUSDT candles after the next file, want 288", f.klines)
			}
		})
	}
}

func TestImportMissingPathAndCancel(t *testing.T) {
	st, _ := openStore(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	var out bytes.Buffer
	sum, err := Import(context.Background(), st, []string{missing}, &out)
	if err != nil || sum.Rejected() != 1 || !strings.HasPrefix(out.String(), "ERR "+missing+": stat "+missing) {
		t.Fatalf("missing path: %v %d %q", err, sum.Rejected(), out.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := writeFile(t, dir+"/BTCUSDT-5m-2024-01-01.csv", klineCSV(klineCSVOpts{n: 10}))
	if _, err := Import(ctx, st, []string{f}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled import: got %v, want context.Canceled", err)
	}
}
