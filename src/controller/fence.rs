//! Fenced status writes: every write says, in the same request, who may
//! make it, so no replica ever writes the status of a client it does not
//! hold. A holder's writes are JSON Patches whose `test` operations assert
//! that `status.holder` is still its own session; a claim (or the first
//! status of a resource) asserts the `resourceVersion` the decision was
//! made on. A failed assertion (422, or 409) writes nothing: the caller
//! learns the resource changed hands.

use crate::crd::{CryptoClient, CryptoClientStatus, Holder};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// What a status write asserts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fence<'a> {
    /// `status.holder` is still this one.
    Holder(&'a Holder),
    /// Nothing changed since this `resourceVersion`.
    Version(&'a str),
}

/// How a fenced write went.
pub(crate) enum Written {
    /// Accepted.
    Accepted,
    /// The assertion failed: nothing was written.
    Fenced,
}

/// The JSON Patch of a fenced write of `status`.
pub(crate) fn patch(
    status: &CryptoClientStatus,
    fence: Fence<'_>,
) -> Result<Value, serde_json::Error> {
    let mut ops = match fence {
        Fence::Holder(h) => vec![
            json!({"op": "test", "path": "/status/holder/replica", "value": h.replica}),
            json!({"op": "test", "path": "/status/holder/sessionId", "value": h.session_id}),
        ],
        Fence::Version(rv) => {
            vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})]
        }
    };
    ops.push(json!({"op": "add", "path": "/status", "value": serde_json::to_value(status)?}));
    Ok(Value::Array(ops))
}

/// Writes `status` on `name`'s `/status` if `fence` holds.
pub(crate) async fn write(
    api: &Api<CryptoClient>,
    name: &str,
    status: &CryptoClientStatus,
    fence: Fence<'_>,
) -> Result<Written, super::Error> {
    let ops: json_patch::Patch = serde_json::from_value(patch(status, fence)?)?;
    let params = PatchParams {
        field_manager: Some(super::FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match api
        .patch_status(name, &params, &Patch::Json::<()>(ops))
        .await
    {
        Ok(_) => Ok(Written::Accepted),
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => Ok(Written::Fenced),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_asserts_its_session_and_a_claim_the_version() {
        let h = Holder {
            replica: "a".into(),
            session_id: "s-1".into(),
            since: super::super::status::time_precise(std::time::SystemTime::UNIX_EPOCH),
        };
        let st = CryptoClientStatus::default();
        let p = patch(&st, Fence::Holder(&h)).unwrap();
        assert_eq!(
            p[0],
            json!({"op": "test", "path": "/status/holder/replica", "value": "a"})
        );
        assert_eq!(p[1]["value"], "s-1");
        assert_eq!(p[2]["op"], "add");
        let p = patch(&st, Fence::Version("42")).unwrap();
        assert_eq!(
            p[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        assert_eq!(p.as_array().unwrap().len(), 2);
    }
}
