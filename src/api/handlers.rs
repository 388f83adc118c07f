//! The admin API's handlers and the route table they are served and
//! documented from.

use super::ApiState;
use super::endpoint::{JsonBody, Meta, NoBody, Params, Reply, ResponseDoc, Route, route};
use super::error::ApiError;
use super::types::{ClientList, CommandAccepted, CommandDone, CommandReply, CommandRequest};
use crate::proto::SessionState;
use crate::proto::json::{ClientInfo, ClientSummary};
use axum::http::{Method, StatusCode};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::sync::Arc;
use tracing::{Instrument, info, info_span, warn};

/// Every route below `/api/v1`.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        route(
            Meta {
                method: Method::GET,
                path: "/clients",
                operation_id: "listClients",
                summary: "List connected clients",
                description: "Summaries of the connected sessions (a snapshot without the \
                              wallet list), sorted by client id, one page at a time: pass the \
                              `continue` of one page to get the next; the last page has none. \
                              A page resumes strictly after the last client id of the previous \
                              one, so a client that connects mid-listing appears at most once \
                              and one connected throughout is never missed.",
                errors: &[(
                    400,
                    "A bad `limit`, `state` or `continue`, or an unknown parameter.",
                )],
                query: &[
                    ("limit", "Clients per page: 1 to 1000 (default 100)."),
                    (
                        "continue",
                        "The `continue` of the previous page (same filters).",
                    ),
                    ("state", "Only `connected` or only `stale` sessions."),
                    ("type", "Only clients of this client type."),
                ],
            },
            list_clients,
        ),
        route(
            Meta {
                method: Method::GET,
                path: "/clients/{id}",
                operation_id: "getClient",
                summary: "Get one client",
                description: "The session snapshot of one client: registration, state, last \
                              heartbeat, ping round-trip time, counters, wallets, pending commands.",
                errors: &[(404, "The client is not connected.")],
                query: &[],
            },
            get_client,
        ),
        route(
            Meta {
                method: Method::POST,
                path: "/clients/{id}/commands",
                operation_id: "sendCommand",
                summary: "Send a command to a client",
                description: "Queues a command for the client and answers 202 with its id, or, \
                              with `wait`, waits for the client's ack and answers 200 with it. \
                              In cluster mode, pause, resume and update_config of a client \
                              managed by a CryptoClient resource are refused (409): change the \
                              resource instead.",
                errors: &[
                    (400, "The body is not a valid command."),
                    (404, "The client is not connected."),
                    (
                        409,
                        "The field is managed by a CryptoClient resource (named in the message).",
                    ),
                    (413, "The body is larger than 64 KiB."),
                    (
                        429,
                        "The client's command queue or pending-ack table is full; retry later.",
                    ),
                    (
                        503,
                        "With `wait`: the session ended before the ack arrived.",
                    ),
                    (504, "With `wait`: no ack within `timeout_ms`."),
                ],
                query: &[],
            },
            send_command,
        ),
        route(
            Meta {
                method: Method::GET,
                path: "/openapi.json",
                operation_id: "getOpenApi",
                summary: "This document",
                description: "The OpenAPI 3.0 document of this API, generated from the \
                              handlers' request and response types.",
                errors: &[],
                query: &[],
            },
            openapi,
        ),
    ]
}

impl Reply for ClientList {
    fn responses() -> Vec<ResponseDoc> {
        vec![ResponseDoc::of::<Self>(
            StatusCode::OK,
            "One page of connected clients.",
        )]
    }
}

impl Reply for ClientInfo {
    fn responses() -> Vec<ResponseDoc> {
        vec![ResponseDoc::of::<Self>(
            StatusCode::OK,
            "The client's session snapshot.",
        )]
    }
}

impl Reply for CommandReply {
    fn status(&self) -> StatusCode {
        match self {
            Self::Accepted(_) => StatusCode::ACCEPTED,
            Self::Done(_) => StatusCode::OK,
        }
    }
    fn responses() -> Vec<ResponseDoc> {
        vec![
            ResponseDoc::of::<CommandDone>(
                StatusCode::OK,
                "With `wait`: the client acked (`ack.success` says whether it carried the command out).",
            ),
            ResponseDoc::of::<CommandAccepted>(
                StatusCode::ACCEPTED,
                "Without `wait`: the command is queued.",
            ),
        ]
    }
}

