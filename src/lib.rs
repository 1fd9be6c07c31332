//! unfarm: rewrite ELF RUNPATHs that point into Nix symlink farms to the real
//! `lib` outputs, verify the result, and explain every store reference.
//!
//! The pipeline (see ARCHITECTURE.md): walk outputs -> read ELF facts ->
//! resolve needs -> plan canonical RUNPATH -> edit ELF -> verify -> report, and
//! scan references -> closure graph -> why / cost.

pub mod atomic;
pub mod check;
pub mod closure;
pub mod cost;
pub mod demo;
pub mod edit;
pub mod elf;
pub mod farm;
pub mod fix;
pub mod ldd;
pub mod needs;
pub mod plan;
pub mod resolve;
pub mod scan;
pub mod snapshot;
pub mod store;
pub mod survey;
pub mod walk;
