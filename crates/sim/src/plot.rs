//! The chart of a run over time, as SVG: peers and roots, origin egress,
//! byte offload and maximum depth, one panel each.

use crate::metrics::SamplePoint;
use crate::model::RunResult;
use plotters::prelude::*;
use std::path::Path;

type Series = (&'static str, fn(&SamplePoint) -> f64, RGBColor);

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    points: &[SamplePoint],
    lines: &[Series],
    x_max: f64,
    zoom: bool,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let values = || {
        points
            .iter()
            .flat_map(|p| lines.iter().map(move |(_, f, _)| f(p)))
    };
    let high = values().fold(0.0, f64::max);
    let low = values().fold(f64::INFINITY, f64::min);
    // A figure that stays near its top (offload) would be a flat line
    // against an axis from 0: frame its own range instead.
    let (y_min, y_max) = if zoom && low.is_finite() {
        let pad = ((high - low) * 0.2).max(0.05);
        ((low - pad).max(0.0), high + pad)
    } else if high > 0.0 {
        (0.0, high * 1.08)
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, y_min..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("time, s")
        .label_style(("sans-serif", 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    for &(name, f, color) in lines {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.t_s, f(p))),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    if lines.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// Writes the chart of `result` to `path` (SVG). Deterministic: the same
/// run gives the same file.
pub fn write_svg(result: &RunResult, path: &Path) -> Result<(), String> {
    let points = &result.series;
    let x_max = result.scenario.duration_s;
    let root = SVGBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let title = format!(
        "meshrelay sim: policy {}, seed {}, repair {}",
        result.summary.policy,
        result.summary.seed,
        if result.summary.repair { "on" } else { "off" }
    );
    let root = root
        .titled(&title, ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 2));
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let green = RGBColor(44, 160, 44);
    let red = RGBColor(214, 39, 40);
    panel(
        &panels[0],
        "peers and roots",
        points,
        &[
            ("peers", |p| p.peers as f64, blue),
            ("roots", |p| p.roots as f64, orange),
            ("waiting", |p| p.waiting as f64, red),
        ],
        x_max,
        false,
    )?;
    panel(
        &panels[1],
        "origin egress, Mbit/s",
        points,
        &[
            ("total", |p| p.origin_bps / 1e6, blue),
            ("of which repair", |p| p.repair_bps / 1e6, red),
        ],
        x_max,
        false,
    )?;
    panel(
        &panels[2],
        "byte offload, %",
        points,
        &[("offload", |p| p.byte_offload * 100.0, green)],
        x_max,
        true,
    )?;
    panel(
        &panels[3],
        "max depth",
        points,
        &[("max depth", |p| p.max_depth as f64, orange)],
        x_max,
        false,
    )?;
    root.present().map_err(|e| e.to_string())
}
