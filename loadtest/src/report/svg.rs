//! A small SVG writer: the few elements charts need, with text measured ahead of drawing so
//! the layout can keep labels apart (and tests can check that it did).

use std::fmt::Write;

/// The font every chart uses: the reader's own sans-serif, never one fetched from the web.
pub const FONT: &str = "DejaVu Sans, Arial, Helvetica, sans-serif";

/// A box in SVG coordinates (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn right(&self) -> f64 {
        self.x + self.w
    }

    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }

    /// True when the two boxes share more than a point of area.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }

    /// True when `other` lies wholly inside this box.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }
}

/// How wide `text` is at `size` px, erring wide: per-character widths a little above those of
/// DejaVu Sans (the widest common sans-serif), so a label never takes more room than measured.
pub fn text_width(text: &str, size: f64) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 0.36,
            'f' | 't' | 'r' | '(' | ')' | '-' | 'I' => 0.45,
            'm' | 'w' | 'M' | 'W' | '%' => 0.98,
            c if c.is_ascii_uppercase() => 0.78,
            '·' | '÷' | '×' | '→' | '–' => 0.85,
            _ => 0.66,
        })
        .sum();
    em * size
}

/// The box of `text` at `size` px drawn at (`x`, baseline `y`) with `anchor`.
pub fn text_box(text: &str, size: f64, x: f64, y: f64, anchor: Anchor) -> Rect {
    let w = text_width(text, size);
    let left = match anchor {
        Anchor::Start => x,
        Anchor::Middle => x - w / 2.0,
        Anchor::End => x - w,
    };
    // Ascenders reach about 0.8 em above the baseline, descenders 0.25 em below.
    Rect {
        x: left,
        y: y - 0.8 * size,
        w,
        h: 1.05 * size,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// How a line is drawn: a colour, a width and a dash pattern ("" for solid).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stroke {
    pub color: &'static str,
    pub width: f64,
    pub dash: &'static str,
}

/// An SVG document being written.
pub struct Svg {
    out: String,
}

impl Svg {
    pub fn new(width: f64, height: f64, title: &str) -> Svg {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg width=\"{width:.0}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"{FONT}\" role=\"img\">\
             <title>{}</title><rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>",
            escape(title)
        );
        Svg { out }
    }

    pub fn rect(&mut self, r: &Rect, fill: &str, opacity: f64) {
        let _ = writeln!(
            self.out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" \
             fill-opacity=\"{opacity}\"/>",
            r.x, r.y, r.w, r.h
        );
    }

    pub fn line(&mut self, from: (f64, f64), to: (f64, f64), stroke: Stroke) {
        self.polyline(&[from, to], stroke, "");
    }

    /// A line through `points`; `class` names the series for readers of the SVG (and tests).
    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke, class: &str) {
        let mut coordinates = String::new();
        for (x, y) in points {
            let _ = write!(coordinates, "{x:.1},{y:.1} ");
        }
        let dash = if stroke.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", stroke.dash)
        };
        let class = if class.is_empty() {
            String::new()
        } else {
            format!(" data-series=\"{}\"", escape(class))
        };
        let _ = writeln!(
            self.out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" \
             stroke-linejoin=\"round\"{dash}{class}/>",
            coordinates.trim_end(),
            stroke.color,
            stroke.width
        );
    }

    pub fn text(&mut self, text: &str, size: f64, at: (f64, f64), anchor: Anchor, fill: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{size}\" text-anchor=\"{}\" \
             fill=\"{fill}\">{}</text>",
            at.0,
            at.1,
            anchor.name(),
            escape(text)
        );
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// Text made safe for HTML and SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_overlap_only_when_they_share_area() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let touching = Rect { x: 10.0, ..a };
        let crossing = Rect {
            x: 5.0,
            y: 5.0,
            ..a
        };
        assert!(!a.overlaps(&touching));
        assert!(a.overlaps(&crossing));
        assert!(!a.contains(&crossing));
        assert!(a.contains(&Rect { w: 5.0, ..a }));
    }

    #[test]
    fn text_is_measured_by_its_characters() {
        assert!(text_width("MMMM", 12.0) > text_width("iiii", 12.0) * 2.0);
        let b = text_box("10 s", 12.0, 100.0, 50.0, Anchor::End);
        assert_eq!(b.right(), 100.0);
        assert!(b.y < 50.0 && b.bottom() > 50.0);
        let mut svg = Svg::new(10.0, 10.0, "a <b>");
        svg.text("x & y", 12.0, (1.0, 2.0), Anchor::Middle, "#000");
        let out = svg.finish();
        assert!(out.contains("<title>a &lt;b&gt;</title>"));
        assert!(out.contains(">x &amp; y</text>"));
    }
}
