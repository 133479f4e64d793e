//! The shard's provided-buffer ring: `count` receive buffers of `buffer_bytes` each, registered
//! with the ring as one buffer group. Multishot receives pick buffers from it.
//!
//! Where the kernel takes it (6.12, `IOU_PBUF_RING_INC`), buffers are consumed incrementally: a
//! receive takes only the bytes it got from the buffer at the ring's head, and the next one
//! continues after them, so many small reads (a thousand publishers) share one buffer instead
//! of taking one each, and a few large buffers make a read-ahead small enough to stay in cache
//! (`limits::RECV_BUFFER_COUNT`). A completion then names a *piece*: `len` bytes at an offset
//! of the buffer that follows the pieces before it (`arrive`, in completion order);
//! `IORING_CQE_F_BUF_MORE` says the kernel will put more pieces into that buffer. Without it,
//! each completion's piece is a whole buffer from offset 0 (`limits::RECV_BUFFER_COUNT_WHOLE`
//! buffers).
//!
//! Ownership, which everything here relies on:
//! - A buffer id is either *in the ring* (the kernel may write into the part of it no piece
//!   names yet) or *out* (the kernel finished it: the last completion naming it had no
//!   BUF_MORE; it writes nothing there until the buffer is given back).
//! - The kernel never writes into a piece it completed: the pieces of a buffer are disjoint,
//!   and each later receive starts after the last one.
//! - Each piece belongs to one completion, and is leased by the one handler of it (`lease`),
//!   which gives it back (`give_back`); `leased` counts leases. A buffer goes back into the ring
//!   once the kernel finished it and every piece of it was given back.
//! - The ring memory and the buffers live until the `BufRing` is dropped, which happens only
//!   after the io_uring that uses them is gone (the shard drops its ring first).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{types::BufRingEntry, Submitter};

use super::uring::Completion;
use crate::limits;

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

/// `IOU_PBUF_RING_INC`: the registration flag for incremental consumption (Linux 6.12).
const PBUF_RING_INC: u16 = 2;
/// `IORING_CQE_F_BUFFER`: the completion names a provided buffer (in the upper 16 bits).
pub const CQE_F_BUFFER: u32 = 1;
/// `IORING_CQE_F_BUF_MORE`: the kernel will put more into the buffer this completion names.
const CQE_F_BUF_MORE: u32 = 1 << 4;

/// The piece of a buffer a completion named: readable until given back to the ring.
#[must_use = "a leased buffer must be given back to the ring"]
pub struct BufLease {
    ptr: NonNull<u8>,
    len: usize,
    id: u16,
}

