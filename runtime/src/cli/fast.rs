//! The lifecycle commands' command lines as podman, conmon and containerd's
//! shim write them (`create`, `run`, `start`, `state`, `kill`, `delete`,
//! with runc's global options), and `list`, read without clap.
//!
//! why: clap's parse of `run` took about 170 µs of a 6.5 ms `run` on the
//! host, most of it faulting in clap's code, and every lifecycle command
//! pays it. This reader takes only the plainest spellings (`--flag value`,
//! `--flag=value`, one-letter flags alone, positionals after the flags) and
//! gives up on anything else: `--help`, a repeated or unknown flag, an
//! empty value, `--`, a value that starts with a dash. clap then parses the
//! same line and keeps the last word, its errors included. The unit tests
//! check that wherever this reader answers, clap answers the same.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{
    Cli, Command, CreateArgs, DeleteArgs, GlobalOpts, IdArg, KillArgs, ListArgs, LogFormat,
    OutputFormat, RunArgs,
};

/// The command line (program name first) read as clap would read it, or
/// None where only clap may read it.
pub fn parse(argv: &[OsString]) -> Option<Cli> {
    let mut words = Words::new(argv.get(1..)?)?;
    let mut global = GlobalOpts {
        root: None,
        log: None,
        log_format: LogFormat::Text,
        debug: false,
        systemd_cgroup: false,
        rootless: None,
        criu: None,
        procview: None,
        procview_all: false,
        version: false,
    };
    let mut seen = Seen::default();
    let command = loop {
        let word = words.next()?;
        let Some(flag) = word.strip_prefix("--") else {
            break word;
        };
        match words.flag(flag, &mut seen)? {
            ("root", Some(v)) => global.root = Some(PathBuf::from(v)),
            ("log", Some(v)) => global.log = Some(PathBuf::from(v)),
            ("log-format", Some("text")) => global.log_format = LogFormat::Text,
            ("log-format", Some("json")) => global.log_format = LogFormat::Json,
            ("debug", None) => global.debug = true,
            ("systemd-cgroup", None) => global.systemd_cgroup = true,
            _ => return None,
        }
    };
    let command = match command {
        "create" => Command::Create(create_args(&mut words, |_, _| false)?),
        "run" => {
            let (mut detach, mut keep) = (false, false);
            let create = create_args(&mut words, |name, value| {
                match (name, value) {
                    ("d" | "detach", None) => detach = true,
                    ("keep", None) => keep = true,
                    _ => return false,
                }
                true
            })?;
            Command::Run(RunArgs {
                create,
                detach,
                keep,
            })
        }
        "start" => Command::Start(IdArg {
            id: only_id(&mut words)?,
        }),
        "state" => Command::State(IdArg {
            id: only_id(&mut words)?,
        }),
        "delete" => {
            let (force, mut ids) = with_switch(&mut words, "f", "force")?;
            (ids.len() == 1).then_some(())?;
            Command::Delete(DeleteArgs {
                id: ids.remove(0),
                force,
            })
        }
        "list" => {
            // Here `-f` is --format, which takes a value (delete's is --force).
            words.format_flag = true;
            let mut args = ListArgs {
                format: OutputFormat::Table,
                quiet: false,
            };
            let none = operands(&mut words, |name, value| {
                match (name, value) {
                    ("f" | "format", Some("table")) => args.format = OutputFormat::Table,
                    ("f" | "format", Some("json")) => args.format = OutputFormat::Json,
                    ("q" | "quiet", None) => args.quiet = true,
                    _ => return false,
                }
                true
            })?;
            none.is_empty().then_some(())?;
            Command::List(args)
        }
        "kill" => {
            let (all, mut operands) = with_switch(&mut words, "a", "all")?;
            (1..=2).contains(&operands.len()).then_some(())?;
            let signal = (operands.len() == 2).then(|| operands.remove(1));
            Command::Kill(KillArgs {
                id: operands.remove(0),
                signal,
                all,
            })
        }
        _ => return None,
    };
    Some(Cli {
        global,
        command: Some(command),
    })
}

