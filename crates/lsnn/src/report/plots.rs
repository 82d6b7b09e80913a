//! The report's charts as SVG text, drawn with plotters' SVG backend (no bitmap, no font
//! library: plotters measures text with its own metrics, the browser draws it).

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// (x, y) points; non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

const SIZE: (u32, u32) = (760, 380);

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// The range of `values` padded by 5% (a flat or empty range gets a unit width).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// A line chart of `series` with vertical marks at the x positions of `marks` (cleanups,
/// alerts), each series a polyline in the order given.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    marks: &[(f64, &str)],
) -> Result<String> {
    let finite = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let all: Vec<(f64, f64)> = series.iter().flat_map(finite).collect();
    let (x0, x1) = range(all.iter().map(|p| p.0).chain(marks.iter().map(|m| m.0)));
    let (y0, y1) = range(all.iter().map(|p| p.1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(78)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (x, what) in marks {
            let color = if what.contains("alert") {
                RED.mix(0.6)
            } else {
                BLACK.mix(0.25)
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*x, y0), (*x, y1)],
                    color.stroke_width(1),
                )))
                .map_err(err)?;
        }
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(finite(s), color.stroke_width(2)))
                .map_err(err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A bar chart: one bar per (label, value), in order.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, f64)]) -> Result<String> {
    let n = bars.len().max(1) as f64;
    let (_, hi) = range(bars.iter().map(|b| b.1).chain([0.0]));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(20)
            .y_label_area_size(78)
            .build_cartesian_2d(0f64..n, 0f64..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .light_line_style(WHITE.mix(0.0))
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let x = i as f64;
                Rectangle::new(
                    [(x + 0.15, 0.0), (x + 0.85, *v)],
                    COLORS[0].mix(0.7).filled(),
                )
            }))
            .map_err(err)?;
        // Each bar's name written up its middle, from the axis.
        let style = ("sans-serif", 13)
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&BLACK);
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (name, _))| {
                Text::new(name.clone(), (i as f64 + 0.42, hi * 0.02), style.clone())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Runs of consecutive spikes of each neuron: (neuron, first time, length), neuron by neuron.
pub fn spike_runs(spike_times: &[Vec<u32>]) -> Vec<(usize, u32, u32)> {
    let mut runs = Vec::new();
    for (n, times) in spike_times.iter().enumerate() {
        let mut i = 0;
        while i < times.len() {
            let mut j = i + 1;
            while j < times.len() && times[j] == times[j - 1] + 1 {
                j += 1;
            }
            runs.push((n, times[i], (j - i) as u32));
            i = j;
        }
    }
    runs
}

/// A spike raster: time steps across, neurons up, one filled cell per spike (a neuron's
/// consecutive spikes drawn as one bar), faint lines between positions.
pub fn raster_chart(
    title: &str,
    spike_times: &[Vec<u32>],
    times: usize,
    steps: usize,
) -> Result<String> {
    let neurons = spike_times.len().max(1) as f64;
    let t = times.max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t, 0f64..neurons)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("time step (position × {steps} + step)"))
            .y_desc("neuron")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        let positions = times / steps.max(1);
        if positions > 1 && positions <= 64 {
            chart
                .draw_series((1..positions).map(|p| {
                    let x = (p * steps) as f64;
                    PathElement::new(vec![(x, 0.0), (x, neurons)], BLACK.mix(0.08))
                }))
                .map_err(err)?;
        }
        chart
            .draw_series(spike_runs(spike_times).into_iter().map(|(n, start, len)| {
                let (x, y) = (start as f64, n as f64);
                Rectangle::new([(x, y + 0.1), (x + len as f64, y + 0.9)], BLACK.filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
