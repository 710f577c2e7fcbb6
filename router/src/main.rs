//! The `router` binary: a config file in, a running router out.

use clap::Parser;

/// raftfs router: one tree over several nameservices.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    serve: raftfs_router::ServeArgs,
}

#[tokio::main]
async fn main() {
    raftfs_runtime::init_tracing("info");
    let cli = Cli::parse();
    if let Err(e) = run(cli.serve).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: raftfs_router::ServeArgs) -> Result<(), String> {
    let config = args.into_config().map_err(|e| e.to_string())?;
    let listeners = raftfs_router::server::listeners(&config).map_err(|e| e.to_string())?;
    raftfs_router::server::serve(config, listeners, raftfs_runtime::signal())
        .await
        .map_err(|e| e.to_string())
}
