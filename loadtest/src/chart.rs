//! The SVG chart of a comparison: latency by percentile per system (log
//! scale), and throughput per system.

use std::path::Path;

use plotters::prelude::*;

/// Per-system data the chart needs.
pub struct ChartSeries {
    pub rps: f64,
    pub gbps: f64,
    /// (percentile, µs) points.
    pub curve: Vec<(f64, f64)>,
}

/// Percentiles drawn on the latency curves.
pub const CURVE_POINTS: [f64; 8] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];

/// Writes the chart to `path`: one curve and one bar per system, named
/// by `systems`.
pub fn write(
    path: &Path,
    scenario: &str,
    systems: &[String],
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
            .label(sys)
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
        let name = systems.get(i).map_or("", String::as_str);
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

/// One system's bar in a per-CPU panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub system: String,
    /// Work per CPU-second.
    pub per_cpu: f64,
    /// Work per CPU-second of kernel time alone: what the system would do
    /// if its own code cost nothing, its syscalls and network stack
    /// unchanged.
    pub kernel_only: Option<f64>,
}

/// One scenario of a per-CPU chart: what each system did per CPU-second.
#[derive(Debug, Clone, PartialEq)]
pub struct PerCpu {
    pub scenario: String,
    /// `req/s` or `Gbit/s`, per CPU.
    pub unit: &'static str,
    /// HAProxy last.
    pub bars: Vec<Bar>,
}

impl PerCpu {
    /// From a `loadtest compare --json` report: each balancer's work per
    /// CPU-second, from its CPU time per request (per 64 KiB for
    /// `tcp-stream`), and per second of its kernel time. `None` for a
    /// report without balancers' CPU times.
    pub fn from_report(report: &serde_json::Value) -> Option<PerCpu> {
        let scenario = report["scenario"].as_str()?.to_owned();
        let stream = scenario == "tcp-stream";
        // A request per `us` µs of CPU; a stream's unit of work is 64 KiB,
        // 524,288 bits.
        let work = |us: f64| {
            if stream {
                524_288.0 / us / 1e3
            } else {
                1e6 / us
            }
        };
        let systems = report["systems"].as_object()?;
        let mut bars: Vec<Bar> = systems
            .iter()
            .filter_map(|(name, s)| {
                let us = s["cpu_us_per_req"].as_f64().filter(|v| *v > 0.0)?;
                let kernel = s["kernel_us_per_req"].as_f64().filter(|v| *v > 0.0);
                Some(Bar {
                    system: name.clone(),
                    per_cpu: work(us),
                    kernel_only: kernel.map(work),
                })
            })
            .collect();
        // HAProxy last: the panel's ratios are to it.
        bars.sort_by_key(|b| (b.system == "haproxy", b.system.clone()));
        (!bars.is_empty()).then_some(PerCpu {
            scenario,
            unit: if stream { "Gbit/s" } else { "req/s" },
            bars,
        })
    }
}

