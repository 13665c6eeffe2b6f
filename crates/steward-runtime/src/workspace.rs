//! An agent's workspace (§7): a persistent directory on the host, and the file operations the
//! filesystem API and the `workspace` tools perform on it. The shell sees the same directory as
//! `/workspace` inside its sandbox (`sandbox.rs`).
//!
//! This module must never let a user-supplied path reach anything outside the workspace root.
//! The rules, enforced by [`Workspace::resolve`] and by every operation:
//!
//! - Paths are relative and `/`-separated. Refused: the empty path (except that `list` takes
//!   `""` or `"."` for the root), absolute paths, `..` components, NUL bytes, backslashes (legal
//!   in Linux names, but nearly always a Windows-style separator that would silently create a
//!   file called `a\b`), paths over 1024 bytes and names over 255 bytes. Empty and `.`
//!   components are ignored (`a//./b` is `a/b`).
//! - **Symlinks are never followed.** The agent's shell can create symlinks, possibly pointing
//!   at host paths; the file API runs with the server's privileges, so following even
//!   "internal" links is not worth the risk. A path whose directories include a symlink is
//!   refused; a symlink as the final component is listed (kind `Symlink`), can be deleted or
//!   renamed (which touch the link itself), and is refused by read, write and edit.
//! - Checks are not done on a path and then trusted (a classic race, since the agent's shell
//!   may be changing the same tree at that moment). Each operation opens the root, then each
//!   directory below it with `O_NOFOLLOW | O_DIRECTORY`, and reaches the next name through
//!   `/proc/self/fd/<dir>/<name>` — the kernel resolves `name` inside the directory already
//!   open, like `openat(2)`, however the tree is swapped meanwhile. Final files are opened with
//!   `O_NOFOLLOW` (and `O_NONBLOCK`, so a FIFO planted by the shell cannot hang a reader).
//!   Residual races, all confined to the workspace: a `rename` can replace a target created
//!   between its existence check and the rename, and `write` can replace (never write through)
//!   a symlink created at the final name in the same window.
//! - When the server runs as root, files and directories created here take the owner of the
//!   workspace root, which the sandbox sets to the agent's unprivileged uid; otherwise the
//!   agent's shell could not modify what the API wrote.
//!
//! Requires `/proc` (always mounted on the Linux hosts Steward supports).

use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const MAX_PATH_BYTES: usize = 1024;
const MAX_NAME_BYTES: usize = 255;
/// Files larger than this are not loaded for `edit`.
const MAX_EDIT_BYTES: u64 = 16 * 1024 * 1024;
/// Directory depth at which tree walks (ownership, usage) stop, to bound open descriptors.
const MAX_WALK_DEPTH: usize = 128;

/// An agent's workspace directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    /// The server runs as root: new files take the root directory's owner.
    adopt_owner: bool,
}

/// One directory entry, as [`Workspace::list`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the workspace root, `/`-separated (non-UTF-8 names are shown lossily).
    pub path: String,
    pub kind: EntryKind,
    /// Bytes for files and symlinks (the link's own length); 0 for directories.
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// Why a workspace operation failed. Paths in messages are the user's own, with control
/// characters escaped and cut to 200 characters.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("`{path}` is not allowed: {reason}")]
    BadPath { path: String, reason: String },
    #[error("`{0}` does not exist in the agent's workspace; list its parent directory to see what is there")]
    NotFound(String),
    #[error("`{0}` is not a regular file; list it if it is a directory, or pick a file")]
    NotAFile(String),
    #[error("`{0}` is not a directory; name a directory, or the file's parent")]
    NotADirectory(String),
    #[error("`{0}` already exists; delete it first or choose another name")]
    AlreadyExists(String),
    #[error("`{0}` is a directory that is not empty; delete it with `recursive` set to remove everything inside")]
    NotEmpty(String),
    #[error("`{path}` is {size} bytes, more than the {limit}-byte limit; read a smaller file, or split it with the shell")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("`{0}` is not UTF-8 text, so it cannot be edited; write the whole file instead")]
    NotUtf8(String),
    #[error("{}", edit_mismatch(path, *found))]
    EditMismatch { path: String, found: usize },
    #[error("the text to replace in `{0}` is empty; pass the exact existing text to replace (use write to replace a whole file)")]
    EmptyEdit(String),
    #[error("{0}")]
    Io(String),
}

