//! Retry hints on the wire: a refusal that will succeed later (the
//! registration rate, the flap bound) carries how long the client should
//! wait, as gRFC A6's server pushback trailer, which any gRPC client can
//! read from the status metadata.

use std::time::Duration;

/// The gRPC metadata key of a retry hint (gRFC A6's server pushback): how
/// many milliseconds the client should wait before trying again.
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// Sets the retry hint on `status`.
pub fn with_retry_hint(mut status: tonic::Status, after: Duration) -> tonic::Status {
    let ms = after.as_millis().max(1).to_string();
    if let Ok(v) = ms.parse() {
        status.metadata_mut().insert(RETRY_PUSHBACK, v);
    }
    status
}

/// The retry hint a status carries.
pub fn retry_hint(status: &tonic::Status) -> Option<Duration> {
    let ms: u64 = status
        .metadata()
        .get(RETRY_PUSHBACK)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_hint_round_trips_in_the_status_metadata() {
        let s = with_retry_hint(
            tonic::Status::resource_exhausted("busy"),
            Duration::from_millis(1500),
        );
        assert_eq!(retry_hint(&s), Some(Duration::from_millis(1500)));
        assert_eq!(retry_hint(&tonic::Status::unavailable("x")), None);
    }
}