/// Writes to `path` one panel per scenario: each system's work per
/// CPU-second, with its ratio to the last system of the panel, and a line
/// where its kernel time alone would put it.
pub fn write_per_cpu(
    path: &Path,
    title: &str,
    panels: &[PerCpu],
) -> Result<(), Box<dyn std::error::Error>> {
    let cols = panels.len().clamp(1, 3);
    let rows = panels.len().div_ceil(cols).max(1);
    let root =
        SVGBackend::new(path, (330 * cols as u32, 80 + 280 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (root, legend) = root.split_vertically(280 * rows as u32);
    legend.draw(&Text::new(
        "dashed: the same system if its own code cost nothing (its kernel time alone per request)",
        (20, 5),
        ("sans-serif", 13),
    ))?;
    let areas = root.split_evenly((rows, cols));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let n = panel.bars.len();
        let vmax = panel
            .bars
            .iter()
            .map(|b| b.kernel_only.unwrap_or(0.0).max(b.per_cpu))
            .fold(f64::MIN_POSITIVE, f64::max)
            * 1.2;
        let gbit = panel.unit == "Gbit/s";
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} ({} per CPU)", panel.scenario, panel.unit),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(20)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..vmax)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| {
                if gbit {
                    format!("{v:.1}")
                } else if *v >= 10_000.0 {
                    format!("{:.0}k", v / 1e3)
                } else {
                    format!("{v:.0}")
                }
            })
            .draw()?;
        chart.draw_series(panel.bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, b.per_cpu)],
                Palette99::pick(i).filled(),
            )
        }))?;
        for (i, b) in panel.bars.iter().enumerate() {
            if let Some(k) = b.kernel_only {
                chart.draw_series(DashedLineSeries::new(
                    [(i as f64 + 0.1, k), (i as f64 + 0.9, k)],
                    4,
                    3,
                    BLACK.stroke_width(1),
                ))?;
            }
        }
        let base = panel.bars.last().map_or(1.0, |b| b.per_cpu);
        chart.draw_series(panel.bars.iter().enumerate().map(|(i, b)| {
            let amount = if gbit {
                format!("{:.2}", b.per_cpu)
            } else {
                format!("{:.0}", b.per_cpu)
            };
            let label = if i + 1 < n {
                format!("{} {amount} ({:.2}×)", b.system, b.per_cpu / base)
            } else {
                format!("{} {amount}", b.system)
            };
            Text::new(
                label,
                (i as f64 + 0.1, b.per_cpu - vmax * 0.02),
                ("sans-serif", 12),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_comes_from_cpu_time_per_request() {
        let report = serde_json::json!({
            "scenario": "http",
            "systems": {
                "moirai": {"cpu_us_per_req": 20.0, "kernel_us_per_req": 16.0},
                "haproxy": {"cpu_us_per_req": 25.0, "kernel_us_per_req": null},
                "direct": {"cpu_us_per_req": null},
            }
        });
        let p = PerCpu::from_report(&report).unwrap();
        assert_eq!(p.unit, "req/s");
        let bar = |system: &str, per_cpu, kernel_only| Bar {
            system: system.into(),
            per_cpu,
            kernel_only,
        };
        assert_eq!(
            p.bars,
            [
                bar("moirai", 50_000.0, Some(62_500.0)),
                bar("haproxy", 40_000.0, None)
            ]
        );
        let stream = serde_json::json!({
            "scenario": "tcp-stream",
            "systems": {"moirai": {"cpu_us_per_req": 100.0}}
        });
        let p = PerCpu::from_report(&stream).unwrap();
        assert_eq!(p.unit, "Gbit/s");
        // 64 KiB per 100 µs of CPU: 5.24 Gbit per CPU-second.
        assert!((p.bars[0].per_cpu - 5.24288).abs() < 1e-9);
        assert_eq!(PerCpu::from_report(&serde_json::json!({})), None);
    }

    #[test]
    fn the_per_cpu_chart_names_every_scenario_and_ratio() {
        let dir = std::env::temp_dir().join(format!("chart-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("per-cpu.svg");
        let bar = |system: &str, per_cpu| Bar {
            system: system.into(),
            per_cpu,
            kernel_only: Some(per_cpu * 1.1),
        };
        let panels = [
            PerCpu {
                scenario: "http".into(),
                unit: "req/s",
                bars: vec![bar("moirai", 45_000.0), bar("haproxy", 30_000.0)],
            },
            PerCpu {
                scenario: "tcp-stream".into(),
                unit: "Gbit/s",
                bars: vec![bar("moirai", 6.5), bar("haproxy", 5.0)],
            },
        ];
        write_per_cpu(&path, "per CPU", &panels).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        for text in [
            "http (req/s per CPU)",
            "tcp-stream (Gbit/s per CPU)",
            "moirai 45000 (1.50×)",
            "haproxy 30000",
            "moirai 6.50 (1.30×)",
            "kernel time alone",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
