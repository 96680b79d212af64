//! `plumb`: parses arguments, sets up logging, runs the command and maps it to an exit code.

use plumb_common::cli;
use plumb_controller::cli::{parse, run};

fn main() {
    let args = parse();
    plumb_common::tls::install_crypto_provider();
    let code = match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            cli::error_code(&e)
        }
    };
    std::process::exit(code);
}
