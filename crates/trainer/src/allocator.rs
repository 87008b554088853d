//! The one allocator setting training wants: keep freed memory for reuse.
//!
//! By default mimalloc hands freed memory back to the OS a second later. A training step frees and
//! allocates the same large buffers at every step, so each came back as fresh pages for the
//! kernel to zero: with the attention decoder that was 40% of the step's time (the benchmark
//! went from 2.25 to 1.40 s a step without it). Kept, the memory stays at one step's peak and
//! the next step reuses it.

/// mimalloc v3's `mi_option_purge_delay` (its `include/mimalloc.h`; libmimalloc-sys names
/// only some options). Its default, 1000 (ms), is checked by the test below.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS (`MIMALLOC_PURGE_DELAY=-1`). Call it first in `main`
/// of a binary whose global allocator is mimalloc.
pub fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores a value in mimalloc's option table; any value and any
    // moment are allowed.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hard-coded index is the purge delay: the option whose default is 1000 ms (unless
    /// the environment sets it), as `MIMALLOC_VERBOSE=1` lists it.
    #[test]
    fn the_option_index_is_the_purge_delay() {
        #[allow(unsafe_code)]
        // SAFETY: reading an option has no preconditions.
        let delay = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(value) => assert_eq!(delay.to_string(), value),
            Err(_) => assert_eq!(delay, 1000),
        }
    }
}
