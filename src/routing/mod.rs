//! Exchange kinds and binding tables (in progress).
