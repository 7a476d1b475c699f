//! The report's charts, drawn with plotters into SVG strings (no fonts needed: text stays SVG
//! text), wide enough to fill the page. Sizes the suites double (n = 32 ... 1024, 1 MiB ...)
//! sit on log2 axes labelled with those powers of two; a series keeps its colour in every
//! chart (the colour follows its name); small multiples put panels side by side on shared
//! axes.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The canvas: as wide as the page's content, so a figure is never squeezed.
const W: u32 = 1040;
const H: u32 = 380;

/// Distinct colours that read on light and (inverted) dark backgrounds.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The names that recur across charts, each with a colour of its own.
const NAMED: [&str; 10] = [
    parcost::id::variant::SERIAL,
    parcost::id::variant::OP_LEVEL,
    parcost::id::variant::TASK_LEVEL,
    parcost::id::variant::NAIVE,
    "pthreads",
    "openmp",
    "rayon",
    "process-pipe",
    "process-shared",
    "thread",
];

/// The colour of a series, the same for the same name in every chart: the named ones first,
/// others by a stable hash of their name.
pub fn color_for(name: &str) -> RGBColor {
    let key = name.split([' ', '(']).next().unwrap_or(name);
    if let Some(i) = NAMED.iter().position(|n| *n == key) {
        return COLORS[i % COLORS.len()];
    }
    // FNV-1a: stable across runs and machines.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    COLORS[(hash % COLORS.len() as u64) as usize]
}

type Result<T> = anyhow::Result<T>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e:?}")
}

pub use crate::figures::{HeatCell, HeatPanel, Point, Series};

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Powers of ten (rates spanning decades).
    Log10,
    /// Powers of two, labelled with them (matrix sizes, array sizes).
    Log2,
}

/// Axis settings: a label, a scale, and whether values are MiB (labelled 1 MiB ... 1 GiB).
#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    pub mib: bool,
}

impl Axis {
    pub fn linear(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            scale: Scale::Linear,
            mib: false,
        }
    }

    pub fn log(label: &str) -> Self {
        Self {
            scale: Scale::Log10,
            ..Self::linear(label)
        }
    }

    pub fn log2(label: &str) -> Self {
        Self {
            scale: Scale::Log2,
            ..Self::linear(label)
        }
    }

    /// A log2 axis of sizes in MiB.
    pub fn mib(label: &str) -> Self {
        Self {
            mib: true,
            ..Self::log2(label)
        }
    }

    fn is_log(&self) -> bool {
        self.scale != Scale::Linear
    }

    fn to(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => v,
            Scale::Log10 => v.max(1e-300).log10(),
            Scale::Log2 => v.max(1e-300).log2(),
        }
    }

    fn real(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => v,
            Scale::Log10 => 10f64.powf(v),
            Scale::Log2 => 2f64.powf(v),
        }
    }

    /// The label at `v` (in axis space): on a log2 axis only at whole powers of two.
    fn label_of(&self, v: f64) -> String {
        if self.scale == Scale::Log2 {
            if (v - v.round()).abs() > 1e-6 {
                return String::new();
            }
            let real = 2f64.powi(v.round() as i32);
            if self.mib {
                return if real >= 1024.0 {
                    format!("{} GiB", short(real / 1024.0))
                } else {
                    format!("{} MiB", short(real))
                };
            }
            return format!("{}", real.round());
        }
        short(self.real(v))
    }

    /// How many labels to ask plotters for: one per power of two on a log2 axis.
    fn labels(&self, range: &std::ops::Range<f64>) -> usize {
        match self.scale {
            Scale::Log2 => ((range.end - range.start).ceil() as usize + 1).clamp(2, 24),
            _ => 8,
        }
    }

    fn range(&self, values: impl Iterator<Item = f64>, from_zero: bool) -> std::ops::Range<f64> {
        let mapped: Vec<f64> = values
            .filter(|v| v.is_finite() && (!self.is_log() || *v > 0.0))
            .map(|v| self.to(v))
            .collect();
        let (mut lo, mut hi) = mapped
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        if !lo.is_finite() {
            return 0.0..1.0;
        }
        if from_zero && !self.is_log() {
            lo = lo.min(0.0);
        }
        let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.5 };
        if !(from_zero && !self.is_log() && lo == 0.0) {
            lo -= pad;
        }
        hi += pad;
        lo..hi
    }
}

/// A number in a few significant digits: 1.2k, 34, 0.56.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.3}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
    .replace(".000", "")
}

/// Vertical and horizontal reference lines drawn across a chart.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    pub vertical: Vec<(f64, String)>,
    pub horizontal: Vec<(f64, String)>,
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn legend<'a, 'b>(chart: &mut Chart<'a, 'b>) -> Result<()>
where
    'b: 'a,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(err)
}

/// One panel of a small multiple: its title, series and reference lines.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    pub marks: Marks,
}

/// Lines with error bars over x, in one panel.
pub fn lines(title: &str, x: Axis, y: Axis, series: &[Series], marks: &Marks) -> Result<String> {
    let panel = Panel {
        title: String::new(),
        series: series.to_vec(),
        marks: marks.clone(),
    };
    lines_grid(title, &x, &y, std::slice::from_ref(&panel))
}

