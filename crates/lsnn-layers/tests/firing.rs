//! Spike diagnostics (design §10.3): `LayerStats` counts against hand counts, the encoder's
//! counts against its two layers run as separate `Leaky` layers over the spike trains, the
//! language model's measured pass against its own loss, and a model built to be silent.

mod common;

use candle_core::{DType, Device, Module, Tensor};
use common::{block_config, block_of, small_config};
use lsnn_layers::firing::merge_all;
use lsnn_layers::lif::Leaky;
use lsnn_layers::{init_model, LayerStats, Mode, ModelConfig, SeededRng};

fn ids(seed: u64, b: usize, l: usize, vocab: usize) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let v: Vec<u32> = (0..b * l)
        .map(|_| rng.below(std::num::NonZeroU64::new(vocab as u64).unwrap()) as u32)
        .collect();
    Tensor::from_vec(v, (b, l), &Device::Cpu).unwrap()
}

fn sums(t: &Tensor) -> Vec<f64> {
    let n = *t.dims().last().unwrap();
    t.to_dtype(DType::F64)
        .unwrap()
        .reshape(((), n))
        .unwrap()
        .sum(0)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn counts_rates_and_fractions_by_hand() {
    // Two samples of three neurons: neuron 0 fires once, neuron 1 never, neuron 2 always.
    let spikes = Tensor::new(&[[1f32, 0., 1.], [0., 0., 1.]], &Device::Cpu).unwrap();
    let s = LayerStats::from_spikes("l", &spikes).unwrap();
    assert_eq!(s.spikes_per_neuron, vec![1.0, 0.0, 2.0]);
    assert_eq!(s.samples, 2.0);
    assert_eq!(s.neurons(), 3);
    assert_eq!(s.mean_rate(), 0.5);
    assert_eq!(s.silent_fraction(), 1.0 / 3.0);
    assert_eq!(s.saturated_fraction(), 1.0 / 3.0);

    // Rates over 4 steps: 0.25 is one spike, 0.75 three; rows [2, 2] are four examples.
    let rates = Tensor::new(
        &[[[0.25f32, 0.0], [0.75, 0.0]], [[0.0, 0.0], [1.0, 0.5]]],
        &Device::Cpu,
    )
    .unwrap();
    let mut r = LayerStats::from_rates("r", &rates, 4).unwrap();
    assert_eq!(r.spikes_per_neuron, vec![8.0, 2.0]);
    assert_eq!(r.samples, 16.0);
    assert_eq!(r.mean_rate(), 10.0 / 32.0);
    assert_eq!(r.silent_fraction(), 0.0);

    // Merging is adding counts and samples.
    let more = LayerStats::from_rates("r", &rates.narrow(0, 1, 1).unwrap(), 4).unwrap();
    r.merge(&more).unwrap();
    assert_eq!(r.spikes_per_neuron, vec![12.0, 4.0]);
    assert_eq!(r.samples, 24.0);
    // Another layer, or another width, is refused.
    assert!(r.merge(&s).is_err());
    let other_name = LayerStats {
        name: "q".into(),
        ..r.clone()
    };
    assert!(r.merge(&other_name).is_err());
    let mut acc = Vec::new();
    merge_all(&mut acc, vec![r.clone()]).unwrap();
    merge_all(&mut acc, vec![r.clone()]).unwrap();
    assert_eq!(acc[0].samples, 48.0);
    assert!(merge_all(&mut acc, vec![r.clone(), r]).is_err());
}

#[test]
fn the_encoder_counts_the_spikes_of_its_two_layers() {
    let cfg = block_config();
    let block = block_of(&cfg, 3);
    let enc = block.encoder();
    let ec = enc.config();
    let x = SeededRng::new(9)
        .normal_tensor(&[2, 5, cfg.d_model], 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    let [l1, l2] = block.firing(&x, "blocks.7").unwrap();
    assert_eq!(l1.name, "blocks.7.encoder.lif1");
    assert_eq!(l2.name, "blocks.7.encoder.lif2");

    // The same spikes from the layers run one by one as `Leaky` over the spike trains: the
    // constant current fc1(x) held for T steps, then fc2 of the first train.
    let flat = x.reshape((10, cfg.d_model)).unwrap();
    let t = ec.steps;
    let leaky = Leaky::new(&ec.lif).unwrap();
    let i1 = enc.fc1().forward(&flat).unwrap();
    let (n, w1) = i1.dims2().unwrap();
    let s1 = leaky
        .forward(
            &i1.unsqueeze(0)
                .unwrap()
                .broadcast_as((t, n, w1))
                .unwrap()
                .contiguous()
                .unwrap(),
        )
        .unwrap();
    let s2 = leaky.forward(&enc.fc2().forward(&s1).unwrap()).unwrap();
    assert_eq!(l1.spikes_per_neuron, sums(&s1));
    assert_eq!(l2.spikes_per_neuron, sums(&s2));
    assert_eq!((l1.samples, l2.samples), ((10 * t) as f64, (10 * t) as f64));
    assert_eq!(
        (l1.neurons(), l2.neurons()),
        (2 * cfg.spiking_units, cfg.spiking_units)
    );
    // The case must exercise spikes: some fire, and not all at every step.
    for l in [&l1, &l2] {
        assert!(l.mean_rate() > 0.02 && l.mean_rate() < 0.98, "{l:?}");
    }
}

fn lm_firing(cfg: &ModelConfig) -> (f32, f32, Vec<LayerStats>) {
    let (model, _vm) = init_model(cfg, SeededRng::new(5), &Device::Cpu).unwrap();
    let window = ids(1, 3, cfg.sequence_length + 1, cfg.vocab_size);
    let (loss, firing) = model.loss_with_firing(&window).unwrap();
    let (_, plain) = model.loss(&window, 0.0, &mut Mode::Eval).unwrap();
    let f = |t: &Tensor| t.to_scalar::<f32>().unwrap();
    (f(&loss.cross_entropy), f(&plain.cross_entropy), firing)
}

#[test]
fn the_language_model_measures_every_spiking_layer_without_changing_its_loss() {
    let cfg = small_config(2, 1);
    let (measured, plain, firing) = lm_firing(&cfg);
    assert_eq!(
        measured.to_bits(),
        plain.to_bits(),
        "the measured pass is the same forward"
    );
    let names: Vec<&str> = firing.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "blocks.0.encoder.lif1",
            "blocks.0.encoder.lif2",
            "blocks.1.encoder.lif1",
            "blocks.1.encoder.lif2",
            "attns.0.q",
            "attns.0.k",
            "attns.0.v"
        ]
    );
    let positions = 3 * cfg.sequence_length;
    let (s, d) = (cfg.spiking_units, cfg.hidden_dim);
    for st in &firing {
        let (neurons, steps) = match st.name.as_str() {
            n if n.ends_with("lif1") => (2 * s, cfg.num_spike_steps),
            n if n.ends_with("lif2") => (s, cfg.num_spike_steps),
            _ => (d, cfg.attention_spike_steps),
        };
        assert_eq!(st.neurons(), neurons, "{}", st.name);
        assert_eq!(st.samples, (positions * steps) as f64, "{}", st.name);
        assert!(st
            .spikes_per_neuron
            .iter()
            .all(|c| c.fract() == 0.0 && *c >= 0.0));
        assert!(st.mean_rate() > 0.0, "{} fires in this model", st.name);
    }
}

