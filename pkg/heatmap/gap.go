package heatmap

import (
	"fmt"
	"strings"
)

// OIGap is what a gap in the candles (candles missing between two stored
// ones) does to the open-interest change across it. A candle source applies
// it by setting Candle.AfterGap, because only the source knows the candle
// step that tells a gap from the next candle.
type OIGap string

// The policies a candle source can follow.
const (
	// OIGapReset counts the OI change across a gap as 0: no positions are
	// opened or closed from it, since when and at what price that interest
	// changed hands is unknown. The default.
	OIGapReset OIGap = "reset"
	// OIGapReference is the reference algorithm: the whole change since the
	// candle before the gap lands on the candle after it.
	OIGapReference OIGap = "reference"
)

// ParseOIGap reads the config spelling of a policy, case-insensitively; an
// empty string is OIGapReset.
func ParseOIGap(s string) (OIGap, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", string(OIGapReset):
		return OIGapReset, nil
	case string(OIGapReference):
		return OIGapReference, nil
	}
	return "", fmt.Errorf("oi gap: %q: want %q or %q", s, OIGapReset, OIGapReference)
}
