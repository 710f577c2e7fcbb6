//! The `metaserver` binary: flags and/or a config file in, a running metaserver out.

use clap::Parser;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// raftfs metaserver.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    serve: raftfs_metaserver::ServeArgs,
}

#[tokio::main]
async fn main() {
    raftfs_metaserver::server::init_tracing();
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
async fn serve(config: raftfs_metaserver::Config) -> Result<(), String> {
    let listeners = raftfs_metaserver::server::listeners(&config).map_err(|e| e.to_string())?;
    raftfs_metaserver::server::serve(config, listeners, raftfs_runtime::signal())
        .await
        .map_err(|e| e.to_string())
}
