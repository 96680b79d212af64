//! `plumb-agent`: parses arguments, installs the crypto provider, runs the command in the
//! library (`plumb_agent::cli`) and maps the result to an exit code.

use plumb_common::cli::{self, exit};

fn main() {
    let args: plumb_agent::cli::Args = cli::parse_args();
    plumb_common::tls::install_crypto_provider();
    let code = match plumb_agent::cli::run(args) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            cli::error_code(&e)
        }
    };
    std::process::exit(code);
}
