//! `shard_rows: "auto"` under a memory budget (design §3.3.1), in its own binary on one thread:
//! the counting allocator is process-wide, and with one thread a step's peak is one shard's.
//!
//! The figures are measured here, independently of the probes: real training steps (forward,
//! backward, accumulation and the optimizer update) of trainers with a fixed shard size. The
//! budget is put between the 2-row step's peak (with auto's headroom) and the 4-row step's, so
//! auto must choose 2 — without running the 4-row probe, whose peak it predicts from the 2-row
//! one; the auto trainer's own real step must then run under the budget, while the next larger
//! size's real step does not.

mod common;

use common::{options, scratch, LmTrainer};
use lsnn_memory::{alloc, MemoryError, MemoryLimit, PeakWindow};
use lsnn_train::lsnn_layers::SeededRng;
use lsnn_train::shard::{choose_shard_rows, ShardRows, AUTO_HEADROOM};
use lsnn_train::{Event, RunConfig, TokenDataset, TrainError, TrainOptions};
use std::path::Path;

#[global_allocator]
static A: lsnn_memory::CountingAlloc = lsnn_memory::CountingAlloc;

/// Window length: long enough that a row's activations, not the model, set a step's peak.
const L: usize = 256;
/// Rows per batch.
const BATCH: usize = 8;

/// A text file of repetitive text in `dir` as windows of [`L`] tokens (resume rebuilds it).
fn data(dir: &Path) -> TokenDataset {
    std::fs::create_dir_all(dir).unwrap();
    let path = common::write_text_file(dir, "data.txt", 6 * BATCH * L);
    let data = TokenDataset::from_text_file(&path, L).unwrap();
    assert!(data.train_windows() >= 2 * BATCH, "two batches at least");
    data
}

fn config(shard_rows: ShardRows) -> RunConfig<lsnn_train::lsnn_layers::ModelConfig> {
    let mut cfg = common::tiny_config();
    cfg.model.sequence_length = L;
    cfg.model.max_position_embeddings = L;
    cfg.train.batch_size = BATCH;
    cfg.train.shard_rows = shard_rows;
    cfg
}

fn opts(dir: &Path, budget: Option<u64>) -> TrainOptions {
    TrainOptions {
        memory_budget: budget.map(MemoryLimit::Bytes),
        ..options(dir)
    }
}

/// The peak live bytes of the trainer's second training batch (the first one warms the
/// optimizer's buffers and, under auto, runs the probes).
fn step_peak(t: &mut LmTrainer) -> u64 {
    let first = common::batch(t, 0);
    t.train_batch(&first).unwrap();
    let second = common::batch(t, 1);
    let w = PeakWindow::open();
    t.train_batch(&second).unwrap();
    w.close()
}

/// An event sink that keeps the (rows, recorded) of each `ShardSizing` event.
fn sized(events: &mut Vec<(usize, bool)>) -> impl FnMut(&Event) + '_ {
    move |e| {
        if let Event::ShardSizing { sizing, recorded } = e {
            events.push((sizing.rows, *recorded));
        }
    }
}