impl BufLease {
    /// The received bytes.
    pub fn bytes(&self) -> &[u8] {
        // The lease names `len` bytes of buffer `id` at the offset `arrive` gave its
        // completion, inside the buffer; the kernel filled them and writes there no more (the
        // pieces of a buffer are disjoint, and it is not back in the ring before every piece
        // is given back); the mapping outlives every lease (module invariants above).
        // SAFETY: in bounds, initialized, and not written while the lease lives (above).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The received bytes, to be changed in place (TLS decrypts where the kernel wrote).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // As `bytes`; and only this lease names these bytes until it is given back (each
        // piece belongs to one completion, leased once), so this is the one reference to them.
        // SAFETY: in bounds, initialized, not touched by the kernel while leased, unaliased.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// What the shard knows of one buffer while it is out of its hands or in pieces.
#[derive(Debug, Default, Clone, Copy)]
struct BufferUse {
    /// Where the next piece starts (the bytes of the pieces so far).
    next_offset: u32,
    /// Pieces completions named and not given back yet.
    pieces: u32,
    /// The kernel put its last piece into it (a completion without BUF_MORE).
    finished: bool,
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
    /// Pieces leased and not yet given back.
    leased: u32,
    /// Buffers are consumed incrementally (`IOU_PBUF_RING_INC`).
    incremental: bool,
    /// Per buffer id.
    uses: Box<[BufferUse]>,
    /// The buffer the kernel named last with BUF_MORE: the one it is filling.
    filling: Option<u16>,
}

impl BufRing {
    /// The shard's receive buffers as buffer group `group_id`: `limits::RECV_BUFFER_COUNT`
    /// buffers consumed incrementally, or, on a kernel without that (before 6.12),
    /// `limits::RECV_BUFFER_COUNT_WHOLE` buffers consumed whole.
    pub fn for_receives(submitter: &Submitter<'_>, group_id: u16) -> io::Result<BufRing> {
        match BufRing::new(
            submitter,
            group_id,
            limits::RECV_BUFFER_COUNT,
            limits::RECV_BUFFER_BYTES,
            true,
        ) {
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => BufRing::new(
                submitter,
                group_id,
                limits::RECV_BUFFER_COUNT_WHOLE,
                limits::RECV_BUFFER_BYTES_WHOLE,
                false,
            ),
            ring => ring,
        }
    }

    /// Maps and registers `count` buffers of `buffer_bytes` as buffer group `group_id`,
    /// consumed incrementally if `incremental`.
    pub fn new(
        submitter: &Submitter<'_>,
        group_id: u16,
        count: u16,
        buffer_bytes: u32,
        incremental: bool,
    ) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two(),
            "the kernel needs a power-of-two ring"
        );
        let entries = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let buffers = Mapping::new(count as usize * buffer_bytes as usize)?;
        // `entries` is a page-aligned mapping of `count` entries that lives as long as this
        // BufRing, which the shard drops only after its io_uring (module invariants).
        let flags = if incremental { PBUF_RING_INC } else { 0 };
        // SAFETY: the registered ring memory is aligned, sized for `count` and outlives its use.
        unsafe {
            submitter.register_buf_ring_with_flags(
                entries.base.as_ptr() as u64,
                count,
                group_id,
                flags,
            )
        }
        .map_err(|err| {
            // EINVAL for the flag alone is for `for_receives` to take back, not explained.
            if incremental && err.raw_os_error() == Some(libc::EINVAL) {
                err
            } else {
                super::ring::buffer_ring_refused(&err)
            }
        })?;
        let mut ring = BufRing {
            entries,
            buffers,
            count,
            buffer_bytes,
            group_id,
            tail: 0,
            leased: 0,
            incremental,
            uses: vec![BufferUse::default(); count as usize].into_boxed_slice(),
            filling: None,
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

    /// Records a receive completion's piece, in the order the kernel posted the completions
    /// (before any of them is handled): sets its `offset` in the buffer its flags name, to
    /// lease it with. A completion of no bytes that names a buffer consumed none of it when
    /// buffers are consumed incrementally: it loses its `CQE_F_BUFFER` (the buffer stays in
    /// the ring).
    pub fn arrive(&mut self, completion: &mut Completion) {
        let Some(id) = io_uring::cqueue::buffer_select(completion.flags) else {
            return;
        };
        if self.incremental && completion.result <= 0 {
            completion.flags &= !CQE_F_BUFFER;
            return;
        }
        assert!(id < self.count, "buffer id {id} out of range");
        // The ring is taken in order: once the kernel names another buffer, it moved its head
        // past the one it was filling, and puts nothing more there even if the last piece
        // said BUF_MORE (a kernel may leave a buffer's small rest unused). Finished here, or
        // it would never come back to the ring.
        if let Some(before) = self.filling.take().filter(|&before| before != id) {
            self.uses[before as usize].finished = true;
            self.return_if_done(before);
        }
        let len = completion.result.max(0) as u32;
        let buffer_bytes = self.buffer_bytes;
        let used = &mut self.uses[id as usize];
        assert!(!used.finished, "buffer {id} named after its last piece");
        assert!(
            used.next_offset + len <= buffer_bytes,
            "a piece past the end of buffer {id}"
        );
        completion.offset = used.next_offset;
        used.next_offset += len;
        used.pieces += 1;
        used.finished = !self.incremental || completion.flags & CQE_F_BUF_MORE == 0;
        if !used.finished {
            self.filling = Some(id);
        }
    }

    /// Takes the piece a receive completion names (placed by `arrive`), if it names one.
    pub fn lease(&mut self, completion: &Completion) -> Option<BufLease> {
        let id = io_uring::cqueue::buffer_select(completion.flags)?;
        let len = completion.result.max(0) as usize;
        let offset = completion.offset as usize;
        assert!(id < self.count, "buffer id {id} out of range");
        assert!(offset + len <= self.buffer_bytes as usize);
        debug_assert!(self.uses[id as usize].pieces > 0, "a lease of no piece");
        self.leased += 1;
        // SAFETY: offset + len ≤ buffer_bytes (asserted above), inside buffer `id`.
        let ptr = unsafe { self.buffer_ptr(id).add(offset) };
        Some(BufLease { ptr, len, id })
    }

    /// Gives a leased piece back; its buffer goes back to the kernel when the kernel finished
    /// it and this was the last piece out.
    pub fn give_back(&mut self, lease: BufLease) {
        debug_assert!(self.leased > 0, "give_back without a lease");
        self.leased -= 1;
        self.uses[lease.id as usize].pieces -= 1;
        self.return_if_done(lease.id);
    }

    /// Puts buffer `id` back into the ring if the kernel finished it and no piece is out.
    fn return_if_done(&mut self, id: u16) {
        let used = &mut self.uses[id as usize];
        if used.pieces == 0 && used.finished {
            *used = BufferUse::default();
            self.fill_entry(id);
            self.publish_tail();
        }
    }

    /// The most pieces paused connections may keep out of the ring (see
    /// `limits::PAUSED_PIECES_KEPT_MAX`): a kept piece keeps its whole buffer out.
    pub fn paused_pieces_max(&self) -> usize {
        if self.incremental {
            limits::PAUSED_PIECES_KEPT_MAX
        } else {
            self.count as usize / 8
        }
    }

    /// Pieces currently leased (zero between completions).
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
        // (and, consuming incrementally, writes the addr/len of) entries between its head and
        // our published tail, and this one is past the published tail until `publish_tail`: a
        // buffer being filled is one of at most count - 1 in the ring, so head and tail never
        // share a slot.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A receive completion of `len` bytes naming buffer `id`, placed by `arrive`.
    fn arrived(buffers: &mut BufRing, id: u16, more: bool, len: i32) -> Completion {
        let more = if more { CQE_F_BUF_MORE } else { 0 };
        let mut completion = Completion {
            user_data: 0,
            result: len,
            flags: CQE_F_BUFFER | (u32::from(id) << 16) | more,
            offset: u32::MAX,
        };
        buffers.arrive(&mut completion);
        completion
    }

    /// Leases the piece `completion` names and gives it back at once.
    fn handle(buffers: &mut BufRing, completion: &Completion) {
        let lease = buffers.lease(completion).expect("a piece");
        assert_eq!(lease.bytes().len(), completion.result as usize);
        buffers.give_back(lease);
    }

    /// None on a kernel that does not consume buffers incrementally (before 6.12).
    fn ring(incremental: bool) -> Option<(io_uring::IoUring, BufRing)> {
        let ring = io_uring::IoUring::new(8).expect("io_uring");
        match BufRing::new(&ring.submitter(), 0, 4, 1024, incremental) {
            Err(err) if incremental && err.raw_os_error() == Some(libc::EINVAL) => None,
            buffers => Some((ring, buffers.expect("buffers"))),
        }
    }

    #[test]
    fn the_receive_ring_takes_what_the_kernel_has() {
        let ring = io_uring::IoUring::new(8).expect("io_uring");
        let buffers = BufRing::for_receives(&ring.submitter(), 0).expect("buffers");
        let (count, bytes) = if buffers.incremental {
            (limits::RECV_BUFFER_COUNT, limits::RECV_BUFFER_BYTES)
        } else {
            (
                limits::RECV_BUFFER_COUNT_WHOLE,
                limits::RECV_BUFFER_BYTES_WHOLE,
            )
        };
        assert_eq!((buffers.count, buffers.buffer_bytes), (count, bytes));
        assert_eq!(buffers.tail, count, "every buffer in the ring");
    }

    #[test]
    fn pieces_follow_each_other_and_the_buffer_returns_after_the_last() {
        let Some((_ring, mut buffers)) = ring(true) else {
            return;
        };
        let tail = buffers.tail;
        // Two connections' reads share buffer 2, in the order the kernel posted them.
        let first = arrived(&mut buffers, 2, true, 100);
        let second = arrived(&mut buffers, 2, true, 300);
        let last = arrived(&mut buffers, 2, false, 624);
        assert_eq!([first.offset, second.offset, last.offset], [0, 100, 400]);
        // Handled in another order: the buffer goes back with the last piece, not before.
        handle(&mut buffers, &last);
        handle(&mut buffers, &second);
        assert_eq!(buffers.tail, tail, "a piece is still out");
        handle(&mut buffers, &first);
        assert_eq!(buffers.tail, tail.wrapping_add(1), "given back once");
        assert_eq!(buffers.leased(), 0);
        // Back in the ring, its next piece starts at the beginning again.
        assert_eq!(arrived(&mut buffers, 2, true, 10).offset, 0);
    }

    #[test]
    fn a_buffer_the_kernel_is_still_filling_stays_out_of_our_ring_tail() {
        let Some((_ring, mut buffers)) = ring(true) else {
            return;
        };
        let tail = buffers.tail;
        let piece = arrived(&mut buffers, 1, true, 50);
        handle(&mut buffers, &piece);
        assert_eq!(
            buffers.tail, tail,
            "the kernel goes on filling it: not added again"
        );
    }

    #[test]
    fn a_buffer_the_kernel_moved_past_comes_back() {
        let Some((_ring, mut buffers)) = ring(true) else {
            return;
        };
        let tail = buffers.tail;
        let piece = arrived(&mut buffers, 0, true, 1000);
        handle(&mut buffers, &piece);
        assert_eq!(buffers.tail, tail, "still being filled");
        // The kernel went on to buffer 1, leaving buffer 0's rest unused.
        arrived(&mut buffers, 1, true, 10);
        assert_eq!(
            buffers.tail,
            tail.wrapping_add(1),
            "buffer 0 back in the ring"
        );
        assert_eq!(arrived(&mut buffers, 0, true, 5).offset, 0);
    }

    #[test]
    fn an_empty_incremental_completion_consumes_nothing() {
        let Some((_ring, mut buffers)) = ring(true) else {
            return;
        };
        let empty = arrived(&mut buffers, 3, false, 0);
        assert!(buffers.lease(&empty).is_none(), "no piece to give back");
        assert_eq!(arrived(&mut buffers, 3, true, 20).offset, 0);
    }

    #[test]
    fn whole_buffers_go_back_with_their_one_piece() {
        let (_ring, mut buffers) = ring(false).expect("whole buffers");
        let tail = buffers.tail;
        // BUF_MORE never comes without incremental consumption; each piece is a whole buffer.
        let piece = arrived(&mut buffers, 0, false, 700);
        assert_eq!(piece.offset, 0);
        handle(&mut buffers, &piece);
        assert_eq!(buffers.tail, tail.wrapping_add(1));
        // An empty one (end of stream) took its buffer too, and gives it back.
        let empty = arrived(&mut buffers, 1, false, 0);
        handle(&mut buffers, &empty);
        assert_eq!(buffers.tail, tail.wrapping_add(2));
    }
}
