//! Assignment at scale (issue 27, docs/capacity.md): how GC's choice of meeting controller
//! behaves with 1,000 controllers, and what the real choice statement costs in PostgreSQL.
//!
//! ```text
//! # the simulation, every policy with 1, 2 and 4 GC replicas (virtual time, 10–20 s)
//! cargo bench -p gc-service --bench assign_sim -- sim
//! # one policy, other figures
//! cargo bench -p gc-service --bench assign_sim -- sim --policies least --replicas 2 \
//!     --statement-ms 20 --capacity 200 --seed 7
//! # the real SETTLE_SQL against PostgreSQL, in a scratch database dropped at the end
//! cargo bench -p gc-service --bench assign_sim -- sql --url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! The model is in `sim.rs` (the controllers' heartbeats and failures in `sim/controllers.rs`),
//! the policies in `policy.rs`, the distributions in `dist.rs`, the PostgreSQL measurement in
//! `sql.rs`. Each prints a Markdown table.
//! Without a command it prints this usage and exits 0, so a plain `cargo bench` does not fail.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

mod dist;
mod policy;
mod sim;
mod sql;

use policy::Policy;
use sim::{Outcome, Scenario};

#[derive(Parser, Debug)]
#[command(name = "assign_sim", about = "GC's controller choice at scale")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true, global = true)]
    bench: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulates the policies in virtual time and prints a Markdown table.
    Sim(SimArgs),
    /// Times the real SETTLE_SQL against PostgreSQL at 1,000 controllers.
    Sql(sql::SqlArgs),
}

#[derive(Args, Debug)]
struct SimArgs {
    /// Policies to compare (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    policies: Vec<Policy>,
    /// GC replica counts to run each policy with.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    replicas: Vec<usize>,
    /// Settle statements one replica runs at once (GC_DB_MAX_CONNECTIONS, 32).
    #[arg(long, default_value_t = 32)]
    statements_per_replica: usize,
    /// Duration of one settle statement: picks that start within it see the same counts.
    #[arg(long, default_value_t = 5.0)]
    statement_ms: f64,
    /// Controllers at the start (each failed one is replaced by a new one 1–3 min later).
    #[arg(long, default_value_t = 1000)]
    controllers: u32,
    /// Rooms GC gives one controller at most (MC_CAPACITY, 1000).
    #[arg(long, default_value_t = 1000)]
    capacity: u32,
    /// Meetings at the same time in the steady state (sets the Poisson arrival rate).
    #[arg(long, default_value_t = 100_000.0)]
    concurrent_meetings: f64,
    /// Median meeting duration (log-normal).
    #[arg(long, default_value_t = 35.0)]
    median_duration_mins: f64,
    /// σ of the log-normal duration.
    #[arg(long, default_value_t = 0.6)]
    duration_sigma: f64,
    /// Meetings of the top-of-the-hour burst, ten minutes into the measured hour.
    #[arg(long, default_value_t = 50_000)]
    burst_meetings: u32,
    /// Length of the burst.
    #[arg(long, default_value_t = 60)]
    burst_secs: u64,
    /// Single controller failures per hour (Poisson).
    #[arg(long, default_value_t = 4.0)]
    failures_per_hour: f64,
    /// Share of the controllers that fail at once, thirty minutes into the measured hour.
    #[arg(long, default_value_t = 0.05)]
    mass_failure_fraction: f64,
    /// MC_HEARTBEAT_INTERVAL_SECS (GC's default).
    #[arg(long, default_value_t = 5)]
    heartbeat_interval_secs: u64,
    /// MC_HEARTBEAT_TIMEOUT_SECS (GC's default).
    #[arg(long, default_value_t = 15)]
    heartbeat_timeout_secs: u64,
    /// Virtual time before measuring (the population builds up to its steady state).
    #[arg(long, default_value_t = 120)]
    warmup_mins: u64,
    /// Virtual time measured.
    #[arg(long, default_value_t = 60)]
    measure_mins: u64,
    /// Seed of the run (every policy and replica count uses the same one).
    #[arg(long, env = "ASSIGN_SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// Runs simulated at once (OS threads).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!("assign_sim: nothing to do without a command: sim or sql (see --help)");
            Ok(())
        }
        Some(Command::Sim(args)) => {
            simulate(&args);
            Ok(())
        }
        Some(Command::Sql(args)) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(sql::run(&args)),
    }
}

