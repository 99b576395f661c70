//! PNG charts of usage, drawn in memory with plotters (used by the bot's /stats and `analytics chart`).
//!
//! Text is set in DejaVu Sans, embedded from the `dejavu` crate, so charts have labels on any host.

use std::sync::OnceLock;

use chrono::NaiveDate;
use plotters::prelude::*;
use plotters::style::FontStyle;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 500;
const FONT: &str = "sans-serif";
const BAR: RGBColor = RGBColor(0x2f, 0x6f, 0xb3);

/// Why a chart could not be made.
#[derive(thiserror::Error, Debug)]
pub enum ChartError {
    /// The embedded font could not be loaded.
    #[error("embedded chart font is invalid")]
    Font,
    /// plotters failed while drawing.
    #[error("drawing chart: {0}")]
    Draw(String),
    /// The pixels could not be encoded as PNG.
    #[error("encoding PNG: {0}")]
    Encode(#[from] png::EncodingError),
}

fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

fn draw_err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// Compact token counts for axis labels: 950, 12k, 3.4M.
pub fn human_count(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", n / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// A bar chart of tokens per day (one bar per entry, in the given order) as PNG bytes.
/// `axes` are the x and y axis names, in the reader's language.
pub fn daily_tokens_png(
    days: &[(NaiveDate, i64)],
    title: &str,
    axes: [&str; 2],
) -> Result<Vec<u8>, ChartError> {
    register_font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
        let n = days.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..max * 1.08)
            .map_err(draw_err)?;
        let x_label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            days.get(i as usize)
                .map(|d| d.0.format("%m-%d").to_string())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(n.min(12))
            .x_label_formatter(&x_label)
            .y_labels(8)
            .y_label_formatter(&|y| human_count(*y))
            .x_desc(axes[0])
            .y_desc(axes[1])
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(draw_err)?;
        let half = if n > 60 { 0.5 } else { 0.38 };
        chart
            .draw_series(days.iter().enumerate().map(|(i, (_, tokens))| {
                let x = i as f64;
                Rectangle::new([(x - half, 0.0), (x + half, *tokens as f64)], BAR.filled())
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&pixels, WIDTH, HEIGHT)
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

    #[test]
    fn draws_a_png_for_some_days_and_for_none() {
        let day = |d| NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        let png = daily_tokens_png(
            &[(day(1), 10), (day(2), 0), (day(3), 12_345)],
            "three days",
            ["day", "tokens"],
        )
        .unwrap();
        assert!(png.starts_with(PNG_SIGNATURE));
        let empty = daily_tokens_png(&[], "nothing yet", ["day", "tokens"]).unwrap();
        assert!(empty.starts_with(PNG_SIGNATURE));
    }

    #[test]
    fn human_count_is_short() {
        assert_eq!(human_count(950.0), "950");
        assert_eq!(human_count(1_500.0), "1.5k");
        assert_eq!(human_count(120_000.0), "120k");
        assert_eq!(human_count(3_400_000.0), "3.4M");
    }
}
