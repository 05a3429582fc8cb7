//! One classification of failures for both transports: the gRPC control
//! plane maps an `ErrorClass` to a `tonic::Code`, the webhook side to an
//! HTTP status, so the same failure reads the same everywhere.

/// What kind of failure an error is, independent of transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    /// A backend (the store) could not do its work now; retrying may help.
    Unavailable,
    Internal,
}

impl ErrorClass {
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorClass::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorClass::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorClass::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorClass::NotFound => tonic::Code::NotFound,
            ErrorClass::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorClass::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorClass::Unavailable => tonic::Code::Unavailable,
            ErrorClass::Internal => tonic::Code::Internal,
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::InvalidArgument => 400,
            ErrorClass::Unauthenticated => 401,
            ErrorClass::PermissionDenied => 403,
            ErrorClass::NotFound => 404,
            ErrorClass::AlreadyExists | ErrorClass::FailedPrecondition => 409,
            ErrorClass::Unavailable => 503,
            ErrorClass::Internal => 500,
        }
    }
}

/// Failures of the store. Messages name the thing and never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::NotFound(_) => ErrorClass::NotFound,
            StoreError::AlreadyExists(_) => ErrorClass::AlreadyExists,
            StoreError::FailedPrecondition(_) => ErrorClass::FailedPrecondition,
            StoreError::InvalidArgument(_) => ErrorClass::InvalidArgument,
            StoreError::Unavailable(_) => ErrorClass::Unavailable,
            StoreError::Corrupt(_) => ErrorClass::Internal,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound(what.into())
    }
}

impl From<StoreError> for tonic::Status {
    fn from(error: StoreError) -> Self {
        tonic::Status::new(error.class().grpc_code(), error.to_string())
    }
}
