//! Tests of the fake Kubernetes API server (tests/fake-kube) with a
//! real `kube::Client`: CRUD, generation, status subresource, server-side
//! apply, watches (and their recovery from 410 / dropped streams), Leases,
//! Events through kube's `Recorder`, fault injection and the request log.

use crate::support;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Resource,
    ResourceExt,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::WAIT;
use support::fake_kube::{
    CRYPTO_GROUP, CRYPTO_PLURAL, CRYPTO_VERSION, FakeKube, crypto_client_api_resource,
};
use tokio::sync::mpsc;

const NS: &str = "default";

fn crypto_api(client: kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client, NS, &crypto_client_api_resource())
}

fn crypto_client(name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, &crypto_client_api_resource())
        .within(NS)
        .data(json!({ "spec": spec }))
}

fn generation(obj: &DynamicObject) -> i64 {
    obj.metadata.generation.expect("generation set")
}

fn rv(obj: &DynamicObject) -> u64 {
    obj.metadata
        .resource_version
        .as_deref()
        .expect("resourceVersion set")
        .parse()
        .expect("resourceVersion is an integer")
}

fn api_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

type WatchItem = Result<Event<DynamicObject>, watcher::Error>;

/// A watcher polled by its own task (kube's watcher only issues its WATCH
/// request while it is polled, like a running controller); aborted on drop.
struct Watch {
    rx: mpsc::UnboundedReceiver<WatchItem>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spawn_watcher(api: Api<DynamicObject>, config: watcher::Config) -> Watch {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).boxed();
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    Watch { rx, task }
}

fn crypto_watcher(client: kube::Client) -> Watch {
    spawn_watcher(crypto_api(client), watcher::Config::default())
}

async fn next(w: &mut Watch) -> WatchItem {
    tokio::time::timeout(WAIT, w.rx.recv())
        .await
        .expect("a watcher event in time")
        .expect("watcher stream open")
}

/// Reads until the initial list is done (`InitDone`).
async fn until_init_done(w: &mut Watch) {
    loop {
        if let Event::InitDone = next(w).await.expect("no watcher error during init") {
            return;
        }
    }
}

async fn watch_open(fk: &FakeKube) {
    assert!(
        fk.wait_for(|s| s.open_watches() >= 1, WAIT).await,
        "the watcher opened its watch"
    );
}

#[tokio::test]
async fn crypto_client_create_get_list_and_already_exists() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);

    let created = api
        .create(
            &PostParams::default(),
            &crypto_client("wallet-1", json!({ "paused": false })),
        )
        .await
        .expect("created");
    assert_eq!(generation(&created), 1);
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(rv(&created), fk.resource_version());

    let got = api.get("wallet-1").await.expect("get");
    assert_eq!(got.data["spec"]["paused"], json!(false));
    assert_eq!(got.metadata.uid, created.metadata.uid);

    api.create(
        &PostParams::default(),
        &crypto_client("wallet-2", json!({})),
    )
    .await
    .expect("second created");
    let list = api.list(&ListParams::default()).await.expect("list");
    let names: Vec<_> = list
        .items
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["wallet-1", "wallet-2"]);
    assert_eq!(
        list.metadata.resource_version.as_deref(),
        Some(fk.resource_version().to_string().as_str())
    );
    let one = api
        .list(&ListParams::default().fields("metadata.name=wallet-2"))
        .await
        .expect("field-selected list");
    assert_eq!(one.items.len(), 1);

    let err = api
        .create(
            &PostParams::default(),
            &crypto_client("wallet-1", json!({})),
        )
        .await
        .expect_err("duplicate refused");
    assert_eq!(api_code(err), (409, "AlreadyExists".into()));
    let stored = fk
        .get(CRYPTO_GROUP, CRYPTO_VERSION, CRYPTO_PLURAL, NS, "wallet-1")
        .expect("helper get");
    assert_eq!(stored["metadata"]["uid"], json!(created.metadata.uid));
}

