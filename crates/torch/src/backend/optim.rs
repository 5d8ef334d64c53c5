//! AdamW with decoupled weight decay and global-norm gradient clipping, written op for op like
//! PyTorch's single-tensor `torch.optim.AdamW` and `clip_grad_norm_` (its CPU defaults).

use tch::{Kind, Tensor};

use cptc::backend::{BackendError, Result};

use super::model::Llama;
use super::tch_error::TchContext;
use cptc::backend::groups::ParamPlan;

/// AdamW hyper-parameters other than the LR.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// The betas most LLM pre-training uses (Llama, OLMo); PyTorch's eps.
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }
    }
}

/// One trained parameter and its moments (restricted to `rows` when set).
struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    lr_mult: f64,
    decay: bool,
    rows: Option<(i64, i64)>,
    split_lr: Option<(i64, f64)>,
}

impl Slot {
    fn view(&self, t: &Tensor) -> Result<Tensor> {
        match self.rows {
            None => Ok(t.shallow_clone()),
            Some((a, b)) => t.f_narrow(0, a, b - a).ctx("selecting trained rows"),
        }
    }
}

/// The optimizer over the trainable parameters of one model.
pub struct AdamW {
    pub config: AdamWConfig,
    slots: Vec<Slot>,
    /// Updates taken so far (Adam's bias correction uses it).
    step: u64,
}

