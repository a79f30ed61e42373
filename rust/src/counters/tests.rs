//! The shared counters: exact sums under threads and across mappings of one
//! file, expiry and reuse of slots, a full table.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::table::{CounterError, Counters, MIN_SLOTS};
use crate::ratelimit::{Region, SipKey};

const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

fn table(slots: usize) -> Counters {
    let region = Region::anonymous((8 + 8 * slots) * 8).unwrap();
    Counters::init(region, slots, SipKey(3, 5)).unwrap()
}

fn name(i: usize) -> String {
    format!("key:k_{i}|day:2026-12-01")
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir();
        Self(dir.join(format!("gw-counters-test-{}-{tag}-{n}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn absent_counters_total_zero_and_additions_accumulate() {
    let t = table(64);
    assert_eq!(t.totals(&[b"a", b"b"], NOW), vec![0, 0]);
    let items: [(&[u8], u64); 2] = [(b"a", NOW + DAY), (b"b", NOW + DAY)];
    assert_eq!(t.add(&items, 5, NOW).unwrap(), vec![5, 5]);
    assert_eq!(t.add(&items[..1], 7, NOW).unwrap(), vec![12]);
    assert_eq!(t.add(&items[1..], -2, NOW).unwrap(), vec![3]);
    assert_eq!(t.totals(&[b"a", b"b", b"c"], NOW), vec![12, 3, 0]);
    assert_eq!(t.occupancy(), 2);
}

#[test]
fn a_name_twice_in_one_addition_counts_twice() {
    let t = table(64);
    let items: [(&[u8], u64); 2] = [(b"a", NOW + 10), (b"a", NOW + 10)];
    assert_eq!(t.add(&items, 4, NOW).unwrap(), vec![4, 8]);
    assert_eq!(t.occupancy(), 1);
}

#[test]
fn threads_adding_at_once_lose_nothing() {
    let t = Arc::new(table(1024));
    let names: Vec<String> = (0..16).map(name).collect();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let t = t.clone();
            let names = names.clone();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    // a shared counter plus one of 16 per-key counters, created concurrently
                    let own = &names[(i + w) % names.len()];
                    let items: [(&[u8], u64); 2] =
                        [(b"global", NOW + DAY), (own.as_bytes(), NOW + DAY)];
                    t.add(&items, 3, NOW).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(t.totals(&[b"global"], NOW), vec![8 * 2_000 * 3]);
    let keyed: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let sum: i64 = t.totals(&keyed, NOW).iter().sum();
    assert_eq!(sum, 8 * 2_000 * 3);
    assert_eq!(t.occupancy(), 17, "one slot per name, never two");
}

#[test]
fn two_mappings_of_one_file_share_counters() {
    let file = TempFile::new("share");
    let a = Arc::new(Counters::create(&file.0, 256).unwrap());
    let b = Arc::new(Counters::open(&file.0).unwrap());
    let workers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|t| {
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    t.add(&[(b"spend".as_slice(), NOW + 60)], 1, NOW).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(a.totals(&[b"spend"], NOW), vec![10_000]);
    assert_eq!(b.totals(&[b"spend"], NOW), vec![10_000]);
}

#[test]
fn a_file_that_is_not_a_table_is_refused() {
    let file = TempFile::new("bad");
    std::fs::write(&file.0, vec![0u8; 4096]).unwrap();
    assert!(matches!(
        Counters::open(&file.0),
        Err(CounterError::Layout(_))
    ));
    assert!(Counters::private(100).is_err(), "not a power of two");
    assert!(Counters::private(MIN_SLOTS / 2).is_err());
}

#[test]
fn expired_counters_total_zero_and_start_again() {
    let t = table(64);
    t.add(&[(b"a".as_slice(), NOW + 10)], 9, NOW).unwrap();
    assert_eq!(t.totals(&[b"a"], NOW + 9), vec![9]);
    assert_eq!(t.totals(&[b"a"], NOW + 10), vec![0]);
    // a new window of the same name restarts from zero in the same slot
    assert_eq!(
        t.add(&[(b"a".as_slice(), NOW + 100)], 2, NOW + 10).unwrap(),
        vec![2]
    );
    assert_eq!(t.occupancy(), 1);
}

#[test]
fn an_addition_to_a_window_already_over_counts_nothing() {
    let t = table(64);
    assert_eq!(t.add(&[(b"a".as_slice(), NOW)], 9, NOW).unwrap(), vec![0]);
    assert_eq!(t.occupancy(), 0);
}

#[test]
fn expiry_only_moves_later() {
    let t = table(64);
    t.add(&[(b"a".as_slice(), NOW + 100)], 1, NOW).unwrap();
    t.add(&[(b"a".as_slice(), NOW + 10)], 1, NOW).unwrap();
    assert_eq!(t.totals(&[b"a"], NOW + 50), vec![2]);
}

#[test]
fn a_full_table_is_an_error_that_adds_nothing() {
    let t = table(64);
    let names: Vec<String> = (0..64).map(name).collect();
    for n in &names {
        t.add(&[(n.as_bytes(), NOW + 10)], 1, NOW).unwrap();
    }
    assert_eq!(t.occupancy(), 64);
    let items: [(&[u8], u64); 2] = [(names[0].as_bytes(), NOW + 10), (b"one more", NOW + 10)];
    let err = t.add(&items, 5, NOW).unwrap_err();
    assert!(matches!(err, CounterError::Full));
    assert!(err.to_string().contains("no room"));
    assert_eq!(
        t.totals(&[names[0].as_bytes()], NOW),
        vec![1],
        "nothing added"
    );
    // once the old windows are over their slots are reused
    let later: [(&[u8], u64); 1] = [(b"one more", NOW + 20)];
    assert_eq!(t.add(&later, 5, NOW + 10).unwrap(), vec![5]);
    assert_eq!(t.totals(&[b"one more"], NOW + 10), vec![5]);
    assert_eq!(t.occupancy(), 64);
}

#[test]
fn windows_rolling_over_under_threads_stay_exact() {
    // 4 threads add to per-second windows while time moves on, so slots of
    // past windows are reclaimed while others still add: each window's total
    // must equal what was added to it.
    let t = Arc::new(table(64));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let t = t.clone();
            std::thread::spawn(move || {
                for i in 0..4_000u64 {
                    let second = i / 40; // 100 windows (more than the slots) of 40 additions per thread
                    let now = NOW + second;
                    let window = format!("w{second}");
                    let totals = t
                        .add(&[(window.as_bytes(), now + 2)], 1, now)
                        .unwrap_or_else(|e| panic!("thread {w}: {e}"));
                    assert!(totals[0] >= 1);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // the last window is still live: it holds exactly what was added to it
    assert_eq!(t.totals(&[b"w99"], NOW + 99), vec![160]);
}
