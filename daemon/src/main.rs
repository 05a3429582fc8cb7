//! The `ferry` binary: flags, configuration, and exit codes; everything else
//! is library code in `ferry_daemon`.

fn main() -> std::process::ExitCode {
    ferry_daemon::cli::main()
}
