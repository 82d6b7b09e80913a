//! Overhead of the counting allocator: an allocation-heavy loop (alloc + free of mixed sizes)
//! through `System` directly versus through `CountingAlloc`, in the same binary.
//!
//! Run: `cargo bench -p lsnn-memory --bench alloc_overhead`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lsnn_memory::CountingAlloc;
use std::alloc::{GlobalAlloc, Layout, System};

const SIZES: [usize; 8] = [16, 48, 128, 512, 4096, 24, 1024, 64];

fn churn<A: GlobalAlloc>(a: &A) {
    let mut ptrs = [(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); 64];
    for (i, slot) in ptrs.iter_mut().enumerate() {
        let layout = Layout::from_size_align(SIZES[i % SIZES.len()], 8).unwrap();
        // SAFETY: non-zero size, valid alignment; freed below with the same layout.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        *slot = (p, layout);
    }
    for (p, layout) in ptrs {
        // SAFETY: allocated above by `a` with `layout`.
        unsafe { a.dealloc(black_box(p), layout) };
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_64_free_64");
    g.bench_function("system", |b| b.iter(|| churn(&System)));
    g.bench_function("counting", |b| b.iter(|| churn(&CountingAlloc)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
