//! The model of glibc's dynamic loader: following links hop by hop through
//! farms ([`farm`]), the search for a needed name ([`resolve`]), and the
//! link map `unfarm ldd` prints ([`ldd`]).

pub mod farm;
pub mod ldd;
pub mod resolve;
