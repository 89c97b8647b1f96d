package ingest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/liqstream/liqstream/services/snapshotter/internal/store"
)

// Column counts of Binance's USD-M archives.
const (
	klineColumns   = 12
	metricsColumns = 8
	// liquidationColumns: time, side, order_type, time_in_force,
	// original_quantity, price, average_price, order_status,
	// last_fill_quantity, accumulated_fill_quantity.
	liquidationColumns = 10
)

// lineError is a parse failure at one line of a file.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// lineReader hands out the lines of a reader as substrings of large string
// chunks: a million-line file costs a few hundred allocations rather than one
// per line, and fields can be sliced out without copying.
type lineReader struct {
	r     io.Reader
	buf   []byte
	chunk string
	pos   int
	line  int // number of the line last returned, 1-based
	eof   bool
	err   error
}

// lineChunk is the read size, and so the longest line accepted.
const lineChunk = 1 << 20

func newLineReader(r io.Reader) *lineReader { return newLineReaderSize(r, lineChunk) }

func newLineReaderSize(r io.Reader, size int) *lineReader {
	return &lineReader{r: r, buf: make([]byte, 0, size)}
}

// next returns the next line without its line ending; ok is false at the end
// of input or on a read error (see err).
func (lr *lineReader) next() (line string, ok bool) {
	for lr.pos >= len(lr.chunk) {
		if lr.eof || lr.err != nil {
			return "", false
		}
		lr.fill()
	}
	rest := lr.chunk[lr.pos:]
	if i := strings.IndexByte(rest, '\n'); i >= 0 {
		line, lr.pos = rest[:i], lr.pos+i+1
	} else {
		line, lr.pos = rest, len(lr.chunk)
	}
	lr.line++
	if lr.line == 1 {
		line = strings.TrimPrefix(line, "\ufeff")
	}
	return strings.TrimSuffix(line, "\r"), true
}

// fill reads until the buffer is full or the input ends and turns every
// complete line into the next chunk, keeping a partial last line for later.
func (lr *lineReader) fill() {
	for len(lr.buf) < cap(lr.buf) {
		n, err := lr.r.Read(lr.buf[len(lr.buf):cap(lr.buf)])
		lr.buf = lr.buf[:len(lr.buf)+n]
		if errors.Is(err, io.EOF) {
			lr.eof = true
			break
		}
		if err != nil {
			lr.err = err
			return
		}
	}
	end := len(lr.buf)
	if !lr.eof {
		end = bytes.LastIndexByte(lr.buf, '\n') + 1
		if end == 0 {
			lr.err = fmt.Errorf("a line longer than %d bytes", cap(lr.buf))
			return
		}
	}
	lr.chunk, lr.pos = string(lr.buf[:end]), 0
	lr.buf = lr.buf[:copy(lr.buf, lr.buf[end:])]
}

