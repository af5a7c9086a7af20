//! Reports: the JSON model, building it from a run, the HTML pages with charts, and `compare`.
//!
//! - `model`: the serde structs of a report (the JSON format).
//! - `build`: turns a finished run into a `Report`, including the loss check.
//! - `html`: the self-contained page of one run; `compare_html`: several runs side by side.
//! - `charts`: which charts a page has, built from the reports; `rates`: rate buckets that fit
//!   the run's length.
//! - `chart`: a chart and its SVG; `layout`: where its labels go (never on each other or on
//!   the plot); `axis`: ticks in human units; `svg`: the SVG writer and text measures;
//!   `palette`: colour-blind-safe strokes.
//! - `compare`: the Markdown side-by-side table of several reports (medians of several runs).
//! - `verdict`: the one-line verdict at the end of a run; `soak_summary`: a soak's summary
//!   (what happened, then PASS or each failure).

pub mod axis;
pub mod build;
pub mod chart;
pub mod charts;
pub mod compare;
pub mod compare_html;
pub mod html;
pub mod layout;
pub mod model;
pub mod palette;
pub mod rates;
pub mod soak_summary;
pub mod svg;
pub mod verdict;

#[cfg(test)]
mod fixture_tests;
