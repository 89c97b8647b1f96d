// Package ingest brings market data into the store: Binance's public USD-M
// archives (data.binance.vision), zipped or plain, and the live Binance REST
// source that keeps the store up to date.
package ingest

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Sink is the part of the store an archive import writes through; each call
// is one file, stored whole or not at all.
type Sink interface {
	ImportKlines(ctx context.Context, rows iter.Seq2[store.Kline, error]) (int, error)
	ImportOpenInterest(ctx context.Context, rows iter.Seq2[store.OpenInterest, error]) (int, error)
	ImportLiquidations(ctx context.Context, rows iter.Seq2[store.Liquidation, error]) (int, error)
}

// Kind is what an archive file holds.
type Kind int

// The archive kinds liqstream stores.
const (
	KindKlines Kind = iota + 1
	KindMetrics
	// KindLiquidations is liquidationSnapshot: the forceOrder events of a
	// day, as Binance published them for some periods.
	KindLiquidations
)

// String names the kind as the archive folders do.
func (k Kind) String() string {
	switch k {
	case KindKlines:
		return "klines"
	case KindMetrics:
		return "metrics"
	case KindLiquidations:
		return "liquidationSnapshot"
	}
	return "unknown"
}

// Name is what an archive's file name says about its content; the files
// themselves carry no symbol (klines) or interval, so the name is the only
// source of both.
type Name struct {
	Kind     Kind
	Symbol   string
	Interval string // klines only, Binance notation ("5m")
	Date     string // "2024-01-01" for a daily file, "2024-01" for a monthly one
	Zipped   bool
}

var (
	klineName   = regexp.MustCompile(`^([A-Z0-9_]{2,30})-([0-9]+[smhdwM]|1mo)-([0-9]{4}-[0-9]{2}(?:-[0-9]{2})?)\.(zip|csv)$`)
	metricsName = regexp.MustCompile(`^([A-Z0-9_]{2,30})-metrics-([0-9]{4}-[0-9]{2}(?:-[0-9]{2})?)\.(zip|csv)$`)
	liqName     = regexp.MustCompile(`^([A-Z0-9_]{2,30})-liquidationSnapshot-([0-9]{4}-[0-9]{2}(?:-[0-9]{2})?)\.(zip|csv)$`)
)

// nameHelp is the tail of every name rejection, so the user learns the rule.
const nameHelp = "want SYMBOL-INTERVAL-YYYY-MM[-DD].zip|.csv (klines), SYMBOL-metrics-YYYY-MM-DD.zip|.csv or SYMBOL-liquidationSnapshot-YYYY-MM-DD.zip|.csv"

// ParseName recognises Binance's archive file names, like
// BTCUSDT-5m-2024-01-01.zip, BTCUSDT-5m-2024-01.csv or
// BTCUSDT-metrics-2024-01-01.zip.
func ParseName(base string) (Name, error) {
	ext := filepath.Ext(base)
	norm := strings.TrimSuffix(base, ext) + strings.ToLower(ext)
	var n Name
	if m := metricsName.FindStringSubmatch(norm); m != nil {
		n = Name{Kind: KindMetrics, Symbol: m[1], Date: m[2], Zipped: m[3] == "zip"}
	} else if m := liqName.FindStringSubmatch(norm); m != nil {
		n = Name{Kind: KindLiquidations, Symbol: m[1], Date: m[2], Zipped: m[3] == "zip"}
	} else if m := klineName.FindStringSubmatch(norm); m != nil {
		n = Name{Kind: KindKlines, Symbol: m[1], Interval: m[2], Date: m[3], Zipped: m[4] == "zip"}
		if _, err := store.IntervalDuration(n.Interval); err != nil {
			return Name{}, fmt.Errorf("file name %q: %w", base, err)
		}
	} else {
		return Name{}, fmt.Errorf("unrecognised file name %q: %s", base, nameHelp)
	}
	layout := "2006-01-02"
	if len(n.Date) == len("2006-01") {
		layout = "2006-01"
	}
	if _, err := time.Parse(layout, n.Date); err != nil {
		return Name{}, fmt.Errorf("file name %q: %q is not a date", base, n.Date)
	}
	return n, nil
}

// notTradeCandles are the archive folders whose files are named like klines
// but hold other prices; importing them would overwrite trade candles.
var notTradeCandles = map[string]string{
	"markPriceKlines":    "mark-price candles",
	"indexPriceKlines":   "index-price candles",
	"premiumIndexKlines": "premium-index candles",
}

