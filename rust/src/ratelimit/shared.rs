//! Rate-limit state shared by every worker process of one gateway instance.
//!
//! The supervisor creates a file on tmpfs before spawning workers; each
//! worker maps it. Every decision is a few atomic operations on that
//! mapping: no lock, no system call, so `calls` per period is exact whatever
//! the number of workers. Layout, in 64-bit words:
//!
//! ```text
//! header      512 words: magic, table sizes, hash key, worker records
//! buckets     2 words per slot: key hash, GCRA state (see gcra.rs)
//! concurrency 2 + MAX_WORKERS words per slot: key hash, in-flight total,
//!             in-flight count of each registered worker
//! ```
//!
//! Buckets form a fixed-size open-addressing table keyed by a SipHash of the
//! bucket name (raw client keys are never stored). Buckets of a whole
//! endpoint are *pinned*: their slot never changes owner, so callers resolve
//! it once. Per-client buckets may be evicted when their probe window is
//! full, the most refilled first (forgetting a full bucket loses nothing).
//! An eviction racing a request for the evicted key may misattribute that
//! request's tokens; this needs a full probe window and is bounded by one
//! request.
//!
//! Concurrency slots keep a total (checked and raised by CAS, so the cap is
//! exact) and each worker's share, so the share of a worker that died with
//! requests in flight can be given back (`reap_worker`).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::bucket::Decision;
use super::clock::{Clock, HostClock};
use super::gcra::Gcra;
use super::region::Region;
use super::siphash::{siphash, SipKey};

const MAGIC: u64 = u64::from_le_bytes(*b"GWRLIM01");
const HEADER_WORDS: usize = 512;
const H_MAGIC: usize = 0;
const H_BUCKETS: usize = 1;
const H_CONCURRENCY: usize = 2;
const H_WORKERS: usize = 3;
const H_KEY0: usize = 4;
const H_KEY1: usize = 5;
const WORKER_RECORDS: usize = 64;
/// Worker processes one instance can track (a record each).
pub const MAX_WORKERS: usize = 64;
const CONCURRENCY_WORDS: usize = 2 + MAX_WORKERS;
/// Slots looked at for one key before evicting.
const PROBE: usize = 32;
const PINNED: u64 = 1 << 63;
const NO_WORKER: usize = usize::MAX;

#[derive(Debug)]
pub enum TableError {
    /// No free slot in the key's probe window (and nothing evictable).
    Full(&'static str),
    /// Every worker record is taken by a live worker.
    NoWorkerRecord,
    Layout(String),
    Io(io::Error),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Full(what) => write!(
                f,
                "the shared rate-limit table has no room for another {what}; raise GATEWAY_LIMITS_SLOTS"
            ),
            TableError::NoWorkerRecord => write!(
                f,
                "more than {MAX_WORKERS} live worker processes share one rate-limit table"
            ),
            TableError::Layout(msg) => f.write_str(msg),
            TableError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TableError {}

impl From<io::Error> for TableError {
    fn from(e: io::Error) -> Self {
        TableError::Io(e)
    }
}

/// Table sizes; both are powers of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    buckets: usize,
    concurrency: usize,
}

impl Layout {
    pub fn new(buckets: usize, concurrency: usize) -> Result<Self, TableError> {
        let ok = |n: usize, min: usize| n.is_power_of_two() && (min..=1 << 26).contains(&n);
        if !ok(buckets, PROBE) || !ok(concurrency, 8) {
            return Err(TableError::Layout(format!(
                "bucket slots ({buckets}) and concurrency slots ({concurrency}) must be powers \
                 of two, at least {PROBE} and 8, at most 2^26"
            )));
        }
        Ok(Self {
            buckets,
            concurrency,
        })
    }

    fn words(&self) -> usize {
        HEADER_WORDS + 2 * self.buckets + CONCURRENCY_WORDS * self.concurrency
    }

