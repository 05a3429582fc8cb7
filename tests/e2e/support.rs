//! What every test module imports: the shared fixtures of
//! `ferry-test-support`, and the one assertion helper the modules share.

use tonic::Code;

pub use ferry_test_support::control_plane::*;
pub use ferry_test_support::daemon::*;
pub use ferry_test_support::scene::{ACCOUNT, Scene};
pub use ferry_test_support::{GIB, MIB};

/// Asserts a gRPC failure's code and that its message mentions `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    needle: &str,
) {
    match result {
        Ok(value) => panic!("expected {code:?} mentioning {needle:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            assert!(
                status.message().contains(needle),
                "status message {:?} should mention {needle:?}",
                status.message()
            );
        }
    }
}
