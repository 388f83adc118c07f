//! Headers of a call forwarded from one replica to the one holding the
//! client (the peer service, `crypto.v1.PeerService`): the marker that
//! makes it a forwarded call, never forwarded again, and the answer of a
//! replica that does not hold the client.

/// Request header naming the replica that forwarded the call.
pub const FORWARDED_BY: &str = "x-crypto-forwarded-by";

/// Trailer of the FAILED_PRECONDITION a replica answers a forwarded call
/// with when it does not hold the client.
pub const NOT_HOLDER: &str = "x-crypto-not-holder";

/// The answer to a forwarded call for a client not held here.
pub fn not_holder(client_id: &str, me: &str) -> tonic::Status {
    let mut s = tonic::Status::failed_precondition(format!(
        "replica {me} does not hold client {client_id} (a forwarded call is not forwarded again)"
    ));
    s.metadata_mut().insert(
        NOT_HOLDER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    s
}

/// Whether `status` is [`not_holder`]'s.
pub fn is_not_holder(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition && status.metadata().get(NOT_HOLDER).is_some()
}

/// Whether a request carries [`FORWARDED_BY`].
pub fn is_forwarded(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata.get(FORWARDED_BY).is_some()
}
