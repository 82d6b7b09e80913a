//! The language model and the hybrid block: checkpoint key names and shapes (design §4.2), a
//! gradient for every parameter, determinism, streaming, and typed errors on bad input (design §8.2).

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::{block_config, block_of, max_abs_diff, small_config, vec_f32 as f32s};
use lsnn_layers::block::{BlockConfig, BlockState};
use lsnn_layers::lif::LifConfig;
use lsnn_layers::{init_model, Mode, ModelConfig, SeededRng};
use std::collections::BTreeMap;

fn ids(rng: &mut SeededRng, b: usize, l: usize, vocab: usize) -> Tensor {
    let v: Vec<u32> = (0..b * l)
        .map(|_| rng.below(std::num::NonZeroU64::new(vocab as u64).unwrap()) as u32)
        .collect();
    Tensor::from_vec(v, (b, l), &Device::Cpu).unwrap()
}

/// The design §4.2 table for `cfg`.
fn expected_keys(cfg: &ModelConfig) -> BTreeMap<String, Vec<usize>> {
    let (v, e, d) = (cfg.vocab_size, cfg.embedding_dim, cfg.hidden_dim);
    let (s, h, u) = (cfg.spiking_units, cfg.liquid_units, cfg.backbone_units);
    let mut m = BTreeMap::new();
    let mut put = |k: String, shape: &[usize]| {
        assert!(m.insert(k, shape.to_vec()).is_none());
    };
    let linear = |put: &mut dyn FnMut(String, &[usize]), name: &str, out: usize, inp: usize| {
        put(format!("{name}.weight"), &[out, inp]);
        put(format!("{name}.bias"), &[out]);
    };
    put("tok_emb.weight".into(), &[v, e]);
    put("pos_emb.weight".into(), &[cfg.max_position_embeddings, e]);
    linear(&mut put, "in_proj", d, e);
    for i in 0..cfg.num_layers {
        let b = format!("blocks.{i}");
        linear(&mut put, &format!("{b}.encoder.fc1"), 2 * s, d);
        linear(&mut put, &format!("{b}.encoder.fc2"), s, 2 * s);
        put(format!("{b}.pnorm.weight"), &[s]);
        put(format!("{b}.pnorm.bias"), &[s]);
        let liquid_out = match cfg.ncp() {
            None => {
                for k in 0..cfg.backbone_layers {
                    let inp = if k == 0 { s + h } else { u };
                    linear(&mut put, &format!("{b}.cfc.backbone.{k}"), u, inp);
                }
                for n in ["ff1", "ff2", "time_a", "time_b"] {
                    linear(&mut put, &format!("{b}.cfc.{n}"), h, u);
                }
                h
            }
            Some(ncp) => {
                // One backbone-free layer per wiring layer: [inter, command, motor].
                let w = ncp.build(s).unwrap();
                let mut inp = s;
                for (l, ids) in w.layer_list().iter().enumerate() {
                    for n in ["ff1", "ff2", "time_a", "time_b"] {
                        linear(
                            &mut put,
                            &format!("{b}.cfc.layer_{l}.{n}"),
                            ids.len(),
                            inp + ids.len(),
                        );
                    }
                    inp = ids.len();
                }
                ncp.outputs
            }
        };
        linear(&mut put, &format!("{b}.fuse"), d, liquid_out + s);
        put(format!("{b}.fuse_norm.weight"), &[d]);
        put(format!("{b}.fuse_norm.bias"), &[d]);
        linear(&mut put, &format!("{b}.gate"), d, d);
        put(format!("norms.{i}.weight"), &[d]);
        put(format!("norms.{i}.bias"), &[d]);
    }
    for j in 0..cfg.num_layers / 2 {
        for n in ["q", "k", "v", "o"] {
            linear(&mut put, &format!("attns.{j}.{n}"), d, d);
        }
    }
    linear(&mut put, "head.fc1", 2 * d, d);
    put("head.norm.weight".into(), &[2 * d]);
    put("head.norm.bias".into(), &[2 * d]);
    linear(&mut put, "head.fc2", v, 2 * d);
    m
}

/// A scratch directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("lsnn-layers-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The small model with the wired CfC over AutoNCP(10, 3): command ⌊0.4·7⌋ = 2, inter 5, motor 3.
fn small_ncp_config() -> ModelConfig {
    let cfg = ModelConfig {
        liquid_backbone: "ncp".into(),
        liquid_units: 10,
        ncp_outputs: Some(3),
        ..small_config(2, 1)
    };
    cfg.validate().unwrap();
    cfg
}

