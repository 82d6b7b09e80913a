//! Leak cases of the language model's training path: the training step (dense and wired CfC, LTC),
//! the EMA, streaming generation, checkpoints and a whole trainer epoch.

use super::{device, tiny_config, Leak, Leaker, ScratchDir};
use crate::{BenchError, Iteration, Result};
use candle_core::{DType, Tensor, Var};
use lsnn_layers::{init_model, LanguageModel, ModelConfig, SeededRng};
use lsnn_memory::MemoryManager;
use lsnn_train::optim::Ema;
use lsnn_train::{RunConfig, TrainConfig};
use std::collections::BTreeMap;

/// Model, its variables and the config of the training-path cases.
type Training = (LanguageModel, Vec<(String, Var)>, ModelConfig);

pub(crate) fn tiny_training() -> Result<Training> {
    let RunConfig { model: cfg, train } = tiny_config();
    let (model, vm) = init_model(&cfg, SeededRng::new(train.seed), &device()?)?;
    let vars = lsnn_layers::named_vars(&vm);
    Ok((model, vars, cfg))
}

pub(crate) fn train_step_case(leak: Leak) -> Result<Iteration> {
    // The design §9.1 step (the one `lsnn bench` and the gate measure) on the tiny LM.
    let mut bench = lsnn_train::workload::StepBench::new_on(&tiny_config(), &device()?)?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |i| {
        bench.train_step(i, false)?;
        leaker.leak(None)
    }))
}

/// The design §9.1 step on the tiny LM with its config edited.
fn edited_train_step_case(leak: Leak, edit: impl FnOnce(&mut ModelConfig)) -> Result<Iteration> {
    let mut cfg = tiny_config();
    edit(&mut cfg.model);
    let mut bench = lsnn_train::workload::StepBench::new_on(&cfg, &device()?)?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |i| {
        bench.train_step(i, false)?;
        leaker.leak(None)
    }))
}

pub(crate) fn ncp_train_step_case(leak: Leak) -> Result<Iteration> {
    // The wired CfC over an AutoNCP wiring of the liquid units.
    edited_train_step_case(leak, |m| m.liquid_backbone = "ncp".into())
}

pub(crate) fn ltc_train_step_case(leak: Leak) -> Result<Iteration> {
    // The LTC (fully connected, explicit constraint: the clamp after every step included).
    edited_train_step_case(leak, |m| {
        m.liquid_backbone = "ltc".into();
        m.ltc_constraint = Some(lsnn_layers::ltc::LtcConstraint::Explicit);
    })
}

pub(crate) fn tbptt_train_step_case(leak: Leak) -> Result<Iteration> {
    // Chunks of 4 positions (design §2.6.2).
    edited_train_step_case(leak, |m| m.tbptt = Some(4))
}

pub(crate) fn auto_probe_case(leak: Leak) -> Result<Iteration> {
    // `shard_rows: "auto"`'s probes (design §3.3.1): steps of 1, 2 and 4 rows on a batch of 4,
    // under a budget every size fits, so each iteration runs all of them.
    let (model, vars, cfg) = tiny_training()?;
    let rows = tiny_config().train.batch_size;
    let mut draw = SeededRng::new(5);
    let bytes = std::num::NonZeroU64::new(256).expect("256 is not zero");
    let ids: Vec<u32> = (0..rows * (cfg.sequence_length + 1))
        .map(|_| draw.below(bytes) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (rows, cfg.sequence_length + 1), &device()?)?;
    let rng = SeededRng::new(9);
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        let sizing = lsnn_train::shard::choose_shard_rows(&model, &ids, &rng, &vars, u64::MAX / 4)?;
        if sizing.rows != rows {
            return Err(BenchError::Other(format!(
                "auto chose {} rows under an unlimited budget; expected the whole batch of {rows}",
                sizing.rows
            )));
        }
        leaker.leak(None)
    }))
}

pub(crate) fn ema_case(leak: Leak) -> Result<Iteration> {
    let (_model, vars, _cfg) = tiny_training()?;
    let mut ema = Ema::new(&vars, 0.999)?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        ema.update(&vars)?;
        leaker.leak(None)
    }))
}

pub(crate) fn generation_case(leak: Leak) -> Result<Iteration> {
    let (model, _vars, cfg) = tiny_training()?;
    let mut state = model.new_state(1)?;
    let mut token = Tensor::new(&[10u32], &device()?)?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        if state.position() == cfg.max_position_embeddings {
            state = model.new_state(1)?;
        }
        let logits = model.step(&token, &mut state)?;
        token = logits
            .argmax(candle_core::D::Minus1)?
            .to_dtype(DType::U32)?;
        leaker.leak(None)
    }))
}