/// The OpenAPI document (served as generated).
pub(crate) struct OpenApiDocument(pub(crate) Arc<serde_json::Value>);

impl Serialize for OpenApiDocument {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl JsonSchema for OpenApiDocument {
    fn schema_name() -> Cow<'static, str> {
        "OpenApiDocument".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "An OpenAPI 3.0 document."
        })
    }
}

impl Reply for OpenApiDocument {
    fn responses() -> Vec<ResponseDoc> {
        vec![ResponseDoc::of::<Self>(StatusCode::OK, "This document.")]
    }
}

async fn list_clients(st: ApiState, p: Params, _: NoBody) -> Result<ClientList, ApiError> {
    let limit = match p.query("limit") {
        None => 0,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit {v:?} is not a number from 1 to 1000"
                )));
            }
        },
    };
    let state = match p.query("state") {
        None | Some("") => SessionState::Unspecified,
        Some(s) if s.eq_ignore_ascii_case("connected") => SessionState::Connected,
        Some(s) if s.eq_ignore_ascii_case("stale") => SessionState::Stale,
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "state {s:?} is not connected or stale"
            )));
        }
    };
    let request = crate::proto::ListClientsRequest {
        page_size: limit,
        page_token: p.query("continue").unwrap_or("").to_owned(),
        state: state as i32,
        client_type: p.query("type").unwrap_or("").to_owned(),
    };
    let page = st
        .handle
        .list_anywhere(request, false)
        .await
        .map_err(|s| ApiError::from_status(&s))?;
    Ok(ClientList {
        clients: page.clients.iter().map(ClientSummary::from).collect(),
        continue_: page.next_token,
        partial: !page.missing.is_empty(),
        missing_replicas: page.missing,
    })
}

async fn get_client(st: ApiState, p: Params, _: NoBody) -> Result<ClientInfo, ApiError> {
    let id = p.get("id");
    let info = st
        .handle
        .snapshot_anywhere(id, false)
        .await
        .map_err(|s| match s.code() {
            tonic::Code::NotFound => ApiError::not_connected(id),
            _ => ApiError::from_status(&s),
        })?;
    Ok(ClientInfo::from(&info))
}

async fn send_command(
    st: ApiState,
    p: Params,
    JsonBody(req): JsonBody<CommandRequest>,
) -> Result<CommandReply, ApiError> {
    let client_id = p.get("id").to_owned();
    let (command, timeout) = req.to_command()?;
    let command_id = command.command_id.clone();
    let span = info_span!("api_command", client_id = %client_id, command_id = %command_id, kind = ?req.kind);
    async move {
        if st.handle.session(&client_id).is_none() && st.handle.has_remote() {
            // One hop to the replica holding the client.
            let done = st
                .handle
                .command_anywhere(&client_id, command, req.wait, timeout, false)
                .await
                .map_err(|s| {
                    warn!(error = %s.message(), "forwarded command refused or failed");
                    ApiError::from_status(&s)
                })?;
            info!(wait = req.wait, "command forwarded to the client's replica");
            return Ok(match done.ack {
                None => CommandReply::Accepted(CommandAccepted { command_id }),
                Some(ack) => CommandReply::Done(CommandDone {
                    command_id,
                    ack: (&ack).into(),
                }),
            });
        }
        let pending = st
            .handle
            .send_checked(&client_id, command, timeout)
            .map_err(|s| {
                warn!(error = %s.message(), "command refused");
                ApiError::from_status(&s)
            })?;
        info!(wait = req.wait, "command queued");
        if !req.wait {
            // The session tracks the ack and its timeout; nobody waits here.
            drop(pending);
            return Ok(CommandReply::Accepted(CommandAccepted { command_id }));
        }
        let ack = pending.ack().await.map_err(|e| {
            warn!(error = %e, "command failed");
            ApiError::from_command(e)
        })?;
        Ok(CommandReply::Done(CommandDone {
            command_id,
            ack: (&ack).into(),
        }))
    }
    .instrument(span)
    .await
}

async fn openapi(st: ApiState, _: Params, _: NoBody) -> Result<OpenApiDocument, ApiError> {
    Ok(OpenApiDocument(st.document.clone()))
}
