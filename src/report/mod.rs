//! Findings about outputs (`unfarm check`): typed kinds and severities,
//! grouping, and their text rendering.

pub mod check;
