//! Atomics and cells, swapped for loom's under `cfg(loom)` so lock-free code is model-checked.
//!
//! Lock-free modules (`spsc`) import every shared-memory primitive from here, never from
//! `std` directly. A normal build re-exports `std`; `RUSTFLAGS="--cfg loom"` re-exports
//! loom's instrumented versions, whose scheduler then explores every interleaving and
//! every value a weak load may observe. `UnsafeCell` takes loom's closure-based shape
//! (`with` / `with_mut`) in both builds, because loom cannot hand out raw pointers that
//! outlive its access tracking.

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub use std::sync::Arc;

#[cfg(loom)]
pub use loom::cell::UnsafeCell;
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::Arc;

/// `std::cell::UnsafeCell` with loom's access API, so the same code compiles in both builds.
#[cfg(not(loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Run `f` with a pointer for reading; the caller guarantees no concurrent writer.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Run `f` with a pointer for writing; the caller guarantees exclusive access.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }

    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cell_reads_what_was_written() {
        let cell = UnsafeCell::new(1u32);
        // SAFETY: single-threaded; no other access is live during either closure.
        cell.with_mut(|p| unsafe { *p = 7 });
        // SAFETY: as above.
        assert_eq!(cell.with(|p| unsafe { *p }), 7);
        assert_eq!(cell.into_inner(), 7);
    }
}