/// `create`'s flags and its id; `more` takes the flags of `run` that
/// `create` lacks (true when it took one).
fn create_args(
    words: &mut Words,
    mut more: impl FnMut(&str, Option<&str>) -> bool,
) -> Option<CreateArgs> {
    let mut args = CreateArgs {
        id: String::new(),
        bundle: PathBuf::from("."),
        console_socket: None,
        pid_file: None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
    };
    let mut ids = operands(words, |name, value| {
        match (name, value) {
            ("b" | "bundle", Some(v)) => args.bundle = PathBuf::from(v),
            ("console-socket", Some(v)) => args.console_socket = Some(PathBuf::from(v)),
            ("pid-file", Some(v)) => args.pid_file = Some(PathBuf::from(v)),
            ("no-pivot", None) => args.no_pivot = true,
            ("no-new-keyring", None) => args.no_new_keyring = true,
            ("preserve-fds", Some(v)) => match v.parse() {
                Ok(n) => args.preserve_fds = n,
                Err(_) => return false,
            },
            _ => return more(name, value),
        }
        true
    })?;
    (ids.len() == 1).then_some(())?;
    args.id = ids.remove(0);
    Some(args)
}

fn only_id(words: &mut Words) -> Option<String> {
    let mut ids = operands(words, |_, _| false)?;
    (ids.len() == 1).then(|| ids.remove(0))
}

/// The operands after one optional switch (`-f` or `--force`): whether it
/// was given, and the operands.
fn with_switch(words: &mut Words, short: &str, long: &str) -> Option<(bool, Vec<String>)> {
    let mut given = false;
    let operands = operands(words, |name, value| {
        let known = value.is_none() && (name == short || name == long);
        given |= known;
        known
    })?;
    Some((given, operands))
}

/// The rest of the line: flags, each given to `take` (which says whether it
/// knows it), then the operands. None at the first thing `take` refuses, a
/// flag given twice or a flag after an operand.
fn operands(
    words: &mut Words,
    mut take: impl FnMut(&str, Option<&str>) -> bool,
) -> Option<Vec<String>> {
    let mut seen = Seen::default();
    let mut operands = Vec::new();
    while let Some(word) = words.next() {
        let name = if let Some(long) = word.strip_prefix("--") {
            long
        } else if let Some(short) = word.strip_prefix('-') {
            // One letter alone: `-f`, `-b DIR`.
            (short.len() == 1).then_some(short)?
        } else {
            operands.push(word.to_string());
            continue;
        };
        if !operands.is_empty() {
            return None;
        }
        let (name, value) = words.flag(name, &mut seen)?;
        if !take(name, value) {
            return None;
        }
    }
    Some(operands)
}

/// The flags read so far: clap refuses a flag given twice.
#[derive(Default)]
struct Seen(Vec<String>);

/// Which flags take a value (every other one is a switch), but for
/// `list`'s `-f` (Words::format_flag).
const WITH_VALUE: [&str; 9] = [
    "root",
    "log",
    "log-format",
    "b",
    "bundle",
    "console-socket",
    "pid-file",
    "preserve-fds",
    "format",
];

/// The line's words, all UTF-8 and none empty (else clap reads it).
struct Words<'a> {
    words: Vec<&'a str>,
    at: usize,
    /// `-f` is --format (list), not --force (delete).
    format_flag: bool,
}

impl<'a> Words<'a> {
    fn new(args: &'a [OsString]) -> Option<Self> {
        let words = args
            .iter()
            .map(|a| {
                a.to_str()
                    .filter(|w| !w.is_empty() && *w != "-" && *w != "--")
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Words {
            words,
            at: 0,
            format_flag: false,
        })
    }

    fn next(&mut self) -> Option<&'a str> {
        let word = self.words.get(self.at)?;
        self.at += 1;
        Some(word)
    }