fn edit_mismatch(path: &str, found: usize) -> String {
    if found == 0 {
        format!("the text to replace was not found in `{path}`; read the file and copy the exact text, including whitespace")
    } else {
        format!("the text to replace occurs {found} times in `{path}`; include more surrounding text so it matches exactly once")
    }
}

impl Workspace {
    /// Opens the workspace at `root`, creating it (and its parents) if missing.
    pub fn open(root: &Path) -> Result<Self, FsError> {
        let shown_root = root.display().to_string();
        fs::create_dir_all(root).map_err(|e| FsError::Io(format!("could not create the workspace directory `{shown_root}`: {e}")))?;
        let root = root.canonicalize().map_err(|e| FsError::Io(format!("could not open the workspace directory `{shown_root}`: {e}")))?;
        if !Path::new("/proc/self/fd").is_dir() {
            return Err(FsError::Io("`/proc` is not mounted; the workspace needs it to open paths safely".into()));
        }
        Ok(Self { root, adopt_owner: effective_uid() == 0 })
    }

    /// The workspace directory on the host (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Validates a user-supplied relative path (see the module doc for the rules) and returns
    /// it as an absolute host path. The existing part of the path is checked for symlinks
    /// here, but that check can race with the agent's shell; the operations below do not rely
    /// on it, and callers that open the path themselves should use `O_NOFOLLOW`.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, FsError> {
        let names = parse(rel, false)?;
        let mut path = self.root.clone();
        let mut exists = true;
        for (i, name) in names.iter().enumerate() {
            path.push(name);
            if !exists {
                continue;
            }
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => return Err(through_symlink(&names, i)),
                Ok(m) if !m.is_dir() && i + 1 < names.len() => return Err(FsError::NotADirectory(shown(&names[..=i].join("/")))),
                Ok(_) => {}
                Err(_) => exists = false,
            }
        }
        Ok(path)
    }

    /// The entries of one directory (`""` or `"."` is the root), sorted by name.
    pub async fn list(&self, rel: &str) -> Result<Vec<Entry>, FsError> {
        let (ws, rel) = (self.clone(), rel.to_owned());
        blocking(move || ws.list_blocking(&rel)).await
    }

    /// A file's content; [`FsError::TooLarge`] if it is over `max_bytes`.
    pub async fn read(&self, rel: &str, max_bytes: u64) -> Result<Vec<u8>, FsError> {
        let (ws, rel) = (self.clone(), rel.to_owned());
        blocking(move || ws.read_blocking(&rel, max_bytes)).await
    }

    /// Creates or replaces a file, creating its parent directories. Atomic: the content goes
    /// to a temporary file in the same directory, which is then renamed over the target, so a
    /// reader sees the old or the new content, never a mix. An existing file keeps its mode.
    pub async fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), FsError> {
        let (ws, rel, bytes) = (self.clone(), rel.to_owned(), bytes.to_vec());
        blocking(move || ws.write_blocking(&rel, &bytes)).await
    }

    /// Replaces the one occurrence of `old` in a UTF-8 file with `new`, atomically like
    /// [`Workspace::write`]. Fails, saying how many it found, unless `old` occurs exactly once.
    /// Returns the 1-based line number where the replaced text started.
    pub async fn edit(&self, rel: &str, old: &str, new: &str) -> Result<usize, FsError> {
        let (ws, rel, old, new) = (self.clone(), rel.to_owned(), old.to_owned(), new.to_owned());
        blocking(move || ws.edit_blocking(&rel, &old, &new)).await
    }

    /// Deletes a file, a symlink (not its target), or a directory — a non-empty one only when
    /// `recursive`. The workspace root itself cannot be deleted.
    pub async fn delete(&self, rel: &str, recursive: bool) -> Result<(), FsError> {
        let (ws, rel) = (self.clone(), rel.to_owned());
        blocking(move || ws.delete_blocking(&rel, recursive)).await
    }

    /// Moves `from` to `to`, creating `to`'s parent directories; refuses to overwrite.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        let (ws, from, to) = (self.clone(), from.to_owned(), to.to_owned());
        blocking(move || ws.rename_blocking(&from, &to)).await
    }

    /// Total size of the files in the workspace (best effort: unreadable parts count as 0).
    /// Walks the whole tree; call it from a blocking context for large workspaces.
    pub fn usage_bytes(&self) -> u64 {
        let mut total = 0;
        if let Ok(root) = Dir::open_root(&self.root) {
            let _ = walk_tree(&root, 0, &mut |_, _, meta| {
                if meta.is_file() {
                    total += meta.len();
                }
                Ok(())
            });
        }
        total
    }

    /// Makes `uid:gid` own the whole tree (without following symlinks) unless the root already
    /// has that owner. The root is changed last, so an interrupted pass is redone next time.
    pub(crate) fn ensure_owner(&self, uid: u32, gid: u32) -> Result<(), FsError> {
        let root = self.open_root()?;
        let meta =
            root.fd.metadata().map_err(|e| FsError::Io(format!("could not inspect the workspace `{}`: {e}", self.root.display())))?;
        if meta.uid() == uid && meta.gid() == gid {
            return Ok(());
        }
        walk_tree(&root, 0, &mut |dir, name, meta| {
            if meta.uid() != uid || meta.gid() != gid {
                std::os::unix::fs::lchown(dir.child(name), Some(uid), Some(gid))?;
            }
            Ok(())
        })
        .and_then(|()| std::os::unix::fs::fchown(&root.fd, Some(uid), Some(gid)))
        .map_err(|e| FsError::Io(format!("could not give the workspace `{}` to uid {uid}: {e}", self.root.display())))
    }

    fn list_blocking(&self, rel: &str) -> Result<Vec<Entry>, FsError> {
        let names = parse(rel, true)?;
        let root = self.open_root()?;
        let dir = match names.split_last() {
            None => root,
            Some((last, _)) => {
                let parent = self.walk(&root, &names, false)?;
                parent.open_dir(last).map_err(|e| open_error(&parent, &names, e, true))?
            }
        };
        let prefix = names.join("/");
        let mut entries = Vec::new();
        let read = fs::read_dir(dir.path()).map_err(|e| io_error("list", &prefix, e))?;
        for item in read {
            let item = item.map_err(|e| io_error("list", &prefix, e))?;
            let Ok(meta) = fs::symlink_metadata(dir.child(item.file_name())) else { continue };
            let name = item.file_name().to_string_lossy().into_owned();
            let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let kind = if meta.file_type().is_symlink() {
                EntryKind::Symlink
            } else if meta.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            let size = if kind == EntryKind::Dir { 0 } else { meta.len() };
            entries.push(Entry { path, kind, size, modified_ms: meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000 });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    fn read_blocking(&self, rel: &str, max_bytes: u64) -> Result<Vec<u8>, FsError> {
        let names = parse(rel, false)?;
        let root = self.open_root()?;
        let parent = self.walk(&root, &names, false)?;
        let mut file = open_file(&parent, &names)?;
        let size = file.metadata().map_err(|e| io_error("read", rel, e))?.len();
        if size > max_bytes {
            return Err(FsError::TooLarge { path: shown(&names.join("/")), size, limit: max_bytes });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // The file may grow while we read; never take more than the limit.
        (&mut file).take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| io_error("read", rel, e))?;
        if bytes.len() as u64 > max_bytes {
            return Err(FsError::TooLarge { path: shown(&names.join("/")), size: bytes.len() as u64, limit: max_bytes });
        }
        Ok(bytes)
    }

    fn write_blocking(&self, rel: &str, bytes: &[u8]) -> Result<(), FsError> {
        let names = parse(rel, false)?;
        let root = self.open_root()?;
        let parent = self.walk(&root, &names, true)?;
        let name = names.last().expect("parse refuses an empty path");
        let mode = match fs::symlink_metadata(parent.child(name)) {
            Ok(m) if m.file_type().is_symlink() => return Err(final_symlink(&names)),
            Ok(m) if !m.is_file() => return Err(FsError::NotAFile(shown(rel))),
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => 0o644,
        };
        let temp = format!(".steward-tmp-{:016x}", rand::random::<u64>());
        let result = (|| {
            let mut file =
                OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(parent.child(&temp))?;
            file.write_all(bytes)?;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            self.adopt(&root, &file)?;
            file.sync_data()?;
            fs::rename(parent.child(&temp), parent.child(name))
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(parent.child(&temp));
            return Err(io_error("write", rel, e));
        }
        Ok(())
    }

    fn edit_blocking(&self, rel: &str, old: &str, new: &str) -> Result<usize, FsError> {
        if old.is_empty() {
            return Err(FsError::EmptyEdit(shown(rel)));
        }
        let bytes = self.read_blocking(rel, MAX_EDIT_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| FsError::NotUtf8(shown(rel)))?;
        let found = text.matches(old).count();
        if found != 1 {
            return Err(FsError::EditMismatch { path: shown(rel), found });
        }
        let at = text.find(old).expect("counted once above");
        let line = text[..at].matches('\n').count() + 1;
        let edited = format!("{}{new}{}", &text[..at], &text[at + old.len()..]);
        self.write_blocking(rel, edited.as_bytes())?;
        Ok(line)
    }

    fn delete_blocking(&self, rel: &str, recursive: bool) -> Result<(), FsError> {
        let names = parse(rel, false)?;
        let root = self.open_root()?;
        let parent = self.walk(&root, &names, false)?;
        let target = parent.child(names.last().expect("parse refuses an empty path"));
        let meta = fs::symlink_metadata(&target).map_err(|e| io_error("delete", rel, e))?;
        let result = match (meta.is_dir(), recursive) {
            (true, true) => fs::remove_dir_all(&target),
            (true, false) => fs::remove_dir(&target),
            (false, _) => fs::remove_file(&target),
        };
        result.map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTEMPTY | libc::EEXIST) => FsError::NotEmpty(shown(rel)),
            _ => io_error("delete", rel, e),
        })
    }

    fn rename_blocking(&self, from: &str, to: &str) -> Result<(), FsError> {
        let (src, dst) = (parse(from, false)?, parse(to, false)?);
        if dst.len() > src.len() && dst[..src.len()] == src[..] {
            return Err(FsError::BadPath {
                path: shown(to),
                reason: format!("it is inside `{}`, which cannot move into itself", shown(from)),
            });
        }
        let root = self.open_root()?;
        let src_parent = self.walk(&root, &src, false)?;
        let src_path = src_parent.child(src.last().expect("parse refuses an empty path"));
        fs::symlink_metadata(&src_path).map_err(|e| io_error("move", from, e))?;
        let dst_parent = self.walk(&root, &dst, true)?;
        let dst_path = dst_parent.child(dst.last().expect("parse refuses an empty path"));
        if fs::symlink_metadata(&dst_path).is_ok() {
            return Err(FsError::AlreadyExists(shown(to)));
        }
        fs::rename(&src_path, &dst_path).map_err(|e| io_error("move", from, e))
    }

    fn open_root(&self) -> Result<Dir, FsError> {
        Dir::open_root(&self.root).map_err(|e| {
            let hint =
                if e.kind() == io::ErrorKind::NotFound { "; it was deleted — open the workspace again to recreate it" } else { "" };
            FsError::Io(format!("could not open the workspace `{}`: {e}{hint}", self.root.display()))
        })
    }

    /// Opens the directory that holds the last of `names`, one directory at a time, refusing
    /// symlinks; with `create`, missing directories are made.
    fn walk(&self, root: &Dir, names: &[String], create: bool) -> Result<Dir, FsError> {
        let mut dir = root.try_clone().map_err(|e| FsError::Io(format!("could not open the workspace `{}`: {e}", self.root.display())))?;
        for (i, name) in names[..names.len().saturating_sub(1)].iter().enumerate() {
            let next = match dir.open_dir(name) {
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    // Another writer may create it at the same moment; that is fine.
                    let made = fs::DirBuilder::new().mode(0o755).create(dir.child(name));
                    let made = made.or_else(|e| if e.kind() == io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) });
                    match made.and_then(|()| dir.open_dir(name)) {
                        Ok(child) => {
                            self.adopt(root, &child.fd).map_err(|e| io_error("create", &names[..=i].join("/"), e))?;
                            Ok(child)
                        }
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            dir = next.map_err(|e| open_error(&dir, &names[..=i], e, true))?;
        }
        Ok(dir)
    }

    /// When the server is root, gives a new file the workspace root's owner.
    fn adopt(&self, root: &Dir, file: &File) -> io::Result<()> {
        if self.adopt_owner {
            let owner = root.fd.metadata()?;
            if owner.uid() != 0 || owner.gid() != 0 {
                std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()))?;
            }
        }
        Ok(())
    }
}

