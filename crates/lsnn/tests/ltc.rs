//! The LTC as the liquid cell (`liquid_backbone: "ltc"`, design §2.14) trained from the command
//! line on the built-in task: dense with the explicit constraint (`LTCCell`'s), and wired over an
//! AutoNCP with the default, implicit one (ncps' `LTC` wrapper's) — below the bigram baseline, the config keeping the LTC fields, its
//! variables saved under ncps' names, the explicit constraint holding after training, and
//! generation streaming from the checkpoint.

mod support;

use support::{assert_below_bigram, lsnn, ok, saved_config, saved_tensor, scratch, CONFIG};

fn train(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> (support::Scratch, String) {
    let d = scratch(name);
    let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    v["liquid_backbone"] = "ltc".into();
    v["num_epochs"] = 1.into();
    edit(&mut v);
    std::fs::write(d.join("ltc.json"), v.to_string()).unwrap();
    let out = ok(&lsnn(
        &["train", "--config", "ltc.json", "--out", "run"],
        &d,
    ));
    (d, out)
}

#[test]
fn a_dense_ltc_model_trains_below_the_bigram_baseline_with_the_explicit_constraint() {
    let (d, out) = train("ltc-dense", |v| v["ltc_constraint"] = "explicit".into());
    assert_below_bigram(&out);
    let run = d.join("run");
    let cfg = saved_config(&run);
    assert_eq!(cfg["liquid_backbone"], "ltc");
    assert_eq!(cfg["ltc_wiring"], "fully_connected");
    assert_eq!(cfg["ltc_ode_unfolds"], 6);
    assert_eq!(cfg["ltc_constraint"], "explicit");
    let h = cfg["liquid_units"].as_u64().unwrap() as usize;
    let (dims, w) = saved_tensor(&run, "blocks.0.ltc.w");
    assert_eq!(dims, [h, h]);
    // ncps' initial w lies in [0.001, 1]; training moved it, and the clamp after every step
    // kept every positive parameter ≥ 0.
    for block in 0..2 {
        for name in ["w", "sensory_w", "cm", "gleak"] {
            let (_, v) = saved_tensor(&run, &format!("blocks.{block}.ltc.{name}"));
            assert!(v.iter().all(|x| *x >= 0.0), "{name} < 0 after training");
        }
    }
    let (_, vleak) = saved_tensor(&run, "blocks.0.ltc.vleak");
    assert!(vleak.iter().all(|x| x.is_finite()));
    assert!(w.iter().any(|x| *x > 0.0));
    let gen = ok(&lsnn(
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
    assert!(!gen.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_wired_ltc_model_trains_below_the_bigram_baseline_with_the_implicit_constraint() {
    let (d, out) = train("ltc-ncp", |v| {
        v["liquid_units"] = 16.into();
        v["ltc_wiring"] = "ncp".into();
        v["ltc_ode_unfolds"] = 4.into();
    });
    assert_below_bigram(&out);
    let run = d.join("run");
    let cfg = saved_config(&run);
    assert_eq!(cfg["ltc_wiring"], "ncp");
    assert_eq!(cfg["ncp_outputs"], 4);
    assert_eq!(cfg["ltc_ode_unfolds"], 4);
    assert_eq!(cfg["ltc_constraint"], "implicit", "the default, resolved");
    // The output mapping covers the 4 motor neurons; the fusion reads them.
    let (dims, _) = saved_tensor(&run, "blocks.1.ltc.output_w");
    assert_eq!(dims, [4]);
    std::fs::remove_dir_all(&d).unwrap();
}
