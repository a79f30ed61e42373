//! GCRA arithmetic, SipHash and the shared table (threads, several mappings of one file).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;

const SEC: u64 = 1_000_000_000;
const START: u64 = 1_000 * SEC;

fn gcra(capacity: u64, period_ns: u64) -> Gcra {
    Gcra::new(&Rate::new(capacity, period_ns).unwrap())
}

fn table(layout: Layout) -> (SharedTable<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    let region = Region::anonymous(layout.bytes()).unwrap();
    let t = SharedTable::init(region, layout, SipKey(7, 11), clock.clone()).unwrap();
    (t, clock)
}

fn small() -> Layout {
    Layout::new(64, 8).unwrap()
}

fn temp_path(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("gw-limits-test-{}-{tag}-{n}", std::process::id()))
}

/// Removes the file when the test ends, pass or fail.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// -- SipHash ------------------------------------------------------------------------------

#[test]
fn siphash_matches_the_reference_vectors() {
    // vectors.h of the SipHash reference implementation: key 00..0f, message 00..(len-1)
    let key = SipKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
    let expected = [
        0x726f_db47_dd0e_0e31u64,
        0x74f8_39c5_93dc_67fd,
        0x0d6c_8009_d9a9_4f5a,
        0x8567_6696_d7fb_7e2d,
    ];
    let message: Vec<u8> = (0u8..16).collect();
    for (len, want) in expected.iter().enumerate() {
        assert_eq!(siphash(key, &[&message[..len]]), *want, "length {len}");
    }
}

#[allow(deprecated)] // std's SipHasher is SipHash-2-4: a second, independent implementation
fn std_siphash(key: SipKey, data: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::SipHasher::new_with_keys(key.0, key.1);
    h.write(data);
    h.finish()
}

proptest! {
    #[test]
    fn siphash_of_parts_is_siphash_of_the_whole(
        k0 in any::<u64>(),
        k1 in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..300),
        cut in 0usize..300,
    ) {
        let key = SipKey(k0, k1);
        let cut = cut.min(data.len());
        let (a, b) = data.split_at(cut);
        prop_assert_eq!(siphash(key, &[a, b]), std_siphash(key, &data));
    }
}

// -- GCRA ---------------------------------------------------------------------------------

#[test]
fn burst_is_exactly_capacity() {
    let g = gcra(5, 60 * SEC);
    let mut tat = 0;
    for left in (0..5).rev() {
        let (next, d) = g.acquire(tat, START, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, left);
        tat = next.unwrap();
    }
    let (next, d) = g.acquire(tat, START, 1);
    assert_eq!(next, None);
    assert!(!d.allowed);
    assert_eq!(d.retry_after_ns, 12 * SEC);
    assert_eq!(d.reset_ns, 60 * SEC);
}

#[test]
fn interval_rounds_up_so_the_rate_never_exceeds_the_limit() {
    let g = gcra(3, SEC);
    assert_eq!(g.interval_ns(), 333_333_334);
    assert_eq!(g.window_ns(), 1_000_000_002);
    let g = gcra(4, SEC);
    assert_eq!((g.interval_ns(), g.window_ns()), (250_000_000, SEC));
    // more tokens than nanoseconds: one nanosecond each
    let g = gcra(10, 3);
    assert_eq!((g.interval_ns(), g.window_ns()), (1, 10));
}

#[test]
fn refill_is_continuous_and_capped() {
    let g = gcra(10, 10 * SEC);
    let (tat, _) = g.acquire(0, START, 10);
    let tat = tat.unwrap();
    assert_eq!(g.peek(tat, START + SEC - 1).remaining, 0);
    assert_eq!(g.peek(tat, START + SEC).remaining, 1);
    assert_eq!(g.peek(tat, START + 3_500_000_000).remaining, 3);
    assert_eq!(g.peek(tat, START + 10 * SEC).remaining, 10);
    assert_eq!(g.peek(tat, START + 1_000 * SEC).remaining, 10);
    assert_eq!(g.peek(tat, START + 1_000 * SEC).reset_ns, 0);
}