#[test]
fn the_wired_cell_saves_under_ncps_names() {
    let cfg = small_ncp_config();
    let (_model, varmap) = init_model(&cfg, SeededRng::new(1), &Device::Cpu).unwrap();
    let want = expected_keys(&cfg);
    let data = varmap.data().lock().unwrap();
    let got: BTreeMap<String, Vec<usize>> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().dims().to_vec()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(got["blocks.0.cfc.layer_0.ff1.weight"], [5, 10 + 5]);
    assert_eq!(got["blocks.1.fuse.weight"], [16, 3 + 10]);
}

#[test]
fn saved_keys_and_shapes_follow_the_spec_table() {
    let cfg = small_config(4, 2);
    let (_model, varmap) = init_model(&cfg, SeededRng::new(1), &Device::Cpu).unwrap();
    let dir = TempDir::new("keys");
    let path = dir.0.join("model.safetensors");
    varmap.save(&path).unwrap();
    let loaded = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let want = expected_keys(&cfg);
    let got: BTreeMap<String, Vec<usize>> = loaded
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}"
    );
    for (k, shape) in &want {
        assert_eq!(&got[k], shape, "{k}");
        assert_eq!(loaded[k].dtype(), DType::F32, "{k}");
    }
    // 4 layers, 2 attention layers, 2 backbone layers: the table's size.
    assert_eq!(want.len(), 10 + 4 * 26 + 2 * 8);
    // The saved values are the model's values.
    let data = varmap.data().lock().unwrap();
    for (k, var) in data.iter() {
        assert_eq!(
            max_abs_diff(var.as_tensor(), &loaded[k]),
            0.0,
            "{k} saved value"
        );
    }
    // Initialisation (design §2.7): LayerNorms 1/0, embeddings N(0, range²), Linear U(±1/√in).
    assert!(f32s(&loaded["blocks.0.pnorm.weight"])
        .iter()
        .all(|v| *v == 1.0));
    assert!(f32s(&loaded["head.norm.bias"]).iter().all(|v| *v == 0.0));
    let emb = f32s(&loaded["tok_emb.weight"]);
    let std = (emb.iter().map(|v| v * v).sum::<f32>() / emb.len() as f32).sqrt();
    assert!((std - 1.0).abs() < 0.2, "embedding std {std}");
    let bound = 1.0 / (cfg.hidden_dim as f32).sqrt();
    let gate = f32s(&loaded["blocks.1.gate.weight"]);
    assert!(gate.iter().all(|v| v.abs() <= bound));
    assert!(gate.iter().any(|v| v.abs() > 0.5 * bound));
}

#[test]
fn every_parameter_gets_a_finite_nonzero_gradient() {
    every_parameter_gets_a_gradient(small_config(2, 2));
}

#[test]
fn every_parameter_of_the_wired_model_gets_a_gradient() {
    every_parameter_gets_a_gradient(small_ncp_config());
}

