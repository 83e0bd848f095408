//! What a pprof profile says, as text and SVG: the views behind the
//! `heapprof` command, for any program that has profiles to show.
//!
//! # Design
//!
//! Each view is a module with a plain `Options` struct that implements
//! [`Default`], and one function that writes the view of a profile (two for
//! [`diff`]) to any [`std::io::Write`]:
//!
//! | view | writes |
//! |---|---|
//! | [`top::write`] | `go tool pprof -top`'s table, or JSON |
//! | [`folded::write`] | folded stacks, `root;...;leaf value` |
//! | [`flamegraph::write`] | an SVG flamegraph (inferno) |
//! | [`diff::write`] | NEW minus BASE: table, differential folded stacks or flamegraph |
//! | [`tags::write`] | a table by label value, or `go tool pprof -tags`'s text |
//! | [`lifetimes::write`] | per site, freed blocks by lifetime or in-use memory by age |
//! | [`info::write`] | a summary of the profile |
//! | [`timeline::write`] | a series of profiles over time and its leak ranking ([`timeline::Builder`]) |
//! | [`html::Builder::write`] | one offline HTML page over a series of profiles |
//!
//! [`symbolize::symbolize`] is not a view: it returns the profile with
//! addresses resolved from the binaries on disk.
//!
//! The `heapprof` CLI maps its flags onto these options and nothing else;
//! an HTML report or a timeline over many profiles calls the same functions,
//! so that every way of looking at a profile agrees to the byte. Views share
//! a [`Selection`] (the sample type, pprof's focus/ignore/hide and tag filters)
//! and the building blocks below them: [`stacks`] (a profile as filtered,
//! interned stacks), [`labels`] (pprof's label filters and pseudo
//! frames), [`graph`] (flat and cum figures by go tool pprof's rules) and
//! [`units`] (numbers as pprof prints them). Views never read or
//! write files: the caller decides where the bytes go, and adds the file's
//! name to errors about a profile's content.
//!
//! # Example
//!
//! ```
//! use heapprof_pprof::{Function, Line, Location, Profile, Sample, ValueType};
//! use heapprof_report::top;
//!
//! // main -> cache_insert holds 3 MiB, main -> parse 1 MiB.
//! let profile = Profile {
//!     sample_types: vec![ValueType::new("inuse_space", "bytes")],
//!     functions: ["main", "cache_insert", "parse"]
//!         .map(|name| Function { name: name.into(), ..Function::default() })
//!         .to_vec(),
//!     locations: (0..3)
//!         .map(|function| Location {
//!             lines: vec![Line { function, line: 0 }],
//!             ..Location::default()
//!         })
//!         .collect(),
//!     samples: vec![
//!         Sample { locations: vec![1, 0], values: vec![3 << 20], labels: vec![] },
//!         Sample { locations: vec![2, 0], values: vec![1 << 20], labels: vec![] },
//!     ],
//!     ..Profile::default()
//! };
//! let mut out = Vec::new();
//! top::write(&top::Options::default(), &profile, &mut out)?;
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "Type: inuse_space
//! Showing nodes accounting for 4MB, 100% of 4MB total
//!       flat  flat%   sum%        cum   cum%
//!        3MB 75.00% 75.00%        3MB 75.00%  cache_insert
//!        1MB 25.00%   100%        1MB 25.00%  parse
//!          0     0%   100%        4MB   100%  main
//! "
//! );
//! # Ok::<(), heapprof_report::Error>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod diff;
mod difference_graph;
mod error;
mod fasthash;
pub mod flamegraph;
pub mod folded;
pub mod graph;
mod header;
pub mod html;
pub mod info;
mod json;
pub mod labels;
pub mod lifetimes;
mod shorten;
pub mod stacks;
pub mod symbolize;
pub mod tags;
#[cfg(test)]
mod testing;
pub mod timeline;
pub mod top;
pub mod units;

pub use error::Error;
pub use labels::TagFilter;
pub use stacks::{Filters, Selection};