#[tokio::test]
async fn spec_patch_bumps_generation_status_patch_does_not() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);
    api.create(
        &PostParams::default(),
        &crypto_client("c", json!({ "paused": false })),
    )
    .await
    .unwrap();

    let patched = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "paused": true } })),
        )
        .await
        .unwrap();
    assert_eq!(generation(&patched), 2);
    assert_eq!(patched.data["spec"]["paused"], json!(true));

    let status = api
        .patch_status(
            "c",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "phase": "Connected" }, "spec": { "paused": false } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        generation(&status),
        2,
        "status writes never bump generation"
    );
    assert_eq!(status.data["status"]["phase"], json!("Connected"));
    assert_eq!(
        status.data["spec"]["paused"],
        json!(true),
        "a status patch leaves spec alone"
    );
    assert!(rv(&status) > rv(&patched));

    let main = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "phase": "Stale" }, "metadata": { "labels": { "a": "b" } } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        main.data["status"]["phase"],
        json!("Connected"),
        "main patches keep status"
    );
    assert_eq!(
        generation(&main),
        2,
        "metadata changes do not bump generation"
    );
    assert_eq!(main.metadata.labels.unwrap()["a"], "b");
}

#[tokio::test]
async fn status_apply_removes_fields_the_manager_stopped_applying() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);
    api.create(
        &PostParams::default(),
        &crypto_client("c", json!({ "paused": false })),
    )
    .await
    .unwrap();
    let pp = PatchParams::apply("crypto-operator").force();
    let apply = |status: Value| {
        Patch::Apply(json!({
            "apiVersion": "crypto.fleet.dev/v1alpha1",
            "kind": "CryptoClient",
            "status": status,
        }))
    };

    let first = api
        .patch_status(
            "c",
            &pp,
            &apply(json!({ "phase": "Connected", "lastSync": "t1" })),
        )
        .await
        .unwrap();
    assert_eq!(first.data["status"]["lastSync"], json!("t1"));

    let nested = api
        .patch_status(
            "c",
            &pp,
            &apply(json!({ "phase": "Connected", "pendingSync": { "commandId": "s-1" } })),
        )
        .await
        .unwrap();
    assert_eq!(nested.data["status"]["pendingSync"]["commandId"], "s-1");
    let second = api
        .patch_status("c", &pp, &apply(json!({ "phase": "Paused" })))
        .await
        .unwrap();
    assert_eq!(
        second.data["status"],
        json!({ "phase": "Paused" }),
        "lastSync removed, and pendingSync with its only field (no empty object left)"
    );
    assert_eq!(second.data["spec"], json!({ "paused": false }));
    assert_eq!(generation(&second), 1);

    let before = fk.resource_version();
    let same = api
        .patch_status("c", &pp, &apply(json!({ "phase": "Paused" })))
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&second), "identical apply is a no-op");
    let merged = api
        .patch_status(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Paused" } })),
        )
        .await
        .unwrap();
    assert_eq!(rv(&merged), rv(&second), "identical merge patch is a no-op");
    assert_eq!(
        fk.resource_version(),
        before,
        "no-op writes do not bump resourceVersion"
    );

    // Another applier owning the same field with another value conflicts
    // unless it forces.
    let err = api
        .patch_status(
            "c",
            &PatchParams::apply("someone-else"),
            &apply(json!({ "phase": "Stale" })),
        )
        .await
        .expect_err("conflict");
    assert_eq!(api_code(err).0, 409);
}

