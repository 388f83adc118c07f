//! The `crypto-operator` binary.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = crypto_operator::cli::Cli::parse();
    let code = crypto_operator::cli::run(cli).await;
    std::process::exit(code);
}
