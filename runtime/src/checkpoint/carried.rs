//! What a checkpoint carries beyond CRIU's images for OpenVZ's semantics:
//! the container's limits as it ran (after `ozz update`, which the bundle
//! does not know) and its beancounters' failcnt and maxheld, which a new
//! cgroup would start again from zero.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxResources, PosixRlimit, Spec};
use serde::{Deserialize, Serialize};

use crate::beancounters::view::{self, Carried};
use crate::state::ContainerState;

/// Beside the images, ozz's own file.
pub const FILE: &str = "ozz-beancounters.json";

/// Annotations that hold beancounters and the OpenVZ knobs.
const PREFIX: &str = "org.openvz.";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The limits were mapped for this kind of hierarchy (v2 or v1): only
    /// a restore on the same kind takes them.
    pub cgroup_v2: bool,
    pub resources: Option<LinuxResources>,
    /// The org.openvz.* annotations as stored.
    pub annotations: BTreeMap<String, String>,
    /// The rlimits later `exec`s get (numfile, lockedpages, numsiginfo).
    pub rlimits: Option<Vec<PosixRlimit>>,
    /// Per parameter, the counters as `ozz beancounters` showed them.
    pub counters: BTreeMap<String, Carried>,
}

impl Record {
    /// Read while the container still runs (held values need its
    /// processes; the counters do not move while CRIU has it frozen).
    pub fn of(state: &ContainerState) -> Record {
        let counters = view::rows(state)
            .into_iter()
            .filter_map(|row| {
                let carried = Carried {
                    failcnt: row.failcnt.unwrap_or(0),
                    maxheld: row.maxheld,
                };
                (carried.failcnt > 0 || carried.maxheld.is_some())
                    .then(|| (row.resource.to_string(), carried))
            })
            .collect();
        Record {
            cgroup_v2: crate::cgroups::is_v2(),
            resources: state
                .config
                .linux()
                .as_ref()
                .and_then(|l| l.resources().clone()),
            annotations: state
                .config
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k.starts_with(PREFIX))
                .collect(),
            rlimits: state
                .config
                .process()
                .as_ref()
                .and_then(|p| p.rlimits().clone()),
            counters,
        }
    }

    pub fn write(&self, image_path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self)?;
        crate::state::write_atomic(&image_path.join(FILE), &json)
    }

    /// None when the images have no record (runc's, or older ozz's).
    pub fn read(image_path: &Path) -> Result<Option<Record>> {
        let path = image_path.join(FILE);
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .with_context(|| format!("parse {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    /// The restored container's config: the bundle's, with the limits the
    /// container had when it was dumped (where the hierarchy is of the same
    /// kind; else the bundle's limits stay).
    pub fn apply_limits(&self, spec: &mut Spec, v2: bool) {
        if self.cgroup_v2 != v2 {
            return;
        }
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_resources(self.resources.clone());
        spec.set_linux(Some(linux));
        let mut annotations: std::collections::HashMap<String, String> = spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !k.starts_with(PREFIX))
            .collect();
        annotations.extend(self.annotations.clone());
        spec.set_annotations(Some(annotations));
        if let Some(mut process) = spec.process().clone() {
            process.set_rlimits(self.rlimits.clone());
            spec.set_process(Some(process));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(annotations: &[(&str, &str)], pids: i64) -> Spec {
        let mut spec = Spec::default();
        spec.set_annotations(Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut res = LinuxResources::default();
        res.set_pids(Some(
            oci_spec::runtime::LinuxPidsBuilder::default()
                .limit(pids)
                .build()
                .unwrap(),
        ));
        linux.set_resources(Some(res));
        spec.set_linux(Some(linux));
        spec
    }

    fn pids(spec: &Spec) -> i64 {
        spec.linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .pids()
            .as_ref()
            .unwrap()
            .limit()
    }

    #[test]
    fn limits_updated_after_create_win_over_the_bundle() {
        let ran = spec_with(&[("org.openvz.beancounter.numproc", "300")], 300);
        let record = Record {
            cgroup_v2: true,
            resources: ran.linux().as_ref().unwrap().resources().clone(),
            annotations: [(
                "org.openvz.beancounter.numproc".to_string(),
                "300".to_string(),
            )]
            .into(),
            ..Record::default()
        };
        let mut bundle = spec_with(
            &[
                ("org.openvz.beancounter.numproc", "200"),
                ("org.openvz.cpuunits", "2000"),
                ("other", "kept"),
            ],
            200,
        );
        record.apply_limits(&mut bundle, true);
        assert_eq!(pids(&bundle), 300);
        let ann = bundle.annotations().clone().unwrap();
        assert_eq!(ann["org.openvz.beancounter.numproc"], "300");
        assert_eq!(ann["other"], "kept");
        // The container ran without cpuunits by then: not brought back.
        assert!(!ann.contains_key("org.openvz.cpuunits"));
    }

    #[test]
    fn a_hierarchy_of_another_kind_keeps_the_bundles_limits() {
        let record = Record {
            cgroup_v2: false,
            resources: None,
            ..Record::default()
        };
        let mut bundle = spec_with(&[("org.openvz.beancounter.numproc", "200")], 200);
        record.apply_limits(&mut bundle, true);
        assert_eq!(pids(&bundle), 200);
    }
}
