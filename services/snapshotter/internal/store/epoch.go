package store

import (
	"context"
	"fmt"
)

// NextEpoch raises and returns the store's epoch: a counter kept in the
// DuckDB file, one higher at every start of the snapshotter. Frames carry it
// with their seq, so gateways order a restarted snapshotter's frames after
// its previous run's without comparing the two runs' wall clocks. It writes
// at every start, so a failure is a *FileError naming the fault (a full
// disk, say), as Open's is.
func (s *Store) NextEpoch(ctx context.Context) (uint64, error) {
	epoch, err := s.nextEpoch(ctx)
	if err != nil {
		return 0, fileError("raise epoch in store", s.path, err)
	}
	return epoch, nil
}

func (s *Store) nextEpoch(ctx context.Context) (uint64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value UBIGINT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("create meta: %w", err)
	}
	var epoch uint64
	err = tx.QueryRowContext(ctx, `INSERT INTO meta (key, value) VALUES ('epoch', 1)
		ON CONFLICT (key) DO UPDATE SET value = meta.value + 1 RETURNING value`).Scan(&epoch)
	if err != nil {
		return 0, fmt.Errorf("raise: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return epoch, nil
}
