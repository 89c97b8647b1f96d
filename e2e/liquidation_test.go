package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liqstream/liqstream/e2e/internal/testenv"
	"github.com/liqstream/liqstream/pkg/fakebinance"
	"github.com/liqstream/liqstream/pkg/protocol"
)

// liveCadence is the snapshot interval and the clients' update_interval of
// the live Binance test: 1 s and 1 so make test stays short, or with
// LIQSTREAM_E2E_DEFAULTS=1 the 5 s and 5 a user gets, to measure the open
// candle's freshness there (docs/PERFORMANCE.md); every assertion holds at both.
func liveCadence() (interval time.Duration, updateInterval int) {
	if os.Getenv("LIQSTREAM_E2E_DEFAULTS") == "1" {
		return 5 * time.Second, 5
	}
	return time.Second, 1
}

// liveBinanceStack runs a fake Binance on the wall clock and a snapshotter
// reading it (REST history, then the streams) with a gateway in front.
func liveBinanceStack(t *testing.T, symbols ...string) (*fakebinance.Server, *testenv.Stack) {
	t.Helper()
	interval, _ := liveCadence()
	now := time.Now().UTC()
	fx := fakebinance.New(fakebinance.Config{Symbols: symbols, Start: now.Add(-30 * time.Hour), Now: now, Seed: 3,
		// Binance's kline stream pushes the open candle every 250 ms.
		UpdateEvery: 250 * time.Millisecond})
	srv := httptest.NewServer(fx)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fx.Run(ctx)
	}()
	// Cleanups run last-in first-out: the market stops after the processes.
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	s := testenv.StartStack(t, "--symbols="+strings.Join(symbols, ","), "--demo.enabled=false", "--simulator.enabled=false",
		"--binance.enabled", "--binance.base_url="+srv.URL, "--binance.stream_url="+strings.Replace(srv.URL, "http://", "ws://", 1),
		"--binance.poll_interval=1s", "--binance.lookback=29h", fmt.Sprintf("--snapshot.interval=%s", interval), "--log_level=debug")
	waitReady(t, s.GatewayURL())
	return fx, s
}

