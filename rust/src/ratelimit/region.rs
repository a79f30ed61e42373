//! A shared memory mapping seen as a slice of `AtomicU64`.
//!
//! File-backed (`MAP_SHARED` over a file on tmpfs such as /dev/shm, so every
//! worker process of a gateway instance maps the same pages) or anonymous
//! (one process only). The file is created mode 0600 and never reused: a
//! gateway instance creates its own, so no stale layout is ever mapped.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory accessed only through atomics.
unsafe impl Send for Region {}
// SAFETY: as above; `words` hands out shared references to atomics only.
unsafe impl Sync for Region {}

impl Region {
    /// Creates `path` (which must not exist) holding `len` zero bytes and maps it.
    pub fn create(path: &Path, len: usize) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(len as u64)?;
        Self::map(Some(&file), len)
    }

    /// Maps an existing file whole.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
        Self::map(Some(&file), len)
    }

    /// `len` zero bytes visible to this process only.
    pub fn anonymous(len: usize) -> io::Result<Self> {
        Self::map(None, len)
    }

    fn map(file: Option<&File>, len: usize) -> io::Result<Self> {
        if len == 0 || len % 8 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a shared region must be a non-empty multiple of 8 bytes, got {len}"),
            ));
        }
        let (flags, fd) = match file {
            Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping at an address of the kernel's choosing; the
        // result is checked before use and unmapped exactly once in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole mapping as 64-bit atomics.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned, `len` is a multiple of 8, it
        // lives as long as `self`, and AtomicU64 has the layout of u64. Other
        // processes touch it only through atomic operations as well.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU64>(), self.len / 8) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a live mapping created in `map`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
