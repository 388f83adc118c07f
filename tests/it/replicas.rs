//! Every replica active: several real `crypto-operator serve` processes
//! (distinct replica ids and ports) against the fake API server, real SDK
//! clients connecting through a loopback proxy that stands in for the
//! Service. Spread, crash, partition, full outage, duplicate sessions,
//! fencing and a rolling restart.

use crate::support::fake_kube::Outage;
use crate::support::fake_kube::audit::{longest_unheld, replay};
use crate::support::http::http_request;
use crate::support::prometheus::{Prometheus, alerts};
use crate::support::replicas::{Fleet, HOLDER_GRACE, LEASE, Replicas, client_id, held_by};
use crate::support::{RawClient, WAIT, end_status, msg, open, register};
use crypto_operator::client::ClientType;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tonic::Code;

const ABC: [&str; 3] = ["replica-a", "replica-b", "replica-c"];

fn ids(n: usize) -> Vec<String> {
    (0..n).map(client_id).collect()
}

/// Waits until every named resource is Connected and held by the replica
/// (and session) that really holds its client; returns where each is.
async fn converged(
    r: &Replicas,
    names: &[String],
    within: Duration,
) -> HashMap<String, (String, String)> {
    let actual = r.all_sessions().await;
    for n in names {
        assert!(actual.contains_key(n), "{n} has no session on any replica");
    }
    r.wait_resources(names, "held where its session is", within, |o| {
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        actual
            .get(name)
            .is_some_and(|(replica, session)| held_by(o, replica, session))
    })
    .await;
    actual
}

