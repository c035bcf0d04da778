use crate::error::{Error, Result, Code};
use crate::pb::v1::*;
use crate::rpc::Ctx;
fn unimpl<T>() -> Result<T> { Err(Error::new(Code::Unimplemented, "not yet")) }
pub fn create(_c: &mut Ctx, _r: CreatePoolRequest) -> Result<CreatePoolResponse> { unimpl() }
pub fn get(_c: &mut Ctx, _r: GetPoolRequest) -> Result<GetPoolResponse> { unimpl() }
pub fn list(_c: &mut Ctx, _r: ListPoolsRequest) -> Result<ListPoolsResponse> { unimpl() }
pub fn update(_c: &mut Ctx, _r: UpdatePoolRequest) -> Result<UpdatePoolResponse> { unimpl() }
pub fn delete(_c: &mut Ctx, _r: DeletePoolRequest) -> Result<DeletePoolResponse> { unimpl() }
