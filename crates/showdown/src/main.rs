//! `showdown`: serves the race page on `SHOWDOWN_PORT` (3000).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    common::app::tool_main(serve())
}

async fn serve() -> ExitCode {
    let config = showdown::Config::parse();
    common::telemetry::init(common::config::LogFormat::Pretty);
    let listener = match tokio::net::TcpListener::bind((config.host, config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "showdown: cannot listen on {}:{}: {e}",
                config.host, config.port
            );
            return ExitCode::FAILURE;
        }
    };
    let port = config.port;
    println!();
    println!("  showdown: race both modes at http://localhost:{port}");
    println!();
    match showdown::run(config, listener, common::app::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("showdown: {e:#}");
            ExitCode::FAILURE
        }
    }
}
