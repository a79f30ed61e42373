//! Cost of one rate-limit decision (`cargo bench --bench ratelimit`).
//!
//! Plain `std::time::Instant` timing (no bench framework): each case runs a
//! fixed number of decisions after a warm-up and prints nanoseconds per
//! decision. The shared table is a real file mapping under the temp dir, as
//! the workers of one gateway instance map it.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use _native::ratelimit::{Clock, Gcra, HostClock, Layout, Rate, SharedTable, TokenBucket};

const ROUNDS: u64 = 2_000_000;

fn report(name: &str, threads: usize, total: u64, started: Instant) {
    let ns = started.elapsed().as_nanos() as f64 / total as f64;
    // per operation as one caller sees it: wall time x threads / operations
    println!(
        "{name:<48} {threads} thread(s) {:>8.1} ns/op",
        ns * threads as f64
    );
}

fn timed(name: &str, threads: usize, work: impl Fn(u64) + Sync) {
    work(ROUNDS / 10); // warm-up
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| work(ROUNDS));
        }
    });
    report(name, threads, ROUNDS * threads as u64, started);
}

fn main() {
    let path: PathBuf =
        std::env::temp_dir().join(format!("gw-limits-bench-{}", std::process::id()));
    let table = SharedTable::create(&path, Layout::new(65_536, 1_024).unwrap()).unwrap();
    // plenty of capacity: every decision admits and writes
    let rate = Rate::from_secs(1 << 40, 1.0).unwrap();
    let gcra = Gcra::new(&rate);
    let slot = table
        .bucket_slot(table.key_of(b"calls|chat", None))
        .unwrap();
    let conc = table
        .concurrency_slot(table.key_of(b"concurrency|chat", None))
        .unwrap();
    table.register_worker(1).unwrap();
    let mutex_bucket = TokenBucket::new(rate);
    let clients: Vec<String> = (0..10_000)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();

    timed("HostClock::now_ns (CLOCK_MONOTONIC)", 1, |n| {
        for _ in 0..n {
            black_box(HostClock.now_ns());
        }
    });
    for threads in [1, 2, 4] {
        timed("shared bucket, pinned slot (one CAS)", threads, |n| {
            for _ in 0..n {
                black_box(table.acquire(slot, &gcra, 1));
            }
        });
    }
    timed("SipHash-2-4 of a bucket name + client key", 1, |n| {
        for i in 0..n {
            let client = clients[(i % clients.len() as u64) as usize].as_bytes();
            black_box(table.key_of(b"calls|chat|ip", Some(client)));
        }
    });
    timed("keyed slot lookup (SipHash + probe)", 1, |n| {
        for i in 0..n {
            let client = clients[(i % clients.len() as u64) as usize].as_bytes();
            black_box(
                table
                    .bucket_slot(table.key_of(b"calls|chat|ip", Some(client)))
                    .unwrap(),
            );
        }
    });
    for threads in [1, 4] {
        timed(
            "shared keyed bucket (SipHash + probe + CAS)",
            threads,
            |n| {
                for i in 0..n {
                    let client = clients[(i % clients.len() as u64) as usize].as_bytes();
                    let slot = table
                        .bucket_slot(table.key_of(b"calls|chat|ip", Some(client)))
                        .unwrap();
                    black_box(table.acquire(slot, &gcra, 1));
                }
            },
        );
    }
    for threads in [1, 4] {
        timed("shared concurrency enter + leave", threads, |n| {
            for _ in 0..n {
                black_box(table.enter(conc, u64::MAX));
                table.leave(conc);
            }
        });
    }
    for threads in [1, 4] {
        timed(
            "in-process TokenBucket (mutex, for comparison)",
            threads,
            |n| {
                for _ in 0..n {
                    black_box(mutex_bucket.try_acquire(1));
                }
            },
        );
    }
    drop(table);
    let _ = std::fs::remove_file(&path);
}
