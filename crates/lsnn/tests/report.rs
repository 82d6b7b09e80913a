//! `lsnn report RUN_DIR` (design §10.6), on a tiny language model's run and on the default run
//! (three epochs each): every chart is written, inline in the page and as its own SVG file, and
//! each plots the run's own numbers — each line's points are the record's values under one
//! linear map to pixels (checked to the pixel), every stage has its bar, every run of spikes
//! in the raster its bar — and a directory without a record is bad input.

mod support;

use std::path::Path;
use support::{code, err, lsnn, ok, scratch, setup, train_tiny, LAYERS};

/// The data lines of a plotters SVG: (stroke colour, points) of each 2-px polyline.
fn lines(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out = Vec::new();
    for part in svg.split("<polyline").skip(1) {
        let tag = &part[..part.find("/>").unwrap()];
        let attr = |name: &str| -> Option<String> {
            let key = format!("{name}=\"");
            let i = tag.find(&key)? + key.len();
            Some(tag[i..i + tag[i..].find('"')?].to_string())
        };
        if attr("stroke-width").as_deref() != Some("2") {
            continue;
        }
        let points = attr("points")
            .unwrap()
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        out.push((attr("stroke").unwrap(), points));
    }
    out
}

/// Asserts that pixel heights `ys` are one decreasing linear map of `values` (to within the
/// pixel rounding): the chart plots these numbers, not others.
fn assert_plots(values: &[f64], ys: &[f64], what: &str) {
    assert_eq!(values.len(), ys.len(), "{what}: one point per value");
    let (lo, hi) = (0..values.len()).fold((0, 0), |(lo, hi), i| {
        (
            if values[i] < values[lo] { i } else { lo },
            if values[i] > values[hi] { i } else { hi },
        )
    });
    if values[hi] == values[lo] {
        assert!(ys.iter().all(|y| (y - ys[0]).abs() <= 1.0), "{what}: flat");
        return;
    }
    let slope = (ys[hi] - ys[lo]) / (values[hi] - values[lo]);
    assert!(slope < 0.0, "{what}: larger values are higher up");
    for (v, y) in values.iter().zip(ys) {
        let want = ys[lo] + slope * (v - values[lo]);
        assert!(
            (y - want).abs() <= 1.5,
            "{what}: {v} at {y}, expected {want}"
        );
    }
}

fn csv_column(path: &Path, name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| l.split(',').nth(i).unwrap().parse().unwrap_or(f64::NAN))
        .collect()
}

/// Runs of consecutive spike times of each neuron in a raster's `spike_times`: (neuron,
/// start, length), neuron by neuron (written here from the record, not with the report's code).
fn spike_runs(spike_times: &serde_json::Value) -> Vec<(usize, u64, u64)> {
    let mut runs: Vec<(usize, u64, u64)> = Vec::new();
    for (n, times) in spike_times.as_array().unwrap().iter().enumerate() {
        for t in times
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
        {
            match runs.last_mut() {
                Some(r) if r.0 == n && r.1 + r.2 == t => r.2 += 1,
                _ => runs.push((n, t, 1)),
            }
        }
    }
    runs
}

/// (x, y, width) of each `<rect>` filled with `fill`, in document order.
fn rects(svg: &str, fill: &str) -> Vec<(f64, f64, f64)> {
    svg.split("<rect")
        .skip(1)
        // The tag alone: text after it has fills of its own.
        .map(|r| &r[..r.find('>').unwrap()])
        .filter(|r| r.contains(&format!("fill=\"{fill}\"")))
        .map(|r| {
            let attr = |k: &str| -> f64 {
                let key = format!(" {k}=\"");
                let i = r.find(&key).unwrap() + key.len();
                r[i..i + r[i..].find('"').unwrap()].parse().unwrap()
            };
            (attr("x"), attr("y"), attr("width"))
        })
        .collect()
}

