//! The floor of a password sign-in: the CPU time of one Argon2id check of a password against
//! its stored PHC string, as AC's hashing workers run it (`domain::password::HashMemory`, the
//! argon2 crate's default parameters: 19 MiB, 2 passes, 1 lane), on one thread, with nothing
//! else: no HTTP, no database, no token. `scripts/bench-ac-memory.sh` runs it after its burst
//! of sign-ins and divides AC's CPU per sign-in by it (docs/benchmarks.md, "AC's CPU per
//! sign-in").
//!
//! Usage: cargo bench -p ac-service --bench password_floor -- [CHECKS]   (default 40)
//! Prints one line: `FLOOR checks=N cpu_us_per_check=X wall_us_per_check=Y`.

use std::time::Instant;

use ac_service::domain::password::{HashMemory, hash_blocking};

/// This process's CPU time (user and system) in microseconds, from `/proc/self/stat`.
fn cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks * 10_000
}

fn main() -> anyhow::Result<()> {
    let checks: u32 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(40);
    anyhow::ensure!(checks > 0, "CHECKS must be at least 1");
    let phc = hash_blocking("demo-password")?;
    let mut memory = HashMemory::new();
    // The first check allocates the memory, as a worker's first sign-in does; not counted.
    anyhow::ensure!(
        memory.verify(b"demo-password", &phc),
        "the password must verify"
    );
    let (cpu_before, started) = (cpu_us(), Instant::now());
    let mut matched = 0u32;
    for i in 0..checks {
        // Every fourth is a wrong password, as in the sign-in burst: the same work.
        let secret: &[u8] = if i % 4 == 3 {
            b"wrong-password"
        } else {
            b"demo-password"
        };
        matched += u32::from(memory.verify(secret, &phc));
    }
    let wall = started.elapsed();
    let cpu = cpu_us().saturating_sub(cpu_before);
    anyhow::ensure!(
        matched == checks - checks / 4,
        "{matched} of {checks} matched"
    );
    println!(
        "FLOOR checks={checks} cpu_us_per_check={:.0} wall_us_per_check={:.0}",
        cpu as f64 / f64::from(checks),
        wall.as_micros() as f64 / f64::from(checks)
    );
    Ok(())
}