#[tokio::test]
async fn apply_on_main_creates_and_json_patch_and_finalizers_work() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);
    let obj = api
        .patch(
            "c",
            &PatchParams::apply("user"),
            &Patch::Apply(json!({
                "apiVersion": "crypto.fleet.dev/v1alpha1",
                "kind": "CryptoClient",
                "metadata": { "name": "c", "finalizers": ["crypto.fleet.dev/session"] },
                "spec": { "paused": true },
                "status": { "phase": "ignored" },
            })),
        )
        .await
        .expect("apply creates");
    assert_eq!(generation(&obj), 1);
    assert!(
        obj.data.get("status").is_none(),
        "status is not set through the main resource"
    );

    let deleting = api.delete("c", &DeleteParams::default()).await.unwrap();
    assert!(
        deleting
            .left()
            .expect("object")
            .metadata
            .deletion_timestamp
            .is_some()
    );
    assert!(api.get("c").await.is_ok(), "held by its finalizer");

    let remove = json_patch::Patch(
        serde_json::from_value(json!([
            { "op": "test", "path": "/metadata/finalizers/0", "value": "crypto.fleet.dev/session" },
            { "op": "remove", "path": "/metadata/finalizers/0" },
        ]))
        .unwrap(),
    );
    api.patch("c", &PatchParams::default(), &Patch::Json::<()>(remove))
        .await
        .expect("json patch");
    let err = api
        .get("c")
        .await
        .expect_err("gone once the finalizer is removed");
    assert_eq!(api_code(err).0, 404);
}

#[tokio::test]
async fn watcher_sees_added_modified_deleted() {
    let fk = FakeKube::start().await;
    let client = fk.client().await;
    let api = crypto_api(client.clone());
    api.create(&PostParams::default(), &crypto_client("old", json!({})))
        .await
        .unwrap();
    let mut w = crypto_watcher(client);
    let mut initial = Vec::new();
    loop {
        match next(&mut w).await.unwrap() {
            Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["old"]);
    watch_open(&fk).await;

    api.create(&PostParams::default(), &crypto_client("c", json!({})))
        .await
        .unwrap();
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "paused": true } })),
    )
    .await
    .unwrap();
    api.delete("c", &DeleteParams::default()).await.unwrap();

    let Event::Apply(added) = next(&mut w).await.unwrap() else {
        panic!("ADDED")
    };
    assert_eq!(generation(&added), 1);
    let Event::Apply(modified) = next(&mut w).await.unwrap() else {
        panic!("MODIFIED")
    };
    assert_eq!(modified.data["spec"]["paused"], json!(true));
    let Event::Delete(deleted) = next(&mut w).await.unwrap() else {
        panic!("DELETED")
    };
    assert_eq!(deleted.metadata.name.as_deref(), Some("c"));

    // What kube-runtime's default watcher sent: a LIST (`limit=500`, most
    // recent), then a WATCH from the list's resourceVersion with bookmarks.
    let reqs = fk.requests();
    let list = reqs
        .iter()
        .find(|r| r.method == "GET" && !r.is_watch())
        .unwrap();
    assert_eq!(list.param("limit").as_deref(), Some("500"));
    let watch = reqs.iter().find(|r| r.is_watch()).unwrap();
    assert_eq!(watch.param("resourceVersion").as_deref(), Some("1"));
    assert_eq!(watch.param("allowWatchBookmarks").as_deref(), Some("true"));
    assert_eq!(watch.param("timeoutSeconds").as_deref(), Some("290"));
}

