//! Leak cases of the layers alone: encoder, block and attention, forward and backward, and a
//! stateful neuron (current-based, recurrent, adaptive) trained over a stream in chunks.

use super::{lif, normal, vb, Leak, Leaker};
use crate::{Iteration, Result};
use candle_core::{Module, Tensor};
use candle_nn::VarMap;
use lsnn_layers::alif::{Alif, AlifConfig, AlifState};
use lsnn_layers::attention::{AttentionConfig, MultiHeadSpikingAttention};
use lsnn_layers::block::{BlockConfig, HybridLiquidSpikingBlock};
use lsnn_layers::cfc::CfcMode;
use lsnn_layers::encoder::{SpikingEncoder, SpikingEncoderConfig};
use lsnn_layers::lif::Learn;
use lsnn_layers::nn::Linear;
use lsnn_layers::rleaky::{Connection, RLeaky, RLeakyConfig, RLeakyState};
use lsnn_layers::synaptic::{Synaptic, SynapticConfig, SynapticState};
use lsnn_layers::{Mode, SeededRng};

pub(crate) fn encoder_case(backward: bool, leak: Leak) -> Result<Iteration> {
    let cfg = SpikingEncoderConfig::new(64, 32)
        .with_steps(4)
        .with_lif(lif())
        .with_dropout(0.2);
    let vm = VarMap::new();
    let enc = SpikingEncoder::new(&cfg, vb(&vm, 1))?;
    let x = normal(&[32, 64], 2)?;
    let mut rng = SeededRng::new(3);
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        let out = enc.rate(&x, &mut Mode::Train(&mut rng))?;
        if backward {
            let g = out.spikes.sum_all()?.backward()?;
            drop(g);
        }
        leaker.leak(Some(&out.spikes))
    }))
}

pub(crate) fn block_case(backward: bool, leak: Leak) -> Result<Iteration> {
    let cfg = BlockConfig::new(64, 32, 32)
        .with_spike_steps(4)
        .with_lif(lif())
        .with_backbone(64, 1)
        .with_cfc_mode(CfcMode::Default);
    let vm = VarMap::new();
    let block = HybridLiquidSpikingBlock::new(&cfg, vb(&vm, 4))?;
    let x = normal(&[2, 16, 64], 5)?;
    let mut rng = SeededRng::new(6);
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        let (out, state) = block.forward(&x, None, &mut Mode::Train(&mut rng))?;
        if backward {
            let g = (out.sum_all()? + state.h.sum_all()?)?.backward()?;
            drop(g);
        }
        leaker.leak(Some(&out))
    }))
}

pub(crate) fn attention_case(backward: bool, leak: Leak) -> Result<Iteration> {
    let cfg = AttentionConfig::new(64, 4)
        .with_spike_steps(4)
        .with_lif(lif());
    let vm = VarMap::new();
    let att = MultiHeadSpikingAttention::new(&cfg, vb(&vm, 7))?;
    let x = normal(&[2, 16, 64], 8)?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        let out = att.forward(&x)?;
        if backward {
            let g = out.sum_all()?.backward()?;
            drop(g);
        }
        leaker.leak(Some(&out))
    }))
}

/// A stateful neuron layer the chunk cases train: one chunk from a carried state, the final
/// state's membrane, and the state without its graph.
trait Chunked: Send + 'static {
    type State: Send + 'static;
    fn run(&self, x: &Tensor, state: Option<&Self::State>) -> Result<(Tensor, Self::State)>;
    fn mem(state: &Self::State) -> &Tensor;
    fn detach(state: &Self::State) -> Self::State;
}

impl Chunked for Synaptic {
    type State = SynapticState;
    fn run(&self, x: &Tensor, s: Option<&SynapticState>) -> Result<(Tensor, SynapticState)> {
        Ok(self.forward_state(x, s)?)
    }
    fn mem(s: &SynapticState) -> &Tensor {
        &s.mem
    }
    fn detach(s: &SynapticState) -> SynapticState {
        s.detach()
    }
}

