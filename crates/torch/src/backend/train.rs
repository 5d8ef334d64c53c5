//! The training loop: batches from a caller's [`DataSource`], gradient accumulation up to a
//! batch size in tokens, the recipe's LR schedule, clipping, AdamW, eval and checkpoint cadence,
//! and resumable checkpoints (weights, optimizer, step, RNG, the caller's sampler state).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use cptc::recipe::{Divergence, LrSchedule, ParamGroup};

use cptc::backend::{BackendError, Result};

use super::model::{IGNORE_INDEX, Llama, Precision, ids_tensor};
use super::optim::{AdamW, AdamWConfig};
use super::tch_error::TchContext;
use super::weights::{SaveDtype, read_safetensors, write_safetensors};
use cptc::backend::groups::{ParamList, ParamPlan, plan_params};
use cptc::backend::guard::GuardState;
use cptc::backend::metrics::{Throughput, TrainRecord};
use cptc::backend::schedule::lr_at;

/// One training sequence: `input[i]` predicts `target[i]` ([`IGNORE_INDEX`] leaves it out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub input: Vec<i64>,
    pub target: Vec<i64>,
}

impl Example {
    /// From `seq_len + 1` token ids: inputs are all but the last, targets all but the first.
    pub fn from_tokens(ids: &[u32]) -> Self {
        let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let n = ids.len().saturating_sub(1);
        Self { input: ids[..n].to_vec(), target: ids[ids.len() - n..].to_vec() }
    }

    /// From `seq_len + 1` token ids and their loss mask (1: a target): a target whose mask is 0
    /// (a prompt token) counts in no loss.
    pub fn from_masked(ids: &[u32], mask: &[u8]) -> Self {
        let mut e = Self::from_tokens(ids);
        let n = e.target.len();
        for (t, &keep) in e.target.iter_mut().zip(&mask[mask.len().saturating_sub(n)..]) {
            if keep == 0 {
                *t = IGNORE_INDEX;
            }
        }
        e
    }

    /// An input/target pair of one length (targets may be [`IGNORE_INDEX`], e.g. for prompts).
    pub fn pair(input: Vec<i64>, target: Vec<i64>) -> Self {
        Self { input, target }
    }

    /// Positions that count in the loss.
    pub fn n_targets(&self) -> u64 {
        self.target.iter().filter(|&&t| t != IGNORE_INDEX).count() as u64
    }

    pub(crate) fn validate(&self, index: u64, vocab: i64, seq_len: Option<usize>) -> Result<()> {
        let bad = |reason: String| Err(BackendError::BadExample { index, reason });
        if self.input.len() != self.target.len() {
            return bad(format!("{} inputs but {} targets", self.input.len(), self.target.len()));
        }
        if self.input.is_empty() {
            return bad("no tokens".to_owned());
        }
        if let Some(n) = seq_len
            && self.input.len() != n
        {
            return bad(format!("{} tokens, the run's seq_len is {n}", self.input.len()));
        }
        if let Some(t) = self.input.iter().find(|&&t| !(0..vocab).contains(&t)) {
            return bad(format!("input token {t} is outside the vocabulary 0..{vocab}"));
        }
        if let Some(t) = self.target.iter().find(|&&t| t != IGNORE_INDEX && !(0..vocab).contains(&t)) {
            return bad(format!("target token {t} is outside the vocabulary 0..{vocab}"));
        }
        Ok(())
    }
}

/// Where training sequences come from (the data pipeline implements this).
pub trait DataSource {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The next sequence, or `None` when the data is exhausted.
    fn next_example(&mut self) -> std::result::Result<Option<Example>, Self::Error>;

