//! The assignment rules as pure functions of their inputs, a clock value and
//! a random source: which session to choose, whether a resolve keeps, moves
//! or refuses an assignment, and how a reported result changes health.

use rand::Rng;

use crate::ids::SessionId;

/// A session as the eligibility rule sees it.
// Production asks SQLite (see `eligible`); the rule's own form is what the
// store's tests hold that SQL to.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    pub id: SessionId,
    pub enabled: bool,
    pub deleted: bool,
    pub unhealthy_until: Option<i64>,
    /// The vendor's expiry (ms), if any.
    pub expires_at: Option<i64>,
    pub assignments: i64,
}

/// Not past the vendor's expiry: an expired session is handed out no more,
/// from the moment it expires (not from the next sync).
pub fn is_current(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|e| e > now)
}

/// Healthy unless a cooldown is running; once it ends the session is
/// eligible again (half-open). What a Session's `health.healthy` shows.
pub fn is_healthy(unhealthy_until: Option<i64>, now: i64) -> bool {
    unhealthy_until.is_none_or(|u| u <= now)
}

/// Whether session choice may hand `s` out: live, enabled, healthy, below
/// `max_per_session` (0 = unlimited) and not `exclude`.
///
/// This predicate is the authority for the rule. Production asks SQLite
/// instead (`store::sessions::candidates`, an index range on
/// `sessions_choice` that stays small at a million sessions), and
/// `/metrics` counts cooling sessions the same way; the store's test
/// `candidates_are_exactly_the_eligible_sessions` checks both queries
/// against this function over generated sessions. Change the rule here
/// first, then the SQL until that test passes.
#[cfg_attr(not(test), allow(dead_code))]
pub fn eligible(
    s: &SessionState,
    max_per_session: i32,
    exclude: Option<SessionId>,
    now: i64,
) -> bool {
    !s.deleted
        && s.enabled
        && is_current(s.expires_at, now)
        && is_healthy(s.unhealthy_until, now)
        && (max_per_session <= 0 || s.assignments < max_per_session as i64)
        && Some(s.id) != exclude
}

/// An eligible session, as session choice sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: SessionId,
    pub assignments: i64,
}

/// Among candidates that are all eligible already (the store's
/// `candidates` applies the rule), the one with the fewest assignments;
/// ties broken at random.
pub fn choose(cands: &[Candidate], rng: &mut impl Rng) -> Option<SessionId> {
    let min = cands.iter().map(|c| c.assignments).min()?;
    let tied: Vec<&Candidate> = cands.iter().filter(|c| c.assignments == min).collect();
    Some(tied[rng.random_range(0..tied.len())].id)
}

/// The pool's policy, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub interval_ms: i64,
    pub on_unhealthy: bool,
}

/// The current binding of an assignment as resolution sees it.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub pinned: bool,
    pub bound_at: i64,
    pub session_enabled: bool,
    pub session_deleted: bool,
    pub session_unhealthy_until: Option<i64>,
    pub session_expires_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Return the current session.
    Keep,
    /// Move to a fresh session; when none is free, keep the current one
    /// (the interval ran out but the session is fine).
    MoveIfPossible,
    /// Move to a fresh session; when none is free, fail.
    MustMove,
    /// Pinned to a session it cannot use.
    PinnedUnusable,
}

/// What a resolve does with an existing assignment.
pub fn judge(b: &Binding, p: &Policy, now: i64) -> Verdict {
    // A deleted or disabled session is never handed out, whatever the
    // policy: disabling is how an operator trims a pool (seed 001).
    // `on_unhealthy` governs only health, which is a guess from reports.
    // An expired session is unusable the same way.
    let unusable = b.session_deleted
        || !b.session_enabled
        || !is_current(b.session_expires_at, now)
        || (p.on_unhealthy && !is_healthy(b.session_unhealthy_until, now));
    if unusable {
        return if b.pinned {
            Verdict::PinnedUnusable
        } else {
            Verdict::MustMove
        };
    }
    if !b.pinned && p.interval_ms > 0 && now - b.bound_at >= p.interval_ms {
        return Verdict::MoveIfPossible;
    }
    Verdict::Keep
}

/// Health counters of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    pub consecutive_failures: i32,
    pub unhealthy_until: Option<i64>,
}