fn every_parameter_gets_a_gradient(cfg: ModelConfig) {
    let (model, varmap) = init_model(&cfg, SeededRng::new(2), &Device::Cpu).unwrap();
    let mut rng = SeededRng::new(3);
    let x = ids(&mut rng, 3, cfg.sequence_length, cfg.vocab_size);
    let (logits, loss) = model.loss(&x, 0.1, &mut Mode::Train(&mut rng)).unwrap();
    let (lb, _, lv) = logits.dims3().unwrap();
    assert_eq!((lb, lv), (3, cfg.vocab_size));
    let objective = loss.objective.to_scalar::<f32>().unwrap();
    let ce = loss.cross_entropy.to_scalar::<f32>().unwrap();
    assert!(objective.is_finite() && ce.is_finite());
    let grads = loss.objective.backward().unwrap();
    let data = varmap.data().lock().unwrap();

    // The first block's encoder fires on this input (x = W_in(tok_emb[ids] + pos_emb)).
    let l = cfg.sequence_length;
    let emb = data["tok_emb.weight"]
        .as_tensor()
        .index_select(&x.flatten_all().unwrap(), 0)
        .unwrap()
        .reshape((3, l, cfg.embedding_dim))
        .unwrap()
        .broadcast_add(&data["pos_emb.weight"].as_tensor().narrow(0, 0, l).unwrap())
        .unwrap()
        .reshape((3 * l, cfg.embedding_dim))
        .unwrap();
    let h = emb
        .matmul(&data["in_proj.weight"].as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(data["in_proj.bias"].as_tensor())
        .unwrap();
    let rate = model.blocks()[0]
        .encoder()
        .rate(&h, &mut Mode::Eval)
        .unwrap()
        .spikes
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(rate > 0.05 && rate < 0.95, "block 0 firing rate {rate}");

    assert_eq!(data.len(), expected_keys(&cfg).len());
    let mut problems = Vec::new();
    for (k, var) in data.iter() {
        match grads.get(var.as_tensor()) {
            None => problems.push(format!("{k}: no gradient")),
            Some(g) => {
                let v = f32s(g);
                if v.iter().any(|x| !x.is_finite()) {
                    problems.push(format!("{k}: non-finite gradient"));
                } else if v.iter().all(|x| *x == 0.0) {
                    problems.push(format!("{k}: zero gradient"));
                }
            }
        }
    }
    problems.sort();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn initialisation_and_training_forward_are_deterministic() {
    let cfg = small_config(2, 1);
    let dev = Device::Cpu;
    let (m1, v1) = init_model(&cfg, SeededRng::new(5), &dev).unwrap();
    let (_m2, v2) = init_model(&cfg, SeededRng::new(5), &dev).unwrap();
    let (_m3, v3) = init_model(&cfg, SeededRng::new(6), &dev).unwrap();
    let (d1, d2, d3) = (
        v1.data().lock().unwrap(),
        v2.data().lock().unwrap(),
        v3.data().lock().unwrap(),
    );
    let mut differ = 0;
    for (k, t) in d1.iter() {
        assert_eq!(max_abs_diff(t.as_tensor(), d2[k].as_tensor()), 0.0, "{k}");
        if max_abs_diff(t.as_tensor(), d3[k].as_tensor()) > 0.0 {
            differ += 1;
        }
    }
    // Everything random differs with another seed (LayerNorms are constant).
    let random = d1
        .keys()
        .filter(|k| !k.contains("norm.") && !k.starts_with("norms."))
        .count();
    assert_eq!(differ, random, "parameters that differ between seeds");

    let mut rng = SeededRng::new(0);
    let x = ids(&mut rng, 2, cfg.sequence_length, cfg.vocab_size);
    let a = m1
        .forward(&x, &mut Mode::Train(&mut SeededRng::new(77)))
        .unwrap();
    let b = m1
        .forward(&x, &mut Mode::Train(&mut SeededRng::new(77)))
        .unwrap();
    assert_eq!(f32s(&a), f32s(&b), "same dropout seed, same logits");
    let c = m1
        .forward(&x, &mut Mode::Train(&mut SeededRng::new(78)))
        .unwrap();
    assert!(max_abs_diff(&a, &c) > 1e-3, "another dropout seed");
    let e1 = m1.forward(&x, &mut Mode::Eval).unwrap();
    let e2 = m1.forward(&x, &mut Mode::Eval).unwrap();
    assert_eq!(f32s(&e1), f32s(&e2));
    assert!(
        max_abs_diff(&a, &e1) > 1e-3,
        "dropout is active in training"
    );
}

#[test]
fn block_streaming_equals_the_sequence_call() {
    streaming_equals_the_sequence_call(&block_config());
}

#[test]
fn wired_block_streaming_equals_the_sequence_call() {
    let cfg = BlockConfig::new(12, 8, 10)
        .with_spike_steps(4)
        .with_lif(LifConfig::default().with_threshold(0.5))
        .with_ncp(lsnn_layers::wiring::AutoNcpConfig::new(10, 3));
    streaming_equals_the_sequence_call(&cfg);
}

fn streaming_equals_the_sequence_call(cfg: &BlockConfig) {
    let blk = block_of(cfg, 31);
    let hd = cfg.liquid_units;
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(32);
    let (b, l, d) = (3usize, 7usize, 12usize);
    let x = rng
        .normal_tensor((b, l, d), 0.0, 1.5, DType::F32, &dev)
        .unwrap();
    let h_init = rng
        .normal_tensor((b, hd), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let rate = blk
        .encoder()
        .rate(&x.reshape((b * l, d)).unwrap(), &mut Mode::Eval)
        .unwrap()
        .spikes
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(rate > 0.05 && rate < 0.95, "firing rate {rate}");
    let given = BlockState { h: h_init.clone() };
    for h0 in [None, Some(&given)] {
        let (out, BlockState { h: h_last }) = blk.forward(&x, h0, &mut Mode::Eval).unwrap();
        assert_eq!(out.dims(), &[b, l, d]);
        assert_eq!(h_last.dims(), &[b, hd]);
        let mut state = match h0 {
            Some(s) => s.clone(),
            None => blk.zero_state(b, DType::F32, &dev).unwrap(),
        };
        for t in 0..l {
            let xt = x.i((.., t, ..)).unwrap().contiguous().unwrap();
            let yt = blk.step(&xt, &mut state, &mut Mode::Eval).unwrap();
            let want = out.i((.., t, ..)).unwrap().contiguous().unwrap();
            let diff = max_abs_diff(&yt, &want);
            assert!(
                diff <= 1e-5,
                "h0 given: {}, position {t}: {diff}",
                h0.is_some()
            );
        }
        assert!(max_abs_diff(&state.h, &h_last) <= 1e-5);
    }
    // The given initial state matters.
    let (a, _) = blk.forward(&x, None, &mut Mode::Eval).unwrap();
    let (c, _) = blk.forward(&x, Some(&given), &mut Mode::Eval).unwrap();
    assert!(max_abs_diff(&a, &c) > 1e-3);
}

#[test]
fn streaming_state_and_logits_carry_no_graph() {
    // Trainable weights are Vars, so every op is tracked: a state carried with its graph would
    // chain every generated token's graph to the next (found by the leak suite).
    let cfg = small_config(2, 1);
    let (model, _vm) = init_model(&cfg, SeededRng::new(9), &Device::Cpu).unwrap();
    let mut state = model.new_state(2).unwrap();
    for t in 0..3u32 {
        let logits = model
            .step(&Tensor::new(&[t, t + 1], &Device::Cpu).unwrap(), &mut state)
            .unwrap();
        assert!(!logits.track_op(), "step {t}: logits keep a graph");
    }
    // The full forward of the same model does track (the check above can fail).
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    assert!(model.forward(&ids, &mut Mode::Eval).unwrap().track_op());
}

/// The staged backward of `loss_and_grads` gives the gradients of one backward pass through the
/// same forward (same dropout draws), scaled, for every parameter.
#[test]
fn staged_backward_equals_one_backward_pass() {
    for num_layers in [1, 2, 3] {
        let cfg = small_config(num_layers, 1);
        let (model, vm) = init_model(&cfg, SeededRng::new(3), &Device::Cpu).unwrap();
        let window = ids(
            &mut SeededRng::new(4),
            3,
            cfg.sequence_length + 1,
            cfg.vocab_size,
        );
        for train in [false, true] {
            let mut r1 = SeededRng::new(10);
            let mut r2 = r1.clone();
            let mut m1 = if train {
                Mode::Train(&mut r1)
            } else {
                Mode::Eval
            };
            let mut m2 = if train {
                Mode::Train(&mut r2)
            } else {
                Mode::Eval
            };
            let (_, plain) = model.loss(&window, 0.1, &mut m1).unwrap();
            let want = plain.objective.backward().unwrap();
            let (values, got) = model.loss_and_grads(&window, 0.1, &mut m2, 0.25).unwrap();
            let got = got.expect("finite loss");
            let a = values.objective.to_scalar::<f32>().unwrap();
            let b = plain.objective.to_scalar::<f32>().unwrap();
            assert_eq!(a, b, "objective (layers {num_layers}, train {train})");
            let vars = lsnn_layers::named_vars(&vm);
            assert!(!vars.is_empty());
            for (name, v) in &vars {
                let w = want.get(v.as_tensor());
                let g = got.get(v.as_tensor());
                let (Some(w), Some(g)) = (w, g) else {
                    panic!(
                        "{name}: gradient missing (plain {}, staged {})",
                        w.is_some(),
                        g.is_some()
                    );
                };
                let d = max_abs_diff(&(w * 0.25).unwrap(), g);
                let scale = f32s(w).iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-3);
                assert!(
                    d <= 1e-5 * scale.max(1.0),
                    "{name}: staged differs by {d} (layers {num_layers}, train {train})"
                );
            }
        }
    }
}

/// The detached model computes the same logits and builds no graph; an update of the original's
/// parameters is seen by it (shared storage, no copy).
#[test]
fn the_detached_model_shares_parameters_and_builds_no_graph() {
    let cfg = small_config(2, 1);
    let (model, vm) = init_model(&cfg, SeededRng::new(3), &Device::Cpu).unwrap();
    let frozen = model.detached();
    let window = ids(
        &mut SeededRng::new(4),
        2,
        cfg.sequence_length,
        cfg.vocab_size,
    );
    let a = model.forward(&window, &mut Mode::Eval).unwrap();
    let b = frozen.forward(&window, &mut Mode::Eval).unwrap();
    assert_eq!(f32s(&a), f32s(&b));
    let tracked = a.sum_all().unwrap().backward().unwrap();
    let grads = b.sum_all().unwrap().backward().unwrap();
    // Only the root itself is in a store of a graph-free forward.
    assert_eq!(
        grads.get_ids().count(),
        1,
        "the detached forward built a graph"
    );
    for (name, v) in lsnn_layers::named_vars(&vm) {
        assert!(
            tracked.get(v.as_tensor()).is_some(),
            "{name}: the original is not tracked"
        );
        assert!(
            grads.get(v.as_tensor()).is_none(),
            "{name}: the detached model is tracked"
        );
    }
    for (_, v) in lsnn_layers::named_vars(&vm) {
        v.set(&(v.as_tensor() * 0.5).unwrap()).unwrap();
    }
    let c = frozen.forward(&window, &mut Mode::Eval).unwrap();
    assert!(
        max_abs_diff(&b, &c) > 0.0,
        "the detached model did not see the update"
    );
    assert_eq!(
        f32s(&c),
        f32s(&model.forward(&window, &mut Mode::Eval).unwrap())
    );
}