#[test]
fn zero_and_oversized_requests() {
    let g = gcra(4, SEC);
    let (next, d) = g.acquire(0, START, 0);
    assert_eq!((next, d.allowed, d.remaining), (None, true, 4));
    let (next, d) = g.acquire(0, START, 5);
    assert_eq!((next, d.allowed, d.remaining), (None, false, 4));
    assert_eq!(d.retry_after_ns, u64::MAX);
}

#[test]
fn refund_never_overfills_and_charge_makes_debt() {
    let g = gcra(3, 3 * SEC);
    let (tat, _) = g.acquire(0, START, 2);
    let tat = tat.unwrap();
    let refunded = g.refund(tat, START, 100).unwrap();
    assert_eq!(g.peek(refunded, START).remaining, 3);
    assert_eq!(g.refund(0, START, 1), None); // a full bucket stays as it is
                                             // usage reported after the fact: 7 tokens on a 3-token bucket
    let debt = g.charge(0, START, 7).unwrap();
    let d = g.peek(debt, START);
    assert_eq!((d.remaining, d.reset_ns), (0, 7 * SEC));
    let (_, d) = g.acquire(debt, START, 1);
    assert_eq!(d.retry_after_ns, 5 * SEC); // 4 tokens of debt to wait out, then one token
    assert!(g.acquire(debt, START + 5 * SEC, 1).1.allowed);
}

#[test]
fn a_clock_going_backwards_credits_nothing() {
    let g = gcra(2, 10 * SEC);
    let (tat, _) = g.acquire(0, START, 2);
    let tat = tat.unwrap();
    assert!(!g.acquire(tat, 0, 1).1.allowed); // far in the past
    assert!(!g.acquire(tat, START, 1).1.allowed);
    assert!(g.acquire(tat, START + 5 * SEC, 1).1.allowed);
}

#[test]
fn extreme_periods_saturate() {
    let huge = Gcra::new(&Rate::from_secs(2, 1e300).unwrap());
    let (tat, d) = huge.acquire(0, START, 2);
    assert!(d.allowed);
    assert!(!huge.acquire(tat.unwrap(), START, 1).1.allowed);
    let tiny = Gcra::new(&Rate::from_secs(1, 1e-15).unwrap());
    let (tat, _) = tiny.acquire(0, START, 1);
    assert!(tiny.acquire(tat.unwrap(), START + 1, 1).1.allowed);
}

proptest! {
    /// Tokens admitted over any window never exceed `capacity + elapsed / interval`
    /// plus what was refunded in it (the token-bucket bound). Time counts from the latest
    /// reading the bucket stored a state at, so a clock that jumps back credits nothing
    /// twice. Refunds (op 7) are only mixed with a clock that never goes back: a refund
    /// read on an earlier clock may lower the state below a later reading.
    #[test]
    fn admissions_are_bounded_over_any_window(
        capacity in 1u64..20,
        period_ns in 1u64..1_000_000,
        ops in proptest::collection::vec((0u64..200_000, 0u64..25, 0u8..8), 1..80),
        refunds in any::<bool>(),
    ) {
        let g = gcra(capacity, period_ns);
        let mut now = START;
        let mut high = 0; // the latest time the bucket stored a state at
        let mut tat = 0u64;
        let mut log: Vec<(u64, u64, u64)> = Vec::new(); // (time, admitted, refunded)
        for (step, n, op) in ops {
            let op = if refunds { op.max(1) } else { op % 7 };
            if op == 0 {
                now = now.saturating_sub(step); // the clock jumps back
            } else {
                now += step;
            }
            let (mut admitted, mut refunded) = (0, 0);
            let stored = match op {
                6 => g.charge(tat, now, n),
                7 => {
                    refunded = n;
                    g.refund(tat, now, n)
                }
                _ => {
                    let (next, d) = g.acquire(tat, now, n);
                    prop_assert!(d.remaining <= capacity);
                    prop_assert_eq!(d.retry_after_ns == 0, d.allowed && d.remaining >= 1);
                    if d.allowed {
                        admitted = n;
                    }
                    next
                }
            };
            if let Some(next) = stored {
                prop_assert!(next >= now);
                tat = next;
                high = high.max(now);
            }
            log.push((high, admitted, refunded));
        }
        for i in 0..log.len() {
            let (mut admitted, mut refunded) = (0u128, 0u128);
            for entry in &log[i..] {
                admitted += u128::from(entry.1);
                refunded += u128::from(entry.2);
                let elapsed = u128::from(entry.0 - log[i].0);
                let bound = u128::from(capacity) + refunded + elapsed / u128::from(g.interval_ns());
                prop_assert!(admitted <= bound, "{} admitted, bound {}", admitted, bound);
            }
        }
    }

    /// From any state, waiting out the reset time leaves a full bucket (short of debts
    /// that saturate the clock's range: those block for good).
    #[test]
    fn waiting_out_reset_restores_capacity(
        capacity in 1u64..1_000_000,
        period_ns in 1u64..1 << 52,
        take in 0u64..2_000_000,
        debt in 0u64..1_000,
    ) {
        let g = gcra(capacity, period_ns);
        let (tat, _) = g.acquire(0, START, take.min(capacity));
        let tat = g.charge(tat.unwrap_or(0), START, debt).unwrap_or(tat.unwrap_or(0));
        let reset = g.peek(tat, START).reset_ns;
        prop_assert_eq!(g.peek(tat, START.saturating_add(reset)).remaining, capacity);
    }
}

