use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const SEC: u64 = 1_000_000_000;

fn bucket(capacity: u64, period_ns: u64) -> (TokenBucket<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000 * SEC));
    let b = TokenBucket::with_clock(Rate::new(capacity, period_ns).unwrap(), clock.clone());
    (b, clock)
}

#[test]
fn admits_exactly_capacity_then_refuses() {
    let (b, _clock) = bucket(5, 60 * SEC);
    for left in (0..5).rev() {
        let d = b.try_acquire(1);
        assert!(d.allowed);
        assert_eq!(d.remaining, left);
    }
    let d = b.try_acquire(1);
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.retry_after_ns, 12 * SEC); // one token every 60s / 5
    assert_eq!(d.retry_after_secs(), 12.0);
}

#[test]
fn retry_after_is_zero_while_tokens_remain() {
    let (b, _clock) = bucket(3, SEC);
    assert_eq!(b.try_acquire(1).retry_after_ns, 0);
}

#[test]
fn refused_requests_take_nothing() {
    let (b, _clock) = bucket(4, SEC);
    assert!(b.try_acquire(3).allowed);
    let d = b.try_acquire(2);
    assert!(!d.allowed);
    assert_eq!(d.remaining, 1);
    assert!(b.try_acquire(1).allowed);
}

#[test]
fn more_than_capacity_is_never_allowed() {
    let (b, _clock) = bucket(4, SEC);
    let d = b.try_acquire(5);
    assert!(!d.allowed);
    assert_eq!(d.remaining, 4);
    assert!(b.try_acquire(0).allowed);
    assert_eq!(b.available(), 4);
}

#[test]
fn continuous_refill() {
    let (b, clock) = bucket(10, 10 * SEC);
    assert!(b.try_acquire(10).allowed);
    clock.advance(Duration::from_millis(999));
    let d = b.try_acquire(1);
    assert!(!d.allowed);
    assert_eq!(d.retry_after_ns, 1_000_000); // 1ms short of a token
    clock.advance(Duration::from_millis(1));
    assert!(b.try_acquire(1).allowed);
    clock.advance(Duration::from_millis(3500));
    assert_eq!(b.available(), 3);
}

#[test]
fn full_period_restores_capacity_and_never_more() {
    let (b, clock) = bucket(7, 3 * SEC);
    assert!(b.try_acquire(7).allowed);
    clock.advance(Duration::from_secs(3));
    assert_eq!(b.available(), 7);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(b.available(), 7);
    assert!(b.try_acquire(7).allowed);
    assert!(!b.try_acquire(1).allowed);
}

#[test]
fn refund_never_exceeds_capacity() {
    let (b, _clock) = bucket(3, SEC);
    assert!(b.try_acquire(2).allowed);
    b.refund(1);
    assert_eq!(b.available(), 2);
    b.refund(100);
    assert_eq!(b.available(), 3);
    b.refund(u64::MAX);
    assert_eq!(b.available(), 3);
}

#[test]
fn clock_going_backwards_is_harmless() {
    let (b, clock) = bucket(2, 10 * SEC);
    assert!(b.try_acquire(2).allowed);
    clock.set_ns(0); // far back in time
    let d = b.try_acquire(1);
    assert!(!d.allowed);
    assert!(d.retry_after_ns > 0);
    // Back to the original time: still nothing, the interval was not credited.
    clock.set_ns(1_000 * SEC);
    assert!(!b.try_acquire(1).allowed);
    clock.advance(Duration::from_secs(5));
    assert!(b.try_acquire(1).allowed);
    assert!(!b.try_acquire(1).allowed);
}

#[test]
fn period_edge_cases() {
    // Sub-nanosecond periods act as 1ns.
    let tiny = Rate::from_secs(3, 1e-15).unwrap();
    assert_eq!(tiny.period_ns(), 1);
    // Huge periods saturate instead of overflowing.
    let huge = Rate::from_secs(u64::MAX, 1e300).unwrap();
    assert_eq!(huge.period_ns(), u64::MAX);
    let clock = Arc::new(ManualClock::new(0));
    let b = TokenBucket::with_clock(huge, clock.clone());
    assert!(b.try_acquire(u64::MAX).allowed);
    let d = b.try_acquire(1);
    assert!(!d.allowed);
    assert_eq!(d.retry_after_ns, 1);
    clock.advance_ns(u64::MAX);
    assert_eq!(b.available(), u64::MAX);

    let one_per_year = Rate::from_secs(1, 365.0 * 86400.0).unwrap();
    let b = TokenBucket::with_clock(one_per_year, Arc::new(ManualClock::new(0)));
    assert!(b.try_acquire(1).allowed);
    assert_eq!(b.try_acquire(1).retry_after_secs(), 365.0 * 86400.0);

    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(Rate::from_secs(1, bad).is_err());
    }
    assert_eq!(Rate::from_secs(0, 1.0), Err(RateError::ZeroCapacity));
}

