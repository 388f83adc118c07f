//! The integration tests, one binary (one link, `support/` compiled once),
//! a module per area. Real tonic servers and clients on 127.0.0.1, the real
//! `crypto-operator` binary, real Prometheus and promtool; the Kubernetes
//! API is the fake in `tests/fake-kube` (a test double). `e2e_cluster` runs
//! the controller's scenarios against a real cluster when
//! `CRYPTO_E2E_KUBECONFIG` is set (ignored otherwise).
//!
//! `cargo test --test it streaming::` runs one area. Without the `server`
//! feature (the SDK alone) there is nothing here to test.

#![cfg(feature = "server")]

mod support;

mod admin_api;
mod centrifugo;
mod cli;
mod controller;
mod crd;
mod e2e_cluster;
mod fake_kube;
mod market;
mod observability;
mod replicas;
mod replicas_market;
mod replicas_rebalance;
mod replicas_tls;
mod sdk;
mod security;
mod streaming;
mod tls;
