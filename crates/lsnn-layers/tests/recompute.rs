//! Activation recomputation (`recompute_activations`, design §2.6.1): a training step that keeps
//! only each trunk layer's input and runs the layer again in backward gives the plain staged
//! step's losses and gradients bit for bit, with dropout on (the recomputation replays the
//! masks from the saved generator state) and leaves the dropout generator where the plain step
//! leaves it. One thread, so no summation order can differ.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::model::{LanguageModel, SeqInput, SequenceModel, Targets};
use lsnn_layers::{kernel, named_vars, Mode, ModelConfig, SeededInit, SeededRng};

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// Dropout everywhere the model has it, so a mask that is not replayed changes the gradients.
fn with_dropout(cfg: ModelConfig) -> ModelConfig {
    ModelConfig {
        dropout: 0.3,
        embedding_dropout: 0.2,
        encoder_dropout: 0.3,
        block_dropout: 0.2,
        ..cfg
    }
}

/// The gradients (in parameter order), the losses and the generator's final state of one
/// language-model step at `recompute`.
fn lm_step(recompute: bool, replay_seed: Option<u64>) -> (Vec<Vec<u32>>, Vec<u32>, [u64; 4]) {
    let cfg = ModelConfig {
        recompute_activations: recompute,
        ..with_dropout(common::small_config(4, 1))
    };
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(5), DType::F32, &Device::Cpu);
    let m = LanguageModel::new(&cfg, vb).unwrap();
    let vars: Vec<(String, Var)> = named_vars(&vm);
    let ids: Vec<u32> = (0..21).map(|i| (i * 7 + 3) % 24).collect();
    let ids = Tensor::from_vec(ids, (3, 7), &Device::Cpu).unwrap();
    let mut rng = SeededRng::new(replay_seed.unwrap_or(11));
    let (loss, grads) = kernel::sequential(|| {
        m.loss_and_grads(&ids, 0.1, &mut Mode::Train(&mut rng), 1.0)
            .unwrap()
    });
    let grads = grads.expect("finite loss");
    let g = vars
        .iter()
        .map(|(n, v)| bits(grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{n}"))))
        .collect();
    let l = [bits(&loss.objective), bits(&loss.cross_entropy)].concat();
    (g, l, rng.state())
}

#[test]
fn the_language_model_step_recomputed_equals_the_plain_step_bit_for_bit() {
    let plain = lm_step(false, None);
    let again = lm_step(true, None);
    assert_eq!(plain.1, again.1, "losses");
    assert_eq!(plain.2, again.2, "the dropout generator's final state");
    assert_eq!(plain.0.len(), again.0.len());
    for (i, (a, b)) in plain.0.iter().zip(&again.0).enumerate() {
        assert!(a == b, "gradient of parameter {i} differs");
    }
    // The comparison can see a dropout difference: other masks give other gradients.
    let other = lm_step(false, Some(12));
    assert_ne!(plain.0, other.0);
}

#[test]
fn the_sequence_model_step_recomputed_equals_the_plain_step_bit_for_bit() {
    let run = |recompute: bool| {
        let cfg = ModelConfig {
            task_type: "regression".into(),
            input_dim: 3,
            output_dim: 2,
            recompute_activations: recompute,
            ..with_dropout(common::small_config(2, 1))
        };
        let vm = VarMap::new();
        let vb = SeededInit::var_builder(&vm, SeededRng::new(6), DType::F32, &Device::Cpu);
        let m = SequenceModel::new(&cfg, vb).unwrap();
        let vars = named_vars(&vm);
        let r = |shape: &[usize], seed| {
            SeededRng::new(seed)
                .normal_tensor(shape, 0.0, 1.0, DType::F32, &Device::Cpu)
                .unwrap()
        };
        let spans = (r(&[2, 5], 3).abs().unwrap() + 0.5).unwrap();
        let input = SeqInput::new(r(&[2, 5, 3], 1))
            .with_spans(spans)
            .with_lengths(vec![5, 3]);
        let targets = Targets::Values(r(&[2, 5, 2], 2));
        let mut rng = SeededRng::new(13);
        let (_, grads) = kernel::sequential(|| {
            m.loss_and_grads(&input, &targets, &mut Mode::Train(&mut rng), 0.5)
                .unwrap()
        });
        let grads = grads.expect("finite loss");
        let g: Vec<Vec<u32>> = vars
            .iter()
            .map(|(_, v)| bits(grads.get(v.as_tensor()).unwrap()))
            .collect();
        (g, rng.state())
    };
    assert!(run(false) == run(true));
}

#[test]
fn the_setting_reads_from_json_and_stays_out_of_default_files() {
    let off = ModelConfig::default().to_json();
    assert!(!off.contains("recompute_activations"), "{off}");
    let on = ModelConfig {
        recompute_activations: true,
        ..ModelConfig::default()
    };
    let text = on.to_json();
    assert!(text.contains("\"recompute_activations\": true"), "{text}");
    assert_eq!(ModelConfig::from_json(&text).unwrap(), on);
}
