//! The pending-ack table of one session: commands sent and not yet acked,
//! each with its own deadline. Only that session's task and the callers
//! commanding that client touch it, so its lock is never contended across
//! sessions.

use super::EndReason;
use crate::commands::CommandKind;
use crate::proto::CommandAck;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How a command ended.
#[derive(Debug, Clone)]
pub enum AckOutcome {
    /// The client acked it (`success` says whether it carried it out).
    Acked(Arc<CommandAck>),
    /// No ack before its deadline.
    TimedOut,
    /// The session ended before the ack arrived.
    SessionEnded(EndReason),
}

impl AckOutcome {
    /// Short name: `success`, `failure`, `timeout`, `session_ended`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Acked(a) if a.success => "success",
            Self::Acked(_) => "failure",
            Self::TimedOut => "timeout",
            Self::SessionEnded(_) => "session_ended",
        }
    }
}

/// One command awaiting its ack.
pub(crate) struct Pending {
    pub(crate) kind: CommandKind,
    pub(crate) sent: Instant,
    pub(crate) waiter: Option<oneshot::Sender<AckOutcome>>,
    seq: u64,
}

/// Timed-out ids remembered so that a late ack is recognised, not refused.
const RECENT: usize = 64;

#[derive(Default)]
pub(crate) struct PendingAcks {
    map: HashMap<Arc<str>, Pending>,
    deadlines: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
    recent: VecDeque<Arc<str>>,
    seq: u64,
}

impl PendingAcks {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    /// Adds a pending command; returns whether its deadline is now the
    /// earliest (the session's timer must be re-armed).
    pub(crate) fn insert(
        &mut self,
        id: Arc<str>,
        kind: CommandKind,
        deadline: Instant,
        waiter: Option<oneshot::Sender<AckOutcome>>,
    ) -> bool {
        self.seq += 1;
        let earliest = self.next_deadline().is_none_or(|d| deadline < d);
        self.deadlines
            .push(Reverse((deadline, self.seq, id.clone())));
        self.map.insert(
            id,
            Pending {
                kind,
                sent: Instant::now(),
                waiter,
                seq: self.seq,
            },
        );
        if self.deadlines.len() > 4 * self.map.len() + 64 {
            self.compact();
        }
        earliest
    }

    /// Removes and returns the pending command `id`.
    pub(crate) fn take(&mut self, id: &str) -> Option<(Arc<str>, Pending)> {
        self.map.remove_entry(id)
    }

    /// Whether `id` timed out recently (a late ack, not a foreign one).
    pub(crate) fn timed_out_recently(&self, id: &str) -> bool {
        self.recent.iter().any(|r| &**r == id)
    }

    fn remember(&mut self, id: Arc<str>) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    /// Removes every command whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(Arc<str>, Pending)> {
        let mut out = Vec::new();
        while let Some(Reverse((deadline, seq, _))) = self.deadlines.peek() {
            if *deadline > now {
                break;
            }
            let (seq, id) = (*seq, self.deadlines.pop().map(|Reverse((_, _, id))| id));
            let Some(id) = id else { break };
            if self.map.get(&id).is_some_and(|p| p.seq == seq)
                && let Some(entry) = self.map.remove_entry(&id)
            {
                self.remember(entry.0.clone());
                out.push(entry);
            }
        }
        out
    }

    /// The earliest deadline of a command still pending.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, seq, id))) = self.deadlines.peek() {
            if self.map.get(id).is_some_and(|p| p.seq == *seq) {
                return Some(*deadline);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Removes every pending command (the session ended).
    pub(crate) fn drain(&mut self) -> Vec<(Arc<str>, Pending)> {
        self.deadlines.clear();
        self.map.drain().collect()
    }

    fn compact(&mut self) {
        let map = &self.map;
        self.deadlines
            .retain(|Reverse((_, seq, id))| map.get(id).is_some_and(|p| p.seq == *seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expires_in_deadline_order_and_remembers_late_ids() {
        let mut p = PendingAcks::default();
        let t0 = Instant::now();
        assert!(p.insert(
            "a".into(),
            CommandKind::Ping,
            t0 + Duration::from_secs(5),
            None
        ));
        assert!(p.insert(
            "b".into(),
            CommandKind::Ping,
            t0 + Duration::from_secs(1),
            None
        ));
        assert!(!p.insert(
            "c".into(),
            CommandKind::Ping,
            t0 + Duration::from_secs(9),
            None
        ));
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let gone: Vec<_> = p
            .expire(t0 + Duration::from_secs(5))
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(gone, ["b", "a"]);
        assert!(p.timed_out_recently("a"));
        assert!(!p.timed_out_recently("c"));
        assert_eq!(p.len(), 1);
        assert!(p.take("c").is_some());
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn taken_commands_do_not_expire() {
        let mut p = PendingAcks::default();
        let t0 = Instant::now();
        p.insert("a".into(), CommandKind::Pause, t0, None);
        assert!(p.take("a").is_some());
        assert!(p.expire(t0 + Duration::from_secs(1)).is_empty());
        assert!(!p.timed_out_recently("a"));
    }
}
