//! `shard_rows` from the command line (design §3.3.1): `"auto"` under `--memory-budget` prints
//! its choice with the probes' peaks and records it in the run's state, which a resume keeps;
//! a bad value exits with code 2 and says what was expected.

mod support;

use support::{code, current_set, err, lsnn, scratch, setup, train_tiny};

#[test]
fn auto_prints_and_records_its_choice_and_bad_values_exit_2() {
    let scratch = scratch("shard-rows");
    let d: &std::path::Path = &scratch;
    setup(d);
    let out = train_tiny(
        d,
        "run",
        &[
            "--set",
            "shard_rows=auto",
            "--memory-budget",
            "2GiB",
            "--max-batches",
            "2",
        ],
    );
    assert!(
        out.contains("shard_rows auto: 6 of the batch's 6 rows per shard")
            && out.contains("probe peaks 1 row")
            && out.contains("budget 2048.0 MiB with 15% headroom"),
        "{out}"
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(current_set(&d.join("run")).join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    let sizing = &state["shard_sizing"];
    assert_eq!(sizing["rows"], 6, "{state}");
    assert_eq!(sizing["budget_bytes"], 2u64 << 30, "{state}");
    assert_eq!(
        sizing["probes"].as_array().map(Vec::len),
        Some(4),
        "1, 2, 4 and 6 rows: {sizing}"
    );
    let resumed = support::ok(&lsnn(
        &["train", "--resume", "run", "--max-batches", "3"],
        d,
    ));
    assert!(
        resumed.contains("(recorded when the run started)"),
        "{resumed}"
    );

    for (value, says) in [
        ("0", "expected a number of rows in 1..="),
        ("many", "a number of rows (at least 1) or \"auto\""),
        ("-2", "a number of rows (at least 1) or \"auto\""),
    ] {
        let o = lsnn(
            &[
                "train",
                "--config",
                "config.json",
                "--data",
                "data.txt",
                "--out",
                "bad",
                "--set",
                &format!("shard_rows={value}"),
            ],
            d,
        );
        let e = err(&o);
        assert_eq!(code(&o), 2, "{value}: {e}");
        assert!(e.contains("shard_rows") && e.contains(says), "{value}: {e}");
    }
}
