//! The `lsnn` command end to end, in fresh processes, from files alone.

mod support;

use std::path::Path;
use support::{
    assert_below_bigram, current_files, err, lsnn, ok, saved_config, scratch, setup, train_tiny,
    CONFIG,
};

#[test]
fn resume_in_a_fresh_process_is_bit_exact() {
    let d = scratch("resume");
    setup(&d);
    let common = ["train", "--config", "config.json", "--data", "data.txt"];
    let straight = ok(&lsnn(&[&common[..], &["--out", "straight"]].concat(), &d));
    assert!(straight.contains("done: val loss"), "{straight}");
    // 7 batches: mid-epoch (each epoch has more batches) and inside a window of 3.
    let first = ok(&lsnn(
        &[&common[..], &["--out", "split", "--max-batches", "7"]].concat(),
        &d,
    ));
    assert!(
        first.contains("stopped after 7 batches (2 optimizer steps)"),
        "{first}"
    );
    let state: serde_json::Value = serde_json::from_slice(
        &current_files(&d.join("split"))
            .into_iter()
            .find(|(n, _)| n == "trainer_state.json")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(state["accum_in_window"], 1);
    assert_eq!(state["epoch"], 0);
    ok(&lsnn(&["train", "--resume", "split"], &d));
    let a = current_files(&d.join("straight"));
    let b = current_files(&d.join("split"));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        if name == "trainer_state.json" {
            // Equal but for the lineage, which every fresh run draws anew.
            let strip = |bytes: &[u8]| {
                let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                assert!(v["lineage"].is_string(), "{name} records a lineage");
                v.as_object_mut().unwrap().remove("lineage");
                v
            };
            assert_eq!(strip(x), strip(y), "{name} differs beyond the lineage");
            continue;
        }
        assert!(
            x == y,
            "{name} differs between the straight and the resumed run"
        );
    }
    // Resuming with a different config is refused rather than silently mixed.
    let e = err(&lsnn(&["train", "--resume", "split", "--epochs", "3"], &d));
    assert!(e.contains("--resume continues the saved run"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn eval_generate_and_their_errors() {
    let d = scratch("eval");
    setup(&d);
    train_tiny(&d, "run", &["--epochs", "1"]);
    let e = ok(&lsnn(
        &[
            "eval",
            "--checkpoint",
            "run",
            "--dump-logits",
            "dump.safetensors",
        ],
        &d,
    ));
    assert!(e.contains("val loss") && e.contains("(ppl "), "{e}");
    let t = candle_core::safetensors::load(d.join("dump.safetensors"), &candle_core::Device::Cpu)
        .unwrap();
    let (n, l) = t["ids"].dims2().unwrap();
    assert_eq!(t["ids"].dtype(), candle_core::DType::I64);
    assert_eq!(t["logits"].dims(), &[n, l, 256]);
    assert_eq!(l, 16);
    let generate = [
        "generate",
        "--checkpoint",
        "run",
        "--prompt",
        "line 1",
        "--max-tokens",
        "8",
        "--seed",
        "3",
    ];
    let g = ok(&lsnn(&generate, &d));
    assert!(g.starts_with("line 1") && g.trim_end().len() >= 6, "{g}");
    // Same seed, same text.
    assert_eq!(g, ok(&lsnn(&generate, &d)));
    let too_long = err(&lsnn(
        &[
            "generate",
            "--checkpoint",
            "run",
            "--prompt",
            "line 1",
            "--max-tokens",
            "30",
        ],
        &d,
    ));
    assert!(
        too_long.contains("max_position_embeddings = 24"),
        "{too_long}"
    );
    // Inference with bf16 matmuls: where the CPU has AVX-512 BF16, eval's loss moves by less
    // than 1% and generate still continues the prompt; elsewhere both refuse, naming what is
    // missing.
    use lsnn_train::lsnn_layers::kernel::bf16::Bf16Kernel;
    let eval_json = |extra: &[&str]| {
        lsnn(
            &[&["eval", "--checkpoint", "run", "--json"], extra].concat(),
            &d,
        )
    };
    let loss = |o: &std::process::Output| {
        let j: serde_json::Value = serde_json::from_str(ok(o).trim()).unwrap();
        j["val_loss"].as_f64().unwrap()
    };
    let f32_loss = loss(&eval_json(&[]));
    let bf16_eval = eval_json(&["--precision", "bf16"]);
    let bf16_generate = lsnn(&[&generate[..], &["--precision", "bf16"]].concat(), &d);
    if Bf16Kernel::active() == Bf16Kernel::Avx512Bf16 {
        let bf16_loss = loss(&bf16_eval);
        assert!(
            bf16_loss != f32_loss && (bf16_loss - f32_loss).abs() <= 0.01 * f32_loss,
            "bf16 {bf16_loss} vs f32 {f32_loss}"
        );
        assert!(ok(&bf16_generate).starts_with("line 1"));
    } else {
        for o in [&bf16_eval, &bf16_generate] {
            let e = err(o);
            assert!(e.contains("AVX-512 BF16"), "{e}");
        }
    }
    let missing = err(&lsnn(&["eval", "--checkpoint", "nowhere"], &d));
    assert!(
        missing.contains("nowhere") && missing.contains("no such directory"),
        "{missing}"
    );
    std::fs::write(d.join("empty.txt"), "").unwrap();
    let empty = err(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "empty.txt",
            "--out",
            "x",
        ],
        &d,
    ));
    assert!(empty.contains("empty"), "{empty}");
    std::fs::write(d.join("bad.json"), CONFIG.replace("\"seed\"", "\"sede\"")).unwrap();
    let bad = err(&lsnn(
        &[
            "train", "--config", "bad.json", "--data", "data.txt", "--out", "x",
        ],
        &d,
    ));
    assert!(
        bad.contains("unknown config field `sede`") && bad.contains("seed"),
        "{bad}"
    );
    std::fs::write(
        d.join("stdp.json"),
        CONFIG.replace("\"seed\": 5", "\"seed\": 5, \"use_stdp\": true"),
    )
    .unwrap();
    let stdp = err(&lsnn(
        &[
            "train",
            "--config",
            "stdp.json",
            "--data",
            "data.txt",
            "--out",
            "x",
        ],
        &d,
    ));
    assert!(stdp.contains("STDP"), "{stdp}");
    let budget = err(&lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "x",
            "--memory-budget",
            "1KiB",
        ],
        &d,
    ));
    assert!(budget.contains("memory budget exceeded"), "{budget}");
    // The device comes from the config or --device; CUDA in a CPU-only build is a clear error,
    // from either place, for every command.
    if !candle_core::utils::cuda_is_available() {
        let train = |extra: &[&str]| {
            let mut args = vec![
                "train",
                "--config",
                "config.json",
                "--data",
                "data.txt",
                "--out",
                "y",
            ];
            args.extend_from_slice(extra);
            err(&lsnn(&args, &d))
        };
        for msg in [
            train(&["--device", "cuda:1"]),
            err(&lsnn(
                &["eval", "--checkpoint", "run", "--device", "cuda"],
                &d,
            )),
            err(&lsnn(
                &[
                    "generate",
                    "--checkpoint",
                    "run",
                    "--prompt",
                    "a",
                    "--device",
                    "cuda",
                ],
                &d,
            )),
        ] {
            assert!(
                msg.contains("cuda") && msg.contains("--features cuda"),
                "{msg}"
            );
        }
        std::fs::write(
            d.join("cuda.json"),
            CONFIG.replace("\"seed\": 5", "\"seed\": 5, \"device\": \"cuda\""),
        )
        .unwrap();
        let msg = err(&lsnn(
            &[
                "train",
                "--config",
                "cuda.json",
                "--data",
                "data.txt",
                "--out",
                "y",
            ],
            &d,
        ));
        assert!(msg.contains("--features cuda"), "{msg}");
        let msg = train(&["--device", "tpu"]);
        assert!(msg.contains("device") && msg.contains("tpu"), "{msg}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_original_python_config_trains() {
    let d = scratch("orig");
    // The Python original's own file (design §5), shrunk in length only.
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../lsnn-train/tests/fixtures/orig_config_sample.json"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&sample).unwrap();
    v["hidden_dim"] = 24.into();
    v["input_dim"] = 24.into();
    v["embedding_dim"] = 24.into();
    v["sequence_length"] = 12.into();
    v["max_position_embeddings"] = 12.into();
    v["liquid_units"] = 8.into();
    v["spiking_units"] = 8.into();
    std::fs::write(d.join("orig.json"), v.to_string()).unwrap();
    let text: String = (0..60)
        .map(|i| format!("{i} apples and {} pears\n", i % 5))
        .collect();
    std::fs::write(d.join("data.txt"), text).unwrap();
    let out = ok(&lsnn(
        &[
            "train",
            "--config",
            "orig.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--max-batches",
            "3",
        ],
        &d,
    ));
    assert!(out.contains("stopped after 3 batches"), "{out}");
    let cfg = saved_config(&d.join("run"));
    // Fully resolved: lsnn's own fields are written out too.
    assert_eq!(cfg["num_attention_heads"], 3);
    assert_eq!(cfg["backbone_units"], 128);
    assert_eq!(cfg["attention_spike_steps"], 4);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_learnable_non_default_surrogate_encoder_trains_below_the_bigram_baseline() {
    let d = scratch("surrogate");
    let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    v["surrogate"] = "spike_rate_escape".into();
    v["surrogate_slope"] = 5.0.into();
    v["surrogate_beta"] = 2.0.into();
    v["learn_beta"] = "per_neuron".into();
    v["beta_form"] = "sigmoid".into();
    v["learn_threshold"] = "shared".into();
    v["num_epochs"] = 1.into();
    std::fs::write(d.join("sre.json"), v.to_string()).unwrap();
    let out = ok(&lsnn(
        &["train", "--config", "sre.json", "--out", "run"],
        &d,
    ));
    assert_below_bigram(&out);
    let cfg = saved_config(&d.join("run"));
    assert_eq!(cfg["surrogate"], "spike_rate_escape");
    assert_eq!(cfg["surrogate_beta"], 2.0);
    assert_eq!(cfg["learn_beta"], "per_neuron");
    assert_eq!(cfg["beta_form"], "sigmoid");
    // The learned β and θ are the model's own variables, saved with it, and training moved them.
    let current = std::fs::read_to_string(d.join("run/CURRENT")).unwrap();
    let model =
        std::fs::read(d.join("run").join(current.trim()).join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&model).unwrap();
    let logit = st.tensor("blocks.0.encoder.lif1.beta_logit").unwrap();
    let theta = st.tensor("blocks.0.encoder.lif2.threshold").unwrap();
    assert_eq!(theta.shape(), [1]);
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let (beta, th0) = (
        cfg["beta"].as_f64().unwrap() as f32,
        cfg["spike_threshold"].as_f64().unwrap() as f32,
    );
    let start = (beta / (1.0 - beta)).ln();
    assert!(
        f32s(logit.data()).iter().any(|w| (w - start).abs() > 1e-4),
        "β moved"
    );
    assert!((f32s(theta.data())[0] - th0).abs() > 1e-5, "θ moved");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_ncp_config_trains_the_built_in_task_below_the_bigram_baseline() {
    let d = scratch("ncp");
    let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    v["liquid_backbone"] = "ncp".into();
    v["liquid_units"] = 16.into();
    v["num_epochs"] = 1.into();
    std::fs::write(d.join("ncp.json"), v.to_string()).unwrap();
    let out = ok(&lsnn(
        &["train", "--config", "ncp.json", "--out", "run"],
        &d,
    ));
    assert_below_bigram(&out);
    let cfg = saved_config(&d.join("run"));
    // The wiring's resolved fields are saved: ⌊0.3·16⌋ = 4 motor neurons, ncps' defaults.
    assert_eq!(cfg["ncp_outputs"], 4);
    assert_eq!(cfg["ncp_seed"], 22222);
    // The wired cell's keys follow ncps' (`layer_{l}.…`).
    let model = std::fs::read(
        d.join("run")
            .join(
                std::fs::read_to_string(d.join("run/CURRENT"))
                    .unwrap()
                    .trim(),
            )
            .join("model.safetensors"),
    )
    .unwrap();
    let names = safetensors::SafeTensors::deserialize(&model)
        .unwrap()
        .names()
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    assert!(
        names.iter().any(|n| n == "blocks.0.cfc.layer_2.ff1.weight"),
        "{names:?}"
    );
    let out = ok(&lsnn(
        &[
            "generate",
            "--checkpoint",
            "run",
            "--prompt",
            "1+2=",
            "--max-tokens",
            "3",
        ],
        &d,
    ));
    assert!(!out.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}
