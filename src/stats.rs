//! Per-pool activity of the last hour, for the dashboard's charts: resolves,
//! moves and failures counted per minute in a ring per pool, kept in memory
//! only (a restart starts the hour again). Fed by the handlers that do the
//! counting things; read by GetPoolStats.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::ids::PoolId;

/// Minutes kept: the last hour.
pub const MINUTES: usize = 60;

/// What happened in a pool, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A ResolveProxy that answered with a proxy.
    Resolve,
    /// An assignment moved to another session (rotation, rebind, or a move
    /// by UpdateAssignment).
    Move,
    /// A ReportSessionResult with `success = false`.
    Failure,
}

/// One minute's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub resolves: u64,
    pub moves: u64,
    pub failures: u64,
}

/// The ring of one pool: slot `minute % MINUTES` holds that minute's counts
/// while its `minute` matches, and is reset when the ring comes round.
#[derive(Debug, Clone)]
struct Ring([Minute; MINUTES]);

#[derive(Default)]
pub struct PoolStats {
    rings: Mutex<HashMap<PoolId, Ring>>,
}

fn slot(minute: i64) -> usize {
    minute.rem_euclid(MINUTES as i64) as usize
}

impl PoolStats {
    /// Counts one event at `now_ms`.
    pub fn record(&self, pool: PoolId, event: Event, now_ms: i64) {
        let minute = now_ms.div_euclid(60_000);
        let mut rings = self.rings.lock();
        let ring = rings
            .entry(pool)
            .or_insert_with(|| Ring([Minute::default(); MINUTES]));
        let m = &mut ring.0[slot(minute)];
        if m.minute != minute {
            *m = Minute {
                minute,
                ..Minute::default()
            };
        }
        match event {
            Event::Resolve => m.resolves += 1,
            Event::Move => m.moves += 1,
            Event::Failure => m.failures += 1,
        }
    }

    /// The last `MINUTES` minutes up to the one holding `now_ms`, oldest
    /// first; minutes without events are zeros.
    pub fn hour(&self, pool: PoolId, now_ms: i64) -> Vec<Minute> {
        let last = now_ms.div_euclid(60_000);
        let rings = self.rings.lock();
        let ring = rings.get(&pool);
        (last - MINUTES as i64 + 1..=last)
            .map(|minute| {
                ring.map(|r| r.0[slot(minute)])
                    .filter(|m| m.minute == minute)
                    .unwrap_or(Minute {
                        minute,
                        ..Minute::default()
                    })
            })
            .collect()
    }

    /// Forgets a deleted pool.
    pub fn forget(&self, pool: PoolId) {
        self.rings.lock().remove(&pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn events_land_in_their_minute_and_the_hour_is_oldest_first() {
        let s = PoolStats::default();
        let p = PoolId([1; 16]);
        let t = 1_000 * MIN + 5;
        s.record(p, Event::Resolve, t);
        s.record(p, Event::Resolve, t + 10);
        s.record(p, Event::Failure, t - MIN);
        s.record(p, Event::Move, t);
        let h = s.hour(p, t + 30_000);
        assert_eq!(h.len(), MINUTES);
        assert_eq!(h[59].minute, 1_000);
        assert_eq!((h[59].resolves, h[59].moves, h[59].failures), (2, 1, 0));
        assert_eq!((h[58].minute, h[58].failures), (999, 1));
        assert_eq!(h[0].minute, 941);
        assert!(s.hour(PoolId([2; 16]), t).iter().all(|m| m.resolves == 0));
    }

    #[test]
    fn counts_older_than_an_hour_are_gone_and_their_slot_reused() {
        let s = PoolStats::default();
        let p = PoolId([1; 16]);
        s.record(p, Event::Resolve, 0);
        s.record(p, Event::Resolve, 60 * MIN);
        let h = s.hour(p, 60 * MIN);
        assert_eq!(h.iter().map(|m| m.resolves).sum::<u64>(), 1);
        assert_eq!(h[59].resolves, 1);
        // An hour later with nothing recorded, the old count does not show.
        assert!(s.hour(p, 125 * MIN).iter().all(|m| m.resolves == 0));
        s.forget(p);
        assert!(s.hour(p, 60 * MIN).iter().all(|m| m.resolves == 0));
    }
}