    pub fn bytes(&self) -> usize {
        self.words() * 8
    }
}

pub struct SharedTable<C: Clock = HostClock> {
    region: Region,
    layout: Layout,
    key: SipKey,
    clock: C,
    worker: AtomicUsize,
}

impl<C: Clock> fmt::Debug for SharedTable<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTable")
            .field("layout", &self.layout)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl SharedTable<HostClock> {
    /// Creates the instance's table file (the supervisor does, once).
    pub fn create(path: &Path, layout: Layout) -> Result<Self, TableError> {
        let region = Region::create(path, layout.bytes())?;
        Self::init(region, layout, SipKey::random()?, HostClock)
    }

    /// Maps a table file created by [`SharedTable::create`].
    pub fn open(path: &Path) -> Result<Self, TableError> {
        Self::attach(Region::open(path)?, HostClock)
    }

    /// A table private to this process (no supervisor-provided file).
    pub fn private(layout: Layout) -> Result<Self, TableError> {
        let region = Region::anonymous(layout.bytes())?;
        Self::init(region, layout, SipKey::random()?, HostClock)
    }
}

impl<C: Clock> SharedTable<C> {
    /// Writes a fresh header into zeroed memory; the magic goes last.
    pub fn init(region: Region, layout: Layout, key: SipKey, clock: C) -> Result<Self, TableError> {
        if region.len() < layout.bytes() {
            return Err(TableError::Layout("region smaller than the layout".into()));
        }
        let w = region.words();
        w[H_BUCKETS].store(layout.buckets as u64, Ordering::Relaxed);
        w[H_CONCURRENCY].store(layout.concurrency as u64, Ordering::Relaxed);
        w[H_WORKERS].store(MAX_WORKERS as u64, Ordering::Relaxed);
        w[H_KEY0].store(key.0, Ordering::Relaxed);
        w[H_KEY1].store(key.1, Ordering::Relaxed);
        w[H_MAGIC].store(MAGIC, Ordering::Release);
        Ok(Self::assemble(region, layout, key, clock))
    }

    /// Maps an initialised table, checking its header against its size.
    pub fn attach(region: Region, clock: C) -> Result<Self, TableError> {
        let w = region.words();
        if w.len() < HEADER_WORDS || w[H_MAGIC].load(Ordering::Acquire) != MAGIC {
            return Err(TableError::Layout(
                "not a gateway rate-limit table (bad magic)".into(),
            ));
        }
        let read = |i: usize| usize::try_from(w[i].load(Ordering::Relaxed)).unwrap_or(0);
        if read(H_WORKERS) != MAX_WORKERS {
            return Err(TableError::Layout(
                "rate-limit table from another gateway version".into(),
            ));
        }
        let layout = Layout::new(read(H_BUCKETS), read(H_CONCURRENCY))?;
        if region.len() != layout.bytes() {
            return Err(TableError::Layout(
                "rate-limit table size does not match its header".into(),
            ));
        }
        let key = SipKey(
            w[H_KEY0].load(Ordering::Relaxed),
            w[H_KEY1].load(Ordering::Relaxed),
        );
        Ok(Self::assemble(region, layout, key, clock))
    }

