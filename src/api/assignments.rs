use crate::error::{Error, Result, Code};
use crate::pb::v1::*;
use crate::rpc::Ctx;
fn unimpl<T>() -> Result<T> { Err(Error::new(Code::Unimplemented, "not yet")) }
pub fn create(_c: &mut Ctx, _r: CreateAssignmentRequest) -> Result<CreateAssignmentResponse> { unimpl() }
pub fn get(_c: &mut Ctx, _r: GetAssignmentRequest) -> Result<GetAssignmentResponse> { unimpl() }
pub fn list(_c: &mut Ctx, _r: ListAssignmentsRequest) -> Result<ListAssignmentsResponse> { unimpl() }
pub fn update(_c: &mut Ctx, _r: UpdateAssignmentRequest) -> Result<UpdateAssignmentResponse> { unimpl() }
pub fn rebind(_c: &mut Ctx, _r: RebindAssignmentRequest) -> Result<RebindAssignmentResponse> { unimpl() }
pub fn delete(_c: &mut Ctx, _r: DeleteAssignmentRequest) -> Result<DeleteAssignmentResponse> { unimpl() }
pub fn resolve(_c: &mut Ctx, _r: ResolveProxyRequest) -> Result<ResolveProxyResponse> { unimpl() }
