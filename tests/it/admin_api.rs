//! The admin REST API over real HTTP against a real server and real gRPC
//! clients: every endpoint's success and error paths, bearer-token auth
//! (401 and nothing sent), the loopback-only rule without a token, the
//! cluster-mode refusal (409 naming the resource), and the OpenAPI
//! document.

use crate::support;

use crypto_operator::api::{AdminToken, ApiConfig};
use crypto_operator::commands;
use crypto_operator::controller::ControllerConfig;
use crypto_operator::proto::{
    ClientStatus, CommandAck, WalletUpdate, client_message::Payload, server_command::Command,
};
use crypto_operator::server::{ClusterConfig, Mode, Running, ServerConfig};
use crypto_operator::streaming::StreamingConfig;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use support::fake_kube::FakeKube;
use support::http::{Response, api, http_request};
use support::process::http_get;
use support::*;

const TOKEN: &str = "admin-token-0123456789abcdef";

fn with_token() -> ApiConfig {
    ApiConfig {
        token: Some(AdminToken::new(TOKEN).unwrap()),
    }
}

async fn start_api(streaming: StreamingConfig) -> Running {
    init_logs();
    start_config(ServerConfig {
        api: with_token(),
        ..test_config(streaming)
    })
    .await
}

/// An authorized call to `/api/v1{path}`.
async fn call(server: &Running, method: &str, path: &str, body: Option<&str>) -> Response {
    api(
        server.http_addr,
        Some(TOKEN),
        method,
        &format!("/api/v1{path}"),
        body,
    )
    .await
}

