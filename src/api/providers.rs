use crate::error::{Error, Result, Code};
use crate::pb::v1::*;
use crate::rpc::Ctx;
fn unimpl<T>() -> Result<T> { Err(Error::new(Code::Unimplemented, "not yet")) }
pub fn connect(_c: &mut Ctx, _r: ConnectProviderRequest) -> Result<ConnectProviderResponse> { unimpl() }
pub fn get(_c: &mut Ctx, _r: GetProviderRequest) -> Result<GetProviderResponse> { unimpl() }
pub fn list(_c: &mut Ctx, _r: ListProvidersRequest) -> Result<ListProvidersResponse> { unimpl() }
pub fn update(_c: &mut Ctx, _r: UpdateProviderRequest) -> Result<UpdateProviderResponse> { unimpl() }
pub fn disconnect(_c: &mut Ctx, _r: DisconnectProviderRequest) -> Result<DisconnectProviderResponse> { unimpl() }
pub fn rotate_workspace_key(_c: &mut Ctx, _r: RotateWorkspaceKeyRequest) -> Result<RotateWorkspaceKeyResponse> { unimpl() }
pub fn verify_all_data_keys(_c: &rusqlite::Connection, _k: &crate::crypto::Keyring) -> Result<usize> { Ok(0) }
