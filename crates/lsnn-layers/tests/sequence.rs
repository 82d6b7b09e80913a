//! The sequence models (design §2.9): padded rows score exactly as the rows alone, both
//! readouts, per-position time spans reach the CfC, streaming equals the sequence call, every
//! parameter learns, and bad input is a typed error.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::VarMap;
use common::max_abs_diff;
use lsnn_layers::model::loss;
use lsnn_layers::{
    LayerError, Mode, ModelConfig, Readout, SeededInit, SeededRng, SeqInput, SequenceModel, Targets,
};

fn seq_config(task: &str, readout: Option<Readout>) -> ModelConfig {
    ModelConfig {
        task_type: task.into(),
        input_dim: 3,
        output_dim: if task == "classification" { 4 } else { 2 },
        readout,
        label_smoothing: 0.0,
        ..common::small_config(2, 1)
    }
}

fn model(cfg: &ModelConfig, seed: u64) -> (SequenceModel, Vec<(String, Var)>) {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(seed), DType::F32, &Device::Cpu);
    let m = SequenceModel::new(cfg, vb).unwrap();
    (m, lsnn_layers::named_vars(&vm))
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    SeededRng::new(seed)
        .normal_tensor(shape, 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap()
}

/// x [B, L, 3] whose positions at and beyond each row's length hold large junk.
fn padded_x(lengths: &[usize], l: usize, seed: u64) -> Tensor {
    let x = randn(&[lengths.len(), l, 3], seed);
    let mut v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (r, &n) in lengths.iter().enumerate() {
        for t in n..l {
            for k in 0..3 {
                v[(r * l + t) * 3 + k] = 500.0 + (t * 7 + k) as f32;
            }
        }
    }
    Tensor::from_vec(v, (lengths.len(), l, 3), &Device::Cpu).unwrap()
}

fn grads_of(
    m: &SequenceModel,
    vars: &[(String, Var)],
    input: &SeqInput,
    targets: &Targets,
    scale: f64,
) -> Vec<Tensor> {
    let (_, store) = m
        .loss_and_grads(input, targets, &mut Mode::Eval, scale)
        .unwrap();
    let store = store.unwrap();
    vars.iter()
        .map(|(_, v)| store.get(v.as_tensor()).unwrap().clone())
        .collect()
}

#[test]
fn padded_regression_rows_score_and_learn_as_the_rows_alone() {
    let cfg = seq_config("regression", None);
    let (m, vars) = model(&cfg, 3);
    let lengths = [7usize, 4, 2];
    let x = padded_x(&lengths, 7, 11);
    let y = randn(&[3, 7, 2], 12);
    let spans = (randn(&[3, 7], 13).abs().unwrap() + 0.5).unwrap();
    let input = SeqInput::new(x.clone())
        .with_spans(spans.clone())
        .with_lengths(lengths.to_vec());
    let targets = Targets::Values(y.clone());
    let (pred, whole) = m.loss(&input, &targets, &mut Mode::Eval).unwrap();
    let grads = grads_of(&m, &vars, &input, &targets, 1.0);
    // Each row alone, unpadded: its predictions, and the loss and gradient weighted by its
    // share of the valid elements.
    let total: usize = lengths.iter().sum();
    let mut loss_sum = 0.0;
    let mut mse_sum = 0.0;
    let mut combined: Vec<Option<Tensor>> = vec![None; vars.len()];
    for (r, &n) in lengths.iter().enumerate() {
        let one = SeqInput::new(x.i((r..r + 1, 0..n, ..)).unwrap().contiguous().unwrap())
            .with_spans(spans.i((r..r + 1, 0..n)).unwrap().contiguous().unwrap());
        let t = Targets::Values(y.i((r..r + 1, 0..n, ..)).unwrap().contiguous().unwrap());
        let (p, l) = m.loss(&one, &t, &mut Mode::Eval).unwrap();
        let d = max_abs_diff(&p, &pred.i((r..r + 1, 0..n, ..)).unwrap());
        assert!(d < 1e-5, "row {r}: predictions differ by {d}");
        let share = n as f64 / total as f64;
        loss_sum += l.loss * share;
        mse_sum += l.metrics.0 * share;
        for (acc, g) in combined
            .iter_mut()
            .zip(grads_of(&m, &vars, &one, &t, share))
        {
            *acc = Some(match acc.take() {
                None => g,
                Some(a) => (a + g).unwrap(),
            });
        }
    }
    assert!(
        (whole.loss - loss_sum).abs() < 1e-6,
        "{} vs {loss_sum}",
        whole.loss
    );
    assert!((whole.metrics.0 - mse_sum).abs() < 1e-6);
    assert_eq!(whole.weight, (total * 2) as f64);
    for ((name, _), (g, c)) in vars.iter().zip(grads.iter().zip(&combined)) {
        let c = c.as_ref().unwrap();
        let scale = c
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .max(1e-3);
        let d = max_abs_diff(g, c);
        assert!(
            d <= 1e-4 * scale.max(1.0),
            "{name}: gradient differs by {d} (scale {scale})"
        );
    }
}

