//! The pure decision: given the desired state (spec) and what the client
//! has acked in its current session, which commands to send. Level
//! triggered: only the difference is sent, and nothing is sent twice while
//! an equal command is in flight.

use super::runtime::{ClientRuntime, MAX_SYNC_ATTEMPTS};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The desired state.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// `spec.paused`.
    pub paused: bool,
    /// `spec.config`.
    pub config: BTreeMap<String, String>,
    /// Its content hash.
    pub config_hash: String,
    /// `spec.syncRequested`.
    pub sync_requested: bool,
    /// `metadata.generation`.
    pub generation: i64,
}

/// A command to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `update_config` with the desired config.
    UpdateConfig,
    /// `sync_wallets` for the request of this generation.
    SyncWallets(i64),
}

/// Commands to send to a connected client whose runtime `rt` belongs to
/// its current session.
pub fn decide(desired: &Desired, rt: &ClientRuntime, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    let pause_inflight = rt.inflight.iter().rev().find_map(|i| i.paused);
    // What the client will hold once everything in flight is acked.
    let expected_paused = pause_inflight.or(rt.acked_paused);
    if expected_paused != Some(desired.paused) && rt.pause_refused != Some(desired.paused) {
        out.push(if desired.paused {
            Action::Pause
        } else {
            Action::Resume
        });
    }
    let config_inflight = rt
        .inflight
        .iter()
        .rev()
        .find_map(|i| i.config_hash.as_deref());
    let expected_hash = config_inflight.or(rt.acked_config_hash.as_deref());
    if expected_hash != Some(&desired.config_hash)
        && rt.config_refused.as_deref() != Some(&desired.config_hash)
    {
        out.push(Action::UpdateConfig);
    }
    let sync_inflight = rt.inflight.iter().any(|i| i.sync_generation.is_some());
    let already_done = rt
        .sync
        .done_generation
        .is_some_and(|g| g >= desired.generation);
    if desired.sync_requested
        && !sync_inflight
        && !already_done
        && rt.sync.attempts < MAX_SYNC_ATTEMPTS
        && rt.sync.not_before.is_none_or(|t| now >= t)
    {
        out.push(Action::SyncWallets(desired.generation));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::CommandKind;
    use crate::controller::runtime::Inflight;

    fn desired(paused: bool, hash: &str, sync: bool) -> Desired {
        Desired {
            paused,
            config: BTreeMap::new(),
            config_hash: hash.into(),
            sync_requested: sync,
            generation: 3,
        }
    }

    fn inflight(
        kind: CommandKind,
        paused: Option<bool>,
        hash: Option<&str>,
        sync: Option<i64>,
    ) -> Inflight {
        Inflight {
            command_id: "c".into(),
            kind,
            paused,
            config_hash: hash.map(str::to_owned),
            sync_generation: sync,
        }
    }

    #[test]
    fn a_new_session_gets_the_whole_desired_state() {
        let rt = ClientRuntime::default();
        assert_eq!(
            decide(&desired(false, "h1", false), &rt, Instant::now()),
            [Action::Resume, Action::UpdateConfig]
        );
        assert_eq!(
            decide(&desired(true, "h1", true), &rt, Instant::now()),
            [Action::Pause, Action::UpdateConfig, Action::SyncWallets(3)]
        );
    }

    #[test]
    fn only_the_difference_is_sent() {
        let rt = ClientRuntime {
            acked_paused: Some(false),
            acked_config_hash: Some("h1".into()),
            ..Default::default()
        };
        assert!(decide(&desired(false, "h1", false), &rt, Instant::now()).is_empty());
        assert_eq!(
            decide(&desired(true, "h1", false), &rt, Instant::now()),
            [Action::Pause]
        );
        assert_eq!(
            decide(&desired(false, "h2", false), &rt, Instant::now()),
            [Action::UpdateConfig]
        );
    }

    #[test]
    fn nothing_is_sent_twice_while_in_flight_but_a_changed_wish_is() {
        let mut rt = ClientRuntime {
            acked_paused: Some(false),
            acked_config_hash: Some("h1".into()),
            ..Default::default()
        };
        rt.inflight
            .push(inflight(CommandKind::Pause, Some(true), None, None));
        rt.inflight
            .push(inflight(CommandKind::UpdateConfig, None, Some("h2"), None));
        assert!(decide(&desired(true, "h2", false), &rt, Instant::now()).is_empty());
        // The user flipped back before the acks: resume and the old config.
        assert_eq!(
            decide(&desired(false, "h1", false), &rt, Instant::now()),
            [Action::Resume, Action::UpdateConfig]
        );
    }

    #[test]
    fn a_refused_command_is_not_resent_until_the_wish_changes() {
        let rt = ClientRuntime {
            acked_paused: Some(false),
            acked_config_hash: Some("h1".into()),
            pause_refused: Some(true),
            config_refused: Some("h2".into()),
            ..Default::default()
        };
        assert!(decide(&desired(true, "h2", false), &rt, Instant::now()).is_empty());
        assert_eq!(
            decide(&desired(true, "h3", false), &rt, Instant::now()),
            [Action::UpdateConfig]
        );
    }

    #[test]
    fn sync_is_sent_once_per_request_and_backs_off() {
        let base = ClientRuntime {
            acked_paused: Some(false),
            acked_config_hash: Some("h".into()),
            ..Default::default()
        };
        let d = desired(false, "h", true);
        let now = Instant::now();
        assert_eq!(decide(&d, &base, now), [Action::SyncWallets(3)]);
        let mut rt = base.clone();
        rt.inflight
            .push(inflight(CommandKind::SyncWallets, None, None, Some(3)));
        assert!(decide(&d, &rt, now).is_empty(), "in flight");
        let mut rt = base.clone();
        rt.sync.done_generation = Some(3);
        assert!(decide(&d, &rt, now).is_empty(), "done for this generation");
        let mut rt = base.clone();
        rt.sync.attempts = 1;
        rt.sync.not_before = Some(now + std::time::Duration::from_secs(2));
        assert!(decide(&d, &rt, now).is_empty(), "backing off");
        assert_eq!(
            decide(&d, &rt, now + std::time::Duration::from_secs(3)),
            [Action::SyncWallets(3)]
        );
        rt.sync.attempts = MAX_SYNC_ATTEMPTS;
        assert!(
            decide(&d, &rt, now + std::time::Duration::from_secs(600)).is_empty(),
            "gave up"
        );
        assert!(
            decide(&desired(false, "h", false), &base, now).is_empty(),
            "not requested"
        );
    }
}
