//! The train stage: the glue between the mix shard, the held-out shards and the built-in
//! engine: checkpoints, resume, evaluations during training, and a complete Hugging Face
//! folder as its output. Its parameters are `cptc::stages::train::Params`.

use std::collections::BTreeMap;

use cptc::data::shard::ShardReader;
use cptc::recipe::StepGeometry;
use cptc::stages::train::{Outcome, Params, RunFiles, start_model};
use cptc::stages::{Input, StageCtx, StageFailure};
use serde_json::{Value, json};

use super::eval::{eval_sets, threads};
use crate::backend::metrics::JsonlWriter;
use crate::backend::train::{DataSource, Example, TrainConfig, TrainHooks, Trainer};
use crate::backend::{BackendError, Llama, SaveDtype};
use crate::device;

/// Training sequences from a mix shard, in order; the position is the sampler state.
struct MixSource {
    shard: ShardReader,
    next: usize,
}

impl DataSource for MixSource {
    type Error = cptc::data::DataError;

    fn next_example(&mut self) -> Result<Option<Example>, Self::Error> {
        if self.next >= self.shard.len() {
            return Ok(None);
        }
        let ids = self.shard.read_doc(self.next)?;
        let example = if self.shard.masked() {
            Example::from_masked(&ids, &self.shard.read_mask(self.next)?)
        } else {
            Example::from_tokens(&ids)
        };
        self.next += 1;
        Ok(Some(example))
    }

    fn sampler_state(&self) -> Vec<u8> {
        (self.next as u64).to_le_bytes().to_vec()
    }
}

struct Hooks<'c, 'a> {
    ctx: &'c StageCtx<'a>,
    log: JsonlWriter,
    seq_len: usize,
    eval_bytes: u64,
    eval_steps: Vec<u64>,
    total_steps: u64,
    evals: Vec<Value>,
    /// Each evaluation as it is made, so a resumed run has those before its checkpoint.
    evals_log: JsonlWriter,
}

impl Hooks<'_, '_> {
    fn record_eval(&mut self, step: u64, sets: BTreeMap<String, Value>) -> crate::backend::Result<()> {
        let eval = json!({ "step": step, "sets": sets });
        self.evals_log.write(&eval)?;
        self.evals.push(eval);
        Ok(())
    }
}

impl TrainHooks for Hooks<'_, '_> {
    fn on_step(&mut self, record: &crate::backend::metrics::TrainRecord) -> crate::backend::Result<()> {
        self.log.write(record)?;
        self.ctx.progress.set_position(record.step);
        self.ctx
            .progress
            .set_message(format!("loss {:.3} lr {:.2e} {:.0} tok/s", record.loss, record.lr, record.tokens_per_s));
        Ok(())
    }

    fn on_eval(&mut self, step: u64, model: &Llama) -> crate::backend::Result<()> {
        if !self.eval_steps.contains(&step) && step != self.total_steps {
            return Ok(());
        }
        match eval_sets(self.ctx, model, self.seq_len, self.eval_bytes, step, &mut self.log) {
            Ok(sets) => self.record_eval(step, sets),
            Err(e) => Err(BackendError::Hook { hook: "held-out evaluation", source: e.diagnostic }),
        }
    }
}

