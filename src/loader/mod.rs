//! The model of glibc's dynamic loader: following links hop by hop through
//! farms ([`crate::farm`]), the search for a needed name ([`resolve`]), the
//! names an object computes at run time ([`computed`]) and the link map
//! `unfarm ldd` prints ([`ldd`]).

pub mod computed;
/// `unfarm ldd`: the link map of ELF files.
pub mod ldd;
/// The search for a needed name, as glibc's ld.so does it.
pub mod resolve;
