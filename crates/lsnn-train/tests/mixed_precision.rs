//! `mixed_precision: true` on the CPU (design §9.5): where the CPU has AVX-512 BF16 the training
//! steps' linears run bf16 products, the checkpoint records it and the run learns as the f32 one
//! does; elsewhere a notice says why it is off and the run is the f32 run, bit for bit.

mod common;

use common::{options, resume_config, scratch, text_data, LmTrainer};
use lsnn_train::lsnn_layers::kernel::bf16::Bf16Kernel;
use lsnn_train::{checkpoint, Event, TrainerState};

/// Trains the tiny LM for its two epochs; returns the notices, the epoch-end validation losses,
/// every batch loss's bits and the recorded precision.
fn train(name: &str, mixed: bool) -> (Vec<String>, Vec<f64>, Vec<u64>, String) {
    let dir = scratch(name);
    let mut cfg = resume_config();
    cfg.train.mixed_precision = mixed;
    // Shards of one row, so that the steps run on the shard threads (where the precision must
    // be carried) rather than on the calling thread.
    cfg.train.shard_rows = lsnn_train::shard::ShardRows::Fixed(1);
    let mut t = LmTrainer::new(cfg, text_data(&dir), options(&dir)).unwrap();
    let (mut notices, mut val, mut losses) = (Vec::new(), Vec::new(), Vec::new());
    t.run(&mut |e| match e {
        Event::Notice(n) => notices.push(n.clone()),
        Event::EpochEnd { eval, .. } => val.push(eval.metrics[0].1),
        Event::Batch { loss, .. } => losses.push(loss.to_bits()),
        _ => {}
    })
    .unwrap();
    drop(t);
    let set = checkpoint::resolve(&dir).unwrap();
    let path = set.join(checkpoint::STATE_FILE);
    let state = TrainerState::from_json(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    let precision = state.kernel_paths.expect("paths recorded").precision;
    (notices, val, losses, precision)
}

#[test]
fn mixed_precision_trains_in_bf16_where_the_cpu_has_it() {
    let (f32_notices, f32_val, f32_losses, f32_precision) = train("f32", false);
    assert_eq!(f32_precision, "f32");
    assert!(
        !f32_notices.iter().any(|n| n.contains("mixed")),
        "{f32_notices:?}"
    );
    let (notices, val, losses, precision) = train("mixed", true);
    if Bf16Kernel::active() == Bf16Kernel::Avx512Bf16 {
        assert_eq!(precision, "bf16");
        assert!(
            notices.iter().any(|n| n.contains("mixed precision: ")),
            "{notices:?}"
        );
        // Other products, the same data and seed: losses differ but track the f32 run's.
        assert_ne!(losses, f32_losses);
        for (m, f) in val.iter().zip(&f32_val) {
            assert!((m - f).abs() <= 0.02 * f, "validation loss {m} vs f32 {f}");
        }
    } else {
        assert_eq!(precision, "f32");
        assert!(
            notices.iter().any(|n| n.contains("lacks AVX-512 BF16")),
            "{notices:?}"
        );
        assert_eq!(losses, f32_losses);
        assert_eq!(val, f32_val);
    }
}
