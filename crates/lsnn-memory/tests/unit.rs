//! Tests that need no allocator: parsing, timeline, exports, shapes, proptests.

use candle_core::{DType, Device, Tensor};
use lsnn_memory::leak::slope;
use lsnn_memory::rss::{parse_kb_field, parse_statm};
use lsnn_memory::{
    byte_size, parse_size, safe_cat, safe_ones, safe_stack, ManagerConfig, MemoryError,
    MemoryLimit, MemoryManager, Sample, Timeline,
};
use proptest::prelude::*;
use std::path::Path;

#[test]
fn statm_and_status_parse() {
    assert_eq!(
        parse_statm("1000 250 30 1 0 200 0\n", 4096).unwrap(),
        250 * 4096
    );
    assert!(parse_statm("garbage", 4096).is_err());
    let status = "Name:\tx\nVmPeak:\t  2000 kB\nVmHWM:\t  1234 kB\n";
    assert_eq!(
        parse_kb_field(status, "VmHWM", Path::new("s")).unwrap(),
        1234 * 1024
    );
    assert!(parse_kb_field(status, "VmRSS", Path::new("s")).is_err());
    assert!(parse_kb_field("VmHWM: x kB", "VmHWM", Path::new("s")).is_err());
}

#[test]
fn live_rss_is_real() {
    let r = lsnn_memory::rss::rss_bytes().unwrap();
    let h = lsnn_memory::rss::peak_rss_bytes().unwrap();
    assert!(r > 1 << 20 && h >= r / 2, "rss {r} hwm {h}");
    assert!(lsnn_memory::rss::physical_memory_bytes().unwrap() > 1 << 28);
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("4096").unwrap(), MemoryLimit::Bytes(4096));
    assert_eq!(parse_size("512MiB").unwrap(), MemoryLimit::Bytes(512 << 20));
    assert_eq!(parse_size("2G").unwrap(), MemoryLimit::Bytes(2 << 30));
    assert_eq!(parse_size("1.5k").unwrap(), MemoryLimit::Bytes(1536));
    assert_eq!(
        parse_size("50%").unwrap(),
        MemoryLimit::FractionOfDevice(0.5)
    );
    for bad in ["", "abc", "12XB", "0", "150%", "-3M", "0%"] {
        assert!(parse_size(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn invalid_configs_are_errors() {
    for c in [
        ManagerConfig {
            budget: Some(MemoryLimit::Bytes(0)),
            ..Default::default()
        },
        ManagerConfig {
            cleanup_threshold: Some(MemoryLimit::FractionOfDevice(1.5)),
            ..Default::default()
        },
        ManagerConfig {
            timeline_capacity: 0,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            MemoryManager::new(&Device::Cpu, c),
            Err(MemoryError::InvalidConfig(_))
        ));
    }
}

fn sample(i: u64) -> Sample {
    Sample {
        ts_us: i * 10,
        label: format!("s{i}"),
        live_bytes: i * 100,
        peak_bytes: i * 200,
        rss_bytes: i * 300,
    }
}

#[test]
fn chrome_trace_export_has_the_schema() {
    let m = MemoryManager::cpu();
    m.sample("start").unwrap();
    m.log_usage("epoch, \"1\"").unwrap();
    m.cleanup().unwrap();
    let text = serde_json::to_string(&m.timeline_chrome_trace()).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = doc["traceEvents"].as_array().expect("traceEvents array");
    assert_eq!(events.len(), 6);
    let mut last_ts = 0;
    for e in events {
        let ph = e["ph"].as_str().unwrap();
        assert!(ph == "C" || ph == "i");
        assert!(e["name"].is_string());
        assert!(e["pid"].is_u64());
        let ts = e["ts"].as_u64().unwrap();
        assert!(ts >= last_ts);
        last_ts = ts;
        if ph == "C" {
            let args = e["args"].as_object().unwrap();
            for k in ["live_bytes", "peak_bytes", "rss_bytes"] {
                assert!(args[k].is_u64(), "{k}");
            }
            assert!(args["rss_bytes"].as_u64().unwrap() > 0);
        }
    }
    let csv = m.timeline_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "ts_us,label,live_bytes,peak_bytes,rss_bytes");
    assert_eq!(lines.len(), 4);
    assert!(lines[2].starts_with(|c: char| c.is_ascii_digit()));
    assert!(lines[2].contains("\"epoch, \"\"1\"\"\""), "{}", lines[2]);
    let dir = std::env::temp_dir().join(format!("lsnn-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    m.write_chrome_trace(&dir.join("t.json")).unwrap();
    m.write_timeline_csv(&dir.join("t.csv")).unwrap();
    assert!(m.write_timeline_csv(&dir.join("missing/t.csv")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shape_errors_are_typed() {
    let m = MemoryManager::cpu();
    let a = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    let c = Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap();
    let d = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(safe_cat(&m, &[&a, &b], 1).unwrap().dims(), &[2, 7]);
    assert!(matches!(
        safe_cat(&m, &[&a, &b], 0),
        Err(MemoryError::Shape { .. })
    ));
    assert!(matches!(
        safe_cat(&m, &[&a, &c], 0),
        Err(MemoryError::Shape { .. })
    ));
    assert!(matches!(
        safe_cat(&m, &[&a, &d], 0),
        Err(MemoryError::Shape { .. })
    ));
    assert!(matches!(
        safe_cat(&m, &[&a], 2),
        Err(MemoryError::Shape { .. })
    ));
    assert!(matches!(
        safe_cat::<Tensor>(&m, &[], 0),
        Err(MemoryError::Shape { .. })
    ));
    assert_eq!(safe_stack(&m, &[&a, &a], 2).unwrap().dims(), &[2, 3, 2]);
    assert!(matches!(
        safe_stack(&m, &[&a, &b], 0),
        Err(MemoryError::Shape { .. })
    ));
    assert!(matches!(
        safe_stack(&m, &[&a], 3),
        Err(MemoryError::Shape { .. })
    ));
    assert_eq!(
        safe_ones(&m, (2, 2), DType::F32, &Device::Cpu)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        4.0
    );
    assert!(matches!(
        byte_size("x", &[usize::MAX, 2], DType::F32),
        Err(MemoryError::SizeOverflow { .. })
    ));
}

#[test]
fn unbudgeted_requests_beyond_the_machine_are_refused() {
    // Without a configured budget the device's available memory is the limit.
    let m = MemoryManager::cpu();
    let err =
        lsnn_memory::safe_zeros(&m, (1 << 20, 1 << 20), DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, MemoryError::BudgetExceeded { requested, .. } if requested == 4 << 40));
    assert!(err.to_string().contains("requested 4398046511104 bytes"));
}

proptest! {
    #[test]
    fn timeline_never_exceeds_capacity(cap in 1usize..50, n in 0u64..200) {
        let mut t = Timeline::new(std::num::NonZeroUsize::new(cap).unwrap());
        for i in 0..n {
            t.push(sample(i));
        }
        prop_assert_eq!(t.len(), (n as usize).min(cap));
        prop_assert_eq!(t.dropped(), n.saturating_sub(cap as u64));
        if n > 0 {
            prop_assert_eq!(t.samples().last().unwrap().ts_us, (n - 1) * 10);
        }
        prop_assert_eq!(t.to_csv().lines().count(), t.len() + 1);
    }

    #[test]
    fn slope_recovers_a_line(a in 0u64..1_000_000, b in 0u64..10_000, n in 2usize..300) {
        let ys: Vec<u64> = (0..n as u64).map(|i| a + b * i).collect();
        prop_assert!((slope(&ys) - b as f64).abs() < 1e-6 * (1.0 + b as f64));
    }

    #[test]
    fn byte_size_matches_the_tensor(d0 in 1usize..20, d1 in 1usize..20, d2 in 1usize..5) {
        let t = Tensor::zeros((d0, d1, d2), DType::F32, &Device::Cpu).unwrap();
        prop_assert_eq!(byte_size("t", t.dims(), t.dtype()).unwrap(), (t.elem_count() * 4) as u64);
    }

    #[test]
    fn safe_cat_equals_cat(rows in proptest::collection::vec(1usize..6, 1..5), cols in 1usize..6) {
        let m = MemoryManager::cpu();
        let ts: Vec<Tensor> = rows
            .iter()
            .enumerate()
            .map(|(i, &r)| Tensor::full(i as f32, (r, cols), &Device::Cpu).unwrap())
            .collect();
        let a = safe_cat(&m, &ts, 0).unwrap();
        let b = Tensor::cat(&ts, 0).unwrap();
        prop_assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn parse_size_roundtrips_mib(n in 1u64..100_000) {
        prop_assert_eq!(parse_size(&format!("{n}MiB")).unwrap(), MemoryLimit::Bytes(n << 20));
    }
}
