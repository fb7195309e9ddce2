//! The `nhi-drift` binary; everything lives in the library's [`nhi_drift::cli`].

fn main() -> std::process::ExitCode {
    nhi_drift::cli::main()
}
