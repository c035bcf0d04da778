//! In-process token buckets: one per API key (every request) and one per
//! client IP (failed authentications only). A rate of 0 disables a limiter.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets<K>>,
}

struct Buckets<K> {
    map: HashMap<K, Bucket>,
    /// The size at which the next sweep runs: twice what the last sweep
    /// kept (at least `SWEEP_AT`), so sweeping costs O(1) per request
    /// amortised however many keys are live.
    sweep_at: usize,
    sweeps: u64,
}

/// Entries kept before full (idle) buckets are swept.
const SWEEP_AT: usize = 10_000;
/// The most entries a limiter keeps (a few MiB). Past it, after a sweep,
/// arbitrary buckets are dropped: a dropped bucket starts full again, which
/// only matters to a client spread over this many addresses at once.
const MAX_ENTRIES: usize = 100_000;

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub fn new(rate: f64, burst: f64) -> Self {
        Limiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: SWEEP_AT,
                sweeps: 0,
            }),
        }
    }

    fn with_bucket<T>(&self, key: K, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let all = &mut *guard;
        if all.map.len() >= all.sweep_at && !all.map.contains_key(&key) {
            let (rate, burst) = (self.rate, self.burst);
            // A bucket that has refilled is the same as no bucket.
            all.map
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if all.map.len() >= MAX_ENTRIES {
                let excess = all.map.len() + 1 - MAX_ENTRIES / 2;
                let drop: Vec<K> = all.map.keys().take(excess).copied().collect();
                for k in drop {
                    all.map.remove(&k);
                }
            }
            all.sweep_at = (all.map.len() * 2).clamp(SWEEP_AT, MAX_ENTRIES);
            all.sweeps += 1;
        }
        let b = all.map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        f(b)
    }

    fn wait_secs(&self, tokens: f64) -> u64 {
        (((1.0 - tokens) / self.rate).ceil() as u64).max(1)
    }

    /// Takes one token; `Err(seconds)` to wait when there is none.
    pub fn take(&self, key: K) -> Result<(), u64> {
        self.take_at(key, Instant::now())
    }

    pub fn take_at(&self, key: K, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        self.with_bucket(key, now, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                Ok(())
            } else {
                Err(self.wait_secs(b.tokens))
            }
        })
    }

    #[cfg(test)]
    fn stats(&self) -> (usize, u64) {
        let b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        (b.map.len(), b.sweeps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_at_rate() {
        let l = Limiter::new(2.0, 3.0);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.take_at(1, t).is_ok());
        }
        assert_eq!(l.take_at(1, t), Err(1));
        assert!(l.take_at(2, t).is_ok(), "buckets are per key");
        assert!(l.take_at(1, t + Duration::from_millis(500)).is_ok());
        assert!(l.take_at(1, t + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn slow_rates_ask_for_a_longer_wait_and_zero_disables() {
        let l = Limiter::new(0.1, 1.0);
        let t = Instant::now();
        assert!(l.take_at(1, t).is_ok());
        assert_eq!(l.take_at(1, t), Err(10));
        let off = Limiter::new(0.0, 1.0);
        for _ in 0..100 {
            assert!(off.take_at(1, t).is_ok());
        }
    }

    #[test]
    fn many_live_keys_are_swept_rarely_and_the_map_stays_bounded() {
        // Every key keeps an empty bucket (a failing client), so a sweep
        // frees nothing: before, every request past 10,000 keys ran a full
        // sweep; now sweeps happen only when the map doubles.
        let l = Limiter::new(0.001, 1.0);
        let t = Instant::now();
        for k in 0..40_000u32 {
            let _ = l.take_at(k, t);
        }
        let (len, sweeps) = l.stats();
        assert_eq!(len, 40_000);
        assert!(sweeps <= 3, "{sweeps} sweeps for 40,000 keys");
        for k in 40_000..(MAX_ENTRIES as u32 * 3) {
            let _ = l.take_at(k, t);
        }
        let (len, sweeps) = l.stats();
        assert!(len <= MAX_ENTRIES, "{len} entries");
        assert!(sweeps < 20, "{sweeps} sweeps");
    }

    #[test]
    fn refilled_buckets_are_swept() {
        let l = Limiter::new(1000.0, 1.0);
        let t = Instant::now();
        for k in 0..SWEEP_AT as u32 {
            let _ = l.take_at(k, t);
        }
        let _ = l.take_at(u32::MAX, t + Duration::from_secs(1));
        assert_eq!(l.stats().0, 1, "only the new key is left");
    }
}