/// An open directory. Names under it are reached as `/proc/self/fd/<fd>/<name>`, which the
/// kernel resolves inside this very directory wherever it now is.
struct Dir {
    fd: File,
}

impl Dir {
    fn open_root(root: &Path) -> io::Result<Dir> {
        OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(root).map(|fd| Dir { fd })
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    fn child(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path().join(name.as_ref())
    }

    fn open_dir(&self, name: impl AsRef<OsStr>) -> io::Result<Dir> {
        let flags = libc::O_DIRECTORY | libc::O_NOFOLLOW;
        OpenOptions::new().read(true).custom_flags(flags).open(self.child(name)).map(|fd| Dir { fd })
    }

    fn try_clone(&self) -> io::Result<Dir> {
        self.fd.try_clone().map(|fd| Dir { fd })
    }
}

/// Opens the final name of `names` in `parent` as a regular file, for reading.
fn open_file(parent: &Dir, names: &[String]) -> Result<File, FsError> {
    let name = names.last().expect("parse refuses an empty path");
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(parent.child(name))
        .map_err(|e| open_error(parent, names, e, false))?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(FsError::NotAFile(shown(&names.join("/")))),
        Err(e) => Err(io_error("read", &names.join("/"), e)),
    }
}

/// Explains a failed open of the last of `names` in `parent`.
fn open_error(parent: &Dir, names: &[String], e: io::Error, want_dir: bool) -> FsError {
    let name = names.last().expect("never called with no names");
    let shown_path = shown(&names.join("/"));
    let is_link = fs::symlink_metadata(parent.child(name)).is_ok_and(|m| m.file_type().is_symlink());
    match e.raw_os_error() {
        _ if is_link && want_dir => through_symlink(names, names.len() - 1),
        _ if is_link => final_symlink(names),
        Some(libc::ENOENT) => FsError::NotFound(shown_path),
        Some(libc::ENOTDIR) => FsError::NotADirectory(shown_path),
        _ => io_error("open", &names.join("/"), e),
    }
}

