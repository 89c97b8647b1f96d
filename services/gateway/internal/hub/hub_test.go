package hub

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

type rec struct {
	mu  sync.Mutex
	got []string
}

func (r *rec) Send(f *Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, f.Symbol+":"+string(f.Bytes))
}

func (r *rec) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// subscribe mimics a connection: it sends the returned latest frames itself.
func subscribe(h *Hub, r *rec, syms []string, max int) error {
	latest, err := h.Subscribe(r, syms, max)
	for _, f := range latest {
		r.Send(f)
		f.Release()
	}
	return err
}

func TestSubscribeSendsLatestThenUpdates(t *testing.T) {
	h := New([]string{"ETHUSDT", "BTCUSDT"})
	h.Publish("BTCUSDT", []byte("b1"))
	a, b := &rec{}, &rec{}
	if err := subscribe(h, a, []string{"BTCUSDT", "ETHUSDT"}, 10); err != nil {
		t.Fatal(err)
	}
	if got := a.take(); !reflect.DeepEqual(got, []string{"BTCUSDT:b1"}) {
		t.Fatalf("on subscribe got %v, want the latest BTC frame only (ETH has none)", got)
	}
	if err := subscribe(h, b, []string{"ETHUSDT"}, 10); err != nil {
		t.Fatal(err)
	}
	h.Publish("ETHUSDT", []byte("e1"))
	h.Publish("BTCUSDT", []byte("b2"))
	if got := a.take(); !reflect.DeepEqual(got, []string{"ETHUSDT:e1", "BTCUSDT:b2"}) {
		t.Fatalf("a got %v", got)
	}
	if got := b.take(); !reflect.DeepEqual(got, []string{"ETHUSDT:e1"}) {
		t.Fatalf("b got %v", got)
	}
	if got := h.Subscriptions(); !reflect.DeepEqual(got, map[string]int{"BTCUSDT": 1, "ETHUSDT": 2}) {
		t.Fatalf("subscriptions %v", got)
	}
	h.Unsubscribe(a, []string{"ETHUSDT", "SOLUSDT"})
	h.Publish("ETHUSDT", []byte("e2"))
	if got := a.take(); len(got) != 0 {
		t.Fatalf("unsubscribed a still got %v", got)
	}
	if got := b.take(); !reflect.DeepEqual(got, []string{"ETHUSDT:e2"}) {
		t.Fatalf("b got %v", got)
	}
	h.Remove(b)
	h.Publish("ETHUSDT", []byte("e3"))
	if got := b.take(); len(got) != 0 {
		t.Fatalf("removed b still got %v", got)
	}
	if got := h.Subscriptions(); !reflect.DeepEqual(got, map[string]int{"BTCUSDT": 1}) {
		t.Fatalf("subscriptions after removal %v", got)
	}
}

func TestSubscribeRefusals(t *testing.T) {
	h := New([]string{"BTCUSDT", "ETHUSDT", "SOLUSDT"})
	a := &rec{}
	err := subscribe(h, a, []string{"BTCUSDT", "DOGEUSDT"}, 10)
	var ue *UnknownSymbolsError
	if !errors.As(err, &ue) || !reflect.DeepEqual(ue.Unknown, []string{"DOGEUSDT"}) || !strings.Contains(err.Error(), "BTCUSDT, ETHUSDT, SOLUSDT") {
		t.Fatalf("got %v, want an UnknownSymbolsError naming DOGEUSDT and the valid symbols", err)
	}
	if len(h.Subscriptions()) != 0 {
		t.Fatal("a refused subscribe subscribed the known symbol")
	}
	if err := subscribe(h, a, []string{"BTCUSDT", "ETHUSDT"}, 2); err != nil {
		t.Fatal(err)
	}
	// Re-subscribing held symbols does not count twice.
	if err := subscribe(h, a, []string{"BTCUSDT"}, 2); err != nil {
		t.Fatalf("re-subscribe: %v", err)
	}
	if err := subscribe(h, a, []string{"SOLUSDT"}, 2); err == nil || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("third symbol with limit 2: got %v", err)
	}
}

func TestSetSymbolsSortsAndDedups(t *testing.T) {
	h := New([]string{"ETHUSDT", "BTCUSDT", "ETHUSDT"})
	if got := h.Symbols(); !reflect.DeepEqual(got, []string{"BTCUSDT", "ETHUSDT"}) {
		t.Fatalf("symbols %v", got)
	}
}

func TestFramesAreReleasedWhenReplaced(t *testing.T) {
	h := New([]string{"BTCUSDT"})
	h.Publish("BTCUSDT", []byte("one"))
	first := h.latest["BTCUSDT"]
	if n := first.refs.Load(); n != 1 {
		t.Fatalf("latest frame holds %d references, want 1 (the hub's)", n)
	}
	latest, err := h.Subscribe(&rec{}, []string{"BTCUSDT"}, 10)
	if err != nil || len(latest) != 1 || latest[0] != first || first.refs.Load() != 2 {
		t.Fatalf("subscribe returned %v %v, refs %d", latest, err, first.refs.Load())
	}
	h.Publish("BTCUSDT", []byte("two"))
	if n := first.refs.Load(); n != 1 {
		t.Fatalf("replaced frame still referenced %d times while a caller holds it, want 1", n)
	}
	latest[0].Release()
	if n := first.refs.Load(); n != 0 {
		t.Fatalf("replaced frame refs %d after the caller released it, want 0", n)
	}
}

func TestSetSymbolsDropsWhatIsNoLongerServed(t *testing.T) {
	h := New([]string{"BTCUSDT", "ETHUSDT"})
	h.Publish("ETHUSDT", []byte("e1"))
	eth := h.latest["ETHUSDT"]
	a, b := &rec{}, &rec{}
	if err := subscribe(h, a, []string{"BTCUSDT", "ETHUSDT"}, 10); err != nil {
		t.Fatal(err)
	}
	if err := subscribe(h, b, []string{"BTCUSDT"}, 10); err != nil {
		t.Fatal(err)
	}
	a.take()
	lost := h.SetSymbols([]string{"BTCUSDT", "SOLUSDT"})
	if !reflect.DeepEqual(lost, map[Subscriber][]string{a: {"ETHUSDT"}}) {
		t.Fatalf("lost %v, want only a's ETHUSDT", lost)
	}
	if n := eth.refs.Load(); n != 0 {
		t.Fatalf("the removed symbol's latest frame holds %d references, want 0", n)
	}
	if n := h.Publish("ETHUSDT", []byte("e2")); n != 0 || a.take() != nil {
		t.Fatalf("a frame of a removed symbol reached %d subscribers", n)
	}
	if _, ok := h.Latest("ETHUSDT"); ok {
		t.Fatal("a removed symbol still has a latest frame")
	}
	if got := h.Subscriptions(); !reflect.DeepEqual(got, map[string]int{"BTCUSDT": 2}) {
		t.Fatalf("subscriptions %v", got)
	}
	if err := subscribe(h, b, []string{"SOLUSDT"}, 10); err != nil {
		t.Fatalf("subscribe to an added symbol: %v", err)
	}
}

func TestPublishOrderRisesPerSymbol(t *testing.T) {
	h := New([]string{"BTCUSDT", "ETHUSDT"})
	var orders []uint64
	for _, sym := range []string{"BTCUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT"} {
		h.Publish(sym, []byte("x"))
		orders = append(orders, h.latest[sym].Order)
	}
	if !reflect.DeepEqual(orders, []uint64{1, 2, 1, 3}) {
		t.Fatalf("orders %v, want each symbol counted on its own", orders)
	}
}
