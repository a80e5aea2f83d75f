//! ozz: a runc-compatible OCI runtime. This file parses the command line and
//! dispatches; each command lives in `cli/`.

mod beancounters;
mod bundle;
mod cgroups;
mod checkpoint;
mod cli;
mod console;
mod errors;
mod foreground;
mod hooks;
mod idmap;
mod log;
mod mount_api;
mod mountinfo;
mod namespaces;
mod process;
mod procview;
mod rootfs;
mod rootless;
mod security;
mod spawn;
mod state;
mod sync;
mod trace;

use clap::Parser;

use crate::cli::{Cli, Command};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const SPEC_VERSION: &str = "1.3.0";

fn main() {
    trace::init();
    if re_executes_first(std::env::args_os().skip(1)) {
        // why: the sealed re-exec parses the command line again; doing it
        // first spares the unsealed process a parse (~0.2 ms). A failure
        // here is left to the command's own call, which reports it.
        let _ = security::exe_seal::reexec_sealed_if_needed();
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The lifecycle commands' plain lines are read without clap (cli/fast.rs);
    // everything else, and every error, is clap's.
    let parsed = match cli::fast::parse(&argv) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse_from(runc_spellings(argv)),
    };
    let cli = match parsed {
        Ok(cli) => cli,
        // --help is not an error: clap prints it and we exit 0.
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            // Callers read one line: the first line clap gives, exit 1 as runc.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid usage");
            eprintln!("{}", first.trim_start_matches("error: "));
            std::process::exit(1);
        }
    };
    trace::enable_for_debug(cli.global.debug, cli.global.log.is_some());
    trace::mark("cli parsed");
    if cli.global.version {
        print_version();
        return;
    }
    // A log that cannot be written is an error before anything is done, as
    // in runc: the caller would otherwise lose the reason of a failure.
    if let Err(err) = log::init(
        cli.global.log.clone(),
        cli.global.log_format,
        cli.global.debug,
    ) {
        eprintln!("{err:#}");
        std::process::exit(1);
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        std::process::exit(0);
    };
    // runc's exec fails with 255 (its own exit code cannot be told from the
    // process's 1), and says so: "exec failed: …".
    let exec = matches!(command, Command::Exec(_));
    let result = dispatch(&cli.global, command);
    trace::mark("done");
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            // One line, outermost context first, like runc's "create: ...: reason".
            let msg = log::one_line(&if exec {
                format!("exec failed: {err:#}")
            } else {
                format!("{err:#}")
            });
            log::error(&msg);
            eprintln!("{msg}");
            std::process::exit(if exec { 255 } else { 1 });
        }
    }
}

/// Whether the command line names `exec`, which always re-executes from a
/// sealed view. Only a shortcut: it seals itself in any case. (`create`
/// and `run` decide once the bundle is loaded, where the exec stub may
/// make the re-exec needless: exe_seal::protect_container_process.)
fn re_executes_first(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<_> = args.collect();
    matches!(command_word(&args), Some((_, "exec")))
}

/// The command and its index: the first word that is neither an option nor
/// the value of a global option.
fn command_word(args: &[std::ffi::OsString]) -> Option<(usize, &str)> {
    const GLOBALS_WITH_VALUE: [&str; 6] = [
        "--root",
        "--log",
        "--log-format",
        "--rootless",
        "--criu",
        "--procview",
    ];
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_str()?;
        if GLOBALS_WITH_VALUE.contains(&arg) {
            i += 1;
        } else if arg == "--" {
            return None;
        } else if !arg.starts_with('-') {
            return Some((i, arg));
        }
        i += 1;
    }
    None
}

/// runc's flag parser also takes a long option after one dash, and a caller
/// relies on it: containerd's runc shim (go-runc) restores a checkpoint with
/// `restore ... -no-subreaper`. clap reads that as short flags, so those
/// spellings are given their second dash (only these, only for their
/// command, never after `--`).
const SINGLE_DASH_LONGS: [(&str, &str); 1] = [("restore", "-no-subreaper")];

fn runc_spellings(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if argv.is_empty() {
        return argv;
    }
    let rest = &mut argv[1..];
    let Some((at, command)) = command_word(rest) else {
        return argv;
    };
    let command = command.to_string();
    for arg in rest[at + 1..].iter_mut() {
        if arg == "--" {
            break;
        }
        let hit = SINGLE_DASH_LONGS
            .iter()
            .any(|(cmd, spelling)| *cmd == command && arg == spelling);
        if hit {
            let mut long = std::ffi::OsString::from("-");
            long.push(&*arg);
            *arg = long;
        }
    }
    argv
}