impl AdamW {
    /// Sets `requires_grad` from the plan (frozen parameters get no gradient at all) and
    /// creates zero moments for the trained ones.
    pub fn new(model: &Llama, plans: &[ParamPlan], config: AdamWConfig) -> Result<Self> {
        let mut slots = Vec::new();
        for (name, t) in model.parameters() {
            let plan = plans
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| BackendError::ParamGroups { reason: format!("no plan for parameter `{name}`") })?;
            let _ = t.f_set_requires_grad(plan.trainable).ctx("setting requires_grad")?;
            if !plan.trainable {
                continue;
            }
            let zeros = || -> Result<Tensor> {
                let shape = match plan.rows {
                    None => t.size(),
                    Some((a, b)) => {
                        let mut s = t.size();
                        s[0] = b - a;
                        s
                    }
                };
                Tensor::f_zeros(&shape, (Kind::Float, t.device())).ctx("allocating AdamW state")
            };
            slots.push(Slot {
                name: name.clone(),
                param: t.shallow_clone(),
                exp_avg: zeros()?,
                exp_avg_sq: zeros()?,
                lr_mult: plan.lr_mult,
                decay: plan.decay && config.weight_decay != 0.0,
                rows: plan.rows,
                split_lr: plan.split_lr,
            });
        }
        Ok(Self { config, slots, step: 0 })
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Number of trained parameter values (row-restricted ones count their rows).
    pub fn n_trained(&self) -> i64 {
        self.slots.iter().map(|s| s.exp_avg.numel() as i64).sum()
    }

    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }

    /// Gradients of the trained values (row views where restricted); absent ones are skipped.
    fn grads(&self) -> Result<Vec<(usize, Tensor)>> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let g = s.param.grad();
            if g.defined() {
                out.push((i, s.view(&g)?));
            }
        }
        Ok(out)
    }

    /// The global L2 norm of the gradients; when `max_norm > 0` scales them to at most it
    /// (PyTorch: `coef = min(max_norm / (norm + 1e-6), 1)`, applied unconditionally).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        let _guard = tch::no_grad_guard();
        let grads = self.grads()?;
        if grads.is_empty() {
            return Ok(0.0);
        }
        let norms = grads.iter().map(|(_, g)| g.f_norm()).collect::<Result<Vec<_>, _>>().ctx("gradient norms")?;
        let total = Tensor::f_stack(&norms, 0).and_then(|n| n.f_norm()).ctx("gradient norm")?;
        if max_norm > 0.0 {
            let coef = total
                .f_add_scalar(1e-6)
                .and_then(|d| d.f_reciprocal())
                .and_then(|r| r.f_mul_scalar(max_norm))
                .and_then(|c| c.f_clamp_max(1.0))
                .ctx("clip coefficient")?;
            for (_, mut g) in grads {
                let _ = g.f_mul_(&coef).ctx("clipping")?;
            }
        }
        total.f_double_value(&[]).ctx("reading the gradient norm")
    }

    /// One AdamW update at base LR `lr` (each parameter at `lr * lr_mult`).
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let c = self.config;
        let n = self.step as f64;
        let bias1 = 1.0 - c.beta1.powf(n);
        let bias2_sqrt = (1.0 - c.beta2.powf(n)).sqrt();
        for (i, grad) in self.grads()? {
            let s = &mut self.slots[i];
            let p = s.view(&s.param)?;
            // Row ranges of the trained view with their own LR (one range unless split).
            let rows = p.size()[0];
            let parts = match s.split_lr {
                Some((at, mult)) if at > 0 && at < rows => vec![(0, at, s.lr_mult), (at, rows, mult)],
                _ => vec![(0, rows, s.lr_mult)],
            };
            let mut f = || -> Result<(), tch::TchError> {
                let _ = s.exp_avg.f_lerp_(&grad, 1.0 - c.beta1)?;
                let _ = s.exp_avg_sq.f_mul_scalar_(c.beta2)?;
                let _ = s.exp_avg_sq.f_addcmul_(&grad, &grad.f_mul_scalar(1.0 - c.beta2)?)?;
                let mut denom = s.exp_avg_sq.f_sqrt()?;
                let _ = denom.f_div_scalar_(bias2_sqrt)?;
                let _ = denom.f_add_scalar_(c.eps)?;
                let update = s.exp_avg.f_div(&denom)?;
                for &(a, b, mult) in &parts {
                    let lr = lr * mult;
                    let (mut p, mut u) = if parts.len() == 1 {
                        (p.shallow_clone(), update.shallow_clone())
                    } else {
                        (p.f_narrow(0, a, b - a)?, update.f_narrow(0, a, b - a)?)
                    };
                    // Decay reads the parameter before the update, as torch's AdamW does.
                    if s.decay {
                        let _ = p.f_mul_scalar_(1.0 - lr * c.weight_decay)?;
                    }
                    let _ = u.f_mul_scalar_(-(lr / bias1))?;
                    let _ = p.f_add_(&u)?;
                }
                Ok(())
            };
            f().ctx(&format!("AdamW update of `{}`", s.name))?;
        }
        Ok(())
    }

    /// The moments as named tensors (`<param>.exp_avg`, `<param>.exp_avg_sq`) for checkpoints.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.slots.len() * 2);
        for s in &self.slots {
            out.push((format!("{}.exp_avg", s.name), s.exp_avg.shallow_clone()));
            out.push((format!("{}.exp_avg_sq", s.name), s.exp_avg_sq.shallow_clone()));
        }
        out
    }

    /// Restores moments and the step count saved by [`AdamW::state_tensors`]; every trained
    /// parameter must be present with the same shape.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)], step: u64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let find = |n: &str| tensors.iter().find(|(k, _)| k == n).map(|(_, t)| t);
        for s in &mut self.slots {
            for (suffix, dst) in [("exp_avg", &mut s.exp_avg), ("exp_avg_sq", &mut s.exp_avg_sq)] {
                let name = format!("{}.{suffix}", s.name);
                let src = find(&name)
                    .ok_or_else(|| BackendError::MissingTensor { name: name.clone(), dir: Default::default() })?;
                if src.size() != dst.size() {
                    return Err(BackendError::ShapeMismatch { name, expected: dst.size(), found: src.size() });
                }
                dst.f_copy_(src).ctx("restoring AdamW state")?;
            }
        }
        self.step = step;
        Ok(())
    }
}
