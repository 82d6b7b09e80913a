//! [`TrainConfig`]: the trainer's settings — optimizer, schedule, EMA, clipping, accumulation,
//! cleanup, early stopping, checkpoint retention, seed and device — apart from any model's.

use crate::error::{Result, TrainError};
use crate::firing::SpikeThresholds;
use crate::shard::ShardRows;
use lsnn_memory::MemoryLimit;
use serde::{Deserialize, Serialize};

/// Whether a smaller or a larger value of the monitored metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MonitorMode {
    /// Lower is better (a loss).
    #[default]
    Min,
    /// Higher is better (an accuracy).
    Max,
}

impl MonitorMode {
    /// True when `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            MonitorMode::Min => a < b,
            MonitorMode::Max => a > b,
        }
    }
}

/// The trainer's settings, with design §9.3's defaults. In JSON a missing field takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// AMSGrad variant of AdamW.
    pub amsgrad: bool,
    /// Global-norm gradient clipping (0 disables).
    pub gradient_clip: f64,
    /// Epochs.
    pub num_epochs: usize,
    /// Linear warm-up steps before cosine decay.
    pub warmup_steps: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// EMA decay of the weights (0 disables the EMA).
    pub ema_decay: f64,
    /// Memory cleanup every this many batches (0: only at epoch ends).
    pub cleanup_every: usize,
    /// Early-stopping patience in epochs without improvement of `monitor` (0 disables).
    pub early_stopping_patience: usize,
    /// The evaluation metric early stopping and the best checkpoint follow (default
    /// `val_loss`).
    pub monitor: String,
    /// Whether `monitor` is better low or high.
    pub monitor_mode: MonitorMode,
    /// Keep the best set by `monitor` beside the latest one (`BEST` names it).
    pub keep_best: bool,
    /// Seed of every random draw (initialisation, dropout, data order).
    pub seed: u64,
    /// `"cpu"`, `"cuda"` or `"cuda:N"`.
    pub device: String,
    /// Mixed precision: on a CPU with AVX-512 BF16 the fused linears' products take bf16
    /// operands and sum in f32, everything else staying f32 (design §9.5); elsewhere a notice
    /// and f32.
    pub mixed_precision: bool,
    /// The sequence tasks' inputs as spikes (`{"kind": "rate", "num_steps": 8}`, or `latency`,
    /// `delta`; design §8.4); absent: the features as they are. The command line passes it to
    /// the data it builds; a program passes it to `SequenceData::from_file` or `builtin` itself,
    /// and the trainer refuses a config whose setting is not its data's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spike_encoding: Option<lsnn_layers::spikegen::SpikeEncoding>,
    /// Most rows per shard of a training batch (default 4), or `"auto"`: the largest that fits
    /// the memory budget, from probe steps' measured peaks (design §3.3.1). The shards set a
    /// step's peak memory; the optimisation batch stays `batch_size`. Different shard sizes
    /// draw different dropout masks, so a run's numbers follow this setting (not the threads).
    #[serde(skip_serializing_if = "ShardRows::is_default")]
    pub shard_rows: ShardRows,
    /// Live memory at or past which the trainer raises a warning (design §10.2): bytes (`4096`,
    /// `"512MiB"`, `"1.5GiB"`) or a percentage of the memory budget when the run has one, else
    /// of the device's memory (`"80%"`); absent: no warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_warn: Option<SizeSetting>,
    /// The same for the critical alert, which by default also runs a cleanup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_critical: Option<SizeSetting>,
    /// A level is left only once usage is below (1 − this) × its threshold (default 0.05), so
    /// that usage hovering at a threshold raises one alert, not one per batch.
    #[serde(skip_serializing_if = "is_default_hysteresis")]
    pub memory_alert_hysteresis: f64,
    /// Run the memory manager's cleanup when usage rises to the critical level (default true).
    #[serde(skip_serializing_if = "is_true")]
    pub cleanup_on_critical: bool,
    /// Measure every spiking layer's firing over the validation set at each epoch end and warn
    /// about silent and saturated layers (design §10.3; default true).
    #[serde(skip_serializing_if = "is_true")]
    pub spike_stats: bool,
    /// A layer firing below this mean rate (spikes per neuron per step) is silent (default
    /// 0.001).
    #[serde(skip_serializing_if = "SpikeThresholds::is_default_silent_rate")]
    pub spike_silent_rate: f64,
    /// A layer with at least this fraction of neurons that never fired is silent too (default
    /// 0.9).
    #[serde(skip_serializing_if = "SpikeThresholds::is_default_dead_fraction")]
    pub spike_dead_fraction: f64,
    /// A layer firing above this mean rate is saturated (default 0.9).
    #[serde(skip_serializing_if = "SpikeThresholds::is_default_saturated_rate")]
    pub spike_saturated_rate: f64,
}

