//! Per-component peak live bytes (forward + backward) of the fused forms against the per-step
//! references at the lm-small sizes of design §9.1, and their time ratios. Measure single-threaded
//! with the counting allocator installed.

use crate::Result;
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::alif::{self, AlifConfig};
use lsnn_layers::alpha::{self, AlphaConfig};
use lsnn_layers::attention::{AttentionConfig, MultiHeadSpikingAttention};
use lsnn_layers::cfc::{Cfc, CfcConfig, CfcMode, CfcState, WiredCfc, WiredCfcConfig};
use lsnn_layers::encoder::{SpikingEncoder, SpikingEncoderConfig};
use lsnn_layers::kernel::composed;
use lsnn_layers::lif::{self, reference, LifConfig, LifParams, Surrogate};
use lsnn_layers::rleaky::{self, Connection, RLeakyConfig, Recurrent};
use lsnn_layers::synaptic::{self, SynapticConfig};
use lsnn_layers::wiring::AutoNcpConfig;
use lsnn_layers::{fused, Mode, SeededInit, SeededRng};
use lsnn_memory::{alloc, PeakWindow};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One component's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentReport {
    /// The component and sizes.
    pub name: String,
    /// Peak live bytes above the start, fused.
    pub fused_peak_bytes: u64,
    /// Peak live bytes above the start, per-step reference.
    pub reference_peak_bytes: u64,
    /// fused / reference.
    pub peak_ratio: f64,
    /// Median wall time of fused fwd+bwd, ms.
    pub fused_ms: f64,
    /// Median wall time of the reference fwd+bwd, ms.
    pub reference_ms: f64,
    /// reference / fused: the median over `reps` back-to-back pairs of one reference and one
    /// fused run of each pair's time ratio.
    pub speedup: f64,
    /// Allocations of one fused fwd+bwd.
    pub fused_allocs: u64,
}

fn peak_above(f: &mut dyn FnMut() -> Result<()>) -> Result<u64> {
    f()?;
    let start = alloc::live_bytes();
    let w = PeakWindow::open();
    f()?;
    Ok(w.close().saturating_sub(start))
}

