package stream

import "time"

// bucket is the token bucket behind upstream.rate: it lets a syncer send
// at most rate messages a second on average, in bursts of at most burst,
// so that draining a backlog cannot take the whole of a thin uplink.
// Resends spend tokens too: they cross the same link.
type bucket struct {
	rate   float64 // tokens per second
	burst  float64 // most tokens held
	tokens float64
	last   time.Time
}

// newBucket returns a full bucket for rate messages a second, or nil (no
// limit) for 0. It holds a tenth of a second's worth, at least one
// message: enough to keep a pipeline busy, little enough that the link
// sees an even flow rather than a burst each second.
func newBucket(rate int, now time.Time) *bucket {
	if rate <= 0 {
		return nil
	}
	burst := max(1, float64(rate)/10)
	return &bucket{rate: float64(rate), burst: burst, tokens: burst, last: now}
}

// allow returns how many of want messages may go now, and when none may,
// how long until one may. A nil bucket allows everything.
func (b *bucket) allow(now time.Time, want int) (int, time.Duration) {
	if b == nil {
		return want, 0
	}
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		return min(want, int(b.tokens)), 0
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	return 0, max(wait, time.Millisecond)
}

// spend takes one token for a message sent.
func (b *bucket) spend() {
	if b != nil {
		b.tokens--
	}
}
