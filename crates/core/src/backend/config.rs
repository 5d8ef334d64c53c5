//! The model configuration read from a Hugging Face `config.json` (Llama, Mistral, Qwen2).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{BackendError, Result};

/// How RoPE frequencies follow from the base (transformers' `rope_type`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// `1 / theta^(2i/d)`.
    Default,
    /// Position interpolation: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.x: wavelengths longer than `original / low_freq_factor` are stretched by
    /// `factor`, those shorter than `original / high_freq_factor` kept, the band between
    /// blended smoothly.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
    /// YaRN: frequencies blended between interpolated (`/ factor`) and kept along a linear ramp
    /// over the dimensions between the `beta_fast` and `beta_slow` rotation counts at the
    /// original context; cos and sin scaled by `attention_factor`.
    Yarn { factor: f64, original: f64, attention_factor: f64, beta_fast: f64, beta_slow: f64, truncate: bool },
    /// Dynamic NTK: past `max_position_embeddings`, the base grows with the sequence length
    /// `T`: `theta * (factor * T / max - (factor - 1))^(d / (d - 2))`, recomputed per forward.
    Dynamic { factor: f64 },
}

impl RopeScaling {
    /// The factor cos and sin are multiplied by (transformers' `attention_scaling`).
    pub fn attention_factor(&self) -> f64 {
        match self {
            RopeScaling::Yarn { attention_factor, .. } => *attention_factor,
            _ => 1.0,
        }
    }
}

/// Where a decoder normalises queries and keys before RoPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkNorm {
    None,
    /// Per head, over `head_dim` (Qwen3).
    PerHead,
    /// Over the whole projection, before it is split into heads (OLMo 2).
    Whole,
}

/// Where a decoder layer's RMSNorms sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norms {
    /// On the inputs of attention and MLP (`input_layernorm`, `post_attention_layernorm`: Llama).
    Pre,
    /// On the outputs of attention and MLP (`post_attention_layernorm`,
    /// `post_feedforward_layernorm`: OLMo 2).
    Post,
    /// Both: `input_layernorm`, `post_attention_layernorm`, `pre_feedforward_layernorm`,
    /// `post_feedforward_layernorm` (Gemma 2).
    Sandwich,
}

/// Which layers attend through a sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sliding {
    Never,
    /// Every layer, when `sliding_window` is set (Mistral).
    Every,
    /// Those `layer_types` marks, else with `use_sliding_window` those from `max_window_layers`
    /// on (Qwen2/3).
    Qwen,
    /// Those `layer_types` marks, else all but every `sliding_window_pattern`-th layer (this
    /// default when absent: 2 for Gemma 2, every other layer from the first; 6 for Gemma 3).
    Pattern(usize),
}

/// What sets one decoder architecture apart from another, as data: the switches the one
/// forward pass reads (`crates/torch/src/backend/model.rs`), per `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    pub model_type: &'static str,
    /// The transformers class that loads it.
    pub class: &'static str,
    pub norms: Norms,
    /// RMSNorm scales by `1 + w` (Gemma), not `w`.
    pub one_plus_norm: bool,
    /// Embeddings multiplied by sqrt(hidden_size) (Gemma).
    pub embed_scale: bool,
    /// The MLP's gate through GELU (tanh approximation), not SiLU (Gemma).
    pub gelu: bool,
    /// Attention scaled by `query_pre_attn_scalar^-0.5`, with attention and final logits
    /// soft-capped where the config sets them (Gemma 2): an explicit attention path.
    pub gemma_attention: bool,
    pub qk_norm: QkNorm,
    /// q/k/v biases whatever `attention_bias` says, and never an output bias (Qwen2).
    pub qkv_bias_always: bool,
    pub sliding: Sliding,
}

const fn arch(model_type: &'static str, class: &'static str) -> Arch {
    Arch {
        model_type,
        class,
        norms: Norms::Pre,
        one_plus_norm: false,
        embed_scale: false,
        gelu: false,
        gemma_attention: false,
        qk_norm: QkNorm::None,
        qkv_bias_always: false,
        sliding: Sliding::Never,
    }
}

/// Gemma 2's layer: `1 + w` norms on both sides of each sublayer, scaled embeddings, GELU,
/// soft-capped attention scaled by `query_pre_attn_scalar`, local layers in a pattern.
const GEMMA2: Arch = Arch {
    norms: Norms::Sandwich,
    one_plus_norm: true,
    embed_scale: true,
    gelu: true,
    gemma_attention: true,
    sliding: Sliding::Pattern(2),
    ..arch("gemma2", "Gemma2ForCausalLM")
};

