//! Resolution beneath a directory that never follows a symbolic link.
//!
//! Every component is opened relative to its parent's descriptor with `O_NOFOLLOW`, and
//! every later operation (`openat`, `statat`, `mkdirat`, `renameat`, `unlinkat`) names one
//! entry of a directory already held open. A link anywhere in a path — an operator's rsync,
//! a restored tarball, or one swapped in after a check — therefore makes the call fail
//! with `ELOOP` instead of leaving the root. Names must be single, normal components, so
//! nothing here can climb out either.
//!
//! Depends on std and rustix alone: the fuzz crate compiles this file as it is.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, SystemTime};

/// Modes of new directories and files, before the umask.
pub(crate) const DIR_MODE: u32 = 0o777;
pub(crate) const FILE_MODE: u32 = 0o666;

/// Whether `e` is the refusal of a symbolic link.
pub(crate) fn is_link_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::LOOP.raw_os_error())
}

fn link_error() -> io::Error {
    io::Error::from(Errno::LOOP)
}

/// A single normal component: not empty, `.` or `..`, without `/` or NUL.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single path component",
        ));
    }
    Ok(())
}

/// Opens the directory the server resolves everything beneath (links in this path, which
/// the operator configured, are followed).
pub(crate) fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The entry `name` of `dir`, itself (a link is reported as a link).
pub(crate) fn lstat(dir: BorrowedFd<'_>, name: &str) -> io::Result<Stat> {
    check_name(name)?;
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

pub(crate) fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Opens the subdirectory `name` of `dir`; a link there is `ELOOP`.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    check_name(name)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // With O_DIRECTORY, Linux reports a link as "not a directory"; say what it is.
        Err(Errno::NOTDIR) if lstat(dir, name).is_ok_and(|st| kind(&st) == FileType::Symlink) => {
            Err(link_error())
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens the directory `comps` names below `root`; an empty path is `root` itself.
pub(crate) fn open_dir<S: AsRef<str>>(root: BorrowedFd<'_>, comps: &[S]) -> io::Result<OwnedFd> {
    let mut cur = root.try_clone_to_owned()?;
    for c in comps {
        cur = open_subdir(cur.as_fd(), c.as_ref())?;
    }
    Ok(cur)
}

/// Like [`open_dir`], creating missing directories (each new entry fsynced into its
/// parent). Returns the directory and whether anything was created.
pub(crate) fn open_dir_create<S: AsRef<str>>(
    root: BorrowedFd<'_>,
    comps: &[S],
) -> io::Result<(OwnedFd, bool)> {
    let mut cur = root.try_clone_to_owned()?;
    let mut created = false;
    for c in comps {
        let name = c.as_ref();
        cur = match open_subdir(cur.as_fd(), name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(cur.as_fd(), name, Mode::from_raw_mode(DIR_MODE)) {
                    Ok(()) => {
                        created = true;
                        rustix::fs::fsync(cur.as_fd())?;
                    }
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_subdir(cur.as_fd(), name)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok((cur, created))
}

/// Opens the entry `name` of `dir` for reading without following a link. Never blocks on
/// a FIFO; the caller checks what it got (`File::metadata` describes the opened entry).
pub(crate) fn open_read(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    check_name(name)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        dir,
        name,
        flags,
        Mode::empty(),
    )?))
}

/// Creates the new file `name` in `dir` for writing; fails if anything is there already.
pub(crate) fn create_new(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    check_name(name)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        dir,
        name,
        flags,
        Mode::from_raw_mode(FILE_MODE),
    )?))
}

pub(crate) fn mkdir(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::mkdirat(
        dir,
        name,
        Mode::from_raw_mode(DIR_MODE),
    )?)
}

/// Removes the file (or link) `name` of `dir`.
pub(crate) fn unlink(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes the empty directory `name` of `dir`.
pub(crate) fn rmdir(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    check_name(name)?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Renames an entry; links are moved as entries, never followed.
pub(crate) fn rename(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
) -> io::Result<()> {
    check_name(from)?;
    check_name(to)?;
    Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?)
}

pub(crate) fn fsync(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fsync(dir)?)
}

/// Levels [`remove_tree`] descends before it gives up.
const MAX_REMOVE_DEPTH: usize = 256;

