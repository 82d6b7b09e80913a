//! The sequence models against an independent PyTorch implementation
//! (scripts/fixtures/gen_sequence.py): the regression head with per-position time spans and
//! padded rows, and the classifier with each readout — predictions, loss and every parameter's
//! gradient from one forward and backward pass on the same weights, within the language model's
//! parity tolerances.

mod common;

use candle_core::DType;
use common::{
    assert_grad_close, fixture_path, load, max_abs_diff, parameters, scalar, varmap_from,
};
use lsnn_layers::{Mode, ModelConfig, Readout, SeqInput, SequenceModel, Targets};

fn check(name: &str, task: &str, readout: Option<Readout>, outputs: usize) {
    let f = load(&format!("{name}.safetensors"));
    for k in ["firing_rate.enc1", "firing_rate.enc2", "firing_rate.attn"] {
        let r = scalar(&f[k]);
        assert!(
            r > 0.05 && r < 0.6,
            "{name}: {k} = {r}; the fixture must exercise spikes"
        );
    }
    let text = std::fs::read_to_string(fixture_path("seq_config.json")).unwrap();
    let mut cfg: ModelConfig = serde_json::from_str(&text).unwrap();
    cfg.task_type = task.into();
    cfg.readout = readout;
    cfg.output_dim = outputs;
    cfg.validate().unwrap();
    let params = parameters(&f, &["x", "y", "spans", "lengths", "out", "loss"]);
    let (vm, vb) = varmap_from(&params);
    let model = SequenceModel::new(&cfg, vb).unwrap();
    assert_eq!(
        vm.all_vars().len(),
        params.len(),
        "{name}: exactly the fixture's parameters"
    );
    let lengths: Vec<usize> = f["lengths"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|n| n as usize)
        .collect();
    let mut input = SeqInput::new(f["x"].clone()).with_lengths(lengths.clone());
    if let Some(s) = f.get("spans") {
        input = input.with_spans(s.clone());
    }
    let targets = match task {
        "regression" => Targets::Values(f["y"].clone()),
        _ => Targets::Classes(f["y"].to_dtype(DType::U32).unwrap()),
    };
    let (out, l) = model.loss(&input, &targets, &mut Mode::Eval).unwrap();
    let reference = &f["out"];
    match task {
        "regression" => {
            // Only the valid positions are defined (the reference's padding holds junk).
            for (r, &n) in lengths.iter().enumerate() {
                let a = out.narrow(0, r, 1).unwrap().narrow(1, 0, n).unwrap();
                let b = reference.narrow(0, r, 1).unwrap().narrow(1, 0, n).unwrap();
                let d = max_abs_diff(&a, &b);
                assert!(d <= 1e-4, "{name}: row {r} predictions differ by {d}");
            }
        }
        _ => {
            let d = max_abs_diff(&out, reference);
            assert!(d <= 1e-4, "{name}: logits differ by {d}");
        }
    }
    let want = scalar(&f["loss"]);
    assert!(
        (l.loss - want).abs() <= 1e-4 * want.abs().max(1.0),
        "{name}: loss {} vs {want}",
        l.loss
    );
    let grads = l.objective.backward().unwrap();
    let data = vm.data().lock().unwrap();
    for (k, var) in data.iter() {
        let gk = format!("grad.{k}");
        assert_grad_close(
            &format!("{name} {gk}"),
            grads.get(var.as_tensor()).expect(&gk),
            &f[&gk],
            1e-4,
        );
    }
}

#[test]
fn regression_with_spans_and_padding_matches_pytorch() {
    check("seq_regression", "regression", None, 2);
}

#[test]
fn classification_with_the_last_readout_matches_pytorch() {
    check(
        "seq_classification_last",
        "classification",
        Some(Readout::Last),
        3,
    );
}

#[test]
fn classification_with_the_mean_readout_matches_pytorch() {
    check(
        "seq_classification_mean",
        "classification",
        Some(Readout::Mean),
        3,
    );
}
