//! The Llama-family decoder in tch: RMSNorm, RoPE (rotate_half), GQA through SDPA, SwiGLU,
//! tied or untied embeddings and Qwen2's q/k/v biases, with Hugging Face parameter names.

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Reduction, Tensor};

use cptc::backend::{BackendError, Result};
use cptc::backend::{LlamaConfig, Norms, QkNorm, RopeScaling};
use cptc::recipe::RopeExtension;

use super::tch_error::TchContext;

/// Target id whose position is left out of the loss (PyTorch's and Hugging Face's convention).
pub use cptc::backend::heldout::IGNORE_INDEX;

/// Arithmetic of the forward pass. Parameters always stay float32 (the master weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    /// bf16 matmuls and attention, float32 norms, residual stream, softmax and loss: the op
    /// lists of `torch.autocast(dtype=torch.bfloat16)`. tch's `autocast` can only select fp16,
    /// so the casts are explicit; like autocast, each weight is cast once per forward.
    Bf16,
}

impl From<cptc::recipe::Precision> for Precision {
    fn from(p: cptc::recipe::Precision) -> Self {
        match p {
            cptc::recipe::Precision::Fp32 => Self::F32,
            cptc::recipe::Precision::Bf16 => Self::Bf16,
        }
    }
}

impl Precision {
    /// bf16 on CUDA, float32 elsewhere (CPU bf16 matmuls are slow and gain nothing here).
    pub fn for_device(device: Device) -> Self {
        if device.is_cuda() { Self::Bf16 } else { Self::F32 }
    }

    fn compute_kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::Bf16 => Kind::BFloat16,
        }
    }
}

/// One decoder layer; the tensors are handles on the model's parameters.
struct Block {
    /// Before attention (pre-norm architectures).
    input_norm: Option<Tensor>,
    /// `post_attention_layernorm`: before the MLP (pre-norm), or on attention's output.
    post_norm: Tensor,
    /// Before the MLP (Gemma 2's sandwich).
    pre_ff_norm: Option<Tensor>,
    /// On the MLP's output (OLMo 2, Gemma 2).
    post_ff_norm: Option<Tensor>,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    q_b: Option<Tensor>,
    k_b: Option<Tensor>,
    v_b: Option<Tensor>,
    o_b: Option<Tensor>,
    /// RMSNorm of queries and keys before RoPE: per head (Qwen3) or whole (OLMo 2).
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    gate_b: Option<Tensor>,
    up_b: Option<Tensor>,
    down_b: Option<Tensor>,
}

/// A Llama-family causal LM with float32 parameters named as in Hugging Face checkpoints.
pub struct Llama {
    pub(crate) config: LlamaConfig,
    device: Device,
    precision: Precision,
    /// Every parameter once, in checkpoint order; a tied head is not listed separately.
    params: Vec<(String, Tensor)>,
    embed: Tensor,
    /// The output projection: a handle on `embed` when tied.
    head: Tensor,
    norm: Tensor,
    layers: Vec<Block>,
    inv_freq: Tensor,
    /// The sliding layers' own frequencies (Gemma 3), when they have them.
    inv_freq_local: Option<Tensor>,
    /// Where the weights came from: tokenizer files are copied from here on save.
    pub(crate) source_dir: Option<PathBuf>,
}

