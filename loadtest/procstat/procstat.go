// Package procstat reads what a load run reports about processes and the
// machine from /proc: resident memory, CPU time, open files, and the
// machine's description and busy time.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, 100 on every Linux this runs on (sysconf needs cgo).
const clkTck = 100

// Sample is one reading of a process.
type Sample struct {
	At    time.Time
	RSSK  int64 // VmRSS, KiB
	HWMK  int64 // VmHWM, peak RSS, KiB
	Ticks int64 // utime + stime, clock ticks
	FDs   int
	// WChar is the bytes the process has handed to write calls, sockets
	// included (/proc/PID/io wchar); 0 when unreadable.
	WChar int64
}

// Read samples pid; an error means the process is gone or unreadable.
func Read(pid int) (Sample, error) {
	s := Sample{At: time.Now()}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.RSSK = n
		case "VmHWM":
			s.HWMK = n
		}
	}
	if s.Ticks, err = ticks(pid); err != nil {
		return s, err
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(fds)
	}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		s.WChar = parseWChar(io)
	}
	return s, nil
}

// parseWChar reads the wchar line of /proc/PID/io.
func parseWChar(b []byte) int64 {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// WritePerSecond is the bytes a process handed to write calls per second
// between two samples.
func WritePerSecond(a, b Sample) float64 {
	el := b.At.Sub(a.At).Seconds()
	if el <= 0 || b.WChar < a.WChar {
		return 0
	}
	return float64(b.WChar-a.WChar) / el
}

// ticks is utime+stime of pid.
func ticks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseStatTicks(b)
}

// parseStatTicks reads utime and stime from a /proc/PID/stat line. The
// command name may hold spaces and parentheses, so fields count from the last ')'.
func parseStatTicks(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command field", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the command: state is field 3, utime 14 and stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command, want at least 13", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q", f[11], f[12])
	}
	return u + s, nil
}

// CPUPercent is the CPU a process used between two samples, in % of one core.
func CPUPercent(a, b Sample) float64 {
	el := b.At.Sub(a.At).Seconds()
	if el <= 0 {
		return 0
	}
	return 100 * float64(b.Ticks-a.Ticks) / clkTck / el
}

// Children lists the PIDs whose parent is pid (nginx's workers).
func Children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// Group samples several processes as one: RSS, ticks and fds summed.
func Group(pids []int) (Sample, error) {
	var g Sample
	for _, p := range pids {
		s, err := Read(p)
		if err != nil {
			return g, err
		}
		g.At, g.RSSK, g.HWMK, g.Ticks, g.FDs = s.At, g.RSSK+s.RSSK, g.HWMK+s.HWMK, g.Ticks+s.Ticks, g.FDs+s.FDs
		g.WChar += s.WChar
	}
	return g, nil
}

// MachineTicks is the machine's total and idle CPU time.
type MachineTicks struct{ Total, Idle int64 }

// ReadMachine reads the first line of /proc/stat.
func ReadMachine() MachineTicks {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := bytes.Cut(b, []byte("\n"))
	var m MachineTicks
	fields := strings.Fields(string(line))
	if len(fields) < 2 {
		return m
	}
	for i, f := range fields[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		m.Total += v
		if i == 3 || i == 4 { // idle, iowait
			m.Idle += v
		}
	}
	return m
}

// BusyPercent is how busy the whole machine was between two readings.
func BusyPercent(a, b MachineTicks) float64 {
	d := b.Total - a.Total
	if d <= 0 {
		return 0
	}
	return 100 * float64(d-(b.Idle-a.Idle)) / float64(d)
}

// Machine is where numbers come from.
type Machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	MemTotalK int64  `json:"mem_total_kb"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	NoFile    uint64 `json:"rlimit_nofile"`
}

// Describe reads the machine's description.
func Describe() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		m.NoFile = rl.Cur
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "MemTotal:" {
				m.MemTotalK, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "linux " + strings.TrimSpace(string(b))
	}
	return m
}

// String is the one-line description the reports print.
func (m Machine) String() string {
	return fmt.Sprintf("%d cores (%s), %.1f GiB, %s, %s, RLIMIT_NOFILE %d", m.Cores, m.CPU, float64(m.MemTotalK)/(1<<20), m.Kernel, m.Go, m.NoFile)
}

// RaiseNoFile lifts the soft open-files limit to the hard one and returns it.
func RaiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", rl.Max, err)
	}
	return rl.Cur, nil
}

// Slope fits y = a + b·x by least squares and returns b: how fast a series
// grows (RSS per minute in a soak).
func Slope(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 || len(x) != len(y) {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx, sy, sxx, sxy = sx+x[i], sy+y[i], sxx+x[i]*x[i], sxy+x[i]*y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
