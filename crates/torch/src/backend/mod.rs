//! The built-in engine (tch): Llama-family model, checkpoints, training, evaluation on one device.
//!
//! # API
//!
//! - Model: [`Llama::load(dir, device)`](Llama::load) reads a Hugging Face directory
//!   (`config.json` parsed into `LlamaConfig`; safetensors in fp32/fp16/bf16, one file or
//!   sharded through `model.safetensors.index.json`) into float32 parameters named as in the
//!   checkpoint. [`Llama::save(dir, dtype, tokenizer_from)`](Llama::save) writes `config.json`,
//!   `model.safetensors` and copies `tokenizer.json` (+ config files) so transformers loads it.
//!   [`Llama::random`] builds seeded random weights for tests ([`Llama::random_torch`] draws
//!   big ones on the device, for benchmarks). [`Llama::logits`],
//!   [`Llama::loss_sum`] run the forward pass (causal SDPA, GQA, RoPE with the config's theta and
//!   Llama 3.x scaling,
//!   Qwen2 q/k/v biases, Qwen3 per-head q/k norms, Mistral's sliding window, tied or untied
//!   head) in float32 or bf16
//!   ([`Precision`]).
//! - Training: [`train::Trainer::new(model, TrainConfig)`](train::Trainer::new), then
//!   [`Trainer::run(&mut data, &mut hooks)`](train::Trainer::run) with a caller's
//!   [`train::DataSource`] (yields [`train::Example`]s: `seq_len + 1` ids or input/target pairs,
//!   plus an opaque sampler state) and [`train::TrainHooks`] (per-step records, eval at
//!   `eval_every`, checkpoint notices); or [`Trainer::train_step(&batch)`](train::Trainer::train_step)
//!   directly. AdamW with decoupled decay (not on norms/biases), global-norm clipping,
//!   accumulation to `batch_tokens`, parameter groups ([`cptc::backend::groups::plan_params`]: frozen parts,
//!   LR multipliers, new-embedding rows only). Checkpoints ([`Trainer::save_checkpoint`],
//!   [`Trainer::resume`]) hold weights, AdamW moments, the step, the RNG and the sampler state; a
//!   resumed CPU run is bit-identical. A NaN/inf loss or gradient norm stops with
//!   `BackendError::NonFinite` before touching the weights or the last checkpoint.
//! - Evaluation: [`eval::evaluate(model, examples, micro_batch)`](eval::evaluate) gives loss,
//!   perplexity and bits per byte; `cptc::backend::metrics::JsonlWriter` appends records;
//!   `metrics::flops_per_token` underlies the tokens/s and MFU in each `TrainRecord`.
//!
//! Devices: [`Device`] is re-exported; [`cuda_available`], [`cuda_matmul_check`] and
//! [`synchronize`] serve GPU checks and timings. bf16 on CUDA casts explicitly (see
//! [`Precision::Bf16`]); parameters and optimizer state stay float32.
//!
//! Determinism: on CPU with one intra-op thread (`tch::set_num_threads(1)`) every kernel used
//! here is deterministic, so equal inputs give bit-equal weights.
//!
//! [`Trainer::save_checkpoint`]: train::Trainer::save_checkpoint
//! [`Trainer::resume`]: train::Trainer::resume

pub mod eval;
mod model;
pub mod optim;
mod tch_error;
pub mod train;
mod weights;

pub use cptc::backend::{BackendError, LlamaConfig, Result, metrics, schedule};
pub use model::{IGNORE_INDEX, Llama, ParamKind, Precision, param_shapes};
pub use weights::SaveDtype;

/// Re-exported so callers name devices without depending on tch themselves.
pub use tch::Device;

use tch_error::TchContext as _;

/// Limits libtorch's intra-op threads (one in tests: two threads collapse on a shared
/// 2-core machine).
pub fn set_num_threads(n: i32) {
    tch::set_num_threads(n);
}

/// Whether CUDA is usable (libtorch_cuda linked and a device present).
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// CUDA devices libtorch sees.
pub fn cuda_device_count() -> i64 {
    tch::Cuda::device_count()
}

/// Waits for queued device work (timing on CUDA); a no-op on CPU.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// A CUDA smoke test: a 512x512 float32 matmul on `Cuda(0)` against the CPU. Returns the max
/// absolute difference; an error when CUDA is unavailable or the op fails.
pub fn cuda_matmul_check() -> Result<f64> {
    if !cuda_available() {
        return Err(BackendError::Unsupported {
            feature: "CUDA (tch::Cuda::is_available() is false: libtorch_cuda not linked or no device)".to_owned(),
        });
    }
    tch::manual_seed(0);
    let a = tch::Tensor::f_randn([512, 512], (tch::Kind::Float, Device::Cpu)).ctx("randn")?;
    let cpu = a.f_matmul(&a).ctx("CPU matmul")?;
    let g = a.f_to_device(Device::Cuda(0)).ctx("copy to CUDA")?;
    let gpu = g.f_matmul(&g).and_then(|t| t.f_to_device(Device::Cpu)).ctx("CUDA matmul")?;
    gpu.f_sub(&cpu)
        .and_then(|d| d.f_abs())
        .and_then(|d| d.f_max())
        .and_then(|d| d.f_double_value(&[]))
        .ctx("comparing matmuls")
}