/// One reported result: a success heals at once; the `threshold`-th
/// consecutive failure (and every failure after it, so a half-open session
/// that fails again goes straight back) starts a cooldown.
pub fn report(h: Health, success: bool, threshold: i32, cooldown_ms: i64, now: i64) -> Health {
    if success {
        return Health::default();
    }
    let failures = h.consecutive_failures.saturating_add(1);
    Health {
        consecutive_failures: failures,
        unhealthy_until: if failures >= threshold.max(1) {
            Some(now + cooldown_ms)
        } else {
            h.unhealthy_until
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn cand(n: u8, assignments: i64) -> Candidate {
        Candidate {
            id: SessionId([n; 16]),
            assignments,
        }
    }

    #[test]
    fn choose_prefers_fewest_assignments() {
        let mut rng = StdRng::seed_from_u64(1);
        let c = [cand(1, 5), cand(2, 1), cand(3, 3)];
        for _ in 0..20 {
            assert_eq!(choose(&c, &mut rng), Some(SessionId([2; 16])));
        }
        assert_eq!(choose(&[], &mut rng), None);
    }

    #[test]
    fn choose_breaks_ties_at_random() {
        let mut rng = StdRng::seed_from_u64(7);
        let c = [cand(1, 2), cand(2, 2), cand(3, 2), cand(4, 9)];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(choose(&c, &mut rng).unwrap());
        }
        assert_eq!(seen.len(), 3, "every tied session gets chosen sometimes");
        assert!(!seen.contains(&SessionId([4; 16])));
    }

    fn state(n: u8, assignments: i64) -> SessionState {
        SessionState {
            id: SessionId([n; 16]),
            enabled: true,
            deleted: false,
            unhealthy_until: None,
            expires_at: None,
            assignments,
        }
    }

    #[test]
    fn eligible_refuses_full_disabled_deleted_unhealthy_and_excluded() {
        let now = 1_000;
        let ok = |s: &SessionState, cap, exclude| eligible(s, cap, exclude, now);
        assert!(ok(&state(1, 0), 30, None));
        let disabled = SessionState {
            enabled: false,
            ..state(1, 0)
        };
        assert!(!ok(&disabled, 30, None));
        let deleted = SessionState {
            deleted: true,
            ..state(2, 0)
        };
        assert!(!ok(&deleted, 30, None));
        let sick = SessionState {
            unhealthy_until: Some(now + 1),
            ..state(3, 0)
        };
        assert!(!ok(&sick, 30, None));
        let full = state(4, 30);
        assert!(!ok(&full, 30, None));
        assert!(ok(&state(4, 29), 30, None));
        assert!(!ok(&state(5, 0), 30, Some(SessionId([5; 16]))));
        assert!(ok(&full, 0, None), "0 is unlimited");
        let healed = SessionState {
            unhealthy_until: Some(now),
            ..state(6, 0)
        };
        assert!(ok(&healed, 0, None), "half-open after cooldown");
        let expired = SessionState {
            expires_at: Some(now),
            ..state(7, 0)
        };
        assert!(!ok(&expired, 0, None), "expired at its expiry");
        let current = SessionState {
            expires_at: Some(now + 1),
            ..state(7, 0)
        };
        assert!(ok(&current, 0, None));
    }

    fn binding() -> Binding {
        Binding {
            pinned: false,
            bound_at: 0,
            session_enabled: true,
            session_deleted: false,
            session_unhealthy_until: None,
            session_expires_at: None,
        }
    }

    #[test]
    fn judge_follows_the_rotation_policy() {
        let p = Policy {
            interval_ms: 60_000,
            on_unhealthy: true,
        };
        assert_eq!(judge(&binding(), &p, 59_999), Verdict::Keep);
        let expiring = Binding {
            session_expires_at: Some(50_000),
            ..binding()
        };
        assert_eq!(judge(&expiring, &p, 49_999), Verdict::Keep);
        assert_eq!(judge(&expiring, &p, 50_000), Verdict::MustMove);
        let pinned = Binding {
            pinned: true,
            ..expiring
        };
        assert_eq!(judge(&pinned, &p, 50_000), Verdict::PinnedUnusable);
        assert_eq!(judge(&binding(), &p, 60_000), Verdict::MoveIfPossible);
        let pinned = Binding {
            pinned: true,
            ..binding()
        };
        assert_eq!(
            judge(&pinned, &p, 10_000_000),
            Verdict::Keep,
            "pinned never rotates on time"
        );
        let sick = Binding {
            session_unhealthy_until: Some(5_000),
            ..binding()
        };
        assert_eq!(judge(&sick, &p, 1_000), Verdict::MustMove);
        assert_eq!(judge(&sick, &p, 5_000), Verdict::Keep, "cooldown over");
        let off = Binding {
            session_enabled: false,
            ..binding()
        };
        assert_eq!(judge(&off, &p, 1), Verdict::MustMove);
        assert_eq!(
            judge(
                &Binding {
                    pinned: true,
                    ..off
                },
                &p,
                1
            ),
            Verdict::PinnedUnusable
        );
        let never = Policy {
            interval_ms: 0,
            on_unhealthy: false,
        };
        assert_eq!(
            judge(&off, &never, 1),
            Verdict::MustMove,
            "a disabled session is never handed out, even with on_unhealthy off"
        );
        assert_eq!(
            judge(
                &Binding {
                    pinned: true,
                    ..off
                },
                &never,
                1
            ),
            Verdict::PinnedUnusable,
            "a pinned assignment on a disabled session is refused whatever the policy"
        );
        assert_eq!(
            judge(&sick, &never, 1_000),
            Verdict::Keep,
            "on_unhealthy off keeps an unhealthy session"
        );
        assert_eq!(
            judge(&binding(), &never, i64::MAX / 2),
            Verdict::Keep,
            "interval 0 never rotates"
        );
        let gone = Binding {
            session_deleted: true,
            ..binding()
        };
        assert_eq!(
            judge(&gone, &never, 1),
            Verdict::MustMove,
            "deleted always moves"
        );
        assert_eq!(
            judge(
                &Binding {
                    pinned: true,
                    ..gone
                },
                &never,
                1
            ),
            Verdict::PinnedUnusable
        );
    }

    #[test]
    fn health_trips_at_threshold_and_heals_on_success() {
        let mut h = Health::default();
        h = report(h, false, 3, 300_000, 10);
        h = report(h, false, 3, 300_000, 20);
        assert_eq!(h.unhealthy_until, None);
        h = report(h, false, 3, 300_000, 30);
        assert_eq!(
            h,
            Health {
                consecutive_failures: 3,
                unhealthy_until: Some(300_030)
            }
        );
        assert!(!is_healthy(h.unhealthy_until, 300_029));
        assert!(is_healthy(h.unhealthy_until, 300_030));
        let again = report(h, false, 3, 300_000, 400_000);
        assert_eq!(
            again.unhealthy_until,
            Some(700_000),
            "a failure while half-open trips again"
        );
        assert_eq!(report(again, true, 3, 300_000, 400_001), Health::default());
    }
}
