//! Memory alerts in the trainer (design §10.2): the config's thresholds, resolved against a
//! memory budget, raise events from real training batches; a rise to critical cleans up unless
//! told not to; bad settings are typed errors naming the field. (The hysteresis itself is
//! lsnn-memory's `alert.rs` unit tests and `tests/counting.rs`.)

mod common;

use common::{options, scratch, text_dataset, tiny_config, LmTrainer};
use lsnn_train::config::SizeSetting;
use lsnn_train::lsnn_memory::{alloc, AlertLevel, CountingAlloc, MemoryAlert, MemoryLimit};
use lsnn_train::{Event, TrainConfig, TrainError};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const BUDGET: u64 = 64 << 20;

/// The allocator's figure is process-wide: one trainer at a time in this binary.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn size(text: &str) -> Option<SizeSetting> {
    Some(SizeSetting::parse(text).unwrap())
}

/// Two batches of the tiny model under a 64 MiB budget with `edit`'s thresholds: the events.
fn run(name: &str, edit: impl FnOnce(&mut TrainConfig)) -> Vec<Event> {
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch(name);
    let mut cfg = tiny_config();
    edit(&mut cfg.train);
    let mut opts = options(&dir);
    opts.max_batches = Some(2);
    opts.memory_budget = Some(MemoryLimit::Bytes(BUDGET));
    let mut t: LmTrainer = LmTrainer::new(cfg, text_dataset(12), opts).unwrap();
    let mut events = Vec::new();
    t.run(&mut |e| events.push(e.clone())).unwrap();
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
    events
}

fn alerts(events: &[Event]) -> Vec<MemoryAlert> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::MemoryAlert(a) => Some(*a),
            _ => None,
        })
        .collect()
}

fn critical_cleanups(events: &[Event]) -> usize {
    events
        .iter()
        .filter(
            |e| matches!(e, Event::Memory { label, released: Some(_), .. } if label == "critical"),
        )
        .count()
}

#[test]
fn a_percentage_of_the_budget_raises_one_warning_and_no_critical() {
    assert!(alloc::is_installed());
    // 0.1% of 64 MiB is 67,108 bytes, below what the model, its optimizer state and the data
    // hold; 50% (32 MiB) is far above it.
    let events = run("alerts-warn", |t| {
        t.memory_warn = size("0.1%");
        t.memory_critical = size("50%");
    });
    let a = alerts(&events);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0].from, a[0].to), (AlertLevel::Normal, AlertLevel::Warn));
    assert_eq!(a[0].threshold, (BUDGET as f64 * 0.001) as u64);
    assert!(a[0].bytes >= a[0].threshold && a[0].bytes < BUDGET / 2);
    assert_eq!(critical_cleanups(&events), 0);
    // The alert comes after the first batch, before the second.
    let first_batch = events
        .iter()
        .position(|e| matches!(e, Event::Batch { .. }))
        .unwrap();
    let alert = events
        .iter()
        .position(|e| matches!(e, Event::MemoryAlert(_)))
        .unwrap();
    assert_eq!(alert, first_batch + 1);
}

#[test]
fn a_rise_to_critical_cleans_up_unless_told_not_to() {
    let events = run("alerts-critical", |t| {
        t.memory_warn = size("0.05%");
        t.memory_critical = size("64KiB");
    });
    let a = alerts(&events);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (a[0].from, a[0].to),
        (AlertLevel::Normal, AlertLevel::Critical)
    );
    assert_eq!(a[0].threshold, 64 << 10);
    assert_eq!(critical_cleanups(&events), 1);
    // The cleanup's memory line follows the alert at once.
    let i = events
        .iter()
        .position(|e| matches!(e, Event::MemoryAlert(_)))
        .unwrap();
    assert!(matches!(&events[i + 1], Event::Memory { label, .. } if label == "critical"));

    let events = run("alerts-no-cleanup", |t| {
        t.memory_critical = size("64KiB");
        t.cleanup_on_critical = false;
    });
    assert_eq!(alerts(&events).len(), 1);
    assert_eq!(critical_cleanups(&events), 0);
}

#[test]
fn no_thresholds_no_alerts() {
    let events = run("alerts-none", |_| {});
    assert!(alerts(&events).is_empty());
}