    fn assemble(region: Region, layout: Layout, key: SipKey, clock: C) -> Self {
        Self {
            region,
            layout,
            key,
            clock,
            worker: AtomicUsize::new(NO_WORKER),
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn bucket_slots(&self) -> usize {
        self.layout.buckets
    }

    pub fn concurrency_slots(&self) -> usize {
        self.layout.concurrency
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn words(&self) -> &[AtomicU64] {
        self.region.words()
    }

    // -- keys --------------------------------------------------------------------------

    /// The stored identity of a bucket: a keyed hash of its name, plus the
    /// client key for per-client buckets. Whole-endpoint buckets are pinned.
    pub fn key_of(&self, name: &[u8], client: Option<&[u8]>) -> u64 {
        let hash = match client {
            None => siphash(self.key, &[name, &[0]]),
            Some(c) => siphash(self.key, &[name, &[1], c]),
        };
        let word = if client.is_none() {
            hash | PINNED
        } else {
            hash & !PINNED
        };
        // zero marks an empty slot
        if word & !PINNED == 0 {
            word | 1
        } else {
            word
        }
    }

    // -- buckets -----------------------------------------------------------------------

    fn bucket_key(&self, slot: usize) -> &AtomicU64 {
        &self.words()[HEADER_WORDS + 2 * slot]
    }

    fn bucket_tat(&self, slot: usize) -> &AtomicU64 {
        &self.words()[HEADER_WORDS + 2 * slot + 1]
    }

    fn probe(&self, key: u64, slots: usize) -> impl Iterator<Item = usize> {
        let mask = slots - 1;
        let start = usize::try_from(key & !PINNED).unwrap_or(0) & mask;
        (0..PROBE.min(slots)).map(move |i| (start + i) & mask)
    }

    /// The slot holding `key`, if any.
    pub fn find_bucket(&self, key: u64) -> Option<usize> {
        self.probe(key, self.layout.buckets)
            .find(|&slot| self.bucket_key(slot).load(Ordering::Acquire) == key)
    }

    /// The slot of `key`, claimed if new (a new bucket is full).
    pub fn bucket_slot(&self, key: u64) -> Result<usize, TableError> {
        for _ in 0..4 {
            let mut victim: Option<(usize, u64, u64)> = None;
            for slot in self.probe(key, self.layout.buckets) {
                let cell = self.bucket_key(slot);
                let owner = cell.load(Ordering::Acquire);
                if owner == key {
                    return Ok(slot);
                }
                if owner == 0 {
                    match cell.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Ok(slot),
                        Err(now_owner) if now_owner == key => return Ok(slot),
                        Err(_) => continue,
                    }
                }
                if owner & PINNED == 0 {
                    let tat = self.bucket_tat(slot).load(Ordering::Acquire);
                    let better = match victim {
                        Some((_, _, best)) => tat < best,
                        None => true,
                    };
                    if better {
                        victim = Some((slot, owner, tat));
                    }
                }
            }
            let Some((slot, owner, _)) = victim else {
                return Err(TableError::Full("bucket"));
            };
            let cell = self.bucket_key(slot);
            if cell
                .compare_exchange(owner, key, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // a key never seen before starts with a full bucket
                self.bucket_tat(slot)
                    .fetch_min(self.clock.now_ns(), Ordering::AcqRel);
                return Ok(slot);
            }
        }
        Err(TableError::Full("bucket"))
    }

    /// Applies `step` to the slot's state with a CAS loop. `step` returns the
    /// new state (or `None` to leave it) and the value to hand back.
    fn update<T>(&self, slot: usize, mut step: impl FnMut(u64, u64) -> (Option<u64>, T)) -> T {
        let cell = self.bucket_tat(slot);
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            let now = self.clock.now_ns();
            let (next, out) = step(tat, now);
            let Some(next) = next else { return out };
            match cell.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return out,
                Err(current) => tat = current,
            }
        }
    }

    pub fn acquire(&self, slot: usize, gcra: &Gcra, n: u64) -> Decision {
        self.update(slot, |tat, now| gcra.acquire(tat, now, n))
    }

    pub fn refund(&self, slot: usize, gcra: &Gcra, n: u64) {
        self.update(slot, |tat, now| (gcra.refund(tat, now, n), ()));
    }

    pub fn charge(&self, slot: usize, gcra: &Gcra, n: u64) {
        self.update(slot, |tat, now| (gcra.charge(tat, now, n), ()));
    }

    pub fn peek(&self, slot: usize, gcra: &Gcra) -> Decision {
        gcra.peek(
            self.bucket_tat(slot).load(Ordering::Acquire),
            self.clock.now_ns(),
        )
    }

    // -- concurrency -------------------------------------------------------------------

    fn concurrency_word(&self, slot: usize, offset: usize) -> &AtomicU64 {
        let base = HEADER_WORDS + 2 * self.layout.buckets + CONCURRENCY_WORDS * slot;
        &self.words()[base + offset]
    }

    /// The concurrency slot of `key` (a pinned key: these are never evicted).
    pub fn concurrency_slot(&self, key: u64) -> Result<usize, TableError> {
        for slot in self.probe(key, self.layout.concurrency) {
            let cell = self.concurrency_word(slot, 0);
            match cell.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(slot),
                Err(owner) if owner == key => return Ok(slot),
                Err(_) => continue,
            }
        }
        Err(TableError::Full("concurrency limit"))
    }

