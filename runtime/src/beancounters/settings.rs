//! Beancounter settings as a bundle gives them: annotations
//! `org.openvz.beancounter.<name>` = `barrier:limit` and the vzctl-style
//! knobs `org.openvz.<knob>`, parsed and checked on their own.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};

use super::params::{self, Param, Unit, PAGE, UNLIMITED};

pub const PARAM_PREFIX: &str = "org.openvz.beancounter.";
pub const KNOB_PREFIX: &str = "org.openvz.";
pub const KNOBS: &[&str] = &[
    "cpuunits",
    "cpulimit",
    "cpus",
    "cpumask",
    "nodemask",
    "ioprio",
    "iolimit",
    "iopslimit",
    "memguarantee",
];

/// A barrier and a limit in the parameter's own unit; UNLIMITED for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub barrier: u64,
    pub limit: u64,
}

/// vzctl's --memguarantee: a share of the container's RAM, or an amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    Percent(u64),
    Bytes(u64),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knobs {
    /// CPU share, 8..500000, 1000 the default.
    pub cpuunits: Option<u64>,
    /// Hard CPU cap in percent of one CPU.
    pub cpulimit: Option<u64>,
    /// Hard CPU cap in whole CPUs.
    pub cpus: Option<u64>,
    pub cpumask: Option<String>,
    pub nodemask: Option<String>,
    /// I/O priority 0..7, 4 the default.
    pub ioprio: Option<u64>,
    /// Bytes per second, reads and writes each.
    pub iolimit: Option<u64>,
    /// Operations per second, reads and writes each.
    pub iopslimit: Option<u64>,
    pub memguarantee: Option<Guarantee>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub params: BTreeMap<&'static str, Pair>,
    pub knobs: Knobs,
}

impl Settings {
    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.knobs == Knobs::default()
    }

    pub fn from_annotations(annotations: &HashMap<String, String>) -> Result<Settings> {
        let mut settings = Settings::default();
        // Sorted, so the first error reported does not depend on hashing.
        let mut keys: Vec<_> = annotations.keys().collect();
        keys.sort();
        for key in keys {
            let value = &annotations[key];
            if let Some(name) = key.strip_prefix(PARAM_PREFIX) {
                let param = params::find(name)
                    .with_context(|| format!("annotation {key}: unknown beancounter {name:?}"))?;
                let pair = parse_pair(param, value).with_context(|| format!("annotation {key}"))?;
                settings.params.insert(param.name, pair);
            } else if key == crate::procview::ANNOTATION {
                // Not a limit: create reads it (procview::for_create).
            } else if let Some(knob) = key.strip_prefix(KNOB_PREFIX) {
                settings
                    .knobs
                    .set(knob, value)
                    .with_context(|| format!("annotation {key}"))?;
            }
        }
        Ok(settings)
    }
}

impl Knobs {
    pub fn set(&mut self, knob: &str, text: &str) -> Result<()> {
        let text = text.trim();
        match knob {
            "cpuunits" => self.cpuunits = Some(ranged(count(text)?, 8, 500_000)?),
            "cpulimit" => {
                let percent = count(text.strip_suffix('%').unwrap_or(text))?;
                self.cpulimit = (percent > 0).then_some(percent);
            }
            "cpus" => {
                let cpus = if text == "unlimited" { 0 } else { count(text)? };
                self.cpus = (cpus > 0).then_some(cpus);
            }
            "cpumask" => self.cpumask = cpu_list(text)?,
            "nodemask" => self.nodemask = cpu_list(text)?,
            "ioprio" => self.ioprio = Some(ranged(count(text)?, 0, 7)?),
            "iolimit" => {
                let rate = if text == "unlimited" { 0 } else { bytes(text)? };
                self.iolimit = (rate > 0).then_some(rate);
            }
            "iopslimit" => {
                let rate = if text == "unlimited" { 0 } else { count(text)? };
                self.iopslimit = (rate > 0).then_some(rate);
            }
            "memguarantee" => {
                self.memguarantee = if text == "auto" {
                    None
                } else if let Some(percent) = text.strip_suffix('%') {
                    Some(Guarantee::Percent(ranged(count(percent)?, 0, 100)?))
                } else {
                    Some(Guarantee::Bytes(bytes(text)?))
                }
            }
            _ => bail!(
                "unknown OpenVZ setting {knob:?} (known: {})",
                KNOBS.join(", ")
            ),
        }
        Ok(())
    }
}

