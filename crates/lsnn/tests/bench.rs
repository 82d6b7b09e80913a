//! `lsnn bench`: the long-sequence workloads and `--set` (one timed step each; the figures
//! themselves are measured in docs/performance.md, not here).

mod support;

use support::{err, lsnn, ok};

fn bench_json(args: &[&str]) -> serde_json::Value {
    let dir = std::env::temp_dir();
    let out = ok(&lsnn(
        &[&["bench", "--steps", "1", "--json"], args].concat(),
        &dir,
    ));
    let line = out.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn set_changes_the_workload_and_is_reported() {
    let j = bench_json(&[
        "--workload",
        "lm-long-1k",
        "--set",
        "sequence_length=96",
        "--set",
        "max_position_embeddings=96",
        "--set",
        "tbptt=32",
    ]);
    assert_eq!(
        (j["batch"].as_u64(), j["seq_len"].as_u64()),
        (Some(4), Some(96))
    );
    assert_eq!(j["set"].as_array().map(Vec::len), Some(3), "{j}");
    assert!(j["train_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_bad_set_is_refused_naming_the_field() {
    let dir = std::env::temp_dir();
    let e = err(&lsnn(
        &["bench", "--steps", "1", "--set", "no_such_field=1"],
        &dir,
    ));
    assert!(e.contains("no_such_field"), "{e}");
    let e = err(&lsnn(&["bench", "--steps", "1", "--set", "tbptt=0"], &dir));
    assert!(e.contains("tbptt"), "{e}");
}

#[test]
fn set_reaches_the_measured_step() {
    let run = |kernel: &str| {
        let j = bench_json(&[
            "--workload",
            "lm-long-1k",
            "--set",
            "sequence_length=256",
            "--set",
            "max_position_embeddings=256",
            "--set",
            kernel,
        ]);
        j["largest_alloc_bytes"].as_u64().unwrap()
    };
    // [B, heads, L, L] f32 at B = 4, 4 heads, L = 256: what only the materialised scores hold.
    let scores = 4 * 4 * 256 * 256 * 4;
    let tiled = run("attention_kernel=tiled");
    let materialized = run("attention_kernel=materialized");
    assert!(
        materialized >= scores && tiled < scores,
        "largest allocation: tiled {tiled} B, materialized {materialized} B"
    );
}

/// `--precision bf16`: reported in the JSON where the CPU has AVX-512 BF16, refused naming the
/// instructions where it does not; `--device` other than the CPU is refused either way.
#[test]
fn precision_bf16_runs_or_is_refused() {
    use lsnn_train::lsnn_layers::kernel::bf16::Bf16Kernel;
    let dir = std::env::temp_dir();
    let args = ["bench", "--steps", "1", "--json", "--precision", "bf16"];
    if Bf16Kernel::active() == Bf16Kernel::Avx512Bf16 {
        let j = bench_json(&["--precision", "bf16"]);
        assert_eq!(j["precision"], "bf16", "{j}");
        assert!(j["train_tokens_per_s"].as_f64().unwrap() > 0.0);
    } else {
        let e = err(&lsnn(&args, &dir));
        assert!(e.contains("AVX-512 BF16"), "{e}");
    }
    let e = err(&lsnn(&[&args[..], &["--device", "cuda"]].concat(), &dir));
    assert!(e.contains("--device cpu"), "{e}");
    assert_eq!(bench_json(&[])["precision"], "f32");
}
