//! The OpenAPI 3.0 document of the admin API, generated from the route
//! table (`handlers::routes`) and the JSON schemas of the types the
//! handlers take and return (schemars, in its OpenAPI 3.0 mode).

use super::PREFIX;
use super::endpoint::{Route, schema_of};
use super::error::ErrorBody;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// Errors every route can answer.
const COMMON_ERRORS: &[(u16, &str)] = &[(
    401,
    "No bearer token, or the wrong one (only when a token is configured).",
)];

/// Path parameters and their descriptions.
fn param_description(name: &str) -> &'static str {
    match name {
        "id" => "The client id (as it registered).",
        _ => "A path parameter.",
    }
}

/// The `{name}` parameters of a path template.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The document for `routes`.
pub(crate) fn document(routes: &[Route]) -> Value {
    // Responses are described as the server writes them, request bodies as
    // it reads them (optional fields, unknown fields refused).
    let mut out = SchemaSettings::openapi3().for_serialize().into_generator();
    let mut input = SchemaSettings::openapi3()
        .for_deserialize()
        .into_generator();
    let error = schema_of::<ErrorBody>(&mut out);
    let mut paths = Map::new();
    for r in routes {
        let mut responses = Map::new();
        for d in (r.responses)() {
            responses.insert(
                d.status.as_u16().to_string(),
                json!({
                    "description": d.description,
                    "content": {"application/json": {"schema": (d.schema)(&mut out)}},
                }),
            );
        }
        for (status, why) in COMMON_ERRORS.iter().chain(r.meta.errors) {
            responses.insert(
                status.to_string(),
                json!({
                    "description": why,
                    "content": {"application/json": {"schema": error}},
                }),
            );
        }
        let mut op = json!({
            "operationId": r.meta.operation_id,
            "summary": r.meta.summary,
            "description": r.meta.description,
            "tags": ["clients"],
            "responses": responses,
        });
        let params: Vec<Value> = path_params(r.meta.path)
            .into_iter()
            .map(|name| {
                json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "description": param_description(name),
                    "schema": {"type": "string"},
                })
            })
            .chain(r.meta.query.iter().map(|(name, description)| {
                json!({
                    "name": name,
                    "in": "query",
                    "required": false,
                    "description": description,
                    "schema": {"type": "string"},
                })
            }))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(schema) = (r.request)(&mut input) {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
        }
        let item = paths
            .entry(r.meta.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[r.meta.method.as_str().to_ascii_lowercase()] = op;
    }
    let mut schemas = out.take_definitions(true);
    for (name, schema) in input.take_definitions(true) {
        schemas.entry(name).or_insert(schema);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "crypto-operator admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Commands and session snapshots of the clients connected to \
                this operator. Every call needs `Authorization: Bearer <admin token>` \
                (except on a loopback address with no token configured). The API's own \
                fields are snake_case; embedded protobuf messages (snapshots, acks) use \
                protobuf's JSON mapping (lowerCamelCase, enum names, 64-bit integers as \
                strings, RFC 3339 times).",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "clients", "description": "Connected clients."}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::handlers::routes;
    use super::*;

    /// Every `$ref` in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn documents_every_route_and_resolves_every_ref() {
        let routes = routes();
        let doc = document(&routes);
        for r in &routes {
            let op = &doc["paths"][r.meta.path][r.meta.method.as_str().to_ascii_lowercase()];
            assert_eq!(op["operationId"], r.meta.operation_id);
            assert!(op["responses"]["401"].is_object());
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected ref {r}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} is not defined"
            );
        }
        let cmd = &doc["paths"]["/clients/{id}/commands"]["post"];
        assert!(cmd["responses"]["202"].is_object());
        assert!(cmd["responses"]["200"].is_object());
        assert_eq!(cmd["parameters"][0]["name"], "id");
        let req = &doc["components"]["schemas"]["CommandRequest"];
        assert_eq!(req["required"], json!(["type"]));
        assert_eq!(req["additionalProperties"], false);
        let info = &doc["components"]["schemas"]["ClientInfo"];
        assert!(info["properties"]["lastHeartbeat"].is_object());
        let codes: Vec<&Value> = doc["components"]["schemas"]["ErrorCode"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| v["enum"].as_array().unwrap())
            .collect();
        assert!(codes.contains(&&json!("managed_by_resource")), "{codes:?}");
        assert_eq!(codes.len(), 14);
    }
}
