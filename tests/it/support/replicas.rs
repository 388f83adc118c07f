//! Several real `crypto-operator serve` processes against one fake API
//! server, behind a loopback proxy standing in for the Service, and a
//! fleet of real SDK clients connecting through it. Replica processes get
//! distinct ids and ports, short Leases (so failover fits in a test) and a
//! shared peer token.

use super::WAIT;
use super::fake_kube::service::Service;
use super::fake_kube::{CRYPTO_GROUP as G, CRYPTO_PLURAL as P, CRYPTO_VERSION as V, FakeKube};
use super::process::{ServeProcess, free_port, serve_args, wait_http_ready};
use crypto_operator::client::{
    self, ClientConfig, Command, CommandHandler, CommandResult, ConnectionState,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The namespace of the resources and the Leases.
pub const NS: &str = "default";
/// Lease duration of the replicas (renewed every second).
pub const LEASE: Duration = Duration::from_secs(3);
/// How long the janitor waits after a holder's Lease expired.
pub const HOLDER_GRACE: Duration = Duration::from_secs(2);
/// The flap bound.
pub const MIN_HOLD: Duration = Duration::from_secs(1);
/// The token the replicas present to each other.
pub const PEER_TOKEN: &str = "test-peer-token-0123456789";

/// One replica process.
pub struct Replica {
    pub id: String,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub process: ServeProcess,
}

/// The replicas, their API server and their Service.
pub struct Replicas {
    pub fake: FakeKube,
    pub proxy: Service,
    pub live: Vec<Replica>,
    /// The flap bound the replicas get.
    pub min_hold: Duration,
    /// More `serve` flags for every replica.
    pub extra: Vec<String>,
    dir: PathBuf,
    kubeconfig: PathBuf,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

/// One multi-replica scenario at a time: each runs three or more server
/// processes against a fake API server in this process, and several at
/// once on two cores starved the fakes past the 2 s renew deadline (a
/// replica then rightly judged itself cut off and shed its sessions).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Replicas {
    /// Starts the fake API server, `clients` CryptoClients (`c-000`…,
    /// empty spec) and one ready replica per id.
    pub async fn start(ids: &[&str], clients: usize) -> Self {
        Self::start_with(ids, clients, MIN_HOLD, &[]).await
    }

    /// [`Replicas::start`] with another flap bound and more `serve` flags.
    pub async fn start_with(
        ids: &[&str],
        clients: usize,
        min_hold: Duration,
        extra: &[&str],
    ) -> Self {
        let one_at_a_time = ONE_AT_A_TIME.lock().await;
        let fake = FakeKube::start().await;
        for i in 0..clients {
            fake.create(resource(&client_id(i))).unwrap();
        }
        let dir = std::env::temp_dir().join(format!(
            "crypto-replicas-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = fake.write_kubeconfig(&dir);
        let mut r = Self {
            fake,
            proxy: Service::start(Vec::new()).await,
            live: Vec::new(),
            min_hold,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            dir,
            kubeconfig,
            _one_at_a_time: one_at_a_time,
        };
        for id in ids {
            r.spawn(id).await;
        }
        r
    }

    /// Starts replica `id` and waits until it is ready; the proxy sends
    /// it new connections from then on.
    pub async fn spawn(&mut self, id: &str) {
        let port = free_port();
        let grpc = format!("127.0.0.1:{port}");
        let lease = format!("{}s", LEASE.as_secs());
        let grace = format!("{}s", HOLDER_GRACE.as_secs());
        let hold = format!("{}s", self.min_hold.as_secs());
        let args = [
            "--grpc-addr",
            &grpc,
            "--http-addr",
            "127.0.0.1:0",
            "--drain-grace",
            "3s",
            "--replica-id",
            id,
            "--advertise-addr",
            &grpc,
            "--lease-duration",
            &lease,
            "--holder-grace",
            &grace,
            "--min-hold",
            &hold,
            "--require-client-auth=false",
            "--log-format",
            "json",
        ];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(self.extra.iter().map(String::as_str));
        let process = serve_args(
            &args,
            &[
                ("KUBECONFIG", self.kubeconfig.as_os_str()),
                ("CRYPTO_PEER_TOKEN", std::ffi::OsStr::new(PEER_TOKEN)),
            ],
        )
        .await;
        wait_http_ready(process.http).await;
        self.live.push(Replica {
            id: id.to_owned(),
            grpc: process.grpc,
            http: process.http,
            process,
        });
        self.route();
    }

    /// Points the proxy at the live replicas.
    fn route(&self) {
        self.proxy
            .set_backends(self.live.iter().map(|r| r.grpc).collect());
    }

    /// Replica `id`.
    pub fn get(&self, id: &str) -> &Replica {
        self.live
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no live replica {id}"))
    }

    fn take(&mut self, id: &str) -> Replica {
        let i = self
            .live
            .iter()
            .position(|r| r.id == id)
            .unwrap_or_else(|| panic!("no live replica {id}"));
        let r = self.live.remove(i);
        self.route();
        r
    }

    /// SIGKILL: the process dies at once, its Lease left to expire.
    pub async fn kill(&mut self, id: &str) {
        let mut r = self.take(id);
        r.process.child.start_kill().unwrap();
        r.process.child.wait().await.unwrap();
    }

    /// SIGTERM, as Kubernetes stops a pod: out of the Service first, then
    /// the drain; waits for the exit.
    pub async fn terminate(&mut self, id: &str) {
        let mut r = self.take(id);
        let pid = r.process.child.id().expect("running");
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = tokio::time::timeout(WAIT, r.process.child.wait())
            .await
            .expect("replica exits within its drain")
            .unwrap();
        assert!(status.success(), "replica {id} exited with {status}");
    }

    /// The sessions replica `id` holds: client id -> session id. A
    /// listing marked as forwarded is answered with the replica's own
    /// sessions only (any other listing merges the fleet's).
    pub async fn sessions(&self, id: &str) -> HashMap<String, String> {
        let mut op = super::operator(self.get(id).grpc).await;
        let mut out = HashMap::new();
        let mut token = String::new();
        loop {
            let mut req = tonic::Request::new(crypto_operator::proto::ListClientsRequest {
                page_size: 1000,
                page_token: std::mem::take(&mut token),
                ..Default::default()
            });
            req.metadata_mut().insert(
                crypto_operator::proto::hops::FORWARDED_BY,
                "test-harness".parse().unwrap(),
            );
            let page = op.list_clients(req).await.unwrap().into_inner();
            for c in page.clients {
                out.insert(c.client_id, c.session_id);
            }
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Sessions of every live replica: client id -> (replica, session id).
    pub async fn all_sessions(&self) -> HashMap<String, (String, String)> {
        let mut out = HashMap::new();
        for r in &self.live {
            for (client, session) in self.sessions(&r.id).await {
                let prev = out.insert(client.clone(), (r.id.clone(), session));
                assert!(prev.is_none(), "{client} has sessions on two replicas");
            }
        }
        out
    }

    /// The CryptoClient named `name`.
    pub fn resource(&self, name: &str) -> Value {
        self.fake.get(G, V, P, NS, name).unwrap()
    }

    /// Merge-patches the spec of every resource.
    pub fn patch_all_specs(&self, spec: &Value, names: &[String]) {
        for n in names {
            self.fake
                .merge_patch(G, V, P, NS, n, json!({ "spec": spec }))
                .unwrap();
        }
    }

    /// Waits until every named resource satisfies `pred` (`what` names it
    /// in the failure); returns the objects.
    pub async fn wait_resources(
        &self,
        names: &[String],
        what: &str,
        within: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Vec<Value> {
        let got = self
            .fake
            .wait_map(
                |st| {
                    // Checked in place (the fake's lock is held), copied
                    // only once every one matches.
                    names
                        .iter()
                        .all(|n| st.get(G, V, P, NS, n).is_some_and(&mut pred))
                        .then(|| {
                            names
                                .iter()
                                .filter_map(|n| st.get(G, V, P, NS, n).cloned())
                                .collect()
                        })
                },
                within,
            )
            .await;
        got.unwrap_or_else(|| {
            let bad: Vec<Value> = names
                .iter()
                .map(|n| self.resource(n))
                .filter(|o| !pred(o))
                .take(3)
                .map(|o| json!({"name": o["metadata"]["name"], "status": o["status"]}))
                .collect();
            panic!(
                "not every resource is {what} within {within:?}; for example {}",
                Value::Array(bad)
            )
        })
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The client id (and resource name) of the `i`-th client.
pub fn client_id(i: usize) -> String {
    format!("c-{i:03}")
}

/// A CryptoClient with an empty spec.
pub fn resource(name: &str) -> Value {
    json!({
        "apiVersion": format!("{G}/{V}"),
        "kind": "CryptoClient",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clientId": name},
    })
}

/// Whether `o` is Connected, held by `replica` with `session`.
pub fn held_by(o: &Value, replica: &str, session: &str) -> bool {
    o["status"]["phase"] == "Connected"
        && o["status"]["holder"]["replica"] == replica
        && o["status"]["holder"]["sessionId"] == session
}

/// Acks every command; counts the `sync_wallets` it carried out (the SDK
/// hands a redelivered command to the handler only once), taking
/// `sync_time` for each.
struct Counting {
    syncs: Arc<AtomicU32>,
    configs: Arc<AtomicU32>,
    sync_time: Duration,
}

impl CommandHandler for Counting {
    async fn handle(&mut self, command: Command) -> CommandResult {
        match command {
            Command::SyncWallets { .. } => {
                self.syncs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.sync_time).await;
            }
            Command::UpdateConfig { .. } => {
                self.configs.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        Ok(HashMap::new())
    }
}

/// One SDK client of the fleet.
pub struct FleetClient {
    pub state: watch::Receiver<ConnectionState>,
    pub syncs: Arc<AtomicU32>,
    /// `update_config` commands received (one per session that delivered
    /// the desired state).
    pub configs: Arc<AtomicU32>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// SDK clients connected through the proxy, reconnecting with a short
/// backoff, as a fleet behind a Service does.
pub struct Fleet {
    pub clients: BTreeMap<String, FleetClient>,
}

impl Fleet {
    /// Starts a client per id against `endpoint`; each `sync_wallets`
    /// takes `sync_time`.
    pub fn start(endpoint: &str, ids: &[String], sync_time: Duration) -> Self {
        let mut clients = BTreeMap::new();
        for id in ids {
            let config = ClientConfig::new(endpoint, id)
                .backoff(Duration::from_millis(50), Duration::from_millis(500));
            let (client, _sender) = client::new(config);
            let state = client.state();
            let syncs = Arc::new(AtomicU32::new(0));
            let configs = Arc::new(AtomicU32::new(0));
            let stop = CancellationToken::new();
            let handler = Counting {
                syncs: syncs.clone(),
                configs: configs.clone(),
                sync_time,
            };
            let task = tokio::spawn(client.run(handler, stop.clone()));
            clients.insert(
                id.clone(),
                FleetClient {
                    state,
                    syncs,
                    configs,
                    stop,
                    task,
                },
            );
        }
        Self { clients }
    }

    /// The session id of `id`'s current connection.
    pub fn session(&self, id: &str) -> Option<String> {
        match &*self.clients[id].state.borrow() {
            ConnectionState::Connected { session_id } => Some(session_id.clone()),
            _ => None,
        }
    }

    /// Client id -> session id of every connected client.
    pub fn sessions(&self) -> BTreeMap<String, String> {
        self.clients
            .keys()
            .filter_map(|id| Some((id.clone(), self.session(id)?)))
            .collect()
    }

    /// Waits until every client is connected; returns their sessions.
    pub async fn wait_connected(&self, within: Duration) -> BTreeMap<String, String> {
        super::poll_until(
            "every client connected",
            within,
            Duration::from_millis(20),
            async || (self.sessions().len() == self.clients.len()).then(|| self.sessions()),
        )
        .await
    }

    /// Stops client `id` for good (it never comes back).
    pub async fn stop(&mut self, id: &str) {
        let c = self.clients.remove(id).expect("a fleet client");
        c.stop.cancel();
        let _ = tokio::time::timeout(WAIT, c.task).await;
    }

    /// `sync_wallets` carried out by `id`.
    pub fn syncs(&self, id: &str) -> u32 {
        self.clients[id].syncs.load(Ordering::SeqCst)
    }

    /// `update_config` commands `id` received.
    pub fn configs(&self, id: &str) -> u32 {
        self.clients[id].configs.load(Ordering::SeqCst)
    }

    /// Waits until the clients `ids` are connected with sessions other
    /// than the ones in `old`; returns their new sessions.
    pub async fn wait_moved(
        &self,
        ids: &[String],
        old: &HashMap<String, (String, String)>,
        within: Duration,
    ) -> BTreeMap<String, String> {
        super::poll_until(
            "the moved clients connected again",
            within,
            Duration::from_millis(20),
            async || {
                let now: BTreeMap<String, String> = ids
                    .iter()
                    .filter_map(|id| Some((id.clone(), self.session(id)?)))
                    .filter(|(id, s)| old.get(id).is_none_or(|(_, o)| o != s))
                    .collect();
                (now.len() == ids.len()).then_some(now)
            },
        )
        .await
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in self.clients.values() {
            c.stop.cancel();
            c.task.abort();
        }
    }
}