fn count_by_replica(at: &HashMap<String, (String, String)>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (replica, _) in at.values() {
        *out.entry(replica.clone()).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_fleet_and_every_status_names_the_real_holder() {
    let _turn = crate::support::fleet_scale_turn().await;
    let names = ids(300);
    let r = Replicas::start(&ABC, names.len()).await;
    let fleet = Fleet::start(&r.proxy.url(), &names, Duration::ZERO);
    let sessions = fleet.wait_connected(WAIT * 3).await;
    let at = converged(&r, &names, WAIT * 3).await;
    for (id, s) in &sessions {
        assert_eq!(
            &at[id].1, s,
            "{id}: the client's session is the one its replica lists"
        );
    }
    let spread = count_by_replica(&at);
    assert_eq!(spread.len(), 3, "{spread:?}");
    for (replica, n) in &spread {
        assert!(
            (85..=115).contains(n),
            "{replica} holds {n} of 300 ({spread:?})"
        );
    }
    let report = replay(&r.fake.requests(), 0);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.accepted >= names.len(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_only_its_share_which_reconnects_elsewhere() {
    let names = ids(150);
    let mut r = Replicas::start(&ABC, names.len()).await;
    r.patch_all_specs(&json!({"config": {"region": "eu"}}), &names);
    // Five of the clients reach replica-c directly: when it dies they
    // never come back (their address is gone).
    let (stranded, proxied): (Vec<String>, Vec<String>) =
        names.iter().cloned().partition(|n| n.as_str() < "c-005");
    let c_addr = format!("http://{}", r.get("replica-c").grpc);
    let _stranded = Fleet::start(&c_addr, &stranded, Duration::ZERO);
    let fleet = Fleet::start(&r.proxy.url(), &proxied, Duration::ZERO);
    fleet.wait_connected(WAIT * 3).await;
    let before = converged(&r, &names, WAIT * 3).await;
    let moving: Vec<String> = proxied
        .iter()
        .filter(|n| before[*n].0 == "replica-c")
        .cloned()
        .collect();
    assert!(
        moving.len() >= 30,
        "replica-c holds {} proxied clients",
        moving.len()
    );
    let log_from = r.fake.requests().len();

    let killed = Instant::now();
    r.kill("replica-c").await;

    // The dead replica's clients reconnect through the proxy, are admitted
    // elsewhere, get their desired state and their resources converge.
    fleet.wait_moved(&moving, &before, WAIT * 2).await;
    let after = converged(&r, &proxied, WAIT * 2).await;
    for n in &moving {
        assert_ne!(after[n].0, "replica-c");
        assert!(
            fleet.configs(n) >= 2,
            "{n}: the new holder sent the desired config"
        );
    }
    // The survivors' sessions are untouched.
    for (n, (replica, session)) in &before {
        if replica != "replica-c" {
            assert_eq!(
                &after[n],
                &(replica.clone(), session.clone()),
                "{n} was not touched"
            );
        }
    }
    // Clients that never return: Disconnected once the Lease expired and
    // the grace passed (the janitor sweeps every third of a Lease).
    let bound = LEASE + HOLDER_GRACE + LEASE / 3 * 2 + Duration::from_secs(2);
    r.wait_resources(&stranded, "Disconnected by the janitor", bound, |o| {
        o["status"]["phase"] == "Disconnected" && o["status"].get("holder").is_none()
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took >= LEASE,
        "marked after {took:?}: before the dead replica's Lease could expire"
    );
    let report = replay(&r.fake.requests(), log_from);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_api_ends_its_sessions_and_its_clients_move() {
    let names = ids(90);
    let r = Replicas::start(&ABC, names.len()).await;
    let fleet = Fleet::start(&r.proxy.url(), &names, Duration::ZERO);
    fleet.wait_connected(WAIT * 3).await;
    let before = converged(&r, &names, WAIT * 3).await;
    let moving: Vec<String> = names
        .iter()
        .filter(|n| before[*n].0 == "replica-b")
        .cloned()
        .collect();
    assert!(!moving.is_empty());
    let log_from = r.fake.requests().len();

    // Every request of replica-b hangs; its peers still reach the API.
    r.fake.cut_off("(replica-b)", Outage::Hang);
    fleet.wait_moved(&moving, &before, WAIT * 2).await;
    let after = converged(&r, &names, WAIT * 2).await;
    for n in &moving {
        assert_ne!(after[n].0, "replica-b", "{n} moved off the cut-off replica");
    }
    for (n, (replica, session)) in &before {
        if replica != "replica-b" {
            assert_eq!(
                &after[n],
                &(replica.clone(), session.clone()),
                "{n} was not touched"
            );
        }
    }
    assert!(r.sessions("replica-b").await.is_empty());

    // The API comes back: replica-b's writes held in the network arrive
    // late and are refused by their fence; it writes nothing it lost.
    r.fake.heal();
    r.fake
        .wait_for_request(
            |q| {
                q.replica() == Some("replica-b")
                    && q.path.ends_with("/status")
                    && matches!(q.status, 409 | 422)
            },
            WAIT,
        )
        .await
        .expect("a fenced write of replica-b refused");
    crate::support::process::wait_http_ready(r.get("replica-b").http).await;
    let report = replay(&r.fake.requests(), log_from);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(
        report.rejected.iter().any(|(_, w)| w == "replica-b"),
        "{report:?}"
    );
    converged(&r, &names, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_api_outage_ends_no_session_and_every_status_converges_after() {
    let names = ids(60);
    let r = Replicas::start(&ABC, names.len()).await;
    let mut fleet = Fleet::start(&r.proxy.url(), &names, Duration::ZERO);
    let sessions = fleet.wait_connected(WAIT * 3).await;
    let before = converged(&r, &names, WAIT * 3).await;
    let log_from = r.fake.requests().len();

    r.fake.outage(Outage::Fail(500));
    // Three clients leave during the outage: their Disconnected waits for
    // the API.
    let leaving = [names[0].clone(), names[1].clone(), names[2].clone()];
    for n in &leaving {
        fleet.stop(n).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    r.fake.heal();

    let staying: Vec<String> = names[3..].to_vec();
    // Every status converges: the staying clients held where they were,
    // with the same sessions; the leavers Disconnected.
    r.wait_resources(&staying, "held as before the outage", WAIT * 2, |o| {
        let n = o["metadata"]["name"].as_str().unwrap_or("");
        held_by(o, &before[n].0, &before[n].1)
    })
    .await;
    r.wait_resources(&leaving, "Disconnected", WAIT * 2, |o| {
        o["status"]["phase"] == "Disconnected" && o["status"].get("holder").is_none()
    })
    .await;
    // No session ended.
    let now = r.all_sessions().await;
    for n in &staying {
        assert_eq!(
            fleet.session(n).as_ref(),
            Some(&sessions[n]),
            "{n}'s session survived"
        );
        assert_eq!(now[n], before[n], "{n} is where it was");
    }
    // Zero double writes: after the outage each resource was written only
    // by the replica that held it before.
    let report = replay(&r.fake.requests(), log_from);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    for (n, writers) in &report.writers {
        assert!(
            writers.iter().all(|w| *w == before[n].0),
            "{n} held by {} was written by {writers:?}",
            before[n].0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_client_on_two_replicas_at_once_leaves_exactly_one_session() {
    // A long flap bound, so the client surely cannot move back below.
    let r = Replicas::start_with(&ABC[..2], 1, Duration::from_secs(60), &[]).await;
    let id = client_id(0);
    let (a, b) = (r.get("replica-a").grpc, r.get("replica-b").grpc);
    // Both claims race: neither lands before the other is made.
    r.fake.hold_status_writes();
    let mut on_a = RawClient::connect(a, &id).await;
    let on_b = RawClient::connect(b, &id).await;
    r.fake
        .wait_map(
            |st| {
                let claims: Vec<_> = st.hung().filter_map(|q| q.replica()).collect();
                (claims.contains(&"replica-a") && claims.contains(&"replica-b")).then_some(())
            },
            WAIT,
        )
        .await
        .expect("both replicas claim the client");
    r.fake.heal();
    // The newer session wins on both replicas.
    let status = on_a.end_status().await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status.message().contains("superseded by replica replica-b"),
        "{status:?}"
    );
    let names = [id.clone()];
    r.wait_resources(&names, "held by the surviving session", WAIT, |o| {
        held_by(o, "replica-b", &on_b.session_id)
    })
    .await;
    assert!(r.sessions("replica-a").await.is_empty());
    assert_eq!(
        r.sessions("replica-b").await.get(&id),
        Some(&on_b.session_id)
    );
    let report = replay(&r.fake.requests(), 0);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(
        !report.rejected.is_empty(),
        "one of the racing claims was fenced: {report:?}"
    );

    // The flap bound: right after the claim, the client cannot move back.
    let (_tx, mut refused) = open(a, msg(&id, register(ClientType::WalletSync))).await;
    let status = end_status(&mut refused).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("moved to replica replica-b"),
        "{status:?}"
    );
    drop(on_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_moves_every_client_and_runs_no_sync_twice() {
    let names = ids(60);
    let mut r = Replicas::start(&ABC, names.len()).await;
    // Each sync takes a while, so the restart catches some mid-sync.
    let fleet = Fleet::start(&r.proxy.url(), &names, Duration::from_millis(1500));
    fleet.wait_connected(WAIT * 3).await;
    converged(&r, &names, WAIT * 3).await;
    let log_from = r.fake.requests().len();
    r.patch_all_specs(&json!({"syncRequested": true}), &names);

    // maxSurge 1, maxUnavailable 0: the new pod is ready before the old
    // one is stopped.
    for (old, new) in ABC.iter().zip(["replica-d", "replica-e", "replica-f"]) {
        r.spawn(new).await;
        r.terminate(old).await;
    }
    fleet.wait_connected(WAIT * 2).await;
    converged(&r, &names, WAIT * 2).await;
    r.wait_resources(&names, "synced once", WAIT * 3, |o| {
        o["spec"]["syncRequested"] == false
            && o["status"]["lastSync"].is_string()
            && o["status"].get("pendingSync").is_none()
    })
    .await;
    for n in &names {
        assert_eq!(fleet.syncs(n), 1, "{n} synced once");
    }
    let log = r.fake.requests();
    let report = replay(&log, log_from);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let bound = Duration::from_secs(5);
    for (n, span) in longest_unheld(&log, log_from) {
        assert!(span <= bound, "{n} was unheld for {span:?}");
    }
}

/// The replica holding the janitor Lease.
fn janitor(r: &Replicas) -> Option<String> {
    let lease = r.fake.get(
        "coordination.k8s.io",
        "v1",
        "leases",
        crate::support::replicas::NS,
        "crypto-operator-janitor",
    )?;
    let holder = lease["spec"]["holderIdentity"].as_str()?.to_owned();
    r.live.iter().any(|x| x.id == holder).then_some(holder)
}

/// `crypto_client_up` series per client across every scraped replica.
async fn up_series(prom: &Prometheus, client: &str) -> Vec<serde_json::Value> {
    prom.query(&format!("crypto_client_up{{client_id=\"{client}\"}}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_over_three_replicas_sees_each_client_once_and_alerts_neither_double_nor_go_blind()
 {
    const STALE: &str = "CryptoClientHeartbeatStale";
    const DOWN: &str = "CryptoClientDown";
    // c-000 heartbeats (an SDK client through the Service), c-001 is
    // connected and silent, c-002 never connects.
    let mut r = Replicas::start_with(
        &ABC,
        3,
        crate::support::replicas::MIN_HOLD,
        &[
            "--heartbeat-interval",
            "1s",
            "--stale-after",
            "5m",
            "--dead-after",
            "10m",
        ],
    )
    .await;
    let prom = Prometheus::start(&r.live.iter().map(|x| x.http).collect::<Vec<_>>());
    let jan =
        crate::support::poll_until("a janitor", WAIT, Duration::from_millis(50), async || {
            janitor(&r)
        })
        .await;
    let quiet_on = r.live.iter().find(|x| x.id != jan).unwrap().grpc;
    let fleet = Fleet::start(&r.proxy.url(), &[client_id(0)], Duration::ZERO);
    fleet.wait_connected(WAIT).await;
    let _quiet = RawClient::connect(quiet_on, &client_id(1)).await;
    converged(&r, &[client_id(0), client_id(1)], WAIT).await;

    // One alert each, with the client's labels and no replica's.
    let v = prom
        .until("/api/v1/alerts", Duration::from_secs(60), |v| {
            alerts(v, STALE, "c-001", "firing") == 1 && alerts(v, DOWN, "c-002", "firing") == 1
        })
        .await;
    for a in v["data"]["alerts"].as_array().unwrap() {
        assert!(a["labels"].get("instance").is_none(), "{a}");
        assert_ne!(
            a["labels"]["client_id"], "c-000",
            "the healthy client raises nothing: {a}"
        );
    }
    assert_eq!(alerts(&v, STALE, "c-001", "firing"), 1, "{v}");
    // Each client's series comes from one replica: its holder, or (unheld)
    // the janitor.
    let at = r.all_sessions().await;
    for (client, from) in [
        ("c-000", at["c-000"].0.clone()),
        ("c-001", at["c-001"].0.clone()),
        ("c-002", jan.clone()),
    ] {
        let series = up_series(&prom, client).await;
        assert_eq!(series.len(), 1, "{client}: {series:?}");
        let instance = series[0]["metric"]["instance"].as_str().unwrap();
        assert_eq!(
            instance,
            r.get(&from).http.to_string(),
            "{client} exported by {from}"
        );
    }

    // The janitor dies: the next one exports c-002's `up 0`, and the alert
    // keeps firing through the handover (one alert, never resolved).
    r.kill(&jan).await;
    crate::support::poll_until(
        "a new janitor exports c-002",
        Duration::from_secs(30),
        Duration::from_millis(250),
        async || {
            let v = prom.get("/api/v1/alerts").await?;
            assert_eq!(
                alerts(&v, DOWN, "c-002", "firing"),
                1,
                "firing throughout the handover: {v}"
            );
            assert!(
                alerts(&v, STALE, "c-001", "firing") + alerts(&v, STALE, "c-001", "pending") <= 1,
                "{v}"
            );
            let series = up_series(&prom, "c-002").await;
            let new = janitor(&r)?;
            (series.len() == 1 && series[0]["metric"]["instance"] == r.get(&new).http.to_string())
                .then_some(())
        },
    )
    .await;
    // c-000 (maybe moved off the dead replica) is exported once, by its holder.
    fleet.wait_connected(WAIT).await;
    let at = converged(&r, &[client_id(0)], WAIT).await;
    let holder_http = r.get(&at["c-000"].0).http.to_string();
    crate::support::poll_until(
        "c-000 exported once, by its holder",
        Duration::from_secs(30),
        Duration::from_millis(250),
        async || {
            let series = up_series(&prom, "c-000").await;
            (series.len() == 1 && series[0]["metric"]["instance"] == holder_http.as_str())
                .then_some(())
        },
    )
    .await;
    prom.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_is_admitted_at_the_registration_rate_and_every_client_returns() {
    // 1,500 clients on 3 replicas; 50 registrations at once and 50/s per
    // replica: the 500 or so clients of the killed replica arrive at two
    // survivors far faster than that. Status writes get a larger budget
    // than the default so the first claims take seconds, not 15 s. (3,000
    // clients overloaded the in-process fake API server on a slower
    // 2-core machine: Lease renewals missed their 2 s deadline, with or
    // without the change under test.)
    const RATE: f64 = 50.0;
    const BURST: f64 = 50.0;
    let _turn = crate::support::fleet_scale_turn().await;
    let names = ids(1500);
    let mut r = Replicas::start_with(
        &ABC,
        names.len(),
        crate::support::replicas::MIN_HOLD,
        &[
            "--max-registrations-per-second",
            "50",
            "--registration-burst",
            "50",
            "--api-write-qps",
            "1000",
            "--api-write-burst",
            "1000",
        ],
    )
    .await;
    // Connecting 1,500 debug-build clients through the in-process proxy at
    // the registration rate, and their first claims, take tens of seconds
    // on two cores; this start is not what the test measures, so its waits
    // are generous.
    let fleet = Fleet::start(&r.proxy.url(), &names, Duration::ZERO);
    fleet.wait_connected(WAIT * 12).await;
    let before = converged(&r, &names, WAIT * 12).await;
    let moving: Vec<String> = names
        .iter()
        .filter(|n| before[*n].0 == "replica-c")
        .cloned()
        .collect();
    assert!(moving.len() >= 450, "replica-c holds {}", moving.len());
    let scrape = async |r: &Replicas, id: &str| {
        crate::support::http::scraped(r.get(id).http, "crypto_registrations_throttled_total").await
    };
    let throttled_before = scrape(&r, "replica-a").await + scrape(&r, "replica-b").await;
    let killed = std::time::SystemTime::now();
    r.kill("replica-c").await;

    // Every client is back within the bound: the share over two replicas
    // at their rate, plus the retry hints' jitter and a Lease of slack.
    let share = moving.len() as f64;
    let bound = Duration::from_secs_f64(share / (2.0 * RATE) * 1.5) + LEASE + WAIT;
    fleet.wait_moved(&moving, &before, bound).await;
    let after = converged(&r, &names, WAIT * 2).await;
    // Refusals were counted (RESOURCE_EXHAUSTED with a retry hint) ...
    let throttled = scrape(&r, "replica-a").await + scrape(&r, "replica-b").await;
    assert!(
        throttled > throttled_before,
        "no registration was refused ({throttled_before} -> {throttled})"
    );
    // ... and each survivor admitted at most the burst plus the rate: its
    // sessions' registration times (`status.holder.since`, to the
    // microsecond) never crowd more than that into any window.
    for id in ["replica-a", "replica-b"] {
        let mut times: Vec<f64> = names
            .iter()
            .filter(|n| after[*n].0 == id)
            .filter_map(|n| {
                let since = r.resource(n)["status"]["holder"]["since"]
                    .as_str()?
                    .parse::<jiff::Timestamp>()
                    .ok()?;
                let t = std::time::SystemTime::from(since);
                t.duration_since(killed).ok().map(|d| d.as_secs_f64())
            })
            .collect();
        times.sort_by(f64::total_cmp);
        for i in 0..times.len() {
            for j in i..times.len() {
                let admitted = (j - i + 1) as f64;
                let allowed = BURST + RATE * (times[j] - times[i]) + 1.0;
                assert!(
                    admitted <= allowed,
                    "{id} admitted {admitted} registrations in {:.3} s (allowed {allowed:.1})",
                    times[j] - times[i]
                );
            }
        }
    }
}

/// The first client (by id) that `replica` holds.
fn first_held_by(held: &HashMap<String, (String, String)>, replica: &str) -> String {
    let mut ids: Vec<&String> = held
        .iter()
        .filter(|(_, (r, _))| r == replica)
        .map(|(n, _)| n)
        .collect();
    ids.sort();
    let first = ids
        .first()
        .unwrap_or_else(|| panic!("{replica} holds no client"));
    (*first).clone()
}

/// The CLI, as a user runs it.
async fn cli(args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(crate::support::process::BIN)
            .args(args)
            .env("CRYPTO_LOG", "warn")
            .output(),
    )
    .await
    .expect("the CLI finishes")
    .expect("the CLI runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_calls_through_a_replica_that_does_not_hold_the_client_reach_its_holder() {
    use crypto_operator::proto::{ExecuteCommandRequest, GetClientRequest, SyncWallets};
    let names = ids(30);
    let r = Replicas::start(&ABC, names.len()).await;
    // Syncs take 3 s: long enough to time out a forwarded call on.
    let fleet = Fleet::start(&r.proxy.url(), &names, Duration::from_secs(3));
    fleet.wait_connected(WAIT * 3).await;
    let before = converged(&r, &names, WAIT * 3).await;
    let on_a = first_held_by(&before, "replica-a");
    let b = r.get("replica-b");

    // The CLI through replica-b: the ack comes back from replica-a's client.
    let server = format!("http://{}", b.grpc);
    let out = cli(&["command", &on_a, "ping", "--wait", "--server", &server]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("succeeded"),
        "{out:?}"
    );

    // The admin API of replica-b, waiting for the ack.
    let reply = http_request(
        b.http,
        "POST",
        &format!("/api/v1/clients/{on_a}/commands"),
        &[("Content-Type", "application/json")],
        Some(r#"{"type":"ping","wait":true}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["ack"]["success"], true, "{}", reply.body);

    // GetClient through replica-b: the holder's view (its session).
    let mut op = crate::support::operator(b.grpc).await;
    let info = op
        .get_client(GetClientRequest {
            client_id: on_a.clone(),
        })
        .await
        .expect("GetClient is forwarded")
        .into_inner();
    assert_eq!(info.session_id, before[&on_a].1);

    // Timeouts hold through the hop: a sync that takes 3 s, asked with
    // `timeout_ms` 700, is DEADLINE_EXCEEDED after 700 ms ...
    let sync = |timeout_ms| ExecuteCommandRequest {
        client_id: on_a.clone(),
        command: Some(crypto_operator::proto::ServerCommand {
            command: Some(
                crypto_operator::proto::server_command::Command::SyncWallets(SyncWallets::default()),
            ),
            ..Default::default()
        }),
        timeout_ms,
    };
    let started = Instant::now();
    let err = op.execute_command_sync(sync(700)).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        took >= Duration::from_millis(690) && took < Duration::from_millis(1500),
        "ended after {took:?}"
    );
    // ... and so does the caller's own deadline (grpc-timeout 700 ms): the
    // holder waits no longer than that for the ack, and the caller's
    // channel ends the call at its deadline (tonic reports its own
    // deadline as CANCELLED "Timeout expired").
    let mut req = tonic::Request::new(sync(0));
    req.set_timeout(Duration::from_millis(700));
    let started = Instant::now();
    let err = op.execute_command_sync(req).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(690) && took < Duration::from_millis(1500),
        "ended after {took:?}"
    );

    // Loop guard: a call marked as forwarded that reaches a replica not
    // holding the client is refused there, not forwarded again.
    let mut marked = tonic::Request::new(GetClientRequest {
        client_id: on_a.clone(),
    });
    marked
        .metadata_mut()
        .insert("x-crypto-forwarded-by", "replica-c".parse().unwrap());
    let err = op.get_client(marked).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.metadata().get("x-crypto-not-holder").is_some(),
        "{err:?}"
    );
    // The same through the peer service itself (with the peer token).
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", b.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut peer = crypto_operator::proto::peer_service_client::PeerServiceClient::new(channel);
    let mut fwd = tonic::Request::new(crypto_operator::proto::ForwardCommandRequest {
        client_id: on_a.clone(),
        command: Some(crypto_operator::proto::ServerCommand {
            command: Some(crypto_operator::proto::server_command::Command::Ping(
                crypto_operator::proto::Ping::default(),
            )),
            ..Default::default()
        }),
        wait: true,
        timeout_ms: 5000,
    });
    fwd.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", crate::support::replicas::PEER_TOKEN)
            .parse()
            .unwrap(),
    );
    fwd.metadata_mut()
        .insert("x-crypto-forwarded-by", "replica-c".parse().unwrap());
    let err = peer.forward_command(fwd).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("replica-b does not hold"), "{err:?}");

    // A client nobody holds is NOT_FOUND through any replica.
    let err = op
        .get_client(GetClientRequest {
            client_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_forwarded_to_a_replica_the_client_just_left_is_unavailable_with_a_retry_hint() {
    use crypto_operator::proto::{ExecuteCommandRequest, Ping, ServerCommand, server_command};
    let names = ids(12);
    let r = Replicas::start(&ABC, names.len()).await;
    let mut fleet = Fleet::start(&r.proxy.url(), &names, Duration::ZERO);
    fleet.wait_connected(WAIT * 3).await;
    let before = converged(&r, &names, WAIT * 3).await;
    let on_a = first_held_by(&before, "replica-a");
    // The client moves from replica-a to replica-c while status writes
    // are held: everyone (the API included) still records replica-a.
    r.fake.hold_status_writes();
    fleet.stop(&on_a).await;
    let c_addr = format!("http://{}", r.get("replica-c").grpc);
    let moved = Fleet::start(&c_addr, std::slice::from_ref(&on_a), Duration::ZERO);
    moved.wait_connected(WAIT).await;
    let ping = || ExecuteCommandRequest {
        client_id: on_a.clone(),
        command: Some(ServerCommand {
            command: Some(server_command::Command::Ping(Ping::default())),
            ..Default::default()
        }),
        timeout_ms: 5000,
    };
    // Through replica-b: forwarded to replica-a, which no longer holds it;
    // re-read once (still replica-a), then UNAVAILABLE with a hint.
    let mut op = crate::support::operator(r.get("replica-b").grpc).await;
    let err = op.execute_command_sync(ping()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("moved"), "{err:?}");
    assert!(
        crypto_operator::proto::retry::retry_hint(&err).is_some(),
        "a retry hint: {err:?}"
    );
    // The admin API says the same as 503 with Retry-After.
    let reply = http_request(
        r.get("replica-b").http,
        "POST",
        &format!("/api/v1/clients/{on_a}/commands"),
        &[("Content-Type", "application/json")],
        Some(r#"{"type":"ping","wait":true}"#),
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("retry-after")),
        "{reply:?}"
    );
    // Once the claim lands, the same call through replica-b reaches
    // replica-c.
    r.fake.heal();
    r.wait_resources(
        std::slice::from_ref(&on_a),
        "held by replica-c",
        WAIT,
        |o| o["status"]["holder"]["replica"] == "replica-c",
    )
    .await;
    crate::support::poll_until(
        "the forwarded ping succeeds",
        WAIT,
        Duration::from_millis(50),
        async || op.clone().execute_command_sync(ping()).await.ok(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_through_any_replica_shows_the_whole_fleet_and_names_a_replica_that_does_not_answer()
 {
    use crypto_operator::proto::ListClientsRequest;
    let names = ids(90);
    let r = Replicas::start(&ABC, names.len()).await;
    let fleet = Fleet::start(&r.proxy.url(), &names, Duration::ZERO);
    fleet.wait_connected(WAIT * 3).await;
    let before = converged(&r, &names, WAIT * 3).await;
    let mut sorted = names.clone();
    sorted.sort();
    // Every replica lists the whole fleet, in pages of 25, in order, each
    // client once.
    for id in ABC {
        let mut op = crate::support::operator(r.get(id).grpc).await;
        let (mut seen, mut token) = (Vec::new(), String::new());
        loop {
            let page = op
                .list_clients(ListClientsRequest {
                    page_size: 25,
                    page_token: std::mem::take(&mut token),
                    ..Default::default()
                })
                .await
                .expect("ListClients")
                .into_inner();
            assert!(!page.partial, "{id}: {:?}", page.missing_replicas);
            assert!(page.clients.len() <= 25);
            seen.extend(page.clients.into_iter().map(|c| c.client_id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, sorted, "{id} lists the fleet in order, once each");
    }
    // The admin API of any replica, too.
    let page = http_request(
        r.get("replica-b").http,
        "GET",
        "/api/v1/clients?limit=1000",
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["clients"].as_array().map(Vec::len), Some(90), "{page}");
    assert!(page.get("partial").is_none(), "complete: {page}");

    // Replica-c stops answering (SIGSTOP): a listing through replica-a is
    // partial and names it; the clients it holds are the ones missing.
    let pid = r.get("replica-c").process.child.id().expect("running");
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let mut op = crate::support::operator(r.get("replica-a").grpc).await;
    let page = op
        .list_clients(ListClientsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await;
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let page = page.expect("ListClients").into_inner();
    assert!(page.partial, "{page:?}");
    assert_eq!(page.missing_replicas, vec!["replica-c".to_owned()]);
    let expected: Vec<&String> = sorted
        .iter()
        .filter(|n| before[*n].0 != "replica-c")
        .collect();
    let listed: Vec<&String> = page.clients.iter().map(|c| &c.client_id).collect();
    assert_eq!(listed, expected, "every client but replica-c's");
}
