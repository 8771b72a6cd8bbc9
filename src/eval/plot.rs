//! `hark eval --plot FILE.png`: a DET-style picture of the results, recall against false
//! accepts per non-target word (log scale) over the curve's thresholds, one line per scenario
//! with a dot at the head's default threshold. Drawn with plotters into a pixel buffer,
//! labelled in DejaVu Sans (Debian's `fonts-dejavu-core`), encoded as PNG and written
//! atomically.

use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{curve_label, Results, Score};
use crate::{Error, Result};

/// Picture size in pixels.
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 640;
/// The left edge of the false-accept axis; a point with none is drawn there.
const FA_FLOOR: f64 = 1e-4;
/// The lines' colours, in scenario order (then again).
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];
/// Where the labels' font is looked for.
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// One scenario's line: its name, its points (false accepts per non-target word, recall) in
/// threshold order, and its point at the default threshold.
type Line = (String, Vec<(f64, f64)>, Option<(f64, f64)>);

/// Checks, before a long run, that the plot can be written at `path`: a `.png` name in a
/// folder that exists, and not a folder itself.
pub fn check_path(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let reason = if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        "the plot is a PNG picture: name the file *.png"
    } else if !dir.is_dir() {
        "cannot write the plot: its folder does not exist"
    } else if path.is_dir() {
        "cannot write the plot: that is a folder"
    } else {
        return Ok(());
    };
    Err(Error::invalid(path, reason))
}

/// Draws the curve of every scenario in `results` that has targets and curve points at
/// `thresholds`, and writes the PNG to `path` atomically.
pub fn write(path: &Path, results: &[(String, Results)], thresholds: &[f32]) -> Result<()> {
    check_path(path)?;
    let lines = lines(results, thresholds);
    if lines.is_empty() {
        return Err(Error::invalid(
            path,
            "nothing to plot: no scenario has curve points",
        ));
    }
    register_font()?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut rgb, &lines)
        .map_err(|e| Error::invalid(path, format!("cannot draw the plot: {e}")))?;
    let mut png = Vec::new();
    let mut enc = png::Encoder::new(&mut png, WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&rgb))
        .map_err(|e| Error::invalid(path, format!("cannot encode the plot: {e}")))?;
    crate::util::write_atomic(path, &png)
}

/// The lines to draw: scenarios with targets (the crowd rows have none) and curve points.
fn lines(results: &[(String, Results)], thresholds: &[f32]) -> Vec<Line> {
    let point = |s: &Score| (s.fa_per_word().max(FA_FLOOR), s.recall());
    results
        .iter()
        .filter_map(|(scenario, rows)| {
            let find = |label: &str| rows.iter().find(|(l, _)| l == label).map(|(_, s)| s);
            let pts: Vec<(f64, f64)> = thresholds
                .iter()
                .filter_map(|&t| find(&curve_label(t)))
                .filter(|s| s.targets > 0)
                .map(point)
                .collect();
            let default = find("default").filter(|s| s.targets > 0).map(point);
            (!pts.is_empty()).then(|| (scenario.clone(), pts, default))
        })
        .collect()
}

/// Loads the labels' font once.
fn register_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONTS
            .iter()
            .find_map(|f| std::fs::read(f).ok())
            .ok_or(PathBuf::from(FONTS[0]))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| PathBuf::from(FONTS[0]))
    })
    .clone()
    .map_err(|p| {
        Error::invalid(
            p,
            "no usable font for the plot's labels (install Debian's fonts-dejavu-core)",
        )
    })
}

/// Draws the chart into an RGB buffer of `WIDTH` x `HEIGHT`.
fn draw(rgb: &mut [u8], lines: &[Line]) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let fa_max = lines
        .iter()
        .flat_map(|(_, pts, _)| pts.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let fa_max = 10f64.powf(fa_max.log10().ceil());
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "hark eval: recall against false accepts over thresholds",
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((FA_FLOOR..fa_max).log_scale(), 0.0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("false accepts per non-target word (log scale; none is drawn at the left edge)")
        .y_desc("recall")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for (i, (name, pts, default)) in lines.iter().enumerate() {
        let color = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 2, color.filled())))?;
        chart.draw_series(
            default
                .iter()
                .map(|&p| Circle::new(p, 6, color.stroke_width(2))),
        )?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results of two scenarios with curve points, and a crowd row without targets.
    fn results(thresholds: &[f32]) -> Vec<(String, Results)> {
        let row = |t: f32, k: f64| {
            let s = Score {
                targets: 100,
                hits: (100.0 * (1.0 - t as f64 * k)).round() as usize,
                nontargets: 1000,
                false_accepts: (1000.0 * (1.0 - t as f64).powi(6)) as usize,
                ..Default::default()
            };
            (curve_label(t), s)
        };
        let scenario = |k: f64| {
            let mut rows: Results = thresholds.iter().map(|&t| row(t, k)).collect();
            rows.insert(0, ("default".to_string(), row(0.5, k).1));
            rows
        };
        let crowd = Score {
            nontargets: 1400,
            false_accepts: 3,
            ..Default::default()
        };
        vec![
            ("same speaker".to_string(), scenario(0.2)),
            ("cross-speaker".to_string(), scenario(0.7)),
            (
                "crowd (same speaker)".to_string(),
                vec![("default".to_string(), crowd)],
            ),
        ]
    }

    #[test]
    fn the_plot_is_a_png_of_its_size_with_a_line_per_scenario() {
        let th = super::super::curve_thresholds();
        let res = results(&th);
        assert_eq!(lines(&res, &th).len(), 2, "the crowd row has no curve");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("det.png");
        write(&path, &res, &th).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        let px = &buf[..info.buffer_size()];
        let coloured = px
            .chunks(3)
            .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 60)
            .count();
        assert!(
            coloured > 500,
            "only {coloured} coloured pixels: no lines drawn"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn a_bad_path_is_a_one_line_error_naming_it() {
        let th = super::super::curve_thresholds();
        let res = results(&th);
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("folder.png");
        std::fs::create_dir(&folder).unwrap();
        let folder = folder.display().to_string();
        for bad in ["/no/such/folder/det.png", "det.txt", &folder] {
            let e = write(Path::new(bad), &res, &th).unwrap_err().to_string();
            assert!(e.contains(bad) && !e.contains('\n'), "{e}");
        }
        let e = write(&dir.path().join("x.png"), &[], &th)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing to plot"), "{e}");
    }
}