fn is_default_hysteresis(h: &f64) -> bool {
    *h == lsnn_memory::DEFAULT_HYSTERESIS
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A memory size as a config writes it: bytes (`4096`, `"512MiB"`, `"1.5G"`) or a percentage
/// (`"80%"`), kept as written so that a saved config shows what the user chose.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeSetting {
    text: String,
    limit: MemoryLimit,
}

impl SizeSetting {
    /// Parses `text` (lsnn-memory's `parse_size` rules).
    pub fn parse(text: &str) -> std::result::Result<Self, lsnn_memory::MemoryError> {
        Ok(SizeSetting {
            text: text.trim().to_owned(),
            limit: lsnn_memory::parse_size(text)?,
        })
    }

    /// The limit.
    pub fn limit(&self) -> MemoryLimit {
        self.limit
    }

    /// As written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Serialize for SizeSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.limit {
            // A plain byte count goes back out as the number it was read from.
            MemoryLimit::Bytes(n) if self.text.bytes().all(|b| b.is_ascii_digit()) => {
                s.serialize_u64(n)
            }
            _ => s.serialize_str(&self.text),
        }
    }
}

impl<'de> Deserialize<'de> for SizeSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            // `--set memory_critical=1e9` and files written by Python give byte counts as floats.
            Float(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d).map_err(|_| {
            <D::Error as serde::de::Error>::custom(
                "expected a memory size: a byte count, or a string such as \"512MiB\" or \"80%\"",
            )
        })? {
            Raw::Bytes(n) => n.to_string(),
            Raw::Float(f)
                if f.is_finite() && f.fract() == 0.0 && f >= 1.0 && f < u64::MAX as f64 =>
            {
                (f as u64).to_string()
            }
            Raw::Float(f) => {
                return Err(<D::Error as serde::de::Error>::custom(format!(
                    "{f} bytes; expected a whole number of bytes, at least 1"
                )))
            }
            Raw::Text(t) => t,
        };
        SizeSetting::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Default for TrainConfig {
    /// design §9.3's recipe.
    fn default() -> Self {
        TrainConfig {
            batch_size: 8,
            learning_rate: 1e-3,
            weight_decay: 0.01,
            amsgrad: false,
            gradient_clip: 1.0,
            num_epochs: 35,
            warmup_steps: 100,
            gradient_accumulation_steps: 1,
            ema_decay: 0.999,
            cleanup_every: 50,
            early_stopping_patience: 0,
            monitor: "val_loss".into(),
            monitor_mode: MonitorMode::Min,
            keep_best: false,
            seed: 42,
            device: "cpu".into(),
            mixed_precision: false,
            spike_encoding: None,
            shard_rows: ShardRows::default(),
            memory_warn: None,
            memory_critical: None,
            memory_alert_hysteresis: lsnn_memory::DEFAULT_HYSTERESIS,
            cleanup_on_critical: true,
            spike_stats: true,
            spike_silent_rate: SpikeThresholds::DEFAULT.silent_rate,
            spike_dead_fraction: SpikeThresholds::DEFAULT.dead_fraction,
            spike_saturated_rate: SpikeThresholds::DEFAULT.saturated_rate,
        }
    }
}

impl TrainConfig {
    /// The built-in recipe of `task` (design §9.3): [`TrainConfig::default`] for the language
    /// model; for the sequence tasks the same with batches of 32 sequences. Measured on the
    /// event-order task over 35 epochs: at lm-small's batch of 8 it stalls at 66% (and without
    /// dropout collapses to chance after 11 epochs), at 32 it reaches 99.5% — with the default
    /// dropout and label smoothing, or without.
    pub fn for_task(task: lsnn_layers::Task) -> TrainConfig {
        match task {
            lsnn_layers::Task::Llm => TrainConfig::default(),
            _ => TrainConfig {
                batch_size: 32,
                ..TrainConfig::default()
            },
        }
    }
}

