package ws

import "time"

// pacer caps one subscription to one frame per update interval without ever
// delaying a frame that comes no faster than that.
//
// It decides on the producer's clock (each frame's timestamp), not on when
// this connection last wrote: arrival jitter (network, Redis, GC, a busy
// core) moves arrivals but not timestamps, so a producer on the client's own
// cadence never looks early. Sent frames sit on a grid of nominal slots one
// interval apart; a frame is due from its slot minus a tenth of the interval,
// and a frame later than its slot takes the latest slot it reached, keeping
// the grid's phase. So frames that come faster are spaced by the interval
// ± 10 % and average exactly one per interval, the grid never drifts with
// delivery, and one late frame delays nothing after it (the next punctual
// frame may then follow it sooner than an interval: the average holds).
//
// The grid's phase is the first frame's, and that frame may be late (the
// hub's cached frame a subscribe gets, one produced after a slow compute):
// then every punctual frame after it looks early by that lateness. A frame
// early on the grid but an interval (less the tolerance) after the frame
// before it is not a producer going too fast; it goes at once and the grid
// takes its phase. Only the frame right after the late one waits, once. The
// price: a producer less than 10 % faster than the interval (a 4.6 s
// snapshot interval under update_interval 5) passes at its own cadence, not
// at one frame per interval on average; within the ± 10 % spacing all the same.
type pacer struct {
	last time.Time // nominal slot of the last frame sent; zero before the first
	prev time.Time // stamp of the last frame that arrived (sent or held)
}

// arrived records the stamp of a frame that came, whether sent or held. It
// is always the newest the session has (older ones are dropped by hub
// order), so it replaces the last even when the producer's clock went back.
func (p *pacer) arrived(stamp time.Time) { p.prev = stamp }

// rephase reports whether a frame stamped stamp, early on the grid, comes on
// the producer's own cadence: an interval less the tolerance after the frame
// before it.
func (p *pacer) rephase(stamp time.Time, interval time.Duration) bool {
	return !p.prev.IsZero() && !stamp.Before(p.prev.Add(interval-tolerance(interval)))
}

// tolerance is how early a frame may be and still take its slot.
func tolerance(interval time.Duration) time.Duration { return interval / 10 }

// wait returns how long, on the producer's clock, a frame stamped stamp must
// wait for its slot; 0 means it is due now.
func (p *pacer) wait(stamp time.Time, interval time.Duration) time.Duration {
	if p.last.IsZero() {
		return 0
	}
	next := p.last.Add(interval)
	if !stamp.Before(next.Add(-tolerance(interval))) {
		return 0
	}
	if stamp.Before(p.last.Add(-interval)) {
		// A stamp far behind the grid with a newer hub order: the producer's
		// clock went back (a restarted snapshotter). Start over.
		return 0
	}
	if p.rephase(stamp, interval) {
		return 0
	}
	return next.Sub(stamp)
}

// sent records that a frame stamped stamp went out.
func (p *pacer) sent(stamp time.Time, interval time.Duration) {
	defer p.arrived(stamp)
	if p.last.IsZero() || stamp.Before(p.last.Add(-interval)) {
		p.last = stamp // the first frame, or the producer's clock went back
		return
	}
	next := p.last.Add(interval)
	tol := tolerance(interval)
	if stamp.Before(next.Add(-tol)) && p.rephase(stamp, interval) {
		p.last = stamp // early only because the grid was out of phase
		return
	}
	if !stamp.After(next.Add(tol)) {
		p.last = next // on its slot, early within tolerance, or held until it
		return
	}
	// Late (a slow producer, or one late frame): take the latest slot of the
	// same grid the frame reached. Re-anchoring on the late stamp would make
	// every punctual frame after it look early and hold it by the lateness.
	p.last = next.Add(stamp.Sub(next.Add(-tol)) / interval * interval)
}
