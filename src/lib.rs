//! crypto-operator: a control plane for fleets of external crypto clients
//! that each hold one gRPC bidirectional stream to the operator.
//!
//! Without the default `server` feature the crate is the client SDK: the
//! protocol types and client stubs ([`proto`]), the SDK ([`client`]) and
//! two small helpers ([`time`], [`secret`]).
//!
//! Direction of use (each module uses only those below it; the list is
//! checked by `tests/layers.py`, and docs/ARCHITECTURE.md explains it):
//!
//! ```text
//! cli        -> server api centrifugo controller crd auth streaming commands proto secret
//! server     -> api centrifugo controller http market peer auth tls streaming metrics proto
//! peer       -> controller crd market streaming metrics backoff proto
//! api        -> streaming commands paging proto secret
//! centrifugo -> streaming commands metrics backoff proto time
//! controller -> streaming crd commands metrics backoff proto
//! market     -> streaming metrics paging proto
//! http       -> metrics
//! auth       -> streaming
//! streaming  -> tls commands metrics paging proto time
//! client     -> backoff proto time
//! tls        ->
//! commands   -> proto time
//! crd        ->
//! metrics    ->
//! paging     ->
//! backoff    ->
//! proto      ->
//! secret     ->
//! time       ->
//! ```
//!
//! The streaming core knows nothing of Kubernetes; other components reach
//! connected clients only through [`streaming::StreamingHandle`].

pub mod backoff;
pub mod client;
pub mod proto;
pub mod secret;
pub mod time;

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod centrifugo;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod commands;
#[cfg(feature = "server")]
pub mod controller;
#[cfg(feature = "server")]
pub mod crd;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod market;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod paging;
#[cfg(feature = "server")]
pub mod peer;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod streaming;
#[cfg(feature = "server")]
pub mod tls;