fn print_version() {
    println!("ozz version {VERSION}");
    println!("spec: {SPEC_VERSION}");
}

/// Runs one command; the Ok value is the process exit code.
fn dispatch(global: &cli::GlobalOpts, command: Command) -> anyhow::Result<i32> {
    let root = state::root_dir(global.root.as_deref());
    if root.exists() && !root.is_dir() {
        anyhow::bail!("--root {}: not a directory", root.display());
    }
    match command {
        Command::Create(args) => cli::create::run(global, &root, &args).map(|_| 0),
        Command::Start(args) => cli::start::run(&root, &args.id).map(|_| 0),
        Command::Run(args) => cli::run::run(global, &root, &args),
        Command::State(args) => cli::state::run(&root, &args.id).map(|_| 0),
        Command::Kill(args) => cli::kill::run(&root, &args).map(|_| 0),
        Command::Delete(args) => cli::delete::run(&root, &args).map(|_| 0),
        Command::List(args) => cli::list::run(&root, &args).map(|_| 0),
        Command::Ps(args) => cli::ps::run(&root, &args).map(|_| 0),
        Command::Exec(args) => cli::exec::run(&root, &args),
        Command::Pause(args) => cli::pause::pause(&root, &args.id).map(|_| 0),
        Command::Resume(args) => cli::pause::resume(&root, &args.id).map(|_| 0),
        Command::Spec(args) => cli::spec::run(&args).map(|_| 0),
        Command::Features => cli::features::run().map(|_| 0),
        Command::Update(args) => cli::update::run(&root, &args).map(|_| 0),
        Command::Events(args) => cli::events::run(&root, &args).map(|_| 0),
        Command::Beancounters(args) => cli::beancounters::run(&root, &args).map(|_| 0),
        Command::Top(args) => cli::top::run(&root, &args).map(|_| 0),
        Command::Validate(args) => cli::validate::run(&root, &args),
        Command::Split(args) => cli::split::run(&args).map(|_| 0),
        Command::Pid(args) => cli::pid::run(&root, &args).map(|_| 0),
        Command::Checkpoint(args) => cli::checkpoint::run(global, &root, &args).map(|_| 0),
        Command::Restore(args) => cli::restore::run(global, &root, &args),
        Command::Procfs(args) => cli::procfs::run(&root, &args).map(|_| 0),
    }
}

#[cfg(test)]
mod tests {
    use super::{re_executes_first, runc_spellings};

    fn words(line: &str) -> impl Iterator<Item = std::ffi::OsString> + '_ {
        line.split_whitespace().map(Into::into)
    }

    #[test]
    fn finds_the_command_after_global_options() {
        assert!(re_executes_first(words(
            "--root /run/x --log-format json exec -d c ls"
        )));
        assert!(re_executes_first(words("--debug exec c ls")));
        assert!(re_executes_first(words("--log=/tmp/l exec c true")));
        assert!(!re_executes_first(words("--root exec list")));
        assert!(!re_executes_first(words("state exec")));
        assert!(!re_executes_first(words("--criu exec delete exec")));
        assert!(!re_executes_first(words("-- exec")));
        assert!(!re_executes_first(words("--procview exec list")));
        // create and run decide with their bundle (the exec stub).
        assert!(!re_executes_first(words("--root /run/x run -d c")));
        assert!(!re_executes_first(words("create --bundle b c")));
    }

    #[test]
    fn go_runcs_single_dash_no_subreaper_is_taken() {
        let argv = |line: &str| -> Vec<std::ffi::OsString> {
            line.split_whitespace().map(Into::into).collect()
        };
        assert_eq!(
            runc_spellings(argv(
                "ozz --root /r restore --image-path i -no-subreaper --bundle b c"
            )),
            argv("ozz --root /r restore --image-path i --no-subreaper --bundle b c")
        );
        // Only for restore, and not after `--`.
        assert_eq!(
            runc_spellings(argv("ozz exec c sh -no-subreaper")),
            argv("ozz exec c sh -no-subreaper")
        );
        assert_eq!(
            runc_spellings(argv("ozz restore -- -no-subreaper")),
            argv("ozz restore -- -no-subreaper")
        );
        assert!(runc_spellings(Vec::new()).is_empty());
    }
}
