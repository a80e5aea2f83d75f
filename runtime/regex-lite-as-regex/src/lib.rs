//! `regex` served by `regex-lite`, for the binary's size.
//!
//! why: oci-spec validates `process.execCPUAffinity` with one small
//! pattern, and linking `regex` for it (with its Unicode tables and
//! optimised engines) made up about 0.45 MB of ozz's 4 MB static binary.
//! On hosts whose page cache maps a binary in large folios, peak RSS
//! follows the binary's size (docs/design.md). regex-lite, from the same
//! project, has the same API for what our dependencies call (`Regex`,
//! `RegexBuilder`, `Captures`); its classes such as `\d` and `\w` are
//! ASCII only, which is all a CPU list or an image reference may hold.
pub use regex_lite::*;
