//! How every service binary starts, written once so that the three start alike.
//!
//! The command line is `<service> [COMMAND]`. No command means `serve`, with its settings read
//! from the environment alone, as a container starts it. `healthcheck`, which every binary has
//! ([`SharedCommand`]), is answered at once: before any setting is read and without a runtime,
//! because the image's health check runs it every few seconds.
//!
//! The order of a start, for every command that runs on the runtime ([`Binary::run`]):
//! 1. the command line and the environment are parsed (clap): a missing or malformed setting
//!    ends the process here, with clap's message on stderr, before anything else has started;
//! 2. telemetry is installed (JSON logs, and spans exported over OTLP when
//!    `OTEL_EXPORTER_OTLP_ENDPOINT` is set), so everything after logs through it;
//! 3. the command runs on a multi-threaded Tokio runtime; the checks of settings that need
//!    more than parsing (files to read, values to compare) run there, and fail as log lines.

use std::future::Future;
use std::process::ExitCode;

use crate::telemetry::TelemetryError;

/// The commands every service binary has. A binary's own `Subcommand` enum takes them in with
/// a variant `#[command(flatten)] Shared(SharedCommand)`, and answers them with
/// [`Binary::answer`] before anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum SharedCommand {
    /// Exit 0 if the running service answers `GET /health/live` on its ops port (the
    /// service's `*_OPS_ADDR`): the container health check, with no shell needed.
    Healthcheck,
}

/// What tells one service binary from another when it starts.
#[derive(Clone, Copy, Debug)]
pub struct Binary {
    /// The binary's name (`gc-service`): the name its command line is parsed under, and the
    /// service name of its telemetry.
    pub name: &'static str,
    /// The environment variable of the ops listener's address (`GC_OPS_ADDR`), which
    /// `healthcheck` probes.
    pub ops_addr_env: &'static str,
    /// The ops listener's port when that variable is unset.
    pub ops_default_port: u16,
}

impl Binary {
    /// Answers one of the [`SharedCommand`]s: the exit code of the process.
    pub fn answer(&self, command: SharedCommand) -> ExitCode {
        match command {
            SharedCommand::Healthcheck => {
                crate::healthcheck::run(self.ops_addr_env, self.ops_default_port)
            }
        }
    }

    /// The settings of `serve` when no command is given: `S` parsed as if the command line
    /// held only the binary's name, so from the environment and the defaults alone.
    pub fn serve_settings<S: clap::Parser>(&self) -> S {
        S::parse_from([self.name])
    }

    /// Runs `command` to its end on a new multi-threaded Tokio runtime, with telemetry
    /// installed first and flushed once `command` has returned (see the module documentation
    /// for the order).
    pub fn run<F, Fut, E>(&self, command: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: From<std::io::Error> + From<TelemetryError>,
    {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async {
            let _telemetry = crate::telemetry::init(self.name)?;
            command().await
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{Parser, Subcommand};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Option<Command>,
    }

    #[derive(Debug, PartialEq, Eq, Subcommand)]
    enum Command {
        Serve(Serve),
        Migrate,
        #[command(flatten)]
        Shared(SharedCommand),
    }

    #[derive(Debug, PartialEq, Eq, Parser)]
    struct Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    }

    const BINARY: Binary = Binary {
        name: "test-service",
        ops_addr_env: "TEST_SERVICE_OPS_ADDR",
        ops_default_port: 9999,
    };

    #[test]
    fn healthcheck_sits_beside_a_binary_s_own_commands() {
        let parsed = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.command);

        assert_eq!(
            parsed(&["test-service", "healthcheck"]).unwrap(),
            Some(Command::Shared(SharedCommand::Healthcheck))
        );
        assert_eq!(
            parsed(&["test-service", "migrate"]).unwrap(),
            Some(Command::Migrate)
        );
        assert_eq!(parsed(&["test-service"]).unwrap(), None);
        assert!(parsed(&["test-service", "healthcheck", "--extra"]).is_err());
    }

    #[test]
    fn serve_settings_ignore_the_process_arguments() {
        // The test binary's own arguments (a filter, `--nocapture`) would not parse as `Serve`.
        let serve: Serve = BINARY.serve_settings();
        assert_eq!(serve, Serve { port: 8080 });
    }

    #[test]
    fn a_healthcheck_with_nothing_listening_fails() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let binary = Binary {
            ops_default_port: closed.port(),
            ops_addr_env: "TEST_SERVICE_OPS_ADDR_NEVER_SET",
            ..BINARY
        };
        assert_eq!(binary.answer(SharedCommand::Healthcheck), ExitCode::FAILURE);
    }
}
