package registry

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The back-off of a rate-limited host.
const (
	// RecoverEvery is how often a host's reduced rate grows back, by
	// RecoverFactor, while it is not rate-limited again.
	RecoverEvery = time.Minute
	// RecoverFactor is the growth per RecoverEvery: +10%.
	RecoverFactor = 1.1
	// MinRate is the floor of a host's rate, in requests per second.
	MinRate = 0.05
	// DefaultPause is how long a host is paused after a 429 that carries
	// no Retry-After.
	DefaultPause = 30 * time.Second
	// MaxPause caps a Retry-After.
	MaxPause = time.Hour
)

// limiter is the request limiter of one registry host: a token bucket at
// the configured rate and burst, halved each time the host rate-limits
// fluxd, paused for the Retry-After, then recovering by RecoverFactor per
// RecoverEvery up to the configured rate. All its methods take the time,
// so its behaviour is a pure function of the calls (tests drive it with a
// fake clock).
type limiter struct {
	mu          sync.Mutex
	configured  float64
	burst       int
	cur         float64
	bucket      *rate.Limiter
	pausedUntil time.Time
	// lastStep is the start of the current recovery step: the end of the
	// last pause, or the last step.
	lastStep time.Time
	// lastPenalty is when the rate was last halved. A 429 answering a
	// request sent before it does not halve again: it is the same burst.
	lastPenalty time.Time
}

func newLimiter(rps float64, burst int) *limiter {
	return &limiter{
		configured: rps,
		burst:      burst,
		cur:        rps,
		bucket:     rate.NewLimiter(rate.Limit(rps), burst),
	}
}

// reserve takes a token at now. It returns how long to wait before sending,
// and a cancel func to give the token back if the request is not sent. It
// returns paused=true (and no token) while the host is paused.
func (l *limiter) reserve(now time.Time) (wait time.Duration, cancel func(), pausedUntil time.Time, paused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.pausedUntil) {
		return 0, nil, l.pausedUntil, true
	}
	l.recover(now)
	r := l.bucket.ReserveN(now, 1)
	return r.DelayFrom(now), func() { r.CancelAt(now) }, time.Time{}, false
}

// paused reports whether the host is paused at now.
func (l *limiter) paused(now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pausedUntil, now.Before(l.pausedUntil)
}

// penalize records that the host rate-limited a request sent at sent:
// pause it for retryAfter (DefaultPause when 0, at most MaxPause) and,
// unless the request went out before the last halving, halve the rate.
func (l *limiter) penalize(now, sent time.Time, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if retryAfter <= 0 {
		retryAfter = DefaultPause
	}
	retryAfter = min(retryAfter, MaxPause)
	if until := now.Add(retryAfter); until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	if l.lastPenalty.IsZero() || !sent.Before(l.lastPenalty) {
		l.cur = max(MinRate, l.cur/2)
		l.lastPenalty = now
	}
	// Recovery counts from the end of the pause, not through it.
	l.lastStep = l.pausedUntil
	l.apply(now)
}

// recover grows a reduced rate by RecoverFactor for every full RecoverEvery
// since the last step. Called with l.mu held.
func (l *limiter) recover(now time.Time) {
	if l.cur >= l.configured || now.Before(l.lastStep) {
		return
	}
	steps := int(now.Sub(l.lastStep) / RecoverEvery)
	if steps == 0 {
		return
	}
	l.cur = min(l.configured, l.cur*math.Pow(RecoverFactor, float64(steps)))
	l.lastStep = l.lastStep.Add(time.Duration(steps) * RecoverEvery)
	l.apply(now)
}

// apply sets the bucket to the current rate, with the burst reduced in
// proportion so that a recovered host is not hit by a full burst at once.
func (l *limiter) apply(now time.Time) {
	b := max(1, int(math.Round(float64(l.burst)*l.cur/l.configured)))
	l.bucket.SetLimitAt(now, rate.Limit(l.cur))
	l.bucket.SetBurstAt(now, b)
}

// state is the current rate and pause at now.
func (l *limiter) state(now time.Time) (cur, configured float64, pausedUntil time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recover(now)
	return l.cur, l.configured, l.pausedUntil
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date. 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
