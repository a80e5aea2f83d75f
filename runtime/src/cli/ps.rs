//! `ozz ps`: the processes of a container.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cli::{OutputFormat, PsArgs};
use crate::state::ContainerDir;

pub fn run(root: &Path, args: &PsArgs) -> Result<()> {
    let dir = ContainerDir::open(root, &args.id)?;
    let state = dir.load()?;
    let pids = state.pids()?;
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let ps_args = if args.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_args.clone()
    };
    let output = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(());
    };
    let pid_column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