fn simulate(args: &SimArgs) {
    let policies = if args.policies.is_empty() {
        Policy::ALL.to_vec()
    } else {
        args.policies.clone()
    };
    let scenarios: Vec<Scenario> = policies
        .iter()
        .flat_map(|&policy| {
            args.replicas.iter().map(move |&replicas| Scenario {
                policy,
                replicas,
                statements_per_replica: args.statements_per_replica,
                statement_us: (args.statement_ms * 1000.0) as u64,
                controllers: args.controllers,
                capacity: args.capacity,
                concurrent_meetings: args.concurrent_meetings,
                median_duration_mins: args.median_duration_mins,
                duration_sigma: args.duration_sigma,
                burst_meetings: args.burst_meetings,
                burst_secs: args.burst_secs,
                failures_per_hour: args.failures_per_hour,
                mass_failure_fraction: args.mass_failure_fraction,
                heartbeat_interval_secs: args.heartbeat_interval_secs,
                heartbeat_timeout_secs: args.heartbeat_timeout_secs,
                warmup_mins: args.warmup_mins,
                measure_mins: args.measure_mins,
                seed: args.seed,
            })
        })
        .collect();

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(Outcome, f64)>>> =
        Mutex::new((0..scenarios.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..args.threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(scenario) = scenarios.get(i) else {
                        break;
                    };
                    let run_started = Instant::now();
                    let outcome = sim::run(scenario);
                    let wall = run_started.elapsed().as_secs_f64();
                    if let Ok(mut results) = results.lock()
                        && let Some(slot) = results.get_mut(i)
                    {
                        *slot = Some((outcome, wall));
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    print_sim_table(args, &scenarios, &results, started.elapsed().as_secs_f64());
}

fn print_sim_table(
    args: &SimArgs,
    scenarios: &[Scenario],
    results: &[Option<(Outcome, f64)>],
    wall: f64,
) {
    let first = results.iter().flatten().next();
    if let (Some((o, _)), Some(s)) = (first, scenarios.first()) {
        let mean_size = o.people_seen as f64 / o.meetings.max(1) as f64;
        println!(
            "{} controllers × {} rooms; {} concurrent meetings in the steady state \
             (log-normal duration, median {} min, σ {}), a burst of {} meetings in {} s at \
             +10 min, {} failures/h and {:.0} % failing at once at +30 min; heartbeat {} s, \
             timeout {} s; statement {} ms, {} at once per replica; seed {}.",
            args.controllers,
            args.capacity,
            args.concurrent_meetings,
            args.median_duration_mins,
            args.duration_sigma,
            args.burst_meetings,
            args.burst_secs,
            args.failures_per_hour,
            args.mass_failure_fraction * 100.0,
            args.heartbeat_interval_secs,
            args.heartbeat_timeout_secs,
            args.statement_ms,
            args.statements_per_replica,
            s.seed,
        );
        println!(
            "Measured hour (first run): {} meetings arrived (mean size {mean_size:.2}), peak {} \
             live rooms, {} rooms on the controllers failing at once.",
            o.meetings, o.peak_rooms, o.mass_rooms
        );
        println!();
    }
    println!(
        "| policy | R | rooms max÷mean p50 / p99 / max | people max÷mean p50 / p99 / max \
         | most new rooms on one MC in 1 s: burst / mass failure / rest (to a new MC) | room on a failed MC → healthy \
         owner p50 / p99 (s) | one failure, all moved: max (s) | 5 % at once, all moved (s) \
         | rejected new / moves | over capacity (max rooms) | settle wait p99 (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (scenario, result) in scenarios.iter().zip(results) {
        let Some((o, _)) = result else {
            continue;
        };
        let ratio = |v: &[f64]| {
            format!(
                "{} / {} / {}",
                fmt_f(dist::percentile(v, 0.5), 3),
                fmt_f(dist::percentile(v, 0.99), 3),
                fmt_f(dist::percentile(v, 1.0), 3)
            )
        };
        let secs = |v: &[u64], p: f64| fmt_f(dist::percentile(v, p).map(|us| us as f64 / 1e6), 1);
        println!(
            "| {} | {} | {} | {} | {} / {} / {} ({}) | {} / {} | {} | {} | {} / {} | {} ({}) | {} |",
            scenario.policy.label(),
            scenario.replicas,
            ratio(&o.rooms_spread),
            ratio(&o.people_spread),
            o.herd_burst,
            o.herd_mass,
            o.herd_rest,
            o.herd_newcomer,
            secs(&o.room_outage_us, 0.5),
            secs(&o.room_outage_us, 0.99),
            secs(&o.single_all_moved_us, 1.0),
            fmt_f(o.mass_all_moved_us.map(|us| us as f64 / 1e6), 1),
            o.rejected_new,
            o.rejected_moves,
            o.over_capacity,
            o.max_rooms,
            fmt_f(
                dist::percentile(&o.wait_us, 0.99).map(|us| us as f64 / 1e3),
                1
            ),
        );
    }
    let unfinished: u32 = results
        .iter()
        .flatten()
        .map(|(o, _)| o.unfinished_failures)
        .sum();
    let events: u64 = results.iter().flatten().map(|(o, _)| o.events).sum();
    let slowest = results
        .iter()
        .flatten()
        .map(|(_, w)| *w)
        .fold(0.0, f64::max);
    println!();
    println!(
        "{} runs, {events} events, {wall:.1} s wall (slowest run {slowest:.1} s); failures \
         whose rooms were not all moved by the end: {unfinished}.",
        results.iter().flatten().count()
    );
}

fn fmt_f(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}
