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

pub mod closure;
pub mod demo;
pub mod edit;
pub mod elf;
pub mod fix;
pub mod loader;
pub mod plan;
pub mod report;
pub mod store;
pub mod survey;