#[tokio::test]
async fn watcher_relists_after_force_gone() {
    let fk = FakeKube::start().await;
    let client = fk.client().await;
    let api = crypto_api(client.clone());
    let mut w = crypto_watcher(client);
    until_init_done(&mut w).await;
    watch_open(&fk).await;

    fk.force_gone();
    match next(&mut w).await {
        Err(watcher::Error::WatchError(status)) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    until_init_done(&mut w).await;
    watch_open(&fk).await;
    assert_eq!(
        fk.count(|r| r.method == "GET" && !r.is_watch()),
        2,
        "re-listed once"
    );

    api.create(&PostParams::default(), &crypto_client("after", json!({})))
        .await
        .unwrap();
    let Event::Apply(o) = next(&mut w).await.unwrap() else {
        panic!("ADDED after recovery")
    };
    assert_eq!(o.metadata.name.as_deref(), Some("after"));
}

#[tokio::test]
async fn watch_from_an_expired_resource_version_gets_410() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);
    let obj = api
        .create(&PostParams::default(), &crypto_client("c", json!({})))
        .await
        .unwrap();
    fk.force_gone();
    let mut stream = api
        .watch(&kube::api::WatchParams::default(), &rv(&obj).to_string())
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, stream.next()).await.unwrap() {
        Some(Ok(kube::api::WatchEvent::Error(s))) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_resumes_after_drop_watches() {
    let fk = FakeKube::start().await;
    let client = fk.client().await;
    let api = crypto_api(client.clone());
    let mut w = crypto_watcher(client);
    until_init_done(&mut w).await;
    watch_open(&fk).await;

    fk.drop_watches();
    assert!(fk.wait_for(|s| s.open_watches() == 0, WAIT).await);
    api.create(
        &PostParams::default(),
        &crypto_client("while-dropped", json!({})),
    )
    .await
    .unwrap();
    // The watcher resumes from its resourceVersion (no re-list) and sees
    // the write (replayed from the history if it happened before the
    // re-watch, live otherwise).
    let name = loop {
        match next(&mut w).await {
            Ok(Event::Apply(o)) => break o.metadata.name.unwrap(),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => continue,
        }
    };
    assert_eq!(name, "while-dropped");
    assert_eq!(
        fk.count(|r| r.method == "GET" && !r.is_watch()),
        1,
        "no re-list"
    );
}

#[tokio::test]
async fn streaming_list_watcher_works() {
    let fk = FakeKube::start().await;
    let client = fk.client().await;
    let api = crypto_api(client.clone());
    api.create(&PostParams::default(), &crypto_client("a", json!({})))
        .await
        .unwrap();
    let mut w = spawn_watcher(api.clone(), watcher::Config::default().streaming_lists());
    let mut initial = Vec::new();
    loop {
        match next(&mut w).await.unwrap() {
            Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["a"]);
    api.create(&PostParams::default(), &crypto_client("b", json!({})))
        .await
        .unwrap();
    let Event::Apply(o) = next(&mut w).await.unwrap() else {
        panic!("ADDED")
    };
    assert_eq!(o.metadata.name.as_deref(), Some("b"));
    assert_eq!(fk.count(|r| r.param("sendInitialEvents").is_some()), 1);
}

#[tokio::test]
async fn lease_replace_with_stale_resource_version_conflicts() {
    let fk = FakeKube::start().await;
    let leases: Api<Lease> = Api::namespaced(fk.client().await, NS);
    let mut lease = Lease::default();
    lease.metadata.name = Some("crypto-operator".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("a".into()),
        lease_duration_seconds: Some(15),
        ..Default::default()
    });
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();

    let mut mine = created.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let replaced = leases
        .replace("crypto-operator", &PostParams::default(), &mine)
        .await
        .expect("replace with the current resourceVersion");
    assert_eq!(replaced.spec.unwrap().holder_identity.as_deref(), Some("b"));

    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases
        .replace("crypto-operator", &PostParams::default(), &stale)
        .await
        .expect_err("stale resourceVersion");
    assert_eq!(api_code(err), (409, "Conflict".into()));
    let stored = leases.get("crypto-operator").await.unwrap();
    assert_eq!(stored.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

#[tokio::test]
async fn recorder_events_show_up_in_events() {
    let fk = FakeKube::start().await;
    let client = fk.client().await;
    let obj = crypto_api(client.clone())
        .create(&PostParams::default(), &crypto_client("c", json!({})))
        .await
        .unwrap();
    let reference: ObjectReference = obj.object_ref(&crypto_client_api_resource());
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "crypto-operator".into(),
            instance: None,
        },
    );
    let event = KubeEvent {
        type_: EventType::Normal,
        reason: "Connected".into(),
        note: Some("client connected".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &reference)
        .await
        .expect("event created");
    recorder
        .publish(&event, &reference)
        .await
        .expect("event series patched");

    let events = fk.events();
    assert_eq!(events.len(), 1, "the repeat is a series on the same Event");
    let e = &events[0];
    assert_eq!(e["apiVersion"], json!("events.k8s.io/v1"));
    assert_eq!(e["reason"], json!("Connected"));
    assert_eq!(e["regarding"]["name"], json!("c"));
    assert_eq!(e["regarding"]["kind"], json!("CryptoClient"));
    assert_eq!(e["series"]["count"], json!(2));
    assert_eq!(
        fk.count(
            |r| r.method == "POST" && r.path == "/apis/events.k8s.io/v1/namespaces/default/events"
        ),
        1
    );
}

#[tokio::test]
async fn fail_next_fails_exactly_one_request() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);
    api.create(&PostParams::default(), &crypto_client("c", json!({})))
        .await
        .unwrap();
    fk.fail_next(1, 500);
    let err = api.get("c").await.expect_err("injected failure");
    assert_eq!(api_code(err), (500, "InternalError".into()));
    api.get("c").await.expect("the next request succeeds");
    assert_eq!(fk.count(|r| r.status == 500), 1);
}