/// The architectures the built-in engine implements.
pub const ARCHS: [Arch; 7] = [
    arch("llama", "LlamaForCausalLM"),
    Arch { sliding: Sliding::Every, ..arch("mistral", "MistralForCausalLM") },
    Arch { qkv_bias_always: true, sliding: Sliding::Qwen, ..arch("qwen2", "Qwen2ForCausalLM") },
    Arch { qk_norm: QkNorm::PerHead, sliding: Sliding::Qwen, ..arch("qwen3", "Qwen3ForCausalLM") },
    Arch { norms: Norms::Post, qk_norm: QkNorm::Whole, ..arch("olmo2", "Olmo2ForCausalLM") },
    GEMMA2,
    // Gemma 3 (text): Gemma 2's layer with per-head q/k norms, no soft-capping by default, and
    // its own RoPE base for the sliding layers (`rope_parameters` per layer type).
    Arch {
        model_type: "gemma3_text",
        class: "Gemma3ForCausalLM",
        qk_norm: QkNorm::PerHead,
        sliding: Sliding::Pattern(6),
        ..GEMMA2
    },
];

/// The fields of `config.json` that shape a Llama-family decoder, with Hugging Face's defaults.
///
/// Unknown fields are kept in [`LlamaConfig::raw`] so a saved model round-trips its config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    /// Defaults to `num_attention_heads` (no GQA).
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    /// Defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<i64>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// transformers 4 writes `rope_theta`; transformers 5 nests it in `rope_parameters`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// Hugging Face's default is false for these architectures.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama's q/k/v/o biases; Qwen2 always has q/k/v biases (and never an o bias).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: i64,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub sliding_window: Option<Value>,
    /// The whole document as read, for saving it back with unknown fields intact.
    #[serde(skip)]
    pub raw: Map<String, Value>,
}

fn default_model_type() -> String {
    "llama".to_owned()
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".to_owned()
}
fn default_max_pos() -> i64 {
    2048
}
fn default_init_range() -> f64 {
    0.02
}

