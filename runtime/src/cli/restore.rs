//! `ozz restore`: a new container from CRIU images and a bundle. The
//! container's cgroup, limits and state are ozz's as for `create`; CRIU
//! brings back the processes, their namespaces and mounts.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::checkpoint::{self, RestoreRequest};
use crate::cli::{checkpoint::common, create, delete, GlobalOpts, RestoreArgs};
use crate::state::{self, ContainerDir, ContainerState, Status};
use crate::{cgroups, foreground, hooks};

const CRIU_ROOT: &str = "criu-root";

pub fn run(global: &GlobalOpts, root: &Path, args: &RestoreArgs) -> Result<i32> {
    let restored = restore(global, root, args).context("restore")?;
    let (dir, state) = restored;
    if args.detach {
        return Ok(0);
    }
    let mut signals = foreground::block_signals()?;
    let code = foreground::wait(state.pid, &mut signals, None);
    delete::destroy(dir, &state)?;
    code
}

fn restore(
    global: &GlobalOpts,
    root: &Path,
    args: &RestoreArgs,
) -> Result<(ContainerDir, ContainerState)> {
    state::validate_id(&args.id)?;
    let common = common(&args.criu)?;
    let binary = checkpoint::criu_binary(global.criu.as_deref());
    if !common.image_path.join("inventory.img").is_file() {
        bail!(
            "{} holds no checkpoint (no inventory.img)",
            common.image_path.display()
        );
    }
    let mut bundle = create::load_bundle(&args.bundle)?;
    // The limits the container had when it was dumped, and its counters.
    let carried = checkpoint::carried::Record::read(&common.image_path)?;
    if let Some(record) = &carried {
        record.apply_limits(&mut bundle.spec, cgroups::is_v2());
    }
    if bundle.terminal() && args.console_socket.is_none() {
        bail!("cannot allocate tty if ozz will detach without setting console socket");
    }
    let console: Option<OwnedFd> = match &args.console_socket {
        Some(path) => Some(
            std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("connect to console socket {}", path.display()))?
                .into(),
        ),
        None => None,
    };
    let dir = ContainerDir::create(root, &args.id)?;
    // (restore is root's: its state says rootless: false.)
    let cgroup_path =
        match cgroups::container_path(&bundle.spec, &args.id, global.systemd_cgroup, false) {
            Ok(p) => p,
            Err(e) => {
                let _ = dir.destroy();
                return Err(e);
            }
        };
    let criu_root = dir.path.join(CRIU_ROOT);
    let mut undo = Undo {
        cgroup: None,
        mounted: None,
    };
    let result = (|| -> Result<ContainerState> {
        // As create: a restore killed midway leaves what `list` shows and
        // `delete --force` removes (the cgroup, then the restored init).
        dir.record_cgroup(&cgroup_path)?;
        let manager = cgroups::manager(&cgroup_path)?;
        undo.cgroup = Some(cgroup_path.clone());
        drop(crate::spawn::cgroup_join::prepare(&cgroup_path)?);
        cgroups::apply(
            &manager,
            &cgroups::effective_resources(&bundle.spec)?,
            &cgroup_path,
        )?;
        if !args.no_subreaper && !args.detach {
            nix::sys::prctl::set_child_subreaper(true).context("become subreaper")?;
        }
        crate::rootfs::create_bind_points(&bundle.spec, &bundle.rootfs, &bundle.dir)?;
        // CRIU pivots into the root it is given, which must be a mount point.
        std::fs::create_dir(&criu_root)
            .with_context(|| format!("create {}", criu_root.display()))?;
        mount(
            Some(&bundle.rootfs),
            &criu_root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind the rootfs on {}", criu_root.display()))?;
        undo.mounted = Some(criu_root.clone());
        let mut state = ContainerState {
            id: args.id.clone(),
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: crate::log::rfc3339_now(),
            owner: owner_name(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
            cgroup_path: cgroup_path.clone(),
            systemd_cgroup: global.systemd_cgroup,
            config: bundle.spec.clone(),
            carried_beancounters: carried.map(|r| r.counters).unwrap_or_default(),
            rootless: false,
            no_cgroup: false,
            exec_stub: false,
        };
        let hook_state = state.clone();
        let mut on_namespaces = |pid: i32| -> Result<()> {
            // runc runs these at the same point: namespaces exist, nothing
            // restored runs yet.
            let mut s = hook_state.clone();
            s.pid = pid;
            let json = s.oci_json(Status::Creating).to_string();
            let hooks = s.config.hooks().clone().unwrap_or_default();
            hooks::run_all("prestart", hooks.prestart().as_ref(), &json)?;
            hooks::run_all("createRuntime", hooks.create_runtime().as_ref(), &json)
        };
        let pid = checkpoint::restore(
            &binary,
            RestoreRequest {
                common: &common,
                spec: &bundle.spec,
                bundle: &bundle.dir,
                root: &criu_root,
                cgroup_path: &cgroup_path,
                console_socket: console,
                on_namespaces: &mut on_namespaces,
            },
        )?;
        state.pid = pid;
        state.pid_start_time = state::proc_stat(pid)
            .map(|s| s.start_time)
            .context("the restored init exited at once")?;
        dir.record_init(pid, state.pid_start_time)?;
        dir.save(&state)?;
        if let Some(pid_file) = &args.pid_file {
            create::write_pid_file(pid_file, pid)?;
        }
        Ok(state)
    })();
    if let Some(path) = undo.mounted.take() {
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&path);
    }
    match result {
        Ok(state) => {
            let json = state.oci_json(Status::Running).to_string();
            let hooks = state.config.hooks().clone().unwrap_or_default();
            hooks::run_all_warn("poststart", hooks.poststart().as_ref(), &json);
            Ok((dir, state))
        }
        Err(err) => {
            undo.run(dir);
            Err(err)
        }
    }
}

struct Undo {
    cgroup: Option<PathBuf>,
    mounted: Option<PathBuf>,
}

impl Undo {
    fn run(self, dir: ContainerDir) {
        if let Some(path) = self.cgroup {
            if let Err(e) = cgroups::remove(&path) {
                crate::log::warn(&format!("cleanup: {e:#}"));
            }
        }
        if let Err(e) = dir.destroy() {
            crate::log::warn(&format!("cleanup: {e:#}"));
        }
    }
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid().as_raw();
    crate::process::passwd_field(uid, 0).unwrap_or_else(|| uid.to_string())
}