// FileError is why a file was rejected; Line is 0 when the reason is not one
// line's.
type FileError struct {
	Path string
	Line int
	Err  error
}

// Error names the file, the line when known, and the reason.
func (e *FileError) Error() string { return fmt.Sprintf("import %s: %s", e.Path, e.Reason()) }

// Unwrap returns the reason, for errors.Is and errors.As.
func (e *FileError) Unwrap() error { return e.Err }

// Reason is the error without the path, as the import's ERR line prints it.
func (e *FileError) Reason() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

// FileResult is the outcome of importing one file.
type FileResult struct {
	Path string
	Name Name // zero when the name was not recognised
	// Rows is how many rows were written; Skipped how many metrics rows
	// lacked open interest, or liquidation rows had nothing filled, and
	// were left out.
	Rows, Skipped int
	Err           *FileError // nil when the file was imported
}

// String is the file's line of the import report.
func (r FileResult) String() string {
	if r.Err != nil {
		return fmt.Sprintf("ERR %s: %s", r.Path, r.Err.Reason())
	}
	switch r.Name.Kind {
	case KindMetrics:
		s := fmt.Sprintf("OK  %s: %d open interest rows %s", r.Path, r.Rows, r.Name.Symbol)
		if r.Skipped > 0 {
			s += fmt.Sprintf(" (%d rows without open interest skipped)", r.Skipped)
		}
		return s
	case KindLiquidations:
		s := fmt.Sprintf("OK  %s: %d liquidations %s", r.Path, r.Rows, r.Name.Symbol)
		if r.Skipped > 0 {
			s += fmt.Sprintf(" (%d orders with nothing filled skipped)", r.Skipped)
		}
		return s
	}
	return fmt.Sprintf("OK  %s: %d klines %s %s", r.Path, r.Rows, r.Name.Symbol, r.Name.Interval)
}

// Summary is what Import did, file by file.
type Summary struct {
	Files []FileResult
}

// Rejected counts the files that were not imported; the CLI exits non-zero
// when it is not 0.
func (s Summary) Rejected() int {
	n := 0
	for _, f := range s.Files {
		if f.Err != nil {
			n++
		}
	}
	return n
}

// Rows returns the rows written by kind.
func (s Summary) Rows() map[Kind]int {
	out := map[Kind]int{}
	for _, f := range s.Files {
		if f.Err == nil {
			out[f.Name.Kind] += f.Rows
		}
	}
	return out
}

// Import imports every file named by paths, walking directories recursively,
// and writes one line per file to out (nil discards). Each file is stored
// whole in one statement or rejected whole, leaving the store as it was, and
// the import goes on with the next file; Summary.Rejected tells whether any
// was. The error is non-nil only when ctx ended, with the files done so far
// in the summary. In directories, names starting with "." are skipped and
// X.CHECKSUM files, Binance's sha256 of X, are used to verify X rather than
// imported, wherever X is named from.
func Import(ctx context.Context, sink Sink, paths []string, out io.Writer) (Summary, error) {
	if out == nil {
		out = io.Discard
	}
	var sum Summary
	report := func(r FileResult) {
		sum.Files = append(sum.Files, r)
		fmt.Fprintln(out, r)
	}
	for _, p := range paths {
		for _, e := range expand(p) {
			if e.err != nil {
				report(FileResult{Path: e.path, Err: &FileError{Path: e.path, Err: e.err}})
				continue
			}
			r := ImportFile(ctx, sink, e.path)
			if ctx.Err() != nil {
				return sum, fmt.Errorf("import %s: %w", e.path, context.Cause(ctx))
			}
			report(r)
		}
	}
	return sum, nil
}

// entry is a file to import, or a path that could not be read.
type entry struct {
	path string
	err  error
}

// expand lists the files to import for one path argument in lexical order,
// with an entry for each part of the tree that could not be read: one
// unreadable folder must not hide the rest.
func expand(p string) []entry {
	fi, err := os.Stat(p)
	if err != nil {
		return []entry{{p, err}}
	}
	if !fi.IsDir() {
		if isChecksum(p) {
			return nil
		}
		return []entry{{path: p}}
	}
	var out []entry
	filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			out = append(out, entry{path, err})
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if path != p && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && !isChecksum(path) {
			out = append(out, entry{path: path})
		}
		return nil
	})
	return out
}

func isChecksum(path string) bool { return strings.HasSuffix(path, ".CHECKSUM") }

