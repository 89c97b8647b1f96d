package store

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/duckdb/duckdb-go/v2"
)

// Fault names why the store's file could not be opened or written, as a
// fixed label: the reason key of the store's log lines.
type Fault string

// The faults the store recognises; FaultUnknown is any other error, reported
// as the driver worded it.
const (
	FaultUnknown     Fault = "unknown"
	FaultLocked      Fault = "locked"
	FaultIsDirectory Fault = "is_directory"
	FaultNotDuckDB   Fault = "not_duckdb"
	FaultVersion     Fault = "incompatible_version"
	FaultCorrupt     Fault = "corrupt"
	FaultNoSpace     Fault = "no_space"
	FaultTooLarge    Fault = "file_too_large"
	FaultPermission  Fault = "permission_denied"
	FaultReadOnly    Fault = "read_only"
	FaultNotDir      Fault = "parent_not_directory"
	FaultIO          Fault = "io_error"
	FaultInvalidated Fault = "invalidated"
)

// FileError is a failure of the store's file: what was being done (Op, such
// as "open store"), the file, the fault in plain words, and the driver's or
// the system's error, which it wraps.
type FileError struct {
	Op     string
	Path   string
	Fault  Fault
	Detail string // Fault in plain words; empty for FaultUnknown
	Err    error
}

func (e *FileError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err)
	}
	return fmt.Sprintf("%s %s: %s: %v", e.Op, e.Path, e.Detail, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// fileError wraps err as a FileError of op on path, with its fault named.
func fileError(op, path string, err error) *FileError {
	f, detail := classify(path, err)
	return &FileError{Op: op, Path: path, Fault: f, Detail: detail, Err: err}
}

// lockHolder reads the pid out of DuckDB's "Conflicting lock is held in
// /usr/bin/x (PID 1234)".
var lockHolder = regexp.MustCompile(`\(PID (\d+)\)`)

// osFaults maps what the system said to a fault. DuckDB reports errno only
// as strerror text inside its message ("Could not write file "x": No space
// left on device"), so errors are matched by text as well as by errno;
// lower-cased, as Go's errno texts are.
var osFaults = []struct {
	errno  syscall.Errno
	text   string
	fault  Fault
	detail string
}{
	{syscall.ENOSPC, "no space left on device", FaultNoSpace, "the disk is full (no space left on device)"},
	{syscall.EDQUOT, "disk quota exceeded", FaultNoSpace, "the disk quota is used up (disk quota exceeded)"},
	{syscall.EFBIG, "file too large", FaultTooLarge,
		"the file reached the largest size allowed (file too large: the process's file size limit, RLIMIT_FSIZE, or the filesystem's maximum)"},
	{syscall.EROFS, "read-only file system", FaultReadOnly, "the filesystem is mounted read-only"},
	{syscall.EACCES, "permission denied", FaultPermission,
		"permission denied (the snapshotter's user may not read and write the file or its directory)"},
	{syscall.EPERM, "operation not permitted", FaultPermission,
		"permission denied (operation not permitted: the file may be immutable, or a security policy forbids it)"},
	{syscall.EISDIR, "is a directory", FaultIsDirectory, "the path is a directory, not a DuckDB file"},
	{syscall.ENOTDIR, "not a directory", FaultNotDir, "a parent of the path is a file, not a directory"},
	{syscall.EIO, "input/output error", FaultIO, "the disk reported an I/O error"},
}

// classify names the fault behind err, which happened to the file at path,
// and says it in plain words.
func classify(path string, err error) (Fault, string) {
	msg := err.Error()
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(msg, "Could not set lock on file") || strings.Contains(msg, "Conflicting lock is held"):
		if m := lockHolder.FindStringSubmatch(msg); m != nil {
			return FaultLocked, fmt.Sprintf("the file is locked by another process (pid %s holds it; DuckDB allows one writer process)", m[1])
		}
		return FaultLocked, "the file is locked by another process (DuckDB allows one writer process)"
	case isFatal(err):
		// The message carries the error that caused it ("Original error: …
		// No space left on device"): name that too.
		detail := "DuckDB invalidated the database after a fatal error"
		if _, cause := classifyOS(path, err, low); cause != "" {
			detail = cause + ", and DuckDB invalidated the database after the fatal error"
		}
		return FaultInvalidated, detail + "; the snapshotter must restart to reopen the file"
	case strings.Contains(msg, "not a valid DuckDB database file"):
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			return FaultNotDuckDB, "the file is empty (0 bytes), not a DuckDB database (a start that failed before writing it can leave one)"
		}
		return FaultNotDuckDB, "the file is not a DuckDB database (another kind of file, or its header is corrupt)"
	case strings.Contains(msg, "database file with version number"):
		return FaultVersion, "the file was written by a DuckDB version this build cannot read"
	case strings.Contains(msg, "Corrupt database file"):
		return FaultCorrupt, "the file is corrupt (a block's checksum does not match)"
	}
	return classifyOS(path, err, low)
}

// classifyOS names the system's error inside err; low is err's text in lower case.
func classifyOS(path string, err error, low string) (Fault, string) {
	for _, f := range osFaults {
		if errors.Is(err, f.errno) || strings.Contains(low, f.text) {
			return f.fault, f.detail
		}
	}
	// DuckDB's "Could not read from file" says nothing more on some
	// systems when handed a directory.
	if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
		return FaultIsDirectory, "the path is a directory, not a DuckDB file"
	}
	return FaultUnknown, ""
}

// isFatal reports whether err is DuckDB's fatal error: the database instance
// is invalidated and refuses every later query until it is opened again.
func isFatal(err error) bool {
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeFatal {
		return true
	}
	return strings.Contains(err.Error(), "database has been invalidated")
}

// noSpace reports whether f means the disk (or the file's size limit) is
// full: a write that may succeed once space is freed.
func noSpace(f Fault) bool { return f == FaultNoSpace || f == FaultTooLarge }
