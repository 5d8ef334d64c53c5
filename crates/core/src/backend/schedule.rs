//! Learning-rate schedules of a recipe (`LrSchedule`) as a pure function of the step.

use std::f64::consts::PI;

use crate::recipe::{Amount, DecayShape, LrSchedule};

/// Warmup length in (fractional) optimizer steps.
pub fn warmup_steps(warmup: Amount, total_steps: u64, tokens_per_step: u64) -> f64 {
    let w = match warmup {
        Amount::Fraction(f) => f * total_steps as f64,
        Amount::Steps(s) => s as f64,
        Amount::Tokens(t) => t as f64 / tokens_per_step.max(1) as f64,
    };
    w.clamp(0.0, total_steps as f64)
}

/// The LR of optimizer step `step` (0-based) of a run of `total_steps` steps.
///
/// Conventions, chosen so that no step is wasted at LR 0:
/// - warmup over `W` steps rises linearly, step `s < W` gets `(s + 1) / W` of the way from the
///   start LR (0, or `start` for re-warming) to the peak;
/// - decay progress after warmup is `p = (s - W) / (T - W)`, clamped to [0, 1], as Hugging
///   Face's schedulers count it: `lr_at(.., T, T, ..)` (the step after the last) is exactly the
///   floor, and the last trained step `T - 1` one decay increment above it;
/// - `min` is a fraction of the peak;
/// - WSD keeps the peak until the last `decay` fraction of all `T` steps, then decays over it;
/// - decay shapes (Megatron-LM's WSD styles): linear `1 - p`, cosine `(1 + cos(pi p)) / 2`,
///   exponential `2 * 0.5^p - 1`, sqrt `1 - sqrt(p)`; each runs from 1 to 0 and scales
///   `peak - floor`.
pub fn lr_at(schedule: &LrSchedule, step: u64, total_steps: u64, tokens_per_step: u64) -> f64 {
    let s = step as f64;
    let t = total_steps.max(1) as f64;
    let warm = |start: f64, peak: f64, w: f64| -> Option<f64> {
        (s < w).then(|| start + (peak - start) * ((s + 1.0) / w).min(1.0))
    };
    let progress = |from: f64| -> f64 { if t <= from { 1.0 } else { ((s - from) / (t - from)).clamp(0.0, 1.0) } };
    match *schedule {
        LrSchedule::Constant { lr, warmup } => {
            let w = warmup_steps(warmup, total_steps, tokens_per_step);
            warm(0.0, lr, w).unwrap_or(lr)
        }
        LrSchedule::Linear { peak, warmup, min } => {
            let w = warmup_steps(warmup, total_steps, tokens_per_step);
            warm(0.0, peak, w).unwrap_or_else(|| decayed(peak, min, DecayShape::Linear, progress(w)))
        }
        LrSchedule::Cosine { peak, warmup, min } => {
            let w = warmup_steps(warmup, total_steps, tokens_per_step);
            warm(0.0, peak, w).unwrap_or_else(|| decayed(peak, min, DecayShape::Cosine, progress(w)))
        }
        LrSchedule::Wsd { peak, warmup, decay, min, decay_shape } => {
            let w = warmup_steps(warmup, total_steps, tokens_per_step);
            let decay_start = (t * (1.0 - decay.clamp(0.0, 1.0))).max(w);
            warm(0.0, peak, w).unwrap_or_else(|| {
                if s < decay_start { peak } else { decayed(peak, min, decay_shape, progress(decay_start)) }
            })
        }
        LrSchedule::Rewarm { start, peak, warmup, min, decay_shape } => {
            let w = warmup_steps(warmup, total_steps, tokens_per_step);
            warm(start, peak, w).unwrap_or_else(|| decayed(peak, min, decay_shape, progress(w)))
        }
    }
}

/// `floor + (peak - floor) * shape(p)` with `floor = min * peak`.
fn decayed(peak: f64, min: f64, shape: DecayShape, p: f64) -> f64 {
    let floor = min * peak;
    let f = match shape {
        DecayShape::Linear => 1.0 - p,
        DecayShape::Cosine => 0.5 * (1.0 + (PI * p).cos()),
        DecayShape::Exponential => 2.0 * 0.5f64.powf(p) - 1.0,
        DecayShape::Sqrt => 1.0 - p.sqrt(),
    };
    floor + (peak - floor) * f
}
