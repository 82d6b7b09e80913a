//! `lsnn report RUN_DIR` (design §10.6): one self-contained HTML page of a run, with each chart
//! also written as an SVG file beside it — loss and task metrics per epoch, the learning rate,
//! the memory timeline with cleanups and alerts marked, firing rates and silent fractions per
//! spiking layer, peak memory by stage, and the run's config — all read from the run's own
//! record (design §10.4) and its current checkpoint set.

mod page;
mod plots;
mod record;

use crate::exit::BadInput;
use anyhow::{Context, Result};
use clap::Args;
use plots::{bar_chart, line_chart, raster_chart, Series};
use record::{RunRecord, Table};
use std::path::PathBuf;

/// `lsnn report`'s arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (as given to `train --out`).
    run: PathBuf,
    /// Where the page and its SVG files go (default: RUN/report).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One chart of the page: its file name (without `.svg`), heading and SVG.
pub struct Chart {
    /// File stem.
    pub name: String,
    /// Heading.
    pub title: String,
    /// The SVG text.
    pub svg: String,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Columns of `epochs.csv` that are not metrics.
const NOT_METRICS: [&str; 6] = [
    "batches",
    "epoch",
    "train_loss",
    "live_bytes",
    "peak_bytes",
    "rss_bytes",
];

/// Most neurons and time steps of a layer a raster draws.
const MAX_RASTER_NEURONS: usize = 256;
const MAX_RASTER_TIMES: usize = 4096;

/// `name` as a file name: only [A-Za-z0-9_.-] of it.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' | '.' => c,
            _ => '_',
        })
        .collect()
}

fn pairs(xs: &[f64], ys: &[f64]) -> Vec<(f64, f64)> {
    xs.iter().copied().zip(ys.iter().copied()).collect()
}

/// Epoch numbers (1-based) of `epochs.csv`'s rows.
fn epoch_axis(t: &Table) -> Vec<f64> {
    t.column("epoch")
        .unwrap_or_default()
        .into_iter()
        .map(|e| e + 1.0)
        .collect()
}

fn charts(r: &RunRecord) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    let mut push = |name: &str, title: &str, svg: String| {
        out.push(Chart {
            name: name.into(),
            title: title.into(),
            svg,
        })
    };
    let epochs = epoch_axis(&r.epochs);
    // Losses per epoch.
    let mut losses = Vec::new();
    for (col, label) in [
        ("train_loss", "train loss"),
        ("val_loss", "validation loss"),
    ] {
        if let Some(v) = r.epochs.column(col) {
            losses.push(Series {
                name: label.into(),
                points: pairs(&epochs, &v),
            });
        }
    }
    push(
        "loss",
        "Loss per epoch",
        line_chart("Loss per epoch", "epoch", "loss", &losses, &[])?,
    );
    // Each other evaluated metric, a chart of its own (their scales differ).
    for col in &r.epochs.header {
        if NOT_METRICS.contains(&col.as_str())
            || col == "val_loss"
            || col.starts_with("rate:")
            || col.starts_with("silent:")
        {
            continue;
        }
        let v = r.epochs.column(col).unwrap_or_default();
        let s = [Series {
            name: col.clone(),
            points: pairs(&epochs, &v),
        }];
        let title = format!("{col} per epoch");
        push(
            &format!("metric-{}", file_stem(col)),
            &title,
            line_chart(&title, "epoch", col, &s, &[])?,
        );
    }
    // The learning rate per batch.
    let batches = r.steps.column("batches").unwrap_or_default();
    let lr = [Series {
        name: "learning rate".into(),
        points: pairs(&batches, &r.steps.column("lr").unwrap_or_default()),
    }];
    push(
        "lr",
        "Learning rate",
        line_chart("Learning rate", "batch", "learning rate", &lr, &[])?,
    );
    push("memory", "Memory", memory_chart(r)?);
    // Firing per spiking layer over the epochs.
    for (prefix, name, title, unit) in [
        (
            "rate:",
            "firing",
            "Firing rate per spiking layer",
            "mean rate",
        ),
        (
            "silent:",
            "silent",
            "Neurons that never fired, per spiking layer",
            "fraction",
        ),
    ] {
        let series: Vec<Series> = r
            .epochs
            .header
            .iter()
            .filter_map(|c| c.strip_prefix(prefix).map(|layer| (c, layer)))
            .map(|(c, layer)| Series {
                name: layer.into(),
                points: pairs(&epochs, &r.epochs.column(c).unwrap_or_default()),
            })
            .collect();
        if !series.is_empty() {
            push(name, title, line_chart(title, "epoch", unit, &series, &[])?);
        }
    }
    if let Some(stages) = &r.stages {
        let bars: Vec<(String, f64)> = stages["stages"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let pass = match s["pass"].as_str() {
                    Some("forward") => " fwd",
                    Some("backward") => " bwd",
                    _ => "",
                };
                let label = format!("{}{pass}", s["stage"].as_str().unwrap_or("?"));
                (label, s["peak_bytes"].as_f64().unwrap_or(0.0) / 1024.0)
            })
            .collect();
        let title = "Peak memory by stage (probe step, one thread)";
        push(
            "stages",
            title,
            bar_chart(title, "KiB above the stage's start", &bars)?,
        );
    }
    if let Some(raster) = &r.raster {
        for (i, layer) in raster.layers.iter().enumerate() {
            // At most MAX_RASTER_NEURONS × MAX_RASTER_TIMES cells are drawn (the title says
            // when cut): a big layer's every spike would be megabytes of SVG.
            let neurons = layer.neurons.min(MAX_RASTER_NEURONS);
            let times = layer.times().min(MAX_RASTER_TIMES);
            let shown: Vec<Vec<u32>> = layer.spike_times[..neurons.min(layer.spike_times.len())]
                .iter()
                .map(|t| {
                    t.iter()
                        .copied()
                        .filter(|&t| (t as usize) < times)
                        .collect()
                })
                .collect();
            let cut = match (neurons < layer.neurons, times < layer.times()) {
                (false, false) => String::new(),
                _ => format!(
                    "; first {neurons} of {} neurons, {times} of {} steps",
                    layer.neurons,
                    layer.times()
                ),
            };
            let title = format!(
                "Spike raster: {} (first validation example, epoch {}; {} spikes{cut})",
                layer.name,
                raster.epoch + 1,
                layer.spikes()
            );
            let svg = raster_chart(&title, &shown, times, layer.steps)?;
            // A layer's name becomes a file name; its index keeps two alike names apart.
            push(
                &format!("raster-{i}-{}", file_stem(&layer.name)),
                &title,
                svg,
            );
        }
    }
    Ok(out)
}