fn assert_error(r: &Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{r:?}");
    let v = r.json();
    assert_eq!(v["error"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

#[tokio::test]
async fn clients_are_listed_and_read_as_snapshots() {
    let server = start_api(calm_config()).await;
    let r = call(&server, "GET", "/clients", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"clients": []}));

    let c = RawClient::connect(server.grpc_addr, "w-1").await;
    c.send(Payload::WalletUpdate(WalletUpdate {
        wallet_id: "main".into(),
        chain: "ethereum".into(),
        asset: "ETH".into(),
        balance: "2.5".into(),
        block_height: 77,
    }))
    .await;
    c.send(Payload::Status(ClientStatus {
        state: 1,
        detail: "ok".into(),
        config_hash: String::new(),
    }))
    .await;
    let session = server.handle.session("w-1").unwrap();
    eventually("both messages handled", || {
        session.state_counters().messages_received >= 2
    })
    .await;
    let _other = RawClient::connect(server.grpc_addr, "a-0").await;

    let list = call(&server, "GET", "/clients", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let ids: Vec<_> = list.json()["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clientId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["a-0", "w-1"]);
    assert!(list.json().get("continue").is_none(), "one page");
    let w = &list.json()["clients"][1];
    assert_eq!(w["walletCount"], 1);
    assert!(
        w.get("wallets").is_none(),
        "a listing carries no wallet lists"
    );

    // Pages like a Kubernetes list: `limit`, then `continue`.
    let first = call(&server, "GET", "/clients?limit=1", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["clients"][0]["clientId"], "a-0");
    let token = first.json()["continue"].as_str().unwrap().to_owned();
    let second = call(
        &server,
        "GET",
        &format!("/clients?limit=1&continue={token}"),
        None,
    )
    .await;
    assert_eq!(second.json()["clients"][0]["clientId"], "w-1");
    assert!(second.json().get("continue").is_none(), "the last page");
    let typed = call(
        &server,
        "GET",
        "/clients?type=price-feed&state=connected",
        None,
    )
    .await;
    assert_eq!(typed.json(), json!({"clients": []}));
    for bad in [
        "/clients?limit=0",
        "/clients?limit=1001",
        "/clients?limit=x",
        "/clients?state=gone",
        "/clients?continue=nonsense",
        "/clients?limt=1",
    ] {
        let r = call(&server, "GET", bad, None).await;
        assert_error(&r, 400, "bad_request");
    }
    let wrong_filter = call(
        &server,
        "GET",
        &format!("/clients?limit=1&continue={token}&type=x"),
        None,
    )
    .await;
    assert_error(&wrong_filter, 400, "bad_request");

    let one = call(&server, "GET", "/clients/w-1", None).await;
    assert_eq!(one.status, 200);
    let v = one.json();
    assert_eq!(v["clientId"], "w-1");
    assert_eq!(v["sessionId"], c.session_id.as_str());
    assert_eq!(v["state"], "SESSION_STATE_CONNECTED");
    assert_eq!(v["registration"]["clientType"], "wallet-sync");
    assert_eq!(v["registration"]["version"], "1.0.0");
    assert!(v["lastHeartbeat"].as_str().unwrap().ends_with('Z'));
    assert!(v["connectedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["status"]["state"], "CLIENT_RUN_STATE_RUNNING");
    assert_eq!(
        v["wallets"],
        json!([{"walletId": "main", "chain": "ethereum", "asset": "ETH", "balance": "2.5",
                "blockHeight": "77"}])
    );
    assert_eq!(v["counters"]["walletUpdates"], "1");
    assert_eq!(v["pendingCommands"], 0);

    let missing = call(&server, "GET", "/clients/nobody", None).await;
    let e = assert_error(&missing, 404, "not_found");
    assert!(e["message"].as_str().unwrap().contains("nobody"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn commands_are_queued_with_202_and_reach_the_client() {
    let server = start_api(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "w-2").await;
    let r = call(
        &server,
        "POST",
        "/clients/w-2/commands",
        Some(r#"{"type":"ping"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    let id = r.json()["command_id"].as_str().unwrap().to_owned();
    let cmd = c.command().await;
    assert_eq!(cmd.command_id, id);
    assert!(matches!(cmd.command, Some(Command::Ping(_))));

    // Without a content type (curl -d) and with a pause reason.
    let r = http_request(
        server.http_addr,
        "POST",
        "/api/v1/clients/w-2/commands",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        Some(r#"{"type":"pause","reason":"maintenance","timeout_ms":60000}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Pause(p)) if p.reason == "maintenance"));

    let gone = call(
        &server,
        "POST",
        "/clients/nobody/commands",
        Some(r#"{"type":"ping"}"#),
    )
    .await;
    assert_error(&gone, 404, "not_found");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wait_answers_200_with_the_ack() {
    let server = start_api(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "w-3").await;
    let http = server.http_addr;
    let sync = tokio::spawn(async move {
        api(
            http,
            Some(TOKEN),
            "POST",
            "/api/v1/clients/w-3/commands",
            Some(r#"{"type":"sync_wallets","wallet_ids":["main"],"wait":true,"timeout_ms":5000}"#),
        )
        .await
    });
    let cmd = c.command().await;
    let Some(Command::SyncWallets(s)) = &cmd.command else {
        panic!("not sync_wallets: {cmd:?}");
    };
    assert_eq!(s.wallet_ids, ["main"]);
    c.send(Payload::CommandAck(CommandAck {
        command_id: cmd.command_id.clone(),
        success: true,
        message: "done".into(),
        result: HashMap::from([("wallets_synced".into(), "1".into())]),
    }))
    .await;
    let r = sync.await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"command_id": cmd.command_id, "ack": {"commandId": cmd.command_id,
               "success": true, "message": "done", "result": {"wallets_synced": "1"}}})
    );

    // update_config carries the config and its hash; a refusal is still
    // a 200 with success false.
    let cfg = tokio::spawn(async move {
        api(
            http,
            Some(TOKEN),
            "POST",
            "/api/v1/clients/w-3/commands",
            Some(r#"{"type":"update_config","config":{"mode":"fast","region":"eu"},"wait":true}"#),
        )
        .await
    });
    let cmd = c.command().await;
    let Some(Command::UpdateConfig(u)) = &cmd.command else {
        panic!("not update_config: {cmd:?}");
    };
    assert_eq!(u.config.get("mode").map(String::as_str), Some("fast"));
    assert_eq!(u.config_hash, commands::config_hash(&u.config));
    c.ack(&cmd.command_id, false).await;
    let r = cfg.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ack"]["success"], false);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wait_times_out_with_504_and_a_session_ending_first_is_503() {
    let server = start_api(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "w-4").await;
    let r = call(
        &server,
        "POST",
        "/clients/w-4/commands",
        Some(r#"{"type":"ping","wait":true,"timeout_ms":200}"#),
    )
    .await;
    assert_error(&r, 504, "ack_timeout");
    let _ = c.command().await; // received, never acked

    let http = server.http_addr;
    let waiting = tokio::spawn(async move {
        api(
            http,
            Some(TOKEN),
            "POST",
            "/api/v1/clients/w-4/commands",
            Some(r#"{"type":"resume","wait":true}"#),
        )
        .await
    });
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Resume(_))));
    drop(c);
    let r = waiting.await.unwrap();
    assert_error(&r, 503, "session_ended");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_is_429() {
    let server = start_api(StreamingConfig {
        max_pending_acks: 1,
        ..calm_config()
    })
    .await;
    let _c = RawClient::connect(server.grpc_addr, "w-5").await;
    let body = Some(r#"{"type":"ping"}"#);
    assert_eq!(
        call(&server, "POST", "/clients/w-5/commands", body)
            .await
            .status,
        202
    );
    let full = call(&server, "POST", "/clients/w-5/commands", body).await;
    assert_error(&full, 429, "queue_full");
    assert_eq!(full.header("retry-after"), Some("1"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_400_or_413_and_send_nothing() {
    let server = start_api(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "w-6").await;
    let session = server.handle.session("w-6").unwrap();
    // `registered` counts as sent.
    let sent = session.state_counters().commands_sent;
    for (body, hint) in [
        ("", "required"),
        ("{", "invalid JSON"),
        (r#"{"type":"explode"}"#, "unknown variant"),
        (r#"{"type":"disconnect"}"#, "unknown variant"),
        (r#"{"wait":true}"#, "type"),
        (r#"{"type":"ping","extra":1}"#, "unknown field"),
        (r#"{"type":"ping","config":{"a":"b"}}"#, "config"),
        (r#"{"type":"update_config"}"#, "config"),
        (r#"{"type":"update_config","config":{"a":1}}"#, "invalid"),
        (r#"{"type":"ping","timeout_ms":0}"#, "timeout_ms"),
        (r#"{"type":"ping","timeout_ms":300001}"#, "timeout_ms"),
        (r#"{"type":"ping","wait":"yes"}"#, "invalid"),
    ] {
        let r = call(&server, "POST", "/clients/w-6/commands", Some(body)).await;
        let e = assert_error(&r, 400, "bad_request");
        assert!(e["message"].as_str().unwrap().contains(hint), "{body}: {e}");
    }
    let big = format!(
        r#"{{"type":"update_config","config":{{"k":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    let r = call(&server, "POST", "/clients/w-6/commands", Some(&big)).await;
    assert_error(&r, 413, "payload_too_large");

    assert_eq!(session.state_counters().commands_sent, sent);
    // The next command the client sees is this one.
    let r = call(
        &server,
        "POST",
        "/clients/w-6/commands",
        Some(r#"{"type":"ping"}"#),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        c.command().await.command_id,
        r.json()["command_id"].as_str().unwrap()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = start_api(calm_config()).await;
    assert_error(
        &call(&server, "GET", "/nothing", None).await,
        404,
        "not_found",
    );
    assert_error(
        &call(&server, "DELETE", "/clients", None).await,
        405,
        "method_not_allowed",
    );
    assert_error(
        &call(&server, "GET", "/clients/x/commands", None).await,
        405,
        "method_not_allowed",
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn requests_without_the_right_token_get_401_and_send_nothing() {
    let server = start_api(calm_config()).await;
    let mut c = RawClient::connect(server.grpc_addr, "w-7").await;
    let session = server.handle.session("w-7").unwrap();
    let sent = session.state_counters().commands_sent;
    let body = Some(r#"{"type":"pause"}"#);
    let path = "/api/v1/clients/w-7/commands";
    let cases: [&[(&str, &str)]; 5] = [
        &[],
        &[("Authorization", "Bearer wrong-token")],
        &[("Authorization", "Bearer admin-token-0123456789abcde")],
        &[("Authorization", "Basic YWRtaW46YWRtaW4=")],
        &[("Authorization", TOKEN)],
    ];
    for headers in cases {
        let r = http_request(server.http_addr, "POST", path, headers, body).await;
        let e = assert_error(&r, 401, "unauthorized");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(!e["message"].as_str().unwrap().contains(TOKEN));
    }
    for p in [
        "/api/v1/clients",
        "/api/v1/clients/w-7",
        "/api/v1/openapi.json",
        "/api/v1/nothing",
        "/api/v1",
    ] {
        let r = http_request(server.http_addr, "GET", p, &[], None).await;
        assert_error(&r, 401, "unauthorized");
    }
    assert_eq!(session.state_counters().commands_sent, sent);
    // The lower-case scheme works; it is the first command the client gets.
    let r = http_request(
        server.http_addr,
        "POST",
        path,
        &[("Authorization", &format!("bearer {TOKEN}"))],
        Some(r#"{"type":"ping"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Ping(_))));
    // Health and metrics stay open.
    for p in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(http_get(server.http_addr, p).await.0, 200, "{p}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_token_the_api_is_open_on_loopback_and_disabled_elsewhere() {
    init_logs();
    // Loopback, no token: open.
    let local = start(calm_config()).await;
    let r = api(local.http_addr, None, "GET", "/api/v1/clients", None).await;
    assert_eq!(r.status, 200);
    local.stop().await.unwrap();

    // All interfaces, no token: not mounted; health and metrics work.
    let open = start_config(ServerConfig {
        http_addr: "0.0.0.0:0".parse().unwrap(),
        ..test_config(calm_config())
    })
    .await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], open.http_addr.port()));
    let _c = RawClient::connect(open.grpc_addr, "w-8").await;
    let session = open.handle.session("w-8").unwrap();
    let sent = session.state_counters().commands_sent;
    for (method, path) in [
        ("GET", "/api/v1/clients"),
        ("POST", "/api/v1/clients/w-8/commands"),
    ] {
        let r = api(addr, None, method, path, Some(r#"{"type":"ping"}"#)).await;
        let e = assert_error(&r, 404, "api_disabled");
        assert!(e["message"].as_str().unwrap().contains("--admin-token"));
    }
    assert_eq!(session.state_counters().commands_sent, sent);
    for p in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(http_get(addr, p).await.0, 200, "{p}");
    }
    open.stop().await.unwrap();

    // All interfaces with a token: protected.
    let protected = start_config(ServerConfig {
        http_addr: "0.0.0.0:0".parse().unwrap(),
        api: with_token(),
        ..test_config(calm_config())
    })
    .await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], protected.http_addr.port()));
    assert_eq!(
        api(addr, None, "GET", "/api/v1/clients", None).await.status,
        401
    );
    assert_eq!(
        api(addr, Some(TOKEN), "GET", "/api/v1/clients", None)
            .await
            .status,
        200
    );
    protected.stop().await.unwrap();
}

#[tokio::test]
async fn resource_managed_fields_are_409_in_cluster_mode() {
    init_logs();
    let fake = FakeKube::start().await;
    let server = start_config(ServerConfig {
        mode: Mode::Cluster(ClusterConfig {
            client: fake.client().await,
            controller: ControllerConfig {
                namespaces: Vec::new(),
                status_heartbeat_interval: Duration::from_secs(30),
                concurrency: 4,
                api_timeout: crypto_operator::controller::DEFAULT_API_TIMEOUT,
                ..ControllerConfig::default()
            },
        }),
        api: with_token(),
        ..test_config(calm_config())
    })
    .await;
    eventually("ready", || server.ready.not_ready().is_none()).await;
    cluster::created(&fake, "w-9", json!({})).await;
    let mut c = cluster::connect_converged(&fake, server.grpc_addr, "w-9", "w-9").await;

    for body in [
        r#"{"type":"pause"}"#,
        r#"{"type":"resume"}"#,
        r#"{"type":"update_config","config":{"a":"b"}}"#,
    ] {
        let r = call(&server, "POST", "/clients/w-9/commands", Some(body)).await;
        let e = assert_error(&r, 409, "managed_by_resource");
        assert!(
            e["message"].as_str().unwrap().contains("default/w-9"),
            "{e}"
        );
    }
    // Ping and sync are allowed.
    let http = server.http_addr;
    let ping = tokio::spawn(async move {
        api(
            http,
            Some(TOKEN),
            "POST",
            "/api/v1/clients/w-9/commands",
            Some(r#"{"type":"ping","wait":true}"#),
        )
        .await
    });
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Ping(_))), "{cmd:?}");
    c.ack(&cmd.command_id, true).await;
    assert_eq!(ping.await.unwrap().status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let server = start_api(calm_config()).await;
    let r = call(&server, "GET", "/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc, crypto_operator::api::openapi_document());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );

    // Exactly the API's routes.
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    let expected: BTreeSet<_> = [
        ("GET", "/clients"),
        ("GET", "/clients/{id}"),
        ("POST", "/clients/{id}/commands"),
        ("GET", "/openapi.json"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(ops, expected);

    // Every documented operation is served, and answers with a documented
    // status (a client that is not connected, a well-formed command).
    for (method, path) in &ops {
        let concrete = path.replace("{id}", "nobody");
        let body = (method == "POST").then_some(r#"{"type":"ping"}"#);
        let r = call(&server, method, &concrete, body).await;
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(
            op["responses"][r.status.to_string()].is_object(),
            "{method} {path} answered {} which is not documented",
            r.status
        );
        let json_ok = serde_json::from_str::<Value>(&r.body).is_ok();
        assert!(json_ok, "{method} {path}: {}", r.body);
    }

    // The command body's schema is the request type's.
    let post = &doc["paths"]["/clients/{id}/commands"]["post"];
    let schema_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let name = schema_ref.rsplit('/').next().unwrap();
    let schema = &doc["components"]["schemas"][name];
    let props: BTreeSet<_> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for p in ["type", "config", "wait", "timeout_ms"] {
        assert!(props.contains(p), "{p} missing from {props:?}");
    }
    for status in [
        "200", "202", "400", "401", "404", "409", "429", "503", "504",
    ] {
        assert!(post["responses"][status].is_object(), "{status}");
    }
    server.stop().await.unwrap();
}
