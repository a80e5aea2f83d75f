//! The command line, shaped after runc's: podman, conmon and the containerd
//! shim call these exact forms, so flag names and positions are a contract.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod beancounters;
pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod fast;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod pid;
pub mod procfs;
pub mod ps;
pub mod restore;
pub mod run;
pub mod spec;
pub mod split;
pub mod start;
pub mod state;
pub mod top;
pub mod update;
pub mod validate;

#[derive(Parser, Debug)]
#[command(
    name = "ozz",
    about = "ozz: a runc-compatible OCI runtime with OpenVZ-style beancounters",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Root directory for container state (default /run/ozz, or $XDG_RUNTIME_DIR/ozz when not root, or root of a user namespace)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Log file (errors and debug messages go there as well as to stderr)
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of the log file
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Enable debug logging
    #[arg(long)]
    pub debug: bool,
    /// Treat cgroupsPath as "slice:prefix:name" for systemd
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Rootless cgroups: true, false or auto (rootless when not root, or root of a user namespace)
    #[arg(long = "rootless", id = "global_rootless")]
    pub rootless: Option<String>,
    /// Path to the criu binary for checkpoint and restore (default: criu on PATH)
    #[arg(long, global = true)]
    pub criu: Option<String>,
    /// Where the procview is mounted (default /run/ozz/procview)
    #[arg(long, value_name = "DIR")]
    pub procview: Option<PathBuf>,
    /// Bind the procview over /proc files of every container, not only of
    /// those whose bundle asks (annotation org.openvz.procview=true)
    #[arg(long = "procview-all")]
    pub procview_all: bool,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

// Each subcommand's arguments are built only when that subcommand is parsed
// (or its help printed): building all of them cost ~0.3 MiB of heap.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`
    Create(CreateArgs),
    /// Run the user process of a created container
    Start(IdArg),
    /// Create and start a container, then wait for it unless --detach
    Run(RunArgs),
    /// Print the OCI state of a container as JSON
    State(IdArg),
    /// Send a signal to the container's init (or to all its processes)
    Kill(KillArgs),
    /// Delete a container and what it holds
    Delete(DeleteArgs),
    /// List containers
    List(ListArgs),
    /// List the processes of a container
    Ps(PsArgs),
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// Freeze every process of a container
    Pause(IdArg),
    /// Thaw a paused container
    Resume(IdArg),
    /// Write a default config.json into a bundle
    Spec(SpecArgs),
    /// Print the features this runtime really supports, as JSON
    Features,
    /// Change the resource limits of a running container
    Update(UpdateArgs),
    /// Print stats and OOM events of a container as JSON lines
    Events(EventsArgs),
    /// Show held, maxheld, barrier, limit and failcnt of every beancounter
    Beancounters(BeancountersArgs),
    /// Watch every container's CPU, memory, numproc, I/O and failcnt growth (vzstat)
    Top(TopArgs),
    /// Check a bundle's limits for consistency (OpenVZ's vzcfgvalidate)
    Validate(ValidateArgs),
    /// Print the limits that divide this host into N equal containers (vzsplit)
    Split(SplitArgs),
    /// Print the container a host process belongs to (vzpid)
    Pid(PidArgs),
    /// Checkpoint a running container with CRIU
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint
    Restore(RestoreArgs),
    /// The per-container /proc view over FUSE
    Procfs(ProcfsArgs),
}

