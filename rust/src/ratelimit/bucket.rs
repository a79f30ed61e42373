//! Token bucket arithmetic in exact integers.
//!
//! Tokens are counted in "units" where one token is `period_ns` units and
//! the bucket refills `capacity` units per nanosecond. With that choice the
//! refill rate `capacity / period` is represented exactly, so "admit exactly
//! `capacity` tokens per period" holds without floating-point drift (u128
//! keeps `capacity * period_ns` from overflowing for any u64 inputs).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::clock::{Clock, MonotonicClock};

const NANOS_PER_SEC: f64 = 1e9;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateError {
    ZeroCapacity,
    InvalidPeriod(String),
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::ZeroCapacity => f.write_str("capacity must be a positive integer"),
            RateError::InvalidPeriod(p) => {
                write!(
                    f,
                    "period_seconds must be a positive finite number, got {p}"
                )
            }
        }
    }
}

impl std::error::Error for RateError {}

/// `capacity` tokens per `period_ns`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    capacity: u64,
    period_ns: u64,
}

impl Rate {
    pub fn new(capacity: u64, period_ns: u64) -> Result<Self, RateError> {
        if capacity == 0 {
            return Err(RateError::ZeroCapacity);
        }
        if period_ns == 0 {
            return Err(RateError::InvalidPeriod("0ns".into()));
        }
        Ok(Self {
            capacity,
            period_ns,
        })
    }

    /// Periods are kept in whole nanoseconds: sub-nanosecond periods act as
    /// 1ns and absurdly long ones saturate at ~584 years.
    pub fn from_secs(capacity: u64, period_seconds: f64) -> Result<Self, RateError> {
        if !(period_seconds.is_finite() && period_seconds > 0.0) {
            return Err(RateError::InvalidPeriod(period_seconds.to_string()));
        }
        // `as` saturates for out-of-range floats.
        let ns = ((period_seconds * NANOS_PER_SEC).round() as u64).max(1);
        Self::new(capacity, ns)
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    pub fn period_seconds(&self) -> f64 {
        self.period_ns as f64 / NANOS_PER_SEC
    }

    fn full(&self) -> u128 {
        u128::from(self.capacity) * u128::from(self.period_ns)
    }

    fn units(&self, tokens: u64) -> u128 {
        u128::from(tokens) * u128::from(self.period_ns)
    }
}

/// Outcome of [`BucketState::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Whole tokens left after the decision.
    pub remaining: u64,
    /// Time until at least one token is available (0 if `remaining >= 1`);
    /// for a refusal, until the refused request would fit.
    pub retry_after_ns: u64,
    /// Time until the bucket is full again (0 if it is full).
    pub reset_ns: u64,
}

impl Decision {
    pub fn retry_after_secs(&self) -> f64 {
        self.retry_after_ns as f64 / NANOS_PER_SEC
    }

    pub fn reset_secs(&self) -> f64 {
        self.reset_ns as f64 / NANOS_PER_SEC
    }
}

/// Unsynchronised state of one bucket; callers provide locking and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    units: u128,
    last_ns: u64,
}

impl BucketState {
    pub fn full(rate: &Rate, now_ns: u64) -> Self {
        Self {
            units: rate.full(),
            last_ns: now_ns,
        }
    }

    /// Credits the time elapsed since the last update. A clock that went
    /// backwards credits nothing and does not move `last_ns` back, so the
    /// same interval can never be credited twice.
    fn refill(&mut self, rate: &Rate, now_ns: u64) {
        if now_ns > self.last_ns {
            let elapsed = u128::from(now_ns - self.last_ns);
            self.units = self
                .units
                .saturating_add(elapsed * u128::from(rate.capacity))
                .min(rate.full());
            self.last_ns = now_ns;
        }
    }

    pub fn try_acquire(&mut self, rate: &Rate, now_ns: u64, n: u64) -> Decision {
        self.refill(rate, now_ns);
        // n > capacity can never fit; checked first so `units(n)` is bounded.
        let allowed = n <= rate.capacity && self.units >= rate.units(n);
        if allowed {
            self.units -= rate.units(n);
        }
        self.decision(rate, allowed)
    }

    pub fn refund(&mut self, rate: &Rate, now_ns: u64, n: u64) {
        self.refill(rate, now_ns);
        self.units = self
            .units
            .saturating_add(rate.units(n.min(rate.capacity)))
            .min(rate.full());
    }

    /// Whole tokens available now.
    pub fn available(&mut self, rate: &Rate, now_ns: u64) -> u64 {
        self.refill(rate, now_ns);
        self.remaining(rate)
    }

    fn remaining(&self, rate: &Rate) -> u64 {
        // units <= capacity * period_ns, so the quotient fits in u64.
        (self.units / u128::from(rate.period_ns)) as u64
    }

    fn is_full(&self, rate: &Rate) -> bool {
        self.units >= rate.full()
    }