// -- the shared table ---------------------------------------------------------------------

#[test]
fn threads_admit_exactly_capacity_from_one_pinned_slot() {
    let (t, _clock) = table(small());
    let g = gcra(1000, SEC);
    let slot = t.bucket_slot(t.key_of(b"calls|chat", None)).unwrap();
    let admitted: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| (0..500).filter(|_| t.acquire(slot, &g, 1).allowed).count() as u64))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 1000);
    assert_eq!(t.peek(slot, &g).remaining, 0);
}

#[test]
fn separate_mappings_of_one_file_share_every_bucket() {
    let path = temp_path("mappings");
    let _cleanup = TempFile(path.clone());
    let layout = Layout::new(1024, 8).unwrap();
    let first = SharedTable::create(&path, layout).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        layout.bytes()
    );
    // one mapping per thread, as one per worker process
    let handles: Vec<SharedTable> = (0..4).map(|_| SharedTable::open(&path).unwrap()).collect();
    let g = gcra(300, 3600 * SEC);
    let admitted: u64 = std::thread::scope(|s| {
        let joins: Vec<_> = handles
            .iter()
            .map(|t| {
                let g = &g;
                s.spawn(move || {
                    let slot = t.bucket_slot(t.key_of(b"calls|shared", None)).unwrap();
                    let keyed = (0..200)
                        .filter(|_| {
                            let slot = t.bucket_slot(t.key_of(b"ip", Some(b"10.0.0.1"))).unwrap();
                            t.acquire(slot, g, 1).allowed
                        })
                        .count() as u64;
                    let global = (0..200).filter(|_| t.acquire(slot, g, 1).allowed).count() as u64;
                    keyed * 1_000_000 + global
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).sum()
    });
    assert_eq!(admitted / 1_000_000, 300, "keyed bucket");
    assert_eq!(admitted % 1_000_000, 300, "global bucket");
    let slot = first
        .bucket_slot(first.key_of(b"calls|shared", None))
        .unwrap();
    assert_eq!(first.peek(slot, &g).remaining, 0);
}

#[test]
fn attach_refuses_what_is_not_a_table() {
    let path = temp_path("bad");
    let _cleanup = TempFile(path.clone());
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    assert!(matches!(
        SharedTable::open(&path),
        Err(TableError::Layout(_))
    ));
    assert!(matches!(
        SharedTable::create(&path, small()),
        Err(TableError::Io(_))
    ));
    assert!(Layout::new(100, 8).is_err());
    assert!(Layout::new(16, 8).is_err());
    assert!(Layout::new(64, 4).is_err());
}

#[test]
fn keys_hash_apart_and_pinned_keys_are_marked() {
    let (t, _clock) = table(small());
    let global = t.key_of(b"calls|chat", None);
    let keyed = t.key_of(b"calls|chat", Some(b""));
    assert_ne!(global, keyed);
    assert_ne!(global & (1 << 63), 0);
    assert_eq!(keyed & (1 << 63), 0);
    assert_ne!(t.key_of(b"a", Some(b"bc")), t.key_of(b"ab", Some(b"c")));
    // another instance's table hashes differently
    let other = SharedTable::init(
        Region::anonymous(small().bytes()).unwrap(),
        small(),
        SipKey(8, 11),
        ManualClock::new(0),
    )
    .unwrap();
    assert_ne!(other.key_of(b"calls|chat", None), global);
}

#[test]
fn full_windows_evict_the_most_refilled_client_bucket() {
    let (t, clock) = table(small()); // 64 slots, every key shares the one probe window of 32+
    let g = gcra(2, 10 * SEC);
    let pinned = t.bucket_slot(t.key_of(b"endpoint", None)).unwrap();
    assert!(t.acquire(pinned, &g, 2).allowed);
    for i in 0..2_000u32 {
        clock.advance_ns(1_000);
        let slot = t
            .bucket_slot(t.key_of(b"ip", Some(&i.to_le_bytes())))
            .unwrap();
        assert!(t.acquire(slot, &g, 2).allowed, "a new client starts full");
    }
    // the pinned bucket was never evicted and kept its state
    assert_eq!(t.bucket_slot(t.key_of(b"endpoint", None)).unwrap(), pinned);
    assert!(!t.acquire(pinned, &g, 1).allowed);
    // the most recent client is still drained
    let last = t
        .bucket_slot(t.key_of(b"ip", Some(&1_999u32.to_le_bytes())))
        .unwrap();
    assert!(!t.acquire(last, &g, 1).allowed);
    assert_eq!(t.occupancy().0, 64);
}

#[test]
fn a_window_full_of_pinned_buckets_refuses_new_ones() {
    let (t, _clock) = table(small());
    let mut placed = 0;
    for i in 0..200u32 {
        if t.bucket_slot(t.key_of(&i.to_le_bytes(), None)).is_ok() {
            placed += 1;
        }
    }
    assert_eq!(placed, 64);
    let err = t.bucket_slot(t.key_of(b"one more", None)).unwrap_err();
    assert!(err.to_string().contains("GATEWAY_LIMITS_SLOTS"), "{err}");
    // a client bucket has nowhere to go either
    assert!(t.bucket_slot(t.key_of(b"ip", Some(b"x"))).is_err());
}

#[test]
fn refund_and_charge_reach_the_shared_slot() {
    let (t, clock) = table(small());
    let g = gcra(100, 60 * SEC);
    let slot = t.bucket_slot(t.key_of(b"tokens|chat", None)).unwrap();
    assert!(t.acquire(slot, &g, 80).allowed);
    t.refund(slot, &g, 70); // the response used 10 of the 80 estimated
    assert_eq!(t.peek(slot, &g).remaining, 90);
    t.charge(slot, &g, 200); // a response used far more than estimated
    assert_eq!(t.peek(slot, &g).remaining, 0);
    clock.advance(std::time::Duration::from_secs(72));
    assert_eq!(t.peek(slot, &g).remaining, 10);
    assert_eq!(t.find_bucket(t.key_of(b"never used", None)), None);
}

#[test]
fn concurrency_cap_is_exact_under_threads() {
    let (t, _clock) = table(small());
    t.register_worker(42).unwrap();
    let slot = t
        .concurrency_slot(t.key_of(b"concurrency|chat", None))
        .unwrap();
    let peak = AtomicU64::new(0);
    let inside = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    let (entered, in_flight) = t.enter(slot, 3);
                    assert!(in_flight <= 3);
                    if entered {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        t.leave(slot);
                    }
                }
            });
        }
    });
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert!(peak.load(Ordering::SeqCst) >= 1);
    assert_eq!(t.in_flight(slot), 0);
}

