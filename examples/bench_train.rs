//! Times cptc training steps (forward, backward, clipping, AdamW) on a given model shape and
//! prints one JSON line; `scripts/bench_backend.sh` runs it next to PyTorch eager.
//!
//! Usage: bench_train [--model DIR | --shape smollm2|tiny|1b] [--seq N] [--micro N]
//!        [--accum N] [--steps N] [--warmup N] [--device cpu|cuda] [--threads N]
//!        [--peak-flops F] | --cuda-check

use std::path::PathBuf;
use std::time::Instant;

use cptc::recipe::{Amount, LrSchedule};
use cptc_torch::backend::metrics::flops_per_token;
use cptc_torch::backend::train::{Example, TrainConfig, Trainer};
use cptc_torch::backend::{Device, Llama, LlamaConfig, Precision};

/// Shapes of the benchmark: SmolLM2-135M, a small one, and a ~1.1B Llama (TinyLlama's).
fn shape(name: &str) -> serde_json::Value {
    let (v, d, f, l, h, kv, tied) = match name {
        "smollm2" => (49_152, 576, 1536, 30, 9, 3, true),
        "tiny" => (4096, 256, 688, 4, 4, 2, false),
        "1b" => (32_000, 2048, 5632, 22, 32, 4, false),
        other => {
            eprintln!("unknown shape `{other}` (smollm2, tiny, 1b)");
            std::process::exit(2);
        }
    };
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": v,
        "hidden_size": d, "intermediate_size": f, "num_hidden_layers": l,
        "num_attention_heads": h, "num_key_value_heads": kv, "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0, "tie_word_embeddings": tied, "max_position_embeddings": 8192,
    })
}

/// CPU time of this thread in seconds (`/proc/thread-self/schedstat`, nanoseconds): with one
/// intra-op thread it is the step's work, much less disturbed than wall time when other
/// processes share the cores.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<f64>().ok()))
        .map_or(f64::NAN, |ns| ns / 1e9)
}

fn main() -> miette::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let num = |k: &str, d: usize| get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (seq, micro, accum) = (num("--seq", 256), num("--micro", 1), num("--accum", 1));
    let (steps, warmup) = (num("--steps", 5), num("--warmup", 2));
    cptc_torch::backend::set_num_threads(num("--threads", 1) as i32);
    if args.iter().any(|a| a == "--cuda-check") {
        let available = cptc_torch::backend::cuda_available();
        let diff = cptc_torch::backend::cuda_matmul_check();
        let ok = diff.as_ref().is_ok_and(|d| *d < 1e-2);
        let out = serde_json::json!({
            "check": "tch_cuda", "is_available": available,
            "matmul_max_abs_diff": diff.as_ref().ok(), "error": diff.as_ref().err().map(|e| e.to_string()),
        });
        println!("{out}");
        std::process::exit(if ok { 0 } else { 3 });
    }
    let device = match get("--device").as_deref() {
        Some("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    };
    if device.is_cuda() && !cptc_torch::backend::cuda_available() {
        eprintln!("CUDA requested but tch::Cuda::is_available() is false");
        std::process::exit(3);
    }
    let peak = get("--peak-flops").and_then(|v| v.parse::<f64>().ok());
    let load_start = Instant::now();
    let model = match get("--model") {
        Some(dir) => Llama::load(&PathBuf::from(dir), device)?,
        None => {
            let name = get("--shape").unwrap_or_else(|| "smollm2".to_owned());
            let cfg = LlamaConfig::from_value(shape(&name), std::path::Path::new(&name))?;
            Llama::random_torch(cfg, 0, device)?
        }
    };
    let load_s = load_start.elapsed().as_secs_f64();
    let cfg = model.config().clone();
    let schedule = LrSchedule::Constant { lr: 1e-4, warmup: Amount::Steps(0) };
    let mut tc = TrainConfig::new(seq, (seq * micro * accum) as u64, (steps + warmup) as u64, schedule);
    tc.micro_batch = micro;
    tc.peak_flops = peak;
    tc.precision = Some(Precision::for_device(device));
    let mut trainer = Trainer::new(model, tc)?;
    // Deterministic pseudo-random tokens (an LCG): the content does not change the cost.
    let mut x: u64 = 12345;
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 33) % cfg.vocab_size as u64) as u32
    };
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut last_loss = 0.0;
    for i in 0..steps + warmup {
        let batch: Vec<Example> =
            (0..micro * accum).map(|_| Example::from_tokens(&(0..=seq).map(|_| next()).collect::<Vec<_>>())).collect();
        let start = Instant::now();
        let cpu_start = thread_cpu_s();
        let rec = trainer.train_step(&batch)?;
        cptc_torch::backend::synchronize(device);
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
            cpu_times.push(thread_cpu_s() - cpu_start);
        }
        last_loss = rec.loss;
    }
    times.sort_by(f64::total_cmp);
    cpu_times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let tokens = (seq * micro * accum) as f64;
    let tps = tokens / median;
    let fpt = flops_per_token(&cfg, seq);
    let out = serde_json::json!({
        "impl": "cptc", "device": format!("{device:?}"), "params": cfg.n_params(),
        "seq": seq, "micro": micro, "accum": accum, "steps": steps,
        "precision": format!("{:?}", Precision::for_device(device)),
        "step_s_median": median, "step_s_min": times[0],
        "cpu_s_median": cpu_times[cpu_times.len() / 2], "tokens_per_s": tps,
        "flops_per_token": fpt, "achieved_tflops": tps * fpt / 1e12,
        "mfu": peak.map(|p| tps * fpt / p), "last_loss": last_loss, "load_s": load_s,
    });
    println!("{out}");
    Ok(())
}