/// Live, peak and RSS over the run, with cleanups and alerts marked.
fn memory_chart(r: &RunRecord) -> Result<String> {
    let m = &r.memory;
    let batches = m.column("batches").unwrap_or_default();
    let labels = m.text_column("label").unwrap_or_default();
    let mib = |name: &str| -> Vec<f64> {
        m.column(name)
            .unwrap_or_default()
            .into_iter()
            .map(|v| v / MIB)
            .collect()
    };
    let (live, peak, rss) = (mib("live_bytes"), mib("peak_bytes"), mib("rss_bytes"));
    // Peaks are read at memory lines only (a batch row leaves the cell empty).
    let peak_points: Vec<(f64, f64)> = batches
        .iter()
        .zip(&peak)
        .zip(&labels)
        .filter(|(_, l)| *l != "batch")
        .map(|((b, p), _)| (*b, *p))
        .collect();
    let series = [
        Series {
            name: "live".into(),
            points: pairs(&batches, &live),
        },
        Series {
            name: "peak (at memory lines)".into(),
            points: peak_points,
        },
        Series {
            name: "RSS".into(),
            points: pairs(&batches, &rss),
        },
    ];
    let marks: Vec<(f64, &str)> = r
        .events
        .iter()
        .filter_map(|e| {
            let kind = e["kind"].as_str()?;
            let what = match kind {
                "cleanup" => "cleanup",
                "memory_alert" => "memory alert",
                _ => return None,
            };
            Some((e["batches"].as_f64()?, what))
        })
        .collect();
    line_chart(
        "Memory (cleanups grey, alerts red)",
        "batch",
        "MiB",
        &series,
        &marks,
    )
}

/// Runs `lsnn report`.
pub fn report(a: ReportArgs) -> Result<()> {
    if !a.run.is_dir() {
        return Err(BadInput(format!(
            "{} is not a directory; expected a run directory written by lsnn train",
            a.run.display()
        ))
        .into());
    }
    let r = record::read_record(&a.run)?;
    let out = a.out.clone().unwrap_or_else(|| a.run.join("report"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let charts = charts(&r)?;
    for c in &charts {
        let p = out.join(format!("{}.svg", c.name));
        std::fs::write(&p, &c.svg).with_context(|| format!("writing {}", p.display()))?;
    }
    let page = page::html(&r, &charts);
    let index = out.join("index.html");
    std::fs::write(&index, page).with_context(|| format!("writing {}", index.display()))?;
    crate::output::out(&format!(
        "report: {} ({} charts)",
        index.display(),
        charts.len()
    ));
    Ok(())
}
