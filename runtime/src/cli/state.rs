//! `ozz state`: the OCI state JSON of one container.

use std::path::Path;

use anyhow::Result;

use crate::state::ContainerDir;

pub fn run(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load()?;
    let json = state.oci_json(state.status(&dir.path));
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
