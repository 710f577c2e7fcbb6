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
        Ok(config) => raftfs_blockserver::server::run(config, raftfs_blockserver::server::signal())
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
