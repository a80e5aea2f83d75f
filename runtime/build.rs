//! What the build needs beyond the Rust sources:
//! - `make build` links ozz in the order of hack/hot-functions.txt (the
//!   linker wrapper hack/link-ordered reads it), and a new list must relink;
//! - the exec stub (src/security/exec_stub.c), a libc-free static program
//!   of a few KB that ozz carries as bytes (security/exec_stub.rs). Where
//!   it cannot be built (another architecture, a cross build), the file is
//!   left empty and ozz re-executes itself instead, as it did before.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=../hack/hot-functions.txt");
    println!("cargo:rerun-if-changed=src/security/exec_stub.c");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("exec-stub");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let native = std::env::var("HOST").ok() == std::env::var("TARGET").ok();
    if os != "linux" || !matches!(arch.as_str(), "x86_64" | "aarch64") || !native {
        std::fs::write(&out, b"").expect("write an empty exec stub");
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args([
        "-Os",
        "-static",
        "-nostdlib",
        "-nostartfiles",
        "-ffreestanding",
        "-fno-builtin",
        "-fno-pie",
        "-no-pie",
        "-fno-stack-protector",
        "-fno-asynchronous-unwind-tables",
        "-fno-unwind-tables",
        "-Wall",
        "-Werror",
        "-Wl,--build-id=none",
        "-Wl,-z,noexecstack",
        "-Wl,-z,max-page-size=4096",
        "-s",
    ]);
    if arch == "x86_64" {
        // No CET notes or endbr64: nothing in the stub is an indirect target.
        cmd.arg("-fcf-protection=none");
    }
    cmd.arg("-o").arg(&out).arg("src/security/exec_stub.c");
    let result = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {cc} for the exec stub: {e}"));
    if !result.status.success() {
        panic!(
            "{cc} failed to build the exec stub:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
}
