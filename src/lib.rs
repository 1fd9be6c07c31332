//! unfarm: rewrite ELF RUNPATHs that point into Nix symlink farms to the real
//! `lib` outputs, verify the result, and explain every store reference.
//!
//! Layers, lowest first (ARCHITECTURE.md): a module imports only from
//! lower layers, never from a sibling on its own layer or from above;
//! `tests/fast/layers.rs` reads this list and checks every `crate::` path.
//!
//! 0. [`store`]: the store dir, store paths, the listing of its hashes.
//! 1. [`elf`]: the one ELF reader; [`farm`]: what a farm is, hop by hop.
//! 2. [`walk`]: the one walker over outputs and store paths.
//! 3. [`loader`]: glibc ld.so's search, computed names, `unfarm ldd`.
//! 4. [`plan`]: pure, the canonical RUNPATH of one search list.
//! 5. [`edit`]: the ELF editor, and the plan -> byte edit step.
//! 6. [`survey`]: walk outputs, read facts, plan every object.
//! 7. [`closure`]: scan references, closure graph, cost, why; [`fix`]: verify and write in place.
//! 8. [`check`]: `unfarm check`'s findings; [`demo`]: the demo scenario.
//! 9. [`report`]: renders what the layers below found, text and JSON.
//! 10. `cli` (the binary, `src/main.rs`): flags, then one pipeline, then a renderer.

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
