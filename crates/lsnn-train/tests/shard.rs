//! Batch shards: the sharded gradient is the gradient of the whole batch's mean loss, and a
//! step's numbers do not depend on how many threads run it.

mod common;

use candle_core::{DType, Device, Tensor};
use common::tiny_model;
use lsnn_train::lsnn_layers::{
    init_model, named_vars, LanguageModel, Mode, ModelConfig, SeededRng,
};
use lsnn_train::shard::{loss_and_grads, shard_rows, BatchGrads, SHARD_ROWS};
use lsnn_train::{StepLoss, TrainModel};

fn ids(rows: usize, len: usize, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let v: Vec<u32> = (0..rows * len)
        .map(|_| rng.below(std::num::NonZeroU64::new(256).unwrap()) as u32)
        .collect();
    Tensor::from_vec(v, (rows, len), &Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn rows_split_into_near_equal_shards_in_order() {
    assert_eq!(SHARD_ROWS, 4);
    assert_eq!(shard_rows(8, SHARD_ROWS), vec![(0, 4), (4, 4)]);
    assert_eq!(shard_rows(5, SHARD_ROWS), vec![(0, 3), (3, 2)]);
    assert_eq!(shard_rows(9, SHARD_ROWS), vec![(0, 3), (3, 3), (6, 3)]);
    assert_eq!(
        shard_rows(16, SHARD_ROWS),
        vec![(0, 4), (4, 4), (8, 4), (12, 4)]
    );
    assert_eq!(shard_rows(4, SHARD_ROWS), vec![(0, 4)]);
    assert_eq!(shard_rows(1, SHARD_ROWS), vec![(0, 1)]);
}

/// The sharded gradient against one backward pass through Σ_k (B_k/B)·loss_k built in a single
/// graph, with the shards' dropout generators forked the same way.
fn matches_single_graph(rows: usize, smoothing: f64) {
    let cfg = ModelConfig {
        label_smoothing: smoothing,
        ..tiny_model()
    };
    let (model, vm) = init_model(&cfg, SeededRng::new(5), &Device::Cpu).unwrap();
    let vars = named_vars(&vm);
    let batch = ids(rows, cfg.sequence_length + 1, 9);
    let mut rng = SeededRng::new(21);
    let mut manual_rng = rng.clone();
    let got = loss_and_grads(&model, &batch, &mut rng, &vars, SHARD_ROWS).unwrap();
    let shards = shard_rows(rows, SHARD_ROWS);
    assert_eq!(shards.len(), rows.div_ceil(SHARD_ROWS));
    let mut forks: Vec<SeededRng> = shards.iter().map(|_| manual_rng.fork()).collect();
    assert_eq!(
        rng, manual_rng,
        "the caller's generator advances by one fork per shard"
    );
    let mut total: Option<Tensor> = None;
    let mut ce = 0.0;
    for ((start, len), r) in shards.iter().zip(forks.iter_mut()) {
        let part = batch.narrow(0, *start, *len).unwrap();
        let (_, loss) = model.loss(&part, smoothing, &mut Mode::Train(r)).unwrap();
        let w = *len as f64 / rows as f64;
        ce += w * loss
            .cross_entropy
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let term = (loss.objective * w).unwrap();
        total = Some(match total {
            None => term,
            Some(t) => (t + term).unwrap(),
        });
    }
    let total = total.unwrap();
    let obj = total
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((got.loss - ce).abs() < 1e-6, "{} vs {ce}", got.loss);
    assert!(
        (got.objective - obj).abs() < 1e-6,
        "{} vs {obj}",
        got.objective
    );
    let store = total.backward().unwrap();
    let grads = got.grads.expect("finite batch has gradients");
    assert_eq!(grads.len(), vars.len());
    let mut checked = 0;
    for ((name, var), g) in vars.iter().zip(&grads) {
        let want = store.get(var.as_tensor());
        match (g, want) {
            (Some(g), Some(w)) => {
                let d = max_abs(&(g - w).unwrap());
                let largest = max_abs(w);
                assert!(d <= 1e-5 * largest.max(1.0), "{name}: differs by {d}");
                // Count only gradients that are not all zero (tiny_config's first encoder layer
                // may not fire, leaving fc2's weight without gradient).
                if largest > 0.0 {
                    checked += 1;
                }
            }
            (None, None) => {}
            (a, b) => panic!(
                "{name}: gradient present {} vs {}",
                a.is_some(),
                b.is_some()
            ),
        }
    }
    assert!(
        checked > vars.len() / 2,
        "only {checked} non-zero gradients compared ({rows} rows)"
    );
}

#[test]
fn sharded_gradient_is_the_gradient_of_the_batch_mean() {
    matches_single_graph(8, 0.0);
    // Unequal shards (3 + 2 rows) are weighted by their rows; label smoothing on.
    matches_single_graph(5, 0.1);
    // Three shards, more than the threads of a two-core machine.
    matches_single_graph(9, 0.0);
    // One row: a single shard, the plain step.
    matches_single_graph(1, 0.0);
}

fn step_on(
    threads: usize,
    model: &LanguageModel,
    vars: &[(String, candle_core::Var)],
) -> BatchGrads {
    let batch = ids(9, tiny_model().sequence_length + 1, 3);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| {
            loss_and_grads(model, &batch, &mut SeededRng::new(8), vars, SHARD_ROWS).unwrap()
        })
}

/// One shard (4 rows) of an lm-small-sized model: its kernels are large enough to split their
/// rows over the pool, and the step's bits still do not depend on the thread count.
#[test]
fn a_single_shard_step_gives_the_same_bits_on_one_two_and_three_threads() {
    let cfg = lsnn_train::workload::workload("lm-small").unwrap().model;
    let (model, vm) = init_model(&cfg, SeededRng::new(6), &Device::Cpu).unwrap();
    let vars = named_vars(&vm);
    let batch = ids(4, cfg.sequence_length + 1, 5);
    let step = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                loss_and_grads(&model, &batch, &mut SeededRng::new(8), &vars, SHARD_ROWS).unwrap()
            })
    };
    let one = step(1);
    for threads in [2, 3] {
        let other = step(threads);
        assert_eq!(
            one.objective.to_bits(),
            other.objective.to_bits(),
            "{threads} threads"
        );
        for (((name, _), a), b) in vars
            .iter()
            .zip(one.grads.as_ref().unwrap())
            .zip(other.grads.as_ref().unwrap())
        {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert!(bits(a) == bits(b), "{name}: differs on {threads} threads");
        }
    }
}