    fn decision(&self, rate: &Rate, allowed: bool) -> Decision {
        let remaining = self.remaining(rate);
        let retry_after_ns = if remaining >= 1 {
            0
        } else {
            // Units still missing for one token, at `capacity` units per ns.
            let missing = u128::from(rate.period_ns) - self.units;
            u64::try_from(missing.div_ceil(u128::from(rate.capacity))).unwrap_or(u64::MAX)
        };
        // Units missing for a full bucket, at `capacity` units per ns.
        let missing = rate.full() - self.units.min(rate.full());
        let reset_ns =
            u64::try_from(missing.div_ceil(u128::from(rate.capacity))).unwrap_or(u64::MAX);
        Decision {
            allowed,
            remaining,
            retry_after_ns,
            reset_ns,
        }
    }
}

/// Recovers the guard of a poisoned mutex: bucket state is plain integers
/// updated without panicking code in between, so it is always consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A thread-safe token bucket that starts full.
#[derive(Debug)]
pub struct TokenBucket<C: Clock = MonotonicClock> {
    rate: Rate,
    clock: C,
    // A Mutex rather than atomics: the state is 24 bytes (no portable
    // 128-bit CAS) and critical sections are a handful of integer ops.
    state: Mutex<BucketState>,
}

impl TokenBucket {
    pub fn new(rate: Rate) -> Self {
        Self::with_clock(rate, MonotonicClock::new())
    }
}

impl<C: Clock> TokenBucket<C> {
    pub fn with_clock(rate: Rate, clock: C) -> Self {
        let state = Mutex::new(BucketState::full(&rate, clock.now_ns()));
        Self { rate, clock, state }
    }

    pub fn rate(&self) -> &Rate {
        &self.rate
    }

    pub fn try_acquire(&self, n: u64) -> Decision {
        let mut state = lock(&self.state);
        state.try_acquire(&self.rate, self.clock.now_ns(), n)
    }

    pub fn refund(&self, n: u64) {
        let mut state = lock(&self.state);
        state.refund(&self.rate, self.clock.now_ns(), n);
    }

    pub fn available(&self) -> u64 {
        let mut state = lock(&self.state);
        state.available(&self.rate, self.clock.now_ns())
    }
}

/// One bucket per key, created full on first use, with a bound on the
/// number of keys kept.
#[derive(Debug)]
pub struct KeyedTokenBuckets<C: Clock = MonotonicClock> {
    rate: Rate,
    clock: C,
    max_keys: usize,
    buckets: Mutex<HashMap<Box<str>, BucketState>>,
}

impl KeyedTokenBuckets {
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self::with_clock(rate, max_keys, MonotonicClock::new())
    }
}

impl<C: Clock> KeyedTokenBuckets<C> {
    /// `max_keys` is raised to at least 1.
    pub fn with_clock(rate: Rate, max_keys: usize, clock: C) -> Self {
        Self {
            rate,
            clock,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> &Rate {
        &self.rate
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    pub fn len(&self) -> usize {
        lock(&self.buckets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn try_acquire(&self, key: &str, n: u64) -> Decision {
        let now = self.clock.now_ns();
        let mut buckets = lock(&self.buckets);
        if let Some(state) = buckets.get_mut(key) {
            return state.try_acquire(&self.rate, now, n);
        }
        if buckets.len() >= self.max_keys {
            self.evict(&mut buckets, now);
        }
        let mut state = BucketState::full(&self.rate, now);
        let decision = state.try_acquire(&self.rate, now, n);
        buckets.insert(key.into(), state);
        decision
    }

    /// Gives tokens back to an existing bucket (an unknown key is already full).
    pub fn refund(&self, key: &str, n: u64) {
        let now = self.clock.now_ns();
        if let Some(state) = lock(&self.buckets).get_mut(key) {
            state.refund(&self.rate, now, n);
        }
    }

    /// Makes room for a new key. Full buckets go first: dropping them loses
    /// nothing, as a recreated bucket starts full. If that frees less than a
    /// tenth of `max_keys`, the least recently used buckets go too (they are
    /// the most refilled, and forgetting one can only admit more, never
    /// less). Freeing a tenth at a time keeps the O(n) sweep amortised.
    fn evict(&self, buckets: &mut HashMap<Box<str>, BucketState>, now: u64) {
        let rate = &self.rate;
        buckets.retain(|_, s| {
            s.refill(rate, now);
            !s.is_full(rate)
        });
        let target = self.max_keys - (self.max_keys / 10).max(1);
        if buckets.len() <= target {
            return;
        }
        let mut excess = buckets.len() - target;
        let mut stamps: Vec<u64> = buckets.values().map(|s| s.last_ns).collect();
        let (_, &mut cutoff, _) = stamps.select_nth_unstable(excess - 1);
        // Everything strictly older than the cutoff goes, then ties until the
        // exact count is reached.
        let older = stamps.iter().filter(|&&t| t < cutoff).count();
        let mut ties = excess - older;
        buckets.retain(|_, s| {
            let evict = s.last_ns < cutoff || (s.last_ns == cutoff && ties > 0);
            if s.last_ns == cutoff && evict {
                ties -= 1;
            }
            if evict {
                excess -= 1;
            }
            !evict
        });
        debug_assert_eq!(excess, 0);
    }
}
