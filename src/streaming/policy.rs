//! Who may connect and what operators may send them: the core's admission
//! hook. Standalone mode allows everything; cluster mode's policy is the
//! controller's resource index.

use super::series::ClientIdentity;
use crate::commands::CommandKind;
use crate::proto::ClientRegistration;
use tonic::Status;

/// Who may connect and what operators may send them. Standalone mode
/// allows everything; cluster mode admits only clients with a resource and
/// keeps pause, resume and config for the resource to decide.
pub trait ClientPolicy: Send + Sync + 'static {
    /// The registering client's identity, or the status to refuse it with.
    fn admit(
        &self,
        client_id: &str,
        registration: &ClientRegistration,
    ) -> Result<ClientIdentity, Status>;

    /// Whether an operator call (gRPC or admin API) may send a command of
    /// `kind` to `client_id`; the controller's own commands skip this.
    fn allow_command(&self, client_id: &str, kind: CommandKind) -> Result<(), Status>;
}

/// Allows everything (standalone mode).
pub struct AllowAll;

impl ClientPolicy for AllowAll {
    fn admit(&self, _: &str, _: &ClientRegistration) -> Result<ClientIdentity, Status> {
        Ok(ClientIdentity::default())
    }

    fn allow_command(&self, _: &str, _: CommandKind) -> Result<(), Status> {
        Ok(())
    }
}
