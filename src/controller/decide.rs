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
    let already_done = rt.sync.is_done(Some(desired.generation));
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

/// Properties of the spec -> commands function over arbitrary states.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::commands::CommandKind;
    use crate::controller::runtime::Inflight;
    use proptest::prelude::*;

    fn hash() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("h1".to_string()),
            Just("h2".to_string()),
            Just("h3".to_string())
        ]
    }

    fn runtime() -> impl Strategy<Value = ClientRuntime> {
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(hash()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(hash()),
            proptest::option::of(0i64..5),
            0u32..7,
        )
            .prop_map(
                |(acked_paused, acked_hash, inflight_pause, inflight_hash, done, attempts)| {
                    let mut rt = ClientRuntime {
                        acked_paused,
                        acked_config_hash: acked_hash,
                        ..Default::default()
                    };
                    if let Some(p) = inflight_pause {
                        rt.inflight.push(Inflight {
                            command_id: "p".into(),
                            kind: CommandKind::Pause,
                            paused: Some(p),
                            config_hash: None,
                            sync_generation: None,
                        });
                    }
                    if let Some(h) = inflight_hash {
                        rt.inflight.push(Inflight {
                            command_id: "c".into(),
                            kind: CommandKind::UpdateConfig,
                            paused: None,
                            config_hash: Some(h),
                            sync_generation: None,
                        });
                    }
                    rt.sync.done_generation = done;
                    rt.sync.attempts = attempts;
                    rt
                },
            )
    }

    fn desired() -> impl Strategy<Value = Desired> {
        (any::<bool>(), hash(), any::<bool>(), 1i64..6).prop_map(
            |(paused, config_hash, sync_requested, generation)| Desired {
                paused,
                config: BTreeMap::new(),
                config_hash,
                sync_requested,
                generation,
            },
        )
    }

    proptest! {
        /// Sending what `decide` asks and having it acked converges: the
        /// next decision is empty, so a resource never loops.
        #[test]
        fn acking_every_decision_converges(d in desired(), mut rt in runtime()) {
            let now = Instant::now();
            let first = decide(&d, &rt, now);
            let mut kinds: Vec<_> = first.iter().map(std::mem::discriminant).collect();
            kinds.dedup();
            prop_assert_eq!(kinds.len(), first.len(), "no command twice in one decision");
            rt.inflight.clear();
            for a in &first {
                match a {
                    Action::Pause => rt.acked_paused = Some(true),
                    Action::Resume => rt.acked_paused = Some(false),
                    Action::UpdateConfig => rt.acked_config_hash = Some(d.config_hash.clone()),
                    Action::SyncWallets(g) => rt.sync.done_generation = Some(*g),
                }
            }
            // Whatever was in flight is acked too.
            rt.acked_paused = rt.acked_paused.or(Some(d.paused));
            if rt.acked_config_hash.as_deref() != Some(&d.config_hash) && !first.contains(&Action::UpdateConfig) {
                rt.acked_config_hash = Some(d.config_hash.clone());
            }
            if rt.acked_paused != Some(d.paused) {
                rt.acked_paused = Some(d.paused);
            }
            let again = decide(&d, &rt, now);
            prop_assert!(again.iter().all(|a| matches!(a, Action::SyncWallets(_))) , "{:?}", again);
            if first.iter().any(|a| matches!(a, Action::SyncWallets(_))) {
                prop_assert!(again.is_empty(), "a sync is sent once per request");
            }
        }

        /// A decision never contradicts the spec.
        #[test]
        fn decisions_follow_the_spec(d in desired(), rt in runtime()) {
            for a in decide(&d, &rt, Instant::now()) {
                match a {
                    Action::Pause => prop_assert!(d.paused),
                    Action::Resume => prop_assert!(!d.paused),
                    Action::UpdateConfig => {
                        // Sent only when the config the client will hold
                        // (in flight, else acked) differs from the spec.
                        let expected = rt.inflight.iter().rev().find_map(|i| i.config_hash.as_deref()).or(rt.acked_config_hash.as_deref());
                        prop_assert_ne!(expected, Some(d.config_hash.as_str()));
                    }
                    Action::SyncWallets(g) => {
                        prop_assert!(d.sync_requested);
                        prop_assert_eq!(g, d.generation);
                    }
                }
            }
        }
    }
}