#[test]
fn a_model_built_to_be_silent_measures_silent() {
    let cfg = ModelConfig {
        spike_threshold: 1e6,
        ..small_config(2, 1)
    };
    let (_, _, firing) = lm_firing(&cfg);
    assert_eq!(firing.len(), 7);
    for st in &firing {
        assert_eq!(st.mean_rate(), 0.0, "{}", st.name);
        assert_eq!(st.silent_fraction(), 1.0, "{}", st.name);
    }
}

#[test]
fn each_layers_raster_holds_the_spikes_its_statistics_count_on_that_example() {
    let cfg = small_config(2, 1);
    let (model, _vm) = init_model(&cfg, SeededRng::new(5), &Device::Cpu).unwrap();
    let window = ids(1, 3, cfg.sequence_length + 1, cfg.vocab_size);
    let rasters = model.spike_rasters(&window).unwrap();
    // The statistics of the same first example, measured the usual way.
    let (_, firing) = model
        .loss_with_firing(&window.narrow(0, 0, 1).unwrap())
        .unwrap();
    assert_eq!(rasters.len(), firing.len());
    let mut total = 0;
    for (r, st) in rasters.iter().zip(&firing) {
        assert_eq!(r.name, st.name);
        assert_eq!(r.neurons, st.neurons(), "{}", r.name);
        assert_eq!(r.positions, cfg.sequence_length, "{}", r.name);
        assert_eq!(r.times() as f64, st.samples, "{}", r.name);
        let counts: Vec<f64> = r.spike_times.iter().map(|t| t.len() as f64).collect();
        assert_eq!(
            counts, st.spikes_per_neuron,
            "{}: per-neuron counts",
            r.name
        );
        for times in &r.spike_times {
            assert!(times.windows(2).all(|w| w[0] < w[1]));
            assert!(times.iter().all(|&t| (t as usize) < r.times()));
        }
        total += r.spikes();
    }
    assert!(total > 0, "this model fires");
}

#[test]
fn a_raster_lays_time_out_position_by_position() {
    // Steps 2, positions 3, neurons 2: neuron 0 fires at (step 1, position 0) and (step 0,
    // position 2); neuron 1 at (step 0, position 1).
    let mut v = vec![0f32; 2 * 3 * 2];
    let at = |t: usize, p: usize, n: usize| (t * 3 + p) * 2 + n;
    v[at(1, 0, 0)] = 1.0;
    v[at(0, 2, 0)] = 1.0;
    v[at(0, 1, 1)] = 1.0;
    let train = Tensor::from_vec(v, (2, 3, 2), &Device::Cpu).unwrap();
    let r = lsnn_layers::Raster::from_train("x", &train).unwrap();
    assert_eq!(r.spike_times, vec![vec![1, 4], vec![2]]);
    assert_eq!((r.times(), r.spikes()), (6, 3));
    assert!(lsnn_layers::Raster::from_train("x", &train.flatten_all().unwrap()).is_err());
}
