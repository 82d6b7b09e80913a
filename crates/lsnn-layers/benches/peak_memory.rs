//! Peak live bytes of each component's forward + backward at the lm-small sizes (SPEC §7),
//! fused against the per-step reference, next to the analytic minimum (inputs, outputs and the
//! tensors backward must keep). Measured with the counting allocator, single-threaded.
//!
//! Run: `RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo bench -p lsnn-layers --bench peak_memory`

use candle_core::{DType, Device, Var};
use candle_nn::VarMap;
use lsnn_layers::attention::{AttentionConfig, MultiHeadSpikingAttention};
use lsnn_layers::encoder::{SpikingEncoder, SpikingEncoderConfig};
use lsnn_layers::lif::{self, reference, LifConfig};
use lsnn_layers::{Mode, SeededInit, SeededRng};
use lsnn_memory::{alloc, CountingAlloc, PeakWindow};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn peak_above<F: FnMut()>(mut f: F) -> u64 {
    f(); // warm caches and lazily allocated pools
    let start = alloc::live_bytes();
    let w = PeakWindow::open();
    f();
    w.close().saturating_sub(start)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn main() {
    let lif_cfg = LifConfig {
        beta: 0.95,
        threshold: 1.0,
        ..LifConfig::default()
    };
    let f = 4u64; // bytes per f32
    println!("| component (lm-small, fwd+bwd) | fused peak MiB | per-step reference peak MiB | fused / reference | analytic minimum MiB |");
    println!("|---|---|---|---|---|");

    // LIF rate form, T = 8, N = 65,536: the minimum holds the current, the rate, its gradient and
    // the current's gradient (4·N floats); the reference keeps every step's state for backward.
    let n = 65_536u64;
    let x = Var::from_tensor(
        &SeededRng::new(1)
            .normal_tensor(n as usize, 0.8, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let fused = peak_above(|| {
        lif::lif_const_rate(x.as_tensor(), 8, &lif_cfg)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    let refp = peak_above(|| {
        reference::lif_const_rate(x.as_tensor(), 8, &lif_cfg)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    row("LIF rate form T=8 N=65,536", fused, refp, 4 * n * f);

    // SpikingEncoder: N = B·L = 512 positions, D = 128, S = 64, T = 4.
    let (np, d, s, t) = (512u64, 128u64, 64u64, 4u64);
    let cfg = SpikingEncoderConfig {
        in_dim: d as usize,
        units: s as usize,
        steps: t as usize,
        lif: lif_cfg,
        dropout: 0.2,
    };
    let vm = VarMap::new();
    let enc = SpikingEncoder::new(
        &cfg,
        SeededInit::var_builder(&vm, SeededRng::new(2), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let xe = SeededRng::new(3)
        .normal_tensor(
            (np as usize, d as usize),
            0.0,
            1.0,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    let fused = peak_above(|| {
        enc.forward_rate(&xe, &mut Mode::Eval)
            .unwrap()
            .spikes
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    let refp = peak_above(|| {
        enc.forward_rate_reference(&xe, &mut Mode::Eval)
            .unwrap()
            .spikes
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    // Kept for backward: I1 [N,2S], S1 [T,N,2S], I2 [T,N,S]; outputs rate and mean U [N,S] each;
    // the largest gradient in flight: dS1 [T,N,2S].
    let min = (np * 2 * s + t * np * 2 * s + t * np * s + 2 * np * s + t * np * 2 * s) * f;
    row("SpikingEncoder N=512 D=128 S=64 T=4", fused, refp, min);

    // Attention: B=8, L=64, D=128, 4 heads, 8 rate steps.
    let (b, l, dm, h) = (8u64, 64u64, 128u64, 4u64);
    let acfg = AttentionConfig {
        d_model: dm as usize,
        heads: h as usize,
        spike_steps: 8,
        lif: lif_cfg,
        causal: true,
    };
    let vm = VarMap::new();
    let att = MultiHeadSpikingAttention::new(
        &acfg,
        SeededInit::var_builder(&vm, SeededRng::new(4), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let xa = SeededRng::new(5)
        .normal_tensor(
            (b as usize, l as usize, dm as usize),
            0.0,
            1.0,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    let fused = peak_above(|| {
        att.forward(&xa)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    let refp = peak_above(|| {
        att.forward_reference(&xa)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    // Kept: q,k,v currents and rates (6·B·L·D), scores and softmax (2·B·h·L·L), context (B·L·D),
    // output (B·L·D); the gradient of the attention matrix (B·h·L·L) in flight.
    let min = (8 * b * l * dm + 3 * b * h * l * l) * f;
    row("Attention B=8 L=64 D=128 h=4 steps=8", fused, refp, min);
}

fn row(name: &str, fused: u64, refp: u64, min: u64) {
    println!(
        "| {name} | {:.2} | {:.2} | {:.3} | {:.2} |",
        mib(fused),
        mib(refp),
        fused as f64 / refp as f64,
        mib(min)
    );
}