/// `lsnn report` on the three-epoch run `run` in `d`, whose task metric is `metric`: every
/// chart written, each holding the run's numbers; the page, returned.
fn assert_report(d: &Path, run: &str, metric: &str) -> String {
    let printed = ok(&lsnn(&["report", run], d));
    assert!(
        printed.contains(&format!("report: {run}/report/index.html (14 charts)")),
        "{printed}"
    );
    let rep = d.join(run).join("report");
    let rec = d.join(run).join("record");
    let svg = |name: &str| std::fs::read_to_string(rep.join(format!("{name}.svg"))).unwrap();

    // Losses per epoch: the train loss (first colour) and the validation loss (second), on one
    // pair of axes.
    let loss = lines(&svg("loss"));
    assert_eq!(loss.len(), 2, "{loss:?}");
    let epochs = rec.join("epochs.csv");
    let mut values = csv_column(&epochs, "train_loss");
    values.extend(csv_column(&epochs, "val_loss"));
    let ys: Vec<f64> = loss
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .collect();
    assert_plots(&values, &ys, "loss");
    // The task metric, the learning rate per batch.
    let task = lines(&svg(&format!("metric-{metric}")));
    let ys: Vec<f64> = task[0].1.iter().map(|p| p.1).collect();
    assert_plots(&csv_column(&epochs, metric), &ys, metric);
    let lr = lines(&svg("lr"));
    let ys: Vec<f64> = lr[0].1.iter().map(|p| p.1).collect();
    assert_plots(&csv_column(&rec.join("steps.csv"), "lr"), &ys, "lr");
    // Memory: live bytes at every sample (the first line), in MiB.
    let mem = lines(&svg("memory"));
    let live: Vec<f64> = csv_column(&rec.join("memory.csv"), "live_bytes");
    let ys: Vec<f64> = mem[0].1.iter().map(|p| p.1).collect();
    assert_plots(&live, &ys, "live bytes");
    // Firing: one line per spiking layer, one point per epoch.
    let firing = lines(&svg("firing"));
    assert_eq!(firing.len(), 7);
    let mut values = Vec::new();
    let mut ys = Vec::new();
    for (i, layer) in ["blocks.0.encoder.lif1", "blocks.0.encoder.lif2"]
        .iter()
        .enumerate()
    {
        values.extend(csv_column(&epochs, &format!("rate:{layer}")));
        ys.extend(firing[i].1.iter().map(|p| p.1));
    }
    assert_plots(&values, &ys, "firing rates");
    // One bar per probed stage.
    let stages: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("memory_stages.json")).unwrap())
            .unwrap();
    let n = stages["stages"].as_array().unwrap().len();
    let bars = svg("stages").matches("<rect").count() - 1; // less the background
    assert_eq!(bars, n);

    // A raster per spiking layer: one bar per run of consecutive spikes of a neuron, in the
    // record's order, at x = a + b·start with width b·length and at y decreasing with the
    // neuron.
    let raster: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("raster.json")).unwrap()).unwrap();
    assert_eq!(raster["epoch"], 2, "the last epoch's");
    let layers = raster["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, LAYERS);
    let mut drawn_spikes = 0;
    for (i, layer) in layers.iter().enumerate() {
        let name = layer["name"].as_str().unwrap();
        let runs = spike_runs(&layer["spike_times"]);
        let bars = rects(&svg(&format!("raster-{i}-{name}")), "#000000");
        assert_eq!(bars.len(), runs.len(), "{name}: one bar per run");
        if runs.len() >= 2 {
            // Pixels per time step from the earliest and the latest start, checked on every
            // bar.
            let lo = (0..runs.len()).min_by_key(|&i| runs[i].1).unwrap();
            let hi = (0..runs.len()).max_by_key(|&i| runs[i].1).unwrap();
            let (first, a) = (runs[lo], bars[lo]);
            let scale = if runs[hi].1 != first.1 {
                (bars[hi].0 - a.0) / (runs[hi].1 - first.1) as f64
            } else {
                a.2 / first.2 as f64
            };
            for (bar, run) in bars.iter().zip(&runs) {
                let x = a.0 + scale * (run.1 as f64 - first.1 as f64);
                assert!(
                    (bar.0 - x).abs() <= 1.5,
                    "{name}: bar at {} for time {}",
                    bar.0,
                    run.1
                );
                assert!((bar.2 - scale * run.2 as f64).abs() <= 1.5, "{name}: width");
            }
            // Higher neurons higher up (smaller y).
            for (i, j) in (0..runs.len()).zip(1..runs.len()) {
                if runs[j].0 > runs[i].0 {
                    assert!(bars[j].1 < bars[i].1, "{name}: neuron order");
                }
            }
        }
        drawn_spikes += runs.iter().map(|r| r.2).sum::<u64>();
    }
    assert!(drawn_spikes > 0);

    // The page: every chart inline, the config, the summary.
    let page = std::fs::read_to_string(rep.join("index.html")).unwrap();
    let metric_chart = format!("metric-{metric}");
    for name in [
        "loss",
        metric_chart.as_str(),
        "lr",
        "memory",
        "firing",
        "silent",
        "stages",
    ]
    .into_iter()
    .map(String::from)
    .chain(
        LAYERS
            .iter()
            .enumerate()
            .map(|(i, l)| format!("raster-{i}-{l}")),
    ) {
        assert!(page.contains(&format!("id=\"chart-{name}\"")), "{name}");
    }
    assert_eq!(page.matches("<svg").count(), 14);
    assert!(page.contains("<th>epochs recorded</th><td>3</td>"));
    page
}

#[test]
fn each_chart_plots_the_runs_numbers_and_the_page_holds_them_all() {
    let d = scratch("report");
    setup(&d);
    // Three epochs: a per-epoch line has three points, which a wrong value would put off its
    // line (two points fit any line).
    train_tiny(&d, "run", &["--set", "num_epochs=3"]);
    let page = assert_report(&d, "run", "val_ppl");
    assert!(page.contains("<th>spiking_units</th><td><code>8</code>"));
}

#[test]
fn the_default_runs_report_plots_its_numbers() {
    // The default task (event-order classification) as `lsnn train` runs it, for three of its
    // epochs.
    let d = scratch("report-default");
    ok(&lsnn(&["train", "--epochs", "3", "--out", "run"], &d));
    assert_report(&d, "run", "val_accuracy");
}

#[test]
fn a_directory_without_a_record_is_bad_input() {
    let d = scratch("report-bad");
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let o = lsnn(&["report", "empty"], &d);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("holds no run record"), "{}", err(&o));
    let o = lsnn(&["report", "missing"], &d);
    assert_eq!(code(&o), 2);
}