#[test]
fn both_readouts_ignore_padding() {
    for readout in [Readout::Last, Readout::Mean] {
        let cfg = seq_config("classification", Some(readout));
        let (m, _) = model(&cfg, 5);
        let lengths = [5usize, 1, 3];
        let x = padded_x(&lengths, 5, 21);
        let classes = Tensor::new(&[3u32, 0, 2], &Device::Cpu).unwrap();
        let input = SeqInput::new(x.clone()).with_lengths(lengths.to_vec());
        let targets = Targets::Classes(classes.clone());
        let (logits, whole) = m.loss(&input, &targets, &mut Mode::Eval).unwrap();
        assert_eq!(logits.dims(), [3, 4]);
        let mut loss_sum = 0.0;
        for (r, &n) in lengths.iter().enumerate() {
            let one = SeqInput::new(x.i((r..r + 1, 0..n, ..)).unwrap().contiguous().unwrap());
            let t = Targets::Classes(classes.i(r..r + 1).unwrap());
            let (p, l) = m.loss(&one, &t, &mut Mode::Eval).unwrap();
            let d = max_abs_diff(&p, &logits.i(r..r + 1).unwrap());
            assert!(d < 1e-5, "{readout:?} row {r}: logits differ by {d}");
            loss_sum += l.loss / 3.0;
        }
        assert!((whole.loss - loss_sum).abs() < 1e-6, "{readout:?}");
        // A different readout gives different logits (the field is read).
        let other = if readout == Readout::Last {
            Readout::Mean
        } else {
            Readout::Last
        };
        let (m2, _) = model(&seq_config("classification", Some(other)), 5);
        let l2 = m2.forward(&input, &mut Mode::Eval).unwrap();
        assert!(max_abs_diff(&l2, &logits) > 1e-4, "{readout:?}");
    }
}

#[test]
fn a_static_classifier_input_is_one_position() {
    let (m, _) = model(&seq_config("classification", None), 6);
    let x = randn(&[4, 3], 31);
    let flat = m
        .forward(&SeqInput::new(x.clone()), &mut Mode::Eval)
        .unwrap();
    let seq = m
        .forward(&SeqInput::new(x.unsqueeze(1).unwrap()), &mut Mode::Eval)
        .unwrap();
    assert_eq!(max_abs_diff(&flat, &seq), 0.0);
}

#[test]
fn time_spans_reach_the_cfc() {
    let (m, _) = model(&seq_config("regression", None), 7);
    let x = randn(&[2, 6, 3], 41);
    let plain = m
        .forward(&SeqInput::new(x.clone()), &mut Mode::Eval)
        .unwrap();
    let ones = Tensor::ones((2, 6), DType::F32, &Device::Cpu).unwrap();
    let unit = m
        .forward(&SeqInput::new(x.clone()).with_spans(ones), &mut Mode::Eval)
        .unwrap();
    // The config's constant span is 1: a span of 1 everywhere is the same model.
    let d = max_abs_diff(&plain, &unit);
    assert!(d < 1e-5, "unit spans differ from the constant span by {d}");
    let spans = (randn(&[2, 6], 42).abs().unwrap() * 3.0).unwrap();
    let varied = m
        .forward(&SeqInput::new(x).with_spans(spans), &mut Mode::Eval)
        .unwrap();
    assert!(
        max_abs_diff(&plain, &varied) > 1e-3,
        "spans changed nothing"
    );
    // Position 0's output depends on its own span, so the first position differs too.
}