/// Removes the directory `name` of `dir` and everything below it, descending only
/// through directories opened without following links (a link is removed, not entered).
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    fn empty(dir: BorrowedFd<'_>, depth: usize) -> io::Result<()> {
        if depth > MAX_REMOVE_DEPTH {
            return Err(io::Error::other("directory tree too deep to remove"));
        }
        for name in names(dir)? {
            let st = match lstat(dir, &name) {
                Ok(st) => st,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if kind(&st) == FileType::Directory {
                let sub = open_subdir(dir, &name)?;
                empty(sub.as_fd(), depth + 1)?;
                rustix::fs::unlinkat(dir, name.as_str(), AtFlags::REMOVEDIR)?;
            } else {
                match rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
    let sub = open_subdir(dir, name)?;
    empty(sub.as_fd(), 0)?;
    drop(sub);
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Names in `dir` (UTF-8 ones only; `.` and `..` left out), sorted.
pub(crate) fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<String>> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name != "." && name != ".." {
            out.push(name.to_owned());
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// One entry met by [`walk`]: a file or a directory, never a link.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    dir: BorrowedFd<'a>,
    name: &'a str,
    stat: Stat,
}

impl<'a> Entry<'a> {
    /// The entry `name` of `dir`, as `stat` (from [`lstat`]) describes it.
    pub(crate) fn new(dir: BorrowedFd<'a>, name: &'a str, stat: Stat) -> Self {
        Self { dir, name, stat }
    }

    pub(crate) fn name(&self) -> &str {
        self.name
    }

    pub(crate) fn is_dir(&self) -> bool {
        kind(&self.stat) == FileType::Directory
    }

    pub(crate) fn is_file(&self) -> bool {
        kind(&self.stat) == FileType::RegularFile
    }

    pub(crate) fn len(&self) -> u64 {
        u64::try_from(self.stat.st_size).unwrap_or(0)
    }

    pub(crate) fn modified(&self) -> io::Result<SystemTime> {
        let secs = u64::try_from(self.stat.st_mtime).map_err(io::Error::other)?;
        let nanos = u32::try_from(self.stat.st_mtime_nsec).unwrap_or(0);
        Ok(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
    }

    /// Opens this entry for reading, relative to its directory, without following a link
    /// (so an entry swapped for a link since the walk saw it is refused).
    pub(crate) fn open(&self) -> io::Result<File> {
        open_read(self.dir, self.name)
    }

    /// Removes this entry (a file) from its directory.
    pub(crate) fn remove(&self) -> io::Result<()> {
        unlink(self.dir, self.name)
    }
}

/// What a [`walk`] visitor wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Continue,
    /// Go on, but not into this directory.
    Skip,
    Stop,
}

/// Visits the files and directories below `dir` in name order, depth first (a directory
/// before its contents), at most `max_depth` levels deep and `max_entries` entries in all.
/// Links and special files are skipped, never entered; so are names `skip` refuses (not
/// descended into). `visit` gets the components below `dir` and the entry. Unreadable
/// subdirectories are skipped.
pub(crate) fn walk(
    dir: BorrowedFd<'_>,
    max_depth: usize,
    max_entries: usize,
    skip: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(&[String], &Entry<'_>) -> Step,
) -> io::Result<()> {
    struct Walker<'v> {
        max_depth: usize,
        left: usize,
        skip: &'v dyn Fn(&str) -> bool,
        visit: &'v mut dyn FnMut(&[String], &Entry<'_>) -> Step,
        rel: Vec<String>,
    }
    impl Walker<'_> {
        fn dir(&mut self, dir: BorrowedFd<'_>, depth: usize) -> io::Result<Step> {
            for name in names(dir)? {
                if self.left == 0 {
                    return Ok(Step::Stop);
                }
                self.left -= 1;
                if (self.skip)(&name) {
                    continue;
                }
                let Ok(stat) = lstat(dir, &name) else {
                    continue;
                };
                let ft = kind(&stat);
                if ft != FileType::Directory && ft != FileType::RegularFile {
                    continue;
                }
                self.rel.push(name.clone());
                let entry = Entry {
                    dir,
                    name: &name,
                    stat,
                };
                let mut step = (self.visit)(&self.rel, &entry);
                if step == Step::Continue
                    && ft == FileType::Directory
                    && depth < self.max_depth
                    && let Ok(sub) = open_subdir(dir, &name)
                {
                    step = self.dir(sub.as_fd(), depth + 1)?;
                }
                self.rel.pop();
                if step == Step::Stop {
                    return Ok(Step::Stop);
                }
            }
            Ok(Step::Continue)
        }
    }
    if max_depth == 0 {
        return Ok(());
    }
    let mut w = Walker {
        max_depth,
        left: max_entries,
        skip,
        visit,
        rel: Vec::new(),
    };
    w.dir(dir, 1).map(|_| ())
}
