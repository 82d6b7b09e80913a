//! design §7/§5: the EMA update and the AdamW step work in place — they allocate nothing
//! proportional to the parameter count — and the measurement can see an allocation that does
//! scale (the naive tensor-op EMA).
//!
//! The counting allocator is process-wide, so every test here takes one lock and nothing else
//! runs in this binary while a measurement is open.

use candle_core::{DType, Device, Tensor, Var};
use lsnn_memory::alloc;
use lsnn_train::lsnn_layers::SeededRng;
use lsnn_train::optim::{AdamW, AdamWConfig, Ema};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[global_allocator]
static A: lsnn_memory::CountingAlloc = lsnn_memory::CountingAlloc;

static LOCK: Mutex<()> = Mutex::new(());

/// Allowed allocation of one in-place update, whatever the model size.
const SMALL: u64 = 4096;

/// Eight parameters (the same count at every scale) of `scale`×(8k…15k) elements.
fn params(scale: usize, seed: u64) -> Vec<(String, Var)> {
    let mut rng = SeededRng::new(seed);
    (0..8)
        .map(|i| {
            let n = scale * (8_000 + 1_000 * i);
            let t = rng
                .uniform_tensor(n, -1.0, 1.0, DType::F32, &Device::Cpu)
                .unwrap();
            (format!("p{i}"), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

fn param_bytes(vars: &[(String, Var)]) -> u64 {
    vars.iter().map(|(_, v)| v.elem_count() as u64 * 4).sum()
}

fn grads(vars: &[(String, Var)], seed: u64) -> BTreeMap<String, Tensor> {
    let mut rng = SeededRng::new(seed);
    vars.iter()
        .map(|(n, v)| {
            let g = rng
                .uniform_tensor(v.shape(), -0.1, 0.1, DType::F32, &Device::Cpu)
                .unwrap();
            (n.clone(), g)
        })
        .collect()
}

fn first(t: &Tensor) -> f32 {
    t.flatten_all()
        .unwrap()
        .get(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Bytes allocated by `f` (the allocator's cumulative total, so a freed temporary still counts).
fn allocated_by(f: impl FnOnce()) -> u64 {
    let before = alloc::stats();
    f();
    alloc::stats().since(&before).allocated_bytes_total
}

/// The least of three measurements of `f`: the test harness's own thread may allocate (printing
/// another test's result) during one window, never during all three.
fn least_allocated_by(mut f: impl FnMut()) -> u64 {
    (0..3).map(|_| allocated_by(&mut f)).min().unwrap()
}

/// Bytes one EMA update allocates for a model of `scale`.
fn ema_update_bytes(scale: usize) -> (u64, u64) {
    let vars = params(scale, 1);
    let mut ema = Ema::new(&vars, 0.9).unwrap();
    // Move the weights away from the average so the update has work to do.
    let new: Vec<Tensor> = vars
        .iter()
        .map(|(_, v)| (v.as_tensor() + 1.0).unwrap())
        .collect();
    for ((_, v), t) in vars.iter().zip(&new) {
        v.set(t).unwrap();
    }
    ema.update(&vars).unwrap(); // warm-up
    let e0 = first(&ema.weights()["p0"]);
    let p0 = first(vars[0].1.as_tensor());
    ema.update(&vars).unwrap();
    // The update did happen: e ← 0.9·e + 0.1·p.
    let e1 = first(&ema.weights()["p0"]);
    assert!((e1 - (0.9 * e0 + 0.1 * p0)).abs() < 1e-6, "{e0} {p0} {e1}");
    let bytes = least_allocated_by(|| ema.update(&vars).unwrap());
    (bytes, param_bytes(&vars))
}

#[test]
fn ema_update_allocates_nothing_proportional_to_the_parameters() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert!(alloc::is_installed());
    let (small, small_params) = ema_update_bytes(1);
    let (large, large_params) = ema_update_bytes(4);
    assert_eq!(large_params, 4 * small_params);
    eprintln!(
        "EMA update: {small} B at {small_params} B of parameters, {large} B at {large_params} B"
    );
    assert!(
        small < SMALL && large < SMALL,
        "an EMA update allocated {small} B ({small_params} B of parameters) and {large} B \
         ({large_params} B of parameters)"
    );
    assert!(
        large <= small + 256,
        "EMA allocation grows with the model: {small} B → {large} B for 4× the parameters"
    );
}

/// Bytes one AdamW step allocates for a model of `scale`.
fn adamw_step_bytes(scale: usize, amsgrad: bool) -> (u64, u64) {
    let vars = params(scale, 2);
    let g = grads(&vars, 3);
    let mut opt = AdamW::new(
        &vars,
        AdamWConfig {
            amsgrad,
            ..AdamWConfig::default()
        },
    )
    .unwrap();
    opt.step(&g, 1e-3, 1.0).unwrap(); // warm-up
    let before = vars[0].1.as_tensor().copy().unwrap();
    let m_before = opt.states().next().unwrap().1.m.copy().unwrap();
    opt.step(&g, 1e-3, 0.5).unwrap();
    // The step did happen: weights and first moment moved.
    assert_ne!(first(&before), first(vars[0].1.as_tensor()));
    assert_ne!(first(&m_before), first(&opt.states().next().unwrap().1.m));
    assert_eq!(opt.step_count(), 2);
    let bytes = least_allocated_by(|| opt.step(&g, 1e-3, 0.5).unwrap());
    (bytes, param_bytes(&vars))
}

#[test]
fn adamw_step_allocates_nothing_proportional_to_the_parameters() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for amsgrad in [false, true] {
        let (small, small_params) = adamw_step_bytes(1, amsgrad);
        let (large, large_params) = adamw_step_bytes(4, amsgrad);
        assert_eq!(large_params, 4 * small_params);
        eprintln!(
            "AdamW step (amsgrad {amsgrad}): {small} B at {small_params} B of parameters, \
             {large} B at {large_params} B"
        );
        assert!(
            small < SMALL && large < SMALL,
            "amsgrad {amsgrad}: an AdamW step allocated {small} B ({small_params} B of \
             parameters) and {large} B ({large_params} B of parameters)"
        );
        assert!(
            large <= small + 256,
            "amsgrad {amsgrad}: AdamW allocation grows with the model: {small} B → {large} B"
        );
    }
}

/// The in-place AdamW step computes the same update as the formula written with tensor ops.
#[test]
fn adamw_in_place_step_matches_the_formula() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let vars = params(1, 4);
    let g = grads(&vars, 5);
    let p0: Vec<Tensor> = vars
        .iter()
        .map(|(_, v)| v.as_tensor().copy().unwrap())
        .collect();
    let cfg = AdamWConfig::default();
    let mut opt = AdamW::new(&vars, cfg).unwrap();
    let (lr, scale) = (1e-2, 0.5);
    opt.step(&g, lr, scale).unwrap();
    opt.step(&g, lr, scale).unwrap();
    for ((name, var), p) in vars.iter().zip(p0) {
        let gs = g[name].affine(scale, 0.0).unwrap();
        let (mut m, mut v, mut p) = (gs.zeros_like().unwrap(), gs.zeros_like().unwrap(), p);
        for t in 1..=2 {
            m = ((m * cfg.beta1).unwrap() + (&gs * (1.0 - cfg.beta1)).unwrap()).unwrap();
            v = ((v * cfg.beta2).unwrap() + (gs.sqr().unwrap() * (1.0 - cfg.beta2)).unwrap())
                .unwrap();
            let mhat = (&m / (1.0 - cfg.beta1.powi(t))).unwrap();
            let vhat = (&v / (1.0 - cfg.beta2.powi(t))).unwrap();
            let upd = (mhat / (vhat.sqrt().unwrap() + cfg.eps).unwrap()).unwrap();
            p = ((p * (1.0 - lr * cfg.weight_decay)).unwrap() - (upd * lr).unwrap()).unwrap();
        }
        let diff = (var.as_tensor() - &p)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            diff < 1e-6,
            "{name}: in-place AdamW differs from the formula by {diff}"
        );
    }
}

/// The control: the naive EMA `e = e·d + p·(1 − d)` written with tensor ops allocates at least
/// the parameter bytes per update, and the same measurement sees it.
#[test]
fn naive_tensor_op_ema_allocates_the_parameter_bytes() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for scale in [1, 4] {
        let vars = params(scale, 6);
        let mut shadow: Vec<Tensor> = vars
            .iter()
            .map(|(_, v)| v.as_tensor().copy().unwrap())
            .collect();
        let d = 0.9;
        let naive = |shadow: &mut Vec<Tensor>| {
            for (e, (_, p)) in shadow.iter_mut().zip(&vars) {
                *e = ((&*e * d).unwrap() + (p.as_tensor() * (1.0 - d)).unwrap()).unwrap();
            }
        };
        naive(&mut shadow); // warm-up
        let bytes = allocated_by(|| naive(&mut shadow));
        let pb = param_bytes(&vars);
        eprintln!("naive EMA: {bytes} B at {pb} B of parameters");
        assert!(
            bytes >= pb,
            "the naive EMA allocated only {bytes} B for {pb} B of parameters: the measurement is blind"
        );
        assert!(bytes > 100 * SMALL);
    }
}

#[path = "common/mod.rs"]
mod common;

#[test]
fn memory_kept_between_batches_is_about_the_training_state() {
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Between batches the trainer keeps weights, EMA, two moments and the accumulation buffers
    // (five copies of the parameters) plus small bookkeeping — not any activation. Copying a
    // gradient that is a view into a larger buffer kept that whole buffer alive (a regression
    // that held ~55 MB at lm-small size).
    let cfg = lsnn_train::RunConfig {
        model: common::tiny_model(),
        train: lsnn_train::TrainConfig {
            gradient_accumulation_steps: 2,
            ..common::tiny_train()
        },
    };
    let dir = common::scratch("memory-between-batches");
    let mut t =
        common::LmTrainer::new(cfg, common::text_dataset(16), common::options(&dir)).unwrap();
    let params: u64 = t
        .vars()
        .iter()
        .map(|(_, v)| v.elem_count() as u64 * 4)
        .sum();
    // Warm the thread-local scratch of gemm and candle (on every thread the batch shards run
    // on) with one sharded forward + backward.
    {
        let ids = common::batch(&t, 0);
        let mut rng = SeededRng::new(1);
        let vars = t.vars().to_vec();
        drop(
            lsnn_train::shard::loss_and_grads(
                t.model(),
                &ids,
                &mut rng,
                &vars,
                lsnn_train::shard::SHARD_ROWS,
            )
            .unwrap(),
        );
    }
    let before = alloc::live_bytes();
    for b in 0..4 {
        let ids = common::batch(&t, b);
        t.train_batch(&ids).unwrap();
        let kept = alloc::live_bytes().saturating_sub(before);
        // Accumulation buffers (1x params) plus ids and a little bookkeeping.
        assert!(
            kept <= params + 64 * 1024,
            "after batch {b}: {kept} bytes kept for {params} parameter bytes"
        );
    }
}
