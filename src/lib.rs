//! crypto-operator: a control plane for fleets of external crypto clients
//! that each hold one gRPC bidirectional stream to the operator.
//!
//! Direction of use: `cli -> server -> {http, metrics} -> streaming -> {handlers,
//! commands} -> proto`. The streaming core knows nothing of Kubernetes; other
//! components reach connected clients only through [`streaming::StreamingHandle`].

pub mod cli;
pub mod client;
pub mod commands;
pub mod handlers;
pub mod http;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod streaming;
pub mod time;