fn time_ms(f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let s = Instant::now();
    f()?;
    Ok(s.elapsed().as_secs_f64() * 1e3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median times of `fused` and `refr` and the median of their per-pair ratios, over `reps`
/// pairs run back to back. On a shared machine a burst of other work slows whatever runs
/// during it: timing all the fused runs and then all the reference runs lets one burst skew the
/// ratio (a CI run measured the CfC's 1.5–1.8× as 1.19×), while a burst within one pair moves
/// only that pair's ratio, which the median drops.
fn paired_ms(
    fused: &mut dyn FnMut() -> Result<()>,
    refr: &mut dyn FnMut() -> Result<()>,
    reps: usize,
) -> Result<(f64, f64, f64)> {
    let (mut f, mut r, mut ratio) = (
        Vec::with_capacity(reps),
        Vec::with_capacity(reps),
        Vec::with_capacity(reps),
    );
    for _ in 0..reps.max(1) {
        let rm = time_ms(refr)?;
        let fm = time_ms(fused)?;
        ratio.push(rm / fm.max(1e-9));
        f.push(fm);
        r.push(rm);
    }
    Ok((median(f), median(r), median(ratio)))
}

fn allocs(f: &mut dyn FnMut() -> Result<()>) -> Result<u64> {
    let a = alloc::allocation_count();
    f()?;
    Ok(alloc::allocation_count() - a)
}

fn measure(
    name: &str,
    fused: &mut dyn FnMut() -> Result<()>,
    refr: &mut dyn FnMut() -> Result<()>,
    reps: usize,
) -> Result<ComponentReport> {
    let fp = peak_above(fused)?;
    let rp = peak_above(refr)?;
    let fa = allocs(fused)?;
    let (fm, rm, speedup) = paired_ms(fused, refr, reps)?;
    Ok(ComponentReport {
        name: name.to_string(),
        fused_peak_bytes: fp,
        reference_peak_bytes: rp,
        peak_ratio: fp as f64 / rp.max(1) as f64,
        fused_ms: fm,
        reference_ms: rm,
        speedup,
        fused_allocs: fa,
    })
}

/// LIF rate form (T = 8, N = 65,536), SpikingEncoder and attention at lm-small sizes, the
/// attention core at L = 1024, the CfC forms, the LIF surrogates and the current-based LIF.
pub fn measure_all(reps: usize) -> Result<Vec<ComponentReport>> {
    let lif_cfg = LifConfig {
        beta: 0.95,
        threshold: 1.0,
        ..LifConfig::default()
    };
    let dev = Device::Cpu;
    let mut out = Vec::new();

    let x =
        Var::from_tensor(&SeededRng::new(1).normal_tensor(65_536, 0.8, 1.0, DType::F32, &dev)?)?;
    out.push(measure(
        "lif-rate T=8 N=65536",
        &mut || {
            lif::const_rate(x.as_tensor(), 8, &lif_cfg, None)?
                .0
                .sum_all()?
                .backward()?;
            Ok(())
        },
        &mut || {
            reference::const_rate(x.as_tensor(), 8, &lif_cfg, None)?
                .0
                .sum_all()?
                .backward()?;
            Ok(())
        },
        reps,
    )?);

    let cfg = SpikingEncoderConfig::new(128, 64)
        .with_steps(4)
        .with_lif(lif_cfg)
        .with_dropout(0.2);
    let vm = VarMap::new();
    let enc = SpikingEncoder::new(
        &cfg,
        SeededInit::var_builder(&vm, SeededRng::new(2), DType::F32, &dev),
    )?;
    let xe = SeededRng::new(3).normal_tensor((512, 128), 0.0, 1.0, DType::F32, &dev)?;
    out.push(measure(
        "encoder N=512 D=128 S=64 T=4",
        &mut || {
            enc.rate(&xe, &mut Mode::Eval)?
                .spikes
                .sum_all()?
                .backward()?;
            Ok(())
        },
        &mut || {
            composed(|| {
                enc.rate(&xe, &mut Mode::Eval)?
                    .spikes
                    .sum_all()?
                    .backward()?;
                Ok(())
            })
        },
        reps,
    )?);

    let acfg = AttentionConfig::new(128, 4)
        .with_spike_steps(8)
        .with_lif(lif_cfg);
    let vm = VarMap::new();
    let att = MultiHeadSpikingAttention::new(
        &acfg,
        SeededInit::var_builder(&vm, SeededRng::new(4), DType::F32, &dev),
    )?;
    let xa = SeededRng::new(5).normal_tensor((8, 64, 128), 0.0, 1.0, DType::F32, &dev)?;
    out.push(measure(
        "attention B=8 L=64 D=128 h=4 steps=8",
        &mut || {
            att.forward(&xa)?.sum_all()?.backward()?;
            Ok(())
        },
        &mut || {
            composed(|| {
                att.forward(&xa)?.sum_all()?.backward()?;
                Ok(())
            })
        },
        reps,
    )?);

    // The attention core alone at a long sequence: the tiled op against the materialised
    // scores (design §2.5.1), causal, one head's [L, L] f32 scores 4 MiB; heads merged as the
    // layer merges them.
    let heads = |seed| -> Result<Var> {
        let t = SeededRng::new(seed).normal_tensor((1, 4, 1024, 32), 0.0, 1.0, DType::F32, &dev)?;
        Ok(Var::from_tensor(&t)?)
    };
    let (q, k, v) = (heads(10)?, heads(11)?, heads(12)?);
    let scale = 1.0 / 32f64.sqrt();
    out.push(measure(
        "attention-core tiled vs materialized B=1 h=4 L=1024 dh=32",
        &mut || {
            fused::attention(&q, &k, &v, scale, true)?
                .transpose(1, 2)?
                .reshape((1, 1024, 128))?
                .sum_all()?
                .backward()?;
            Ok(())
        },
        &mut || {
            fused::reference::attention(&q, &k, &v, scale, true)?
                .transpose(1, 2)?
                .reshape((1, 1024, 128))?
                .sum_all()?
                .backward()?;
            Ok(())
        },
        reps,
    )?);

    let ccfg = CfcConfig::new(64, 64)
        .with_backbone(128, 1)
        .with_mode(CfcMode::Default);
    let vm = VarMap::new();
    let cell = Cfc::new(
        &ccfg,
        SeededInit::var_builder(&vm, SeededRng::new(6), DType::F32, &dev),
    )?;
    let s = SeededRng::new(7).normal_tensor((8, 64, 64), 0.0, 1.0, DType::F32, &dev)?;
    let h0 = Tensor::zeros((8, 64), DType::F32, &dev)?;
    out.push(measure(
        "cfc-seq B=8 L=64 U=128 H=64",
        &mut || {
            cell.sequence_from_projection(&cell.input_projection(&s)?, &h0)?
                .sum_all()?
                .backward()?;
            Ok(())
        },
        &mut || {
            lsnn_layers::cfc::reference::sequence_from_projection(
                &cell,
                &cell.input_projection(&s)?,
                &h0,
            )?
            .sum_all()?
            .backward()?;
            Ok(())
        },
        reps,
    )?);

    // The same cell with a time span per row and step (an op input, not folded weights).
    let ts = SeededRng::new(8).uniform_tensor((8, 64), 0.5, 1.5, DType::F32, &dev)?;
    let st = CfcState { h: h0.clone() };
    out.push(measure(
        "cfc-seq timespans B=8 L=64 U=128 H=64",
        &mut || {
            cell.forward_timespans(&s, &ts, Some(&st))?
                .0
                .sum_all()?
                .backward()?;
            Ok(())
        },
        &mut || {
            composed(|| {
                cell.forward_timespans(&s, &ts, Some(&st))?
                    .0
                    .sum_all()?
                    .backward()?;
                Ok(())
            })
        },
        reps,
    )?);

    // The wired cell over the NCP of an "ncp" lm-small block: AutoNCP(64 units, 19 motor).
    let wiring = AutoNcpConfig::new(64, 19).build(64)?;
    let vm = VarMap::new();
    let wired = WiredCfc::new(
        &WiredCfcConfig::new(wiring),
        SeededInit::var_builder(&vm, SeededRng::new(9), DType::F32, &dev),
    )?;
    let wst = CfcState { h: h0.clone() };
    out.push(measure(
        "cfc-wired AutoNCP(64,19) B=8 L=64",
        &mut || {
            wired.states(&s, None, Some(&wst))?.sum_all()?.backward()?;
            Ok(())
        },
        &mut || {
            composed(|| {
                wired.states(&s, None, Some(&wst))?.sum_all()?.backward()?;
                Ok(())
            })
        },
        reps,
    )?);
    out.extend(lif_spikes(&lif_cfg, reps)?);
    out.extend(synaptic_spikes(reps)?);
    out.extend(alpha_spikes(reps)?);
    out.extend(alif_spikes(reps)?);
    out.extend(rleaky_spikes(reps)?);
    Ok(out)
}

/// The multi-step LIF form at T = 8, N = 512 × 128: each surrogate fused against its per-step
/// reference, and learned per-feature β and θ against the fixed parameters (the "reference"
/// of that entry is the fixed fused op, so its speedup is fixed / learned time).
fn lif_spikes(base: &LifConfig, reps: usize) -> Result<Vec<ComponentReport>> {
    let dev = Device::Cpu;
    let xs = Var::from_tensor(&SeededRng::new(11).normal_tensor(
        (8, 512, 128),
        0.5,
        1.0,
        DType::F32,
        &dev,
    )?)?;
    let x = xs.as_tensor();
    let mut out = Vec::new();
    for s in Surrogate::all_defaults() {
        let cfg = base.with_surrogate(s);
        let kind = serde_json::to_value(s).map_err(|e| crate::BenchError::Other(e.to_string()))?
            ["kind"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        out.push(measure(
            &format!("lif-spikes {kind} T=8 N=65536"),
            &mut || {
                lif::spikes(x, &cfg, None)?.0.sum_all()?.backward()?;
                Ok(())
            },
            &mut || {
                reference::spikes(x, &cfg, None)?.0.sum_all()?.backward()?;
                Ok(())
            },
            reps,
        )?);
    }
    let var = |v: f32| -> Result<Tensor> {
        Ok(Var::from_tensor(&Tensor::full(v, 128, &dev)?)?
            .as_tensor()
            .clone())
    };
    let p = LifParams::new(var(base.beta as f32)?, var(base.threshold as f32)?);
    out.push(measure(
        "lif-spikes learned per-feature vs fixed T=8 N=65536",
        &mut || {
            lif::spikes_with(x, base, Some(&p), None)?
                .0
                .sum_all()?
                .backward()?;
            Ok(())
        },
        &mut || {
            lif::spikes(x, base, None)?.0.sum_all()?.backward()?;
            Ok(())
        },
        reps,
    )?);
    Ok(out)
}

/// An elementwise neuron's multi-step spikes at T = 8, N = 512 × 128 (forward + backward of
/// their sum): `fused` against `reference`, its per-step composition, and against fused `Leaky`
/// on the same currents (the "reference" of that entry is `Leaky`, so its speedup is
/// Leaky / neuron time). Entries `{name}-spikes T=8 N=65536` and `{name}-spikes vs leaky …`.
fn elementwise_spikes(
    name: &str,
    fused: &dyn Fn(&Tensor) -> Result<Tensor>,
    reference: &dyn Fn(&Tensor) -> Result<Tensor>,
    reps: usize,
) -> Result<Vec<ComponentReport>> {
    let xs = Var::from_tensor(&SeededRng::new(21).normal_tensor(
        (8, 512, 128),
        0.3,
        1.0,
        DType::F32,
        &Device::Cpu,
    )?)?;
    let x = xs.as_tensor();
    let leaky = LifConfig::new(0.95);
    let back = |t: Tensor| -> Result<()> {
        t.sum_all()?.backward()?;
        Ok(())
    };
    Ok(vec![
        measure(
            &format!("{name}-spikes T=8 N=65536"),
            &mut || back(fused(x)?),
            &mut || back(reference(x)?),
            reps,
        )?,
        measure(
            &format!("{name}-spikes vs leaky T=8 N=65536"),
            &mut || back(fused(x)?),
            &mut || back(lif::spikes(x, &leaky, None)?.0),
            reps,
        )?,
    ])
}

/// The current-based LIF (α 0.9, β 0.95, fast_sigmoid), see [`elementwise_spikes`].
fn synaptic_spikes(reps: usize) -> Result<Vec<ComponentReport>> {
    let cfg = SynapticConfig::new(0.9, 0.95);
    elementwise_spikes(
        "synaptic",
        &|x| Ok(synaptic::spikes_with(x, &cfg, None, None)?.0),
        &|x| Ok(synaptic::reference::spikes_with(x, &cfg, None, None)?.0),
        reps,
    )
}

/// The alpha neuron (α 0.95, β 0.9, reset to zero, fast_sigmoid), see [`elementwise_spikes`].
fn alpha_spikes(reps: usize) -> Result<Vec<ComponentReport>> {
    let cfg = AlphaConfig::new(0.95, 0.9);
    elementwise_spikes(
        "alpha",
        &|x| Ok(alpha::spikes_with(x, &cfg, None, None)?.0),
        &|x| Ok(alpha::reference::spikes_with(x, &cfg, None, None)?.0),
        reps,
    )
}

/// The adaptive LIF (α 0.9, β 0.8, ρ 0.9, J 0.2, norse's SuperSpike), see
/// [`elementwise_spikes`].
fn alif_spikes(reps: usize) -> Result<Vec<ComponentReport>> {
    let cfg = AlifConfig::new(0.9, 0.8).with_adaptation(0.9, 0.2);
    elementwise_spikes(
        "alif",
        &|x| Ok(alif::spikes_with(x, &cfg, None, None)?.0),
        &|x| Ok(alif::reference::spikes_with(x, &cfg, None, None)?.0),
        reps,
    )
}

/// The recurrent LIF's multi-step spikes, fast_sigmoid, the recurrent weights trained: one-to-one
/// at T = 8, N = 512 × 128 against its per-step reference and against fused `Leaky` (that
/// entry's speedup is Leaky / RLeaky time), and all-to-all at T = 8, batch 256 × width 256
/// against its reference.
fn rleaky_spikes(reps: usize) -> Result<Vec<ComponentReport>> {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(21);
    let xs = Var::from_tensor(&rng.normal_tensor((8, 512, 128), 0.3, 1.0, DType::F32, &dev)?)?;
    let x = xs.as_tensor();
    let o2o = RLeakyConfig::new(0.95, Connection::OneToOne);
    let v = Var::from_tensor(&Tensor::full(0.2f32, 128, &dev)?)?;
    let rec = Recurrent::OneToOne {
        v: v.as_tensor().clone(),
    };
    let leaky = LifConfig::new(0.95);
    let fused = |x: &Tensor| -> Result<()> {
        rleaky::spikes_with(x, &o2o, &rec, None, None)?
            .0
            .sum_all()?
            .backward()?;
        Ok(())
    };
    let xa = Var::from_tensor(&rng.normal_tensor((8, 256, 256), 0.3, 1.0, DType::F32, &dev)?)?;
    let bound = 1.0 / 16.0;
    let w = Var::from_tensor(&rng.uniform_tensor((256, 256), -bound, bound, DType::F32, &dev)?)?;
    let b = Var::from_tensor(&rng.uniform_tensor(256, -bound, bound, DType::F32, &dev)?)?;
    let a2a = RLeakyConfig::new(0.95, Connection::AllToAll);
    let dense = Recurrent::AllToAll {
        weight: w.as_tensor().clone(),
        bias: Some(b.as_tensor().clone()),
    };
    Ok(vec![
        measure(
            "rleaky-o2o-spikes T=8 N=65536",
            &mut || fused(x),
            &mut || {
                rleaky::reference::spikes_with(x, &o2o, &rec, None, None)?
                    .0
                    .sum_all()?
                    .backward()?;
                Ok(())
            },
            reps,
        )?,
        measure(
            "rleaky-o2o-spikes vs leaky T=8 N=65536",
            &mut || fused(x),
            &mut || {
                lif::spikes(x, &leaky, None)?.0.sum_all()?.backward()?;
                Ok(())
            },
            reps,
        )?,
        measure(
            "rleaky-a2a-spikes T=8 B=256 F=256",
            &mut || {
                rleaky::spikes_with(xa.as_tensor(), &a2a, &dense, None, None)?
                    .0
                    .sum_all()?
                    .backward()?;
                Ok(())
            },
            &mut || {
                rleaky::reference::spikes_with(xa.as_tensor(), &a2a, &dense, None, None)?
                    .0
                    .sum_all()?
                    .backward()?;
                Ok(())
            },
            reps,
        )?,
    ])
}