/// The name, shape and kind of every parameter the config implies, in checkpoint order.
pub fn param_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<i64>, ParamKind)> {
    let (d, f, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q, kv) = (cfg.q_dim(), cfg.kv_dim());
    let mut out = vec![("model.embed_tokens.weight".to_owned(), vec![v, d], ParamKind::Embedding)];
    for i in 0..cfg.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        let arch = cfg.arch();
        if arch.norms != Norms::Post {
            out.push((p("input_layernorm.weight"), vec![d], ParamKind::Norm));
        }
        out.push((p("self_attn.q_proj.weight"), vec![q, d], ParamKind::Matrix));
        if cfg.qkv_bias() {
            out.push((p("self_attn.q_proj.bias"), vec![q], ParamKind::Bias));
        }
        out.push((p("self_attn.k_proj.weight"), vec![kv, d], ParamKind::Matrix));
        if cfg.qkv_bias() {
            out.push((p("self_attn.k_proj.bias"), vec![kv], ParamKind::Bias));
        }
        out.push((p("self_attn.v_proj.weight"), vec![kv, d], ParamKind::Matrix));
        if cfg.qkv_bias() {
            out.push((p("self_attn.v_proj.bias"), vec![kv], ParamKind::Bias));
        }
        out.push((p("self_attn.o_proj.weight"), vec![d, q], ParamKind::Matrix));
        if cfg.o_bias() {
            out.push((p("self_attn.o_proj.bias"), vec![d], ParamKind::Bias));
        }
        let (qn, kn) = match cfg.qk_norm() {
            QkNorm::None => (0, 0),
            QkNorm::PerHead => (cfg.head_dim(), cfg.head_dim()),
            QkNorm::Whole => (q, kv),
        };
        if qn > 0 {
            out.push((p("self_attn.q_norm.weight"), vec![qn], ParamKind::Norm));
            out.push((p("self_attn.k_norm.weight"), vec![kn], ParamKind::Norm));
        }
        out.push((p("post_attention_layernorm.weight"), vec![d], ParamKind::Norm));
        if arch.norms == Norms::Sandwich {
            out.push((p("pre_feedforward_layernorm.weight"), vec![d], ParamKind::Norm));
        }
        if arch.norms != Norms::Pre {
            out.push((p("post_feedforward_layernorm.weight"), vec![d], ParamKind::Norm));
        }
        out.push((p("mlp.gate_proj.weight"), vec![f, d], ParamKind::Matrix));
        if cfg.mlp_bias {
            out.push((p("mlp.gate_proj.bias"), vec![f], ParamKind::Bias));
        }
        out.push((p("mlp.up_proj.weight"), vec![f, d], ParamKind::Matrix));
        if cfg.mlp_bias {
            out.push((p("mlp.up_proj.bias"), vec![f], ParamKind::Bias));
        }
        out.push((p("mlp.down_proj.weight"), vec![d, f], ParamKind::Matrix));
        if cfg.mlp_bias {
            out.push((p("mlp.down_proj.bias"), vec![d], ParamKind::Bias));
        }
    }
    out.push(("model.norm.weight".to_owned(), vec![d], ParamKind::Norm));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_owned(), vec![v, d], ParamKind::Head));
    }
    out
}

pub use cptc::backend::groups::ParamKind;

impl Llama {
    /// Builds the model from a source of named tensors (checked against the config's shapes).
    pub(crate) fn from_tensors(
        config: LlamaConfig,
        device: Device,
        mut get: impl FnMut(&str, &[i64]) -> Result<Tensor>,
    ) -> Result<Self> {
        let mut params = Vec::new();
        for (name, shape, _) in param_shapes(&config) {
            let t = get(&name, &shape)?;
            if t.size() != shape {
                return Err(BackendError::ShapeMismatch { name, expected: shape, found: t.size() });
            }
            let t = t
                .f_to_device(device)
                .and_then(|t| t.f_to_kind(Kind::Float))
                .and_then(|t| t.f_contiguous())
                .and_then(|t| t.f_detach())
                .and_then(|t| t.f_set_requires_grad(true))
                .ctx(&format!("placing `{name}`"))?;
            params.push((name, t));
        }
        Self::assemble(config, device, params, None)
    }

