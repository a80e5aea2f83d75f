//! `ozz procfs serve [MOUNTPOINT]`: the per-container /proc view (see
//! procview/ and docs/procview.md).

use std::path::Path;

use anyhow::Result;

use crate::cli::{ProcfsArgs, ProcfsCommand};

pub fn run(root: &Path, args: &ProcfsArgs) -> Result<()> {
    match &args.command {
        ProcfsCommand::Serve { mountpoint } => crate::procview::serve(root, mountpoint),
    }
}