/// Panels side by side on shared axes (small multiples): the same x and y range in each, so
/// a glance compares them.
pub fn lines_grid(title: &str, x: &Axis, y: &Axis, panels: &[Panel]) -> Result<String> {
    svg(|root| {
        let root = root.titled(title, ("sans-serif", 17)).map_err(err)?;
        let all = || {
            panels
                .iter()
                .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter()))
        };
        let xs = x.range(
            all().map(|p| p.x).chain(
                panels
                    .iter()
                    .flat_map(|p| p.marks.vertical.iter().map(|m| m.0)),
            ),
            false,
        );
        let ys = y.range(
            all().flat_map(|p| [p.lo, p.hi, p.y]).chain(
                panels
                    .iter()
                    .flat_map(|p| p.marks.horizontal.iter().map(|m| m.0)),
            ),
            true,
        );
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_lines(area, panel, x, y, xs.clone(), ys.clone())?;
        }
        Ok(())
    })
}

fn draw_lines(
    area: &DrawingArea<SVGBackend, Shift>,
    panel: &Panel,
    x: &Axis,
    y: &Axis,
    xs: std::ops::Range<f64>,
    ys: std::ops::Range<f64>,
) -> Result<()> {
    let mut builder = ChartBuilder::on(area);
    if !panel.title.is_empty() {
        builder.caption(&panel.title, ("sans-serif", 14));
    }
    let mut chart = builder
        .margin(10)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(xs.clone(), ys.clone())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x.label.as_str())
        .y_desc(y.label.as_str())
        .x_labels(x.labels(&xs))
        .y_labels(y.labels(&ys))
        .x_label_formatter(&|v| x.label_of(*v))
        .y_label_formatter(&|v| y.label_of(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for (v, label) in &panel.marks.vertical {
        let vx = x.to(*v);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(vx, ys.start), (vx, ys.end)],
                BLACK.mix(0.35).stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (vx, ys.end),
                ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK.mix(0.7))
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            )))
            .map_err(err)?;
    }
    for (v, label) in &panel.marks.horizontal {
        let vy = y.to(*v);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xs.start, vy), (xs.end, vy)],
                RGBColor(200, 0, 0).mix(0.6).stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (xs.start, vy),
                ("sans-serif", 11)
                    .into_font()
                    .color(&RGBColor(160, 0, 0))
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            )))
            .map_err(err)?;
    }
    for s in &panel.series {
        let c = color_for(&s.name);
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (x.to(p.x), y.to(p.y))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(lx, ly)| {
                PathElement::new(vec![(lx, ly), (lx + 16, ly)], c.stroke_width(2))
            });
        chart
            .draw_series(
                pts.iter()
                    .map(|&(px, py)| Circle::new((px, py), 3, c.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(s.points.iter().filter(|p| p.hi > p.lo).map(|p| {
                ErrorBar::new_vertical(
                    x.to(p.x),
                    y.to(p.lo),
                    y.to(p.y),
                    y.to(p.hi),
                    c.stroke_width(1),
                    6,
                )
            }))
            .map_err(err)?;
    }
    legend(&mut chart)
}

/// Grouped bars with error bars: one group per category, one bar per series.
pub fn bars(
    title: &str,
    y: Axis,
    categories: &[String],
    series: &[(String, Vec<Option<Point>>)],
    marks: &Marks,
) -> Result<String> {
    svg(|root| {
        let values = series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().flat_map(|p| [p.lo, p.hi, p.y]))
            .chain(marks.horizontal.iter().map(|m| m.0));
        let ys = y.range(values, true);
        // Headroom for the legend above the tallest bar.
        let ys = ys.start..ys.end + 0.35 * (ys.end - ys.start);
        let n = categories.len().max(1) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n, ys.clone())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(2 * categories.len() + 1)
            .x_label_formatter(&|v| {
                let i = (*v - 0.5).round();
                if (*v - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                    categories.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(y.label.as_str())
            .y_label_formatter(&|v| y.label_of(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        let k = series.len().max(1) as f64;
        let width = 0.8 / k;
        let base = if y.is_log() {
            ys.start
        } else {
            y.to(0.0).max(ys.start)
        };
        for (si, (name, points)) in series.iter().enumerate() {
            let c = color_for(name);
            let rects: Vec<_> = points
                .iter()
                .enumerate()
                .filter_map(|(ci, p)| p.map(|p| (ci, p)))
                .map(|(ci, p)| {
                    let x0 = ci as f64 + 0.1 + si as f64 * width;
                    Rectangle::new([(x0, base), (x0 + width * 0.9, y.to(p.y))], c.filled())
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(name.clone())
                .legend(move |(lx, ly)| {
                    Rectangle::new([(lx, ly - 5), (lx + 12, ly + 5)], c.filled())
                });
            chart
                .draw_series(points.iter().enumerate().filter_map(|(ci, p)| {
                    let p = (*p)?;
                    (p.hi > p.lo).then(|| {
                        let xm = ci as f64 + 0.1 + si as f64 * width + width * 0.45;
                        ErrorBar::new_vertical(
                            xm,
                            y.to(p.lo),
                            y.to(p.y),
                            y.to(p.hi),
                            BLACK.stroke_width(1),
                            4,
                        )
                    })
                }))
                .map_err(err)?;
        }
        for (v, label) in &marks.horizontal {
            let vy = y.to(*v);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, vy), (n, vy)],
                    BLACK.mix(0.5).stroke_width(1),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (0.0, vy),
                    ("sans-serif", 11)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Bottom)),
                )))
                .map_err(err)?;
        }
        legend(&mut chart)?;
        Ok(())
    })
}

