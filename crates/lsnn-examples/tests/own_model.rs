//! `Trainer` trains a user's own model — not the language model: the spiking classifier of
//! `classifier/` on generated points. Its loss falls far below the uniform baseline, a
//! checkpoint is written, a resumed run equals an unbroken one bit for bit, and EMA and
//! gradient accumulation work.

use candle_core::Tensor;
use lsnn_examples::classifier::{points_from, Classifier, ClassifierConfig, Points};
use lsnn_train::checkpoint;
use lsnn_train::{Event, RunConfig, TrainConfig, TrainOptions, Trainer};
use std::path::Path;

type ClsTrainer = Trainer<Classifier, Points>;

fn bits(t: &Tensor) -> Vec<u32> {
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v.into_iter().map(f32::to_bits).collect()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(epochs: usize, accumulation: usize) -> RunConfig<ClassifierConfig> {
    RunConfig {
        model: ClassifierConfig {
            hidden: 32,
            steps: 8,
        },
        train: TrainConfig {
            batch_size: 16,
            learning_rate: 1e-2,
            warmup_steps: 4,
            num_epochs: epochs,
            gradient_accumulation_steps: accumulation,
            ema_decay: 0.9,
            monitor: "val_accuracy".into(),
            monitor_mode: lsnn_train::config::MonitorMode::Max,
            keep_best: true,
            ..TrainConfig::default()
        },
    }
}

fn opts(dir: &Path) -> TrainOptions {
    TrainOptions {
        out_dir: dir.to_path_buf(),
        log_every: 5,
        ..TrainOptions::default()
    }
}

#[test]
fn a_users_model_trains_checkpoints_and_resumes_bit_for_bit() {
    let dir = scratch("own-model-straight");
    let mut t = ClsTrainer::new(config(4, 1), Points::new(3, 480, 96), opts(&dir)).unwrap();
    let mut best_marks = 0;
    let summary = t
        .run(&mut |e| {
            if let Event::Checkpoint { best: true, .. } = e {
                best_marks += 1;
            }
        })
        .unwrap();
    let eval = summary.last_eval.clone().unwrap();
    let (name, baseline) = summary.baseline.clone().unwrap();
    eprintln!("{eval:?} vs {name} {baseline}");
    assert!(
        eval.loss() < 0.5 * baseline,
        "val loss {} not below half the {name} {baseline}",
        eval.loss()
    );
    assert!(eval.get("val_accuracy").unwrap() > 0.8, "{eval:?}");
    assert_eq!(summary.steps, 4 * 30);
    // The checkpoint, and the best set by the monitored metric kept beside it.
    let current = checkpoint::resolve(&dir).unwrap();
    assert!(current.join(checkpoint::MODEL_FILE).exists());
    assert!(best_marks >= 1);
    let best = checkpoint::retention::best_dir(&dir).expect("a best set is kept");
    let sets = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("ckpt-")
        })
        .count();
    assert_eq!(
        sets,
        if best == current { 1 } else { 2 },
        "latest and best only"
    );
    let csv = t.metrics_csv();
    assert!(csv.starts_with("step,epoch,batches,lr,train_loss,val_loss,val_accuracy,skipped"));

    // Interrupted twice (mid-epoch), resumed in "fresh processes" from the files alone.
    let dir2 = scratch("own-model-resumed");
    let mut r = ClsTrainer::new(
        config(4, 1),
        Points::new(3, 480, 96),
        TrainOptions {
            max_batches: Some(37),
            ..opts(&dir2)
        },
    )
    .unwrap();
    assert!(r.run(&mut |_| {}).unwrap().interrupted);
    drop(r);
    let mut r = ClsTrainer::resume(
        &dir2,
        TrainOptions {
            max_batches: Some(71),
            ..opts(&dir2)
        },
        points_from,
    )
    .unwrap();
    assert!(r.run(&mut |_| {}).unwrap().interrupted);
    drop(r);
    let mut r = ClsTrainer::resume(&dir2, opts(&dir2), points_from).unwrap();
    let s2 = r.run(&mut |_| {}).unwrap();
    assert!(!s2.interrupted);
    for (x, y) in t.vars().iter().zip(r.vars()) {
        assert_eq!(bits(x.1.as_tensor()), bits(y.1.as_tensor()), "{}", x.0);
    }
    assert_eq!(t.metrics_csv(), r.metrics_csv());
    let (a, b) = (
        checkpoint::load(&dir).unwrap(),
        checkpoint::load(&dir2).unwrap(),
    );
    // The same state, but for the lineage each fresh run draws.
    let strip = |t: &str| {
        let mut v: serde_json::Value = serde_json::from_str(t).unwrap();
        assert!(v["lineage"].is_string());
        v.as_object_mut().unwrap().remove("lineage");
        v
    };
    assert_eq!(strip(&a.state_json), strip(&b.state_json));
    for (k, v) in &a.optimizer {
        assert_eq!(bits(v), bits(&b.optimizer[k]), "{k}");
    }
    for (k, v) in &a.ema {
        assert_eq!(bits(v), bits(&b.ema[k]), "EMA {k}");
    }
    // Resuming on other data is refused by the fingerprint.
    drop(r);
    let err =
        ClsTrainer::resume(&dir2, opts(&dir2), |_, _| Ok(Points::new(4, 480, 96))).unwrap_err();
    assert!(err.to_string().contains("fingerprint"), "{err}");
}

#[test]
fn ema_and_accumulation_work_for_a_users_model() {
    let dir = scratch("own-model-ema-accum");
    let mut t = ClsTrainer::new(
        config(1, 3),
        Points::new(5, 480, 96),
        TrainOptions {
            eval_with_ema: true,
            ..opts(&dir)
        },
    )
    .unwrap();
    let s = t.run(&mut |_| {}).unwrap();
    // 30 batches, windows of 3.
    assert_eq!((s.batches, s.steps), (30, 10));
    let ck = checkpoint::load(&dir).unwrap();
    // The EMA differs from the live weights, and evaluation used it: rebuilding the model from
    // the EMA file scores exactly what the run reported.
    let w = &ck.model["fc.weight"];
    let e = &ck.ema["fc.weight"];
    assert_ne!(bits(w), bits(e));
    let vb = candle_nn::VarBuilder::from_tensors(
        ck.ema.clone(),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    );
    let ema_model = <Classifier as lsnn_train::TrainModel>::build(&t.config().model, vb).unwrap();
    let direct =
        lsnn_train::evaluate_model(&ema_model, t.data(), 16, 0, &candle_core::Device::Cpu).unwrap();
    assert_eq!(Some(direct), s.last_eval);
}
