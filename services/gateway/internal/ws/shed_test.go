package ws

import (
	"testing"
	"time"

	"github.com/liqstream/liqstream/pkg/wsclient"
)

// Shed closes the asked number of clients with 1012, counts them as
// "rebalance", and never picks a client that connected after the given
// moment (the edge placed it as it is now: shedding it would loop).
func TestShedClosesWith1012AndSkipsReturnedClients(t *testing.T) {
	f := start(t, DefaultConfig())
	var first []*wsclient.Client
	for i := 0; i < 5; i++ {
		first = append(first, dial(t, f.url, wsclient.Options{}))
	}
	waitFor(t, "5 connections", func() bool { return f.srv.Active() == 5 })

	if n := f.srv.Shed(2, time.Now()); n != 2 {
		t.Fatalf("Shed(2) closed %d", n)
	}
	waitFor(t, "3 connections", func() bool { return f.srv.Active() == 3 })
	var shed, kept []*wsclient.Client
	for _, c := range first {
		select {
		case <-c.Done():
			shed = append(shed, c)
		default:
			kept = append(kept, c)
		}
	}
	if len(shed) != 2 {
		t.Fatalf("%d clients closed, want 2", len(shed))
	}
	for _, c := range shed {
		if code := closeCode(c); code != CloseServiceRestart {
			t.Fatalf("shed client closed with %v, want 1012", c.Err())
		}
	}
	if n := counter(f.m.Disconnects.WithLabelValues("rebalance")); n != 2 {
		t.Fatalf("rebalance disconnects %v, want 2", n)
	}

	// This client connected after shedding began: only the three older may go.
	began := time.Now()
	back := dial(t, f.url, wsclient.Options{})
	waitFor(t, "4 connections", func() bool { return f.srv.Active() == 4 })
	if n := f.srv.Shed(10, began); n != 3 {
		t.Fatalf("Shed(10) closed %d, want the 3 that never came back", n)
	}
	for _, c := range kept {
		awaitClose(t, c)
	}
	waitFor(t, "1 connection", func() bool { return f.srv.Active() == 1 })
	select {
	case <-back.Done():
		t.Fatalf("the returned client was shed: %v", back.Err())
	default:
	}

}
