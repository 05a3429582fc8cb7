//! One classification of failures for both transports, and the one table
//! that maps it: an `ErrorClass` has exactly one gRPC `Code` (the control
//! plane) and one HTTP status (the webhook side), so the same failure reads
//! the same everywhere. Every subsystem error (`StoreError` here,
//! `IntakeError` in the daemon) says its class; no handler picks a code or a
//! status on its own.
//!
//! The line that matters most to Zoom: only `Unavailable` (the store is
//! unreachable or busy) answers 503 / UNAVAILABLE, which invites a retry.
//! Stored data that cannot be decoded is `Internal` (500 / INTERNAL): no
//! retry will fix it, so it must not be presented as one that might.

/// What kind of failure an error is, independent of transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    /// A request larger than a configured limit.
    ResourceExhausted,
    /// A request that did not arrive within its time limit.
    DeadlineExceeded,
    /// A backend (the store) could not do its work now; retrying may help.
    Unavailable,
    /// A fault no retry fixes, such as a stored record that cannot be decoded.
    Internal,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 10] = [
        ErrorClass::InvalidArgument,
        ErrorClass::Unauthenticated,
        ErrorClass::PermissionDenied,
        ErrorClass::NotFound,
        ErrorClass::AlreadyExists,
        ErrorClass::FailedPrecondition,
        ErrorClass::ResourceExhausted,
        ErrorClass::DeadlineExceeded,
        ErrorClass::Unavailable,
        ErrorClass::Internal,
    ];

    /// The mapping table: each class's gRPC code and HTTP status.
    pub fn codes(self) -> (tonic::Code, u16) {
        use tonic::Code;
        match self {
            ErrorClass::InvalidArgument => (Code::InvalidArgument, 400),
            ErrorClass::Unauthenticated => (Code::Unauthenticated, 401),
            ErrorClass::PermissionDenied => (Code::PermissionDenied, 403),
            ErrorClass::NotFound => (Code::NotFound, 404),
            ErrorClass::AlreadyExists => (Code::AlreadyExists, 409),
            ErrorClass::FailedPrecondition => (Code::FailedPrecondition, 409),
            ErrorClass::ResourceExhausted => (Code::ResourceExhausted, 413),
            ErrorClass::DeadlineExceeded => (Code::DeadlineExceeded, 408),
            ErrorClass::Unavailable => (Code::Unavailable, 503),
            ErrorClass::Internal => (Code::Internal, 500),
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        self.codes().0
    }

    pub fn http_status(self) -> u16 {
        self.codes().1
    }

    /// Whether the same request may succeed later unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Unavailable)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_has_one_code_and_one_status_and_only_unavailable_invites_a_retry() {
        let table: Vec<_> = ErrorClass::ALL.iter().map(|c| (*c, c.codes())).collect();
        assert_eq!(
            table,
            vec![
                (
                    ErrorClass::InvalidArgument,
                    (tonic::Code::InvalidArgument, 400)
                ),
                (
                    ErrorClass::Unauthenticated,
                    (tonic::Code::Unauthenticated, 401)
                ),
                (
                    ErrorClass::PermissionDenied,
                    (tonic::Code::PermissionDenied, 403)
                ),
                (ErrorClass::NotFound, (tonic::Code::NotFound, 404)),
                (ErrorClass::AlreadyExists, (tonic::Code::AlreadyExists, 409)),
                (
                    ErrorClass::FailedPrecondition,
                    (tonic::Code::FailedPrecondition, 409)
                ),
                (
                    ErrorClass::ResourceExhausted,
                    (tonic::Code::ResourceExhausted, 413)
                ),
                (
                    ErrorClass::DeadlineExceeded,
                    (tonic::Code::DeadlineExceeded, 408)
                ),
                (ErrorClass::Unavailable, (tonic::Code::Unavailable, 503)),
                (ErrorClass::Internal, (tonic::Code::Internal, 500)),
            ]
        );
        let retryable: Vec<_> = ErrorClass::ALL
            .into_iter()
            .filter(|c| c.is_retryable())
            .collect();
        assert_eq!(retryable, vec![ErrorClass::Unavailable]);
        // Distinct classes never share a gRPC code.
        let mut codes: Vec<_> = ErrorClass::ALL
            .iter()
            .map(|c| c.grpc_code() as i32)
            .collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ErrorClass::ALL.len());
    }

    #[test]
    fn store_errors_keep_their_class_on_the_wire() {
        let cases = [
            (StoreError::not_found("job j"), tonic::Code::NotFound, 404),
            (
                StoreError::AlreadyExists("x".into()),
                tonic::Code::AlreadyExists,
                409,
            ),
            (
                StoreError::FailedPrecondition("x".into()),
                tonic::Code::FailedPrecondition,
                409,
            ),
            (
                StoreError::InvalidArgument("x".into()),
                tonic::Code::InvalidArgument,
                400,
            ),
            (
                StoreError::Unavailable("busy".into()),
                tonic::Code::Unavailable,
                503,
            ),
            (
                StoreError::Corrupt("bad row".into()),
                tonic::Code::Internal,
                500,
            ),
        ];
        for (error, code, status) in cases {
            let message = error.to_string();
            assert_eq!(error.class().http_status(), status, "{message}");
            let grpc = tonic::Status::from(error);
            assert_eq!(grpc.code(), code, "{message}");
            assert_eq!(grpc.message(), message);
        }
    }
}
