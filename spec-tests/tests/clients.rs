//! What real clients (podman through conmon, containerd) rely on beyond the
//! plain command line; each case was found by running `hack/e2e-podman`.

use std::path::Path;
use std::process::{Command, Stdio};

use spec_tests::*;

const RUNC: &str = "/usr/sbin/runc";

/// podman runs `delete --force ID` after a failed create, when the runtime
/// has already removed the container. runc succeeds silently there; an error
/// would be printed to the podman user on top of the real one.
#[test]
fn delete_force_of_a_missing_container_succeeds_like_runc() {
    let id = unique_id("gone");
    let ours = ozz(&["delete", "--force", &id]);
    assert_eq!(
        ours.status.code(),
        Some(0),
        "ozz delete --force {id}: {}",
        stderr(&ours)
    );
    assert!(stderr(&ours).is_empty(), "said: {}", stderr(&ours));
    // Without --force it is still an error (exit 1, "does not exist").
    let plain = ozz(&["delete", &id]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(
        stderr(&plain).contains("does not exist"),
        "{}",
        stderr(&plain)
    );
    // A half-created one (a directory without state.json) is removed too.
    let half = state_root().join(&id);
    std::fs::create_dir_all(&half).unwrap();
    let out = ozz(&["delete", "--force", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!half.exists(), "half-created state dir left behind");

    if Path::new(RUNC).exists() {
        let root = std::env::temp_dir().join(format!("ozz-clients-runc-{}", std::process::id()));
        let theirs = Command::new(RUNC)
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", &id])
            .stdin(Stdio::null())
            .output()
            .expect("run runc");
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(ours.status.code(), theirs.status.code(), "runc differs");
    }
}
