//! A kubeconfig pointing at the fake, and a `kube::Client` built from it.

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::net::SocketAddr;

/// Context, cluster and user name in the kubeconfig.
pub const CONTEXT: &str = "fake-kube";
/// The kubeconfig's default namespace.
pub const NAMESPACE: &str = "default";
/// The dummy bearer token (the fake accepts any request).
pub const TOKEN: &str = "fake-kube-token";

/// Kubeconfig YAML: `server: http://{addr}`, a dummy token, current
/// context with namespace `default`.
pub fn yaml(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: http://{addr}
users:
- name: {CONTEXT}
  user:
    token: {TOKEN}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: {NAMESPACE}
current-context: {CONTEXT}
preferences: {{}}
"
    )
}

/// A client configured from [`yaml`] (default retries for 429/503/504 stay on).
pub async fn client(yaml: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(yaml).expect("fake kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("fake kubeconfig loads");
    kube::Client::try_from(config).expect("kube client builds")
}
