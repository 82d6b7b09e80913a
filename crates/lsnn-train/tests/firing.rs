//! Spike diagnostics in the trainer (design §10.3): every epoch end measures each spiking
//! layer over the validation set (counts exact whatever the batch size), a model built to be
//! silent is warned about layer by layer while the default run's model is not, the thresholds
//! are config fields with typed errors, and the rates reach TensorBoard.

mod common;

use candle_core::Device;
use common::{options, scratch, text_dataset, tiny_config, LmTrainer};
use lsnn_train::data::builtin::builtin;
use lsnn_train::firing::{check_layers, LayerFiring, SpikeProblem, SpikeThresholds};
use lsnn_train::lsnn_layers::{ModelConfig, SeededInit, SeededRng, SequenceModel, Task};
use lsnn_train::record::tensorboard::scalars_as_shown;
use lsnn_train::{evaluate_with_firing, Event, RunConfig, TrainConfig, TrainError, TrainModel};

/// One epoch of the tiny language model with `edit` applied: the events.
fn run(name: &str, edit: impl FnOnce(&mut RunConfig<ModelConfig>)) -> Vec<Event> {
    let dir = scratch(name);
    let mut cfg = tiny_config();
    edit(&mut cfg);
    let mut t: LmTrainer = LmTrainer::new(cfg, text_dataset(8), options(&dir)).unwrap();
    let mut events = Vec::new();
    t.run(&mut |e| events.push(e.clone())).unwrap();
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
    events
}

fn firing(events: &[Event]) -> Vec<Vec<LayerFiring>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Firing { layers, .. } => Some(layers.clone()),
            _ => None,
        })
        .collect()
}

fn warnings(events: &[Event]) -> Vec<lsnn_train::firing::SpikeWarning> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SpikeWarning(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

/// The tiny model tuned to fire in every layer (at its defaults the second encoder layer of
/// the first block is silent: the warning's own case).
fn firing_model(c: &mut RunConfig<ModelConfig>) {
    c.model.spike_threshold = 0.25;
    c.model.num_spike_steps = 4;
    c.model.attention_spike_steps = 4;
}

const LAYERS: [&str; 7] = [
    "blocks.0.encoder.lif1",
    "blocks.0.encoder.lif2",
    "blocks.1.encoder.lif1",
    "blocks.1.encoder.lif2",
    "attns.0.q",
    "attns.0.k",
    "attns.0.v",
];

#[test]
fn every_epoch_end_reports_each_spiking_layer_after_its_metrics() {
    let events = run("firing-epoch", |c| {
        firing_model(c);
        c.train.num_epochs = 2;
    });
    let f = firing(&events);
    assert_eq!(f.len(), 2, "one report per epoch");
    for layers in &f {
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, LAYERS);
        for l in layers {
            assert!(l.mean_rate > 0.0 && l.mean_rate < 1.0, "{l:?}");
            assert!((0.0..=1.0).contains(&l.silent_fraction), "{l:?}");
        }
    }
    // The report follows its epoch's metrics, and the EpochEnd event carries the counts.
    let end = events
        .iter()
        .position(|e| matches!(e, Event::EpochEnd { .. }))
        .unwrap();
    assert!(matches!(events[end + 1], Event::Firing { epoch: 0, .. }));
    let Event::EpochEnd { eval, .. } = &events[end] else {
        unreachable!()
    };
    assert_eq!(LayerFiring::of(&eval.firing[0]), f[0][0]);
    assert!(warnings(&events).is_empty(), "{:?}", warnings(&events));
}

#[test]
fn a_model_built_to_be_silent_is_warned_about_layer_by_layer() {
    let events = run("firing-silent", |c| c.model.spike_threshold = 1e6);
    let w = warnings(&events);
    let named: Vec<&str> = w.iter().map(|w| w.layer.name.as_str()).collect();
    assert_eq!(named, LAYERS);
    for w in &w {
        assert_eq!(w.problem, SpikeProblem::Silent);
        assert_eq!((w.layer.mean_rate, w.layer.silent_fraction), (0.0, 1.0));
        let text = w.to_string();
        assert!(text.contains(&w.layer.name), "{text}");
        assert!(
            text.contains("silent") && text.contains("spike_threshold"),
            "{text}"
        );
    }
}

