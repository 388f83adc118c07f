//! crypto-operator: a control plane for fleets of external crypto clients
//! that each hold one gRPC bidirectional stream to the operator.
//!
//! Direction of use: `cli -> server -> {http, metrics} -> streaming -> {handlers,
//! commands} -> proto`, and `server -> market -> streaming` (market data fed
//! from the core's event bus), `server -> {api, centrifugo} -> streaming` (the
//! admin REST API; real-time publishing fed from the event bus). The
//! streaming core knows nothing of Kubernetes; other components reach
//! connected clients only through [`streaming::StreamingHandle`].

pub mod api;
pub mod auth;
pub mod centrifugo;
pub mod cli;
pub mod client;
pub mod commands;
pub mod controller;
pub mod crd;
pub mod handlers;
pub mod http;
pub mod market;
pub mod metrics;
pub mod paging;
pub mod proto;
pub mod secret;
pub mod server;
pub mod streaming;
pub mod time;
pub mod tls;
