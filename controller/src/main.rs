//! `plumb`: parses arguments, sets up logging, runs the command and maps it to an exit code.

use plumb_agent::cli::{self, exit};
use plumb_controller::cli::{Args, run};

fn main() {
    let args: Args = cli::parse_args();
    plumb_agent::tls::install_crypto_provider();
    cli::init_logging(args.verbose, args.log_format);
    let code = match run(args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::ERROR
        }
    };
    std::process::exit(code);
}