pub(crate) fn checkpoint_case(leak: Leak) -> Result<Iteration> {
    let (_model, vars, cfg) = tiny_training()?;
    let scratch = ScratchDir::new(&format!("ckpt-{leak:?}"));
    let manager = MemoryManager::cpu();
    let config_json = RunConfig {
        model: cfg,
        train: TrainConfig::default(),
    }
    .to_json()?;
    let mut leaker = Leaker::new(leak)?;
    let mut kept: Vec<Tensor> = Vec::new();
    Ok(Box::new(move |i| {
        let model: BTreeMap<String, Tensor> = vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let state = format!(
            "{{\"step\": {i}, \"config_hash\": \"{}\"}}",
            lsnn_train::checkpoint::config_hash(&config_json)
        );
        let data = lsnn_train::checkpoint::CheckpointData {
            step: i as u64,
            config_json: &config_json,
            state_json: &state,
            model: &model,
            ema: &model,
            optimizer: &BTreeMap::new(),
            metrics_csv: "step\n",
            best: false,
            replace_other_runs: false,
        };
        lsnn_train::checkpoint::save(scratch.path(), &data)?;
        let loaded = lsnn_train::checkpoint::load(scratch.path())?;
        if loaded.model.len() != model.len() {
            return Err(BenchError::Other("checkpoint lost tensors".into()));
        }
        if leak == Leak::SpikeVec {
            // The control keeps 4 KiB (1,024 values) of each loaded checkpoint.
            let t = loaded.model["tok_emb.weight"].flatten_all()?;
            kept.push(t.narrow(0, 0, 1024)?.force_contiguous()?.detach());
        } else {
            leaker.leak(None)?;
        }
        drop(loaded);
        manager.cleanup()?;
        Ok(())
    }))
}

/// A dashboard on a free loopback port, holding at most 8 points a series (so that it is full
/// within the warm-up: what is measured is a full dashboard's steady state), and one page
/// reading its event stream into a fixed buffer until the dashboard closes.
fn dashboard_with_a_page() -> Result<lsnn_train::record::dashboard::Dashboard> {
    use lsnn_train::record::dashboard::{Dashboard, DashboardOptions};
    use std::io::{Read, Write};
    let options = DashboardOptions {
        points: 8,
        ..DashboardOptions::default()
    };
    let board =
        Dashboard::start("127.0.0.1:0", options).map_err(|e| BenchError::Other(e.to_string()))?;
    let mut page = std::net::TcpStream::connect(board.addr())
        .and_then(|mut s| {
            s.write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .map(|()| s)
        })
        .map_err(|e| BenchError::Other(format!("connecting to the dashboard: {e}")))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while matches!(page.read(&mut buf), Ok(n) if n > 0) {}
    });
    // The stream is open before the first epoch.
    let t = std::time::Instant::now();
    while board.clients() == 0 && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if board.clients() == 0 {
        return Err(BenchError::Other(
            "the dashboard's page did not connect in 10 s".into(),
        ));
    }
    Ok(board)
}

pub(crate) fn trainer_epoch_case(leak: Leak) -> Result<Iteration> {
    epoch_case(leak, false)
}

/// [`trainer_epoch_case`] with every event written to the run's own record and to a
/// TensorBoard event file, and shown on a live dashboard that one page streams, as
/// `lsnn train --tensorboard DIR --dashboard` does (design §10).
pub(crate) fn recorded_epoch_case(leak: Leak) -> Result<Iteration> {
    epoch_case(leak, true)
}

fn epoch_case(leak: Leak, recorded: bool) -> Result<Iteration> {
    use lsnn_train::record::run::RunRecorder;
    use lsnn_train::record::tensorboard::TensorBoardRecorder;
    use lsnn_train::{Event, TokenDataset, TrainOptions, Trainer};
    let cfg = tiny_config();
    let text: String = (0..40)
        .map(|i| format!("{i:03} fish swim {}\n", i % 7))
        .collect();
    let tokens: Vec<u32> = text.bytes().map(u32::from).collect();
    let split = tokens.len() * 3 / 4;
    let data = TokenDataset::new(
        tokens[..split].to_vec(),
        tokens[split..].to_vec(),
        cfg.model.sequence_length,
        lsnn_train::DataSource::TextFile {
            path: "<leakcheck>".into(),
            sha256: None,
        },
    )?;
    let scratch = ScratchDir::new(&format!("epoch-{recorded}-{leak:?}"));
    let opts = TrainOptions {
        out_dir: scratch.path().to_path_buf(),
        extra_metric_budget: 0,
        log_every: 1_000_000,
        ..TrainOptions::default()
    };
    let mut trainer: Trainer<LanguageModel, TokenDataset> = Trainer::new(cfg, data, opts)?;
    let mut leaker = Leaker::new(leak)?;
    let mut recorders = match recorded {
        false => None,
        true => {
            let mut record = RunRecorder::create(scratch.path())?;
            let mut tb = TensorBoardRecorder::create(&scratch.path().join("tb"))?;
            // `train_epoch` starts no run: the start event `run` would have sent.
            let start = Event::Start {
                epochs: trainer.config().train.num_epochs,
                batches_per_epoch: 0,
                parameters: 0,
                resumed_at: None,
                baseline: None,
            };
            record.on_event(&start)?;
            tb.on_event(&start)?;
            let mut board = dashboard_with_a_page()?;
            board.on_event(&start);
            Some((record, tb, board))
        }
    };
    Ok(Box::new(move |_| {
        // Named here so that the directory lives (and is removed) with the case.
        let _ = scratch.path();
        let mut failure = None;
        trainer.train_epoch(&mut |e| {
            if let Some((record, tb, board)) = recorders.as_mut() {
                board.on_event(e);
                if let Err(err) = record.on_event(e).and_then(|()| tb.on_event(e)) {
                    failure.get_or_insert(err);
                }
            }
        })?;
        if let Some(err) = failure {
            return Err(err.into());
        }
        // The page has what the epoch sent: the server's per-write buffers are gone when the
        // iteration is measured.
        if let Some((_, _, board)) = recorders.as_ref() {
            if !board.wait_sent(std::time::Duration::from_secs(10)) {
                return Err(BenchError::Other(
                    "the dashboard's page was not sent an epoch's messages in 10 s".into(),
                ));
            }
        }
        leaker.leak(None)
    }))
}