#[tokio::test]
async fn request_log_records_a_status_patch() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);
    api.create(&PostParams::default(), &crypto_client("c", json!({})))
        .await
        .unwrap();
    fk.clear_log();
    api.patch_status(
        "c",
        &PatchParams::apply("crypto-operator"),
        &Patch::Apply(json!({
            "apiVersion": "crypto.fleet.dev/v1alpha1",
            "kind": "CryptoClient",
            "status": { "phase": "Connected" },
        })),
    )
    .await
    .unwrap();
    let reqs = fk.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "PATCH");
    assert_eq!(
        r.path,
        "/apis/crypto.fleet.dev/v1alpha1/namespaces/default/cryptoclients/c/status"
    );
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(r.param("fieldManager").as_deref(), Some("crypto-operator"));
    assert_eq!(
        r.body.as_ref().unwrap()["status"]["phase"],
        json!("Connected")
    );
    assert_eq!(r.status, 200);
    assert_eq!(fk.count(|r| r.method == "PATCH" && r.is_status()), 1);
    let found = fk
        .wait_for_request(|r| r.method == "PATCH" && r.path.ends_with("/status"), WAIT)
        .await;
    assert!(found.is_some());
}

#[tokio::test]
async fn kubeconfig_file_and_helpers_drive_the_same_state() {
    let fk = FakeKube::start().await;
    let dir = std::env::temp_dir().join(format!("fake-kube-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = fk.write_kubeconfig(&dir);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let api = crypto_api(client);

    // A helper write is seen by clients, with status seeded directly.
    fk.create(json!({
        "apiVersion": "crypto.fleet.dev/v1alpha1",
        "kind": "CryptoClient",
        "metadata": { "name": "seeded", "namespace": NS },
        "spec": { "paused": false },
        "status": { "phase": "Pending" },
    }))
    .unwrap();
    let got = api.get("seeded").await.unwrap();
    assert_eq!(got.data["status"]["phase"], json!("Pending"));

    // A client write wakes `wait_for`.
    let waiter = fk.wait_for(
        |s| {
            s.get(CRYPTO_GROUP, CRYPTO_VERSION, CRYPTO_PLURAL, NS, "seeded")
                .is_some_and(|o| o["spec"]["syncRequested"] == json!(true))
        },
        WAIT,
    );
    let (pp, patch) = (
        PatchParams::default(),
        Patch::Merge(json!({ "spec": { "syncRequested": true } })),
    );
    let writer = api.patch("seeded", &pp, &patch);
    let (seen, written) = tokio::join!(waiter, writer);
    assert!(seen);
    assert_eq!(generation(&written.unwrap()), 2);

    fk.merge_patch(
        CRYPTO_GROUP,
        CRYPTO_VERSION,
        CRYPTO_PLURAL,
        NS,
        "seeded",
        json!({ "spec": { "syncRequested": false } }),
    )
    .unwrap();
    assert_eq!(
        fk.list(CRYPTO_GROUP, CRYPTO_VERSION, CRYPTO_PLURAL, Some(NS))
            .len(),
        1
    );
    fk.delete(CRYPTO_GROUP, CRYPTO_VERSION, CRYPTO_PLURAL, NS, "seeded")
        .unwrap();
    assert!(api.get_opt("seeded").await.unwrap().is_none());
    fk.shutdown().await;
}

#[tokio::test]
async fn watch_replays_history_and_follows_label_selector_transitions() {
    let fk = FakeKube::start().await;
    let api = crypto_api(fk.client().await);
    let first = api
        .create(&PostParams::default(), &crypto_client("c", json!({})))
        .await
        .unwrap();
    let label = |v: Value| Patch::Merge(json!({ "metadata": { "labels": { "team": v } } }));
    api.patch("c", &PatchParams::default(), &label(json!("a")))
        .await
        .unwrap();
    api.patch("c", &PatchParams::default(), &label(json!("b")))
        .await
        .unwrap();

    // From the create's resourceVersion, selecting team=a: the first label
    // patch brings the object into the selection (ADDED), the second takes
    // it out (DELETED).
    let wp = kube::api::WatchParams::default().labels("team=a");
    let mut stream = api
        .watch(&wp, &rv(&first).to_string())
        .await
        .unwrap()
        .boxed();
    let mut next_event = async || {
        tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("event parses")
    };
    assert!(
        matches!(next_event().await, kube::api::WatchEvent::Added(o) if o.labels()["team"] == "a")
    );
    assert!(
        matches!(next_event().await, kube::api::WatchEvent::Deleted(o) if o.labels()["team"] == "b")
    );
    api.patch("c", &PatchParams::default(), &label(json!("a")))
        .await
        .unwrap();
    assert!(
        matches!(next_event().await, kube::api::WatchEvent::Added(_)),
        "live ADDED"
    );
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

#[tokio::test]
async fn controller_reconciles_and_writes_status() {
    let fk = FakeKube::start().await;
    let client = fk.client().await;
    let api = crypto_api(client.clone());
    let controller = Controller::new_with(
        api.clone(),
        watcher::Config::default(),
        crypto_client_api_resource(),
    )
    .run(
        |obj: Arc<DynamicObject>, api: Arc<Api<DynamicObject>>| async move {
            let status = json!({
                "apiVersion": "crypto.fleet.dev/v1alpha1",
                "kind": "CryptoClient",
                "status": { "observedGeneration": obj.metadata.generation, "phase": "Pending" },
            });
            api.patch_status(
                &obj.name_any(),
                &PatchParams::apply("crypto-operator").force(),
                &Patch::Apply(status),
            )
            .await?;
            Ok::<_, ReconcileError>(Action::await_change())
        },
        |_, _, _| Action::requeue(Duration::from_secs(1)),
        Arc::new(api.clone()),
    )
    .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    api.create(
        &PostParams::default(),
        &crypto_client("c", json!({ "paused": false })),
    )
    .await
    .unwrap();
    let observed = |generation: i64| {
        move |s: &support::fake_kube::Store| {
            s.get(CRYPTO_GROUP, CRYPTO_VERSION, CRYPTO_PLURAL, NS, "c")
                .is_some_and(|o| o["status"]["observedGeneration"] == json!(generation))
        }
    };
    assert!(fk.wait_for(observed(1), WAIT).await, "first reconcile");
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "paused": true } })),
    )
    .await
    .unwrap();
    assert!(
        fk.wait_for(observed(2), WAIT).await,
        "reconciled the spec change"
    );
    let status_applies = fk.count(|r| {
        r.method == "PATCH"
            && r.is_status()
            && r.param("fieldManager").as_deref() == Some("crypto-operator")
    });
    assert!(status_applies >= 2, "status applies: {status_applies}");
    let stored = fk
        .get(CRYPTO_GROUP, CRYPTO_VERSION, CRYPTO_PLURAL, NS, "c")
        .unwrap();
    assert_eq!(stored["spec"], json!({ "paused": true }));
    assert_eq!(stored["metadata"]["generation"], json!(2));
    controller.abort();
}