#[derive(Args, Debug)]
pub struct ProcfsArgs {
    #[command(subcommand)]
    pub command: ProcfsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ProcfsCommand {
    /// Mount the view and answer its reads until SIGTERM or SIGINT
    Serve {
        /// Where to mount it
        #[arg(default_value = crate::procview::DEFAULT_MOUNTPOINT)]
        mountpoint: PathBuf,
    },
}

/// The CRIU options checkpoint and restore share (runc's names).
#[derive(Args, Debug, Clone)]
pub struct CriuArgs {
    /// Directory of the checkpoint images (default ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's logs and work files (default: the image path)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow a shell job (a process tree attached to a terminal)
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// How CRIU handles cgroups: soft, full, strict or ignore
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Namespaces created empty instead of restored (network)
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate the parent's pages as the images are written or read
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Lazy migration: memory pages are served on demand
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// File descriptor CRIU writes \0 to once the lazy-pages server is ready
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Images of a previous (pre-)dump, relative to the image path
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the checkpoint
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump memory only, leaving the container running (for --parent-path)
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// Send the memory pages to a CRIU page server at ADDRESS:PORT
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle (the directory holding config.json)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once the container is restored instead of waiting for it
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the restored init's PID to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master of a terminal container
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (CRIU always pivots into the root)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not become the subreaper of the restored processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
}

#[derive(Args, Debug)]
pub struct BeancountersArgs {
    /// Containers to show (all when none is given)
    pub ids: Vec<String>,
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Time between refreshes (Go duration: 2s, 500ms)
    #[arg(short = 'd', long, default_value = "2s")]
    pub interval: String,
    /// Take two readings one interval apart, print once and exit
    #[arg(long)]
    pub once: bool,
    /// The column to sort by, largest first
    #[arg(short = 's', long, value_enum, default_value_t = TopSort::Cpu)]
    pub sort: TopSort,
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopSort {
    Cpu,
    Mem,
    Numproc,
    Io,
    Fail,
    Id,
}

impl TopSort {
    pub fn name(self) -> &'static str {
        match self {
            TopSort::Cpu => "cpu",
            TopSort::Mem => "mem",
            TopSort::Numproc => "numproc",
            TopSort::Io => "io",
            TopSort::Fail => "fail",
            TopSort::Id => "id",
        }
    }
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The bundle directory (holding config.json)
    #[arg(default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// How many equal containers
    pub count: u64,
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Args, Debug)]
pub struct PidArgs {
    /// A process ID as the host sees it
    pub pid: i32,
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    /// Path to the bundle (the directory holding config.json)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master of a terminal container
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's init PID to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for ramfs roots)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra file descriptors (3..3+N) into the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container runs instead of waiting for it
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number; SIGTERM by default
    pub signal: Option<String>,
    /// Signal every process of the container
    #[arg(short = 'a', long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub id: String,
    /// Kill a running container before deleting it
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Print only the container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    pub id: String,
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Options passed to ps(1) in table format (accepted for compatibility)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (when --process is not given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A JSON file holding an OCI process object
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_NAME) to the bounding, effective, permitted and ambient sets
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for compatibility; LSM labels are not applied
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Accepted for compatibility; LSM profiles are not applied
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Run the process in an existing sub-cgroup of the container: [CONTROLLER[,CONTROLLER]:]PATH (repeatable with controllers)
    #[arg(long = "cgroup", value_name = "[CONTROLLER:]PATH")]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container (the process starts once it is resumed)
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Generate a spec for a rootless container
    #[arg(long = "rootless", id = "spec_rootless")]
    pub rootless: bool,
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// File holding an OCI LinuxResources object, or '-' for stdin; every other flag is then ignored
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// Per-cgroup block I/O weight (10 to 1000)
    #[arg(long = "blkio-weight", allow_negative_numbers = true)]
    pub blkio_weight: Option<i64>,
    /// CPU CFS period (µs)
    #[arg(long = "cpu-period", allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// CPU CFS quota (µs per period; -1 for none)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPU CFS burst (µs)
    #[arg(long = "cpu-burst", allow_hyphen_values = true)]
    pub cpu_burst: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", allow_hyphen_values = true)]
    pub cpu_share: Option<String>,
    /// CPU realtime period (µs)
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<String>,
    /// CPU realtime runtime (µs per period)
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<String>,
    /// SCHED_IDLE for the cgroup (1) or not (0)
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<String>,
    /// CPUs to use
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Obsolete: accepted and ignored with a warning, as runc does
    #[arg(long = "kernel-memory", hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete: accepted and ignored with a warning, as runc does
    #[arg(long = "kernel-memory-tcp", hide = true, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1 for none)
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT/CAT L3 cache schema (refused: no RDT support)
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema (refused: no RDT support)
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// A beancounter or OpenVZ knob: NAME=BARRIER:LIMIT or NAME=VALUE (repeatable)
    #[arg(long = "beancounter", value_name = "NAME=VALUE")]
    pub beancounters: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    pub id: String,
    /// Interval between stats events (Go duration: 5s, 500ms, 1m30s)
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Print one stats event and exit
    #[arg(long)]
    pub stats: bool,
}
