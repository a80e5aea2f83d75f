//! `ozz list`: every container under the root.

use std::path::Path;

use anyhow::Result;

use crate::cli::{ListArgs, OutputFormat};

pub fn run(root: &Path, args: &ListArgs) -> Result<()> {
    let rows = crate::state::list_all(root)?;
    if args.quiet {
        for (state, _) in &rows {
            println!("{}", state.id);
        }
        return Ok(());
    }
    match args.format {
        OutputFormat::Json => {
            let list: Vec<_> = rows.iter().map(|(s, st)| s.oci_json(*st)).collect();
            println!("{}", serde_json::to_string(&list)?);
        }
        OutputFormat::Table => {
            let mut table = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec()];
            for (s, st) in &rows {
                let pid = if *st == crate::state::Status::Stopped {
                    0
                } else {
                    s.pid
                };
                table.push(vec![
                    s.id.clone(),
                    pid.to_string(),
                    st.as_str().to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            print!("{}", format_table(&table));
        }
    }
    Ok(())
}

/// Columns padded to the widest cell plus three spaces, minimum twelve, as
/// Go's tabwriter lays out runc's tables.
pub fn format_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}