#[test]
fn a_step_gives_the_same_bits_on_one_thread_and_on_two() {
    let cfg = ModelConfig {
        label_smoothing: 0.1,
        ..tiny_model()
    };
    let (model, vm) = init_model(&cfg, SeededRng::new(6), &Device::Cpu).unwrap();
    let vars = named_vars(&vm);
    let one = step_on(1, &model, &vars);
    let two = step_on(2, &model, &vars);
    assert_eq!(one.loss.to_bits(), two.loss.to_bits());
    assert_eq!(one.objective.to_bits(), two.objective.to_bits());
    for (((name, _), a), b) in vars.iter().zip(one.grads.unwrap()).zip(two.grads.unwrap()) {
        match (a, b) {
            (Some(a), Some(b)) => assert_eq!(bits(&a), bits(&b), "{name}"),
            (None, None) => {}
            _ => panic!("{name}: gradient present on one side only"),
        }
    }
}

/// A model whose second loss call of a batch (its second shard) has a NaN objective.
struct NanSecondShard {
    inner: LanguageModel,
    calls: std::sync::atomic::AtomicUsize,
}

impl TrainModel for NanSecondShard {
    type Config = ModelConfig;
    type Batch = Tensor;

    fn build(cfg: &ModelConfig, vb: candle_nn::VarBuilder) -> lsnn_train::Result<Self> {
        Ok(NanSecondShard {
            inner: LanguageModel::build(cfg, vb)?,
            calls: Default::default(),
        })
    }

    /// The second call reports a NaN objective but still hands back its gradients: the shard
    /// runner itself must see the non-finite loss and drop the batch.
    fn loss_and_grads(
        &self,
        ids: &Tensor,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> lsnn_train::Result<(StepLoss, Option<candle_core::backprop::GradStore>)> {
        let (mut loss, grads) = TrainModel::loss_and_grads(&self.inner, ids, mode, scale)?;
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            loss.objective = f64::NAN;
        }
        Ok((loss, grads))
    }

    fn metric_names(&self) -> Vec<String> {
        self.inner.metric_names()
    }

    fn eval_batch(&self, ids: &Tensor) -> lsnn_train::Result<Vec<f64>> {
        self.inner.eval_batch(ids)
    }

    fn batch_rows(ids: &Tensor) -> usize {
        LanguageModel::batch_rows(ids)
    }

    fn batch_part(ids: &Tensor, start: usize, len: usize) -> Option<lsnn_train::Result<Tensor>> {
        LanguageModel::batch_part(ids, start, len)
    }
}

#[test]
fn one_non_finite_shard_skips_the_whole_batch() {
    let (inner, vm) = init_model(&tiny_model(), SeededRng::new(6), &Device::Cpu).unwrap();
    let vars = named_vars(&vm);
    let model = NanSecondShard {
        inner,
        calls: Default::default(),
    };
    let batch = ids(8, tiny_model().sequence_length + 1, 4);
    let got = loss_and_grads(&model, &batch, &mut SeededRng::new(2), &vars, SHARD_ROWS).unwrap();
    assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        got.grads.is_none(),
        "a batch with a NaN shard kept gradients"
    );
    assert!(got.objective.is_nan());
    assert!(got.loss.is_finite());
}

/// `shard_rows: "auto"` in a program without the counting allocator (this test binary installs
/// none) is a config error when the trainer is built, before the run directory is made.
#[test]
fn auto_without_the_counting_allocator_is_refused_before_the_run_directory_is_touched() {
    assert!(!lsnn_train::lsnn_memory::alloc::is_installed());
    let dir = common::scratch("auto-refused").join("run");
    let mut cfg = common::tiny_config();
    cfg.train.shard_rows = lsnn_train::shard::ShardRows::Auto;
    let e = common::LmTrainer::new(cfg, common::text_dataset(8), common::options(&dir))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shard_rows") && e.contains("counting allocator"),
        "{e}"
    );
    assert!(!dir.exists(), "the run directory was made");
}

/// Shards of at most `max_rows`: the batch splits into ⌈rows / max_rows⌉ near-equal parts.
#[test]
fn shard_rows_follows_its_maximum() {
    assert_eq!(shard_rows(4, 1), vec![(0, 1), (1, 1), (2, 1), (3, 1)]);
    assert_eq!(shard_rows(5, 2), vec![(0, 2), (2, 2), (4, 1)]);
    assert_eq!(shard_rows(3, 8), vec![(0, 3)]);
}
