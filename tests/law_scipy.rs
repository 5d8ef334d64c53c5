//! Cross-check of the law fit against scipy: same objective, same starting grid, L-BFGS-B
//! (tests/python/law_fit_scipy.py); cptc's best objective must be within 1% of scipy's or better.

use std::path::{Path, PathBuf};
use std::process::Command;

use cptc::law::{self, Params, Point, Problem};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: &Path, what: &str) {
    assert!(path.exists(), "{what} is missing at {}: run `scripts/setup.sh` first", path.display());
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

const RATIOS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
const TOKENS: [f64; 4] = [1e9, 2e9, 5e9, 1e10];

fn points(p: &Params, ns: &[f64], rs: &[f64], ds: &[f64], noise: f64, seed: u64) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for &n in ns {
        for &r in rs {
            for &d in ds {
                out.push(Point { n, d, r, loss: p.loss(n, d, r) * (1.0 + noise * normal(&mut rng)) });
            }
        }
    }
    out
}

/// Runs scipy on `problem`; returns its best objective.
fn scipy_best(problem: &Problem) -> f64 {
    let python = repo().join(".venv/bin/python");
    require(&python, "the Python venv");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("problem.json");
    std::fs::write(&path, serde_json::to_string(problem).unwrap()).unwrap();
    // One BLAS thread: scipy's L-BFGS-B calls BLAS on tiny vectors, and a thread pool spinning
    // on a shared machine makes each call ~100x slower.
    let out = Command::new(&python)
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .arg(repo().join("tests/python/law_fit_scipy.py"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "scipy reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["best"].as_f64().unwrap()
}

fn compare(name: &str, pts: &[Point]) {
    let problem = Problem::new(pts, law::DEFAULT_HUBER_DELTA).unwrap();
    let ours = law::fit::solve(&problem).unwrap();
    let theirs = scipy_best(&problem);
    eprintln!(
        "{name}: cptc {:.9e} (start {}), scipy L-BFGS-B {theirs:.9e}, ratio {:.9}",
        ours.f,
        ours.start,
        ours.f / theirs
    );
    assert!(ours.f <= theirs * 1.01, "{name}: cptc {} > scipy {} * 1.01", ours.f, theirs);
}

#[test]
fn objective_matches_scipy_one_model_size() {
    let p = Params { e: 1.55, a: 0.0, alpha: 0.0, b: 180.0, beta: 0.32, c: 0.28, gamma: 0.55, eta: 0.45, eps: 0.04 };
    compare("1 model size, 0.5% noise", &points(&p, &[1.8e9], &RATIOS, &TOKENS, 0.005, 42));
}

#[test]
fn objective_matches_scipy_three_model_sizes() {
    let p = Params { e: 1.3, a: 400.0, alpha: 0.34, b: 180.0, beta: 0.32, c: 0.28, gamma: 0.55, eta: 0.45, eps: 0.04 };
    compare("3 model sizes, 0.5% noise", &points(&p, &[5e8, 1.8e9, 4e9], &RATIOS, &TOKENS, 0.005, 9));
}

/// The paper's grid: 9 ratios including 0 and 1, checkpoints at doubling D, 1% noise.
#[test]
fn objective_matches_scipy_paper_like_grid() {
    let p = Params { e: 1.2, a: 250.0, alpha: 0.3, b: 90.0, beta: 0.28, c: 0.35, gamma: 0.4, eta: 0.6, eps: 0.08 };
    let ratios = [0.0, 0.1, 0.2, 1.0 / 3.0, 0.5, 2.0 / 3.0, 0.8, 0.9, 1.0];
    let tokens = [5e8, 1e9, 2e9, 4e9, 8e9, 1.6e10];
    compare("paper-like grid, 1% noise", &points(&p, &[5e8, 1.8e9, 4e9], &ratios, &tokens, 0.01, 5));
}
