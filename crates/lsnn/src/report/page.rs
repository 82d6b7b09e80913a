//! The report's HTML: one page, its charts inline (self-contained: no file beside it and no
//! network is needed to view it), a summary, the event log's warnings and the run's config.

use super::record::RunRecord;
use super::Chart;

/// `text` with HTML's special characters escaped.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG for inclusion in the page: the XML declaration plotters writes is dropped.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

fn summary(r: &RunRecord) -> String {
    let mut rows = Vec::new();
    let epochs = r.epochs.rows.len();
    let batches = r.steps.rows.len();
    rows.push(("epochs recorded".to_string(), epochs.to_string()));
    rows.push(("batches recorded".to_string(), batches.to_string()));
    if let Some(last) = r.epochs.rows.last() {
        for (h, v) in r.epochs.header.iter().zip(last) {
            if h == "batches" || h == "epoch" || h.contains(':') {
                continue;
            }
            rows.push((format!("last epoch: {h}"), v.clone()));
        }
    }
    let count = |kind: &str| r.events.iter().filter(|e| e["kind"] == kind).count();
    rows.push(("cleanups".into(), count("cleanup").to_string()));
    rows.push(("memory alerts".into(), count("memory_alert").to_string()));
    rows.push(("spike warnings".into(), count("spike_warning").to_string()));
    rows.push(("resumes".into(), count("resume").to_string()));
    let cells: String = rows
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>\n", esc(k), esc(v)))
        .collect();
    format!("<table class=\"summary\">\n{cells}</table>")
}

fn warnings(r: &RunRecord) -> String {
    let items: Vec<String> = r
        .events
        .iter()
        .filter(|e| e["kind"] == "spike_warning" || e["kind"] == "memory_alert")
        .map(|e| {
            let text = match e["message"].as_str() {
                Some(m) => m.to_string(),
                None => format!(
                    "memory alert: {} → {} at {} live bytes",
                    e["from"], e["to"], e["live_bytes"]
                ),
            };
            format!("<li>batch {}: {}</li>", e["batches"], esc(&text))
        })
        .collect();
    if items.is_empty() {
        "<p>None.</p>".into()
    } else {
        format!("<ul>{}</ul>", items.join("\n"))
    }
}

fn config_table(r: &RunRecord) -> String {
    if r.config.is_null() {
        return "<p>No checkpoint yet: the run stopped before its first.</p>".into();
    }
    let Some(obj) = r.config.as_object() else {
        return format!("<pre>{}</pre>", esc(&r.config.to_string()));
    };
    let cells: String = obj
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
                esc(k),
                esc(&v.to_string())
            )
        })
        .collect();
    format!("<table class=\"config\">\n{cells}</table>")
}

/// The page.
pub fn html(r: &RunRecord, charts: &[Chart]) -> String {
    let title = format!("lsnn run {}", r.run.display());
    let sections: String = charts
        .iter()
        .map(|c| {
            format!(
                "<section class=\"chart\" id=\"chart-{name}\" data-file=\"{name}.svg\">\n<h2>{}</h2>\n{}\n</section>\n",
                esc(&c.title),
                inline_svg(&c.svg),
                name = esc(&c.name),
            )
        })
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 820px; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 1.6em; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: 2px 10px; border-bottom: 1px solid #ddd; }}
section.chart svg {{ max-width: 100%; height: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>From the run's own record (<code>record/</code>, design §10.4) and its current checkpoint set.</p>
<h2>Summary</h2>
{summary}
<h2>Alerts and warnings</h2>
{warnings}
{sections}<h2>Configuration</h2>
{config}
<script>
// Once laid out: how many charts the browser drew with a size and their lines or bars (the
// browser check reads it; the page needs no script to be read).
window.addEventListener("load", function () {{
  var charts = document.querySelectorAll("section.chart svg");
  var drawn = 0;
  charts.forEach(function (svg) {{
    var box = svg.getBoundingClientRect();
    var marks = svg.querySelectorAll("polyline, rect").length;
    if (box.width > 100 && box.height > 100 && marks > 1) drawn += 1;
  }});
  document.body.setAttribute("data-charts", String(charts.length));
  document.body.setAttribute("data-charts-drawn", String(drawn));
}});
</script>
</body>
</html>
"#,
        title = esc(&title),
        summary = summary(r),
        warnings = warnings(r),
        config = config_table(r),
    )
}
