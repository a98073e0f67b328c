//! The report's plots, as SVG (plotters; text is left to the viewer's fonts).

use std::path::Path;

use plotters::prelude::*;

/// One line on a chart.
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    /// Thicker for what the chart is mostly about.
    pub width: u32,
    pub points: Vec<(f64, f64)>,
}

pub const SYNC: RGBColor = RGBColor(214, 96, 0);
pub const ASYNC: RGBColor = RGBColor(31, 102, 196);
pub const ASYNC_FINISHED: RGBColor = RGBColor(90, 40, 150);
pub const SYNC_FINISHED: RGBColor = RGBColor(150, 60, 0);

const SIZE: (u32, u32) = (960, 400);
/// The plot's width; the legend goes to its right, clear of the lines.
const PLOT_WIDTH: u32 = 650;

/// "nines" on the x axis: 0 → 0 %, 1 → 90 %, 2 → 99 %, 3 → 99.9 %.
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

fn percentile_label(x: f64) -> String {
    match x.round() as i64 {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        3 => "99.9%".into(),
        4 => "99.99%".into(),
        _ => String::new(),
    }
}

/// Latency (log scale, ms) by percentile (0 % to 99.99 %), one line per series.
pub fn by_percentile(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = bounds(values);
    let (lo, hi) = ((lo * 0.8).max(0.01), hi * 1.25);
    chart_svg(path, series, |area| {
        let mut chart = frame(area, title).build_cartesian_2d(0f64..4f64, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .max_light_lines(1)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format_ms(*y))
            .label_style(("sans-serif", 15))
            .x_desc("percentile")
            .y_desc("latency (log scale)")
            .draw()?;
        for s in series {
            chart.draw_series(LineSeries::new(
                s.points.iter().map(|(q, ms)| (nines(*q), *ms)),
                s.color.stroke_width(s.width),
            ))?;
        }
        Ok(())
    })
}

/// A quantity over time (s), one line per series.
pub fn over_time(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> anyhow::Result<()> {
    let (_, x_hi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (_, y_hi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    chart_svg(path, series, |area| {
        let mut chart = frame(area, title)
            .build_cartesian_2d(0f64..x_hi.max(1.0), 0f64..(y_hi * 1.15).max(1.0))?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .max_light_lines(1)
            .x_desc("seconds since the load began")
            .y_desc(y_desc)
            .y_label_formatter(&|y| format_count(*y))
            .draw()?;
        for s in series {
            chart.draw_series(LineSeries::new(
                s.points.iter().copied(),
                s.color.stroke_width(s.width),
            ))?;
        }
        Ok(())
    })
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The chart's caption and margins, the same on every plot.
fn frame<'a, 'b>(area: &'a Area<'b>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 21))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    builder
}

/// An SVG file of [`SIZE`]: the plot `draw` makes on the left, the series'
/// legend on the right.
fn chart_svg(
    path: &Path,
    series: &[Series],
    draw: impl FnOnce(&Area<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (area, side) = root.split_horizontally(PLOT_WIDTH);
        draw(&area)?;
        legend(&side, series)?;
        root.present()?;
    }
    std::fs::write(path, svg)?;
    Ok(())
}

/// The series' names beside the plot, each with a stroke of its line.
fn legend<DB: DrawingBackend>(
    side: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    for (i, s) in series.iter().enumerate() {
        let y = 52 + 26 * i as i32;
        let style = s.color.stroke_width(s.width.max(2));
        side.draw(&PathElement::new(vec![(8, y), (34, y)], style))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        side.draw(&Text::new(s.label.clone(), (42, y - 8), ("sans-serif", 16)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })
        .unwrap_or((1.0, 10.0))
}

fn format_ms(ms: f64) -> String {
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_owned();
    if ms >= 1000.0 {
        format!("{} s", trim(format!("{:.3}", ms / 1000.0)))
    } else if ms >= 1.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{} ms", trim(format!("{ms:.3}")))
    }
}

fn format_count(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// The number of points of each line an SVG of these plots draws in `color`
/// (`#D66000`): how the tests see that a plot holds a mode's series.
pub fn line_points(svg: &str, color: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .filter(|l| l.contains(&format!("stroke=\"{color}\"")))
        .filter_map(|l| {
            let points = l.split("points=\"").nth(1)?.split('"').next()?;
            Some(points.split_whitespace().count())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_read_as_durations() {
        assert_eq!(format_ms(10_000.0), "10 s");
        assert_eq!(format_ms(2_500.0), "2.5 s");
        assert_eq!(format_ms(100.0), "100 ms");
        assert_eq!(format_ms(0.25), "0.25 ms");
    }

    #[test]
    fn the_percentile_axis_counts_nines() {
        assert!(nines(0.0).abs() < 1e-12);
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_label(2.0), "99%");
    }

    #[test]
    fn a_chart_holds_each_series_and_its_label() {
        let dir = std::env::temp_dir().join(format!("plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("p.svg");
        let series = |label: &str, color, base: f64| Series {
            label: label.into(),
            color,
            width: 2,
            points: (0..20)
                .map(|i| (f64::from(i) / 20.0, base + f64::from(i)))
                .collect(),
        };
        by_percentile(
            &path,
            "register",
            &[
                series("sync answered", SYNC, 500.0),
                series("async answered", ASYNC, 5.0),
            ],
        )
        .expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains(">\nsync answered\n<") && svg.contains(">\nasync answered\n<"));
        for color in ["#D66000", "#1F66C4"] {
            assert!(
                line_points(&svg, color).contains(&20),
                "a line of 20 points in {color}"
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
