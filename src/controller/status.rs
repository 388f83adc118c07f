//! The pure status computation: (resource, session, acked state, previous
//! status, now) -> new status with standard conditions, plus the write
//! rule: phase and every other field change at once; `lastHeartbeat` alone
//! is written at most once per status heartbeat interval; nothing is written
//! when nothing changed.

use super::runtime::{ClientRuntime, MAX_SYNC_ATTEMPTS};
use crate::crd::{CryptoClient, CryptoClientStatus, Holder, PendingSync, Phase, SessionStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use std::time::{Duration, SystemTime};

/// A live session as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// When it registered.
    pub connected_at: SystemTime,
    /// Registered name.
    pub client_name: String,
    /// Registered type.
    pub client_type: String,
    /// Registered version.
    pub version: String,
    /// Last heartbeat.
    pub last_heartbeat: Option<SystemTime>,
    /// Missed heartbeats for `stale_after`.
    pub stale: bool,
}

/// Everything the status is computed from besides the resource.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The client's session, if this replica holds one.
    pub session: Option<SessionView>,
    /// The operator's memory of the resource.
    pub runtime: &'a ClientRuntime,
    /// The desired config's hash.
    pub desired_config_hash: &'a str,
    /// The holder to record: this replica's session, or none (the session
    /// ended, or nobody holds the client).
    pub holder: Option<Holder>,
}

/// A `Time` from a `SystemTime`, in whole seconds: Kubernetes serialises
/// `Time` with second precision, so anything finer would make every freshly
/// computed status differ from the stored one and be written again.
pub fn time(t: SystemTime) -> Time {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let ts = Timestamp::new(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), 0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    Time(ts)
}

