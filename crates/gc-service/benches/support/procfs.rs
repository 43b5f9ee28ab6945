//! CPU time and resident memory of processes, read from /proc (Linux), so that a load
//! generator can report what each process spent over exactly its measured window rather
//! than over the set-up around it. Clock ticks are USER_HZ, 100 a second on Linux.

const MS_PER_TICK: u64 = 10;

/// User and system CPU ticks of a process (`self` or a pid).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the first
    // is field 3 (state), so utime (14) and stime (15) are the 12th and 13th.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of all CPUs together: user, nice, system, irq, softirq and steal.
pub fn machine_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Some(
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| fields.get(i))
            .sum(),
    )
}

/// Resident memory of a process (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU ticks of some named processes, this one (`client`) and the whole machine, at one
/// instant.
pub struct CpuSnapshot {
    ticks: Vec<(String, Option<u64>)>,
}

impl CpuSnapshot {
    pub fn take(processes: &[(String, u32)]) -> Self {
        let mut ticks: Vec<(String, Option<u64>)> = processes
            .iter()
            .map(|(name, pid)| (name.clone(), cpu_ticks(&pid.to_string())))
            .collect();
        ticks.push(("client".to_owned(), cpu_ticks("self")));
        ticks.push(("machine".to_owned(), machine_ticks()));
        Self { ticks }
    }

    /// Milliseconds of CPU spent since `before` by each process (`None` where it could not be
    /// read), then `elsewhere`: the machine's busy time that none of them spent (other
    /// people's processes, and interrupt time the kernel charges to no process).
    pub fn since(&self, before: &CpuSnapshot) -> Vec<(String, Option<u64>)> {
        let mut spent: Vec<(String, Option<u64>)> = self
            .ticks
            .iter()
            .zip(&before.ticks)
            .map(|((name, after), (_, before))| {
                let ms = after
                    .zip(*before)
                    .map(|(a, b)| a.saturating_sub(b) * MS_PER_TICK);
                (name.clone(), ms)
            })
            .collect();
        let (machine, processes) = spent
            .split_last()
            .map_or((None, &[][..]), |(m, p)| (m.1, p));
        let accounted: Option<u64> = processes.iter().map(|(_, ms)| *ms).sum();
        let elsewhere = machine.zip(accounted).map(|(m, a)| m.saturating_sub(a));
        spent.push(("elsewhere".to_owned(), elsewhere));
        spent
    }
}

/// `name ms name ms …`, with `?` where a time is unknown.
pub fn cpu_line(spent: &[(String, Option<u64>)]) -> String {
    let pairs: Vec<String> = spent
        .iter()
        .map(|(name, ms)| match ms {
            Some(ms) => format!("{name} {ms}"),
            None => format!("{name} ?"),
        })
        .collect();
    pairs.join(" ")
}

/// `name_ms=… ` pairs for a `result` line, for the names given.
pub fn cpu_fields(spent: &[(String, Option<u64>)], names: &[&str]) -> String {
    let fields: Vec<String> = spent
        .iter()
        .filter(|(name, _)| names.contains(&name.as_str()))
        .filter_map(|(name, ms)| ms.map(|ms| format!("{name}_ms={ms}")))
        .collect();
    fields.join(" ")
}
