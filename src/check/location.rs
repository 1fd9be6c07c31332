//! Where in a file a finding is: a typed value that findings sort and
//! group by; its words (`RUNPATH[2] /x`, `offset 0x1a2b, line 3`) are its
//! `Display`, also its JSON string.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::plan::Tag;
use crate::plan::needs::Provenance;

/// Where in a file a finding is. The order of the variants is the order
/// findings of one file and severity are listed in; inside a variant,
/// numbers compare as numbers (`offset 0x20` before `offset 0x100`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// The file as a whole (it could not be read): no words.
    File,
    /// A search list as a whole: `RUNPATH`.
    List(Tag),
    /// One entry of a search list: `RUNPATH[2] /x/lib`.
    Entry {
        /// Which list.
        tag: Tag,
        /// The entry's index in it.
        index: usize,
        /// The entry as written.
        text: String,
    },
    /// The dynamic symbol table (it imports `dlopen`): `dynamic symbols`.
    DynamicSymbols,
    /// The file's type (a FIFO, a device): `file type`.
    FileType,
    /// A wrapper's dir in `LD_LIBRARY_PATH`: `line 3, LD_LIBRARY_PATH /x`.
    Wrapper {
        /// Where in the wrapper the dir is named.
        at: WrapperAt,
        /// The dir as written.
        dir: String,
    },
    /// A need: `need libx.so.1`, or with why it is one, for a missing
    /// library: `need libx.so.1 (needed)`.
    Need {
        /// The library's name.
        name: String,
        /// Why it is a need, when the finding says it.
        provenance: Option<Provenance>,
    },
    /// Bytes naming a store path: `offset 0x1a2b`, `offset 0x60, line 2`
    /// in a text file.
    Offset {
        /// The file offset.
        offset: u64,
        /// The 1-based line, in a text file.
        line: Option<u64>,
    },
    /// A symlink (that loops): `symlink`.
    Symlink,
    /// A symlink and its target: `symlink -> /nix/store/…`.
    SymlinkTo(PathBuf),
}

/// Where a wrapper names a dir: a script's line or a binary wrapper's
/// offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WrapperAt {
    /// The 1-based line of a script: `line 3`.
    Line(usize),
    /// The offset of the line in a `makeBinaryWrapper` program: `offset 0x1a2b`.
    Offset(usize),
}

impl fmt::Display for WrapperAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WrapperAt::Line(n) => write!(f, "line {n}"),
            WrapperAt::Offset(o) => write!(f, "offset {o:#x}"),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => Ok(()),
            Location::List(tag) => write!(f, "{tag}"),
            Location::Entry { tag, index, text } => write!(f, "{tag}[{index}] {text}"),
            Location::DynamicSymbols => f.write_str("dynamic symbols"),
            Location::FileType => f.write_str("file type"),
            Location::Wrapper { at, dir } => write!(f, "{at}, LD_LIBRARY_PATH {dir}"),
            Location::Need {
                name,
                provenance: None,
            } => write!(f, "need {name}"),
            Location::Need {
                name,
                provenance: Some(p),
            } => write!(f, "need {name} ({p})"),
            Location::Offset { offset, line: None } => write!(f, "offset {offset:#x}"),
            Location::Offset {
                offset,
                line: Some(l),
            } => write!(f, "offset {offset:#x}, line {l}"),
            Location::Symlink => f.write_str("symlink"),
            Location::SymlinkTo(target) => write!(f, "symlink -> {}", target.display()),
        }
    }
}

impl Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words are the strings `check` printed and serialised before
    /// locations were typed (tests and scripts match them).
    #[test]
    fn words_as_before() {
        let cases = [
            (Location::File, ""),
            (Location::List(Tag::Runpath), "RUNPATH"),
            (
                Location::Entry {
                    tag: Tag::Rpath,
                    index: 2,
                    text: "$ORIGIN/../lib".into(),
                },
                "RPATH[2] $ORIGIN/../lib",
            ),
            (Location::DynamicSymbols, "dynamic symbols"),
            (Location::FileType, "file type"),
            (
                Location::Wrapper {
                    at: WrapperAt::Offset(0x1a2b),
                    dir: "/x/lib".into(),
                },
                "offset 0x1a2b, LD_LIBRARY_PATH /x/lib",
            ),
            (
                Location::Wrapper {
                    at: WrapperAt::Line(3),
                    dir: "/x/lib".into(),
                },
                "line 3, LD_LIBRARY_PATH /x/lib",
            ),
            (
                Location::Need {
                    name: "libx.so.1".into(),
                    provenance: None,
                },
                "need libx.so.1",
            ),
            (
                Location::Need {
                    name: "libx.so.1".into(),
                    provenance: Some(Provenance::Needed),
                },
                "need libx.so.1 (needed)",
            ),
            (
                Location::Offset {
                    offset: 0x60,
                    line: Some(2),
                },
                "offset 0x60, line 2",
            ),
            (
                Location::Offset {
                    offset: 0x60,
                    line: None,
                },
                "offset 0x60",
            ),
            (Location::Symlink, "symlink"),
            (
                Location::SymlinkTo("/s/farm/l".into()),
                "symlink -> /s/farm/l",
            ),
        ];
        for (loc, words) in cases {
            assert_eq!(loc.to_string(), words);
            assert_eq!(serde_json::to_value(&loc).unwrap(), words);
        }
    }

    /// Numbers order as numbers: the string order put `offset 0x100`
    /// before `offset 0x20`, and `RUNPATH[10]` before `RUNPATH[2]`.
    #[test]
    fn numbers_order_as_numbers() {
        let at = |offset| Location::Offset { offset, line: None };
        assert!(at(0x20) < at(0x100));
        let entry = |index| Location::Entry {
            tag: Tag::Runpath,
            index,
            text: "/x".into(),
        };
        assert!(entry(2) < entry(10));
    }
}
