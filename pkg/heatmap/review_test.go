package heatmap_test

import (
	"strings"
	"testing"

	"github.com/liqstream/liqstream/pkg/heatmap"
)

func afterGap(c heatmap.Candle) heatmap.Candle { c.AfterGap = true; return c }

func TestReview20AfterGapMovesNoOpenInterest(t *testing.T) {
	binance := x4
	binance.Model = heatmap.ModelBinance
	tests := []struct {
		name    string
		candles []heatmap.Candle
		// opened and closed are both sides' totals after the last candle.
		opened, closed float64
	}{
		// OI rose 1000 → 3000 while candles were missing: none of it opens;
		// the 500 it rose after the gap does.
		{"rise across the gap", []heatmap.Candle{flat(0, 1000), afterGap(up(300, 3000)), up(301, 3500)}, 500, 0},
		// A fall across the gap closes nothing of what was open before it.
		{"fall across the gap", []heatmap.Candle{flat(0, 1000), up(1, 2000), afterGap(flat(300, 500)), flat(301, 500)}, 1000, 0},
		// Without the mark the reference algorithm books the whole change.
		{"unmarked gap is the reference", []heatmap.Candle{flat(0, 1000), up(300, 3000), up(301, 3500)}, 2500, 0},
	}
	for model, p := range map[string]heatmap.Params{"classic": x4, "binance": binance} {
		for _, tc := range tests {
			t.Run(model+" "+tc.name, func(t *testing.T) {
				e := mustEngine(t, p)
				for _, c := range tc.candles {
					s, err := e.Apply(c)
					if err != nil {
						t.Fatal(err)
					}
					if c.AfterGap && (s.PositionsCreated != 0 || s.PositionsDropped != 0) {
						t.Fatalf("candle after the gap created %d and dropped %d positions, want none", s.PositionsCreated, s.PositionsDropped)
					}
				}
				long, short := e.Totals()
				if !near(long.Opened+short.Opened, tc.opened) || !near(long.Closed+short.Closed, tc.closed) {
					t.Fatalf("opened %g closed %g, want %g and %g", long.Opened+short.Opened, long.Closed+short.Closed, tc.opened, tc.closed)
				}
				// Revising the candle after the gap keeps honouring the mark.
				last := tc.candles[len(tc.candles)-1]
				if _, err := e.Revise(last); err != nil {
					t.Fatal(err)
				}
				if l2, s2 := e.Totals(); l2 != long || s2 != short {
					t.Fatalf("revising with the same candle changed the totals: %+v %+v, was %+v %+v", l2, s2, long, short)
				}
			})
		}
	}
}

func TestReview20ParseOIGap(t *testing.T) {
	tests := []struct {
		in      string
		want    heatmap.OIGap
		wantErr bool
	}{
		{"", heatmap.OIGapReset, false},
		{"reset", heatmap.OIGapReset, false},
		{" Reference ", heatmap.OIGapReference, false},
		{"carry", "", true},
	}
	for _, tc := range tests {
		got, err := heatmap.ParseOIGap(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseOIGap(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), `"carry"`) {
			t.Errorf("error %v does not name the value", err)
		}
	}
}
