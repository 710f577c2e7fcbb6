//! The `blockserver` binary: flags and/or a config file in, a running blockserver out.

use clap::Parser;

/// raftfs blockserver.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    serve: raftfs_blockserver::ServeArgs,
}

#[tokio::main]
async fn main() {
    raftfs_blockserver::server::init_tracing();
    let cli = Cli::parse();
    let result = match cli.serve.into_config() {
        Ok(config) => serve(config).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Binds the addresses the config names and serves until SIGINT or SIGTERM.
async fn serve(config: raftfs_blockserver::Config) -> Result<(), String> {
    let listeners = raftfs_blockserver::server::listeners(&config).map_err(|e| e.to_string())?;
    raftfs_blockserver::server::serve(config, listeners, raftfs_runtime::signal())
        .await
        .map_err(|e| e.to_string())
}
