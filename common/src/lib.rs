//! What both of plumb's binaries share, and nothing else: command-line plumbing and exit codes
//! (`cli`), logging, signals, client TLS and the one crypto provider (`tls`), the
//! configuration-file reader with file:line:column errors (`config`), and systemd (`systemd`:
//! readiness and watchdog; `service`: install and uninstall).
//!
//! Neither the agent's nor the controller's logic lives here: a change to what plumb observes
//! or evaluates never touches this crate.

pub mod cli;
pub mod config;
pub mod glob;
pub mod hex;
pub mod service;
pub mod signals;
pub mod systemd;
pub mod tls;
