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
        Ok(config) => raftfs_metaserver::server::run(config, raftfs_metaserver::server::signal())
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
