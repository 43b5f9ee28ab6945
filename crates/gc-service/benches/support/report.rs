//! The summary the load generators print: request count, throughput, latency percentiles and
//! the count of each outcome, in lines that scripts/bench-*.sh read with awk.

use std::collections::BTreeMap;
use std::time::Duration;

/// Prints the summary of a run that took `wall` (latencies in microseconds, sorted here).
pub fn print_summary(
    concurrency: usize,
    wall: Duration,
    latencies: &mut [u64],
    statuses: &BTreeMap<String, u64>,
) {
    latencies.sort_unstable();
    let total = latencies.len();
    let per_sec = total as f64 / wall.as_secs_f64().max(f64::EPSILON);
    println!(
        "requests     {total} in {:.2} s, concurrency {concurrency}",
        wall.as_secs_f64()
    );
    println!("throughput   {per_sec:.1} req/s");
    print_latencies(latencies);
    println!("statuses     {}", statuses_line(statuses));
}

/// `latency ms   p50 …  p95 …  p99 …  max …` of sorted latencies in microseconds.
pub fn print_latencies(sorted: &[u64]) {
    print_percentiles("latency ms", sorted);
}

/// `<label>   p50 …  p95 …  p99 …  max …` (milliseconds) of sorted microseconds; the label
/// is two words, so the p99 is always the 8th field.
pub fn print_percentiles(label: &str, sorted: &[u64]) {
    let ms = |p: f64| percentile(sorted, p) as f64 / 1000.0;
    println!(
        "{label:<12} p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        ms(0.50),
        ms(0.95),
        ms(0.99),
        ms(1.0)
    );
}

/// `201: 9000, 409 MEETING_FULL: 3`.
pub fn statuses_line(statuses: &BTreeMap<String, u64>) -> String {
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    statuses.join(", ")
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

/// Microseconds of a duration, saturating.
pub fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// CPU time (user and system) of this process so far, in milliseconds, from /proc/self/stat
/// (Linux, at USER_HZ = 100 ticks a second); `None` elsewhere.
pub fn own_cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the first
    // is field 3 (state), so utime (14) and stime (15) are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10)
}