// ImportFile imports one archive file, recognised by its name.
func ImportFile(ctx context.Context, sink Sink, path string) FileResult {
	res := FileResult{Path: path}
	fail := func(line int, err error) FileResult {
		res.Rows, res.Skipped = 0, 0
		res.Err = &FileError{Path: path, Line: line, Err: err}
		return res
	}
	name, err := ParseName(filepath.Base(path))
	if err != nil {
		return fail(0, err)
	}
	res.Name = name
	for _, dir := range strings.Split(filepath.ToSlash(filepath.Dir(path)), "/") {
		if what, bad := notTradeCandles[dir]; bad && name.Kind == KindKlines {
			return fail(0, fmt.Errorf("%s/ holds %s, not trade candles", dir, what))
		}
	}
	if err := verifyChecksum(path); err != nil {
		return fail(0, err)
	}
	open := openCSV
	if name.Zipped {
		open = openZippedCSV
	}
	r, err := open(path)
	if err != nil {
		return fail(0, err)
	}
	defer r.Close()

	switch name.Kind {
	case KindKlines:
		m, err := newKlineMaker(name.Symbol, name.Interval)
		if err != nil {
			return fail(0, err)
		}
		res.Rows, err = sink.ImportKlines(ctx, pipe(func(emit func(store.Kline) bool) error {
			return klineRows(r, m, emit)
		}))
		if err != nil {
			return fail(lineOf(err))
		}
	case KindMetrics:
		skipped := 0
		res.Rows, err = sink.ImportOpenInterest(ctx, pipe(func(emit func(store.OpenInterest) bool) error {
			return metricsRows(r, name.Symbol, emit, &skipped)
		}))
		if err != nil {
			return fail(lineOf(err))
		}
		res.Skipped = skipped
	case KindLiquidations:
		skipped := 0
		res.Rows, err = sink.ImportLiquidations(ctx, pipe(func(emit func(store.Liquidation) bool) error {
			return liquidationRows(r, name.Symbol, emit, &skipped)
		}))
		if err != nil {
			return fail(lineOf(err))
		}
		res.Skipped = skipped
	}
	return res
}

// lineOf splits a parse error into its line and reason.
func lineOf(err error) (int, error) {
	if le := (*lineError)(nil); errors.As(err, &le) {
		return le.line, le.err
	}
	return 0, err
}

// verifyChecksum compares path with the sha256 in path.CHECKSUM when that
// file exists: a download cut short can still be a well-formed zip of fewer
// rows, which nothing else would notice.
func verifyChecksum(path string) error {
	want, err := os.ReadFile(path + ".CHECKSUM")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read checksum: %w", err)
	}
	fields := strings.Fields(string(want))
	if len(fields) == 0 {
		return fmt.Errorf("%s.CHECKSUM is empty", filepath.Base(path))
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("checksum: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, fields[0]) {
		return fmt.Errorf("sha256 %s does not match %s.CHECKSUM (%s): truncated or corrupted download", got, filepath.Base(path), fields[0])
	}
	return nil
}

func openCSV(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// openZippedCSV opens the one CSV inside a Binance zip. archive/zip checks the
// entry's CRC when it is read to the end, so a damaged entry fails the import
// even when the zip's directory survived.
func openZippedCSV(path string) (io.ReadCloser, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("open zip (truncated download?): %w", err)
	}
	var csvs []*zip.File
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || strings.HasPrefix(f.Name, "__MACOSX/") || !strings.EqualFold(filepath.Ext(f.Name), ".csv") {
			continue
		}
		csvs = append(csvs, f)
	}
	if len(csvs) != 1 {
		zr.Close()
		return nil, fmt.Errorf("zip holds %d CSV files, want 1", len(csvs))
	}
	rc, err := csvs[0].Open()
	if err != nil {
		zr.Close()
		return nil, fmt.Errorf("open %s in zip: %w", csvs[0].Name, err)
	}
	return zipEntry{rc, zr, csvs[0].Name}, nil
}

// zipEntry closes the entry and its archive together and names the entry in
// read errors.
type zipEntry struct {
	io.ReadCloser
	zr   *zip.ReadCloser
	name string
}

func (z zipEntry) Read(p []byte) (int, error) {
	n, err := z.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%s in zip: %w", z.name, err)
	}
	return n, err
}

func (z zipEntry) Close() error {
	z.ReadCloser.Close()
	return z.zr.Close()
}