    /// Takes an in-flight place if fewer than `limit` are taken; returns
    /// whether it did and the in-flight count.
    pub fn enter(&self, slot: usize, limit: u64) -> (bool, u64) {
        let total = self.concurrency_word(slot, 1);
        let mut current = total.load(Ordering::Acquire);
        loop {
            if current >= limit {
                return (false, current);
            }
            match total.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let worker = self.worker.load(Ordering::Relaxed);
        if worker != NO_WORKER {
            self.concurrency_word(slot, 2 + worker)
                .fetch_add(1, Ordering::AcqRel);
        }
        (true, current + 1)
    }

    /// Gives back a place taken by [`SharedTable::enter`].
    pub fn leave(&self, slot: usize) {
        let worker = self.worker.load(Ordering::Relaxed);
        if worker != NO_WORKER {
            // A share already given back by a reaper that wrongly judged this
            // worker dead must not be given back twice.
            let mine = self.concurrency_word(slot, 2 + worker);
            if mine
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
                .is_err()
            {
                return;
            }
        }
        sub_saturating(self.concurrency_word(slot, 1), 1);
    }

    pub fn in_flight(&self, slot: usize) -> u64 {
        self.concurrency_word(slot, 1).load(Ordering::Acquire)
    }

    // -- worker records ----------------------------------------------------------------

    fn record(&self, index: usize) -> &AtomicU64 {
        &self.words()[WORKER_RECORDS + index]
    }

    /// Claims a free worker record for this table handle; `ident` (non-zero)
    /// names the process so others can tell when it has died.
    pub fn register_worker(&self, ident: u64) -> Result<usize, TableError> {
        if ident == 0 {
            return Err(TableError::Layout(
                "a worker identity must be non-zero".into(),
            ));
        }
        for index in 0..MAX_WORKERS {
            if self
                .record(index)
                .compare_exchange(0, ident, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.worker.store(index, Ordering::Relaxed);
                return Ok(index);
            }
        }
        Err(TableError::NoWorkerRecord)
    }

    pub fn worker_index(&self) -> Option<usize> {
        let w = self.worker.load(Ordering::Relaxed);
        (w != NO_WORKER).then_some(w)
    }

    /// `(index, identity)` of every taken worker record.
    pub fn workers(&self) -> Vec<(usize, u64)> {
        (0..MAX_WORKERS)
            .filter_map(|i| {
                let ident = self.record(i).load(Ordering::Acquire);
                (ident != 0).then_some((i, ident))
            })
            .collect()
    }

    /// Gives back every in-flight place held by the (dead) worker `ident` in
    /// record `index`, then frees the record. Returns the places given back,
    /// or `None` if the record no longer holds `ident`.
    pub fn reap_worker(&self, index: usize, ident: u64) -> Option<u64> {
        if index >= MAX_WORKERS || self.record(index).load(Ordering::Acquire) != ident {
            return None;
        }
        let mut released = 0;
        for slot in 0..self.layout.concurrency {
            if self.concurrency_word(slot, 0).load(Ordering::Acquire) == 0 {
                continue;
            }
            let share = self
                .concurrency_word(slot, 2 + index)
                .swap(0, Ordering::AcqRel);
            if share > 0 {
                sub_saturating(self.concurrency_word(slot, 1), share);
                released += share;
            }
        }
        self.record(index)
            .compare_exchange(ident, 0, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| released)
    }

    /// Slots in use: (buckets, concurrency).
    pub fn occupancy(&self) -> (usize, usize) {
        let buckets = (0..self.layout.buckets)
            .filter(|&s| self.bucket_key(s).load(Ordering::Relaxed) != 0)
            .count();
        let concurrency = (0..self.layout.concurrency)
            .filter(|&s| self.concurrency_word(s, 0).load(Ordering::Relaxed) != 0)
            .count();
        (buckets, concurrency)
    }
}

fn sub_saturating(cell: &AtomicU64, n: u64) {
    let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
        Some(c.saturating_sub(n))
    });
}
