//! Reports: the JSON model, building it from a run, the HTML page with charts, and `compare`.
//!
//! - `model`: the serde structs of a report (the JSON format).
//! - `build`: turns a finished run into a `Report`, including the loss check.
//! - `html`: a self-contained page with inline SVG charts.
//! - `compare`: the Markdown side-by-side table of several reports.

pub mod build;
pub mod compare;
pub mod html;
pub mod model;
