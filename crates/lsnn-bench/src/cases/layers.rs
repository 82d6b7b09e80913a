//! Leak cases of the layers alone: encoder, block and attention, forward and backward, and a
//! stateful neuron (current-based, recurrent) trained over a stream in chunks.

use super::{lif, normal, vb, Leak, Leaker};
use crate::{Iteration, Result};
use candle_core::Module;
use candle_nn::VarMap;
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

/// A linear layer into a current-based LIF layer (α per neuron, β and θ shared, all learned)
/// trained on a stream cut into chunks of 8 steps, one chunk per iteration: forward from the
/// carried state, a loss on the spikes and the final membrane, backward, an SGD update of every
/// variable in place, and the final state carried into the next chunk — detached, or with its
/// graph under [`Leak::CarriedState`] (each iteration's backward then runs through every earlier
/// chunk as well, and their graphs stay alive).
pub(crate) fn synaptic_chunks_case(leak: Leak) -> Result<Iteration> {
    let cfg = SynapticConfig::new(0.8, 0.9)
        .with_threshold(0.5)
        .with_learn(Learn::PerNeuron, Learn::Shared, Learn::Shared);
    let vm = VarMap::new();
    let vb = vb(&vm, 11);
    let fc = Linear::new(32, 64, vb.pp("fc"))?;
    let layer = Synaptic::learnable(&cfg, 64, vb.pp("syn"))?;
    let x = normal(&[8, 16, 32], 12)?;
    let vars = vm.all_vars();
    let mut state: Option<SynapticState> = None;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        let cur = fc.forward(&x)?;
        let (spikes, next) = layer.forward_state(&cur, state.as_ref())?;
        let loss = (spikes.mean_all()? + next.mem.sqr()?.mean_all()?)?;
        let grads = loss.backward()?;
        for v in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - g.affine(1e-3, 0.0)?)?)?;
            }
        }
        drop(grads);
        state = Some(match leak {
            Leak::CarriedState => next,
            _ => next.detach(),
        });
        leaker.leak(Some(&spikes))
    }))
}

/// A linear layer into an all-to-all recurrent LIF layer (W, b, β per neuron and θ shared, all
/// learned) trained on a stream cut into chunks of 8 steps, as [`synaptic_chunks_case`]: the
/// state (last spikes and membrane) carried detached, or with its graph under
/// [`Leak::CarriedState`]. The fused op keeps each chunk's membranes for its backward; they
/// must go with the chunk's graph.
pub(crate) fn rleaky_chunks_case(leak: Leak) -> Result<Iteration> {
    let cfg = RLeakyConfig::new(0.9, Connection::AllToAll)
        .with_threshold(0.5)
        .with_learn(Learn::PerNeuron, Learn::Shared);
    let vm = VarMap::new();
    let vb = vb(&vm, 13);
    let fc = Linear::new(32, 64, vb.pp("fc"))?;
    let layer = RLeaky::new(&cfg, 64, vb.pp("rlif"))?;
    let x = normal(&[8, 16, 32], 14)?;
    let vars = vm.all_vars();
    let mut state: Option<RLeakyState> = None;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        let cur = fc.forward(&x)?;
        let (spikes, next) = layer.forward_state(&cur, state.as_ref())?;
        let loss = (spikes.mean_all()? + next.mem.sqr()?.mean_all()?)?;
        let grads = loss.backward()?;
        for v in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - g.affine(1e-3, 0.0)?)?)?;
            }
        }
        drop(grads);
        state = Some(match leak {
            Leak::CarriedState => next,
            _ => next.detach(),
        });
        leaker.leak(Some(&spikes))
    }))
}