#[test]
fn threads_admit_exactly_capacity_when_time_stands_still() {
    let (b, _clock) = bucket(1000, SEC);
    let b = Arc::new(b);
    let admitted: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let b = &b;
                s.spawn(move || (0..500).filter(|_| b.try_acquire(1).allowed).count() as u64)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 1000);
}

#[test]
fn monotonic_clock_moves_forward() {
    let c = MonotonicClock::new();
    let a = c.now_ns();
    std::thread::sleep(Duration::from_millis(1));
    assert!(c.now_ns() > a);
    let b = TokenBucket::new(Rate::from_secs(2, 60.0).unwrap());
    assert!(b.try_acquire(2).allowed);
    assert!(!b.try_acquire(1).allowed);
}

fn keyed(max_keys: usize) -> (KeyedTokenBuckets<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(0));
    let k = KeyedTokenBuckets::with_clock(Rate::new(2, 10 * SEC).unwrap(), max_keys, clock.clone());
    (k, clock)
}

#[test]
fn keyed_buckets_are_independent() {
    let (k, _clock) = keyed(10);
    assert!(k.try_acquire("a", 2).allowed);
    assert!(!k.try_acquire("a", 1).allowed);
    assert!(k.try_acquire("b", 1).allowed);
    assert_eq!(k.len(), 2);
    k.refund("a", 1);
    assert!(k.try_acquire("a", 1).allowed);
    k.refund("unknown", 1);
    assert_eq!(k.len(), 2);
}

#[test]
fn keyed_evicts_full_buckets_first() {
    let (k, clock) = keyed(3);
    assert!(k.try_acquire("idle", 1).allowed);
    clock.advance(Duration::from_secs(10)); // "idle" is full again
    assert!(k.try_acquire("busy1", 2).allowed);
    assert!(k.try_acquire("busy2", 2).allowed);
    assert!(k.try_acquire("new", 1).allowed);
    assert_eq!(k.len(), 3);
    // The busy buckets kept their state.
    assert!(!k.try_acquire("busy1", 1).allowed);
    assert!(!k.try_acquire("busy2", 1).allowed);
}

#[test]
fn keyed_never_exceeds_max_keys() {
    let (k, clock) = keyed(50);
    for i in 0..1000 {
        clock.advance_ns(1);
        assert!(k.try_acquire(&format!("k{i}"), 2).allowed);
        assert!(k.len() <= 50);
    }
    // LRU eviction kept the most recent keys: "k999" is still drained.
    assert!(!k.try_acquire("k999", 1).allowed);
}

proptest! {
    /// Over any window of operations, admitted tokens never exceed
    /// `capacity + rate * elapsed` (checked in exact integer units).
    #[test]
    fn admitted_tokens_bounded_over_any_window(
        capacity in 1u64..20,
        period_ns in 1u64..1_000_000,
        ops in proptest::collection::vec((0u64..200_000, 0u64..25, any::<bool>()), 1..60),
    ) {
        let clock = Arc::new(ManualClock::new(0));
        let b = TokenBucket::with_clock(Rate::new(capacity, period_ns).unwrap(), clock.clone());
        let mut log = Vec::new(); // (time, admitted tokens)
        for (advance, n, backwards) in ops {
            if backwards {
                clock.set_ns(clock.now_ns().saturating_sub(advance));
            } else {
                clock.advance_ns(advance);
            }
            let d = b.try_acquire(n);
            prop_assert!(d.remaining <= capacity);
            prop_assert_eq!(d.retry_after_ns == 0, d.remaining >= 1);
            log.push((clock.now_ns(), if d.allowed { n } else { 0 }));
        }
        // With a backwards clock, the time that counts is the furthest seen.
        let mut high = 0;
        for entry in &mut log {
            high = high.max(entry.0);
            entry.0 = high;
        }
        for i in 0..log.len() {
            let mut admitted = 0u128;
            for j in i..log.len() {
                admitted += u128::from(log[j].1);
                let elapsed = u128::from(log[j].0 - log[i].0);
                let bound = u128::from(capacity) * u128::from(period_ns) + elapsed * u128::from(capacity);
                prop_assert!(admitted * u128::from(period_ns) <= bound);
            }
        }
    }

    #[test]
    fn refill_after_a_period_restores_capacity(
        capacity in 1u64..1_000_000,
        period_ns in 1u64..u64::MAX / 4,
        take in 0u64..1_000_000,
    ) {
        let clock = Arc::new(ManualClock::new(0));
        let b = TokenBucket::with_clock(Rate::new(capacity, period_ns).unwrap(), clock.clone());
        b.try_acquire(take.min(capacity));
        clock.advance_ns(period_ns);
        prop_assert_eq!(b.available(), capacity);
    }
}
