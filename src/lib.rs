//! unfarm: rewrite ELF RUNPATHs that point into Nix symlink farms to the real
//! `lib` outputs, verify the result, and explain every store reference.
//!
//! The pipeline (see ARCHITECTURE.md): walk outputs -> read ELF facts ->
//! resolve needs -> plan canonical RUNPATH -> edit ELF -> verify -> report, and
//! scan references -> closure graph -> why / cost.

pub mod atomic;
pub mod edit;
pub mod store;
