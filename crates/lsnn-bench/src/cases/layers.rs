//! Leak cases of the layers alone: encoder, block and attention, forward and backward.

use super::{lif, normal, vb, Leak, Leaker};
use crate::{Iteration, Result};
use candle_core::Module;
use candle_nn::VarMap;
use lsnn_layers::attention::{AttentionConfig, MultiHeadSpikingAttention};
use lsnn_layers::block::{BlockConfig, HybridLiquidSpikingBlock};
use lsnn_layers::cfc::CfcMode;
use lsnn_layers::encoder::{SpikingEncoder, SpikingEncoderConfig};
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