#[test]
fn a_dead_workers_places_are_given_back() {
    let path = temp_path("reap");
    let _cleanup = TempFile(path.clone());
    let layout = Layout::new(64, 8).unwrap();
    let survivor = SharedTable::create(&path, layout).unwrap();
    let doomed = SharedTable::open(&path).unwrap();
    assert_eq!(survivor.register_worker(1).unwrap(), 0);
    assert_eq!(doomed.register_worker(2).unwrap(), 1);
    let key = survivor.key_of(b"concurrency|chat", None);
    let (s_slot, d_slot) = (
        survivor.concurrency_slot(key).unwrap(),
        doomed.concurrency_slot(key).unwrap(),
    );
    assert_eq!(s_slot, d_slot);
    assert!(survivor.enter(s_slot, 3).0);
    assert!(doomed.enter(d_slot, 3).0);
    assert!(doomed.enter(d_slot, 3).0);
    assert_eq!(survivor.enter(s_slot, 3), (false, 3));
    drop(doomed); // "killed" with two requests in flight
    assert_eq!(survivor.workers(), vec![(0, 1), (1, 2)]);
    assert_eq!(survivor.reap_worker(1, 99), None, "wrong identity");
    assert_eq!(survivor.reap_worker(1, 2), Some(2));
    assert_eq!(survivor.workers(), vec![(0, 1)]);
    assert_eq!(survivor.in_flight(s_slot), 1);
    survivor.leave(s_slot);
    assert_eq!(survivor.in_flight(s_slot), 0);
    survivor.leave(s_slot); // an extra leave cannot go below zero
    assert_eq!(survivor.in_flight(s_slot), 0);
}

