//! Each neuron of the family (design §2.10–§2.13) in every encoder and attention layer of a
//! model trained from the command line on the built-in task: below the bigram baseline, the
//! config keeping the neuron, and its own saved variables.

mod support;

use support::{
    assert_below_bigram, lsnn, ok, saved_config, saved_model, saved_tensor, scratch, CONFIG,
};

/// The current-based LIF (design §2.10) in every encoder and attention layer, α learned per
/// neuron: the run trains below the bigram baseline, the config keeps the neuron, and α is a
/// saved variable that training moved.
#[test]
fn a_synaptic_neuron_model_trains_below_the_bigram_baseline() {
    let d = scratch("synaptic");
    let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    v["neuron"] =
        serde_json::json!({"kind": "synaptic", "alpha": 0.6, "learn_alpha": "per_neuron"});
    v["num_epochs"] = 1.into();
    std::fs::write(d.join("syn.json"), v.to_string()).unwrap();
    let out = ok(&lsnn(
        &["train", "--config", "syn.json", "--out", "run"],
        &d,
    ));
    assert_below_bigram(&out);
    let cfg = saved_config(&d.join("run"));
    assert_eq!(cfg["neuron"]["kind"], "synaptic");
    assert_eq!(cfg["neuron"]["alpha"], 0.6);
    let (_, alphas) = saved_tensor(&d.join("run"), "blocks.0.encoder.lif1.alpha");
    assert_eq!(
        alphas.len(),
        2 * cfg["spiking_units"].as_u64().unwrap() as usize
    );
    assert!(alphas.iter().any(|a| (a - 0.6).abs() > 1e-5), "α moved");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The alpha neuron (design §2.12) in every encoder and attention layer, α learned per neuron in
/// the sigmoid form (a direct α was taken past 1 by Adam within the epoch and refused) and the
/// model's β (its inhibitory decay) lowered to 0.6 with six spike steps, so that the kernel,
/// which starts at zero, rises within the steps: the run trains below the bigram baseline, the
/// config keeps the neuron, and `alpha_logit` is a saved variable that training moved.
#[test]
fn an_alpha_neuron_model_trains_below_the_bigram_baseline() {
    let d = scratch("alpha");
    let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    v["neuron"] = serde_json::json!(
        {"kind": "alpha", "alpha": 0.9, "learn_alpha": "per_neuron", "alpha_form": "sigmoid"}
    );
    v["beta"] = 0.6.into();
    v["num_spike_steps"] = 6.into();
    v["attention_spike_steps"] = 6.into();
    v["num_epochs"] = 1.into();
    std::fs::write(d.join("alpha.json"), v.to_string()).unwrap();
    let out = ok(&lsnn(
        &["train", "--config", "alpha.json", "--out", "run"],
        &d,
    ));
    assert_below_bigram(&out);
    let cfg = saved_config(&d.join("run"));
    assert_eq!(cfg["neuron"]["kind"], "alpha");
    assert_eq!(cfg["neuron"]["alpha"], 0.9);
    assert_eq!(cfg["neuron"]["alpha_form"], "sigmoid");
    assert_eq!(cfg["beta"], 0.6);
    let (_, logits) = saved_tensor(&d.join("run"), "blocks.0.encoder.lif1.alpha_logit");
    assert_eq!(
        logits.len(),
        2 * cfg["spiking_units"].as_u64().unwrap() as usize
    );
    let start = (0.9f32 / 0.1).ln();
    assert!(logits.iter().any(|w| (w - start).abs() > 1e-4), "α moved");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The recurrent LIF (design §2.11) in every encoder and attention layer, all-to-all (the
/// default connection): the run trains below the bigram baseline, the config keeps the neuron,
/// and every spiking layer saved its recurrent weight and bias under snnTorch's names, sized to
/// its own width.
#[test]
fn an_rleaky_neuron_model_trains_below_the_bigram_baseline() {
    let d = scratch("rleaky");
    let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    v["neuron"] = serde_json::json!({"kind": "rleaky"});
    v["num_epochs"] = 1.into();
    std::fs::write(d.join("rlif.json"), v.to_string()).unwrap();
    let out = ok(&lsnn(
        &["train", "--config", "rlif.json", "--out", "run"],
        &d,
    ));
    assert_below_bigram(&out);
    let cfg = saved_config(&d.join("run"));
    assert_eq!(cfg["neuron"]["kind"], "rleaky");
    assert_eq!(cfg["neuron"]["connection"], "all_to_all");
    let model = saved_model(&d.join("run"));
    let st = safetensors::SafeTensors::deserialize(&model).unwrap();
    let units = cfg["spiking_units"].as_u64().unwrap() as usize;
    let (mut encoder, mut attention) = (0, 0);
    for (name, view) in st.tensors() {
        if let Some(layer) = name.strip_suffix(".recurrent.weight") {
            let f = view.shape()[0];
            assert_eq!(view.shape(), &[f, f], "{name}");
            let bias = st.tensor(&format!("{layer}.recurrent.bias")).unwrap();
            assert_eq!(bias.shape(), &[f], "{layer}");
            match layer.starts_with("attns.") {
                true => attention += 1,
                false => encoder += 1,
            }
        }
    }
    // Each block's encoder has two layers (2U and U wide); the attention its rate code.
    let blocks = cfg["num_layers"].as_u64().unwrap() as usize;
    assert_eq!(encoder, 2 * blocks, "encoder layers with recurrent weights");
    assert!(
        attention >= 1,
        "the attention's rate code has recurrent weights"
    );
    let lif1 = st.tensor("blocks.0.encoder.lif1.recurrent.weight").unwrap();
    assert_eq!(lif1.shape(), &[2 * units, 2 * units]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// The adaptive LIF (design §2.13) in every encoder and attention layer, with the reset to zero it
/// requires, its threshold rising by 0.3 per spike and decaying with 0.8, and the baseline θ
/// learned per neuron: the run trains below the bigram baseline, the config keeps the neuron, and
/// θ is a saved variable that training moved.
#[test]
fn an_alif_neuron_model_trains_below_the_bigram_baseline() {
    let d = scratch("alif");
    let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    v["neuron"] = serde_json::json!({"kind": "alif", "adapt_decay": 0.8, "adapt_jump": 0.3});
    v["reset_mechanism"] = "zero".into();
    v["learn_threshold"] = "per_neuron".into();
    v["num_spike_steps"] = 6.into();
    v["attention_spike_steps"] = 6.into();
    v["num_epochs"] = 1.into();
    std::fs::write(d.join("alif.json"), v.to_string()).unwrap();
    let out = ok(&lsnn(
        &["train", "--config", "alif.json", "--out", "run"],
        &d,
    ));
    assert_below_bigram(&out);
    let cfg = saved_config(&d.join("run"));
    assert_eq!(cfg["neuron"]["kind"], "alif");
    assert_eq!(cfg["neuron"]["adapt_jump"], 0.3);
    assert_eq!(cfg["neuron"]["alpha"], 0.8);
    let (shape, theta) = saved_tensor(&d.join("run"), "blocks.0.encoder.lif1.threshold");
    assert_eq!(shape, [2 * cfg["spiking_units"].as_u64().unwrap() as usize]);
    let start = cfg["spike_threshold"].as_f64().unwrap() as f32;
    assert!(theta.iter().any(|t| (t - start).abs() > 1e-5), "θ moved");
    std::fs::remove_dir_all(&d).unwrap();
}
