//! A real Prometheus server (Debian's `/usr/bin/prometheus`, installed by
//! tests/run.sh) scraping given targets every second with the shipped alert
//! rules, thresholds shortened for tests. Killed when dropped; its data
//! directory is removed.

use super::poll_until;
use super::process::{free_port, try_http_get, urlencode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// A running Prometheus.
pub struct Prometheus {
    pub addr: SocketAddr,
    pub child: tokio::process::Child,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` as job `crypto-operator`.
    pub fn start(targets: &[SocketAddr]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "crypto-prom-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rules.yaml"), test_rules()).unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yaml]\nscrape_configs:\n  - job_name: crypto-operator\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = tokio::process::Command::new("/usr/bin/prometheus")
            .current_dir(&dir)
            .args([
                "--config.file=prometheus.yml".to_string(),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("/usr/bin/prometheus runs (tests/run.sh installs it)");
        Self { addr, child, dir }
    }

    /// Polls an API path until `pred` holds (each poll is one HTTP
    /// request), failing after `limit`.
    pub async fn until(
        &self,
        path: &str,
        limit: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let what = format!("Prometheus {path} matches");
        let addr = self.addr;
        poll_until(&what, limit, Duration::from_millis(250), async || {
            let v = get(addr, path).await?;
            pred(&v).then_some(v)
        })
        .await
    }

    /// One API answer (`None` until Prometheus answers 200 with JSON).
    pub async fn get(&self, path: &str) -> Option<serde_json::Value> {
        get(self.addr, path).await
    }

    /// The result vector of an instant query (empty until it answers).
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        self.get(&path)
            .await
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Stops Prometheus with SIGTERM and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        tokio::time::timeout(super::WAIT, self.child.wait())
            .await
            .expect("Prometheus stops")
            .unwrap();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn get(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let (status, body) = try_http_get(addr, path).await.ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200).then_some(v)
}

/// Alerts named `alert` for `client` in `state` (pending, firing).
pub fn alerts(v: &serde_json::Value, alert: &str, client: &str, state: &str) -> usize {
    v["data"]["alerts"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|x| {
                x["labels"]["alertname"] == alert
                    && x["labels"]["client_id"] == client
                    && x["state"] == state
            })
            .count()
    })
}

/// The shipped alert rules with the stale threshold and the `for:` of the
/// per-client alerts shortened for tests; everything else as shipped.
pub fn test_rules() -> String {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/crypto-operator/files/alerts.yaml"
    ))
    .unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&src).unwrap();
    let rules = doc["groups"][0]["rules"].as_sequence_mut().unwrap();
    let stale = rules
        .iter_mut()
        .find(|r| r["alert"] == "CryptoClientHeartbeatStale")
        .expect("stale rule shipped");
    let expr = stale["expr"].as_str().unwrap().to_string();
    assert!(
        expr.contains("> 60"),
        "threshold in the shipped rule: {expr}"
    );
    stale["expr"] = expr.replace("> 60", "> 3").into();
    stale["for"] = "2s".into();
    let down = rules
        .iter_mut()
        .find(|r| r["alert"] == "CryptoClientDown")
        .expect("down rule shipped");
    down["for"] = "2s".into();
    serde_yaml::to_string(&doc).unwrap()
}
