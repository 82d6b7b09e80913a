//! Memory assertions with the counting allocator installed. The allocator is process-wide, so
//! every test here takes `LOCK` first: nothing else in this binary allocates while one measures.

use candle_core::{DType, Device, Tensor, Var};
use lsnn_memory::{
    alloc, safe_zeros, AccumulatorPool, CountingAlloc, LeakConfig, LeakDetector, ManagerConfig,
    MemoryError, MemoryLimit, MemoryManager, PeakWindow, Verdict,
};
use std::sync::Mutex;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

const KIB4: usize = 4096;
/// Bytes the test harness's own thread may allocate or free while a test measures.
const SLACK: u64 = 1024;

#[test]
fn live_and_peak_follow_a_vec_exactly() {
    let _g = lock();
    let before = alloc::stats();
    let w = PeakWindow::open();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(1 << 20));
    let mid = alloc::live_bytes();
    drop(v);
    let peak = w.close();
    let after = alloc::stats().since(&before);
    assert!(alloc::is_installed());
    assert!(mid + SLACK >= before.live_bytes + (1 << 20));
    assert!(peak + SLACK >= before.live_bytes + (1 << 20));
    assert!(after.allocations >= 1 && after.frees >= 1);
    assert!(after.allocated_bytes_total >= 1 << 20);
}

#[test]
fn nested_scopes_report_exact_peaks() {
    let _g = lock();
    let m = MemoryManager::cpu();
    let outer = m.scope("outer");
    let a: Vec<u8> = std::hint::black_box(Vec::with_capacity(300_000));
    drop(a);
    let inner = m.scope("inner");
    let b: Vec<u8> = std::hint::black_box(Vec::with_capacity(100_000));
    drop(b);
    let ri = inner.finish();
    let ro = outer.finish();
    // The inner scope saw only its own 100 kB, not the outer's earlier 300 kB.
    assert!(ri.peak_above_entry() >= 100_000 - SLACK, "{ri:?}");
    assert!(ri.peak_above_entry() < 300_000, "{ri:?}");
    // The outer scope's peak includes the 300 kB and was not lost by the inner scope's reset
    // (allowing a few bytes that the harness's other thread may free meanwhile).
    assert!(ro.peak_above_entry() >= 300_000 - SLACK, "{ro:?}");
    assert!(ro.peak_bytes >= ri.peak_bytes);

    // An inner peak that is higher than anything before folds into the outer scope.
    let outer = m.scope("outer2");
    let inner = m.scope("inner2");
    let c: Vec<u8> = std::hint::black_box(Vec::with_capacity(500_000));
    drop(c);
    let ri = inner.finish();
    let ro = outer.finish();
    assert!(ri.peak_above_entry() >= 500_000 - SLACK);
    assert!(ro.peak_bytes >= ri.peak_bytes, "{ro:?} {ri:?}");
}

#[test]
fn pool_allocates_once_for_a_thousand_calls() {
    let _g = lock();
    let pool = AccumulatorPool::new();
    let bytes = 64 * 1024 * 4u64;
    // First call allocates the buffer.
    drop(pool.acquire((64, 1024), DType::F32, &Device::Cpu).unwrap());
    let before = alloc::stats();
    for i in 0..1000 {
        let t = pool.acquire((64, 1024), DType::F32, &Device::Cpu).unwrap();
        if i == 500 {
            // Handed out zeroed even after being written to.
            let s: f32 = t.sum_all().unwrap().to_scalar().unwrap();
            assert_eq!(s, 0.0);
        }
    }
    let d = alloc::stats().since(&before);
    // Nothing near the buffer's size was allocated again (the sum above allocates a few bytes).
    assert!(
        d.allocated_bytes_total < bytes / 4,
        "1000 acquisitions allocated {} bytes",
        d.allocated_bytes_total
    );
    let s = pool.stats();
    assert_eq!(s.created, 1);
    assert_eq!(s.reused, 1000);
    assert_eq!(s.idle_buffers, 1);

    // The same loop without the pool allocates the buffer every time.
    let before = alloc::stats();
    for _ in 0..1000 {
        let _t = Tensor::zeros((64, 1024), DType::F32, &Device::Cpu).unwrap();
    }
    let d = alloc::stats().since(&before);
    assert!(d.allocated_bytes_total >= 1000 * bytes);
}