#[test]
fn the_settings_read_and_write_as_the_user_wrote_them() {
    let cfg: TrainConfig = serde_json::from_str(
        r#"{"memory_warn": "80%", "memory_critical": 1073741824, "memory_alert_hysteresis": 0.1,
            "cleanup_on_critical": false}"#,
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        cfg.memory_warn.as_ref().unwrap().limit(),
        MemoryLimit::FractionOfDevice(0.8)
    );
    assert_eq!(
        cfg.memory_critical.as_ref().unwrap().limit(),
        MemoryLimit::Bytes(1 << 30)
    );
    let json: serde_json::Value = serde_json::to_value(&cfg).unwrap();
    assert_eq!(json["memory_warn"], "80%");
    assert_eq!(json["memory_critical"], 1073741824u64);
    assert_eq!(json["memory_alert_hysteresis"], 0.1);
    assert_eq!(json["cleanup_on_critical"], false);
    let back: TrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, cfg);
    // A byte count written as a float (`--set memory_critical=1e9`, a file from Python).
    let cfg: TrainConfig = serde_json::from_str(r#"{"memory_critical": 1e9}"#).unwrap();
    let c = cfg.memory_critical.as_ref().unwrap();
    assert_eq!(c.limit(), MemoryLimit::Bytes(1_000_000_000));
    assert_eq!(
        serde_json::to_value(&cfg).unwrap()["memory_critical"],
        1_000_000_000u64
    );
    // Defaults are not written.
    let json = serde_json::to_value(TrainConfig::default()).unwrap();
    for k in [
        "memory_warn",
        "memory_critical",
        "memory_alert_hysteresis",
        "cleanup_on_critical",
    ] {
        assert!(json.get(k).is_none(), "{k} written by default");
    }
}

#[test]
fn bad_settings_are_typed_errors_naming_the_field() {
    let e = serde_json::from_str::<TrainConfig>(r#"{"memory_warn": "lots"}"#).unwrap_err();
    assert!(e.to_string().contains("cannot read size"), "{e}");
    let e = serde_json::from_str::<TrainConfig>(r#"{"memory_warn": "150%"}"#).unwrap_err();
    assert!(e.to_string().contains("(0, 1]"), "{e}");
    let e = serde_json::from_str::<TrainConfig>(r#"{"memory_warn": true}"#).unwrap_err();
    assert!(e.to_string().contains("expected a memory size"), "{e}");
    let e = serde_json::from_str::<TrainConfig>(r#"{"memory_warn": 4096.5}"#).unwrap_err();
    assert!(e.to_string().contains("whole number of bytes"), "{e}");
    for (edit, field) in [
        (
            (|t: &mut TrainConfig| t.memory_alert_hysteresis = 1.0) as fn(&mut TrainConfig),
            "memory_alert_hysteresis",
        ),
        (
            |t: &mut TrainConfig| {
                t.memory_warn = size("2GiB");
                t.memory_critical = size("1GiB");
            },
            "memory_critical",
        ),
        (
            |t: &mut TrainConfig| {
                t.memory_warn = size("90%");
                t.memory_critical = size("80%");
            },
            "memory_critical",
        ),
    ] {
        let mut t = TrainConfig::default();
        edit(&mut t);
        match t.validate() {
            Err(TrainError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    // A byte count against a percentage is ordered once the budget is known: 90% of 64 MiB is
    // above 1 MiB, refused before training.
    let dir = scratch("alerts-mixed");
    let mut cfg = tiny_config();
    cfg.train.memory_warn = size("90%");
    cfg.train.memory_critical = size("1MiB");
    let mut opts = options(&dir);
    opts.memory_budget = Some(MemoryLimit::Bytes(BUDGET));
    match LmTrainer::new(cfg, text_dataset(12), opts) {
        Err(TrainError::Config { field, message }) => {
            assert_eq!(field, "memory_warn / memory_critical");
            assert!(message.contains("not below the critical"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A resume under a smaller budget, where the thresholds no longer order (critical 10% of 8 MiB
/// is below warn's 1 MiB): the run goes on with the alerts off and says so.
#[test]
fn a_resume_whose_thresholds_no_longer_order_trains_with_alerts_off_and_a_notice() {
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("alerts-resume");
    let mut cfg = tiny_config();
    cfg.train.memory_warn = size("1MiB");
    cfg.train.memory_critical = size("10%");
    let mut opts = options(&dir);
    opts.max_batches = Some(1);
    opts.memory_budget = Some(MemoryLimit::Bytes(BUDGET));
    let mut t: LmTrainer = LmTrainer::new(cfg, text_dataset(12), opts).unwrap();
    t.run(&mut |_| {}).unwrap();
    drop(t);
    let mut opts = options(&dir);
    opts.max_batches = Some(2);
    opts.memory_budget = Some(MemoryLimit::Bytes(8 << 20));
    let mut t = LmTrainer::resume(&dir, opts, |_, _| Ok(text_dataset(12))).unwrap();
    let mut events = Vec::new();
    t.run(&mut |e| events.push(e.clone())).unwrap();
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Notice(n) if n.starts_with("memory alerts are off")
            && n.contains("not below the critical"))
        ),
        "{events:?}"
    );
    assert!(alerts(&events).is_empty());
    assert_eq!(t.state().batches_seen, 2);
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}