#[test]
fn the_thresholds_decide_and_spike_stats_off_measures_nothing() {
    // The same healthy model judged by a silent threshold above its rates is warned about.
    let strict = run("firing-strict", |c| {
        firing_model(c);
        c.train.spike_silent_rate = 0.99;
        c.train.spike_saturated_rate = 1.0;
    });
    assert_eq!(warnings(&strict).len(), LAYERS.len());
    // With the statistics, each epoch end also gives each layer's spike train on the first
    // validation example, in the same order.
    let rasters: Vec<Vec<String>> = strict
        .iter()
        .filter_map(|e| match e {
            Event::SpikeRaster { layers, .. } => {
                Some(layers.iter().map(|l| l.name.clone()).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(rasters.len(), firing(&strict).len());
    assert_eq!(rasters[0], LAYERS);
    let off = run("firing-off", |c| c.train.spike_stats = false);
    assert!(firing(&off).is_empty());
    assert!(!off.iter().any(|e| matches!(e, Event::SpikeRaster { .. })));
    let eval = off.iter().find_map(|e| match e {
        Event::EpochEnd { eval, .. } => Some(eval.clone()),
        _ => None,
    });
    assert!(eval.unwrap().firing.is_empty());
}

#[test]
fn saturation_and_dead_neurons_by_rule() {
    let t = SpikeThresholds::DEFAULT;
    let layer = |rate: f64, silent: f64| LayerFiring {
        name: "l".into(),
        neurons: 10,
        mean_rate: rate,
        silent_fraction: silent,
        saturated_fraction: 0.0,
    };
    assert_eq!(t.judge(&layer(0.05, 0.1)), None);
    assert_eq!(t.judge(&layer(0.0009, 0.0)), Some(SpikeProblem::Silent));
    assert_eq!(t.judge(&layer(0.001, 0.0)), None);
    // Nine neurons of ten dead: silent, however busy the tenth.
    assert_eq!(t.judge(&layer(0.5, 0.9)), Some(SpikeProblem::Silent));
    assert_eq!(t.judge(&layer(0.91, 0.0)), Some(SpikeProblem::Saturated));
    assert_eq!(t.judge(&layer(0.9, 0.0)), None);
    // No samples: a rate of NaN is reported, not passed over.
    assert_eq!(
        t.judge(&layer(f64::NAN, f64::NAN)),
        Some(SpikeProblem::NotMeasured)
    );
}

#[test]
fn counts_over_the_validation_set_do_not_depend_on_the_batch_size() {
    let mut run_cfg = tiny_config();
    firing_model(&mut run_cfg);
    let cfg = run_cfg.model;
    let vb = SeededInit::var_builder(
        &candle_nn::VarMap::new(),
        SeededRng::new(1),
        candle_core::DType::F32,
        &Device::Cpu,
    );
    let model = lsnn_train::lsnn_layers::LanguageModel::build(&cfg, vb).unwrap();
    let data = text_dataset(8);
    let one = evaluate_with_firing(&model, &data, 1, 0, &Device::Cpu, true).unwrap();
    let two = evaluate_with_firing(&model, &data, 2, 0, &Device::Cpu, true).unwrap();
    assert_eq!(one.firing, two.firing);
    assert!(one.examples > 2, "several batches of 2: {}", one.examples);
    let total: f64 = one.firing[0].spikes_per_neuron.iter().sum();
    assert!(total > 0.0);
}

#[test]
fn the_default_runs_model_is_not_warned_about_at_initialisation() {
    // `lsnn train`'s default run: the event-order task with its built-in recipe. Its quietest
    // layer (the first block's second encoder layer) fires at about 0.5% before training, 30%
    // of its neurons never firing, and at 2–4% once trained (design §10.3).
    let task = Task::Classification;
    let train = TrainConfig::for_task(task);
    let data = builtin(task, train.seed, false, None).unwrap();
    // As `lsnn train` fits the model to its data.
    let l = data.positions();
    let cfg = ModelConfig {
        input_dim: data.features(),
        output_dim: data.outputs(),
        sequence_length: l,
        max_position_embeddings: ModelConfig::for_task(task).max_position_embeddings.max(l),
        ..ModelConfig::for_task(task)
    };
    let vb = SeededInit::var_builder(
        &candle_nn::VarMap::new(),
        SeededRng::new(train.seed),
        candle_core::DType::F32,
        &Device::Cpu,
    );
    let model = SequenceModel::build(&cfg, vb).unwrap();
    let eval =
        evaluate_with_firing(&model, &data, train.batch_size, 0, &Device::Cpu, true).unwrap();
    let (layers, warnings) = check_layers(&eval.firing, train.spike_thresholds(), 0);
    assert_eq!(layers.len(), LAYERS.len());
    assert!(warnings.is_empty(), "{warnings:?}");
    // ... and judged by thresholds one step from the default, it would be: the check can fail.
    let quietest = layers.iter().map(|l| l.mean_rate).fold(1.0, f64::min);
    let strict = SpikeThresholds {
        silent_rate: quietest * 1.01,
        ..SpikeThresholds::DEFAULT
    };
    assert!(!check_layers(&eval.firing, strict, 0).1.is_empty());
}

#[test]
fn the_thresholds_are_checked_and_written_only_when_set() {
    for (edit, field) in [
        (
            (|t: &mut TrainConfig| t.spike_silent_rate = -0.1) as fn(&mut TrainConfig),
            "spike_silent_rate",
        ),
        (|t| t.spike_dead_fraction = 1.5, "spike_dead_fraction"),
        (|t| t.spike_dead_fraction = 0.0, "spike_dead_fraction"),
        (
            |t| t.spike_saturated_rate = f64::NAN,
            "spike_saturated_rate",
        ),
        (
            |t| {
                t.spike_silent_rate = 0.5;
                t.spike_saturated_rate = 0.4
            },
            "spike_saturated_rate",
        ),
    ] {
        let mut t = TrainConfig::default();
        edit(&mut t);
        match t.validate() {
            Err(TrainError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let json = serde_json::to_value(TrainConfig::default()).unwrap();
    for k in [
        "spike_stats",
        "spike_silent_rate",
        "spike_dead_fraction",
        "spike_saturated_rate",
    ] {
        assert!(json.get(k).is_none(), "{k} at its default is not written");
    }
    let set: TrainConfig = serde_json::from_str(
        r#"{"spike_stats": false, "spike_silent_rate": 0.01, "spike_dead_fraction": 0.5,
            "spike_saturated_rate": 0.8}"#,
    )
    .unwrap();
    let back = serde_json::to_value(&set).unwrap();
    assert_eq!(back["spike_stats"], false);
    assert_eq!(back["spike_silent_rate"], 0.01);
    assert_eq!(back["spike_dead_fraction"], 0.5);
    assert_eq!(back["spike_saturated_rate"], 0.8);
}

#[test]
fn tensorboard_holds_each_layers_rate_and_silent_fraction() {
    let dir = scratch("firing-tb");
    let tb = dir.join("tb");
    let mut cfg = tiny_config();
    firing_model(&mut cfg);
    let mut t: LmTrainer = LmTrainer::new(cfg, text_dataset(8), options(&dir.join("run"))).unwrap();
    let mut rec = lsnn_train::record::tensorboard::TensorBoardRecorder::create(&tb).unwrap();
    let mut events = Vec::new();
    t.run(&mut |e| {
        rec.on_event(e).unwrap();
        events.push(e.clone());
    })
    .unwrap();
    rec.finish().unwrap();
    let layers = firing(&events).remove(0);
    let shown = scalars_as_shown(&tb).unwrap();
    for l in &layers {
        for (tag, want) in [
            (format!("firing/{}/rate", l.name), l.mean_rate),
            (
                format!("firing/{}/silent_fraction", l.name),
                l.silent_fraction,
            ),
        ] {
            let points: Vec<f32> = shown
                .iter()
                .filter(|(t, _, _)| *t == tag)
                .map(|(_, _, v)| *v)
                .collect();
            assert_eq!(points, [want as f32], "{tag}");
        }
    }
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}
