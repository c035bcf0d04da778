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
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Entries kept before full (idle) buckets are swept.
const SWEEP_AT: usize = 10_000;

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub fn new(rate: f64, burst: f64) -> Self {
        Limiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn with_bucket<T>(&self, key: K, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = map.entry(key).or_insert(Bucket {
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

    /// Whether a token is there, without taking it.
    pub fn check(&self, key: K) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        self.with_bucket(key, Instant::now(), |b| {
            if b.tokens >= 1.0 {
                Ok(())
            } else {
                Err(self.wait_secs(b.tokens))
            }
        })
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
}