#[test]
fn a_recycled_buffer_is_zeroed() {
    let _g = lock();
    let pool = AccumulatorPool::new();
    let t = pool.acquire(16, DType::F32, &Device::Cpu).unwrap();
    t.one_set().unwrap();
    drop(t);
    let t = pool.acquire(16, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(t.to_vec1::<f32>().unwrap(), vec![0.0; 16]);
}

fn cfg() -> LeakConfig {
    LeakConfig {
        warmup: 5,
        iterations: 100,
        ..LeakConfig::default()
    }
}

#[test]
fn vec_growth_control_is_flagged_and_the_correct_loop_passes() {
    let _g = lock();
    // Control: keeps ~4 KiB per iteration.
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let r = LeakDetector::new(cfg())
        .run(|_| {
            kept.push(vec![1u8; KIB4]);
            Ok::<_, ()>(())
        })
        .unwrap();
    assert_eq!(r.verdict, Verdict::Leak, "control passed: {:?}", r.reasons);
    assert!(
        r.slope_bytes_per_iter > 3000.0,
        "{}",
        r.slope_bytes_per_iter
    );
    drop(kept);

    // Correct: the same work, nothing kept.
    let r = LeakDetector::new(cfg())
        .run(|_| {
            let v = vec![1u8; KIB4];
            std::hint::black_box(&v);
            Ok::<_, ()>(())
        })
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.reasons);
    assert!(
        r.live_growth_bytes.abs() < 16 * 1024,
        "{}",
        r.live_growth_bytes
    );
}

#[test]
fn tensor_chain_control_is_flagged_and_the_correct_loop_passes() {
    let _g = lock();
    // Control: a growing chain of candle tensors, each op holding its input (the graph survives).
    let v = Var::zeros(1024, DType::F32, &Device::Cpu).unwrap();
    let mut chain: Tensor = v.as_tensor().clone();
    let r = LeakDetector::new(cfg())
        .run(|_| {
            chain = chain.affine(1.0, 1.0)?;
            Ok::<_, candle_core::Error>(())
        })
        .unwrap();
    assert_eq!(r.verdict, Verdict::Leak, "control passed: {:?}", r.reasons);
    assert!(
        r.slope_bytes_per_iter >= 4096.0,
        "{}",
        r.slope_bytes_per_iter
    );
    // 105 links: dropping recursively is well within the stack.
    drop(chain);

    // Correct: the running value is detached every iteration, so only one link lives.
    let mut x: Tensor = v.as_tensor().clone();
    let r = LeakDetector::new(cfg())
        .run(|_| {
            x = x.affine(1.0, 1.0)?.detach();
            Ok::<_, candle_core::Error>(())
        })
        .unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.reasons);
    assert_eq!(x.to_vec1::<f32>().unwrap()[0], 105.0);
}

#[test]
fn growing_peak_is_flagged_even_when_live_is_flat() {
    let _g = lock();
    // Each iteration allocates a temporary that grows with the iteration number and frees it.
    let r = LeakDetector::new(cfg())
        .run(|i| {
            let v = vec![0u8; 1024 * i];
            std::hint::black_box(&v);
            Ok::<_, ()>(())
        })
        .unwrap();
    assert!(r.peak_trends_up, "{r:?}");
    assert_eq!(r.verdict, Verdict::Leak);
    assert!(
        r.live_growth_bytes.abs() < 16 * 1024,
        "{}",
        r.live_growth_bytes
    );
}

#[test]
fn report_serialises() {
    let _g = lock();
    let r = LeakDetector::new(cfg()).run(|_| Ok::<_, ()>(())).unwrap();
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["verdict"], "pass");
    assert_eq!(j["live"].as_array().unwrap().len(), 100);
}

