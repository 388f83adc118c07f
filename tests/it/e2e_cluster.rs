//! The control-plane scenarios of tests/controller.rs against a REAL
//! Kubernetes cluster. They need one, so they are `#[ignore]`d by default
//! and reported as ignored (not passed) by `cargo test`. Run them with
//!
//! ```sh
//! kind create cluster --name crypto
//! kind get kubeconfig --name crypto > /tmp/kind.kubeconfig
//! CRYPTO_E2E_KUBECONFIG=/tmp/kind.kubeconfig cargo test --test it e2e_cluster -- --ignored --test-threads=1
//! ```
//!
//! Each test installs the CRD (server-side apply), creates its own
//! namespace, runs the operator in-process against the cluster (gRPC on
//! 127.0.0.1) and deletes the namespace at the end.

use crate::support;

use crypto_operator::controller::ControllerConfig;
use crypto_operator::crd::CryptoClient;
use crypto_operator::server::{self, ClusterConfig, Mode, Running, ServerConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use std::time::Duration;
use support::cluster::{self, Cluster};
use support::*;

struct RealCluster {
    client: kube::Client,
    ns: String,
}

impl RealCluster {
    async fn connect() -> Self {
        let path = std::env::var("CRYPTO_E2E_KUBECONFIG")
            .expect("CRYPTO_E2E_KUBECONFIG names a kubeconfig");
        let kc = Kubeconfig::read_from(&path).expect("kubeconfig readable");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig loads");
        let client = kube::Client::try_from(config).expect("client");
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
        crds.patch(
            "cryptoclients.crypto.fleet.dev",
            &PatchParams::apply("crypto-operator-e2e").force(),
            &Patch::Apply(CryptoClient::crd()),
        )
        .await
        .expect("CRD installed");
        let ns = format!("crypto-e2e-{:08x}", fastrand::u32(..));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .expect("namespace created");
        Self { client, ns }
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &kube::api::ApiResource::erase::<CryptoClient>(&()),
        )
    }

    async fn start(&self) -> Running {
        let running = server::start(ServerConfig {
            mode: Mode::Cluster(ClusterConfig {
                client: self.client.clone(),
                controller: ControllerConfig {
                    namespaces: vec![self.ns.clone()],
                    status_heartbeat_interval: Duration::from_secs(30),
                    concurrency: 8,
                    api_timeout: crypto_operator::controller::DEFAULT_API_TIMEOUT,
                    ..ControllerConfig::default()
                },
            }),
            ..test_config(calm_config())
        })
        .await
        .expect("server starts");
        let what = "the operator reports ready";
        poll_until(
            what,
            Duration::from_secs(30),
            Duration::from_millis(50),
            async || running.ready.not_ready().is_none().then_some(()),
        )
        .await;
        running
    }

    async fn cleanup(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
    }
}

impl Cluster for RealCluster {
    fn namespace(&self) -> &str {
        &self.ns
    }

    async fn create_cc(&self, name: &str, spec: Value) {
        let obj: DynamicObject = serde_json::from_value(cluster::cc(&self.ns, name, spec)).unwrap();
        self.api()
            .create(&PostParams::default(), &obj)
            .await
            .expect("create");
    }

    async fn patch_spec(&self, name: &str, spec: Value) {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .expect("patch");
    }

    async fn delete_cc(&self, name: &str) {
        self.api()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    async fn get_cc(&self, name: &str) -> Option<Value> {
        let obj = self.api().get_opt(name).await.expect("get")?;
        Some(serde_json::to_value(obj).unwrap())
    }

    async fn wait_cc(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        // A real cluster: poll the API (each poll is one GET).
        let what = format!("{name}: {what}");
        poll_until(&what, limit * 3, Duration::from_millis(100), async || {
            self.get_cc(name).await.filter(|v| pred(v))
        })
        .await
    }
}

macro_rules! e2e {
    ($name:ident, $scenario:path) => {
        #[tokio::test]
        #[ignore = "needs a real cluster: set CRYPTO_E2E_KUBECONFIG and pass --ignored"]
        async fn $name() {
            let k = RealCluster::connect().await;
            let running = k.start().await;
            $scenario(&k, running.grpc_addr).await;
            running.stop().await.unwrap();
            k.cleanup().await;
        }
    };
}

e2e!(pause_and_resume, cluster::pause_and_resume);
e2e!(config_change, cluster::config_change);
e2e!(sync_once, cluster::sync_once);
e2e!(offline_then_connect, cluster::offline_then_connect);
e2e!(
    unknown_refused_and_delete_ends_session,
    cluster::unknown_refused_and_delete_ends_session
);
