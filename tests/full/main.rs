//! The full tier: oracles that need root (mounts, faults), a real Nix, qemu-user,
//! the cross compilers, more linkers and two patchelfs, and the corpora of every
//! ELF file on the machine. `scripts/test.sh` installs all of it and runs
//! `cargo test --features full-tests`; a missing tool fails a test, never skips it.

#[path = "../common/mod.rs"]
mod common;

mod edit_corpus;
mod edit_interp;
mod edit_layouts;
mod edit_oracles;
mod edit_patchelf_corpus;
mod fix_faults;
mod fix_files;
mod loader_differential;
mod nix_cost;
mod nix_e2e;
mod nix_files;
mod nix_refs;
mod own_output_matrix;
mod pypi_computed;
mod pypi_libs;