    /// Opaque bytes that let the source continue exactly where it is now; saved in checkpoints
    /// and handed back by [`Trainer::resume`].
    fn sampler_state(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// A [`DataSource`] over an in-memory list; its sampler state is the position (8 bytes, LE).
pub struct VecSource {
    examples: Vec<Example>,
    pos: usize,
}

impl VecSource {
    pub fn new(examples: Vec<Example>) -> Self {
        Self { examples, pos: 0 }
    }

    /// Continues from a state returned by `sampler_state`.
    pub fn resume(examples: Vec<Example>, state: &[u8]) -> Self {
        let pos = <[u8; 8]>::try_from(state).map_or(0, u64::from_le_bytes) as usize;
        Self { examples, pos }
    }
}

impl DataSource for VecSource {
    type Error = std::convert::Infallible;

    fn next_example(&mut self) -> std::result::Result<Option<Example>, Self::Error> {
        let e = self.examples.get(self.pos).cloned();
        self.pos += usize::from(e.is_some());
        Ok(e)
    }

    fn sampler_state(&self) -> Vec<u8> {
        (self.pos as u64).to_le_bytes().to_vec()
    }
}

/// Callbacks at the loop's cadences; every method has a no-op default.
pub trait TrainHooks {
    /// After each optimizer step.
    fn on_step(&mut self, _record: &TrainRecord) -> Result<()> {
        Ok(())
    }

    /// Every `eval_every` steps and after the last one, with the model in its current state.
    fn on_eval(&mut self, _step: u64, _model: &Llama) -> Result<()> {
        Ok(())
    }

    /// After a checkpoint is written.
    fn on_checkpoint(&mut self, _step: u64, _dir: &Path) -> Result<()> {
        Ok(())
    }
}

/// Hooks that do nothing.
pub struct NoHooks;
impl TrainHooks for NoHooks {}

/// Everything the loop needs besides the model and the data.
#[derive(Clone, Debug, Serialize)]
pub struct TrainConfig {
    /// Tokens per sequence (inputs; the source yields `seq_len + 1` ids per sequence).
    pub seq_len: usize,
    /// Sequences per optimizer step: `round(batch_tokens / seq_len)`, at least 1.
    pub batch_tokens: u64,
    /// Sequences per forward/backward pass; gradients accumulate over the rest of the batch.
    pub micro_batch: usize,
    pub total_steps: u64,
    pub schedule: LrSchedule,
    pub adamw: AdamWConfig,
    /// Global gradient-norm limit; 0 disables clipping.
    pub grad_clip: f64,
    pub seed: u64,
    #[serde(skip)]
    pub groups: Vec<ParamGroup>,
    /// Vocabulary size before expansion, for the `new_embeddings` group.
    pub old_vocab: Option<i64>,
    pub eval_every: Option<u64>,
    pub checkpoint_every: Option<u64>,
    /// Also checkpoint once this much time has passed since the last checkpoint (or the start).
    #[serde(skip)]
    pub checkpoint_interval: Option<std::time::Duration>,
    /// Checkpoint after the last step too (off where the caller saves the model itself).
    pub checkpoint_last: bool,
    /// Where `step-NNNNNNNN` checkpoint directories go; none written when unset.
    pub checkpoint_dir: Option<PathBuf>,
    /// How many checkpoints to keep (the newest); 0 keeps all.
    pub keep_checkpoints: usize,
    /// Forward arithmetic; `None` picks bf16 on CUDA, float32 on CPU.
    pub precision: Option<Precision>,
    /// Peak FLOP/s of the device for MFU; MFU is not reported without it.
    pub peak_flops: Option<f64>,
    /// Stop with [`BackendError::Diverged`] when the loss stays above this bound; off when unset.
    pub divergence: Option<Divergence>,
    /// The step the LR schedule counts from (0, or where a fork on its own clock starts): the
    /// schedule spans `total_steps - schedule_origin` steps.
    pub schedule_origin: u64,
    /// Steps after which the whole state is kept in `keep_dir` (never pruned): forks start there.
    pub keep_at: Vec<u64>,
    pub keep_dir: Option<PathBuf>,
}

impl TrainConfig {
    /// Settings with the usual defaults for a run of `total_steps` steps.
    pub fn new(seq_len: usize, batch_tokens: u64, total_steps: u64, schedule: LrSchedule) -> Self {
        Self {
            seq_len,
            batch_tokens,
            micro_batch: 1,
            total_steps,
            schedule,
            adamw: AdamWConfig::default(),
            grad_clip: 1.0,
            seed: 0,
            groups: Vec::new(),
            old_vocab: None,
            eval_every: None,
            checkpoint_every: None,
            checkpoint_interval: None,
            checkpoint_last: true,
            checkpoint_dir: None,
            keep_checkpoints: 0,
            precision: None,
            peak_flops: None,
            divergence: None,
            schedule_origin: 0,
            keep_at: Vec::new(),
            keep_dir: None,
        }
    }

    pub fn seqs_per_step(&self) -> usize {
        cptc::recipe::StepGeometry::seqs_per_step(self.batch_tokens, self.seq_len as u64) as usize
    }

    pub fn tokens_per_step(&self) -> u64 {
        (self.seqs_per_step() * self.seq_len) as u64
    }

    fn validate(&self) -> Result<()> {
        if self.seq_len == 0 || self.micro_batch == 0 || self.total_steps == 0 {
            return Err(BackendError::train_config("seq_len, micro_batch and total_steps must be positive"));
        }
        if self.grad_clip.is_nan() || self.grad_clip < 0.0 {
            return Err(BackendError::train_config("grad_clip must be 0 (off) or positive"));
        }
        Ok(())
    }
}

/// The serialisable part of a checkpoint (`trainer_state.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainerState {
    format: String,
    step: u64,
    total_steps: u64,
    tokens_seen: u64,
    adam_steps: u64,
    /// ChaCha8 seed (hex), stream and word position of the trainer's RNG.
    rng_seed: String,
    rng_stream: u64,
    rng_word_pos: String,
    last_loss: Option<f64>,
    /// The divergence guard's state: the first step's loss and where the current run of
    /// steps above the bound began (absent in older checkpoints).
    #[serde(default)]
    first_loss: Option<f64>,
    #[serde(default)]
    above_since: Option<u64>,
    /// The run's settings, for people reading the checkpoint (not read back).
    config: serde_json::Value,
}

const STATE_FORMAT: &str = "cptc-train-v1";

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    pub steps: u64,
    pub tokens_seen: u64,
    pub last_loss: Option<f64>,
    /// True when the data ran out before `total_steps`.
    pub data_exhausted: bool,
    pub last_checkpoint: Option<PathBuf>,
}