#[test]
fn streaming_equals_the_sequence_call() {
    let (m, _) = model(&seq_config("regression", None), 8);
    let (b, l) = (3, 6);
    let x = randn(&[b, l, 3], 51);
    let spans = (randn(&[b, l], 52).abs().unwrap() + 0.25).unwrap();
    let full = m
        .forward(
            &SeqInput::new(x.clone()).with_spans(spans.clone()),
            &mut Mode::Eval,
        )
        .unwrap();
    let mut state = m.new_state(b, l).unwrap();
    for t in 0..l {
        let out = m
            .step(
                &x.i((.., t, ..)).unwrap().contiguous().unwrap(),
                Some(&spans.i((.., t)).unwrap().contiguous().unwrap()),
                &mut state,
            )
            .unwrap();
        let d = max_abs_diff(&out, &full.i((.., t, ..)).unwrap());
        assert!(d < 1e-4, "position {t}: {d}");
    }
    assert_eq!(state.position(), l);
    // Past the caches' capacity: a typed error, not a reallocation.
    let err = m
        .step(
            &x.i((.., 0, ..)).unwrap().contiguous().unwrap(),
            None,
            &mut state,
        )
        .unwrap_err();
    assert!(matches!(err, LayerError::SequenceTooLong { .. }), "{err}");
    // A classifier's mean readout streams as a running mean.
    let (c, _) = model(&seq_config("classification", Some(Readout::Mean)), 9);
    let logits = c
        .forward(&SeqInput::new(x.clone()), &mut Mode::Eval)
        .unwrap();
    let mut s = c.new_state(b, l).unwrap();
    let mut last = None;
    for t in 0..l {
        last = Some(
            c.step(
                &x.i((.., t, ..)).unwrap().contiguous().unwrap(),
                None,
                &mut s,
            )
            .unwrap(),
        );
    }
    let d = max_abs_diff(&last.unwrap(), &logits);
    assert!(d < 1e-4, "mean readout streamed: {d}");
}

#[test]
fn every_parameter_gets_a_gradient() {
    for (task, y) in [
        ("regression", Targets::Values(randn(&[2, 5, 2], 61))),
        (
            "classification",
            Targets::Classes(Tensor::new(&[1u32, 3], &Device::Cpu).unwrap()),
        ),
    ] {
        let cfg = ModelConfig {
            spike_threshold: 0.2,
            ..seq_config(task, None)
        };
        let (m, vars) = model(&cfg, 10);
        let input = SeqInput::new(randn(&[2, 5, 3], 62));
        let grads = grads_of(&m, &vars, &input, &y, 1.0);
        for ((name, _), g) in vars.iter().zip(&grads) {
            let n = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(n > 0.0, "{task}: {name} got no gradient");
        }
    }
}