static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `f` on a pool of one thread, alone in the process (the tests of this binary take turns).
fn one_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let _turn = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn auto_chooses_the_largest_shard_that_fits_the_budget_and_the_next_would_not() {
    assert!(alloc::is_installed());
    one_thread(|| {
        let root = scratch("auto");
        let mut peaks = Vec::new();
        for rows in [1, 2, 4, 8] {
            let dir = root.join(format!("fixed-{rows}"));
            let mut t =
                LmTrainer::new(config(ShardRows::Fixed(rows)), data(&dir), opts(&dir, None))
                    .unwrap();
            peaks.push(step_peak(&mut t));
        }
        eprintln!("real step peaks at 1, 2, 4, 8 rows per shard: {peaks:?} B");
        // The shards, not the batch, set the peak.
        assert!(peaks.windows(2).all(|w| w[1] > w[0]), "{peaks:?}");
        let (p2, p4) = (peaks[1] as f64, peaks[2] as f64);
        assert!(
            p4 > p2 * (1.0 + AUTO_HEADROOM) * 1.02,
            "4-row shards must peak clearly above 2-row ones with headroom: {peaks:?}"
        );
        let budget = ((p2 * (1.0 + AUTO_HEADROOM) + p4) / 2.0) as u64;

        let dir = root.join("auto");
        let mut t = LmTrainer::new(
            config(ShardRows::Auto),
            data(&dir),
            opts(&dir, Some(budget)),
        )
        .unwrap();
        let got = step_peak(&mut t);
        let sizing = t
            .state()
            .shard_sizing
            .clone()
            .expect("auto recorded its choice");
        eprintln!(
            "budget {budget} B: {}; its real step peaked at {got} B",
            sizing.describe()
        );
        assert_eq!(sizing.rows, 2, "{}", sizing.describe());
        assert_eq!(
            sizing
                .probes
                .iter()
                .map(|p| (p.rows, p.measured, p.fits))
                .collect::<Vec<_>>(),
            vec![(1, true, true), (2, true, true), (4, false, false)],
            "the 4-row step is predicted not to fit and not run"
        );
        assert_eq!(sizing.budget_bytes, budget);
        // The chosen setting runs under the budget; the next larger would not.
        assert!(
            got <= budget,
            "auto's step peaked at {got} B over the budget {budget} B"
        );
        assert!(
            peaks[2] > budget,
            "4-row shards ({} B) would fit {budget} B",
            peaks[2]
        );
        // The probes measured what the real steps do, and the prediction foresaw it, within
        // the headroom.
        for (probe, real) in sizing.probes.iter().zip(&peaks) {
            let ratio = probe.peak_bytes as f64 / *real as f64;
            assert!(
                (1.0 / (1.0 + AUTO_HEADROOM)..=1.0 + AUTO_HEADROOM).contains(&ratio),
                "probe of {} rows {} B vs a real step {real} B",
                probe.rows,
                probe.peak_bytes
            );
        }
    });
}

#[test]
fn a_budget_that_one_row_shards_do_not_fit_is_a_typed_error_and_the_choice_survives_resume() {
    one_thread(|| {
        let root = scratch("refuse");
        let tight = root.join("tight");
        let t = LmTrainer::new(config(ShardRows::Auto), data(&tight), opts(&tight, None)).unwrap();
        let batch = common::batch(&t, 0);
        let rng = SeededRng::new(1);
        let e =
            choose_shard_rows(t.model(), &batch, &rng, t.vars(), alloc::live_bytes()).unwrap_err();
        match &e {
            TrainError::Memory(MemoryError::BudgetExceeded { what, .. }) => {
                assert!(what.contains("one row"), "{e}")
            }
            other => panic!("expected BudgetExceeded, got {other}"),
        }
        drop((t, batch));

        // A run that chose under a budget keeps its choice when resumed without one (where
        // probing again would choose the whole batch).
        let measure = root.join("measure");
        let mut m = LmTrainer::new(
            config(ShardRows::Fixed(2)),
            data(&measure),
            opts(&measure, None),
        )
        .unwrap();
        let p2 = step_peak(&mut m);
        drop(m);
        let dir = root.join("run");
        let mut cfg = config(ShardRows::Auto);
        cfg.train.num_epochs = 2;
        let mut o = opts(
            &dir,
            Some((p2 as f64 * (1.0 + AUTO_HEADROOM) * 1.05) as u64),
        );
        o.max_batches = Some(1);
        let mut t = LmTrainer::new(cfg, data(&dir), o).unwrap();
        let mut fresh = Vec::new();
        t.run(&mut sized(&mut fresh)).unwrap();
        let chosen = t.state().shard_sizing.clone().unwrap();
        drop(t);
        assert_eq!(fresh, vec![(chosen.rows, false)], "a fresh run probes once");
        assert!(chosen.rows < BATCH, "{}", chosen.describe());
        let mut o = opts(&dir, None);
        o.max_batches = Some(2);
        let mut t = common::resume(&dir, o).unwrap();
        assert_eq!(t.state().shard_sizing.as_ref(), Some(&chosen));
        let mut resumed = Vec::new();
        t.run(&mut sized(&mut resumed)).unwrap();
        assert_eq!(
            resumed,
            vec![(chosen.rows, true)],
            "the resumed run keeps the choice"
        );
        assert_eq!(t.state().shard_sizing.as_ref(), Some(&chosen));
    });
}
