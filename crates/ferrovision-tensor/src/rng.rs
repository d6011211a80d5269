//! The one random number generator of ferrovision: xoshiro256++ (Blackman & Vigna), seeded
//! through SplitMix64. Every random op takes its numbers from a [`Rng`]; the free functions use
//! a process-wide generator seeded with [`manual_seed`] (default seed 0), so a run that sets
//! one seed is reproducible. Normal samples use the Box-Muller transform.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A xoshiro256++ generator.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose stream is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    #[inline]
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// The generator's full state (for checkpoints that resume bit-exactly).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator continuing exactly from a [`Rng::state`]. An all-zero state (never produced
    /// by [`Rng::new`]) is replaced by the seed-0 state, since xoshiro would emit only zeros.
    pub fn from_state(state: [u64; 4]) -> Self {
        if state == [0; 4] {
            return Rng::new(0);
        }
        Rng { s: state }
    }

    /// A new generator for a sub-stream (e.g. one per worker) derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

static GLOBAL: Mutex<Option<Rng>> = Mutex::new(None);

/// Seeds the process-wide generator used by random ops that are not given a [`Rng`].
pub fn manual_seed(seed: u64) {
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rng::new(seed));
}

/// Runs `f` with the process-wide generator (seed 0 unless [`manual_seed`] was called).
///
/// Inside [`record_global_draws`] the generator's state before each call is logged; inside
/// [`replay_global_draws`] each call gets a private generator from the next logged state and
/// the process-wide one is not touched.
pub fn with_global<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    let replayed = DRAWS.with(|d| match &mut *d.borrow_mut() {
        Some(DrawLog::Replay(states)) => Some(states.pop_front()),
        _ => None,
    });
    if let Some(state) = replayed {
        // A replay that draws more often than the recording gets an unrelated stream, so its
        // check fails instead of disturbing the process-wide generator.
        return f(&mut state.map_or_else(|| Rng::new(0), Rng::from_state));
    }
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let g = g.get_or_insert_with(|| Rng::new(0));
    DRAWS.with(|d| {
        if let Some(DrawLog::Record(states)) = &mut *d.borrow_mut() {
            states.push(g.state());
        }
    });
    f(g)
}

/// What [`with_global`] does with the process-wide generator on this thread.
enum DrawLog {
    Record(Vec<[u64; 4]>),
    Replay(VecDeque<[u64; 4]>),
}

thread_local! {
    static DRAWS: RefCell<Option<DrawLog>> = const { RefCell::new(None) };
}

/// Runs `f` and returns, beside its result, the process-wide generator's state before each of
/// the draws `f` made on this thread (what a traced training step's check needs to draw the
/// same dropout masks again without rewinding the generator other threads share).
pub(crate) fn record_global_draws<R>(f: impl FnOnce() -> R) -> (R, Vec<[u64; 4]>) {
    let outer = DRAWS.with(|d| d.borrow_mut().replace(DrawLog::Record(Vec::new())));
    let r = f();
    let log = DRAWS.with(|d| std::mem::replace(&mut *d.borrow_mut(), outer));
    match log {
        Some(DrawLog::Record(states)) => (r, states),
        _ => (r, Vec::new()),
    }
}

/// Runs `f` with this thread's draws from the process-wide generator served, in order, from
/// `states` (see [`record_global_draws`]).
pub(crate) fn replay_global_draws<R>(states: Vec<[u64; 4]>, f: impl FnOnce() -> R) -> R {
    let outer = DRAWS.with(|d| d.borrow_mut().replace(DrawLog::Replay(states.into())));
    let r = f();
    DRAWS.with(|d| *d.borrow_mut() = outer);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_uniform() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let n = 100_000;
        let mean: f64 = (0..n).map(|_| a.next_f64()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let m2: f64 = (0..n).map(|_| a.normal().powi(2)).sum::<f64>() / n as f64;
        assert!((m2 - 1.0).abs() < 0.02, "{m2}");
    }
}
