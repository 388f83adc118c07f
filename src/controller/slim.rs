//! The slim store: a replica keeps the full object only for the resources
//! whose clients it holds. Every other resource is stored as what the
//! holder question needs — name, namespace, uid, resourceVersion,
//! generation, `spec.clientId` and `status.holder` — with a marker, and
//! the reconcile that finds its client connected here reads the full
//! object from the API first (one GET per connect). `managedFields` are
//! never kept: nothing here reads them.

use crate::crd::{CryptoClient, CryptoClientSpec, CryptoClientStatus};
use crate::streaming::StreamingHandle;

/// What the store keeps of `obj`: all of it (without `managedFields`)
/// when its client is connected here, else the slim copy.
pub(crate) fn stored(handle: &StreamingHandle, obj: &CryptoClient) -> CryptoClient {
    if handle.session(obj.client_id()).is_some() {
        let mut full = obj.clone();
        full.metadata.managed_fields = None;
        return full;
    }
    slim(obj)
}

/// The slim copy of `obj`.
pub(crate) fn slim(obj: &CryptoClient) -> CryptoClient {
    let m = &obj.metadata;
    let mut out = CryptoClient::new(
        m.name.as_deref().unwrap_or_default(),
        CryptoClientSpec {
            client_id: Some(obj.client_id().to_owned()),
            ..CryptoClientSpec::default()
        },
    );
    out.metadata.namespace.clone_from(&m.namespace);
    out.metadata.uid.clone_from(&m.uid);
    out.metadata
        .resource_version
        .clone_from(&m.resource_version);
    out.metadata.generation = m.generation;
    out.metadata
        .deletion_timestamp
        .clone_from(&m.deletion_timestamp);
    // The marker: a full copy keeps `None` here (see `stored`), and the
    // API server leaves an empty list out.
    out.metadata.managed_fields = Some(Vec::new());
    out.status = obj.status.as_ref().map(|s| CryptoClientStatus {
        holder: s.holder.clone(),
        ..CryptoClientStatus::default()
    });
    out
}

/// Whether `obj` is a slim copy.
pub(crate) fn is_slim(obj: &CryptoClient) -> bool {
    obj.metadata
        .managed_fields
        .as_ref()
        .is_some_and(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Holder, Phase};
    use std::collections::BTreeMap;

    #[test]
    fn a_slim_copy_keeps_what_the_holder_question_needs_and_nothing_else() {
        let mut o = CryptoClient::new(
            "eth",
            CryptoClientSpec {
                client_id: Some("eth-1".into()),
                paused: true,
                config: BTreeMap::from([("region".into(), "eu".into())]),
                ..Default::default()
            },
        );
        o.metadata.namespace = Some("prod".into());
        o.metadata.uid = Some("u-1".into());
        o.metadata.resource_version = Some("42".into());
        o.metadata.generation = Some(3);
        let holder = Holder {
            replica: "a".into(),
            session_id: "s-1".into(),
            since: crate::controller::status::time_precise(std::time::SystemTime::UNIX_EPOCH),
        };
        o.status = Some(CryptoClientStatus {
            phase: Some(Phase::Connected),
            holder: Some(holder.clone()),
            applied_config_hash: Some("h".into()),
            ..Default::default()
        });
        let s = slim(&o);
        assert!(is_slim(&s) && !is_slim(&o));
        assert_eq!(s.client_id(), "eth-1");
        assert_eq!(s.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(s.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(s.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(s.metadata.generation, Some(3));
        assert_eq!(
            s.status.as_ref().and_then(|x| x.holder.clone()),
            Some(holder)
        );
        assert!(s.spec.config.is_empty() && !s.spec.paused);
        assert_eq!(s.status.as_ref().and_then(|x| x.phase), None);
        let full = serde_json::to_vec(&o).unwrap().len();
        let small = serde_json::to_vec(&s).unwrap().len();
        assert!(small < full, "{small} < {full}");
    }
}