/// `barrier:limit`, or one value for both, in the parameter's unit.
pub fn parse_pair(param: &Param, text: &str) -> Result<Pair> {
    let (barrier, limit) = match text.split_once(':') {
        Some((b, l)) => (value(param, b)?, value(param, l)?),
        None => {
            let v = value(param, text)?;
            (v, v)
        }
    };
    if barrier > limit {
        bail!(
            "{}: barrier {} is above limit {}",
            param.name,
            show(barrier),
            show(limit)
        );
    }
    Ok(Pair { barrier, limit })
}

fn show(v: u64) -> String {
    if v >= UNLIMITED {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// One value: `unlimited`, a count, or for pages and bytes an amount with
/// a K, M, G or T suffix (binary), which for pages is given in bytes.
fn value(param: &Param, text: &str) -> Result<u64> {
    let text = text.trim();
    if text == "unlimited" || text == "max" {
        return Ok(UNLIMITED);
    }
    let has_suffix = text.ends_with(|c: char| c.is_ascii_alphabetic());
    let v = match param.unit {
        Unit::Count if has_suffix => bail!("{}: {text:?}: a count takes no suffix", param.name),
        Unit::Count => count(text)?,
        Unit::Bytes => bytes(text)?,
        // vzctl: a suffixed amount is in bytes, rounded up to whole pages.
        Unit::Pages if has_suffix => bytes(text)?.div_ceil(PAGE),
        Unit::Pages => count(text)?,
    };
    Ok(v.min(UNLIMITED))
}

fn count(text: &str) -> Result<u64> {
    text.parse::<u64>()
        .ok()
        .with_context(|| format!("{text:?} is not a whole number"))
}

fn bytes(text: &str) -> Result<u64> {
    let (digits, shift) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => bail!("{text:?}: unknown suffix {c:?} (want K, M, G or T)"),
            };
            (&text[..i], shift)
        }
        _ => (text, 0),
    };
    count(digits)?
        .checked_mul(1 << shift)
        .with_context(|| format!("{text:?} is too large"))
}

fn ranged(v: u64, min: u64, max: u64) -> Result<u64> {
    if !(min..=max).contains(&v) {
        bail!("{v} is outside {min}..{max}");
    }
    Ok(v)
}

/// A cpuset list ("0-3,6"); "all" means no pinning.
fn cpu_list(text: &str) -> Result<Option<String>> {
    if text == "all" {
        return Ok(None);
    }
    let valid = !text.is_empty()
        && text.split(',').all(|part| {
            let mut ends = part.splitn(2, '-');
            ends.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    if !valid {
        bail!("{text:?} is not a list like 0-3,6");
    }
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, text: &str) -> Result<Pair> {
        parse_pair(params::find(name).unwrap(), text)
    }

    #[test]
    fn values_take_openvz_units() {
        assert_eq!(
            pair("numproc", "100:200").unwrap(),
            Pair {
                barrier: 100,
                limit: 200
            }
        );
        assert_eq!(pair("numproc", "64").unwrap().barrier, 64);
        assert_eq!(pair("physpages", "1G").unwrap().limit, 262144);
        assert_eq!(pair("physpages", "1000").unwrap().limit, 1000);
        assert_eq!(pair("physpages", "5K").unwrap().limit, 2, "rounded up");
        assert_eq!(pair("kmemsize", "2M").unwrap().limit, 2 << 20);
        assert_eq!(pair("swappages", "0:unlimited").unwrap().limit, UNLIMITED);
        for bad in ["10K", "200:100", "x", "-1", "1:2:3", ""] {
            assert!(pair("numproc", bad).is_err(), "{bad:?} accepted");
        }
        assert!(pair("physpages", "1Q").is_err());
    }

    #[test]
    fn annotations_are_checked_by_name() {
        let mut a = HashMap::new();
        a.insert("org.openvz.beancounter.numproc".into(), "10".into());
        a.insert("org.openvz.cpuunits".into(), "2000".into());
        a.insert("org.openvz.memguarantee".into(), "50%".into());
        a.insert("other.annotation".into(), "x".into());
        let s = Settings::from_annotations(&a).unwrap();
        assert_eq!(s.params["numproc"].limit, 10);
        assert_eq!(s.knobs.cpuunits, Some(2000));
        assert_eq!(s.knobs.memguarantee, Some(Guarantee::Percent(50)));
        a.insert("org.openvz.beancounter.numprocs".into(), "10".into());
        let err = Settings::from_annotations(&a).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown beancounter"),
            "{err:#}"
        );
        a.remove("org.openvz.beancounter.numprocs");
        a.insert("org.openvz.cpuunits".into(), "3".into());
        assert!(Settings::from_annotations(&a).is_err());
        a.insert("org.openvz.cpuunits".into(), "1000".into());
        a.insert("org.openvz.cpumask".into(), "0-1,x".into());
        assert!(Settings::from_annotations(&a).is_err());
    }
}