// splitFields splits one CSV line into dst. Binance never quotes, so the
// common case is a plain split; a line with quotes goes through encoding/csv.
func splitFields(line string, dst []string) ([]string, error) {
	dst = dst[:0]
	if strings.IndexByte(line, '"') >= 0 {
		rec, err := csv.NewReader(strings.NewReader(line)).Read()
		if err != nil {
			return nil, fmt.Errorf("malformed CSV: %w", err)
		}
		return append(dst, rec...), nil
	}
	for {
		i := strings.IndexByte(line, ',')
		if i < 0 {
			return append(dst, line), nil
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}

// parseNumber reads one numeric cell; the cell's text goes into messages so
// the user sees what the file says rather than a re-formatted float.
func parseNumber(name, s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if t := strings.TrimSpace(s); t != s {
			return parseNumber(name, t)
		}
		return 0, fmt.Errorf("%s %q is not a number", name, s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s %q is not a finite number", name, s)
	}
	return v, nil
}

// Epoch timestamps of archives are milliseconds, except Binance's spot files
// from 2025 on, which are microseconds. The ranges cannot overlap for dates
// between 1973 and 5138, so the magnitude tells them apart row by row.
const (
	minEpochMillis = 1e11
	minEpochMicros = 1e14
	maxEpochMicros = 1e17
)

// epochMicros reads an epoch timestamp in milliseconds or microseconds.
func epochMicros(name, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if t := strings.TrimSpace(s); t != s {
			return epochMicros(name, t)
		}
		return 0, fmt.Errorf("%s %q is not a number", name, s)
	}
	switch {
	case n >= minEpochMicros && n < maxEpochMicros:
		return n, nil
	case n >= minEpochMillis && n < minEpochMicros:
		return n * 1000, nil
	}
	return 0, fmt.Errorf("%s %d is neither epoch milliseconds nor microseconds", name, n)
}

// klineFields are the text cells of one candle, from a CSV row or the REST API.
type klineFields struct {
	openTime, open, high, low, close, volume string
}

// klineMaker turns candle cells of one series into store rows, rejecting
// anything no exchange could have printed with a reason naming the cell.
type klineMaker struct {
	symbol, interval string
	stepUS           int64
}

func newKlineMaker(symbol, interval string) (klineMaker, error) {
	step, err := store.IntervalDuration(interval)
	if err != nil {
		return klineMaker{}, err
	}
	return klineMaker{symbol: symbol, interval: interval, stepUS: step.Microseconds()}, nil
}

func (m klineMaker) make(f klineFields) (store.Kline, error) {
	us, err := epochMicros("open_time", f.openTime)
	if err != nil {
		return store.Kline{}, err
	}
	if us%m.stepUS != 0 {
		return store.Kline{}, fmt.Errorf("open_time %s is not on a %s boundary", time.UnixMicro(us).UTC().Format(time.RFC3339Nano), m.interval)
	}
	var v [5]float64
	for i, c := range [5]struct{ name, text string }{{"open", f.open}, {"high", f.high}, {"low", f.low}, {"close", f.close}, {"volume", f.volume}} {
		if v[i], err = parseNumber(c.name, c.text); err != nil {
			return store.Kline{}, err
		}
		if i < 4 && !(v[i] > 0) {
			return store.Kline{}, fmt.Errorf("%s %s is not positive", c.name, c.text)
		}
	}
	open, high, low, cl, vol := v[0], v[1], v[2], v[3], v[4]
	switch {
	case high < low:
		return store.Kline{}, fmt.Errorf("high %s below low %s", f.high, f.low)
	case open < low || open > high:
		return store.Kline{}, fmt.Errorf("open %s outside [low %s, high %s]", f.open, f.low, f.high)
	case cl < low || cl > high:
		return store.Kline{}, fmt.Errorf("close %s outside [low %s, high %s]", f.close, f.low, f.high)
	case vol < 0:
		return store.Kline{}, fmt.Errorf("volume %s is negative", f.volume)
	}
	return store.Kline{Symbol: m.symbol, Interval: m.interval, OpenTime: time.UnixMicro(us).UTC(),
		Open: open, High: high, Low: low, Close: cl, Volume: vol}, nil
}

// csvRows walks the data rows of an archive CSV: it numbers lines, skips
// blank ones and a header (recognised by its first column's name), and checks
// the column count. row is called with the line's cells; returning false
// stops the walk. A file without a single data row is an error: an archive
// that lost its rows is a broken download, not an empty day.
func csvRows(r io.Reader, columns int, headerFirst string, row func(line int, cells []string) (bool, error)) error {
	lr := newLineReader(r)
	cells := make([]string, 0, columns+4)
	rows, first := 0, true
	for {
		line, ok := lr.next()
		if !ok {
			break
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		var err error
		if cells, err = splitFields(line, cells); err != nil {
			return &lineError{lr.line, err}
		}
		if first {
			first = false
			if strings.EqualFold(strings.TrimSpace(cells[0]), headerFirst) {
				if len(cells) != columns {
					return &lineError{lr.line, fmt.Errorf("header has %d columns, want %d", len(cells), columns)}
				}
				continue
			}
		}
		if len(cells) != columns {
			return &lineError{lr.line, fmt.Errorf("%d columns, want %d", len(cells), columns)}
		}
		rows++
		more, err := row(lr.line, cells)
		if err != nil {
			return &lineError{lr.line, err}
		}
		if !more {
			return nil
		}
	}
	if lr.err != nil {
		// Chunked reading means lines before the failure may not have been
		// looked at, so no line number is claimed.
		return fmt.Errorf("read: %w", lr.err)
	}
	if rows == 0 {
		return errors.New("no data rows")
	}
	return nil
}

// klineRows parses a klines archive CSV
// (open_time,open,high,low,close,volume,close_time,...).
func klineRows(r io.Reader, m klineMaker, emit func(store.Kline) bool) error {
	return csvRows(r, klineColumns, "open_time", func(_ int, c []string) (bool, error) {
		k, err := m.make(klineFields{openTime: c[0], open: c[1], high: c[2], low: c[3], close: c[4], volume: c[5]})
		if err != nil {
			return false, err
		}
		// close_time is not stored, but a cell there that is not a time
		// means the columns are not what they claim to be.
		if _, err := epochMicros("close_time", c[6]); err != nil {
			return false, err
		}
		return emit(k), nil
	})
}

// metricsTimeLayout is create_time in Binance's metrics archives, in UTC.
const metricsTimeLayout = "2006-01-02 15:04:05"

// metricsRows parses a metrics archive CSV (create_time,symbol,
// sum_open_interest,sum_open_interest_value,...). A row with an empty
// sum_open_interest or sum_open_interest_value is skipped and counted, not an
// error: Binance's files have such gaps, a gap costs the model one
// observation, and a zero would fake a collapse of open interest. The ratio
// columns are not stored and not checked.
func metricsRows(r io.Reader, symbol string, emit func(store.OpenInterest) bool, skipped *int) error {
	return csvRows(r, metricsColumns, "create_time", func(_ int, c []string) (bool, error) {
		ts, err := metricsTime(c[0])
		if err != nil {
			return false, err
		}
		if sym := strings.TrimSpace(c[1]); sym != symbol {
			return false, fmt.Errorf("symbol %q does not match the file name's %s", c[1], symbol)
		}
		if strings.TrimSpace(c[2]) == "" || strings.TrimSpace(c[3]) == "" {
			*skipped++
			return true, nil
		}
		var v [2]float64
		for i, name := range [2]string{"sum_open_interest", "sum_open_interest_value"} {
			if v[i], err = parseNumber(name, c[2+i]); err != nil {
				return false, err
			}
			if v[i] < 0 {
				return false, fmt.Errorf("%s %s is negative", name, c[2+i])
			}
		}
		return emit(store.OpenInterest{Symbol: symbol, TS: ts, OpenInterest: v[0], OpenInterestValue: v[1]}), nil
	})
}

// metricsTime reads create_time: "2024-01-01 00:00:00" in UTC as Binance
// writes it, or an epoch in ms or µs as other exporters do.
func metricsTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if strings.IndexByte(s, '-') > 0 {
		t, err := time.Parse(metricsTimeLayout, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("create_time %q is not a time like 2024-01-01 00:00:00", s)
		}
		return t, nil
	}
	us, err := epochMicros("create_time", s)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(us).UTC(), nil
}

// pipeBatch is how many rows cross between the parsing goroutine and the
// store at once: large enough that channel operations vanish per row, small
// enough to keep both sides busy.
const pipeBatch = 4096

// pipe runs produce in its own goroutine and yields what it emits, so parsing
// a file overlaps with the store appending it; on two cores that hides most
// of the parse. produce's error is yielded after its rows. When the consumer
// stops early, emit returns false and produce must return.
func pipe[T any](produce func(emit func(T) bool) error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		type batch struct {
			rows []T
			err  error
		}
		full := make(chan batch, 4)
		free := make(chan []T, 6)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(full)
			send := func(b batch) bool {
				select {
				case full <- b:
					return true
				case <-done:
					return false
				}
			}
			cur := make([]T, 0, pipeBatch)
			err := produce(func(v T) bool {
				cur = append(cur, v)
				if len(cur) < pipeBatch {
					return true
				}
				if !send(batch{rows: cur}) {
					return false
				}
				select {
				case cur = <-free:
					cur = cur[:0]
				default:
					cur = make([]T, 0, pipeBatch)
				}
				return true
			})
			send(batch{rows: cur, err: err})
		}()
		defer func() {
			close(done)
			wg.Wait()
		}()
		for b := range full {
			for _, v := range b.rows {
				if !yield(v, nil) {
					return
				}
			}
			if b.err != nil {
				var zero T
				yield(zero, b.err)
				return
			}
			select {
			case free <- b.rows:
			default:
			}
		}
	}
}

