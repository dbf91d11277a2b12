//! `faas`: the platform's command line (`faas up`, `faas register`, `faas invoke`, ...).
//! Everything lives in [`faas_console::cli`]; this only parses and exits with its code.

use clap::Parser;
use faas_console::cli::{run, Cli};

#[tokio::main]
async fn main() {
    let code = run(Cli::parse()).await;
    std::process::exit(code);
}