/// Calls `f` for every entry below `dir`, a directory's contents before the directory
/// itself, never following symlinks.
fn walk_tree(dir: &Dir, depth: usize, f: &mut dyn FnMut(&Dir, &OsStr, &Metadata) -> io::Result<()>) -> io::Result<()> {
    if depth > MAX_WALK_DEPTH {
        return Err(io::Error::other(format!("directories nest deeper than {MAX_WALK_DEPTH} levels")));
    }
    for item in fs::read_dir(dir.path())? {
        let name = item?.file_name();
        let Ok(meta) = fs::symlink_metadata(dir.child(&name)) else { continue };
        if meta.is_dir() {
            walk_tree(&dir.open_dir(&name)?, depth + 1, f)?;
        }
        f(dir, &name, &meta)?;
    }
    Ok(())
}

/// Splits and checks a user path; `root_ok` accepts `""`/`"."` as the root (no names).
fn parse(rel: &str, root_ok: bool) -> Result<Vec<String>, FsError> {
    let bad = |reason: String| Err(FsError::BadPath { path: shown(rel), reason });
    if rel.contains('\0') {
        return bad("it contains a NUL byte; remove it".into());
    }
    if rel.len() > MAX_PATH_BYTES {
        return bad(format!("it is {} bytes long; paths may be at most {MAX_PATH_BYTES} bytes", rel.len()));
    }
    if let Some(inner) = rel.strip_prefix("/workspace/") {
        return bad(format!("paths are relative to the agent's workspace; for the shell's `{}` pass `{}`", shown(rel), shown(inner)));
    }
    if rel.starts_with('/') {
        return bad("paths are relative to the agent's workspace; drop the leading `/`".into());
    }
    if rel.contains('\\') {
        return bad("it contains a backslash; separate directories with `/`".into());
    }
    let mut names = Vec::new();
    for name in rel.split('/').filter(|n| !n.is_empty() && *n != ".") {
        if name == ".." {
            return bad("paths are relative to the agent's workspace and may not contain `..`".into());
        }
        if name.len() > MAX_NAME_BYTES {
            return bad(format!("the name `{}` is {} bytes; names may be at most {MAX_NAME_BYTES} bytes", shown(name), name.len()));
        }
        names.push(name.to_owned());
    }
    if names.is_empty() && !root_ok {
        let reason = if rel.is_empty() { "the path is empty" } else { "it names the workspace root itself" };
        return bad(format!("{reason}; name a file or directory inside the workspace, e.g. `notes/todo.md`"));
    }
    Ok(names)
}