/// Heatmaps side by side (one a layer), each cell coloured and labelled by its time over its
/// own panel's best (the figures computed that ratio), on one shared log colour scale (the same
/// shade is the same slowdown in every panel); the best cell is outlined.
pub fn heatmaps(title: &str, panels: &[HeatPanel]) -> Result<String> {
    let span = panels
        .iter()
        .map(|p| {
            p.cells
                .iter()
                .flatten()
                .flatten()
                .map(|c| c.times_best)
                .fold(0.0, f64::max)
                .log10()
        })
        .filter(|s| s.is_finite())
        .fold(0.3, f64::max);
    svg(|root| {
        let root = root.titled(title, ("sans-serif", 17)).map_err(err)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_heatmap(area, panel, span)?;
        }
        Ok(())
    })
}

fn draw_heatmap(area: &DrawingArea<SVGBackend, Shift>, panel: &HeatPanel, span: f64) -> Result<()> {
    let (x, y, cells) = (&panel.x, &panel.y, &panel.cells);
    {
        let root = area;
        let (nx, ny) = (x.1.len().max(1) as f64, y.1.len().max(1) as f64);
        let mut builder = ChartBuilder::on(root);
        if !panel.title.is_empty() {
            builder.caption(&panel.title, ("sans-serif", 14));
        }
        let mut chart = builder
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..nx, 0.0..ny)
            .map_err(err)?;
        let label = |v: f64, axis: &[u64]| {
            let i = (v - 0.5).round();
            if (v - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                axis.get(i as usize)
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * x.1.len() + 1)
            .y_labels(2 * y.1.len() + 1)
            .x_desc(x.0.as_str())
            .y_desc(y.0.as_str())
            .x_label_formatter(&|v| label(*v, &x.1))
            .y_label_formatter(&|v| label(*v, &y.1))
            .draw()
            .map_err(err)?;
        for (yi, row) in cells.iter().enumerate() {
            for (xi, cell) in row.iter().enumerate() {
                let (x0, y0) = (xi as f64, yi as f64);
                let Some(cell) = cell else {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                            RGBColor(240, 240, 240).filled(),
                        )))
                        .map_err(err)?;
                    continue;
                };
                // Pixel geometry: the shade's place on the shared log scale.
                let slow = cell.times_best.log10() / span;
                let shade = RGBColor(
                    (255.0 - 40.0 * slow) as u8,
                    (245.0 - 200.0 * slow) as u8,
                    (230.0 - 200.0 * slow) as u8,
                );
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                        shade.filled(),
                    )))
                    .map_err(err)?;
                let text = format!(
                    "{}x{}",
                    short(cell.times_best),
                    if cell.single { " (1 run)" } else { "" }
                );
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (x0 + 0.5, y0 + 0.5),
                        ("sans-serif", 13)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))
                    .map_err(err)?;
                if cell.best {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x0 + 0.03, y0 + 0.03), (x0 + 0.97, y0 + 0.97)],
                            RGBColor(0, 120, 0).stroke_width(3),
                        )))
                        .map_err(err)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels() {
        let s = Series {
            name: "pipe".into(),
            points: vec![
                Point {
                    x: 1.0,
                    y: 2.0,
                    lo: 1.5,
                    hi: 2.5,
                },
                Point {
                    x: 64.0,
                    y: 3.0,
                    lo: 2.0,
                    hi: 4.0,
                },
            ],
        };
        let marks = Marks {
            vertical: vec![(2.0, "physical".into())],
            horizontal: vec![(10.0, "memcpy".into())],
        };
        let out = lines("rates", Axis::log("MiB"), Axis::log("GB/s"), &[s], &marks).expect("draws");
        assert!(out.starts_with("<svg") && out.contains("pipe") && out.contains("memcpy"));
        let cell = |times_best: f64, single: bool| {
            Some(HeatCell {
                time_ns: 1e6 * times_best,
                times_best,
                best: times_best == 1.0,
                single,
            })
        };
        let panel = HeatPanel {
            title: String::new(),
            x: ("tasks".into(), vec![1, 2]),
            y: ("blas".into(), vec![1]),
            cells: vec![vec![cell(1.0, false), cell(3.0, true)]],
            usage: vec![vec![None, None]],
        };
        let out = heatmaps("grid", &[panel]).expect("draws");
        assert!(out.contains("3.00x (1 run)"), "{out}");
        assert_eq!(short(1234.0), "1234");
        assert_eq!(short(12_345.0), "12.345k");
        assert_eq!(short(0.5), "0.500");
    }
}
