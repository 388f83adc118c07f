//! Audits of the request log against crypto-operator's ownership rules
//! (tests and the fleet benchmark share them): every accepted status write
//! of a CryptoClient came from the replica that held it, carried a fence,
//! and how long resources stayed without a holder. Writers are identified
//! by the replica id in their User-Agent (`crypto-operator/<v> (<id>)`).

use super::log::RequestRecord;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// What the request log shows of the status writes to CryptoClients.
#[derive(Debug, Default)]
pub struct FenceReport {
    /// Accepted status writes.
    pub accepted: usize,
    /// Status writes the fence rejected (409, 422), with their writer.
    pub rejected: Vec<(String, String)>,
    /// Writes that break the rule, described.
    pub violations: Vec<String>,
    /// Per resource, the writers of its accepted status writes, in order.
    pub writers: HashMap<String, Vec<String>>,
}

/// The resource name of a `.../cryptoclients/<name>/status` path.
fn status_target(path: &str) -> Option<String> {
    let rest = path.strip_suffix("/status")?;
    let (plural_path, name) = rest.rsplit_once('/')?;
    plural_path
        .ends_with("/cryptoclients")
        .then(|| name.to_owned())
}

/// Replays the fake API server's request log from `from` on: every
/// accepted status write came from the replica that held the resource at
/// that resourceVersion (the holder it asserted, or the one whose claim on
/// the version it read it wrote), or is an unheld mark (the janitor's, or
/// a holder's release) that leaves no holder; every status write carried
/// a fence.
pub fn replay(log: &[RequestRecord], from: usize) -> FenceReport {
    let mut report = FenceReport::default();
    // The holder (replica, session) each accepted write left.
    let mut holder: HashMap<String, Option<(String, String)>> = HashMap::new();
    for (i, rec) in log.iter().enumerate() {
        let Some(name) = status_target(&rec.path) else {
            continue;
        };
        if rec.method != "PATCH" {
            continue;
        }
        let writer = rec.replica().unwrap_or("").to_owned();
        let ops = rec
            .body
            .as_ref()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let test = |path: &str| {
            ops.iter()
                .find(|o| o["op"] == "test" && o["path"] == path)
                .map(|o| o["value"].clone())
        };
        let asserted = test("/status/holder/replica").map(|r| {
            let s = test("/status/holder/sessionId").unwrap_or(Value::Null);
            (
                r.as_str().unwrap_or("").to_owned(),
                s.as_str().unwrap_or("").to_owned(),
            )
        });
        let version = test("/metadata/resourceVersion");
        let counted = i >= from;
        if counted && (rec.status == 409 || rec.status == 422) {
            report.rejected.push((name.clone(), writer.clone()));
        }
        if !rec.accepted() {
            continue;
        }
        let after = rec
            .response
            .as_ref()
            .and_then(|o| o["status"]["holder"].as_object().cloned())
            .map(|h| {
                (
                    h["replica"].as_str().unwrap_or("").to_owned(),
                    h["sessionId"].as_str().unwrap_or("").to_owned(),
                )
            });
        let before = holder.get(&name).cloned().flatten();
        let mut bad = |why: String| {
            if counted {
                report
                    .violations
                    .push(format!("request {i} on {name} by {writer:?}: {why}"));
            }
        };
        if writer.is_empty() {
            bad("no replica in its User-Agent".into());
        }
        match (&asserted, &version) {
            (None, None) => bad("an unfenced status write".into()),
            (Some(a), _) if before.as_ref().is_some_and(|b| b != a) => {
                bad(format!(
                    "asserted holder {a:?} but the holder was {before:?}"
                ));
            }
            _ => {}
        }
        match &after {
            Some((replica, _)) if *replica != writer => {
                bad(format!("left holder {replica:?}, not its writer"));
            }
            Some(_) => {}
            None => {
                let phase = rec.response.as_ref().map(|o| o["status"]["phase"].clone());
                let unheld = phase
                    .as_ref()
                    .is_some_and(|p| p == "Disconnected" || p == "Pending");
                if !unheld {
                    bad(format!("left no holder but phase {phase:?}"));
                }
            }
        }
        if counted {
            report.accepted += 1;
            report
                .writers
                .entry(name.clone())
                .or_default()
                .push(writer.clone());
        }
        holder.insert(name, after);
    }
    report
}

/// Per resource, the longest time from a status write that left it without
/// a holder to the next that gave it one (from log entry `from` on; a
/// resource still unheld at the end counts up to now).
pub fn longest_unheld(log: &[RequestRecord], from: usize) -> HashMap<String, Duration> {
    let mut since: HashMap<String, std::time::Instant> = HashMap::new();
    let mut longest: HashMap<String, Duration> = HashMap::new();
    for rec in &log[from.min(log.len())..] {
        let Some(name) = status_target(&rec.path) else {
            continue;
        };
        if !rec.accepted() {
            continue;
        }
        let held = rec
            .response
            .as_ref()
            .is_some_and(|o| o["status"]["holder"].is_object());
        if held {
            if let Some(t) = since.remove(&name) {
                let span = rec.at.duration_since(t);
                let l = longest.entry(name).or_default();
                *l = (*l).max(span);
            }
        } else {
            since.entry(name).or_insert(rec.at);
        }
    }
    for (name, t) in since {
        let l = longest.entry(name).or_default();
        *l = (*l).max(t.elapsed());
    }
    longest
}
