//! Raw pointers into slices for the SIMD kernels, with their ranges checked in debug builds.
//!
//! Every helper returns exactly the pointer arithmetic the kernels used before (`base.add(at)`),
//! so release builds are unchanged. With debug assertions on (the `test` profile), each one first
//! asserts that the whole range `[at, at + n)` it is about to hand out lies within the slice (or
//! within the `len` elements a raw pointer is known to address); the panic names the call site.
//! `cargo test -p llama31-kernels` (the test profile) runs the kernel tests this way, so every
//! range a kernel reads or writes in a test is checked, not only its results.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::panic::Location;

/// Debug builds: panics unless `[at, at + n)` lies within `0..len` (overflow-checked).
#[inline(always)]
#[track_caller]
pub(crate) fn check_range(len: usize, at: usize, n: usize) {
    debug_assert!(
        at.checked_add(n).is_some_and(|end| end <= len),
        "{}: pointer range {at}..{at}+{n} outside 0..{len}",
        Location::caller()
    );
    let _ = (len, at, n);
}

/// `s.as_ptr().add(at)`, for reading `n` elements from there.
///
/// # Safety
/// `[at, at + n)` must lie within `s` (asserted in debug builds).
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn ptr_at<T>(s: &[T], at: usize, n: usize) -> *const T {
    check_range(s.len(), at, n);
    // SAFETY: the caller guarantees at + n <= s.len(), so `at` is within the allocation.
    unsafe { s.as_ptr().add(at) }
}

/// `s.as_mut_ptr().add(at)`, for writing `n` elements from there.
///
/// # Safety
/// `[at, at + n)` must lie within `s` (asserted in debug builds).
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn ptr_at_mut<T>(s: &mut [T], at: usize, n: usize) -> *mut T {
    check_range(s.len(), at, n);
    // SAFETY: as in `ptr_at`.
    unsafe { s.as_mut_ptr().add(at) }
}

/// `s.as_ptr().add(at)` for a `W`-byte load (e.g. `W = 32` for a 256-bit load).
///
/// # Safety
/// `[at, at + W)` must lie within `s` (asserted in debug builds).
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn load_at<const W: usize, T>(s: &[T], at: usize) -> *const T {
    check_range(std::mem::size_of_val(s), at * std::mem::size_of::<T>(), W);
    // SAFETY: the caller guarantees the W bytes from element `at` lie within `s`.
    unsafe { s.as_ptr().add(at) }
}

/// `p.add(at)` for a pointer `p` that addresses `len` elements, to read `n` of them from `at`.
///
/// # Safety
/// `p` must address `len` readable elements and `[at, at + n)` lie within `0..len` (the latter
/// asserted in debug builds).
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn raw_at<T>(p: *const T, len: usize, at: usize, n: usize) -> *const T {
    check_range(len, at, n);
    // SAFETY: the caller guarantees at + n <= len elements behind `p`.
    unsafe { p.add(at) }
}

/// `p.add(at)` for a pointer `p` that addresses `len` writable elements.
///
/// # Safety
/// As [`raw_at`], for writes.
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn raw_at_mut<T>(p: *mut T, len: usize, at: usize, n: usize) -> *mut T {
    check_range(len, at, n);
    // SAFETY: the caller guarantees at + n <= len elements behind `p`.
    unsafe { p.add(at) }
}

/// A pointer and the number of elements it addresses, for kernels that take raw pointers: a
/// slice whose length only debug assertions read (release builds keep just the pointer).
pub(crate) struct Raw<T> {
    ptr: *const T,
    len: usize,
}

impl<T> Clone for Raw<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Raw<T> {}

impl<T> Raw<T> {
    /// The elements of `s`, which must stay borrowed while the pointer is used.
    #[inline(always)]
    pub(crate) fn new(s: &[T]) -> Self {
        Raw {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// `len` elements at `ptr` (not dereferenced here: using them is `unsafe`).
    #[inline(always)]
    pub(crate) fn from_raw(ptr: *const T, len: usize) -> Self {
        Raw { ptr, len }
    }

    /// `len` elements at each pointer of `ps` (a plain loop: no closure for a kernel to call).
    #[inline(always)]
    pub(crate) fn from_raw_each<const R: usize>(ps: [*const T; R], len: usize) -> [Self; R] {
        let mut out = [Raw::empty(); R];
        for (o, p) in out.iter_mut().zip(ps) {
            *o = Raw::from_raw(p, len);
        }
        out
    }

    /// No elements (a placeholder to be overwritten).
    pub(crate) const fn empty() -> Self {
        Raw {
            ptr: std::ptr::null(),
            len: 0,
        }
    }

    /// The pointer to element `at`, to read `n` elements from there.
    ///
    /// # Safety
    /// The pointer must address `len` readable elements and `[at, at + n)` lie within them (the
    /// latter asserted in debug builds).
    #[inline(always)]
    #[track_caller]
    pub(crate) unsafe fn at(self, at: usize, n: usize) -> *const T {
        // SAFETY: the caller's contract.
        unsafe { raw_at(self.ptr, self.len, at, n) }
    }

    /// Elements `at .. at + n`.
    ///
    /// # Safety
    /// As [`Raw::at`].
    #[inline(always)]
    #[track_caller]
    pub(crate) unsafe fn sub(self, at: usize, n: usize) -> Self {
        Raw {
            // SAFETY: the caller's contract.
            ptr: unsafe { self.at(at, n) },
            len: n,
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn in_range_passes() {
        let v = [1u8, 2, 3, 4];
        // SAFETY: 0..4 and 4..4 lie within v.
        unsafe {
            assert_eq!(*ptr_at(&v, 0, 4), 1);
            let _ = ptr_at(&v, 4, 0);
        }
    }

    #[test]
    #[should_panic(expected = "checked.rs")]
    fn past_the_end_fires_and_names_the_site() {
        let v = [0u32; 8];
        // SAFETY: not dereferenced; the debug assertion fires first.
        let _ = unsafe { ptr_at(&v[..7], 0, 8) };
    }

    #[test]
    #[should_panic(expected = "pointer range")]
    fn overflow_fires() {
        check_range(8, usize::MAX, 2);
    }

    #[test]
    fn loads_and_raw_pointers_in_range_pass() {
        let v = [1u8, 2, 3, 4];
        let r = Raw::new(&v);
        // SAFETY: every range lies within v.
        unsafe {
            assert_eq!(*load_at::<2, u8>(&v, 2), 3);
            assert_eq!(*r.sub(1, 3).at(2, 1), 4);
        }
    }

    #[test]
    #[should_panic(expected = "pointer range 0..0+32 outside 0..28")]
    fn a_load_counts_bytes() {
        let v = [0u32; 8];
        // SAFETY: not dereferenced; the debug assertion fires first.
        let _ = unsafe { load_at::<32, u32>(&v[..7], 0) };
    }

    #[test]
    #[should_panic(expected = "pointer range")]
    fn a_sub_range_keeps_its_own_length() {
        let v = [0u8; 64];
        // SAFETY: not dereferenced; the debug assertion fires first (byte 32 is in `v` but not
        // in the 32 bytes of the sub-range).
        let _ = unsafe { Raw::new(&v).sub(0, 32).at(1, 32) };
    }
}