    fn assemble(
        config: LlamaConfig,
        device: Device,
        params: Vec<(String, Tensor)>,
        source_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let find = |name: &str| -> Result<Tensor> {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| BackendError::MissingTensor { name: name.to_owned(), dir: PathBuf::new() })
        };
        let opt = |name: String, present: bool| -> Result<Option<Tensor>> {
            if present { find(&name).map(Some) } else { Ok(None) }
        };
        let mut layers = Vec::new();
        for i in 0..config.num_hidden_layers {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            let (qkv_b, o_b, mlp_b) = (config.qkv_bias(), config.o_bias(), config.mlp_bias);
            let norms = config.arch().norms;
            let qk_norm = config.qk_norm() != QkNorm::None;
            layers.push(Block {
                input_norm: opt(p("input_layernorm.weight"), norms != Norms::Post)?,
                post_norm: find(&p("post_attention_layernorm.weight"))?,
                pre_ff_norm: opt(p("pre_feedforward_layernorm.weight"), norms == Norms::Sandwich)?,
                post_ff_norm: opt(p("post_feedforward_layernorm.weight"), norms != Norms::Pre)?,
                q: find(&p("self_attn.q_proj.weight"))?,
                k: find(&p("self_attn.k_proj.weight"))?,
                v: find(&p("self_attn.v_proj.weight"))?,
                o: find(&p("self_attn.o_proj.weight"))?,
                q_b: opt(p("self_attn.q_proj.bias"), qkv_b)?,
                k_b: opt(p("self_attn.k_proj.bias"), qkv_b)?,
                v_b: opt(p("self_attn.v_proj.bias"), qkv_b)?,
                o_b: opt(p("self_attn.o_proj.bias"), o_b)?,
                q_norm: opt(p("self_attn.q_norm.weight"), qk_norm)?,
                k_norm: opt(p("self_attn.k_norm.weight"), qk_norm)?,
                gate: find(&p("mlp.gate_proj.weight"))?,
                up: find(&p("mlp.up_proj.weight"))?,
                down: find(&p("mlp.down_proj.weight"))?,
                gate_b: opt(p("mlp.gate_proj.bias"), mlp_b)?,
                up_b: opt(p("mlp.up_proj.bias"), mlp_b)?,
                down_b: opt(p("mlp.down_proj.bias"), mlp_b)?,
            });
        }
        let embed = find("model.embed_tokens.weight")?;
        let head = if config.tie_word_embeddings { embed.shallow_clone() } else { find("lm_head.weight")? };
        let norm = find("model.norm.weight")?;
        let inv_freq = inv_freq(&config, device)?;
        let inv_freq_local = local_inv_freq(&config, device)?;
        Ok(Self {
            precision: Precision::for_device(device),
            config,
            device,
            params,
            embed,
            head,
            norm,
            layers,
            inv_freq,
            inv_freq_local,
            source_dir,
        })
    }

    /// A model with random weights drawn from a seeded ChaCha stream (normal with std
    /// `initializer_range`, norms 1, biases 0, as Hugging Face initialises), for tests.
    pub fn random(config: LlamaConfig, seed: u64, device: Device) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let std = config.initializer_range as f32;
        let kinds: Vec<_> = param_shapes(&config).into_iter().map(|(n, _, k)| (n, k)).collect();
        Self::from_tensors(config, device, |name, shape| {
            let n: i64 = shape.iter().product();
            let kind = kinds.iter().find(|(k, _)| k == name).map(|(_, k)| *k);
            let data: Vec<f32> = match kind {
                Some(ParamKind::Norm) => vec![1.0; n as usize],
                Some(ParamKind::Bias) => vec![0.0; n as usize],
                _ => (0..n).map(|_| std * cptc::random::standard_normal(&mut rng) as f32).collect(),
            };
            Tensor::f_from_slice(&data).and_then(|t| t.f_reshape(shape)).ctx("random init")
        })
    }

    /// Like [`Llama::random`] but drawn by torch's generator on `device`: fast for big shapes
    /// (benchmarks), reproducible only with the same torch build and device.
    pub fn random_torch(config: LlamaConfig, seed: u64, device: Device) -> Result<Self> {
        tch::manual_seed(seed as i64);
        let std = config.initializer_range;
        let kinds: Vec<_> = param_shapes(&config).into_iter().map(|(n, _, k)| (n, k)).collect();
        Self::from_tensors(config, device, |name, shape| {
            let opts = (Kind::Float, device);
            let kind = kinds.iter().find(|(k, _)| k == name).map(|(_, k)| *k);
            match kind {
                Some(ParamKind::Norm) => Tensor::f_ones(shape, opts),
                Some(ParamKind::Bias) => Tensor::f_zeros(shape, opts),
                _ => Tensor::f_randn(shape, opts).and_then(|t| t.f_mul_scalar(std)),
            }
            .ctx("random init")
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Every parameter once, with its Hugging Face name, in checkpoint order.
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    pub fn n_params(&self) -> i64 {
        self.params.iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// Raises `max_position_embeddings` to `len` when below it: a model trained on longer
    /// sequences than its config declares must say so, or loaders clamp evaluation to the old length.
    pub fn cover_positions(&mut self, len: i64) {
        self.config.max_position_embeddings = self.config.max_position_embeddings.max(len);
    }

    /// Long-context training: a new RoPE base and/or scaling, and positions covering
    /// `seq_len`, written into the config (saved with the model) and applied to the
    /// frequencies; see `cptc::backend::rope`.
    pub fn extend_context(&mut self, theta: Option<f64>, rope: Option<RopeExtension>, seq_len: u64) -> Result<()> {
        let mut config = self.config.to_json("float32");
        let extended = cptc::backend::rope::extend(&config, theta, rope, seq_len);
        cptc::backend::rope::write(&mut config, &extended);
        self.config = LlamaConfig::from_value(config, std::path::Path::new("<long-context config>"))?;
        self.inv_freq = inv_freq(&self.config, self.device)?;
        self.inv_freq_local = local_inv_freq(&self.config, self.device)?;
        Ok(())
    }

    /// Changes the RoPE base (long-context training); saved checkpoints carry the new value.
    pub fn set_rope_theta(&mut self, theta: f64) -> Result<()> {
        self.config.set_rope_theta(theta);
        self.inv_freq = inv_freq(&self.config, self.device)?;
        Ok(())
    }

    /// Final hidden states `[B, T, d]` (float32 residual stream) for token ids `[B, T]`.
    pub fn hidden_states(&self, input: &Tensor) -> Result<Tensor> {
        let (_, t) = input.size2().ctx("reading the input shape (expected [batch, seq])")?;
        // transformers gives its embedding `padding_idx = pad_token_id`: that row gets no
        // gradient through the lookup (a tied head still trains it).
        let pad = self.config.raw.get("pad_token_id").and_then(serde_json::Value::as_i64);
        let pad = pad.filter(|p| (0..self.config.vocab_size).contains(p)).unwrap_or(-1);
        let mut h = Tensor::f_embedding(&self.embed, input, pad, false, false).ctx("embedding")?;
        if self.config.arch().embed_scale {
            // Gemma: times sqrt(hidden) rounded to float32, as its float32 buffer holds it.
            let scale = f64::from((self.config.hidden_size as f64).sqrt() as f32);
            h = h.f_mul_scalar(scale).ctx("embedding scale")?;
        }
        let (cos, sin) = self.rope(t)?;
        let local = match &self.inv_freq_local {
            Some(inv) => Some(rope_tables(inv, t, 1.0, self.device).ctx("local RoPE tables")?),
            None => None,
        };
        let windows: Vec<Option<Tensor>> = (0..self.layers.len())
            .map(|i| self.window_mask(self.config.layer_window(i), t))
            .collect::<Result<_, _>>()
            .ctx("the sliding-window masks")?;
        for (i, layer) in self.layers.iter().enumerate() {
            let (c, s) = match &local {
                Some((c, s)) if self.config.is_sliding(i) => (c, s),
                _ => (&cos, &sin),
            };
            h = self.block(layer, &h, c, s, windows[i].as_ref()).ctx(&format!("decoder layer {i}"))?;
        }
        self.rms_norm(&h, &self.norm).ctx("final norm")
    }

    /// Logits `[B, T, vocab]` in float32.
    pub fn logits(&self, input: &Tensor) -> Result<Tensor> {
        let h = self.hidden_states(input)?;
        let logits = self.linear(&h, &self.head, None).and_then(|l| l.f_to_kind(Kind::Float)).ctx("LM head")?;
        match self.config.softcap("final_logit_softcapping") {
            Some(cap) => softcap(&logits, cap).ctx("final logit soft-capping"),
            None => Ok(logits),
        }
    }

    /// Summed cross-entropy (nats) over the positions whose target is not [`IGNORE_INDEX`].
    pub fn loss_sum(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        let logits = self.logits(input)?;
        let v = self.config.vocab_size;
        logits
            .f_view([-1, v])
            .and_then(|l| {
                l.f_cross_entropy_loss::<Tensor>(&target.f_reshape([-1])?, None, Reduction::Sum, IGNORE_INDEX, 0.0)
            })
            .ctx("cross-entropy")
    }

    /// Where position `i` may attend when a sliding window reaches back less far than `t`:
    /// `j <= i` and `i - j < window` (`true` attends). `None`: plain causal attention.
    fn window_mask(&self, window: Option<i64>, t: i64) -> Result<Option<Tensor>, tch::TchError> {
        let Some(w) = window.filter(|&w| w < t) else { return Ok(None) };
        let pos = Tensor::f_arange(t, (Kind::Int64, self.device))?;
        let back = pos.f_unsqueeze(1)?.f_sub(&pos.f_unsqueeze(0)?)?;
        Ok(Some(back.f_ge(0)?.f_logical_and(&back.f_lt(w)?)?))
    }

    fn block(
        &self,
        b: &Block,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        window: Option<&Tensor>,
    ) -> Result<Tensor, tch::TchError> {
        let cfg = &self.config;
        let (bsz, t, _) = h.size3()?;
        let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let x = match &b.input_norm {
            Some(w) => self.rms_norm(h, w)?,
            None => h.shallow_clone(),
        };
        let whole = cfg.qk_norm() == QkNorm::Whole;
        // The projection, normalised whole (OLMo 2) or per head (Qwen3), as heads [B, n, T, hd].
        let heads =
            |w: &Tensor, bias: Option<&Tensor>, norm: Option<&Tensor>, n: i64| -> Result<Tensor, tch::TchError> {
                let mut y = self.linear(&x, w, bias)?;
                if let (true, Some(norm)) = (whole, norm) {
                    y = self.rms_norm(&y, norm)?;
                }
                let y = y.f_view([bsz, t, n, hd])?.f_transpose(1, 2)?;
                match (whole, norm) {
                    (false, Some(norm)) => self.rms_norm(&y, norm),
                    _ => Ok(y),
                }
            };
        let q = apply_rope(&heads(&b.q, b.q_b.as_ref(), b.q_norm.as_ref(), nh)?, cos, sin)?;
        let k = apply_rope(&heads(&b.k, b.k_b.as_ref(), b.k_norm.as_ref(), nkv)?, cos, sin)?;
        let v = heads(&b.v, b.v_b.as_ref(), None, nkv)?;
        let ck = self.precision.compute_kind();
        let (q, k, v) = (q.f_to_kind(ck)?, k.f_to_kind(ck)?, v.f_to_kind(ck)?);
        let attn = if cfg.arch().gemma_attention {
            let cap = cfg.softcap("attn_logit_softcapping");
            eager_attention(&q, &k, &v, window, cfg.attn_scaling(), cap, nh / nkv)?
        } else {
            // A window is an explicit mask; without one, SDPA's own causal path.
            Tensor::f_scaled_dot_product_attention::<&Tensor>(
                &q,
                &k,
                &v,
                window,
                0.0,
                window.is_none(),
                None,
                nh != nkv,
            )?
        };
        let attn = attn.f_transpose(1, 2)?.f_contiguous()?.f_view([bsz, t, nh * hd])?;
        let attn = self.linear(&attn, &b.o, b.o_b.as_ref())?;
        let gelu = cfg.arch().gelu;
        let mlp = |x: &Tensor| -> Result<Tensor, tch::TchError> {
            let gate = self.linear(x, &b.gate, b.gate_b.as_ref())?;
            let gate = if gelu { gate.f_gelu("tanh")? } else { gate.f_silu()? };
            let up = self.linear(x, &b.up, b.up_b.as_ref())?;
            self.linear(&gate.f_mul(&up)?, &b.down, b.down_b.as_ref())
        };
        match (&b.pre_ff_norm, &b.post_ff_norm) {
            // OLMo 2 and Gemma 2: each sublayer's output normalised before the residual add;
            // Gemma 2 normalises the MLP's input too.
            (pre_ff, Some(post_ff)) => {
                let h = h.f_add(&self.rms_norm(&attn, &b.post_norm)?)?;
                let x = match pre_ff {
                    Some(w) => self.rms_norm(&h, w)?,
                    None => h.shallow_clone(),
                };
                h.f_add(&self.rms_norm(&mlp(&x)?, post_ff)?)
            }
            _ => {
                let h = h.f_add(&attn)?;
                h.f_add(&mlp(&self.rms_norm(&h, &b.post_norm)?)?)
            }
        }
    }

    /// `x @ w.T + b` in the compute precision.
    fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor, tch::TchError> {
        match self.precision {
            Precision::F32 => x.f_linear(w, b),
            Precision::Bf16 => {
                let k = Kind::BFloat16;
                let b = b.map(|b| b.f_to_kind(k)).transpose()?;
                x.f_to_kind(k)?.f_linear(&w.f_to_kind(k)?, b.as_ref())
            }
        }
    }

    /// Hugging Face's LlamaRMSNorm: normalise in float32, scale by the weight (by `1 + w` for
    /// Gemma, whose weights are stored as offsets from 1).
    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor, tch::TchError> {
        let x = x.f_to_kind(Kind::Float)?;
        let var = x.f_pow_tensor_scalar(2)?.f_mean_dim(-1, true, None)?;
        let x = x.f_mul(&var.f_add_scalar(self.config.rms_norm_eps)?.f_rsqrt()?)?;
        if self.config.arch().one_plus_norm { x.f_mul(&w.f_add_scalar(1.0)?) } else { w.f_mul(&x) }
    }

    /// cos and sin `[1, 1, T, head_dim]` for positions 0..T (float32).
    fn rope(&self, t: i64) -> Result<(Tensor, Tensor)> {
        let scaling = self.config.rope_scaling().map_err(|feature| BackendError::Unsupported { feature })?;
        let max = self.config.max_position_embeddings;
        let f = || -> Result<(Tensor, Tensor), tch::TchError> {
            // Dynamic NTK past the trained context: a base grown for this length (transformers
            // recomputes it in the forward pass when the positions outgrow the config's).
            let inv_freq = match scaling {
                RopeScaling::Dynamic { factor } if t > max => {
                    dynamic_inv_freq(self.config.rope_theta(), factor, t, max, self.config.head_dim(), self.device)?
                }
                _ => self.inv_freq.shallow_clone(),
            };
            rope_tables(&inv_freq, t, scaling.attention_factor(), self.device)
        };
        f().ctx("RoPE tables")
    }
}

/// cos and sin `[1, 1, T, head_dim]` of frequencies `inv_freq` at positions 0..T, times
/// `attention_factor` (YaRN's).
fn rope_tables(
    inv_freq: &Tensor,
    t: i64,
    attention_factor: f64,
    device: Device,
) -> Result<(Tensor, Tensor), tch::TchError> {
    let pos = Tensor::f_arange(t, (Kind::Float, device))?;
    let freqs = pos.f_unsqueeze(1)?.f_mul(&inv_freq.f_unsqueeze(0)?)?;
    let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?.f_view([1, 1, t, -1])?;
    let (cos, sin) = (emb.f_cos()?, emb.f_sin()?);
    match attention_factor {
        1.0 => Ok((cos, sin)),
        a => Ok((cos.f_mul_scalar(a)?, sin.f_mul_scalar(a)?)),
    }
}

/// The sliding layers' own RoPE frequencies (Gemma 3), when the config gives them.
fn local_inv_freq(config: &LlamaConfig, device: Device) -> Result<Option<Tensor>> {
    if !config.local_rope() {
        return Ok(None);
    }
    let (theta, scaling) = config.local_rope_params().map_err(|feature| BackendError::Unsupported { feature })?;
    inv_freq_of(config.head_dim(), theta, scaling, device).map(Some)
}

/// The RoPE frequencies as transformers computes them, op for op in float32: `1 / theta^(2i/d)`,
/// then the config's scaling.
fn inv_freq(config: &LlamaConfig, device: Device) -> Result<Tensor> {
    let scaling = config.rope_scaling().map_err(|feature| BackendError::Unsupported { feature })?;
    inv_freq_of(config.head_dim(), config.rope_theta(), scaling, device)
}

/// `1 / theta^(2i/d)` for a head of `head_dim`, then `scaling`.
fn inv_freq_of(head_dim: i64, theta: f64, scaling: RopeScaling, device: Device) -> Result<Tensor> {
    let f = || -> Result<Tensor, tch::TchError> {
        let exps = Tensor::f_arange_start_step(0, head_dim, 2, (Kind::Float, device))?.f_div_scalar(head_dim as f64)?;
        let inv = Tensor::f_pow_scalar(theta, &exps)?.f_reciprocal()?;
        match scaling {
            RopeScaling::Default => Ok(inv),
            RopeScaling::Linear { factor } => inv.f_div_scalar(factor),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: lo,
                high_freq_factor: hi,
                original_max_position_embeddings: old,
            } => {
                let (low_wavelen, high_wavelen) = (old / lo, old / hi);
                // `2 * pi / inv` is `inv.reciprocal() * (2 * pi)` in PyTorch.
                let wavelen = inv.f_reciprocal()?.f_mul_scalar(2.0 * std::f64::consts::PI)?;
                let stretched = inv.f_div_scalar(factor)?.f_where_self(&wavelen.f_gt(low_wavelen)?, &inv)?;
                let smooth = wavelen.f_reciprocal()?.f_mul_scalar(old)?.f_sub_scalar(lo)?.f_div_scalar(hi - lo)?;
                let smoothed = smooth
                    .f_ones_like()?
                    .f_sub(&smooth)?
                    .f_mul(&stretched)?
                    .f_div_scalar(factor)?
                    .f_add(&smooth.f_mul(&stretched)?)?;
                let medium = wavelen.f_ge(high_wavelen)?.f_logical_and(&wavelen.f_le(low_wavelen)?)?;
                smoothed.f_where_self(&medium, &stretched)
            }
            RopeScaling::Yarn { factor, original, beta_fast, beta_slow, truncate, .. } => {
                yarn_inv_freq(&inv, &exps, theta, head_dim, factor, original, (beta_fast, beta_slow), truncate)
            }
            // The trained context's frequencies; longer sequences get theirs in `rope`.
            RopeScaling::Dynamic { .. } => Ok(inv),
        }
    };
    f().ctx("RoPE frequencies")
}

/// YaRN's frequencies as `_compute_yarn_parameters` computes them (float32, op for op): the
/// kept (`1 / theta^(2i/d)`) and interpolated (`1 / (factor theta^(2i/d))`) frequencies blended
/// along a ramp over the dimensions whose rotation counts at the original context lie between
/// `beta_slow` and `beta_fast`.
#[allow(clippy::too_many_arguments)]
fn yarn_inv_freq(
    extrapolation: &Tensor,
    exps: &Tensor,
    theta: f64,
    dim: i64,
    factor: f64,
    original: f64,
    (beta_fast, beta_slow): (f64, f64),
    truncate: bool,
) -> Result<Tensor, tch::TchError> {
    let d = dim as f64;
    let correction =
        |rotations: f64| d * (original / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln());
    let (mut low, mut high) = (correction(beta_fast), correction(beta_slow));
    if truncate {
        (low, high) = (low.floor(), high.ceil());
    }
    let (low, mut high) = (low.max(0.0), high.min(d - 1.0));
    if low == high {
        high += 0.001; // transformers' guard against a zero-width ramp
    }
    let pos_freqs = Tensor::f_pow_scalar(theta, exps)?;
    let interpolation = pos_freqs.f_mul_scalar(factor)?.f_reciprocal()?;
    let ramp = Tensor::f_arange(dim / 2, (Kind::Float, extrapolation.device()))?
        .f_sub_scalar(low)?
        .f_div_scalar(high - low)?
        .f_clamp(0.0, 1.0)?;
    let keep = ramp.f_neg()?.f_add_scalar(1.0)?; // 1 - ramp
    let blend = keep.f_neg()?.f_add_scalar(1.0)?; // 1 - keep
    interpolation.f_mul(&blend)?.f_add(&extrapolation.f_mul(&keep)?)
}

/// Dynamic NTK's frequencies for a sequence of `t > max` positions, in float32 as transformers
/// computes them from a tensor length: `theta * (factor t / max - (factor - 1))^(d / (d - 2))`.
fn dynamic_inv_freq(
    theta: f64,
    factor: f64,
    t: i64,
    max: i64,
    dim: i64,
    device: Device,
) -> Result<Tensor, tch::TchError> {
    let grown = Tensor::f_from_slice(&[t])?
        .f_to_device(device)?
        .f_mul_scalar(factor)?
        .f_div_scalar(max as f64)?
        .f_sub_scalar(factor - 1.0)?
        .f_pow_tensor_scalar(dim as f64 / (dim - 2) as f64)?
        .f_mul_scalar(theta)?
        .f_squeeze()?;
    let exps = Tensor::f_arange_start_step(0, dim, 2, (Kind::Int64, device))?
        .f_to_kind(Kind::Float)?
        .f_div_scalar(dim as f64)?;
    grown.f_pow(&exps)?.f_reciprocal()
}

/// `cap * tanh(x / cap)`.
fn softcap(x: &Tensor, cap: f64) -> Result<Tensor, tch::TchError> {
    x.f_div_scalar(cap)?.f_tanh()?.f_mul_scalar(cap)
}

/// Attention written out as transformers' eager path (Gemma 2 has no SDPA path: its scores
/// are soft-capped): `softmax(cap(q k^T * scaling) + mask) v`, keys and values repeated per
/// query group, the mask additive (0, or float32's lowest where a position may not attend),
/// the softmax in float32.
fn eager_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    window: Option<&Tensor>,
    scaling: f64,
    cap: Option<f64>,
    groups: i64,
) -> Result<Tensor, tch::TchError> {
    let (k, v) = if groups > 1 {
        (k.f_repeat_interleave_self_int(groups, Some(1), None)?, v.f_repeat_interleave_self_int(groups, Some(1), None)?)
    } else {
        (k.shallow_clone(), v.shallow_clone())
    };
    let mut scores = q.f_matmul(&k.f_transpose(2, 3)?)?.f_mul_scalar(scaling)?;
    if let Some(cap) = cap {
        scores = softcap(&scores, cap)?;
    }
    let t = q.size()[2];
    let allowed = match window {
        Some(w) => w.shallow_clone(),
        None => Tensor::f_ones([t, t], (Kind::Bool, q.device()))?.f_tril(0)?,
    };
    let mask = Tensor::f_zeros([t, t], (Kind::Float, q.device()))?
        .f_masked_fill(&allowed.f_logical_not()?, f64::from(f32::MIN))?;
    let probs = scores.f_add(&mask)?.f_softmax(-1, Kind::Float)?.f_to_kind(q.kind())?;
    probs.f_matmul(&v)
}

/// `x * cos + rotate_half(x) * sin`, rotate_half(x) = cat(-x2, x1).
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, tch::TchError> {
    let half = x.size().last().copied().unwrap_or(0) / 2;
    let x1 = x.f_narrow(-1, 0, half)?;
    let x2 = x.f_narrow(-1, half, half)?;
    let rot = Tensor::f_cat(&[&x2.f_neg()?, &x1], -1)?;
    x.f_mul(cos)?.f_add(&rot.f_mul(sin)?)
}

/// Token ids as an int64 tensor `[rows, len]` on `device`.
pub(crate) fn ids_tensor(rows: &[&[i64]], device: Device) -> Result<Tensor> {
    let len = rows.first().map_or(0, |r| r.len());
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::f_from_slice(&flat)
        .and_then(|t| t.f_view([rows.len() as i64, len as i64]))
        .and_then(|t| t.f_to_device(device))
        .ctx("building the token tensor")
}
