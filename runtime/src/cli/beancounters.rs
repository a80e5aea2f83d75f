//! `ozz beancounters`: the /proc/user_beancounters of OpenVZ for ozz's
//! containers, read live from the kernel.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use crate::beancounters::params::UNLIMITED;
use crate::beancounters::view;
use crate::cli::list::format_table;
use crate::cli::{BeancountersArgs, OutputFormat};
use crate::state::{ContainerDir, Status};

pub fn run(root: &Path, args: &BeancountersArgs) -> Result<()> {
    let containers = if args.ids.is_empty() {
        crate::state::running_containers(root)
    } else {
        let mut states = Vec::new();
        for id in &args.ids {
            let dir = ContainerDir::open(root, id)?;
            let state = dir.load()?;
            // A stopped container has no cgroup left to read (runc's words).
            if state.status(&dir.path) == Status::Stopped {
                bail!("container with id {id} is not running");
            }
            states.push(state);
        }
        states
    };
    match args.format {
        OutputFormat::Json => {
            let list: Vec<_> = containers
                .iter()
                .map(|s| {
                    let rows: Vec<_> = view::rows(s).iter().map(view::Row::to_json).collect();
                    json!({"id": s.id, "beancounters": rows})
                })
                .collect();
            println!("{}", serde_json::to_string(&list)?);
        }
        OutputFormat::Table => {
            let mut table = vec![[
                "ID", "RESOURCE", "HELD", "MAXHELD", "BARRIER", "LIMIT", "FAILCNT", "CONTROL",
            ]
            .map(String::from)
            .to_vec()];
            for state in &containers {
                for row in view::rows(state) {
                    table.push(vec![
                        state.id.clone(),
                        row.resource.to_string(),
                        cell(row.held),
                        cell(row.maxheld),
                        cell(row.barrier),
                        cell(row.limit),
                        cell(row.failcnt),
                        format!("{} ({})", row.control.as_str(), row.how),
                    ]);
                }
            }
            print!("{}", format_table(&table));
        }
    }
    Ok(())
}

fn cell(value: Option<u64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v >= UNLIMITED => "unlimited".into(),
        Some(v) => v.to_string(),
    }
}
