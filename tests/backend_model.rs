//! The backend's model and checkpoints against transformers: logits of SmolLM2-135M and of a
//! random Qwen2, round trips through transformers, sharded/bf16 loading, malformed checkpoints.

mod backend_support;

use std::collections::BTreeMap;

use backend_support::*;
use cptc_torch::backend::{BackendError, Device, Llama, SaveDtype};
use tch::{Kind, Tensor};

/// Logits of `model` on `ids` as a flat vector.
fn rust_logits(model: &Llama, ids: &[Vec<i64>]) -> Vec<f32> {
    let flat: Vec<i64> = ids.iter().flatten().copied().collect();
    let t = Tensor::from_slice(&flat).view([ids.len() as i64, -1]);
    let _g = tch::no_grad_guard();
    to_vec(&model.logits(&t).unwrap())
}

/// transformers' logits for the model in `dir`.
fn python_logits(dir: &std::path::Path, ids: &[Vec<i64>], tmp: &std::path::Path) -> Vec<f32> {
    let ids_path = tmp.join("ids.json");
    let out = tmp.join("logits.safetensors");
    write_ids(&ids_path, ids);
    python(&["logits", dir.to_str().unwrap(), ids_path.to_str().unwrap(), out.to_str().unwrap()]);
    read_tensor(&out, "logits").1
}

#[test]
fn smollm2_logits_match_transformers_and_saved_copy_loads_there() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = smollm2();
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    assert_eq!(model.n_params(), 134_515_008);
    let ids = ids(2, 40, 49_152, 7);
    let ours = rust_logits(&model, &ids);
    let theirs = python_logits(&dir, &ids, tmp.path());
    let diff = max_abs_diff(&ours, &theirs);
    eprintln!("SmolLM2-135M fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-4, "max abs logit diff {diff}");

    // Saved by cptc (tied head, tokenizer copied) and read back by transformers.
    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    assert!(saved.join("tokenizer.json").is_file());
    let reloaded = python_logits(&saved, &ids, tmp.path());
    let diff2 = max_abs_diff(&ours, &reloaded);
    assert!(diff2 <= 1e-4, "transformers on cptc's save: max abs diff {diff2}");
}