#[test]
fn worker_records_run_out_cleanly() {
    let (t, _clock) = table(small());
    assert!(t.register_worker(0).is_err());
    for i in 0..MAX_WORKERS as u64 {
        t.register_worker(i + 1).unwrap();
    }
    assert!(matches!(
        t.register_worker(1_000),
        Err(TableError::NoWorkerRecord)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// With time frozen, threads hammering shared buckets (one global, a few per
    /// client) admit exactly `min(capacity, attempts)` per bucket.
    #[test]
    fn threads_never_overadmit(
        capacity in 1u64..400,
        threads in 2usize..6,
        attempts in 1u64..200,
        clients in 1u8..4,
    ) {
        let (t, _clock) = table(Layout::new(256, 8).unwrap());
        let g = gcra(capacity, 60 * SEC);
        let global = t.bucket_slot(t.key_of(b"calls", None)).unwrap();
        let per_client: Vec<u64> = std::thread::scope(|s| {
            let joins: Vec<_> = (0..threads)
                .map(|_| {
                    let (t, g) = (&t, &g);
                    s.spawn(move || {
                        let mut admitted = vec![0u64; usize::from(clients) + 1];
                        for i in 0..attempts {
                            if t.acquire(global, g, 1).allowed {
                                admitted[0] += 1;
                            }
                            let c = (i % u64::from(clients)) as u8;
                            let slot = t.bucket_slot(t.key_of(b"ip", Some(&[c]))).unwrap();
                            if t.acquire(slot, g, 1).allowed {
                                admitted[usize::from(c) + 1] += 1;
                            }
                        }
                        admitted
                    })
                })
                .collect();
            let mut total = vec![0u64; usize::from(clients) + 1];
            for j in joins {
                for (sum, n) in total.iter_mut().zip(j.join().unwrap()) {
                    *sum += n;
                }
            }
            total
        });
        let all = threads as u64 * attempts;
        prop_assert_eq!(per_client[0], capacity.min(all));
        for c in 0..u64::from(clients) {
            let tries = (0..attempts).filter(|i| i % u64::from(clients) == c).count() as u64;
            prop_assert_eq!(per_client[c as usize + 1], capacity.min(tries * threads as u64));
        }
    }
}