/// The largest count a training setting may hold (batch size, epochs, accumulation, warm-up
/// steps, cleanup interval, patience).
pub const MAX_COUNT: usize = 1 << 24;

fn bad(field: &str, message: String) -> TrainError {
    TrainError::Config {
        field: field.into(),
        message,
    }
}

impl TrainConfig {
    /// The field names (the keys of the JSON object).
    pub fn field_names() -> Vec<String> {
        // Every optional field set, so that those a default leaves out are named too.
        let all = TrainConfig {
            spike_encoding: Some(lsnn_layers::spikegen::SpikeEncoding::Delta(
                lsnn_layers::spikegen::DeltaConfig::default(),
            )),
            shard_rows: ShardRows::Auto,
            memory_warn: SizeSetting::parse("1").ok(),
            memory_critical: SizeSetting::parse("2").ok(),
            memory_alert_hysteresis: 0.5,
            cleanup_on_critical: false,
            spike_stats: false,
            spike_silent_rate: 0.5,
            spike_dead_fraction: 0.5,
            spike_saturated_rate: 0.5,
            ..TrainConfig::default()
        };
        match serde_json::to_value(all) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Checks every setting (each count within 1..=[`MAX_COUNT`] where it must be positive, at
    /// most [`MAX_COUNT`] otherwise).
    pub fn validate(&self) -> Result<()> {
        if let Some(enc) = &self.spike_encoding {
            let json = serde_json::to_string(enc).unwrap_or_default();
            enc.validate()
                .map_err(|e| bad("spike_encoding", format!("{json}; {e}")))?;
            let most = lsnn_layers::model::size::MAX_POSITIONS;
            if enc.num_steps() > most {
                return Err(bad(
                    "spike_encoding",
                    format!(
                        "{json}; num_steps {} is past the longest sequence a model takes; \
                         expected at most {most}",
                        enc.num_steps()
                    ),
                ));
            }
        }
        for (name, v) in [
            ("batch_size", self.batch_size),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("num_epochs", self.num_epochs),
        ] {
            if v == 0 {
                return Err(bad(
                    name,
                    "0; expected at least 1 (a run that trains nothing is not a run)".into(),
                ));
            }
        }
        for (name, v) in [
            ("batch_size", self.batch_size),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("num_epochs", self.num_epochs),
            ("warmup_steps", self.warmup_steps),
            ("cleanup_every", self.cleanup_every),
            ("early_stopping_patience", self.early_stopping_patience),
        ] {
            if v > MAX_COUNT {
                return Err(bad(name, format!("{v}; expected at most {MAX_COUNT}")));
            }
        }
        if let ShardRows::Fixed(n) = self.shard_rows {
            if n == 0 || n > MAX_COUNT {
                return Err(bad(
                    "shard_rows",
                    format!("{n}; expected a number of rows in 1..={MAX_COUNT} or \"auto\""),
                ));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(bad(
                "learning_rate",
                format!("{}; expected a positive number", self.learning_rate),
            ));
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("gradient_clip", self.gradient_clip),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(name, format!("{v}; expected a non-negative number")));
            }
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(bad(
                "ema_decay",
                format!("{}; expected a value in [0, 1)", self.ema_decay),
            ));
        }
        if self.monitor.is_empty() {
            return Err(bad(
                "monitor",
                "empty; expected a metric name such as val_loss".into(),
            ));
        }
        self.parse_device()?;
        let h = self.memory_alert_hysteresis;
        if !(0.0..1.0).contains(&h) {
            return Err(bad(
                "memory_alert_hysteresis",
                format!("{h}; expected a fraction in [0, 1)"),
            ));
        }
        self.spike_thresholds().validate()?;
        // Thresholds of the same kind must be ordered; a byte count against a percentage is
        // checked when the trainer knows what the percentage is of.
        if let (Some(w), Some(c)) = (&self.memory_warn, &self.memory_critical) {
            let ordered = match (w.limit(), c.limit()) {
                (MemoryLimit::Bytes(a), MemoryLimit::Bytes(b)) => a < b,
                (MemoryLimit::FractionOfDevice(a), MemoryLimit::FractionOfDevice(b)) => a < b,
                _ => true,
            };
            if !ordered {
                return Err(bad(
                    "memory_critical",
                    format!(
                        "{} is not above memory_warn {}; expected warn < critical",
                        c.text(),
                        w.text()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The memory alerts' thresholds (design §10.2).
    pub fn alert_config(&self) -> lsnn_memory::AlertConfig {
        lsnn_memory::AlertConfig::new(
            self.memory_warn.as_ref().map(SizeSetting::limit),
            self.memory_critical.as_ref().map(SizeSetting::limit),
        )
        .with_hysteresis(self.memory_alert_hysteresis)
    }

    /// The spike diagnostics' thresholds (design §10.3).
    pub fn spike_thresholds(&self) -> SpikeThresholds {
        SpikeThresholds {
            silent_rate: self.spike_silent_rate,
            dead_fraction: self.spike_dead_fraction,
            saturated_rate: self.spike_saturated_rate,
        }
    }

    /// `device` parsed: `None` for the CPU, `Some(ordinal)` for CUDA.
    pub fn parse_device(&self) -> Result<Option<usize>> {
        parse_device(&self.device)
    }

    /// The candle device; CUDA in a build without the `cuda` feature is a clear error.
    pub fn candle_device(&self) -> Result<candle_core::Device> {
        candle_device(&self.device)
    }

    /// The fused linears' matmul precision this config gives on `device`, and what to tell the
    /// user about it: bf16 where `mixed_precision` is set, the device is a CPU whose bf16
    /// kernel is the AVX-512 BF16 one and the fused kernels run; f32 otherwise, with the reason
    /// when mixed precision was asked for. Only the training steps (and their probes) run bf16:
    /// validation, the EMA's evaluation and inference stay f32 unless a command asks.
    pub fn matmul_precision(
        &self,
        device: &candle_core::Device,
    ) -> (lsnn_layers::kernel::MatmulPrecision, Option<String>) {
        use lsnn_layers::kernel::{bf16::Bf16Kernel, MatmulPrecision};
        if !self.mixed_precision {
            return (MatmulPrecision::F32, None);
        }
        if !device.is_cpu() {
            return (
                MatmulPrecision::F32,
                Some(format!(
                    "mixed_precision has no effect on device \"{}\" yet; training in f32",
                    crate::error::clip(&self.device)
                )),
            );
        }
        if !lsnn_layers::kernel::fused_enabled() {
            return (
                MatmulPrecision::F32,
                Some(
                    "mixed_precision has no effect on the composed path (LSNN_FORCE_COMPOSED): \
                     its linears are candle's f32 matmuls; training in f32"
                        .into(),
                ),
            );
        }
        if Bf16Kernel::active() == Bf16Kernel::Avx512Bf16 {
            (
                MatmulPrecision::Bf16,
                Some(
                    "mixed precision: the linears' matrix products take bf16 operands and sum \
                     in f32 (AVX-512 BF16); parameters, optimizer and every other op stay f32"
                        .into(),
                ),
            )
        } else {
            (
                MatmulPrecision::F32,
                Some(
                    "mixed_precision has no effect: this CPU lacks AVX-512 BF16 instructions \
                     (or LSNN_BASELINE_ISA=1 turned them off), and bf16 without them is slower \
                     than f32; training in f32"
                        .into(),
                ),
            )
        }
    }
}

/// `"cpu"` → `None`, `"cuda"` → `Some(0)`, `"cuda:N"` → `Some(N)`; anything else an error
/// naming the field.
pub fn parse_device(device: &str) -> Result<Option<usize>> {
    match device {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        d => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Some(n)),
            _ => Err(bad(
                "device",
                format!(
                    "\"{}\"; expected \"cpu\", \"cuda\" or \"cuda:N\"",
                    crate::error::clip(d)
                ),
            )),
        },
    }
}

/// The candle device `device` names; CUDA without the `cuda` feature (or without a device) is
/// a clear error.
pub fn candle_device(device: &str) -> Result<candle_core::Device> {
    match parse_device(device)? {
        None => Ok(candle_core::Device::Cpu),
        Some(n) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(TrainError::Unsupported {
                    feature: format!("device \"{device}\""),
                    detail: "this build has no CUDA support; rebuild with `--features cuda` or use \"cpu\"".into(),
                });
            }
            candle_core::Device::new_cuda(n).map_err(|e| TrainError::DeviceUnavailable {
                device: crate::error::clip(device),
                // The driver's message (candle appends a backtrace when one is captured).
                reason: e.to_string().lines().next().unwrap_or("").to_string(),
            })
        }
    }
}