#[test]
fn smooth_l1_matches_its_definition_and_its_gradient() {
    let d = [-3.0f64, -1.0, -0.4, 0.0, 0.3, 0.999, 2.5];
    let pred = Var::new(&d[..], &Device::Cpu).unwrap();
    let pred3 = pred.as_tensor().reshape((1, 7, 1)).unwrap();
    let zero = Tensor::zeros((1, 7, 1), DType::F64, &Device::Cpu).unwrap();
    let l = loss::smooth_l1(&pred3, &zero, None).unwrap();
    let want: f64 = d
        .iter()
        .map(|&v| {
            if v.abs() < 1.0 {
                0.5 * v * v
            } else {
                v.abs() - 0.5
            }
        })
        .sum::<f64>()
        / 7.0;
    assert!((l.to_scalar::<f64>().unwrap() - want).abs() < 1e-15);
    let g = l.backward().unwrap();
    let g = g.get(pred.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    for (v, gv) in d.iter().zip(g) {
        // PyTorch's gradient: d where |d| < 1, sign(d) beyond, 0 at 0 — over the mean's 7.
        let want = if v.abs() < 1.0 { *v } else { v.signum() } / 7.0;
        assert!((gv - want).abs() < 1e-15, "d = {v}: {gv} vs {want}");
    }
    // The mask keeps only the valid elements in the mean.
    let mask = Tensor::new(
        &[[[1.0f64], [1.0], [0.0], [0.0], [0.0], [0.0], [0.0]]],
        &Device::Cpu,
    )
    .unwrap();
    let masked = loss::smooth_l1(&pred3, &zero, Some(&mask)).unwrap();
    assert!((masked.to_scalar::<f64>().unwrap() - (2.5 + 0.5) / 2.0).abs() < 1e-15);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let (m, _) = model(&seq_config("regression", None), 12);
    let x = randn(&[2, 4, 3], 71);
    let y = Targets::Values(randn(&[2, 4, 2], 72));
    let err = |input: SeqInput, t: &Targets| m.loss(&input, t, &mut Mode::Eval).unwrap_err();
    // Wrong feature width.
    let e = err(SeqInput::new(randn(&[2, 4, 5], 1)), &y);
    assert!(
        matches!(e, LayerError::Shape { .. }) && e.to_string().contains("[B, L, 3]"),
        "{e}"
    );
    // A length of 0, and one beyond L.
    for bad in [vec![0, 4], vec![4, 5]] {
        let e = err(SeqInput::new(x.clone()).with_lengths(bad), &y);
        assert!(
            matches!(e, LayerError::Input { .. }) && e.to_string().contains("1..=4"),
            "{e}"
        );
    }
    // NaN features.
    let nan = x
        .broadcast_mul(&Tensor::new(&[f32::NAN], &Device::Cpu).unwrap())
        .unwrap();
    assert!(matches!(
        err(SeqInput::new(nan), &y),
        LayerError::NonFinite { .. }
    ));
    // Spans of the wrong shape.
    let e = err(SeqInput::new(x.clone()).with_spans(randn(&[2, 3], 2)), &y);
    assert!(e.to_string().contains("time spans"), "{e}");
    // Targets of the wrong shape or kind.
    let e = err(
        SeqInput::new(x.clone()),
        &Targets::Values(randn(&[2, 4, 3], 3)),
    );
    assert!(e.to_string().contains("[2, 4, 2]"), "{e}");
    let e = err(
        SeqInput::new(x.clone()),
        &Targets::Classes(Tensor::new(&[0u32, 1], &Device::Cpu).unwrap()),
    );
    assert!(e.to_string().contains("Targets::Values"), "{e}");
    // A class outside the classes.
    let (c, _) = model(&seq_config("classification", None), 13);
    let e = c
        .loss(
            &SeqInput::new(x.clone()),
            &Targets::Classes(Tensor::new(&[0i64, 4], &Device::Cpu).unwrap()),
            &mut Mode::Eval,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("row 1 has class 4; expected 0..4"),
        "{e}"
    );
    // The language model's config builds no sequence model, and the readout belongs to
    // classifiers only.
    let vb = SeededInit::var_builder(&VarMap::new(), SeededRng::new(0), DType::F32, &Device::Cpu);
    assert!(SequenceModel::new(&common::small_config(2, 1), vb).is_err());
    let e = seq_config("regression", Some(Readout::Mean))
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("readout"), "{e}");
}

#[test]
fn the_raster_is_the_first_rows_valid_positions_alone() {
    let cfg = seq_config("regression", None);
    let (m, _) = model(&cfg, 3);
    let lengths = [5usize, 7];
    let input = SeqInput {
        x: padded_x(&lengths, 7, 4),
        spans: None,
        lengths: Some(lengths.to_vec()),
    };
    let rasters = m.spike_rasters(&input).unwrap();
    // The first row cut to its 5 positions, run alone: the same spike counts per neuron.
    let alone = SeqInput::new(input.x.i((0..1, 0..5)).unwrap());
    let targets = Targets::Values(randn(&[1, 5, 2], 9));
    let (_, firing) = m.loss_with_firing(&alone, &targets).unwrap();
    assert_eq!(rasters.len(), firing.len());
    for (r, st) in rasters.iter().zip(&firing) {
        assert_eq!(r.name, st.name);
        assert_eq!(r.positions, 5, "{}: the padding is not drawn", r.name);
        let counts: Vec<f64> = r.spike_times.iter().map(|t| t.len() as f64).collect();
        assert_eq!(counts, st.spikes_per_neuron, "{}", r.name);
    }
}
