use crate::error::{Error, Result, Code};
use crate::pb::v1::*;
use crate::rpc::Ctx;
fn unimpl<T>() -> Result<T> { Err(Error::new(Code::Unimplemented, "not yet")) }
pub fn create(_c: &mut Ctx, _r: CreateSessionRequest) -> Result<CreateSessionResponse> { unimpl() }
pub fn bulk_create(_c: &mut Ctx, _r: BulkCreateSessionsRequest) -> Result<BulkCreateSessionsResponse> { unimpl() }
pub fn get(_c: &mut Ctx, _r: GetSessionRequest) -> Result<GetSessionResponse> { unimpl() }
pub fn batch_get(_c: &mut Ctx, _r: BatchGetSessionsRequest) -> Result<BatchGetSessionsResponse> { unimpl() }
pub fn list(_c: &mut Ctx, _r: ListSessionsRequest) -> Result<ListSessionsResponse> { unimpl() }
pub fn update(_c: &mut Ctx, _r: UpdateSessionRequest) -> Result<UpdateSessionResponse> { unimpl() }
pub fn delete(_c: &mut Ctx, _r: DeleteSessionRequest) -> Result<DeleteSessionResponse> { unimpl() }
pub fn report_result(_c: &mut Ctx, _r: ReportSessionResultRequest) -> Result<ReportSessionResultResponse> { unimpl() }