pub fn run(p: &Params, ctx: &StageCtx<'_>) -> Result<Value, StageFailure> {
    crate::backend::set_num_threads(threads()?);
    let (tokens, seq_len, batch_tokens) = (p.tokens, p.seq_len, p.batch_tokens);
    let (dir, model_meta) = start_model(p, ctx)?;
    // The built-in engine's own refusals (an architecture it lacks) come before any work.
    crate::backend::LlamaConfig::from_file(&dir.join("config.json"))?;
    let device = device(p.device);
    let rope_theta = p.long_context.and_then(|l| l.rope_theta);

    let seq = seq_len as usize;
    let mut cfg = TrainConfig::new(seq, batch_tokens, 0, p.schedule);
    let geometry = StepGeometry::new(tokens, seq_len, batch_tokens);
    let tokens_per_step = geometry.tokens_per_step();
    // A fork's steps go on from its parent's; its schedule counts from `origin`.
    let (first, origin) = p.schedule_span();
    cfg.total_steps = first + geometry.steps;
    cfg.schedule_origin = origin;
    cfg.adamw.weight_decay = p.weight_decay;
    cfg.grad_clip = p.grad_clip;
    cfg.divergence = Some(p.divergence);
    cfg.seed = p.seed;
    cfg.groups = p.groups.clone();
    cfg.precision = Some(p.precision.into());
    cfg.old_vocab = model_meta.values.get("old_vocab").and_then(Value::as_i64);
    cfg.eval_every = Some(1); // the hooks decide which steps evaluate
    let total = cfg.total_steps;
    let eval_steps: Vec<u64> = p.eval_steps(geometry.steps, tokens_per_step).into_iter().map(|s| first + s).collect();

    if let Some(every) = ctx.checkpoint_every {
        // The newest checkpoint only: it is what a resume needs, and a model's optimizer state
        // is twice its size.
        cfg.checkpoint_interval = Some(every);
        cfg.checkpoint_last = false;
        cfg.keep_checkpoints = 1;
    }
    let files = RunFiles::of(ctx)?;
    cfg.checkpoint_dir.clone_from(&files.checkpoints);
    // The states forks start from: beside the checkpoints while training (a resumed run must
    // find those it kept before), moved into the artifact when it is done.
    let points = match &files.checkpoints {
        Some(checkpoints) => checkpoints.with_file_name("points"),
        None => ctx.out.join("points"),
    };
    cfg.keep_at.clone_from(&p.keep);
    cfg.keep_dir = Some(points.clone());

    let (mix_dir, _) = ctx.input(&Input::Data)?;
    let mut source = MixSource { shard: ShardReader::open(&mix_dir.join("train"))?, next: 0 };
    let eval_bytes = p.eval_bytes;
    // A run of this key cut short resumes from its checkpoint: weights, AdamW state, RNG and
    // data position, so it ends as an uninterrupted run would (bit for bit on CPU).
    let resumed = match files.latest_checkpoint() {
        Some(checkpoint) => match Trainer::resume(&checkpoint, cfg.clone(), device) {
            Ok((trainer, sampler)) => {
                let next = sampler.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
                if next.is_none() {
                    ctx.notice(&format!("not resuming from {}: its data position is unreadable", checkpoint.display()));
                }
                next.map(|next| (trainer, next as usize))
            }
            Err(e) => {
                ctx.notice(&format!("not resuming from {}: {e}", checkpoint.display()));
                None
            }
        },
        None => None,
    };
    let resumed_at = resumed.as_ref().map(|(t, _)| t.step_index());
    let evals = RunFiles::rewind(&files.evals, resumed_at)?;
    RunFiles::rewind(&files.metrics, resumed_at)?;
    let log = JsonlWriter::append(&files.metrics)?;
    let evals_log = JsonlWriter::append(&files.evals)?;
    let mut hooks = Hooks { ctx, log, seq_len: seq, eval_bytes, eval_steps, total_steps: total, evals, evals_log };
    let mut trainer = match resumed {
        Some((trainer, next)) => {
            ctx.notice(&format!("resuming at step {} from its checkpoint", trainer.step_index()));
            source.next = next;
            trainer
        }
        None => {
            // A checkpoint that could not be resumed from (or a save cut short) must not
            // outrank the fresh run's: they are pruned by name.
            if let Some(root) = &files.checkpoints
                && root.exists()
            {
                fs_err::remove_dir_all(root)?;
            }
            if let Some(points) = &cfg.keep_dir
                && points.exists()
            {
                fs_err::remove_dir_all(points)?;
            }
            match p.fork {
                // A fork starts from its parent's whole state at its step: weights, AdamW
                // moments, RNG; its own mix holds the data from there on.
                Some(fork) => {
                    let (parent, _) = ctx.input(&Input::Fork)?;
                    let state = cptc::stages::train::point_dir(parent, fork.step);
                    let (trainer, _) = Trainer::resume(&state, cfg, device)?;
                    // Its start, measured on its own held-out sets: the baseline of its gain.
                    let initial = eval_sets(ctx, trainer.model(), seq, eval_bytes, first, &mut hooks.log)?;
                    hooks.record_eval(first, initial)?;
                    trainer
                }
                None => {
                    let mut model = Llama::load(&dir, device)?;
                    model.set_precision(p.precision.into());
                    // Step 0: the starting model, so gain and forgetting have a baseline.
                    let initial = eval_sets(ctx, &model, seq, eval_bytes, 0, &mut hooks.log)?;
                    hooks.record_eval(0, initial)?;
                    // Long-context CPT trains (and saves) the model with its new RoPE base and
                    // scaling, after the baseline measured the base model as it was; its config
                    // then covers the trained length.
                    if p.long_context.is_some() {
                        model.extend_context(rope_theta, p.rope, seq_len)?;
                    }
                    Trainer::new(model, cfg)?
                }
            }
        }
    };
    let n_params = trainer.model().n_params();
    ctx.progress.set_length(total);
    ctx.progress.set_position(trainer.step_index());
    ctx.progress.reset_eta();
    let summary = trainer.run(&mut source, &mut hooks)?;
    // The finished state is checkpointed before the export: an export that fails (a full disk)
    // resumes at the last step and only exports again.
    if let Some(root) = &files.checkpoints
        && trainer.step_index() > 0
        && files.latest_checkpoint().is_none_or(|c| !c.ends_with(format!("step-{:08}", trainer.step_index())))
    {
        trainer.save_checkpoint(root, &source.sampler_state())?;
    }
    let model = trainer.into_model();
    // Data that ran out early still gets its final evaluation: the report needs an "after".
    let last_eval = hooks.evals.last().and_then(|e| e.get("step")).and_then(Value::as_u64);
    if summary.data_exhausted && summary.steps > 0 && last_eval != Some(summary.steps) {
        let sets = eval_sets(ctx, &model, seq, eval_bytes, summary.steps, &mut hooks.log)?;
        hooks.record_eval(summary.steps, sets)?;
    }
    // The tokenizer files come from the starting model's folder (a resized model's carry the
    // expanded tokenizer).
    model.save(&ctx.out.join("model"), SaveDtype::F32, Some(&dir))?;
    let evals = std::mem::take(&mut hooks.evals);
    files.publish(ctx, &evals)?;
    if points != ctx.out.join("points") && points.exists() {
        fs_err::rename(&points, ctx.out.join("points"))?;
    }
    let own_steps = summary.steps.saturating_sub(first);
    let outcome = Outcome {
        params: n_params as u64,
        tokens_per_step,
        steps: own_steps,
        // A fork's own tokens: the count it resumed with is its parent's.
        tokens: if first == 0 { summary.tokens_seen } else { own_steps * tokens_per_step },
        last_loss: summary.last_loss,
    };
    Ok(p.output(&outcome, &evals))
}