#[test]
fn safe_zeros_over_budget_is_a_typed_error_and_the_process_goes_on() {
    let _g = lock();
    let m = MemoryManager::new(
        &Device::Cpu,
        ManagerConfig {
            budget: Some(MemoryLimit::Bytes(alloc::live_bytes() + (64 << 20))),
            ..ManagerConfig::default()
        },
    )
    .unwrap();
    // 1 Gi f32 = 4 GiB, far beyond the 64 MiB headroom.
    let before = alloc::live_bytes();
    let err = safe_zeros(&m, (1024, 1024, 1024), DType::F32, &Device::Cpu).unwrap_err();
    match err {
        MemoryError::BudgetExceeded {
            requested,
            available,
            what,
            ..
        } => {
            assert_eq!(requested, 4 << 30);
            assert!(available <= 64 << 20);
            assert_eq!(what, "safe_zeros");
        }
        e => panic!("expected BudgetExceeded, got {e}"),
    }
    assert!(
        alloc::live_bytes() < before + (1 << 20),
        "nothing was allocated"
    );
    // Within budget it works.
    let t = safe_zeros(&m, (1024, 1024), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[1024, 1024]);
    // And accumulators are budgeted too.
    assert!(matches!(
        m.accumulator((1024, 1024, 1024), DType::F32),
        Err(MemoryError::BudgetExceeded { .. })
    ));
}

#[test]
fn usage_and_threshold_use_the_allocator() {
    let _g = lock();
    let m = MemoryManager::new(
        &Device::Cpu,
        ManagerConfig {
            cleanup_threshold: Some(MemoryLimit::Bytes(alloc::live_bytes() + (8 << 20))),
            ..ManagerConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        m.usage().unwrap().source,
        lsnn_memory::MemorySource::CountingAllocator
    );
    assert!(m.check().unwrap().is_none());
    let big: Vec<u8> = vec![1; 16 << 20];
    let acc = m.accumulator(1024, DType::F32).unwrap();
    drop(acc);
    assert_eq!(m.pool().stats().idle_buffers, 1);
    let report = m
        .check()
        .unwrap()
        .expect("above the threshold: cleanup runs");
    assert_eq!(report.pooled_buffers_dropped, 1);
    assert_eq!(m.cleanup_count(), 1);
    assert_eq!(m.pool().stats().idle_buffers, 0);
    drop(big);
    assert!(m.check().unwrap().is_none());
}

#[test]
fn figures_are_consistent_from_rayon_workers() {
    let _g = lock();
    use rayon::prelude::*;
    let m = MemoryManager::cpu();
    let before = alloc::stats();
    let sizes: Vec<u64> = (0..64u64)
        .into_par_iter()
        .map(|i| {
            let v = vec![0u8; 10_000 + i as usize];
            std::hint::black_box(&v);
            let u = m.sample("worker").unwrap();
            let acc = m.accumulator(256, DType::F32).unwrap();
            drop(acc);
            assert!(u.live_bytes > 0);
            v.len() as u64
        })
        .collect();
    let d = alloc::stats().since(&before);
    let expected: u64 = sizes.iter().sum();
    assert!(d.allocated_bytes_total >= expected);
    assert!(d.allocations >= 64);
    assert_eq!(m.timeline().len(), 64);
}

#[test]
fn a_window_reports_its_largest_allocation_freed_or_not_and_nesting_folds_it_back() {
    let _g = lock();
    let outer = PeakWindow::open();
    {
        let inner = PeakWindow::open();
        // Small blocks only: the figure stays small (the check can say "no big buffer").
        let small: Vec<Vec<u8>> = (0..64)
            .map(|_| std::hint::black_box(Vec::with_capacity(KIB4)))
            .collect();
        drop(small);
        assert!(
            inner.largest_allocation() < 64 * 1024,
            "{}",
            inner.largest_allocation()
        );
        // A 3 MiB block, freed at once, still counts.
        let big: Vec<u8> = std::hint::black_box(Vec::with_capacity(3 << 20));
        drop(big);
        assert!(inner.largest_allocation() >= 3 << 20);
        let _ = inner.close();
    }
    // The inner window's figure folded into the outer one, and into the stats.
    assert!(outer.largest_allocation() >= 3 << 20);
    assert!(alloc::stats().largest_allocation_bytes >= 3 << 20);
    // A later window starts afresh.
    let later = PeakWindow::open();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(100_000));
    drop(v);
    let largest = later.largest_allocation();
    assert!((100_000..1 << 20).contains(&largest), "{largest}");
    let _ = later.close();
    let _ = outer.close();
}

