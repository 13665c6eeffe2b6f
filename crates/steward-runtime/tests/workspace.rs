//! The workspace's path confinement and file operations, driven through its public API the way
//! the filesystem API and the `workspace` tools use it.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use steward_runtime::workspace::{EntryKind, FsError, Workspace};

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(&dir.path().join("agents/a1/workspace")).unwrap();
    (dir, ws)
}

fn bad_path_reason(result: Result<impl std::fmt::Debug, FsError>) -> String {
    match result {
        Err(e @ FsError::BadPath { .. }) => e.to_string(),
        other => panic!("expected BadPath, got {other:?}"),
    }
}

#[test]
fn open_creates_the_directory_and_canonicalizes_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(&dir.path().join("x/../ws")).unwrap();
    assert!(ws.root().is_dir());
    assert_eq!(ws.root(), dir.path().canonicalize().unwrap().join("ws"));
}

#[test]
fn resolve_refuses_paths_that_leave_the_workspace() {
    let (_dir, ws) = workspace();
    let msg = bad_path_reason(ws.resolve("../etc/passwd"));
    assert!(msg.contains("`../etc/passwd` is not allowed") && msg.contains("may not contain `..`"), "{msg}");
    assert!(bad_path_reason(ws.resolve("a/../../b")).contains(".."));
    assert!(bad_path_reason(ws.resolve("/etc/passwd")).contains("drop the leading `/`"));
    assert!(bad_path_reason(ws.resolve("/workspace/notes.md")).contains("pass `notes.md`"));
    assert!(bad_path_reason(ws.resolve("")).contains("empty"));
    assert!(bad_path_reason(ws.resolve("./")).contains("workspace root itself"));
    assert!(bad_path_reason(ws.resolve("a\\b")).contains("backslash"));
}

#[test]
fn resolve_never_echoes_nul_bytes_or_huge_paths() {
    let (_dir, ws) = workspace();
    let msg = bad_path_reason(ws.resolve("a\0b"));
    assert!(!msg.contains('\0') && msg.contains("NUL"), "{msg}");
    let long = "x/".repeat(600);
    let msg = bad_path_reason(ws.resolve(&long));
    assert!(msg.contains("at most 1024 bytes") && msg.len() < 400, "{msg}");
    let msg = bad_path_reason(ws.resolve(&"n".repeat(300)));
    assert!(msg.contains("at most 255 bytes") && msg.len() < 700, "{msg}");
}

#[test]
fn resolve_normalizes_harmless_components() {
    let (_dir, ws) = workspace();
    assert_eq!(ws.resolve("a//./b/c.txt").unwrap(), ws.root().join("a/b/c.txt"));
    assert_eq!(ws.resolve("notes/").unwrap(), ws.root().join("notes"));
}

#[tokio::test]
async fn symlinks_are_never_followed() {
    let (dir, ws) = workspace();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host secret").unwrap();
    symlink(&outside, ws.root().join("out")).unwrap();
    symlink(outside.join("secret"), ws.root().join("secret-link")).unwrap();
    std::fs::create_dir(ws.root().join("real")).unwrap();
    symlink("real", ws.root().join("inner")).unwrap();

    assert!(bad_path_reason(ws.resolve("out/secret")).contains("`out` is a symlink"));
    assert!(bad_path_reason(ws.read("out/secret", 1024).await).contains("symlink"));
    assert!(bad_path_reason(ws.read("secret-link", 1024).await).contains("symlink"));
    assert!(bad_path_reason(ws.write("out/planted", b"x").await).contains("symlink"));
    assert!(bad_path_reason(ws.write("out/new/dir/planted", b"x").await).contains("symlink"));
    assert!(bad_path_reason(ws.write("secret-link", b"overwrite").await).contains("symlink"));
    assert!(bad_path_reason(ws.edit("secret-link", "host", "x").await).contains("symlink"));
    assert!(bad_path_reason(ws.list("out").await).contains("symlink"));
    assert!(bad_path_reason(ws.delete("out/secret", false).await).contains("symlink"));
    assert!(bad_path_reason(ws.rename("out/secret", "stolen").await).contains("symlink"));
    // Links that stay inside are refused too: one rule, no judgement calls.
    assert!(bad_path_reason(ws.write("inner/f", b"x").await).contains("symlink"));

    assert!(!outside.join("planted").exists() && !outside.join("new").exists());
    assert_eq!(std::fs::read_to_string(outside.join("secret")).unwrap(), "host secret");

    // The link itself can be seen and removed; its target is untouched.
    let kinds: Vec<_> = ws.list("").await.unwrap().into_iter().map(|e| (e.path, e.kind)).collect();
    assert!(kinds.contains(&("out".into(), EntryKind::Symlink)));
    ws.delete("secret-link", false).await.unwrap();
    ws.delete("out", true).await.unwrap();
    assert!(outside.join("secret").exists());
}