impl LlamaConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BackendError::io("read", path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| BackendError::Config { path: path.to_owned(), reason: e.to_string() })?;
        Self::from_value(value, path)
    }

    /// Parses and validates a config document; `origin` names it in errors.
    pub fn from_value(value: Value, origin: &Path) -> Result<Self> {
        let bad = |reason: String| BackendError::Config { path: origin.to_owned(), reason };
        let Value::Object(raw) = value else {
            return Err(bad("the document is not a JSON object".to_owned()));
        };
        let mut cfg: Self = serde_json::from_value(Value::Object(raw.clone())).map_err(|e| bad(e.to_string()))?;
        cfg.raw = raw;
        cfg.validate().map_err(bad)?;
        cfg.check_supported()?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_dim()),
        ];
        for (name, v) in positive {
            if v <= 0 {
                return Err(format!("`{name}` must be positive, not {v}"));
            }
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return Err(format!(
                "`num_attention_heads` ({}) is not a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.head_dim() % 2 != 0 {
            return Err(format!("RoPE needs an even head_dim, not {}", self.head_dim()));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err("`rms_norm_eps` must be positive".to_owned());
        }
        let theta = self.rope_theta();
        if !(theta.is_finite() && theta > 1.0) {
            return Err(format!("the RoPE theta must be a number above 1, not {theta}"));
        }
        Ok(())
    }

    fn check_supported(&self) -> Result<()> {
        let unsupported = |feature: String| Err(BackendError::Unsupported { feature });
        if !ARCHS.iter().any(|a| a.model_type == self.model_type) {
            return unsupported(format!("model_type `{}`", self.model_type));
        }
        let wanted = if self.arch().gelu { "gelu_pytorch_tanh" } else { "silu" };
        if self.activation() != wanted {
            return unsupported(format!("activation `{}` for {} (only {wanted})", self.activation(), self.model_type));
        }
        if self.raw.get("use_bidirectional_attention").and_then(Value::as_bool) == Some(true) {
            return unsupported("use_bidirectional_attention".to_owned());
        }
        for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
            if let Some(v) = self.raw.get(key).filter(|v| !v.is_null())
                && (!self.arch().gemma_attention || v.as_f64().is_none_or(|c| !(c.is_finite() && c > 0.0)))
            {
                return unsupported(format!("`{key}` {v}"));
            }
        }
        if let Err(feature) = self.rope_scaling() {
            return unsupported(feature);
        }
        if self.local_rope()
            && let Err(feature) = self.local_rope_params()
        {
            return unsupported(feature);
        }
        // Per-layer attention kinds (Qwen2/3 write them; Gemma too): full attention, and for
        // Qwen the sliding window of `sliding_window` tokens.
        let qwen = matches!(self.arch().sliding, Sliding::Qwen | Sliding::Pattern(_));
        if let Some(Value::Array(kinds)) = self.raw.get("layer_types") {
            if kinds.len() != self.num_hidden_layers as usize {
                return unsupported(format!("layer_types of {} layers for {}", kinds.len(), self.num_hidden_layers));
            }
            let known = |k: &Value| k == "full_attention" || (qwen && k == "sliding_attention");
            if let Some(kind) = kinds.iter().find(|k| !known(k)) {
                return unsupported(format!("layer_types with {kind} layers"));
            }
        }
        if qwen && (0..self.num_hidden_layers as usize).any(|i| self.sliding_layer(i)) && self.window().is_none() {
            return unsupported("sliding-window layers without a positive `sliding_window`".to_owned());
        }
        // A window only matters past its length, but silently ignoring it would train a
        // different model than the one the config describes.
        if self.arch().sliding == Sliding::Every
            && let Some(w) = self.sliding_window.as_ref().filter(|w| !w.is_null())
            && w.as_i64().is_none_or(|w| w <= 0)
        {
            return unsupported(format!("`sliding_window` {w}"));
        }
        Ok(())
    }

    /// The `sliding_window` length, when positive.
    fn window(&self) -> Option<i64> {
        self.sliding_window.as_ref().and_then(Value::as_i64).filter(|&w| w > 0)
    }

    /// Whether decoder layer `layer` attends through a sliding window.
    pub fn is_sliding(&self, layer: usize) -> bool {
        self.sliding_layer(layer)
    }

    /// The attention window of decoder layer `layer`: each position attends to itself and the
    /// `w - 1` before it. Mistral: every layer. Qwen2/3: the layers `layer_types` marks
    /// `sliding_attention`, or without it, with `use_sliding_window`, those from
    /// `max_window_layers` on (as transformers derives them).
    pub fn layer_window(&self, layer: usize) -> Option<i64> {
        if self.sliding_layer(layer) { self.window() } else { None }
    }

    fn sliding_layer(&self, layer: usize) -> bool {
        match self.arch().sliding {
            Sliding::Every => true,
            Sliding::Qwen => match self.raw.get("layer_types") {
                Some(Value::Array(kinds)) => kinds.get(layer).is_some_and(|k| k == "sliding_attention"),
                _ => {
                    let from = self.raw.get("max_window_layers").and_then(Value::as_i64).unwrap_or(0);
                    self.use_sliding_window && layer as i64 >= from
                }
            },
            Sliding::Pattern(default) => match self.raw.get("layer_types") {
                Some(Value::Array(kinds)) => kinds.get(layer).is_some_and(|k| k == "sliding_attention"),
                _ => {
                    let n = self.raw.get("sliding_window_pattern").and_then(Value::as_u64).unwrap_or(default as u64);
                    !(layer as u64 + 1).is_multiple_of(n.max(1))
                }
            },
            Sliding::Never => false,
        }
    }

    /// The MLP's activation: Gemma's `hidden_activation`, else `hidden_act`.
    pub fn activation(&self) -> &str {
        self.raw.get("hidden_activation").and_then(Value::as_str).unwrap_or(&self.hidden_act)
    }

    /// The factor attention scores are scaled by: `query_pre_attn_scalar^-0.5` (Gemma 2),
    /// else `head_dim^-0.5`.
    pub fn attn_scaling(&self) -> f64 {
        match self.raw.get("query_pre_attn_scalar").and_then(Value::as_f64) {
            Some(s) if self.arch().gemma_attention => s.powf(-0.5),
            _ => (self.head_dim() as f64).powf(-0.5),
        }
    }

    /// Soft-capping of attention scores (`attn_logit_softcapping`) or final logits
    /// (`final_logit_softcapping`): `cap * tanh(x / cap)`.
    pub fn softcap(&self, key: &str) -> Option<f64> {
        self.raw.get(key).and_then(Value::as_f64).filter(|_| self.arch().gemma_attention)
    }

    /// This config's row of [`ARCHS`] (Llama's for a type the engine lacks: loading refuses
    /// those before anything reads this).
    pub fn arch(&self) -> Arch {
        ARCHS.iter().find(|a| a.model_type == self.model_type).copied().unwrap_or(ARCHS[0])
    }

    pub fn kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> i64 {
        self.head_dim.unwrap_or_else(|| self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The RoPE base: `rope_theta`, else `rope_parameters.rope_theta` (its `full_attention`
    /// entry where it has one per layer type), else 10,000.
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| self.rope_map(false).and_then(|p| p.get("rope_theta")).and_then(Value::as_f64))
            .unwrap_or(10_000.0)
    }

    /// `rope_parameters` for global (`local == false`) or sliding layers: its entry per layer
    /// type where it has them (Gemma 3), else the whole map for global layers.
    fn rope_map(&self, local: bool) -> Option<&Map<String, Value>> {
        let Some(Value::Object(p)) = &self.rope_parameters else { return None };
        match p.get(if local { "sliding_attention" } else { "full_attention" }) {
            Some(Value::Object(m)) => Some(m),
            _ if p.contains_key("full_attention") || p.contains_key("sliding_attention") => None,
            _ if local => None,
            _ => Some(p),
        }
    }

    /// Whether sliding layers have a RoPE of their own (Gemma 3: `rope_parameters` per layer
    /// type, or transformers 4's `rope_local_base_freq`).
    pub fn local_rope(&self) -> bool {
        self.arch().sliding != Sliding::Never
            && (self.rope_map(true).is_some() || self.raw.get("rope_local_base_freq").is_some())
    }

    /// The base and scaling of sliding layers' RoPE, when [`Self::local_rope`].
    pub fn local_rope_params(&self) -> std::result::Result<(f64, RopeScaling), String> {
        match self.rope_map(true) {
            Some(m) => {
                let theta = m.get("rope_theta").and_then(Value::as_f64).unwrap_or(10_000.0);
                Ok((theta, self.scaling_in("rope_parameters.sliding_attention", m)?))
            }
            None => Ok((
                self.raw.get("rope_local_base_freq").and_then(Value::as_f64).unwrap_or(10_000.0),
                RopeScaling::Default,
            )),
        }
    }

    /// How the RoPE frequencies follow from the base: the `rope_type` of `rope_scaling`
    /// (transformers 4) or `rope_parameters` (transformers 5). `Err` names what is unsupported.
    pub fn rope_scaling(&self) -> std::result::Result<RopeScaling, String> {
        let scaling = match &self.rope_scaling {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        for (field, m) in [("rope_scaling", scaling), ("rope_parameters", self.rope_map(false))] {
            let Some(m) = m else { continue };
            match self.scaling_in(field, m)? {
                RopeScaling::Default => {}
                other => return Ok(other),
            }
        }
        Ok(RopeScaling::Default)
    }

    /// The scaling one RoPE parameter map describes.
    fn scaling_in(&self, field: &str, m: &Map<String, Value>) -> std::result::Result<RopeScaling, String> {
        {
            match m.get("rope_type").or_else(|| m.get("type")).and_then(Value::as_str) {
                None | Some("default") => {}
                Some("llama3") => {
                    let num = |key: &str| {
                        m.get(key)
                            .and_then(Value::as_f64)
                            .filter(|x| x.is_finite() && *x > 0.0)
                            .ok_or_else(|| format!("{field} of type `llama3` without a positive `{key}`"))
                    };
                    let scaling = RopeScaling::Llama3 {
                        factor: num("factor")?,
                        low_freq_factor: num("low_freq_factor")?,
                        high_freq_factor: num("high_freq_factor")?,
                        original_max_position_embeddings: num("original_max_position_embeddings")?,
                    };
                    if let RopeScaling::Llama3 { low_freq_factor: lo, high_freq_factor: hi, .. } = scaling
                        && hi <= lo
                    {
                        return Err(format!(
                            "{field} of type `llama3` with high_freq_factor {hi} <= low_freq_factor {lo}"
                        ));
                    }
                    return Ok(scaling);
                }
                Some("linear") => {
                    let factor = m.get("factor").and_then(Value::as_f64).filter(|x| x.is_finite() && *x > 0.0);
                    let factor =
                        factor.ok_or_else(|| format!("{field} of type `linear` without a positive `factor`"))?;
                    return Ok(RopeScaling::Linear { factor });
                }
                Some("dynamic") => {
                    let factor = m.get("factor").and_then(Value::as_f64).filter(|x| x.is_finite() && *x > 0.0);
                    let factor =
                        factor.ok_or_else(|| format!("{field} of type `dynamic` without a positive `factor`"))?;
                    return Ok(RopeScaling::Dynamic { factor });
                }
                Some("yarn") => return self.yarn(field, m),
                Some(other) => return Err(format!("{field} of type `{other}`")),
            }
        }
        Ok(RopeScaling::Default)
    }

    /// YaRN's settings as transformers reads them (`_compute_yarn_parameters`): a missing
    /// `factor` is `max_position_embeddings / original`, a missing `attention_factor` follows
    /// from `factor` (and `mscale`, `mscale_all_dim`), `beta_fast`/`beta_slow` default to 32/1.
    fn yarn(&self, field: &str, m: &serde_json::Map<String, Value>) -> std::result::Result<RopeScaling, String> {
        let num = |key: &str| m.get(key).and_then(Value::as_f64);
        if num("partial_rotary_factor").is_some_and(|f| f != 1.0) {
            return Err(format!("{field} of type `yarn` with a `partial_rotary_factor`"));
        }
        let original = num("original_max_position_embeddings")
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| format!("{field} of type `yarn` without a positive `original_max_position_embeddings`"))?;
        let factor = num("factor").unwrap_or(self.max_position_embeddings as f64 / original);
        if !(factor.is_finite() && factor > 0.0) {
            return Err(format!("{field} of type `yarn` with `factor` {factor}"));
        }
        let mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
        let attention_factor = match (num("attention_factor"), num("mscale"), num("mscale_all_dim")) {
            (Some(a), _, _) => a,
            (None, Some(ms), Some(all)) if ms != 0.0 && all != 0.0 => mscale(factor, ms) / mscale(factor, all),
            _ => mscale(factor, 1.0),
        };
        let beta = |key: &str, default: f64| num(key).filter(|b| *b != 0.0).unwrap_or(default);
        Ok(RopeScaling::Yarn {
            factor,
            original,
            attention_factor,
            beta_fast: beta("beta_fast", 32.0),
            beta_slow: beta("beta_slow", 1.0),
            truncate: m.get("truncate").and_then(Value::as_bool).unwrap_or(true),
        })
    }

    /// Sets the RoPE base in both places transformers may look (long-context training).
    pub fn set_rope_theta(&mut self, theta: f64) {
        self.rope_theta = Some(theta);
        if let Some(Value::Object(m)) = &mut self.rope_parameters {
            m.insert("rope_theta".to_owned(), theta.into());
        }
    }

    /// Where queries and keys are RMS-normalised before RoPE.
    pub fn qk_norm(&self) -> QkNorm {
        self.arch().qk_norm
    }

    /// Whether q/k/v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        self.arch().qkv_bias_always || self.attention_bias
    }

    /// Whether the output projection carries a bias (`attention_bias`; never Qwen2).
    pub fn o_bias(&self) -> bool {
        !self.arch().qkv_bias_always && self.attention_bias
    }

    pub fn q_dim(&self) -> i64 {
        self.num_attention_heads * self.head_dim()
    }

    pub fn kv_dim(&self) -> i64 {
        self.kv_heads() * self.head_dim()
    }

    /// The config document to save: the original fields with the current values written over.
    pub fn to_json(&self, torch_dtype: &str) -> Value {
        let mut out = self.raw.clone();
        if out.is_empty() {
            out.insert("architectures".to_owned(), Value::from(vec![self.architecture()]));
        }
        let Ok(Value::Object(known)) = serde_json::to_value(self) else {
            return Value::Object(out);
        };
        for (k, v) in known {
            // Optional fields that were absent stay absent, so defaults stay transformers'.
            if v.is_null() && !out.contains_key(&k) {
                continue;
            }
            out.insert(k, v);
        }
        out.insert("torch_dtype".to_owned(), torch_dtype.into());
        if out.contains_key("dtype") {
            out.insert("dtype".to_owned(), torch_dtype.into());
        }
        Value::Object(out)
    }

    /// The transformers class for this `model_type`.
    pub fn architecture(&self) -> &'static str {
        self.arch().class
    }

    /// Parameters of the decoder, embeddings included (the head too when untied).
    pub fn n_params(&self) -> i64 {
        let (d, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let (q, kv) = (self.q_dim(), self.kv_dim());
        let mut attn = d * q + 2 * d * kv + q * d;
        if self.qkv_bias() {
            attn += q + 2 * kv;
        }
        if self.o_bias() {
            attn += d;
        }
        let mut mlp = 3 * d * f;
        if self.mlp_bias {
            mlp += 2 * f + d;
        }
        attn += match self.qk_norm() {
            QkNorm::None => 0,
            QkNorm::PerHead => 2 * self.head_dim(),
            QkNorm::Whole => q + kv,
        };
        let norms = if self.arch().norms == Norms::Sandwich { 4 } else { 2 };
        let layer = attn + mlp + norms * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + self.num_hidden_layers * layer + d + head
    }
}