// TestLiquidationReachesClientsInTheNextSnapshot: a liquidation on the
// fake Binance stream is stored and carried by the next snapshot frame a
// WebSocket client reads, the page in Chromium draws its mark, and
// /data/liquidations serves it.
func TestLiquidationReachesClientsInTheNextSnapshot(t *testing.T) {
	fx, s := liveBinanceStack(t, "BTCUSDT")
	interval, every := liveCadence()
	browser := testenv.Browser(t)
	page := open(t, browser, s.GatewayURL()+fmt.Sprintf("/?symbol=BTCUSDT&update_interval=%d", every))
	waitFor(t, page, `__liqstream.frames > 0`, 60*time.Second)
	c := dial(t, s.WSURL())
	if err := c.Send(map[string]any{"action": "subscribe", "symbols": []string{"BTCUSDT"}, "update_interval": every}); err != nil {
		t.Fatal(err)
	}
	next := func() protocol.Snapshot {
		t.Helper()
		f, err := c.Next(10*time.Second + 2*interval)
		if err != nil {
			t.Fatal(err)
		}
		var snap protocol.Snapshot
		if err := json.Unmarshal(f.Bytes, &snap); err != nil || snap.Type != protocol.TypeSnapshot {
			t.Fatalf("frame %.200s: %v", f.Bytes, err)
		}
		return snap
	}
	first := next()
	// Not in the last seconds of a candle: the liquidation must belong to
	// the candle the next frames show.
	for fx.Now().Sub(fx.Now().Truncate(5*time.Minute)) > 5*time.Minute-15*interval {
		first = next()
	}
	if n := len(first.Data.Liquidations); n != 0 {
		t.Fatalf("a frame carries %d liquidations before any happened", n)
	}
	// A long liquidated 0.3 % under the price, for 1.5 BTC.
	price := first.Data.CurrentPrice * 0.997
	liq := fx.Liquidate("BTCUSDT", "SELL", price, 1.5)
	var base uint64
	for {
		snap := next()
		if base == 0 {
			// The frame read first may have been on its way already.
			base = snap.Seq - 1
		}
		if len(snap.Data.Liquidations) == 0 {
			if snap.Seq > base+2 {
				t.Fatalf("frame seq %d still carries no liquidation; it happened before seq %d was produced", snap.Seq, base+1)
			}
			continue
		}
		got := snap.Data.Liquidations[0]
		want := protocol.Liquidation{Time: protocol.FormatTime(liq.Time), Side: "long", Price: liq.Price, Quantity: 1.5, Notional: liq.Price * 1.5}
		if len(snap.Data.Liquidations) != 1 || got != want {
			t.Fatalf("frame seq %d carries %+v, want exactly %+v", snap.Seq, snap.Data.Liquidations, want)
		}
		t.Logf("liquidation at %s in frame seq %d (first frame read after it: seq %d)", want.Time, snap.Seq, base+1)
		break
	}

	// The page draws it: a long mark at its price.
	waitFor(t, page, fmt.Sprintf(`__liqstream.marks.shown && __liqstream.marks.list.some(m => m.side === "long" && Math.abs(m.price - %v) < 1e-9 && m.r > 0)`, liq.Price), 20*time.Second)
	t.Logf("the page draws the mark: %s", evalString(t, page, `JSON.stringify(__liqstream.marks.list)`))
	// A page opened afterwards has it from data/liquidations as well as
	// from the frames: the last hour's marks survive a reload.
	later := open(t, browser, s.GatewayURL()+fmt.Sprintf("/?symbol=BTCUSDT&update_interval=%d", every))
	waitFor(t, later, fmt.Sprintf(`__liqstream.marks.loaded === 1 && __liqstream.marks.list.some(m => Math.abs(m.price - %v) < 1e-9)`, liq.Price), 20*time.Second)

	// And the input endpoint serves it through the gateway.
	code, body := httpGet(t, s.GatewayURL()+"/data/liquidations?symbol=BTCUSDT")
	var got struct {
		Data []protocol.Liquidation `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got.Data) != 1 || got.Data[0].Price != liq.Price {
		t.Fatalf("GET /data/liquidations: %d %s (%v), want the one liquidation", code, body, err)
	}

	// How fresh the open candle is: every frame's candle must be a state
	// the market pushed, and the time from that push to the client reading
	// it is logged (a measurement; docs/PERFORMANCE.md reports it).
	var ages, delivery, behind []time.Duration
	for len(ages) < 8 {
		f, err := c.Next(10*time.Second + 2*interval)
		if err != nil {
			t.Fatal(err)
		}
		var snap protocol.Snapshot
		if err := json.Unmarshal(f.Bytes, &snap); err != nil {
			t.Fatal(err)
		}
		open, err := time.Parse(time.RFC3339Nano, snap.Data.Candle.OpenTime)
		if err != nil {
			t.Fatal(err)
		}
		pushed, ok := fx.Pushed("BTCUSDT", open, snap.Data.Candle.Volume)
		if !ok {
			t.Fatalf("frame seq %d shows candle %+v, a state the market never pushed", snap.Seq, snap.Data.Candle)
		}
		stamp, err := time.Parse(time.RFC3339Nano, snap.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		ages = append(ages, f.Read.Sub(pushed))
		// Of which: the producer's stamp to the client's read.
		delivery = append(delivery, f.Read.Sub(stamp))
		// Behind the market: since the next state was pushed, if it was
		// by the read (the fake's market moves once a second).
		var lag time.Duration
		if next, ok := fx.Superseded("BTCUSDT", open, snap.Data.Candle.Volume); ok && next.Before(f.Read) {
			lag = f.Read.Sub(next)
		}
		behind = append(behind, lag)
	}
	spread := func(ds []time.Duration) string {
		slices.Sort(ds)
		r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
		return fmt.Sprintf("min %s, median %s, max %s", r(ds[0]), r(ds[len(ds)/2]), r(ds[len(ds)-1]))
	}
	t.Logf("open candle on the client (snapshot.interval %s, update_interval %d, %d frames): from Binance's first push of the state shown to the client reading it: %s; of which the frame's timestamp to the read: %s; behind the market at the read (since the next state's push): %s",
		interval, every, len(ages), spread(ages), spread(delivery), spread(behind))
}
