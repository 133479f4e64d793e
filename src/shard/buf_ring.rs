//! The shard's provided-buffer ring: `count` receive buffers of `buffer_bytes` each, registered
//! with the ring as one buffer group. Multishot receives pick buffers from it.
//!
//! Ownership, which everything here relies on:
//! - A buffer id is either *in the ring* (the kernel may write into it at any time) or *leased*
//!   (a completion named it; the kernel will not touch it until it is given back).
//! - A lease is taken by exactly one completion handler and given back before the next
//!   completion is handled (`give_back`); `leased` counts them and is asserted.
//! - The ring memory and the buffers live until the `BufRing` is dropped, which happens only
//!   after the io_uring that uses them is gone (the shard drops its ring first).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{types::BufRingEntry, Submitter};

/// One mapping of anonymous memory, unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    bytes: usize,
}

impl Mapping {
    fn new(bytes: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Mapping { base, bytes })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Nothing refers to the mapping any more: the owning BufRing is dropped after its
        // io_uring.
        // SAFETY: `base`/`bytes` are exactly what mmap returned, and the mapping is unused.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}

/// A buffer a completion named: readable until given back to the ring.
#[must_use = "a leased buffer must be given back to the ring"]
pub struct BufLease {
    ptr: NonNull<u8>,
    len: usize,
    id: u16,
}

impl BufLease {
    /// The received bytes.
    pub fn bytes(&self) -> &[u8] {
        // The lease names `len` bytes (≤ buffer size) at the start of buffer `id`, which the
        // kernel filled and will not write again until `give_back`; the mapping outlives every
        // lease (module invariants above).
        // SAFETY: in bounds, initialized, and not written while the lease lives (above).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The received bytes, to be changed in place (TLS decrypts where the kernel wrote).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // As `bytes`; and only this lease names buffer `id` until it is given back (the ring
        // leases an id once per completion), so this is the one reference to those bytes.
        // SAFETY: in bounds, initialized, not touched by the kernel while leased, unaliased.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

pub struct BufRing {
    /// The ring of `BufRingEntry`, shared with the kernel; its tail is published by us.
    entries: Mapping,
    /// `count * buffer_bytes` bytes of receive buffers.
    buffers: Mapping,
    count: u16,
    buffer_bytes: u32,
    group_id: u16,
    /// Our copy of the tail: the next entry index we fill (wrapping u16, as the kernel's).
    tail: u16,
    /// Buffers leased and not yet given back.
    leased: u32,
}

impl BufRing {
    /// Maps and registers `count` buffers of `buffer_bytes` as buffer group `group_id`.
    pub fn new(
        submitter: &Submitter<'_>,
        group_id: u16,
        count: u16,
        buffer_bytes: u32,
    ) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two(),
            "the kernel needs a power-of-two ring"
        );
        let entries = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let buffers = Mapping::new(count as usize * buffer_bytes as usize)?;
        // `entries` is a page-aligned mapping of `count` entries that lives as long as this
        // BufRing, which the shard drops only after its io_uring (module invariants).
        // SAFETY: the registered ring memory is aligned, sized for `count` and outlives its use.
        unsafe {
            submitter.register_buf_ring_with_flags(entries.base.as_ptr() as u64, count, group_id, 0)
        }
        .map_err(|err| super::ring::buffer_ring_refused(&err))?;
        let mut ring = BufRing {
            entries,
            buffers,
            count,
            buffer_bytes,
            group_id,
            tail: 0,
            leased: 0,
        };
        for id in 0..count {
            ring.fill_entry(id);
        }
        ring.publish_tail();
        Ok(ring)
    }

    pub fn group_id(&self) -> u16 {
        self.group_id
    }

    /// Takes the buffer a receive completion named.
    pub fn lease(&mut self, id: u16, len: usize) -> BufLease {
        assert!(id < self.count, "buffer id {id} out of range");
        assert!(len <= self.buffer_bytes as usize);
        self.leased += 1;
        BufLease {
            ptr: self.buffer_ptr(id),
            len,
            id,
        }
    }

    /// Returns a leased buffer to the kernel.
    pub fn give_back(&mut self, lease: BufLease) {
        debug_assert!(self.leased > 0, "give_back without a lease");
        self.leased -= 1;
        self.fill_entry(lease.id);
        self.publish_tail();
    }

    /// Buffers currently leased (zero between completions).
    pub fn leased(&self) -> u32 {
        self.leased
    }

    fn buffer_ptr(&self, id: u16) -> NonNull<u8> {
        let offset = id as usize * self.buffer_bytes as usize;
        debug_assert!(offset + self.buffer_bytes as usize <= self.buffers.bytes);
        // SAFETY: offset is inside the `buffers` mapping (id < count).
        unsafe { NonNull::new_unchecked(self.buffers.base.as_ptr().add(offset)) }
    }

    /// Writes the entry at our tail to describe buffer `id` and advances our tail.
    fn fill_entry(&mut self, id: u16) {
        let index = (self.tail & (self.count - 1)) as usize;
        let addr = self.buffer_ptr(id).as_ptr() as u64;
        // `index < count`, so the entry is inside the `entries` mapping; the kernel only reads
        // entries between its head and our published tail, and this one is past the published
        // tail until `publish_tail`.
        // SAFETY: in bounds, and not read by the kernel until published (above).
        unsafe {
            let entry = &mut *self.entries.base.as_ptr().cast::<BufRingEntry>().add(index);
            entry.set_addr(addr);
            entry.set_len(self.buffer_bytes);
            entry.set_bid(id);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every filled entry visible to the kernel (release store of the tail).
    fn publish_tail(&self) {
        // The tail is the u16 the kernel reads at offset 14 of the first entry (the `resv`
        // field, per io_uring_buf_ring); the mapping is aligned and alive, and only this thread
        // writes it.
        // SAFETY: an aligned, live u16 in the mapping with no other writer (above).
        let tail = unsafe {
            let base = self.entries.base.as_ptr().cast::<BufRingEntry>();
            AtomicU16::from_ptr(BufRingEntry::tail(base).cast_mut())
        };
        tail.store(self.tail, Ordering::Release);
    }
}
