//! Peak memory by stage (design §10.5): the stages a probe step reports, in the order they
//! ran, and figures that must hold exactly — the optimizer's state is AdamW's two moments of
//! every parameter, two identical blocks hold the same bytes, the embedding keeps its output.

mod common;

use candle_core::Device;
use common::{text_dataset, tiny_model};
use lsnn_train::lsnn_layers::{LanguageModel, ModelConfig};
use lsnn_train::lsnn_memory::CountingAlloc;
use lsnn_train::memory_stages::probe_stages;
use lsnn_train::optim::AdamWConfig;
use lsnn_train::Dataset;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Bytes a stage may differ from an identical one by: what a first call somewhere allocates
/// once and keeps (measured up to 1,096 on a fresh clone), far below a block's activations.
const SLACK: i64 = 2048;

/// The allocator's figures are process-wide: one probe at a time in this binary.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn report(amsgrad: bool) -> lsnn_train::memory_stages::StageReport {
    report_of(tiny_model(), amsgrad)
}

fn report_of(cfg: ModelConfig, amsgrad: bool) -> lsnn_train::memory_stages::StageReport {
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let data = text_dataset(8);
    let batch = Dataset::<LanguageModel>::train_batch(&data, &[0, 1, 2, 3], &Device::Cpu).unwrap();
    let adamw = AdamWConfig {
        amsgrad,
        ..AdamWConfig::default()
    };
    probe_stages::<LanguageModel>(&cfg, &batch, adamw, 7, &Device::Cpu).unwrap()
}

#[test]
fn the_stages_run_in_order_with_exact_figures() {
    let r = report(false);
    let order: Vec<(&str, &str)> = r
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.pass.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("embedding", "forward"),
            ("blocks.0", "forward"),
            ("blocks.1", "forward"),
            ("attns.0", "forward"),
            ("head", "forward"),
            ("head", "backward"),
            ("blocks.1+attns.0", "backward"),
            ("blocks.0", "backward"),
            ("embedding", "backward"),
            ("optimizer", "optimizer"),
        ]
    );
    assert_eq!(r.batch_rows, 4);
    // AdamW's first and second moments: two f32 copies of every parameter, held after the
    // stage (the step itself updates in place), plus the state's bookkeeping (a map entry, a
    // name and two tensor handles per parameter: well under 1 KiB each).
    let opt = r.get("optimizer", "optimizer").unwrap();
    let two = 2 * r.parameter_bytes as i64;
    assert!(
        opt.held_bytes >= two && opt.held_bytes < two + 1024 * r.parameters as i64,
        "{opt:?}, {} parameter bytes",
        r.parameter_bytes
    );
    assert!(opt.peak_bytes >= opt.held_bytes as u64);
    // The two blocks have the same shapes: the same bytes kept for backward (~80 KiB here), up
    // to a few hundred bytes a first call allocates once (a fresh-clone CI measured 1,096).
    let (b0, b1) = (
        r.get("blocks.0", "forward").unwrap(),
        r.get("blocks.1", "forward").unwrap(),
    );
    assert!(
        (b0.held_bytes - b1.held_bytes).abs() <= SLACK,
        "{b0:?} {b1:?}"
    );
    assert!(
        b0.peak_bytes.abs_diff(b1.peak_bytes) <= SLACK as u64,
        "{b0:?} {b1:?}"
    );
    // The embedding's stage keeps at least its output, [B, L, D] f32.
    let cfg = tiny_model();
    let out = (4 * cfg.sequence_length * cfg.hidden_dim * 4) as i64;
    assert!(r.get("embedding", "forward").unwrap().held_bytes >= out);
    // The whole step's peak covers each stage's.
    for s in &r.stages {
        assert!(r.step_peak_bytes >= s.peak_bytes, "{s:?}");
    }
}

#[test]
fn amsgrad_keeps_a_third_moment() {
    let held = |r: &lsnn_train::memory_stages::StageReport| {
        r.get("optimizer", "optimizer").unwrap().held_bytes
    };
    let (plain, ams) = (report(false), report(true));
    // A third f32 copy of every parameter (and its handle: under 1 KiB per parameter).
    let extra = held(&ams) - held(&plain);
    let p = plain.parameter_bytes as i64;
    assert!(
        extra >= p && extra < p + 1024 * plain.parameters as i64,
        "{extra} vs {p}"
    );
}

#[test]
fn four_layers_name_each_layers_backward_with_its_attention() {
    let r = report_of(
        ModelConfig {
            num_layers: 4,
            ..tiny_model()
        },
        false,
    );
    let backward: Vec<&str> = r
        .stages
        .iter()
        .filter(|s| s.pass == "backward")
        .map(|s| s.stage.as_str())
        .collect();
    assert_eq!(
        backward,
        [
            "head",
            "blocks.3+attns.1",
            "blocks.2",
            "blocks.1+attns.0",
            "blocks.0",
            "embedding"
        ]
    );
    let forward: Vec<&str> = r
        .stages
        .iter()
        .filter(|s| s.pass == "forward")
        .map(|s| s.stage.as_str())
        .collect();
    assert_eq!(
        forward,
        [
            "embedding",
            "blocks.0",
            "blocks.1",
            "attns.0",
            "blocks.2",
            "blocks.3",
            "attns.1",
            "head"
        ]
    );
    // Four identical blocks: the same bytes kept by each (up to the one-time slack).
    let held: Vec<i64> = (0..4)
        .map(|i| r.get(&format!("blocks.{i}"), "forward").unwrap().held_bytes)
        .collect();
    assert!(
        held.iter().all(|h| (h - held[3]).abs() <= SLACK),
        "{held:?}"
    );
    // Far more than its own output [B, L, D]: the encoder's spike trains, the CfC's states and
    // the norms' inputs. (Graph nodes count too: dropping the reshape nodes around the fused
    // linear and norm took it from just over 81,920 to 79,968 bytes.)
    let cfg = tiny_model();
    let out = (4 * cfg.sequence_length * cfg.hidden_dim * 4) as i64;
    assert!(
        held[3] > 10 * out,
        "a block keeps its activations: {held:?}, output {out}"
    );
}
