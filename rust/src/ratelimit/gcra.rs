//! Token-bucket arithmetic on one `u64`: the generic cell rate algorithm.
//!
//! A bucket of `capacity` tokens refilled over a period is fully described by
//! its *theoretical arrival time* (`tat`): the instant at which it would be
//! full again. One word of state is what makes lock-free sharing possible: a
//! decision is a load, a little arithmetic and one compare-and-swap, across
//! threads or across processes mapping the same memory.
//!
//! One token costs `interval_ns = ceil(period_ns / capacity)`; the bucket
//! holds `window_ns = capacity * interval_ns`. A full bucket admits exactly
//! `capacity` tokens at once, and refills one token per `interval_ns`. The
//! rounding keeps the rate at or below `capacity / period` and is exact when
//! `capacity` divides the period in nanoseconds (less than one nanosecond per
//! token otherwise). `tat <= now` means full, so zeroed memory is a full bucket.

use super::bucket::{Decision, Rate};

/// Windows are capped at 2^62 ns (146 years) so that `now + window` never
/// saturates for any monotonic clock reading below 2^63 ns (292 years of
/// uptime): a saturated limit would admit everything.
const MAX_WINDOW_NS: u64 = 1 << 62;

/// Parameters of one bucket, derived once from its [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    capacity: u64,
    interval_ns: u64,
    window_ns: u64,
}

/// The state change a decision asks for: `Some(new_tat)` to store, or `None`
/// when nothing changes (a refusal, or a request for zero tokens).
pub type Outcome = (Option<u64>, Decision);

impl Gcra {
    pub fn new(rate: &Rate) -> Self {
        let capacity = rate.capacity();
        let interval_ns = rate.period_ns().min(MAX_WINDOW_NS).div_ceil(capacity);
        Self {
            capacity,
            interval_ns,
            window_ns: capacity.saturating_mul(interval_ns).min(MAX_WINDOW_NS),
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// How long an empty bucket takes to fill up again.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    fn cost(&self, n: u64) -> u64 {
        n.saturating_mul(self.interval_ns)
    }

    /// Takes `n` tokens if they are all there. More than `capacity` never fits.
    pub fn acquire(&self, tat: u64, now: u64, n: u64) -> Outcome {
        let base = tat.max(now);
        let limit = now.saturating_add(self.window_ns);
        if n == 0 {
            return (None, self.decision(true, base, now, 0));
        }
        if n > self.capacity {
            return (None, self.decision(false, base, now, u64::MAX));
        }
        let wanted = base.saturating_add(self.cost(n));
        if wanted <= limit {
            (Some(wanted), self.decision(true, wanted, now, 0))
        } else {
            (None, self.decision(false, base, now, wanted - limit))
        }
    }

    /// Gives `n` tokens back, never beyond a full bucket.
    pub fn refund(&self, tat: u64, now: u64, n: u64) -> Option<u64> {
        if tat <= now || n == 0 {
            return None;
        }
        Some(tat.saturating_sub(self.cost(n)).max(now))
    }

    /// Takes `n` tokens unconditionally: usage reported after the fact may
    /// leave the bucket in debt, which later requests wait out.
    pub fn charge(&self, tat: u64, now: u64, n: u64) -> Option<u64> {
        if n == 0 {
            return None;
        }
        Some(tat.max(now).saturating_add(self.cost(n)))
    }

    /// The state now, without taking anything.
    pub fn peek(&self, tat: u64, now: u64) -> Decision {
        self.decision(true, tat.max(now), now, 0)
    }

    /// `refused_wait_ns` is how long until the refused request would fit.
    fn decision(&self, allowed: bool, tat: u64, now: u64, refused_wait_ns: u64) -> Decision {
        let limit = now.saturating_add(self.window_ns);
        let remaining = limit.saturating_sub(tat) / self.interval_ns;
        let retry_after_ns = if !allowed {
            refused_wait_ns
        } else if remaining >= 1 {
            0
        } else {
            // until one more token fits
            tat.saturating_add(self.interval_ns).saturating_sub(limit)
        };
        Decision {
            allowed,
            remaining,
            retry_after_ns,
            reset_ns: tat - now,
        }
    }
}
