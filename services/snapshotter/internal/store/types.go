package store

import "time"

// Kline is one candle as stored: Binance USD-M kline fields that the heatmap needs.
type Kline struct {
	Symbol   string
	Interval string // Binance notation: "5m", "15m", "1h", ...
	OpenTime time.Time
	Open     float64
	High     float64
	Low      float64
	Close    float64
	Volume   float64
}

// OpenInterest is one open-interest observation (Binance "metrics" row).
type OpenInterest struct {
	Symbol string
	TS     time.Time
	// OpenInterest is in contracts (base asset); OpenInterestValue in USDT.
	OpenInterest      float64
	OpenInterestValue float64
}
