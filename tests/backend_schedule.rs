//! `backend::schedule::lr_at` for every schedule shape of a recipe.

use cptc::recipe::{Amount, DecayShape, LrSchedule};
use cptc_torch::backend::schedule::{lr_at, warmup_steps};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-30)
}

fn curve(s: &LrSchedule, total: u64) -> Vec<f64> {
    (0..=total).map(|i| lr_at(s, i, total, 1000)).collect()
}

#[test]
fn constant_with_zero_warmup_is_flat() {
    let s = LrSchedule::Constant { lr: 3e-4, warmup: Amount::Fraction(0.0) };
    assert!(curve(&s, 50).iter().all(|&lr| lr == 3e-4));
}

#[test]
fn linear_warmup_rises_to_peak_without_a_zero_step() {
    let s = LrSchedule::Constant { lr: 1e-3, warmup: Amount::Steps(4) };
    let c = curve(&s, 20);
    assert!(close(c[0], 0.25e-3) && close(c[1], 0.5e-3) && close(c[2], 0.75e-3));
    assert!(c[3..].iter().all(|&lr| lr == 1e-3));
    // Warmup in tokens (4000 tokens at 1000 per step) and as a fraction are the same here.
    let tok = LrSchedule::Constant { lr: 1e-3, warmup: Amount::Tokens(4000) };
    let frac = LrSchedule::Constant { lr: 1e-3, warmup: Amount::Fraction(0.2) };
    assert_eq!(curve(&tok, 20), c);
    assert_eq!(curve(&frac, 20), c);
    assert_eq!(warmup_steps(Amount::Fraction(2.0), 20, 1000), 20.0);
}

#[test]
fn cosine_decays_to_its_floor() {
    let (peak, min) = (3e-4, 0.1);
    let s = LrSchedule::Cosine { peak, warmup: Amount::Steps(10), min };
    let total = 110;
    let c = curve(&s, total);
    assert!(close(c[9], peak));
    assert!(close(c[10], peak), "decay starts at the peak");
    // Half-way through the decay: the mean of peak and floor.
    assert!(close(c[60], 0.5 * (peak + min * peak)));
    assert!(close(c[110], min * peak));
    assert!(c[10..].windows(2).all(|w| w[1] <= w[0]), "monotone decay");
}

#[test]
fn linear_decay_is_a_straight_line() {
    let s = LrSchedule::Linear { peak: 1.0, warmup: Amount::Fraction(0.0), min: 0.0 };
    let c = curve(&s, 8);
    for (i, lr) in c.iter().enumerate() {
        assert!(close(*lr, 1.0 - i as f64 / 8.0) || (i == 8 && *lr == 0.0));
    }
}

#[test]
fn wsd_is_stable_then_decays_over_the_last_fraction() {
    let total = 100;
    let shapes = [DecayShape::Linear, DecayShape::Cosine, DecayShape::Exponential, DecayShape::Sqrt];
    let mut mid = Vec::new();
    for shape in shapes {
        let s = LrSchedule::Wsd { peak: 2e-3, warmup: Amount::Steps(5), decay: 0.2, min: 0.05, decay_shape: shape };
        let c = curve(&s, total);
        assert!(close(c[0], 2e-3 / 5.0));
        assert!(c[5..=80].iter().all(|&lr| lr == 2e-3), "{shape:?}: stable until 80% of training");
        assert!(c[81] < 2e-3, "{shape:?}: decaying after 80%");
        assert!(close(c[100], 0.05 * 2e-3), "{shape:?}: ends at the floor");
        assert!(c[80..].windows(2).all(|w| w[1] <= w[0]));
        mid.push(c[90]);
    }
    // Half-way through the decay each shape has its own value: linear and cosine 1/2 of the
    // way, exponential 2*0.5^0.5-1 = 0.414, sqrt 1-0.707 = 0.293 above the floor.
    let floor = 0.05 * 2e-3;
    let frac: Vec<f64> = mid.iter().map(|lr| (lr - floor) / (2e-3 - floor)).collect();
    assert!(close(frac[0], 0.5) && close(frac[1], 0.5));
    assert!(close(frac[2], 2.0 * 0.5f64.sqrt() - 1.0));
    assert!(close(frac[3], 1.0 - 0.5f64.sqrt()));
}

#[test]
fn rewarm_goes_from_start_to_peak_then_redecays() {
    let s = LrSchedule::Rewarm {
        start: 3e-5,
        peak: 3e-4,
        warmup: Amount::Fraction(0.1),
        min: 0.1,
        decay_shape: DecayShape::Cosine,
    };
    let c = curve(&s, 100);
    assert!(c[0] > 3e-5 && c[0] < 3e-4, "first step is above the start LR");
    assert!(close(c[0], 3e-5 + (3e-4 - 3e-5) / 10.0));
    assert!(c[..10].windows(2).all(|w| w[1] > w[0]));
    assert!(close(c[9], 3e-4) && close(c[10], 3e-4));
    assert!(close(c[100], 3e-5));
    // The constant-with-no-warmup continuation ("Reuse, Don't Retrain"): a re-warm with a
    // zero warmup starts at the peak.
    let none = LrSchedule::Rewarm {
        start: 3e-5,
        peak: 3e-4,
        warmup: Amount::Steps(0),
        min: 0.01,
        decay_shape: DecayShape::Linear,
    };
    assert!(close(lr_at(&none, 0, 10, 1), 3e-4));
}

#[test]
fn degenerate_totals_do_not_divide_by_zero() {
    let s = LrSchedule::Cosine { peak: 1e-3, warmup: Amount::Fraction(1.0), min: 0.1 };
    for step in 0..3 {
        assert!(lr_at(&s, step, 1, 0).is_finite());
        assert!(lr_at(&s, step, 0, 0).is_finite());
    }
}
