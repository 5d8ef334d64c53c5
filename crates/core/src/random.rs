//! Seeded draws shared by the engine's random models and the embedding resize: one formula,
//! independent of torch's generator, so a seed means the same numbers everywhere.

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

/// One N(0, 1) draw (Box-Muller; `rand_distr` is not a dependency).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // The clamp keeps the logarithm finite when the draw is exactly 0.
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