impl Chunked for RLeaky {
    type State = RLeakyState;
    fn run(&self, x: &Tensor, s: Option<&RLeakyState>) -> Result<(Tensor, RLeakyState)> {
        Ok(self.forward_state(x, s)?)
    }
    fn mem(s: &RLeakyState) -> &Tensor {
        &s.mem
    }
    fn detach(s: &RLeakyState) -> RLeakyState {
        s.detach()
    }
}

impl Chunked for Alif {
    type State = AlifState;
    fn run(&self, x: &Tensor, s: Option<&AlifState>) -> Result<(Tensor, AlifState)> {
        Ok(self.forward_state(x, s)?)
    }
    fn mem(s: &AlifState) -> &Tensor {
        &s.mem
    }
    fn detach(s: &AlifState) -> AlifState {
        s.detach()
    }
}

/// A linear layer (32 → 64) into the neuron layer `make` builds (its variables from the builder
/// given), trained on a stream cut into chunks of 8 steps × 16 rows, one chunk per iteration:
/// forward from the carried state, a loss on the spikes and the final membrane, backward, an SGD
/// update of every variable in place, and the final state carried into the next chunk —
/// detached, or with its graph under [`Leak::CarriedState`] (each iteration's backward then runs
/// through every earlier chunk as well, and their graphs stay alive). `seed` draws the weights,
/// `seed + 1` the stream.
fn chunks_case<L: Chunked>(
    leak: Leak,
    seed: u64,
    make: impl FnOnce(candle_nn::VarBuilder<'static>) -> Result<L>,
) -> Result<Iteration> {
    let vm = VarMap::new();
    let vb = vb(&vm, seed);
    let fc = Linear::new(32, 64, vb.pp("fc"))?;
    let layer = make(vb)?;
    let x = normal(&[8, 16, 32], seed + 1)?;
    let vars = vm.all_vars();
    let mut state: Option<L::State> = None;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        let cur = fc.forward(&x)?;
        let (spikes, next) = layer.run(&cur, state.as_ref())?;
        let loss = (spikes.mean_all()? + L::mem(&next).sqr()?.mean_all()?)?;
        let grads = loss.backward()?;
        for v in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - g.affine(1e-3, 0.0)?)?)?;
            }
        }
        drop(grads);
        state = Some(match leak {
            Leak::CarriedState => next,
            _ => L::detach(&next),
        });
        leaker.leak(Some(&spikes))
    }))
}

/// [`chunks_case`] with a current-based LIF layer (α per neuron, β and θ shared, all learned).
pub(crate) fn synaptic_chunks_case(leak: Leak) -> Result<Iteration> {
    let cfg = SynapticConfig::new(0.8, 0.9)
        .with_threshold(0.5)
        .with_learn(Learn::PerNeuron, Learn::Shared, Learn::Shared);
    chunks_case(leak, 11, |vb| {
        Ok(Synaptic::learnable(&cfg, 64, vb.pp("syn"))?)
    })
}

/// [`chunks_case`] with an all-to-all recurrent LIF layer (W, b, β per neuron and θ shared, all
/// learned): the state is the last spikes and the membrane, and the fused op keeps each chunk's
/// membranes for its backward; they must go with the chunk's graph.
pub(crate) fn rleaky_chunks_case(leak: Leak) -> Result<Iteration> {
    let cfg = RLeakyConfig::new(0.9, Connection::AllToAll)
        .with_threshold(0.5)
        .with_learn(Learn::PerNeuron, Learn::Shared);
    chunks_case(leak, 13, |vb| Ok(RLeaky::new(&cfg, 64, vb.pp("rlif"))?))
}

/// [`chunks_case`] with an adaptive LIF layer (α per neuron, β and θ shared, all learned; the
/// threshold rises by 0.3 per spike and decays with 0.9): the state is (syn, mem, adapt), and
/// the adaptation's threshold carries a chunk's spikes into the next.
pub(crate) fn alif_chunks_case(leak: Leak) -> Result<Iteration> {
    let cfg = AlifConfig::new(0.8, 0.8)
        .with_threshold(0.5)
        .with_adaptation(0.9, 0.3)
        .with_learn(Learn::PerNeuron, Learn::Shared, Learn::Shared);
    chunks_case(leak, 15, |vb| Ok(Alif::learnable(&cfg, 64, vb.pp("alif"))?))
}