#[test]
fn a_scope_reports_its_largest_allocation_and_a_reset_restarts_it() {
    let _g = lock();
    let m = MemoryManager::cpu();
    let s = m.scope("two buffers");
    let a: Vec<u8> = std::hint::black_box(Vec::with_capacity(200_000));
    let b: Vec<u8> = std::hint::black_box(Vec::with_capacity(700_000));
    drop((a, b));
    let r = s.finish();
    assert!(
        (700_000..1 << 20).contains(&r.largest_allocation_bytes),
        "{r:?}"
    );
    let replaced = alloc::reset_largest_allocation();
    assert!(replaced >= 700_000);
    assert!(alloc::largest_allocation_bytes() < 64 * 1024);
}

/// Alerts driven by real allocations against a budget: warn at 50% and critical at 75% of it,
/// each level entered once on the way up and left once on the way down, with the default 5%
/// hysteresis keeping a reading just under a threshold at its level.
#[test]
fn alerts_follow_live_bytes_against_a_budget() {
    use lsnn_memory::{AlertConfig, AlertLevel};
    let _g = lock();
    let budget = alloc::live_bytes() + (16 << 20);
    let m = MemoryManager::new(
        &Device::Cpu,
        ManagerConfig {
            budget: Some(MemoryLimit::Bytes(budget)),
            ..ManagerConfig::default()
        },
    )
    .unwrap();
    let cfg = AlertConfig::new(
        Some(MemoryLimit::FractionOfDevice(0.5)),
        Some(MemoryLimit::FractionOfDevice(0.75)),
    );
    let mut alerts = m.alert_monitor(&cfg).unwrap();
    let (warn, critical) = (budget / 2, budget / 4 * 3);
    let (w, c) = alerts.thresholds();
    assert!(w.unwrap().abs_diff(warn) <= 1 && c.unwrap().abs_diff(critical) <= 4);
    let live = || m.usage().unwrap().live_bytes;
    assert_eq!(alerts.observe(live()), None);
    // Past warn by 1% of the budget: far more than the test harness's own threads allocate.
    let margin = (budget / 100) as usize;
    let a: Vec<u8> = std::hint::black_box(Vec::with_capacity((warn - live()) as usize + margin));
    let up = alerts.observe(live()).expect("past warn");
    assert_eq!((up.from, up.to), (AlertLevel::Normal, AlertLevel::Warn));
    assert!(up.is_rise() && up.bytes >= up.threshold);
    // Past critical.
    let b: Vec<u8> = std::hint::black_box(Vec::with_capacity((critical - warn) as usize + margin));
    let up = alerts.observe(live()).expect("past critical");
    assert_eq!((up.from, up.to), (AlertLevel::Warn, AlertLevel::Critical));
    // Freeing 3% of the budget takes live about 1% below critical, inside its 5% band: no alert.
    let mut b = b;
    b.shrink_to(b.capacity() - 3 * margin);
    assert!(live() < critical, "below the threshold");
    assert_eq!(alerts.observe(live()), None);
    assert_eq!(alerts.level(), AlertLevel::Critical);
    // Dropping the rest of b falls to warn, then a to normal.
    drop(b);
    let down = alerts.observe(live()).expect("below critical's band");
    assert_eq!(
        (down.from, down.to),
        (AlertLevel::Critical, AlertLevel::Warn)
    );
    drop(a);
    let down = alerts.observe(live()).expect("below warn's band");
    assert_eq!((down.from, down.to), (AlertLevel::Warn, AlertLevel::Normal));
}
