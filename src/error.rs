//! One error type for the whole server: a Connect code, the message the caller
//! sees, and (for `internal`) a cause that is logged but never sent.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Canceled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl Code {
    pub const ALL: [Code; 16] = [
        Code::Canceled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status the Connect protocol assigns to the code
    /// (connect-go's protocol_connect.go).
    pub fn http_status(self) -> u16 {
        match self {
            Code::Canceled => 499,
            Code::Unknown => 500,
            Code::InvalidArgument => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::FailedPrecondition => 400,
            Code::Aborted => 409,
            Code::OutOfRange => 400,
            Code::Unimplemented => 501,
            Code::Internal => 500,
            Code::Unavailable => 503,
            Code::DataLoss => 500,
            Code::Unauthenticated => 401,
        }
    }
}

#[derive(Debug)]
pub struct Error {
    pub code: Code,
    pub message: String,
    /// Seconds, sent as `Retry-After` with resource_exhausted.
    pub retry_after: Option<u64>,
    /// Logged with the request id; never sent.
    pub cause: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const MSG_UNAUTHENTICATED: &str =
    "The request lacks a valid API key in the Authorization header.";
pub const MSG_PERMISSION_DENIED: &str =
    "The API key is not allowed to perform this action on this workspace.";
pub const MSG_INTERNAL: &str = "An internal server error occurred.";
pub const MSG_RATE_LIMITED: &str = "The request was rate limited. Slow down and retry later.";

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            Code::NotFound,
            format!("The requested {what} does not exist in this workspace."),
        )
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }
    pub fn unauthenticated() -> Self {
        Self::new(Code::Unauthenticated, MSG_UNAUTHENTICATED)
    }
    pub fn denied() -> Self {
        Self::new(Code::PermissionDenied, MSG_PERMISSION_DENIED)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        Error {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(Code::ResourceExhausted, MSG_RATE_LIMITED)
        }
    }
    pub fn version_mismatch(expected: i64, stored: i64) -> Self {
        Self::new(
            Code::Aborted,
            format!("expected_version {expected} does not match the stored version {stored}."),
        )
    }
    pub fn deadline() -> Self {
        Self::new(
            Code::DeadlineExceeded,
            "The request could not finish within Connect-Timeout-Ms; nothing was changed.",
        )
    }
    /// An unexpected failure: the caller sees a generic message, the cause is
    /// logged.
    pub fn internal(cause: impl fmt::Display) -> Self {
        Error {
            cause: Some(cause.to_string()),
            ..Self::new(Code::Internal, MSG_INTERNAL)
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    /// The Connect error body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::json!({"code": self.code.as_str(), "message": self.message})
            .to_string()
            .into_bytes()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// Storage errors map to codes in this one place. Handlers check the rules
/// they can name (a taken token, a taken account name) with a precise message
/// first; this is the backstop.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    return Error::unavailable("The database is busy; retry in a moment.")
                }
                // The transaction rolled back: nothing of the call was kept.
                ErrorCode::DiskFull => {
                    return Error {
                        cause: Some(format!("sqlite: {e}")),
                        ..Error::new(
                            Code::ResourceExhausted,
                            "The server's disk is full, so nothing was written; free space on the server and retry.",
                        )
                    }
                }
                ErrorCode::ConstraintViolation => {
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    {
                        return Error::exists(
                            "A resource with these unique fields already exists.",
                        );
                    }
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY {
                        return Error::precondition(
                            "The request refers to a resource that no longer exists.",
                        );
                    }
                }
                _ => {}
            }
        }
        Error::internal(format!("sqlite: {e}"))
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error {
            cause: Some(format!("pool: {e}")),
            ..Error::unavailable("The database is busy; retry in a moment.")
        }
    }
}
