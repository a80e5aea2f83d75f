//! OpenVZ-style user beancounters on cgroups: limits set through bundle
//! annotations, mapped onto the kernel's real controls where there are any,
//! and a live held/maxheld/barrier/limit/failcnt view of every parameter.
//! docs/beancounters.md lists each parameter's mapping.

pub mod devpts;
pub mod mapping;
pub mod params;
pub mod settings;
pub mod view;

use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::runtime::Spec;
use serde_json::Value;

pub use settings::Settings;

/// The bundle's config with its beancounter annotations written into the
/// fields that carry them; refuses a value the bundle sets differently.
pub fn apply_to_spec(spec: Spec, rootfs: &Path, v2: bool) -> Result<Spec> {
    let settings = Settings::from_annotations(&spec.annotations().clone().unwrap_or_default())?;
    if settings.is_empty() {
        return Ok(spec);
    }
    let mut config = serde_json::to_value(&spec).context("encode config")?;
    let plan = mapping::plan(
        &settings,
        &target(&config["linux"]["resources"], rootfs, v2),
    )?;
    mapping::merge_into_config(&mut config, &plan, v2)?;
    serde_json::from_value(config).context("config with beancounters")
}

/// What the mapping needs from a config's linux.resources (as JSON): its
/// memory limit and CFS period.
pub fn target<'a>(resources: &Value, rootfs: &'a Path, v2: bool) -> mapping::Target<'a> {
    mapping::Target {
        v2,
        memory_limit: resources["memory"]["limit"].as_i64(),
        cpu_period: resources["cpu"]["period"].as_u64(),
        rootfs,
    }
}