#[tokio::test]
async fn a_directory_swapped_for_a_symlink_mid_operation_never_leaks_a_write() {
    let (dir, ws) = workspace();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, outside, stop) = (ws.root().to_owned(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            // What a hostile shell in the same workspace could do while the API works.
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_dir_all(root.join("d"));
                let _ = std::fs::create_dir(root.join("d"));
                let _ = std::fs::remove_dir_all(root.join("d"));
                let _ = symlink(&outside, root.join("d"));
                let _ = std::fs::remove_file(root.join("d"));
            }
        })
    };
    let mut refused = 0;
    for i in 0..400 {
        for path in [format!("d/f{i}"), format!("d/sub/f{i}")] {
            refused += usize::from(matches!(ws.write(&path, b"x").await, Err(FsError::BadPath { .. })));
        }
        let _ = ws.delete("d/sub", true).await;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("{refused} of 800 writes met the symlink");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "a write escaped through a swapped symlink");
}

#[tokio::test]
async fn write_then_read_round_trips_and_creates_parents() {
    let (_dir, ws) = workspace();
    ws.write("src/lib/notes.md", b"hello").await.unwrap();
    assert_eq!(ws.read("src/lib/notes.md", 1024).await.unwrap(), b"hello");
    ws.write("src/lib/notes.md", b"replaced").await.unwrap();
    assert_eq!(ws.read("src/lib/notes.md", 1024).await.unwrap(), b"replaced");
    // No temporary files are left behind.
    let names: Vec<_> = ws.list("src/lib").await.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(names, ["src/lib/notes.md"]);
}

#[tokio::test]
async fn write_keeps_an_existing_files_mode() {
    let (_dir, ws) = workspace();
    ws.write("run.sh", b"#!/bin/sh\n").await.unwrap();
    assert_eq!(std::fs::metadata(ws.root().join("run.sh")).unwrap().permissions().mode() & 0o777, 0o644);
    std::fs::set_permissions(ws.root().join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    ws.write("run.sh", b"#!/bin/sh\necho hi\n").await.unwrap();
    assert_eq!(std::fs::metadata(ws.root().join("run.sh")).unwrap().permissions().mode() & 0o777, 0o755);
}

#[tokio::test]
async fn reads_are_bounded_and_refuse_non_files() {
    let (_dir, ws) = workspace();
    ws.write("big.bin", &[7u8; 5000]).await.unwrap();
    match ws.read("big.bin", 4096).await {
        Err(e @ FsError::TooLarge { size: 5000, limit: 4096, .. }) => assert!(e.to_string().contains("limit")),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(ws.read("missing.txt", 10).await, Err(FsError::NotFound(_))));
    assert!(matches!(ws.read("missing/deeper.txt", 10).await, Err(FsError::NotFound(_))));
    assert!(matches!(ws.read("big.bin/x", 10).await, Err(FsError::NotADirectory(_))));
    std::fs::create_dir(ws.root().join("dir")).unwrap();
    assert!(matches!(ws.read("dir", 10).await, Err(FsError::NotAFile(_))));
    assert!(matches!(ws.write("dir", b"x").await, Err(FsError::NotAFile(_))));
    // A FIFO planted by the shell must not hang the reader.
    let status = std::process::Command::new("mkfifo").arg(ws.root().join("fifo")).status().unwrap();
    assert!(status.success());
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), ws.read("fifo", 10)).await.expect("reading a FIFO hung");
    assert!(matches!(read, Err(FsError::NotAFile(_))));
}

#[tokio::test]
async fn edit_replaces_exactly_one_occurrence() {
    let (_dir, ws) = workspace();
    ws.write("a.txt", b"one\ntwo\nthree two\n").await.unwrap();
    assert_eq!(ws.edit("a.txt", "three", "3").await.unwrap(), 3);
    assert_eq!(ws.read("a.txt", 100).await.unwrap(), b"one\ntwo\n3 two\n");

    let e = ws.edit("a.txt", "two", "2").await.unwrap_err();
    assert!(matches!(e, FsError::EditMismatch { found: 2, .. }) && e.to_string().contains("occurs 2 times"), "{e}");
    let e = ws.edit("a.txt", "four", "4").await.unwrap_err();
    assert!(matches!(e, FsError::EditMismatch { found: 0, .. }) && e.to_string().contains("not found"), "{e}");
    assert!(matches!(ws.edit("a.txt", "", "x").await, Err(FsError::EmptyEdit(_))));
    ws.write("bin", &[0xff, 0xfe, 0x00]).await.unwrap();
    assert!(matches!(ws.edit("bin", "x", "y").await, Err(FsError::NotUtf8(_))));
    assert_eq!(ws.read("a.txt", 100).await.unwrap(), b"one\ntwo\n3 two\n", "a failed edit changed the file");
}

