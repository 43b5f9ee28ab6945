//! The day-in-the-life load generator (issue 27): see `fault_suite::day` and
//! `scripts/day-in-the-life.sh`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fault_suite::day::main().await
}