    /// A flag's name (without dashes, `=value` cut off) and its value,
    /// from `=` or the next word. Long names spell the same flag as their
    /// one-letter forms here only through `take`'s patterns, so both are
    /// recorded under the name clap knows the flag by.
    fn flag(&mut self, spelled: &'a str, seen: &mut Seen) -> Option<(&'a str, Option<&'a str>)> {
        let (name, inline) = match spelled.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (spelled, None),
        };
        let takes_value = WITH_VALUE.contains(&name) || (self.format_flag && name == "f");
        let value = match (takes_value, inline) {
            (true, Some(v)) => Some(v).filter(|v| !v.starts_with('-')),
            (true, None) => Some(self.next().filter(|v| !v.starts_with('-'))?),
            (false, Some(_)) => return None,
            (false, None) => None,
        };
        if value.is_some_and(str::is_empty) {
            return None;
        }
        let canonical = match name {
            "b" => "bundle",
            "d" => "detach",
            "f" if self.format_flag => "format",
            "f" => "force",
            "a" => "all",
            "q" => "quiet",
            other => other,
        };
        if seen.0.iter().any(|s| s == canonical) {
            return None;
        }
        seen.0.push(canonical.to_string());
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        std::iter::once("ozz")
            .chain(line.split(' ').filter(|w| !w.is_empty()))
            .map(OsString::from)
            .collect()
    }

    /// Where the fast reader answers, clap answers the same.
    fn agrees(line: &str) -> bool {
        let args = argv(line);
        let Some(fast) = parse(&args) else {
            return false;
        };
        let clap = Cli::try_parse_from(&args)
            .unwrap_or_else(|e| panic!("{line:?}: the fast reader took what clap refuses: {e}"));
        assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line:?}");
        true
    }

    #[test]
    fn the_lines_podman_conmon_and_containerd_write_are_read_as_clap_reads_them() {
        let globals = [
            "",
            "--root /run/ozz",
            "--root=/run/x --log /l.json --log-format json",
            "--log=/l --log-format=text --systemd-cgroup",
            "--debug --root /r",
        ];
        let create_flags = [
            "",
            "--bundle /b",
            "-b /b --pid-file /p",
            "--bundle=/b --console-socket /s --pid-file=/p",
            "--no-pivot --no-new-keyring --preserve-fds 2",
            "--preserve-fds=0 -b b",
        ];
        let mut lines = Vec::new();
        for g in globals {
            for f in create_flags {
                lines.push(format!("{g} create {f} c1"));
                for r in ["", "-d", "--detach --keep", "--keep"] {
                    lines.push(format!("{g} run {f} {r} c1"));
                }
            }
            lines.push(format!("{g} start c1"));
            for f in [
                "",
                "-q",
                "--quiet",
                "-f json",
                "--format table -q",
                "--format=json",
            ] {
                lines.push(format!("{g} list {f}"));
            }
            lines.push(format!("{g} state c1"));
            for f in ["", "-f", "--force"] {
                lines.push(format!("{g} delete {f} c1"));
            }
            for f in ["", "-a", "--all"] {
                lines.push(format!("{g} kill {f} c1"));
                lines.push(format!("{g} kill {f} c1 9"));
                lines.push(format!("{g} kill {f} c1 SIGKILL"));
            }
        }
        for line in &lines {
            assert!(agrees(line), "not read fast: {line:?}");
        }
    }

    #[test]
    fn anything_else_is_left_to_clap() {
        for line in [
            "",
            "--help",
            "create --help",
            "-v",
            "--version",
            "list c1",
            "list -f yaml",
            "list -f json --format table",
            "list -q --quiet",
            "list -f",
            "list --force",
            "exec c1 true",
            "--root /a --root /b state c1",
            "create -b /a --bundle /b c1",
            "create c1 -b /b",
            "create -b",
            "create -b -x c1",
            "create --bundle= c1",
            "create -bX c1",
            "run -dk c1",
            "create --preserve-fds -1 c1",
            "create --preserve-fds x c1",
            "state",
            "state c1 c2",
            "kill c1 9 9",
            "delete -- c1",
            "--log-format yaml state c1",
            "--criu /c state c1",
            "--rootless true state c1",
            "--debug=1 state c1",
            "start --force c1",
            "state - c1",
            "--root=-r state c1",
        ] {
            assert!(parse(&argv(line)).is_none(), "{line:?} read fast");
        }
        assert!(parse(&[
            OsString::from("ozz"),
            OsString::from("state"),
            OsString::new()
        ])
        .is_none());
    }
}