#[tokio::test]
async fn delete_guards_the_root_and_non_empty_directories() {
    let (_dir, ws) = workspace();
    ws.write("d/e/f.txt", b"x").await.unwrap();
    assert!(bad_path_reason(ws.delete("", true).await).contains("empty"));
    assert!(bad_path_reason(ws.delete(".", true).await).contains("workspace root itself"));
    let e = ws.delete("d", false).await.unwrap_err();
    assert!(matches!(e, FsError::NotEmpty(_)) && e.to_string().contains("recursive"), "{e}");
    ws.delete("d/e/f.txt", false).await.unwrap();
    ws.delete("d/e", false).await.unwrap();
    ws.write("d/e/g.txt", b"x").await.unwrap();
    ws.delete("d", true).await.unwrap();
    assert!(ws.list("").await.unwrap().is_empty());
    assert!(ws.root().is_dir());
    assert!(matches!(ws.delete("d", true).await, Err(FsError::NotFound(_))));
}

#[tokio::test]
async fn recursive_delete_does_not_follow_links_out() {
    let (dir, ws) = workspace();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    ws.write("d/file", b"x").await.unwrap();
    symlink(&outside, ws.root().join("d/link")).unwrap();
    ws.delete("d", true).await.unwrap();
    assert!(outside.join("keep").exists());
}

#[tokio::test]
async fn rename_moves_without_overwriting() {
    let (_dir, ws) = workspace();
    ws.write("a.txt", b"a").await.unwrap();
    ws.write("b.txt", b"b").await.unwrap();
    let e = ws.rename("a.txt", "b.txt").await.unwrap_err();
    assert!(matches!(e, FsError::AlreadyExists(_)) && e.to_string().contains("already exists"), "{e}");
    ws.rename("a.txt", "archive/2024/a.txt").await.unwrap();
    assert_eq!(ws.read("archive/2024/a.txt", 10).await.unwrap(), b"a");
    assert!(matches!(ws.read("a.txt", 10).await, Err(FsError::NotFound(_))));
    assert!(bad_path_reason(ws.rename("archive", "archive/inner").await).contains("into itself"));
    assert!(matches!(ws.rename("nope", "x").await, Err(FsError::NotFound(_))));
}

#[tokio::test]
async fn list_is_one_level_sorted_and_relative() {
    let (_dir, ws) = workspace();
    ws.write("src/b.rs", b"bb").await.unwrap();
    ws.write("src/a.rs", b"a").await.unwrap();
    ws.write("src/nested/c.rs", b"c").await.unwrap();
    let entries = ws.list("src").await.unwrap();
    let summary: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.kind, e.size)).collect();
    assert_eq!(summary, [("src/a.rs", EntryKind::File, 1), ("src/b.rs", EntryKind::File, 2), ("src/nested", EntryKind::Dir, 0)]);
    assert!(entries[0].modified_ms > 1_600_000_000_000);
    assert_eq!(ws.list("").await.unwrap(), ws.list(".").await.unwrap());
    assert!(matches!(ws.list("src/a.rs").await, Err(FsError::NotADirectory(_))));
    assert!(matches!(ws.list("nope").await, Err(FsError::NotFound(_))));
    assert_eq!(ws.usage_bytes(), 4);
}

#[tokio::test]
async fn files_created_as_root_take_the_workspace_owner() {
    if !is_root() {
        eprintln!("skipped: only meaningful when the server runs as root");
        return;
    }
    let (_dir, ws) = workspace();
    std::os::unix::fs::chown(ws.root(), Some(4242), Some(4243)).unwrap();
    ws.write("new/dir/file.txt", b"x").await.unwrap();
    for path in ["new", "new/dir", "new/dir/file.txt"] {
        let meta = std::fs::metadata(ws.root().join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4243), "{path}");
    }
}

fn is_root() -> bool {
    std::fs::metadata(Path::new("/proc/self")).map(|m| m.uid() == 0).unwrap_or(false)
}
