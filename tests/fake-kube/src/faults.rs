//! Network-level faults matched by the caller's User-Agent: a replica cut
//! off from the API server (its requests fail or hang), a whole API
//! outage, or status writes held back so that racing writers arrive
//! together. A hung request is not lost: when the fault heals it is
//! applied, late, like a packet stuck in the network, and answered if its
//! caller still listens.

/// What a matching request meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// Answered at once with this HTTP status (and a `Status` body).
    Fail(u16),
    /// Held, unanswered, until the fault heals; then applied.
    Hang,
}

/// One active fault.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Requests whose User-Agent contains this (all requests: `None`).
    pub user_agent: Option<String>,
    /// Only PATCHes of `/status` subresources.
    pub status_writes_only: bool,
    pub outage: Outage,
}

impl Fault {
    /// Whether a request meets this fault.
    pub fn matches(&self, user_agent: &str, method: &str, path: &str) -> bool {
        self.user_agent
            .as_deref()
            .is_none_or(|ua| user_agent.contains(ua))
            && (!self.status_writes_only || (method == "PATCH" && path.ends_with("/status")))
    }
}

/// The first fault `user_agent` meets for this request.
pub fn find<'a>(
    faults: &'a [Fault],
    user_agent: &str,
    method: &str,
    path: &str,
) -> Option<&'a Fault> {
    faults.iter().find(|f| f.matches(user_agent, method, path))
}
