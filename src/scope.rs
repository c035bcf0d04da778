//! Tenant scope in one place: every request type says which workspace it
//! acts on, and `Principal::check` decides once, before any handler runs,
//! whether the caller's key may act there. Handlers read the checked
//! workspace from `Ctx::ws()`; a new method cannot compile without saying
//! its scope, because the method table requires `Scoped`.

use crate::pb::v1::*;

/// What a request names.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A workspace by `workspace_id` (required): the key must belong to it,
    /// or be ADMIN.
    Workspace(&'a [u8]),
    /// API keys: an empty `workspace_id` means the ADMIN keys, which only an
    /// ADMIN key may see, create or revoke; otherwise as `Workspace`.
    WorkspaceOrAdminKeys(&'a [u8]),
    /// The instance (CreateWorkspace, ListWorkspaces): the role decides.
    Instance,
}

pub trait Scoped {
    fn scope(&self) -> Scope<'_>;
}

/// Request types that act on the workspace their `workspace_id` names.
macro_rules! workspace_scoped {
    ($($t:ty),* $(,)?) => {$(
        impl Scoped for $t {
            fn scope(&self) -> Scope<'_> {
                Scope::Workspace(&self.workspace_id)
            }
        }
    )*};
}

workspace_scoped!(
    GetWorkspaceRequest,
    UpdateWorkspaceRequest,
    DeleteWorkspaceRequest,
    ConnectProviderRequest,
    GetProviderRequest,
    ListProvidersRequest,
    UpdateProviderRequest,
    DisconnectProviderRequest,
    SyncProviderRequest,
    CreatePoolRequest,
    GetPoolRequest,
    ListPoolsRequest,
    UpdatePoolRequest,
    DeletePoolRequest,
    CreateSessionRequest,
    BulkCreateSessionsRequest,
    GetSessionRequest,
    BatchGetSessionsRequest,
    ListSessionsRequest,
    UpdateSessionRequest,
    DeleteSessionRequest,
    ReportSessionResultRequest,
    CreateAssignmentRequest,
    GetAssignmentRequest,
    ListAssignmentsRequest,
    UpdateAssignmentRequest,
    RebindAssignmentRequest,
    DeleteAssignmentRequest,
    ResolveProxyRequest,
    RotateWorkspaceKeyRequest,
    GetPoolStatsRequest,
);

// The exceptions, each said once.

impl Scoped for CreateWorkspaceRequest {
    fn scope(&self) -> Scope<'_> {
        Scope::Instance
    }
}

/// ADMIN: every workspace; any other key: its own (the handler narrows).
impl Scoped for ListWorkspacesRequest {
    fn scope(&self) -> Scope<'_> {
        Scope::Instance
    }
}

impl Scoped for CreateApiKeyRequest {
    fn scope(&self) -> Scope<'_> {
        Scope::WorkspaceOrAdminKeys(&self.workspace_id)
    }
}

impl Scoped for ListApiKeysRequest {
    fn scope(&self) -> Scope<'_> {
        Scope::WorkspaceOrAdminKeys(&self.workspace_id)
    }
}

impl Scoped for RevokeApiKeyRequest {
    fn scope(&self) -> Scope<'_> {
        Scope::WorkspaceOrAdminKeys(&self.workspace_id)
    }
}
