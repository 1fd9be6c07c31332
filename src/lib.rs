//! unfarm: rewrite ELF RUNPATHs that point into Nix symlink farms to the real
//! `lib` outputs, verify the result, and explain every store reference.
//!
//! Two pipelines (see ARCHITECTURE.md), one folder per stage:
//!
//! - fix: [`survey`] (walk outputs, read ELF facts, gather what dirs offer)
//!   -> [`plan`] (pure: the canonical RUNPATH) -> [`edit`] (pure: the ELF
//!   editor) -> [`fix`] (verify on disk, write in place or atomically);
//! - explain: [`closure`] (scan references, closure graph, cost, why) ->
//!   [`report`] (findings of `unfarm check`).
//!
//! Below both: [`store`] (store dir and paths), [`elf`] (the one ELF reader)
//! and [`loader`] (glibc ld.so's search, farm hops, `unfarm ldd`).
//! [`demo`] builds the self-contained demo scenario.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// `Serialize` and `Display` for a fieldless enum from its `as_str`: the one
/// place its stable names (the JSON strings, the words in the text) are
/// written.
macro_rules! named_by_as_str {
    ($($t:ty),+ $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

pub mod check;
pub mod closure;
pub mod demo;
pub mod edit;
pub mod elf;
pub mod farm;
pub mod fix;
pub mod loader;
pub mod plan;
pub mod report;
pub mod store;
pub mod survey;
pub mod walk;