/// A `MicroTime` from a `SystemTime`, to the microsecond (what Kubernetes
/// keeps of a `MicroTime`, so a written holder reads back equal).
pub fn time_precise(t: SystemTime) -> MicroTime {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn system_time(t: &Time) -> SystemTime {
    SystemTime::from(t.0)
}

fn condition(
    prev: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: SystemTime,
) -> Condition {
    let old = prev.iter().find(|c| c.type_ == type_);
    let last_transition_time = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => time(now),
    };
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The status the resource should have now.
pub fn compute_status(
    obj: &CryptoClient,
    seen: &Observed<'_>,
    now: SystemTime,
) -> CryptoClientStatus {
    let old = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let rt = seen.runtime;
    let prev = &old.conditions;

    let phase = match &seen.session {
        None if old.session.is_some() => Phase::Disconnected,
        None => Phase::Pending,
        Some(s) if s.stale => Phase::Stale,
        Some(_) if rt.acked_paused == Some(true) => Phase::Paused,
        Some(_) => Phase::Connected,
    };
    let session = match &seen.session {
        Some(s) => Some(SessionStatus {
            id: s.id.clone(),
            connected_at: time(s.connected_at),
            client_name: s.client_name.clone(),
            client_type: s.client_type.clone(),
            version: s.version.clone(),
        }),
        None => old.session.clone(),
    };
    let last_heartbeat = seen
        .session
        .as_ref()
        .and_then(|s| s.last_heartbeat)
        .map(time)
        .or(old.last_heartbeat.clone());
    let paused = rt.acked_paused.or(old.paused);
    let applied_config_hash = rt
        .acked_config_hash
        .clone()
        .or(old.applied_config_hash.clone());

    let connected = match &seen.session {
        Some(s) => condition(
            prev,
            "Connected",
            "True",
            "SessionActive",
            format!("session {}", s.id),
            generation,
            now,
        ),
        None if old.session.is_some() => condition(
            prev,
            "Connected",
            "False",
            "Disconnected",
            "the client disconnected".into(),
            generation,
            now,
        ),
        None => condition(
            prev,
            "Connected",
            "False",
            "NeverConnected",
            "the client has not connected yet".into(),
            generation,
            now,
        ),
    };
    let healthy = match &seen.session {
        Some(s) if s.stale => condition(
            prev,
            "Healthy",
            "False",
            "HeartbeatStale",
            "no heartbeat within stale_after".into(),
            generation,
            now,
        ),
        Some(_) => condition(
            prev,
            "Healthy",
            "True",
            "HeartbeatFresh",
            "heartbeats arrive on time".into(),
            generation,
            now,
        ),
        None => condition(
            prev,
            "Healthy",
            "False",
            "NotConnected",
            "the client is not connected".into(),
            generation,
            now,
        ),
    };
    let config_applied = if applied_config_hash.as_deref() == Some(seen.desired_config_hash) {
        condition(
            prev,
            "ConfigApplied",
            "True",
            "ConfigApplied",
            format!("client acked config {}", short(seen.desired_config_hash)),
            generation,
            now,
        )
    } else if let Some(err) = &rt.config_error {
        condition(
            prev,
            "ConfigApplied",
            "False",
            "ConfigFailed",
            err.clone(),
            generation,
            now,
        )
    } else {
        condition(
            prev,
            "ConfigApplied",
            "False",
            "ConfigPending",
            format!(
                "waiting for the client to ack config {}",
                short(seen.desired_config_hash)
            ),
            generation,
            now,
        )
    };
    let requested = obj.spec.sync_requested && !rt.sync.is_done(generation);
    let pending_sync = requested
        .then(|| match &rt.sync.command_id {
            Some(id) => Some(PendingSync {
                command_id: id.clone(),
            }),
            None => old.pending_sync.clone(),
        })
        .flatten();
    let synced = if requested {
        match (&rt.sync.last_error, rt.sync.attempts >= MAX_SYNC_ATTEMPTS) {
            (Some(e), true) => condition(
                prev,
                "Synced",
                "False",
                "SyncFailed",
                format!("gave up after {MAX_SYNC_ATTEMPTS} attempts: {e}"),
                generation,
                now,
            ),
            (Some(e), false) => condition(
                prev,
                "Synced",
                "False",
                "SyncRetrying",
                format!("attempt {} failed: {e}", rt.sync.attempts),
                generation,
                now,
            ),
            (None, _) => condition(
                prev,
                "Synced",
                "False",
                "SyncPending",
                "wallet sync requested; waiting for the client's ack".into(),
                generation,
                now,
            ),
        }
    } else if old.last_sync.is_some() || rt.sync.done_generation.is_some() {
        condition(
            prev,
            "Synced",
            "True",
            "SyncCompleted",
            "the last requested wallet sync was acked".into(),
            generation,
            now,
        )
    } else {
        condition(
            prev,
            "Synced",
            "Unknown",
            "NeverRequested",
            "no wallet sync requested yet".into(),
            generation,
            now,
        )
    };

    CryptoClientStatus {
        phase: Some(phase),
        observed_generation: generation,
        conditions: vec![connected, config_applied, healthy, synced],
        session,
        last_heartbeat,
        paused,
        applied_config_hash,
        last_sync: rt.sync.completed_at.clone().or(old.last_sync.clone()),
        last_command: rt.last_command.clone().or(old.last_command),
        pending_sync,
        holder: seen.holder.clone(),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Whether `new` must be written over `old`: any change except
/// `lastHeartbeat` at once; a `lastHeartbeat` change alone only once it is
/// `heartbeat_every` newer than the written one.
pub fn needs_write(
    old: Option<&CryptoClientStatus>,
    new: &CryptoClientStatus,
    heartbeat_every: Duration,
) -> bool {
    write_kind(old, new, heartbeat_every).is_some()
}

/// What a write of `new` over `old` would be: a transition (anything but
/// `lastHeartbeat` changed), a refresh (only `lastHeartbeat`, at least
/// `heartbeat_every` newer), or nothing to write.
pub(crate) fn write_kind(
    old: Option<&CryptoClientStatus>,
    new: &CryptoClientStatus,
    heartbeat_every: Duration,
) -> Option<super::budget::WriteKind> {
    use super::budget::WriteKind;
    let Some(old) = old else {
        return Some(WriteKind::Transition);
    };
    let mut old_no_hb = old.clone();
    old_no_hb.last_heartbeat = None;
    let mut new_no_hb = new.clone();
    new_no_hb.last_heartbeat = None;
    if old_no_hb != new_no_hb {
        return Some(WriteKind::Transition);
    }
    let refresh = match (&old.last_heartbeat, &new.last_heartbeat) {
        (None, Some(_)) => true,
        (Some(o), Some(n)) => system_time(n)
            .duration_since(system_time(o))
            .is_ok_and(|d| d >= heartbeat_every),
        _ => false,
    };
    refresh.then_some(WriteKind::Refresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::CryptoClientSpec;

    fn obj(status: Option<CryptoClientStatus>) -> CryptoClient {
        let mut c = CryptoClient::new("eth", CryptoClientSpec::default());
        c.metadata.namespace = Some("prod".into());
        c.metadata.generation = Some(2);
        c.status = status;
        c
    }

    fn session(stale: bool, hb: SystemTime) -> SessionView {
        SessionView {
            id: "s1".into(),
            connected_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            client_name: "eth".into(),
            client_type: "wallet-sync".into(),
            version: "1.2.3".into(),
            last_heartbeat: Some(hb),
            stale,
        }
    }

    fn cond<'a>(s: &'a CryptoClientStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn phases_follow_the_session_and_acks() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        let rt = ClientRuntime::default();
        let seen = |s| Observed {
            session: s,
            runtime: &rt,
            desired_config_hash: "h",
            holder: None,
        };
        assert_eq!(
            compute_status(&obj(None), &seen(None), now).phase,
            Some(Phase::Pending)
        );
        let connected = compute_status(&obj(None), &seen(Some(session(false, now))), now);
        assert_eq!(connected.phase, Some(Phase::Connected));
        assert_eq!(connected.session.as_ref().unwrap().version, "1.2.3");
        assert_eq!(cond(&connected, "Connected").status, "True");
        assert_eq!(
            compute_status(&obj(None), &seen(Some(session(true, now))), now).phase,
            Some(Phase::Stale)
        );
        let gone = compute_status(&obj(Some(connected)), &seen(None), now);
        assert_eq!(gone.phase, Some(Phase::Disconnected));
        assert_eq!(cond(&gone, "Connected").reason, "Disconnected");
        let paused_rt = ClientRuntime {
            acked_paused: Some(true),
            ..Default::default()
        };
        let s = compute_status(
            &obj(None),
            &Observed {
                session: Some(session(false, now)),
                runtime: &paused_rt,
                desired_config_hash: "h",
                holder: None,
            },
            now,
        );
        assert_eq!((s.phase, s.paused), (Some(Phase::Paused), Some(true)));
    }

    #[test]
    fn transition_time_changes_only_with_the_condition() {
        let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        let t2 = t1 + Duration::from_secs(60);
        let rt = ClientRuntime::default();
        let first = compute_status(
            &obj(None),
            &Observed {
                session: Some(session(false, t1)),
                runtime: &rt,
                desired_config_hash: "h",
                holder: None,
            },
            t1,
        );
        let again = compute_status(
            &obj(Some(first.clone())),
            &Observed {
                session: Some(session(false, t2)),
                runtime: &rt,
                desired_config_hash: "h",
                holder: None,
            },
            t2,
        );
        assert_eq!(
            cond(&again, "Connected").last_transition_time,
            cond(&first, "Connected").last_transition_time
        );
        let stale = compute_status(
            &obj(Some(first.clone())),
            &Observed {
                session: Some(session(true, t1)),
                runtime: &rt,
                desired_config_hash: "h",
                holder: None,
            },
            t2,
        );
        assert_eq!(cond(&stale, "Healthy").status, "False");
        assert_eq!(cond(&stale, "Healthy").last_transition_time, time(t2));
        assert_eq!(
            cond(&stale, "Connected").last_transition_time,
            cond(&first, "Connected").last_transition_time
        );
    }

    #[test]
    fn config_applied_compares_acked_and_desired_hashes() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        let acked = ClientRuntime {
            acked_config_hash: Some("h1".into()),
            ..Default::default()
        };
        let s = compute_status(
            &obj(None),
            &Observed {
                session: Some(session(false, now)),
                runtime: &acked,
                desired_config_hash: "h1",
                holder: None,
            },
            now,
        );
        assert_eq!(cond(&s, "ConfigApplied").status, "True");
        assert_eq!(s.applied_config_hash.as_deref(), Some("h1"));
        let s = compute_status(
            &obj(None),
            &Observed {
                session: Some(session(false, now)),
                runtime: &acked,
                desired_config_hash: "h2",
                holder: None,
            },
            now,
        );
        assert_eq!(cond(&s, "ConfigApplied").reason, "ConfigPending");
        let failed = ClientRuntime {
            config_error: Some("bad key".into()),
            ..Default::default()
        };
        let s = compute_status(
            &obj(None),
            &Observed {
                session: Some(session(false, now)),
                runtime: &failed,
                desired_config_hash: "h2",
                holder: None,
            },
            now,
        );
        assert_eq!(
            (
                cond(&s, "ConfigApplied").reason.as_str(),
                cond(&s, "ConfigApplied").message.as_str()
            ),
            ("ConfigFailed", "bad key")
        );
    }

    #[test]
    fn heartbeat_alone_is_throttled_other_changes_are_not() {
        let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        let rt = ClientRuntime::default();
        let every = Duration::from_secs(30);
        let at = |hb: SystemTime, stale: bool| {
            compute_status(
                &obj(None),
                &Observed {
                    session: Some(session(stale, hb)),
                    runtime: &rt,
                    desired_config_hash: "h",
                    holder: None,
                },
                t1,
            )
        };
        let written = at(t1, false);
        assert!(needs_write(None, &written, every));
        assert!(
            !needs_write(Some(&written), &written, every),
            "nothing changed"
        );
        assert!(
            !needs_write(
                Some(&written),
                &at(t1 + Duration::from_secs(10), false),
                every
            ),
            "heartbeat 10 s newer"
        );
        assert!(
            needs_write(
                Some(&written),
                &at(t1 + Duration::from_secs(30), false),
                every
            ),
            "heartbeat 30 s newer"
        );
        assert!(
            needs_write(
                Some(&written),
                &at(t1 + Duration::from_secs(1), true),
                every
            ),
            "phase change at once"
        );
    }
}
