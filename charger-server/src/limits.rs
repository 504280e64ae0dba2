//! Limits keyed by the identity they restrain (docs/security.md).
//!
//! A limit that protects the service from one client must be keyed by who that client
//! is, not by its connection, or reconnecting resets it:
//!
//! - [`PerSource`]: a share of a global cap (open HTTP connections, MQTT sockets still
//!   logging in) per source address (an IPv4 address, or an IPv6 /64, which one host
//!   usually holds whole), so that one source cannot take all of it;
//! - [`Buckets`]: token buckets per key (a device id, a source address) that live on
//!   after the connection that used them, until they have refilled.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who a network limit is keyed by: an IPv4 address, or the /64 an IPv6 address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(u128);

impl Source {
    /// The wider source sign-in attempts are keyed by: an IPv4 address, or an IPv6 /48 (a
    /// host with a /48 must not get 65,536 budgets).
    pub fn wide(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                Source((u128::from(v6) >> 80) << 80 | 1 << 79)
            }
            other => Source::of(other),
        }
    }

    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(u128::from(u32::from(v4))),
                // The /64: one host usually holds a whole one.
                None => Source((u128::from(v6) >> 64) << 64 | 1 << 63),
            },
        }
    }
}

/// A per-source share of a global cap: at most `per_source` slots held by one source.
#[derive(Debug)]
pub struct PerSource {
    per_source: usize,
    held: Mutex<HashMap<Source, usize>>,
}

/// A slot held by one source; given back when dropped.
#[derive(Debug)]
pub struct SourceSlot {
    pool: Arc<PerSource>,
    source: Source,
}

impl PerSource {
    pub fn new(per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            per_source: per_source.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or None when its source holds its share already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let source = Source::of(ip);
        let mut held = self.held.lock().ok()?;
        let n = held.entry(source).or_insert(0);
        if *n >= self.per_source {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            pool: self.clone(),
            source,
        })
    }

    /// Slots `ip`'s source holds now.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.get(&Source::of(ip)).copied())
            .unwrap_or(0)
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.pool.held.lock() {
            if let Some(n) = held.get_mut(&self.source) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(&self.source);
                }
            }
        }
    }
}

/// One token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
    /// Since when its holder has been over its rate without backing off.
    pub over_since: Option<Instant>,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
            over_since: None,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(burst);
        self.last = now;
    }

    /// Takes a token; returns how long its holder must wait for it (zero: none). The debt
    /// is kept, so waiting holders are served in turn.
    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Duration {
        self.refill(rate, burst, now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            if self.tokens >= burst / 2.0 {
                // Backed off to half a burst in hand: no longer over the rate.
                self.over_since = None;
            }
            return Duration::ZERO;
        }
        self.over_since.get_or_insert(now);
        Duration::from_secs_f64(-self.tokens / rate)
    }

    /// Takes a token only if one is there now; false (nothing taken) otherwise.
    pub fn try_take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether it has refilled completely by `now` (nothing left to remember).
    fn is_full(&self, rate: f64, burst: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * rate >= burst
    }
}

/// Token buckets by key: `rate` a second, `burst` at once, for each key apart. A key's
/// bucket outlives the connection that used it, so reconnecting does not refill it; it is
/// forgotten once it has refilled.
#[derive(Debug)]
pub struct Buckets<K> {
    pub rate: f64,
    pub burst: f64,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
}

const SHARDS: usize = 16;
/// A shard is swept of full buckets when it grows past this many keys since its last sweep.
const SWEEP_AT: usize = 1024;

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, Bucket>> {
        use std::hash::Hasher as _;
        // The shard only spreads lock contention: any stable hash will do.
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// Runs `f` on `key`'s bucket (a full one when it has none).
    pub fn with<T>(&self, key: &K, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> Option<T> {
        let mut shard = self.shard(key).lock().ok()?;
        if shard.len() >= SWEEP_AT && !shard.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            shard.retain(|_, b| !b.is_full(rate, burst, now));
        }
        let bucket = shard
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(self.burst, now));
        Some(f(bucket))
    }

    /// Takes a token for `key`: how long to wait for it (zero: none).
    pub fn take(&self, key: &K, now: Instant) -> Duration {
        let (rate, burst) = (self.rate, self.burst);
        self.with(key, now, |b| b.take(rate, burst, now))
            .unwrap_or(Duration::ZERO)
    }

    /// Takes a token for `key` if one is there now.
    pub fn try_take(&self, key: &K, now: Instant) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        self.with(key, now, |b| b.try_take(rate, burst, now))
            .unwrap_or(true)
    }

    /// Gives back a token taken for `key` (an attempt that turned out to count for nothing).
    pub fn give_back(&self, key: &K, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        let _ = self.with(key, now, |b| {
            b.refill(rate, burst, now);
            b.tokens = (b.tokens + 1.0).min(burst);
        });
    }

    /// Whether `key` has a token now (nothing is taken).
    pub fn has_token(&self, key: &K, now: Instant) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        self.with(key, now, |b| {
            b.refill(rate, burst, now);
            b.tokens >= 1.0
        })
        .unwrap_or(true)
    }

    /// Keys remembered now (for tests and `/metrics`).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_holds_at_most_its_share_and_gives_it_back() {
        let pool = PerSource::new(2);
        let a: IpAddr = "127.0.0.1".parse().expect("an address");
        let b: IpAddr = "127.0.0.2".parse().expect("an address");
        let one = pool.try_acquire(a).expect("first");
        let _two = pool.try_acquire(a).expect("second");
        assert!(pool.try_acquire(a).is_none(), "a third for the same source");
        assert!(
            pool.try_acquire(b).is_some(),
            "another source is not affected"
        );
        drop(one);
        assert!(pool.try_acquire(a).is_some(), "a slot came back");
    }

    #[test]
    fn ipv6_sources_are_their_64_and_mapped_ipv4_is_ipv4() {
        let x: IpAddr = "2001:db8::1".parse().expect("an address");
        let y: IpAddr = "2001:db8::ffff:2".parse().expect("an address");
        let z: IpAddr = "2001:db8:0:1::1".parse().expect("an address");
        assert_eq!(Source::of(x), Source::of(y));
        assert_ne!(Source::of(x), Source::of(z));
        let v4: IpAddr = "10.1.2.3".parse().expect("an address");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("an address");
        assert_eq!(Source::of(v4), Source::of(mapped));
    }

    #[test]
    fn a_keys_bucket_survives_between_uses_and_refills_with_time() {
        let buckets = Buckets::new(10.0, 5.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(buckets.take(&"dev", t0), Duration::ZERO);
        }
        // A sixth at once waits a tenth of a second; another key does not.
        assert!(buckets.take(&"dev", t0) > Duration::ZERO);
        assert_eq!(buckets.take(&"other", t0), Duration::ZERO);
        assert!(!buckets.try_take(&"dev", t0));
        // One second later it has refilled.
        let t1 = t0 + Duration::from_secs(1);
        assert!(buckets.try_take(&"dev", t1));
    }
}
