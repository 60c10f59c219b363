//! A small seeded PRNG and the distributions the scenarios draw from.
//!
//! Hand-rolled (xoshiro256** seeded by splitmix64) so that a seed means the
//! same stream of numbers whatever crate versions the build resolves.

/// xoshiro256**: fast, 256 bits of state, the same sequence for the same
/// seed on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        Self {
            s: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
    }

    /// An independent generator for one purpose (`stream`), so that adding
    /// draws of one kind does not shift the numbers of another.
    pub fn fork(seed: u64, stream: u64) -> Self {
        Self::new(seed ^ stream.wrapping_mul(0xD134_2543_DE82_EF95))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    pub fn unit_open(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// Exponential with mean 1.
    pub fn exp1(&mut self) -> f64 {
        -self.unit_open().ln()
    }

    /// Standard normal (Box-Muller; one of the pair is discarded, which
    /// keeps the generator free of hidden state).
    pub fn normal(&mut self) -> f64 {
        let r = (-2.0 * self.unit_open().ln()).sqrt();
        r * (std::f64::consts::TAU * self.unit()).cos()
    }
}

/// How long viewers stay, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SessionLength {
    /// Memoryless, with this mean.
    Exponential {
        /// Mean session, seconds.
        mean_s: f64,
    },
    /// Log-normal with this mean and shape (the sigma of the underlying normal).
    LogNormal {
        /// Mean session, seconds.
        mean_s: f64,
        /// Shape; larger is heavier-tailed.
        sigma: f64,
    },
    /// Pareto (type I) with this mean and tail index `alpha` (> 1).
    Pareto {
        /// Mean session, seconds.
        mean_s: f64,
        /// Tail index; closer to 1 is heavier-tailed.
        alpha: f64,
    },
}

impl SessionLength {
    /// The mean session length, seconds.
    pub fn mean_s(&self) -> f64 {
        match *self {
            Self::Exponential { mean_s }
            | Self::LogNormal { mean_s, .. }
            | Self::Pareto { mean_s, .. } => mean_s,
        }
    }

    /// A session length drawn from the distribution.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            Self::Exponential { mean_s } => mean_s * rng.exp1(),
            Self::LogNormal { mean_s, sigma } => {
                let mu = mean_s.ln() - sigma * sigma / 2.0;
                (mu + sigma * rng.normal()).exp()
            }
            Self::Pareto { mean_s, alpha } => {
                let xm = mean_s * (alpha - 1.0) / alpha;
                xm * rng.unit_open().powf(-1.0 / alpha)
            }
        }
    }

    /// The time left in a session seen at a random moment of a stationary
    /// audience (the equilibrium residual life): a length-biased length
    /// times a uniform fraction. This is what the viewers present at the
    /// start of a run have left, so the audience neither drains nor swells
    /// while the first sessions end.
    pub fn sample_residual(&self, rng: &mut Rng) -> f64 {
        let biased = match *self {
            // Length-biased exponential: Gamma(2, mean).
            Self::Exponential { mean_s } => mean_s * (rng.exp1() + rng.exp1()),
            // Length-biased log-normal: mu shifted by sigma squared.
            Self::LogNormal { mean_s, sigma } => {
                let mu = mean_s.ln() - sigma * sigma / 2.0 + sigma * sigma;
                (mu + sigma * rng.normal()).exp()
            }
            // Length-biased Pareto: the same scale, tail index alpha - 1.
            Self::Pareto { mean_s, alpha } => {
                let xm = mean_s * (alpha - 1.0) / alpha;
                xm * rng.unit_open().powf(-1.0 / (alpha - 1.0))
            }
        };
        biased * rng.unit()
    }
}

/// A discrete mix of claimed capacities, drawn by weight.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityMix {
    /// (capacity, cumulative weight in (0, 1]), in the order given; the last
    /// cumulative weight is 1.
    cumulative: Vec<(u32, f64)>,
    given: Vec<(u32, f64)>,
}

impl CapacityMix {
    /// A mix from (capacity, weight) pairs; weights are normalised to sum to 1.
    /// The caller guarantees a non-empty list of positive, finite weights.
    pub fn new(given: Vec<(u32, f64)>) -> Self {
        let total: f64 = given.iter().map(|&(_, w)| w).sum();
        let mut acc = 0.0;
        let mut cumulative: Vec<(u32, f64)> = given
            .iter()
            .map(|&(c, w)| {
                acc += w / total;
                (c, acc)
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            last.1 = 1.0;
        }
        Self { cumulative, given }
    }

    /// The pairs as given (not normalised).
    pub fn entries(&self) -> &[(u32, f64)] {
        &self.given
    }

    /// Mean claimed capacity.
    pub fn mean(&self) -> f64 {
        let total: f64 = self.given.iter().map(|&(_, w)| w).sum();
        self.given.iter().map(|&(c, w)| c as f64 * w).sum::<f64>() / total
    }

    /// One capacity, drawn by weight.
    pub fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.unit();
        self.cumulative
            .iter()
            .find(|&&(_, cum)| u < cum)
            .or(self.cumulative.last())
            .map_or(0, |&(c, _)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    fn mean_of(d: SessionLength, residual: bool) -> f64 {
        let mut rng = Rng::new(1);
        let n = 200_000;
        let sum: f64 = (0..n)
            .map(|_| {
                if residual {
                    d.sample_residual(&mut rng)
                } else {
                    d.sample(&mut rng)
                }
            })
            .sum();
        sum / n as f64
    }

    #[test]
    fn session_means_match_their_parameter() {
        for d in [
            SessionLength::Exponential { mean_s: 600.0 },
            SessionLength::LogNormal {
                mean_s: 600.0,
                sigma: 1.0,
            },
            SessionLength::Pareto {
                mean_s: 600.0,
                alpha: 3.0,
            },
        ] {
            let m = mean_of(d, false);
            assert!((m - 600.0).abs() < 600.0 * 0.03, "{d:?}: {m}");
        }
        // Exponential residual life has the same mean.
        let r = mean_of(SessionLength::Exponential { mean_s: 600.0 }, true);
        assert!((r - 600.0).abs() < 20.0, "{r}");
        // Log-normal residual mean is E[L^2] / (2 E[L]) = mean * e^(sigma^2) / 2.
        let r = mean_of(
            SessionLength::LogNormal {
                mean_s: 600.0,
                sigma: 1.0,
            },
            true,
        );
        let expected = 600.0 * 1f64.exp() / 2.0;
        assert!((r - expected).abs() < expected * 0.05, "{r} vs {expected}");
    }

    #[test]
    fn capacity_mix_follows_weights() {
        let mix = CapacityMix::new(vec![(0, 20.0), (1, 30.0), (3, 50.0)]);
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[mix.sample(&mut rng) as usize] += 1;
        }
        assert!((counts[0] as i64 - 20_000).abs() < 1_000, "{counts:?}");
        assert!((counts[1] as i64 - 30_000).abs() < 1_000, "{counts:?}");
        assert_eq!(counts[2], 0);
        assert!((mix.mean() - 1.8).abs() < 1e-9);
    }
}
