//! The fault suite (issue 24, `docs/reliability.md`): starts a stack of its own processes, and
//! for each scenario runs the load, breaks one thing, measures the recovery and checks what
//! must have survived. Run by `scripts/fault-tests.sh`, which builds the binaries, finds
//! PostgreSQL's and Redis' server programs and cleans up whatever happens.
//!
//! Usage: fault-suite [SCENARIO...] (default: `scenarios::ALL`, in order).
//! Environment: FAULT_DIR (state and logs, emptied first), FAULT_BINS (the directory of the
//! ac-service, gc-service and mc-service binaries), FAULT_PG_BINDIR (initdb and pg_ctl),
//! FAULT_PG_DATA (the cluster's directory, emptied first).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use fault_suite::{scenarios, stack};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("fault suite: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn path_var(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("{name} is not set (run scripts/fault-tests.sh)"))
}

async fn run() -> Result<bool> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut chosen: Vec<String> = std::env::args().skip(1).collect();
    if chosen.is_empty() {
        chosen = scenarios::ALL.iter().map(|s| (*s).to_owned()).collect();
    }
    for name in &chosen {
        anyhow::ensure!(
            scenarios::ALL.contains(&name.as_str()),
            "no scenario {name}; there are {:?}",
            scenarios::ALL
        );
    }
    let paths = stack::Paths {
        dir: path_var("FAULT_DIR")?,
        bins: path_var("FAULT_BINS")?,
        pg_bindir: path_var("FAULT_PG_BINDIR")?,
        pg_data: path_var("FAULT_PG_DATA")?,
        pg_replica_data: path_var("FAULT_PG_DATA")?.with_extension("replica"),
    };
    let begun = Instant::now();
    println!("fault suite: starting the stack in {}", paths.dir.display());
    let mut stack = stack::Stack::start(&paths).await?;
    println!(
        "fault suite: stack up in {:.1} s (AC, {} GCs, {} MCs, PostgreSQL, Redis)",
        begun.elapsed().as_secs_f64(),
        stack.gcs.len(),
        stack.mcs.len()
    );
    let mut all_passed = true;
    for name in &chosen {
        let started = Instant::now();
        println!("\n=== {name}");
        match scenarios::run(name, &mut stack).await {
            Ok(outcome) => {
                for (what, took) in &outcome.timings {
                    println!("  {what}: {:.2} s", took.as_secs_f64());
                }
                for note in &outcome.notes {
                    println!("  {note}");
                }
                println!("  checker: {}", outcome.report.line());
                for failure in outcome.failures.iter().chain(&outcome.report.failures) {
                    println!("  FAILED: {failure}");
                }
                let verdict = if outcome.passed() { "passed" } else { "FAILED" };
                println!(
                    "=== {} {verdict} in {:.0} s",
                    outcome.name,
                    started.elapsed().as_secs_f64()
                );
                all_passed &= outcome.passed();
            }
            Err(error) => {
                println!("=== {name} FAILED: {error:#}");
                all_passed = false;
            }
        }
    }
    stack.stop().await;
    println!(
        "\nfault suite: {} in {:.0} s (logs in {})",
        if all_passed { "passed" } else { "FAILED" },
        begun.elapsed().as_secs_f64(),
        stack::logs_dir(&paths.dir).display()
    );
    Ok(all_passed)
}