/// Trains one model; see the module docs.
pub struct Trainer {
    model: Llama,
    cfg: TrainConfig,
    plans: Vec<ParamPlan>,
    opt: AdamW,
    step: u64,
    tokens_seen: u64,
    rng: ChaCha8Rng,
    last_loss: Option<f64>,
    last_checkpoint: Option<PathBuf>,
    throughput: Throughput,
    examples_seen: u64,
    guard: GuardState,
}

impl Trainer {
    pub fn new(mut model: Llama, cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        tch::manual_seed(cfg.seed as i64);
        model.set_precision(cfg.precision.unwrap_or_else(|| Precision::for_device(model.device())));
        let plans = {
            let c = model.config();
            let params = super::model::param_shapes(c);
            let list = ParamList { params: &params, n_layers: c.num_hidden_layers, tied: c.tie_word_embeddings };
            plan_params(&list, &cfg.groups, cfg.old_vocab)?
        };
        let opt = AdamW::new(&model, &plans, cfg.adamw)?;
        let throughput = Throughput::new(model.config(), cfg.seq_len, cfg.peak_flops);
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            model,
            cfg,
            plans,
            opt,
            step: 0,
            tokens_seen: 0,
            last_loss: None,
            last_checkpoint: None,
            throughput,
            examples_seen: 0,
            guard: GuardState::default(),
        })
    }

    /// Continues from a checkpoint written by [`Trainer::save_checkpoint`]; returns the trainer
    /// and the sampler state the data source saved. `cfg` is the run's configuration (its
    /// groups and schedule must be the ones the checkpoint was trained with).
    pub fn resume(dir: &Path, cfg: TrainConfig, device: Device) -> Result<(Self, Vec<u8>)> {
        let state_path = dir.join("trainer_state.json");
        let text = fs::read_to_string(&state_path).map_err(|e| BackendError::io("read", &state_path, e))?;
        let state: TrainerState =
            serde_json::from_str(&text).map_err(|e| BackendError::checkpoint(&state_path, e.to_string()))?;
        if state.format != STATE_FORMAT {
            return Err(BackendError::checkpoint(dir, format!("format `{}`", state.format)));
        }
        let model = Llama::load(dir, device)?;
        let mut t = Self::new(model, cfg)?;
        let opt_path = dir.join("optimizer.safetensors");
        let moments = read_safetensors(&opt_path)?;
        let moments = moments
            .into_iter()
            .map(|(n, m)| m.f_to_device(device).map(|m| (n, m)))
            .collect::<Result<Vec<_>, _>>()
            .ctx("moving AdamW state")?;
        t.opt.load_state(&moments, state.adam_steps)?;
        t.step = state.step;
        t.tokens_seen = state.tokens_seen;
        t.last_loss = state.last_loss;
        t.guard = GuardState { first_loss: state.first_loss, above_since: state.above_since };
        t.rng = restore_rng(&state).ok_or_else(|| BackendError::checkpoint(&state_path, "bad RNG state"))?;
        t.last_checkpoint = Some(dir.to_owned());
        let sampler_path = dir.join("sampler_state.bin");
        let sampler = fs::read(&sampler_path).map_err(|e| BackendError::io("read", &sampler_path, e))?;
        Ok((t, sampler))
    }

    pub fn model(&self) -> &Llama {
        &self.model
    }

    pub fn into_model(self) -> Llama {
        self.model
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    pub fn plans(&self) -> &[ParamPlan] {
        &self.plans
    }

    /// Optimizer steps taken (the schedule position).
    pub fn step_index(&self) -> u64 {
        self.step
    }

    pub fn tokens_seen(&self) -> u64 {
        self.tokens_seen
    }

    /// The trainer's seeded RNG (saved and restored with checkpoints), for callers that need
    /// randomness tied to the run (e.g. initialising new rows).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// One optimizer step over `batch` (all sequences of the step). The loss is the mean over
    /// every counted target of the whole batch, so accumulation gives the big-batch gradient.
    pub fn train_step(&mut self, batch: &[Example]) -> Result<TrainRecord> {
        let start = Instant::now();
        let vocab = self.model.config().vocab_size;
        for (i, e) in batch.iter().enumerate() {
            e.validate(self.examples_seen + i as u64, vocab, None)?;
        }
        let n_targets: u64 = batch.iter().map(Example::n_targets).sum();
        let origin = self.cfg.schedule_origin.min(self.step);
        let lr =
            lr_at(&self.cfg.schedule, self.step - origin, self.cfg.total_steps - origin, self.cfg.tokens_per_step());
        self.opt.zero_grad();
        let device = self.model.device();
        let mut loss_sum = 0.0;
        let mut tokens = 0u64;
        let mut chunks: Vec<&[Example]> = Vec::new();
        // Micro-batches need equal lengths to stack; split where the length changes.
        for run in batch.chunk_by(|a, b| a.input.len() == b.input.len()) {
            chunks.extend(run.chunks(self.cfg.micro_batch));
        }
        for chunk in chunks {
            let inputs: Vec<&[i64]> = chunk.iter().map(|e| e.input.as_slice()).collect();
            let targets: Vec<&[i64]> = chunk.iter().map(|e| e.target.as_slice()).collect();
            let input = ids_tensor(&inputs, device)?;
            let target = ids_tensor(&targets, device)?;
            let sum = self.model.loss_sum(&input, &target)?;
            let loss = sum.f_div_scalar(n_targets.max(1) as f64).ctx("scaling the loss")?;
            let value = sum.f_double_value(&[]).ctx("reading the loss")?;
            if !value.is_finite() {
                return Err(self.non_finite("loss", value));
            }
            loss.f_backward().ctx("backward pass")?;
            loss_sum += value;
            tokens += inputs.iter().map(|r| r.len() as u64).sum::<u64>();
        }
        let grad_norm = self.opt.clip_grad_norm(self.cfg.grad_clip)?;
        if !grad_norm.is_finite() {
            return Err(self.non_finite("gradient norm", grad_norm));
        }
        self.opt.step(lr)?;
        self.step += 1;
        self.tokens_seen += tokens;
        self.examples_seen += batch.len() as u64;
        let loss = loss_sum / n_targets.max(1) as f64;
        self.last_loss = Some(loss);
        let secs = start.elapsed().as_secs_f64();
        Ok(self.throughput.record(self.step, self.tokens_seen, loss, lr, grad_norm, tokens, secs))
    }

    /// The divergence guard: fails once the loss has stayed above the bound for its steps.
    fn watch_divergence(&mut self, loss: f64) -> Result<()> {
        let Some(guard) = self.cfg.divergence else { return Ok(()) };
        self.guard.observe(guard, self.step, loss, self.last_checkpoint.clone())
    }

    fn non_finite(&self, what: &'static str, value: f64) -> BackendError {
        BackendError::NonFinite { what, value, step: self.step, last_checkpoint: self.last_checkpoint.clone() }
    }

    /// Trains until `total_steps` or until the data runs out (a partial last batch is not
    /// trained on), calling the hooks at their cadences and writing checkpoints.
    pub fn run<D: DataSource>(&mut self, data: &mut D, hooks: &mut dyn TrainHooks) -> Result<TrainSummary> {
        let per_step = self.cfg.seqs_per_step();
        let mut exhausted = false;
        let mut since_checkpoint = std::time::Instant::now();
        while self.step < self.cfg.total_steps {
            let mut batch = Vec::with_capacity(per_step);
            while batch.len() < per_step {
                match data.next_example().map_err(|e| BackendError::Data { source: Box::new(e) })? {
                    Some(e) => {
                        e.validate(
                            self.examples_seen + batch.len() as u64,
                            self.model.config().vocab_size,
                            Some(self.cfg.seq_len),
                        )?;
                        batch.push(e);
                    }
                    None => break,
                }
            }
            if batch.len() < per_step {
                exhausted = true;
                break;
            }
            let record = self.train_step(&batch)?;
            hooks.on_step(&record)?;
            self.watch_divergence(record.loss)?;
            let last = self.step == self.cfg.total_steps;
            if self.cfg.eval_every.is_some_and(|k| self.step.is_multiple_of(k))
                || (last && self.cfg.eval_every.is_some())
            {
                hooks.on_eval(self.step, &self.model)?;
            }
            let ckpt_due = self.cfg.checkpoint_every.is_some_and(|k| self.step.is_multiple_of(k))
                || (last && self.cfg.checkpoint_last)
                || (!last && self.cfg.checkpoint_interval.is_some_and(|i| since_checkpoint.elapsed() >= i));
            if let (true, Some(root)) = (ckpt_due, self.cfg.checkpoint_dir.clone()) {
                let dir = self.save_checkpoint(&root, &data.sampler_state())?;
                hooks.on_checkpoint(self.step, &dir)?;
                since_checkpoint = std::time::Instant::now();
            }
            if let (true, Some(root)) = (self.cfg.keep_at.contains(&self.step), self.cfg.keep_dir.clone()) {
                self.write_state(&root, &data.sampler_state())?;
            }
        }
        Ok(TrainSummary {
            steps: self.step,
            tokens_seen: self.tokens_seen,
            last_loss: self.last_loss,
            data_exhausted: exhausted,
            last_checkpoint: self.last_checkpoint.clone(),
        })
    }

    /// Writes `root/step-NNNNNNNN` atomically (a temporary directory renamed into place):
    /// the model in Hugging Face layout (float32), `optimizer.safetensors`,
    /// `trainer_state.json` and `sampler_state.bin`. Prunes old ones per `keep_checkpoints`.
    pub fn save_checkpoint(&mut self, root: &Path, sampler_state: &[u8]) -> Result<PathBuf> {
        let dir = self.write_state(root, sampler_state)?;
        self.last_checkpoint = Some(dir.clone());
        self.prune(root)?;
        Ok(dir)
    }

    /// Writes the whole state as `root/step-NNNNNNNN` (see [`Trainer::save_checkpoint`]),
    /// atomically, pruning nothing.
    pub fn write_state(&self, root: &Path, sampler_state: &[u8]) -> Result<PathBuf> {
        fs::create_dir_all(root).map_err(|e| BackendError::io("create", root, e))?;
        let name = format!("step-{:08}", self.step);
        let dir = root.join(&name);
        let tmp = root.join(format!(".{name}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| BackendError::io("remove", &tmp, e))?;
        }
        self.model.save(&tmp, SaveDtype::F32, None)?;
        write_safetensors(&tmp.join("optimizer.safetensors"), &self.opt.state_tensors(), Kind::Float)?;
        let state = TrainerState {
            format: STATE_FORMAT.to_owned(),
            step: self.step,
            total_steps: self.cfg.total_steps,
            tokens_seen: self.tokens_seen,
            adam_steps: self.opt.steps_taken(),
            rng_seed: hex(&self.rng.get_seed()),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            last_loss: self.last_loss,
            first_loss: self.guard.first_loss,
            above_since: self.guard.above_since,
            config: serde_json::to_value(&self.cfg).unwrap_or_default(),
        };
        let state_path = tmp.join("trainer_state.json");
        let text = serde_json::to_string_pretty(&state).unwrap_or_default();
        fs::write(&state_path, text).map_err(|e| BackendError::io("write", &state_path, e))?;
        let sampler_path = tmp.join("sampler_state.bin");
        fs::write(&sampler_path, sampler_state).map_err(|e| BackendError::io("write", &sampler_path, e))?;
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| BackendError::io("remove", &dir, e))?;
        }
        fs::rename(&tmp, &dir).map_err(|e| BackendError::io("rename into", &dir, e))?;
        Ok(dir)
    }

    fn prune(&self, root: &Path) -> Result<()> {
        if self.cfg.keep_checkpoints == 0 {
            return Ok(());
        }
        let dirs = checkpoints(root).map_err(|e| BackendError::io("list", root, e))?;
        let excess = dirs.len().saturating_sub(self.cfg.keep_checkpoints);
        for d in &dirs[..excess] {
            fs::remove_dir_all(d).map_err(|e| BackendError::io("remove", d, e))?;
        }
        Ok(())
    }
}

pub use cptc::stages::train::checkpoints;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn restore_rng(state: &TrainerState) -> Option<ChaCha8Rng> {
    let s = &state.rng_seed;
    if s.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(state.rng_stream);
    rng.set_word_pos(state.rng_word_pos.parse().ok()?);
    Some(rng)
}

/// Sums `loss_sum` over sequences without gradients: (nats, counted targets).
pub(crate) fn sum_nats(model: &Llama, batch: &[Example]) -> Result<(f64, u64)> {
    let _guard = tch::no_grad_guard();
    let inputs: Vec<&[i64]> = batch.iter().map(|e| e.input.as_slice()).collect();
    let targets: Vec<&[i64]> = batch.iter().map(|e| e.target.as_slice()).collect();
    let input = ids_tensor(&inputs, model.device())?;
    let target = ids_tensor(&targets, model.device())?;
    let sum = model.loss_sum(&input, &target)?;
    let nats = sum.f_to_kind(Kind::Double).and_then(|s| s.f_double_value(&[])).ctx("reading the loss")?;
    Ok((nats, batch.iter().map(Example::n_targets).sum()))
}