// liquidationRows reads a liquidationSnapshot CSV: one forceOrder event per
// row, time in epoch ms. The filled quantity at the average price is what
// happened, as for the live stream; an order with nothing filled is skipped
// and counted.
func liquidationRows(r io.Reader, symbol string, emit func(store.Liquidation) bool, skipped *int) error {
	return csvRows(r, liquidationColumns, "time", func(_ int, c []string) (bool, error) {
		us, err := epochMicros("time", c[0])
		if err != nil {
			return false, err
		}
		side := strings.TrimSpace(c[1])
		if side != "BUY" && side != "SELL" {
			return false, fmt.Errorf("side %q, want BUY or SELL", c[1])
		}
		var v [3]float64
		for i, col := range [3]struct {
			name string
			at   int
		}{{"price", 5}, {"average_price", 6}, {"accumulated_fill_quantity", 9}} {
			if v[i], err = parseNumber(col.name, c[col.at]); err != nil {
				return false, err
			}
			if v[i] < 0 {
				return false, fmt.Errorf("%s %s is negative", col.name, c[col.at])
			}
		}
		if v[2] == 0 || v[1] == 0 {
			*skipped++
			return true, nil
		}
		l := Liquidation{Symbol: symbol, Side: side, Price: v[0], Quantity: v[2], Notional: v[1] * v[2], Time: time.UnixMicro(us).UTC()}
		if l.Price == 0 {
			return false, fmt.Errorf("price %s is not above 0", c[5])
		}
		return emit(l.Row()), nil
	})
}
