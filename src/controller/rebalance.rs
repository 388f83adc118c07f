//! Rebalancing: sessions spread again after a scale-out or a recovered
//! replica, because a long-lived HTTP/2 connection never moves by itself.
//!
//! Every [`TICK`] this replica compares its session count with the mean
//! over the live replicas (its own count now; each peer's from its Lease,
//! as of its last renewal; plus the sessions it moved within the renew
//! deadline, which may not show in any Lease yet — without them the mean
//! looks lower than it is, and a replica would move itself below it):
//! - above mean × [`START_ABOVE`] it starts moving its oldest sessions
//!   (`disconnect` with a reconnect hint), at most `rate` % of its
//!   sessions per minute, and goes on down to the mean — not just under
//!   the threshold, or the clients it moves, landing anywhere, would leave
//!   it over again;
//! - while it moves sessions, and whenever it is above mean ×
//!   [`STEER_ABOVE`], it also refuses most new registrations with a retry
//!   hint (the streaming core decides how many),
//!   so moved clients (and new ones) land on a replica below the mean
//!   instead of coming back (with a random or round-robin Service, each
//!   would otherwise come back with probability (N − 1)/N).
//!
//! Nothing happens alone, or while this replica cannot reach the API (its
//! view of its peers is stale then). Small differences are left alone:
//! both rules need at least [`MIN_EXCESS`] sessions over the mean.

use super::Membership;
use crate::streaming::StreamingHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// How often the counts are compared.
pub const TICK: Duration = Duration::from_millis(200);
/// Start moving sessions above this multiple of the mean.
pub const START_ABOVE: f64 = 1.2;
/// Refuse new registrations above this multiple of the mean (even when
/// not moving sessions).
pub const STEER_ABOVE: f64 = 1.15;
/// The fewest sessions over the mean worth moving.
pub const MIN_EXCESS: f64 = 2.0;

/// What to do this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// Keep (or start) moving sessions, this many at most.
    pub(crate) excess: usize,
    /// Refuse new registrations.
    pub(crate) steer: bool,
}

/// The plan for `mine` sessions against the peers' `others`, given
/// whether this replica was already moving sessions and how many it moved
/// that the peers' counts may not show yet.
pub(crate) fn plan(mine: u64, others: &[u64], in_flight: u64, moving: bool) -> Plan {
    if others.is_empty() {
        return Plan {
            excess: 0,
            steer: false,
        };
    }
    let total: u64 = mine + in_flight + others.iter().sum::<u64>();
    #[allow(clippy::cast_precision_loss)]
    let (mean, mine_f) = (total as f64 / (others.len() + 1) as f64, mine as f64);
    let over = mine_f - mean;
    let start = mine_f > mean * START_ABOVE && over >= MIN_EXCESS;
    let excess = if start || (moving && over >= 1.0) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = over.floor() as usize;
        n
    } else {
        0
    };
    Plan {
        excess,
        steer: excess > 0 || (mine_f > mean * STEER_ABOVE && over >= MIN_EXCESS),
    }
}

/// Spreads this replica's sessions until `stop`; `rate` is the most
/// sessions moved per minute, in percent of this replica's (0: never).
pub async fn run(
    membership: Arc<Membership>,
    handle: StreamingHandle,
    rate: f64,
    stop: CancellationToken,
) {
    if rate <= 0.0 {
        return;
    }
    let mut moving = false;
    // Sessions asked to move, and when: the ones within the renew deadline
    // may not be in any peer's Lease yet.
    let mut moved: std::collections::VecDeque<(tokio::time::Instant, u64)> =
        std::collections::VecDeque::new();
    let lag = membership.config().renew_deadline();
    // Sessions that may be moved now: refilled at `rate`, at most one
    // tick's worth or one session, so a quiet minute is no burst.
    let mut budget = 0.0f64;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let others: Vec<u64> = if membership.api_ok() {
            membership.peers().iter().map(|p| p.sessions).collect()
        } else {
            Vec::new()
        };
        let mine = handle.connected() as u64;
        while moved.front().is_some_and(|(at, _)| at.elapsed() > lag) {
            moved.pop_front();
        }
        let in_flight = moved.iter().map(|(_, n)| n).sum();
        let p = plan(mine, &others, in_flight, moving);
        handle.steer_away(p.steer);
        if p.excess == 0 {
            if moving {
                info!(
                    sessions = mine,
                    "this replica holds its share of the fleet again"
                );
            }
            moving = false;
            budget = 0.0;
            continue;
        }
        if !moving {
            info!(
                sessions = mine,
                replicas = others.len() + 1,
                over = p.excess,
                "this replica holds more than its share of the fleet; moving its oldest sessions"
            );
        }
        moving = true;
        #[allow(clippy::cast_precision_loss)]
        let per_tick = mine as f64 * rate / 100.0 / 60.0 * TICK.as_secs_f64();
        budget = (budget + per_tick).min(per_tick.max(1.0));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let now = (budget.floor() as usize).min(p.excess);
        if now > 0 {
            let asked = handle.move_oldest(now);
            moved.push_back((tokio::time::Instant::now(), asked as u64));
            #[allow(clippy::cast_precision_loss)]
            {
                budget -= asked as f64;
            }
            debug!(asked, over = p.excess, "sessions asked to move");
        }
    }
    handle.steer_away(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_or_balanced_nothing_moves() {
        assert_eq!(plan(500, &[], 0, false).excess, 0);
        assert_eq!(plan(210, &[200, 190], 0, false).excess, 0);
        assert!(!plan(210, &[200, 190], 0, false).steer);
    }

    #[test]
    fn above_the_threshold_it_moves_down_to_the_mean_and_steers_above_its_own() {
        // 2 -> 3 replicas: 300, 300, 0; the mean is 200.
        let p = plan(300, &[300, 0], 0, false);
        assert_eq!(p.excess, 100);
        assert!(p.steer);
        // Once moving, it goes on under the start threshold ...
        let p = plan(235, &[230, 135], 0, true);
        assert_eq!(p.excess, 35);
        assert!(p.steer);
        let p = plan(220, &[220, 160], 0, true);
        assert_eq!(p.excess, 20);
        assert!(p.steer, "a moving replica takes no new clients");
        // ... down to the mean, not below it.
        let p = plan(200, &[200, 200], 0, true);
        assert_eq!((p.excess, p.steer), (0, false));
        // Not moving yet, the same count starts nothing, and under mean x
        // 1.15 new clients are welcome.
        let p = plan(220, &[220, 160], 0, false);
        assert_eq!((p.excess, p.steer), (0, false));
    }

    #[test]
    fn sessions_in_flight_count_towards_the_mean() {
        // 20 moved a moment ago are in no Lease yet: the mean is 200, not
        // 193.3, and 200 is not over it.
        let p = plan(200, &[215, 165], 20, true);
        assert_eq!((p.excess, p.steer), (0, false));
        assert_eq!(plan(200, &[215, 165], 0, true).excess, 6);
    }

    #[test]
    fn small_fleets_are_left_alone() {
        // 3 against a mean of 2 is 1.5x, but one session over.
        assert_eq!(plan(3, &[2, 1], 0, false).excess, 0);
        assert!(!plan(3, &[2, 1], 0, false).steer);
    }
}