#[test]
fn random_qwen2_logits_match_transformers_and_round_trip() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qwen2");
    python(&["make-qwen2", dir.to_str().unwrap(), "3"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    assert_eq!(model.config().model_type, "qwen2");
    assert!(model.parameters().iter().any(|(n, _)| n == "model.layers.0.self_attn.q_proj.bias"));
    assert!(model.parameters().iter().any(|(n, _)| n == "lm_head.weight"));
    let ids = ids(3, 33, 320, 11);
    let ours = rust_logits(&model, &ids);
    let theirs = python_logits(&dir, &ids, tmp.path());
    let diff = max_abs_diff(&ours, &theirs);
    eprintln!("random Qwen2 fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-4, "max abs logit diff {diff}");

    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "Qwen2ForCausalLM");
    let reloaded = python_logits(&saved, &ids, tmp.path());
    assert!(max_abs_diff(&ours, &reloaded) <= 1e-4);
    // And cptc reads its own output back bit for bit.
    let again = Llama::load(&saved, Device::Cpu).unwrap();
    assert_eq!(param_bits(&again), param_bits(&model));
}

/// Writes `params` (converted to `kind`) as two shards plus an index.
fn write_sharded(dir: &std::path::Path, model: &Llama, kind: Kind) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = model.config().to_json("bfloat16");
    std::fs::write(dir.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let params = model.parameters();
    let half = params.len() / 2;
    let mut weight_map = BTreeMap::new();
    for (i, part) in [&params[..half], &params[half..]].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let owned: Vec<(String, Vec<usize>, Vec<u8>)> = part
            .iter()
            .map(|(n, t)| {
                let c = t.detach().to_kind(kind).contiguous();
                let mut bytes = vec![0u8; c.numel() * kind.elt_size_in_bytes()];
                c.copy_data_u8(&mut bytes, c.numel());
                weight_map.insert(n.clone(), file.clone());
                (n.clone(), c.size().iter().map(|&d| d as usize).collect(), bytes)
            })
            .collect();
        let dtype = if kind == Kind::BFloat16 { safetensors::Dtype::BF16 } else { safetensors::Dtype::F16 };
        let views: Vec<_> = owned
            .iter()
            .map(|(n, s, b)| (n.as_str(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn loads_sharded_bf16_and_f16_checkpoints() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(96, false, 5);
    for kind in [Kind::BFloat16, Kind::Half] {
        let dir = tmp.path().join(format!("{kind:?}"));
        write_sharded(&dir, &model, kind);
        let loaded = Llama::load(&dir, Device::Cpu).unwrap();
        for ((n, a), (_, b)) in model.parameters().iter().zip(loaded.parameters()) {
            assert_eq!(b.kind(), Kind::Float, "{n}");
            let expect = to_vec(&a.to_kind(kind));
            assert_eq!(to_vec(b), expect, "{n} differs after {kind:?} round trip");
        }
    }
}

#[test]
fn malformed_checkpoints_are_errors_naming_the_tensor() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(64, true, 1);
    let good = tmp.path().join("good");
    model.save(&good, SaveDtype::F32, None).unwrap();

    // config.json claims a wider FFN than the weights have.
    let wrong = tmp.path().join("wrong_shape");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::copy(good.join("model.safetensors"), wrong.join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good.join("config.json")).unwrap()).unwrap();
    cfg["intermediate_size"] = 80.into();
    std::fs::write(wrong.join("config.json"), cfg.to_string()).unwrap();
    match Llama::load(&wrong, Device::Cpu) {
        Err(BackendError::ShapeMismatch { name, expected, found }) => {
            assert_eq!(name, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!((expected, found), (vec![80, 32], vec![64, 32]));
        }
        other => panic!("expected a shape mismatch, got {:?}", other.err()),
    }

    // Untied config over tied weights: the head is missing.
    cfg["intermediate_size"] = 64.into();
    cfg["tie_word_embeddings"] = false.into();
    std::fs::write(wrong.join("config.json"), cfg.to_string()).unwrap();
    let err = Llama::load(&wrong, Device::Cpu).err().unwrap();
    assert!(matches!(&err, BackendError::MissingTensor { name, .. } if name == "lm_head.weight"), "{err:?}");

    // Fewer layers in the config than in the file.
    cfg["tie_word_embeddings"] = true.into();
    cfg["num_hidden_layers"] = 1.into();
    std::fs::write(wrong.join("config.json"), cfg.to_string()).unwrap();
    let err = Llama::load(&wrong, Device::Cpu).err().unwrap();
    assert!(
        matches!(&err, BackendError::UnexpectedTensor { name, .. } if name.starts_with("model.layers.1.")),
        "{err:?}"
    );

    // Unsupported RoPE scaling and a truncated file.
    cfg["num_hidden_layers"] = 2.into();
    cfg["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    std::fs::write(wrong.join("config.json"), cfg.to_string()).unwrap();
    let err = Llama::load(&wrong, Device::Cpu).err().unwrap();
    assert!(matches!(err, BackendError::Unsupported { .. }), "{err:?}");
    cfg["rope_scaling"] = serde_json::Value::Null;
    std::fs::write(wrong.join("config.json"), cfg.to_string()).unwrap();
    let bytes = std::fs::read(good.join("model.safetensors")).unwrap();
    std::fs::write(wrong.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = Llama::load(&wrong, Device::Cpu).err().unwrap();
    assert!(matches!(err, BackendError::Safetensors { .. }), "{err:?}");
    let code = miette::Diagnostic::code(&err).unwrap().to_string();
    assert_eq!(code, "cptc::backend::safetensors");
}

#[test]
fn rope_theta_changes_logits_and_is_saved() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let mut model = tiny_model(64, true, 2);
    let ids = ids(1, 16, 64, 3);
    let before = rust_logits(&model, &ids);
    model.set_rope_theta(500_000.0).unwrap();
    let after = rust_logits(&model, &ids);
    // Position 0 has no rotation, later positions do.
    assert_eq!(before[..64], after[..64]);
    assert!(max_abs_diff(&before, &after) > 1e-6);
    // Trained on longer sequences than its config's 256 positions: the config says so.
    model.cover_positions(1024);
    model.cover_positions(512);
    model.save(&tmp.path().join("m"), SaveDtype::Bf16, None).unwrap();
    let loaded = Llama::load(&tmp.path().join("m"), Device::Cpu).unwrap();
    assert_eq!(loaded.config().rope_theta(), 500_000.0);
    assert_eq!(loaded.config().max_position_embeddings, 1024);
}

#[test]
fn a_full_disk_while_saving_is_the_environment_and_names_the_file() {
    init();
    // /dev/full fails every write with ENOSPC: a real full disk, on any Linux.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("model.safetensors")).unwrap();
    let err = tiny_model(64, false, 1).save(dir.path(), SaveDtype::F32, None).unwrap_err();
    match &err {
        BackendError::Io { action, path, source } => {
            assert_eq!(*action, "write");
            assert!(path.ends_with("model.safetensors"), "{}", path.display());
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
        }
        other => panic!("expected an IO error, got {other:?}"),
    }
    let failure = cptc::stages::StageFailure::from(err);
    assert_eq!(failure.tier, cptc::stages::Tier::Environment, "{}", failure.message());
    assert!(failure.message().contains("cannot write"), "{}", failure.message());
}

#[test]
fn llama3_rope_scaling_matches_transformers_past_the_original_context_and_round_trips() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("llama3");
    python(&["make-llama3", dir.to_str().unwrap(), "5"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    // 80 positions: past the original context (64), where the scaled frequencies matter.
    let ids = ids(2, 80, 320, 13);
    let ours = rust_logits(&model, &ids);
    let theirs = python_logits(&dir, &ids, tmp.path());
    let diff = max_abs_diff(&ours, &theirs);
    eprintln!("random Llama 3-scaled fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");

    // Saved by cptc: the scaling is written back, so transformers computes the same model.
    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["rope_parameters"]["rope_type"], "llama3");
    let reloaded = python_logits(&saved, &ids, tmp.path());
    assert!(max_abs_diff(&ours, &reloaded) <= 1e-5);
}

#[test]
fn random_qwen3_logits_match_transformers_and_round_trip() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qwen3");
    python(&["make-qwen3", dir.to_str().unwrap(), "4"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    assert_eq!(model.config().model_type, "qwen3");
    assert_eq!(model.config().head_dim(), 32, "head_dim apart from hidden / heads (16)");
    assert!(model.parameters().iter().any(|(n, _)| n == "model.layers.1.self_attn.k_norm.weight"));
    assert_eq!(model.n_params(), model.config().n_params(), "the planner counts the q/k norms too");
    let ids = ids(2, 40, 320, 17);
    let ours = rust_logits(&model, &ids);
    let theirs = python_logits(&dir, &ids, tmp.path());
    let diff = max_abs_diff(&ours, &theirs);
    eprintln!("random Qwen3 fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");

    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "Qwen3ForCausalLM");
    let reloaded = python_logits(&saved, &ids, tmp.path());
    assert!(max_abs_diff(&ours, &reloaded) <= 1e-5);
    let again = Llama::load(&saved, Device::Cpu).unwrap();
    assert_eq!(param_bits(&again), param_bits(&model));
}

#[test]
fn olmo2_matches_transformers_and_round_trips() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("olmo2");
    python(&["make-olmo2", dir.to_str().unwrap(), "9"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    let names: Vec<&str> = model.parameters().iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"model.layers.0.post_feedforward_layernorm.weight"), "{names:?}");
    assert!(!names.contains(&"model.layers.0.input_layernorm.weight"), "no norm before attention");
    assert_eq!(model.n_params(), model.config().n_params(), "the planner counts OLMo 2's norms too");
    let ids = ids(2, 40, 320, 29);
    let ours = rust_logits(&model, &ids);
    let diff = max_abs_diff(&ours, &python_logits(&dir, &ids, tmp.path()));
    eprintln!("random OLMo 2 fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");
    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "Olmo2ForCausalLM");
    assert!(max_abs_diff(&ours, &python_logits(&saved, &ids, tmp.path())) <= 1e-5);
}

#[test]
fn gemma2_matches_transformers_past_its_window_and_round_trips() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gemma2");
    python(&["make-gemma2", dir.to_str().unwrap(), "10"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    assert_eq!(model.n_params(), model.config().n_params(), "the planner counts the sandwich norms");
    // 40 positions: past the 16-token window of the alternate layers.
    let ids = ids(2, 40, 320, 31);
    let ours = rust_logits(&model, &ids);
    let diff = max_abs_diff(&ours, &python_logits(&dir, &ids, tmp.path()));
    eprintln!("random Gemma 2 fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");
    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    assert!(max_abs_diff(&ours, &python_logits(&saved, &ids, tmp.path())) <= 1e-5);
}

#[test]
fn gemma3_matches_transformers_with_its_two_rope_bases() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gemma3");
    python(&["make-gemma3", dir.to_str().unwrap(), "11"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    assert!(model.config().local_rope(), "the sliding layer has its own base");
    assert_eq!(model.n_params(), model.config().n_params());
    let ids = ids(2, 40, 320, 37);
    let ours = rust_logits(&model, &ids);
    let diff = max_abs_diff(&ours, &python_logits(&dir, &ids, tmp.path()));
    eprintln!("random Gemma 3 fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");
    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    assert!(max_abs_diff(&ours, &python_logits(&saved, &ids, tmp.path())) <= 1e-5);
}

#[test]
fn linear_rope_scaling_matches_transformers() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("linear");
    python(&["make-llama3", dir.to_str().unwrap(), "6", "linear"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    let ids = ids(2, 80, 320, 19);
    let diff = max_abs_diff(&rust_logits(&model, &ids), &python_logits(&dir, &ids, tmp.path()));
    eprintln!("random Llama with linear RoPE scaling fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");
}

#[test]
fn yarn_and_dynamic_rope_match_transformers_past_the_original_context() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["yarn", "dynamic"] {
        let dir = tmp.path().join(kind);
        python(&["make-llama3", dir.to_str().unwrap(), "6", kind]);
        let model = Llama::load(&dir, Device::Cpu).unwrap();
        // 80 positions: past YaRN's original 32 and dynamic NTK's 64 (where its base grows).
        let ids = ids(2, 80, 320, 23);
        let diff = max_abs_diff(&rust_logits(&model, &ids), &python_logits(&dir, &ids, tmp.path()));
        eprintln!("random Llama with {kind} RoPE fp32 max |logit diff| vs transformers: {diff:e}");
        assert!(diff <= 1e-5, "{kind}: max abs logit diff {diff}");
    }
}

#[test]
fn mistral_sliding_window_matches_transformers_past_the_window() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mistral");
    python(&["make-mistral", dir.to_str().unwrap(), "8"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    assert_eq!((model.config().layer_window(0), model.config().layer_window(1)), (Some(16), Some(16)));
    // 48 positions, three windows long: the window changes what every later position sees.
    let ids = ids(2, 48, 320, 23);
    let ours = rust_logits(&model, &ids);
    let diff = max_abs_diff(&ours, &python_logits(&dir, &ids, tmp.path()));
    eprintln!("random Mistral (window 16) fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");
    // The window matters at this length: the same weights without it give other logits.
    let unwindowed = tmp.path().join("unwindowed");
    std::fs::create_dir_all(&unwindowed).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["sliding_window"] = serde_json::Value::Null;
    std::fs::write(unwindowed.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(dir.join("model.safetensors"), unwindowed.join("model.safetensors")).unwrap();
    let plain = Llama::load(&unwindowed, Device::Cpu).unwrap();
    assert!(max_abs_diff(&ours, &rust_logits(&plain, &ids)) > 1e-3, "the window changed nothing");
    // Saved, the window travels with it: transformers reads the same model back.
    let saved = tmp.path().join("saved");
    model.save(&saved, SaveDtype::F32, None).unwrap();
    assert!(max_abs_diff(&ours, &python_logits(&saved, &ids, tmp.path())) <= 1e-5);
}

#[test]
fn qwen2_sliding_window_layers_match_transformers() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qwen2w");
    python(&["make-qwen2", dir.to_str().unwrap(), "9", "window"]);
    let model = Llama::load(&dir, Device::Cpu).unwrap();
    let windows: Vec<Option<i64>> = (0..3).map(|i| model.config().layer_window(i)).collect();
    assert_eq!(windows, vec![None, Some(16), Some(16)], "max_window_layers = 1");
    let ids = ids(2, 48, 320, 29);
    let diff = max_abs_diff(&rust_logits(&model, &ids), &python_logits(&dir, &ids, tmp.path()));
    eprintln!("random Qwen2 (window 16 from layer 1) fp32 max |logit diff| vs transformers: {diff:e}");
    assert!(diff <= 1e-5, "max abs logit diff {diff}");
}
