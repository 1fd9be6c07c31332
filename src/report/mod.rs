//! The printer layer: every rendering of what the pipelines found, for
//! humans (text, ANSI colour that the caller's stream strips when it must)
//! and as JSON. The CLI picks a renderer and writes its result; nothing
//! else words output for users.
//!
//! Renders only: the analysis (`unfarm check`'s findings included, made by
//! [`crate::check`]) happens below. One module a command ([`check`], [`fix`], [`ldd`],
//! [`closure`] and `why`), and [`loader`] the loader-model line two of
//! them share.

pub mod check;
pub mod closure;
pub mod fix;
pub mod ldd;
pub mod loader;
pub mod missing;
mod words;

pub use words::{human_size, plural};
