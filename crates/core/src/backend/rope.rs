//! Long-context training's RoPE change, as a config edit both engines apply after the step-0
//! baseline and save with the trained model, so transformers loads the extended model as it
//! was trained: a new base (`rope_theta`) and/or a scaling transformers knows by name.

use serde_json::{Map, Value, json};

use crate::recipe::{RopeExtension, RopeKind};

/// RoPE parameters in transformers 5's form (`rope_parameters`: `rope_type`, `rope_theta`
/// and the scaling's own keys) and the positions the extended config declares.
#[derive(Clone, Debug, PartialEq)]
pub struct Extended {
    pub rope_parameters: Map<String, Value>,
    pub max_position_embeddings: u64,
}

/// The config's current RoPE parameters, whichever transformers wrote it: `rope_parameters`
/// (5), or `rope_theta` and `rope_scaling` (4).
fn current(config: &Value) -> Map<String, Value> {
    if let Some(Value::Object(p)) = config.get("rope_parameters") {
        // Per layer type (Gemma 3): long context extends the global layers' RoPE.
        if let Some(Value::Object(full)) = p.get("full_attention") {
            return full.clone();
        }
        return p.clone();
    }
    let mut p = match config.get("rope_scaling") {
        Some(Value::Object(s)) => s.clone(),
        _ => Map::new(),
    };
    if let Some(kind) = p.remove("type") {
        p.entry("rope_type").or_insert(kind);
    }
    p.entry("rope_type").or_insert_with(|| json!("default"));
    p.insert("rope_theta".into(), config.get("rope_theta").cloned().unwrap_or(json!(10_000.0)));
    p
}

/// What a model's config becomes for training at `seq_len` with a new base and/or scaling.
/// Dynamic NTK keeps the declared positions (it scales only past them); the others declare at
/// least `seq_len` and the scaling's own reach (`original x factor`).
pub fn extend(config: &Value, theta: Option<f64>, rope: Option<RopeExtension>, seq_len: u64) -> Extended {
    let max = config.get("max_position_embeddings").and_then(Value::as_u64).unwrap_or(seq_len);
    let mut p = current(config);
    let theta = theta.map(Value::from).or_else(|| p.get("rope_theta").cloned()).unwrap_or(json!(10_000.0));
    let mut reach = seq_len.max(max);
    if let Some(r) = rope {
        let original = r.original.unwrap_or(max);
        p = Map::new();
        p.insert("rope_type".into(), r.kind.name().into());
        p.insert("factor".into(), r.factor.into());
        match r.kind {
            RopeKind::Linear | RopeKind::Dynamic => {}
            RopeKind::Yarn => {
                p.insert("original_max_position_embeddings".into(), original.into());
            }
            RopeKind::Llama3 => {
                // Meta's values for Llama 3.1 and later.
                p.insert("low_freq_factor".into(), 1.0.into());
                p.insert("high_freq_factor".into(), 4.0.into());
                p.insert("original_max_position_embeddings".into(), original.into());
            }
        }
        reach = match r.kind {
            RopeKind::Dynamic => max,
            _ => reach.max((original as f64 * r.factor).round() as u64),
        };
    }
    p.insert("rope_theta".into(), theta);
    Extended { rope_parameters: p, max_position_embeddings: reach }
}

/// Writes an extension into a config JSON in the names it already uses: `rope_parameters`
/// (transformers 5), else `rope_theta` and `rope_scaling` (4).
pub fn write(config: &mut Value, e: &Extended) {
    let Value::Object(c) = config else { return };
    c.insert("max_position_embeddings".into(), e.max_position_embeddings.into());
    if let Some(Value::Object(p)) = c.get_mut("rope_parameters")
        && p.contains_key("full_attention")
    {
        p.insert("full_attention".into(), Value::Object(e.rope_parameters.clone()));
        return;
    }
    if c.contains_key("rope_parameters") || !(c.contains_key("rope_theta") || c.contains_key("rope_scaling")) {
        c.insert("rope_parameters".into(), Value::Object(e.rope_parameters.clone()));
        if c.contains_key("rope_theta") {
            c.insert("rope_theta".into(), e.rope_parameters["rope_theta"].clone());
        }
        return;
    }
    let mut scaling = e.rope_parameters.clone();
    let theta = scaling.remove("rope_theta").unwrap_or(json!(10_000.0));
    c.insert("rope_theta".into(), theta);
    if scaling.get("rope_type").and_then(Value::as_str) == Some("default") && scaling.len() == 1 {
        c.remove("rope_scaling");
    } else {
        c.insert("rope_scaling".into(), Value::Object(scaling));
    }
}
