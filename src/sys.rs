//! Calls into the C library that need `unsafe`, each in one small function.

/// Gives the heap's free memory back to the kernel (glibc's `malloc_trim`): free chunks
/// between live ones stay mapped otherwise, so a process that held a large table keeps its
/// size after the table goes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_heap() {
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C libraries have no such call: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_heap() {}
