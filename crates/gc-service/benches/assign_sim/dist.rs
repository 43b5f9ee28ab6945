//! The simulation's randomness: a seeded splitmix64 generator (so a run is repeated exactly by
//! its seed) and the distributions of the model.

/// splitmix64: one 64-bit state, one add and three xor-shift-multiplies a draw. Small, fast
/// and good enough for a simulation; not for anything secret.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A generator of its own for another part of the model, so that adding draws to one part
    /// does not shift the others'.
    pub fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n (n > 0), without modulo bias worth speaking of.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Exponential with the given mean: the gap between two events of a Poisson process.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and shape σ (of the underlying normal).
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
}

/// People in a meeting: a heavy-tailed mixture.
///
/// | share | size |
/// |---|---|
/// | 68 % | 2 (30 %), 3 (18 %), 4 (12 %), 5 (8 %) |
/// | 22 % | 6–19, uniform |
/// | 9 % | 20–50, uniform |
/// | 0.9 % | 51–199, uniform |
/// | 0.1 % | 200–1000, Pareto (α = 1.5, from 200) cut at 1000 |
///
/// Its mean is about 9.5 (9.48 over a simulated hour), so 100,000 meetings hold about 950,000
/// people (issue 27's million in 100,000 meetings).
pub fn meeting_size(rng: &mut Rng) -> u32 {
    let u = rng.unit();
    if u < 0.30 {
        2
    } else if u < 0.48 {
        3
    } else if u < 0.60 {
        4
    } else if u < 0.68 {
        5
    } else if u < 0.90 {
        6 + rng.below(14) as u32
    } else if u < 0.99 {
        20 + rng.below(31) as u32
    } else if u < 0.999 {
        51 + rng.below(149) as u32
    } else {
        let pareto = 200.0 * (1.0 - rng.unit()).powf(-1.0 / 1.5);
        pareto.min(1000.0) as u32
    }
}

/// The mean of a log-normal with this median and σ.
pub fn log_normal_mean(median: f64, sigma: f64) -> f64 {
    median * (sigma * sigma / 2.0).exp()
}

/// Nearest-rank percentile of sorted values (`None` when empty).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}
