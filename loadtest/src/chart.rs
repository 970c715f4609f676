//! The SVG chart of a comparison: latency by percentile per system (log
//! scale), and throughput per system.

use std::path::Path;

use plotters::prelude::*;

use crate::compare::{ChartSeries, System, CURVE_POINTS};

/// Writes the chart to `path`.
pub fn write(
    path: &Path,
    scenario: &str,
    systems: &[System],
    data: &[ChartSeries],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(620);
    let n = CURVE_POINTS.len();
    let ymin = data
        .iter()
        .flat_map(|s| s.curve.iter().map(|(_, v)| *v))
        .fold(f64::INFINITY, f64::min)
        .clamp(1.0, 1e9)
        / 2.0;
    let ymax = data
        .iter()
        .flat_map(|s| s.curve.iter().map(|(_, v)| *v))
        .fold(10.0_f64, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&left)
        .caption(
            format!("{scenario}: latency by percentile"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..(n - 1) as f64, (ymin.max(1.0)..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = (x.round() as usize).min(n - 1);
            format!("p{}", CURVE_POINTS[i])
        })
        .y_desc("latency (µs)")
        .draw()?;
    for (i, (sys, s)) in systems.iter().zip(data).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.curve
                    .iter()
                    .enumerate()
                    .map(|(k, (_, v))| (k as f64, v.max(1.0))),
                color.stroke_width(2),
            ))?
            .label(format!("{sys:?}").to_lowercase())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;

    let stream = scenario == "tcp-stream";
    let values: Vec<f64> = data
        .iter()
        .map(|s| if stream { s.gbps } else { s.rps })
        .collect();
    let vmax = values.iter().cloned().fold(1.0_f64, f64::max) * 1.2;
    let mut bars = ChartBuilder::on(&right)
        .caption(
            if stream {
                "throughput (Gbit/s)"
            } else {
                "throughput (req/s)"
            },
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..systems.len() as f64, 0f64..vmax)?;
    bars.configure_mesh().disable_x_mesh().x_labels(0).draw()?;
    bars.draw_series(values.iter().enumerate().map(|(i, v)| {
        Rectangle::new(
            [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *v)],
            Palette99::pick(i).filled(),
        )
    }))?;
    bars.draw_series(values.iter().enumerate().map(|(i, v)| {
        let name = systems
            .get(i)
            .map_or(String::new(), |s| format!("{s:?}").to_lowercase());
        let label = if stream {
            format!("{name} {v:.2}")
        } else {
            format!("{name} {v:.0}")
        };
        Text::new(
            label,
            (i as f64 + 0.15, *v * 1.02 + vmax * 0.02),
            ("sans-serif", 13),
        )
    }))?;
    root.present()?;
    Ok(())
}
