package store

import (
	"context"
	"path/filepath"
	"testing"
)

// The epoch survives a reopen and rises at every call: a restarted
// snapshotter's frames order after the previous run's.
func TestNextEpochRisesAcrossReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.duckdb")
	var got []uint64
	for i := 0; i < 3; i++ {
		st, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		e, err := st.NextEpoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("epochs %v, want 1 2 3", got)
	}
}
