//! The payment service as a process of its own. Everything else is in the library.

fn main() -> std::process::ExitCode {
    common::app::serve_main(&payment::SERVICE)
}