fn through_symlink(names: &[String], at: usize) -> FsError {
    FsError::BadPath {
        path: shown(&names.join("/")),
        reason: format!(
            "`{}` is a symlink, and the file API does not follow symlinks; use the real directory",
            shown(&names[..=at].join("/"))
        ),
    }
}

fn final_symlink(names: &[String]) -> FsError {
    FsError::BadPath {
        path: shown(&names.join("/")),
        reason: "it is a symlink, and the file API does not read or write through symlinks; use the file it points to, or delete the link"
            .into(),
    }
}

fn io_error(action: &str, rel: &str, e: io::Error) -> FsError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => FsError::NotFound(shown(rel)),
        Some(libc::EISDIR) => FsError::NotAFile(shown(rel)),
        Some(libc::ENOSPC | libc::EDQUOT) => {
            FsError::Io(format!("could not {action} `{}`: the disk is full; delete files first", shown(rel)))
        }
        Some(libc::EACCES | libc::EPERM) => FsError::Io(format!(
            "could not {action} `{}`: permission denied; the server's user needs write access to the workspace directory",
            shown(rel)
        )),
        _ => FsError::Io(format!("could not {action} `{}`: {e}", shown(rel))),
    }
}

/// A user path made safe to echo: control characters escaped, at most 200 characters.
fn shown(path: &str) -> String {
    let mut out = String::new();
    for (i, c) in path.chars().enumerate() {
        if i == 200 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, FsError> + Send + 'static) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| FsError::Io(format!("the file operation did not complete: {e}")))?
}

/// This process's effective uid, from `/proc/self/status` (this crate forbids `unsafe`, so
/// no `geteuid`). Unreadable means "not root", the conservative answer.
pub(crate) fn effective_uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1));
    uid.and_then(|u| u.parse().ok()).unwrap_or(u32::MAX)
}
