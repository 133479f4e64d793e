//! A bounded, lock-free, single-producer single-consumer queue of variable-size byte frames,
//! carrying messages from one shard's thread to another's (DESIGN §6).
//!
//! # Layout
//! One zeroed heap allocation of `capacity` bytes (a power of two, aligned to 128), shared by
//! the two halves through an `Arc<Shared>` and freed when both are dropped. Two positions
//! count bytes since creation and only ever increase; a position's place in the buffer is
//! `position & (capacity - 1)`:
//! - `tail`: everything before it is published. Written only by the producer.
//! - `head`: everything before it has been handed back by the consumer. Written only by the
//!   consumer.
//!
//! Each of them lives on its own pair of cache lines (`#[repr(align(128))]`) so the two
//! threads never write to the same line.
//!
//! A frame is an 8-byte header (`u32` body length, `u32` marker) followed by the body, the
//! whole padded to a multiple of 8 (`frame_bytes`). A frame never wraps around the end of the
//! buffer: when it does not fit in the bytes left before the end, the producer fills those
//! bytes with a *skip* header (marker `SKIP_MARKER`, length = the rest of the buffer after it)
//! and puts the frame at the start. Consumers follow skips silently.
//!
//! A frame is either pushed whole (`try_push`) or built by appends (`append`): the first
//! append *opens* a frame, reserving room for up to `APPEND_ROOM_BYTES` of body where it will
//! go; later appends that fit go in behind it; the frame is *closed* (its header and skip
//! written, `tail_position` advanced past it) by the append that does not fit, by `try_push`
//! and by `publish`. So a stream of small records shares one header, one room check and one
//! consumer step per frame instead of one per record; the consumer sees the body as the
//! records' bytes back to back (the caller delimits them).
//!
//! # Invariants
//! 1. `head <= tail <= head + capacity` (seen from either side; each side's own position
//!    is exact and its copy of the other's is never ahead of the truth).
//! 2. Every position, and every frame and skip length including its header, is a multiple of
//!    8, and `capacity` is a power of two >= 8, so the room left before the end of the
//!    buffer is a multiple of 8: either 0 (the position is at the start of the buffer) or at
//!    least 8, which is always enough for a skip header. No third case exists.
//! 3. The bytes in `[head, tail)` are complete frames and skips, written before the `tail`
//!    store that published them; the producer does not touch them. The bytes outside that
//!    range (and beyond the producer's unpublished frames) are the producer's to overwrite;
//!    the consumer does not read them.
//! 4. A skip is only ever written together with the frame after it (in the same `try_push`,
//!    or when the open frame after it is closed), so a published skip is always followed by a
//!    published frame.
//! 6. An open frame's header and skip go at `tail_position`, like a pushed frame's, and its
//!    reserved room (`skip + frame_bytes(room)`) was free when it was opened: appends write
//!    only inside it, and nothing else is pushed while it is open.
//! 5. The largest frame body is `capacity / 4`, so a frame plus the worst skip in front of it
//!    (less than the frame's own size) takes at most half the buffer: an empty queue always
//!    accepts any legal frame.
//!
//! # Memory ordering
//! - Producer: frame bytes are plain writes, then `publish` does one `Release` store of
//!   `tail`. The consumer's `Acquire` load of `tail` makes them visible before it reads.
//! - Consumer: frame reads are plain reads (the handler's), then `drain` does one `Release`
//!   store of `head`. The producer's `Acquire` load of `head` orders those reads before it
//!   overwrites the space.
//! - Each side reloads the other's position only when its cached copy says the queue is full
//!   (producer) or empty (consumer), so a steady stream costs one shared-line miss per batch,
//!   not per frame.
//!
//! # What this module must not do
//! Know what a frame means. It moves opaque bytes; the route layer encodes and decodes them.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Smallest queue: smaller requests are rounded up to it.
pub const CAPACITY_BYTES_MIN: usize = 64 * 1024;
/// Largest queue: keeps every frame and skip length within the header's `u32`.
pub const CAPACITY_BYTES_MAX: usize = 1 << 31;
/// Bytes of the header in front of every frame and skip.
const HEADER_BYTES: usize = 8;
/// Frames, skips and positions are multiples of this (the header is read as aligned `u32`s).
const FRAME_ALIGN_BYTES: usize = 8;
/// Alignment of the buffer: a whole number of cache lines, and at least `FRAME_ALIGN_BYTES`.
const BUFFER_ALIGN_BYTES: usize = 128;
/// Header marker of a frame: "FRAM".
const FRAME_MARKER: u32 = u32::from_le_bytes(*b"FRAM");
/// Header marker of a skip to the start of the buffer: "SKIP".
const SKIP_MARKER: u32 = u32::from_le_bytes(*b"SKIP");
/// Body bytes `append` reserves when it opens a frame (less when the queue has less room free
/// or the buffer's end is nearer, more for a single larger record): enough that its header and
/// checks are shared by a few hundred small records, small enough to leave most of the
/// smallest queue free.
pub const APPEND_ROOM_BYTES: usize = 16 * 1024;

const _: () = assert!(CAPACITY_BYTES_MIN.is_power_of_two());
const _: () = assert!(CAPACITY_BYTES_MAX.is_power_of_two());
const _: () = assert!(CAPACITY_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(BUFFER_ALIGN_BYTES.is_multiple_of(FRAME_ALIGN_BYTES));
const _: () = assert!(HEADER_BYTES == FRAME_ALIGN_BYTES);
// Invariant 5: header + padded largest body, twice, fits in the smallest queue.
const _: () = assert!(2 * (HEADER_BYTES + CAPACITY_BYTES_MIN / 4) <= CAPACITY_BYTES_MIN);
const _: () = assert!(APPEND_ROOM_BYTES <= CAPACITY_BYTES_MIN / 4);

/// Space one frame with a body of `body_bytes` takes in the queue: header plus body, padded
/// to a multiple of 8. `drain`'s `max_bytes` budget is counted in these.
pub const fn frame_bytes(body_bytes: usize) -> usize {
    HEADER_BYTES + body_bytes.next_multiple_of(FRAME_ALIGN_BYTES)
}

/// Creates a queue holding at most `capacity_bytes` of frames (rounded up to a power of two,
/// at least `CAPACITY_BYTES_MIN`). Panics above `CAPACITY_BYTES_MAX`.
pub fn channel(capacity_bytes: usize) -> (Producer, Consumer) {
    let capacity_bytes = capacity_bytes
        .max(CAPACITY_BYTES_MIN)
        .checked_next_power_of_two()
        .filter(|&bytes| bytes <= CAPACITY_BYTES_MAX)
        .expect("spsc capacity above CAPACITY_BYTES_MAX");
    let shared = Arc::new(Shared::new(capacity_bytes));
    let producer = Producer {
        shared: Arc::clone(&shared),
        capacity_bytes,
        tail_position: 0,
        open: None,
        end_position: 0,
        published_tail_position: 0,
        cached_head_position: 0,
        not_sync: PhantomData,
    };
    let consumer = Consumer {
        shared,
        capacity_bytes,
        head_position: 0,
        cached_tail_position: 0,
        not_sync: PhantomData,
    };
    (producer, consumer)
}

/// Keeps its value on cache lines of its own (two, against adjacent-line prefetch).
#[repr(align(128))]
struct CacheLinePadded<T>(T);

/// What both halves share. Freed (with the buffer) when the second half is dropped.
struct Shared {
    /// Start of the buffer: `capacity_bytes` bytes, zeroed at allocation (so every byte is
    /// always initialized), aligned to `BUFFER_ALIGN_BYTES`. Valid exactly as long as `Shared`.
    buffer: NonNull<u8>,
    /// Size of the buffer; a power of two in `CAPACITY_BYTES_MIN..=CAPACITY_BYTES_MAX`.
    capacity_bytes: usize,
    /// Position just past the last published byte. Stored (Release) only by the producer, in
    /// `publish`; exactly the producer's `published_tail_position`.
    tail: CacheLinePadded<AtomicU64>,
    /// Position of the first byte not yet handed back by the consumer. Stored (Release) only
    /// by the consumer, at the end of `drain`; exactly the consumer's `head_position` between
    /// calls.
    head: CacheLinePadded<AtomicU64>,
}

// `Shared` owns its buffer (a plain heap allocation with no thread affinity). The only accesses
// through `buffer` are by the one `Producer` and the one `Consumer`, to disjoint byte ranges,
// ordered by the Release/Acquire pairs on `tail` and `head` (see the module docs).
// SAFETY: no thread affinity, and the two halves' accesses are disjoint and ordered (above).
unsafe impl Send for Shared {}
// SAFETY: as above; the fields reachable through `&Shared` are atomics or never written.
unsafe impl Sync for Shared {}

impl Shared {
    fn new(capacity_bytes: usize) -> Shared {
        assert!(capacity_bytes.is_power_of_two() && capacity_bytes >= CAPACITY_BYTES_MIN);
        let layout = Shared::layout(capacity_bytes);
        // SAFETY: the layout has a non-zero size (at least CAPACITY_BYTES_MIN).
        let pointer = unsafe { alloc::alloc_zeroed(layout) };
        let Some(buffer) = NonNull::new(pointer) else {
            alloc::handle_alloc_error(layout);
        };
        Shared {
            buffer,
            capacity_bytes,
            tail: CacheLinePadded(AtomicU64::new(0)),
            head: CacheLinePadded(AtomicU64::new(0)),
        }
    }

    fn layout(capacity_bytes: usize) -> Layout {
        Layout::from_size_align(capacity_bytes, BUFFER_ALIGN_BYTES).expect("spsc buffer layout")
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Both halves (the only users of the pointer) are gone: they held the last `Arc`s.
        // SAFETY: `buffer` came from `alloc_zeroed` with this same layout and has no user left.
        unsafe { alloc::dealloc(self.buffer.as_ptr(), Shared::layout(self.capacity_bytes)) };
    }
}

/// The index in the buffer of `position`.
fn index_of(position: u64, capacity_bytes: usize) -> usize {
    // Truncating to usize first is fine: capacity is a power of two that fits in usize.
    (position as usize) & (capacity_bytes - 1)
}

/// A frame being built by `append`, placed at `tail_position` (after a skip when
/// `skip_bytes` is not 0) and not yet visible to anyone.
#[derive(Debug, Clone, Copy)]
struct OpenFrame {
    /// Buffer index of its header: `index_of(tail_position)`, or 0 after a skip.
    frame_index: usize,
    /// 0, or the bytes from `index_of(tail_position)` to the end of the buffer.
    skip_bytes: usize,
    /// Body bytes appended so far.
    body_bytes: usize,
    /// Body bytes reserved; `skip_bytes + frame_bytes(room_bytes)` were free at opening and
    /// `frame_index + frame_bytes(room_bytes) <= capacity_bytes`.
    room_bytes: usize,
}

/// The producing half. Lives on the producing shard's thread.
pub struct Producer {
    shared: Arc<Shared>,
    /// Copy of `shared.capacity_bytes`, to keep the hot path off the shared struct.
    capacity_bytes: usize,
    /// Position just past the last frame pushed or closed, published or not: where the next
    /// frame (or skip) goes, the open one's included.
    tail_position: u64,
    /// The frame `append` is building; None when no frame is open.
    open: Option<OpenFrame>,
    /// Position just past everything pushed or appended: `tail_position`, plus the open
    /// frame's skip and padded size so far when one is open. Kept rather than derived from
    /// `open`: the sender reads it twice per message (publish and congestion checks), and
    /// deriving it there cost about 45 instructions per message (callgrind).
    end_position: u64,
    /// Exactly the last value stored into `shared.tail` (0 before the first `publish`).
    published_tail_position: u64,
    /// A value `shared.head` held at some point: never ahead of the true head, so
    /// `tail_position - cached_head_position` never under-counts the bytes in use. Reloaded
    /// only when the queue seems too full for a push, and in `used_bytes`.
    cached_head_position: u64,
    /// Makes the type `Send` but not `Sync`: one thread owns each half.
    not_sync: PhantomData<Cell<()>>,
}

impl Producer {
    /// Reserves a contiguous frame of exactly `len` bytes and lets `fill` write it. Returns
    /// false (and writes nothing) when the queue lacks room right now. Frames longer than
    /// `max_frame_bytes()` are a caller bug (assert). The frame is not visible to the consumer
    /// until `publish`. The slice `fill` gets holds stale bytes, not zeros.
    pub fn try_push(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        self.close_open_frame();
        assert!(
            len <= self.max_frame_bytes(),
            "spsc frame of {len} bytes exceeds max_frame_bytes {}",
            self.max_frame_bytes()
        );
        let capacity_bytes = self.capacity_bytes;
        let frame_bytes = frame_bytes(len);
        let index = index_of(self.tail_position, capacity_bytes);
        let bytes_to_end = capacity_bytes - index;
        // Invariant 2: bytes_to_end is a multiple of 8 and at least 8.
        debug_assert!(
            bytes_to_end >= HEADER_BYTES && bytes_to_end.is_multiple_of(FRAME_ALIGN_BYTES)
        );
        let skip_bytes = if frame_bytes <= bytes_to_end {
            0
        } else {
            bytes_to_end
        };
        let needed_bytes = (skip_bytes + frame_bytes) as u64;

        if self.free_bytes() < needed_bytes {
            // Seems full: see how far the consumer has got.
            self.cached_head_position = self.shared.head.0.load(Ordering::Acquire);
            if self.free_bytes() < needed_bytes {
                return false;
            }
        }

        let frame_index = if skip_bytes == 0 { index } else { 0 };
        debug_assert!(frame_index + frame_bytes <= capacity_bytes);
        // Why the writes below are sound:
        // - `frame_index + HEADER_BYTES + len <= frame_index + frame_bytes <= capacity_bytes`
        //   (the frame does not wrap, by the choice of `frame_index`), so the range is in the
        //   buffer, which lives as long as `self.shared`.
        // - `frame_index` is a multiple of 8 (invariant 2) in a 128-aligned buffer, so the
        //   header's `u32`s are aligned.
        // - The bytes `[tail_position, tail_position + needed_bytes)` are free: the check above
        //   found `needed_bytes` free before the (Acquire-loaded, hence up-to-date for what it
        //   covers) head, so the consumer has finished reading them and will not read them
        //   again until a later `publish` (invariant 3). Nothing else aliases them; every byte
        //   is initialized (zeroed allocation).
        // SAFETY: in bounds, aligned, free and initialized, as listed above.
        let body = unsafe {
            let frame = self.shared.buffer.as_ptr().add(frame_index);
            frame.cast::<u32>().write(len as u32);
            frame.add(4).cast::<u32>().write(FRAME_MARKER);
            std::slice::from_raw_parts_mut(frame.add(HEADER_BYTES), len)
        };
        fill(body);
        if skip_bytes != 0 {
            // Written after `fill`, so that a panicking `fill` leaves nothing half-pushed.
            // `index + HEADER_BYTES <= capacity_bytes` (invariant 2) and `index` is 8-aligned.
            // SAFETY: in bounds and aligned (above), free by the same check as the frame's.
            unsafe {
                let skip = self.shared.buffer.as_ptr().add(index);
                skip.cast::<u32>().write((skip_bytes - HEADER_BYTES) as u32);
                skip.add(4).cast::<u32>().write(SKIP_MARKER);
            }
        }
        self.tail_position += needed_bytes;
        self.end_position = self.tail_position;
        debug_assert!(self.tail_position - self.cached_head_position <= capacity_bytes as u64);
        debug_assert!(self.tail_position.is_multiple_of(FRAME_ALIGN_BYTES as u64));
        true
    }

    /// Appends `len` bytes, written by `fill`, to the open frame, opening one when none is
    /// open or the open one lacks room (see the module docs). Returns false (and writes
    /// nothing) when the queue lacks room for a frame of `len` bytes right now. `len` above
    /// `max_frame_bytes()` is a caller bug (assert). Nothing appended is visible to the
    /// consumer until `publish`, and the consumer gets a frame's appends as one body, back to
    /// back. The slice `fill` gets holds stale bytes, not zeros.
    pub fn append(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        assert!(
            len <= self.max_frame_bytes(),
            "spsc append of {len} bytes exceeds max_frame_bytes {}",
            self.max_frame_bytes()
        );
        let open = match self.open {
            Some(open) if open.room_bytes - open.body_bytes >= len => open,
            _ => {
                self.close_open_frame();
                match self.open_frame(len) {
                    Some(open) => open,
                    None => return false,
                }
            }
        };
        let start = open.frame_index + HEADER_BYTES + open.body_bytes;
        debug_assert!(open.body_bytes + len <= open.room_bytes);
        debug_assert!(open.frame_index + frame_bytes(open.room_bytes) <= self.capacity_bytes);
        // Why the write is sound: `[start, start + len)` lies in the open frame's reserved
        // room (`body_bytes + len <= room_bytes`), which is inside the buffer and was free
        // when the frame was opened (invariant 6); the consumer does not read past the
        // published tail, so it is still free, and nothing else aliases it. Every byte is
        // initialized (zeroed allocation).
        let first_byte = self.shared.buffer.as_ptr().wrapping_add(start);
        // SAFETY: in bounds, free and initialized, as listed above.
        let bytes = unsafe { std::slice::from_raw_parts_mut(first_byte, len) };
        fill(bytes);
        let body_bytes = open.body_bytes + len;
        self.open = Some(OpenFrame { body_bytes, ..open });
        self.end_position = self.tail_position + (open.skip_bytes + frame_bytes(body_bytes)) as u64;
        true
    }

    /// Opens a frame at `tail_position` with room for at least `len` bytes of body (up to
    /// `APPEND_ROOM_BYTES`, as the queue's free space and the buffer's end allow). None when
    /// not even `len` fits now.
    fn open_frame(&mut self, len: usize) -> Option<OpenFrame> {
        debug_assert!(self.open.is_none());
        let capacity_bytes = self.capacity_bytes;
        let index = index_of(self.tail_position, capacity_bytes);
        let bytes_to_end = capacity_bytes - index;
        // As in `try_push`: a frame that cannot fit before the end goes to the start, behind a
        // skip; one that can is kept before the end (its room with it).
        let (skip_bytes, frame_index, room_to_end) = if frame_bytes(len) <= bytes_to_end {
            (0, index, bytes_to_end - HEADER_BYTES)
        } else {
            (bytes_to_end, 0, capacity_bytes - HEADER_BYTES)
        };
        let wanted = APPEND_ROOM_BYTES
            .max(len)
            .min(self.max_frame_bytes())
            .min(room_to_end);
        let mut free_bytes = self.free_bytes() as usize;
        if free_bytes < skip_bytes + frame_bytes(wanted) {
            // Seems short: see how far the consumer has got.
            self.cached_head_position = self.shared.head.0.load(Ordering::Acquire);
            free_bytes = self.free_bytes() as usize;
        }
        let room_bytes = if free_bytes >= skip_bytes + frame_bytes(wanted) {
            wanted
        } else {
            // What is free after the skip and the header, in whole multiples of 8 (so the
            // padded frame fits too).
            let free_body = free_bytes.saturating_sub(skip_bytes + HEADER_BYTES);
            (free_body - free_body % FRAME_ALIGN_BYTES).min(wanted)
        };
        // Not even the header fits (with `len` 0, `room_bytes` 0 says nothing about that).
        if room_bytes < len || free_bytes < skip_bytes + HEADER_BYTES {
            return None;
        }
        debug_assert!(skip_bytes + frame_bytes(room_bytes) <= free_bytes);
        debug_assert!(frame_index + frame_bytes(room_bytes) <= capacity_bytes);
        let open = OpenFrame {
            frame_index,
            skip_bytes,
            body_bytes: 0,
            room_bytes,
        };
        self.open = Some(open);
        // Kept right even if the first append's `fill` panics: the frame is then closed empty.
        self.end_position = self.tail_position + (skip_bytes + frame_bytes(0)) as u64;
        Some(open)
    }

    /// Closes the open frame, if any: writes its header (and the skip in front of it) and
    /// moves `tail_position` past it, so the next `publish` covers it.
    fn close_open_frame(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = index_of(self.tail_position, self.capacity_bytes);
        debug_assert_eq!(
            open.frame_index,
            if open.skip_bytes == 0 { index } else { 0 }
        );
        // The header's 8 bytes at `frame_index` (a multiple of 8 in a 128-aligned buffer) and
        // the skip's at `index` (a multiple of 8 with at least 8 bytes before the end,
        // invariant 2) lie in the room reserved when the frame was opened: free, in bounds,
        // not aliased (invariant 6).
        // SAFETY: in bounds, aligned and free, as listed above.
        unsafe {
            let frame = self.shared.buffer.as_ptr().add(open.frame_index);
            frame.cast::<u32>().write(open.body_bytes as u32);
            frame.add(4).cast::<u32>().write(FRAME_MARKER);
            if open.skip_bytes != 0 {
                let skip = self.shared.buffer.as_ptr().add(index);
                skip.cast::<u32>()
                    .write((open.skip_bytes - HEADER_BYTES) as u32);
                skip.add(4).cast::<u32>().write(SKIP_MARKER);
            }
        }
        self.tail_position += (open.skip_bytes + frame_bytes(open.body_bytes)) as u64;
        debug_assert_eq!(self.tail_position, self.end_position);
        debug_assert!(self.tail_position - self.cached_head_position <= self.capacity_bytes as u64);
    }

    /// Makes every frame pushed or appended so far visible to the consumer (closing the open
    /// one; one Release store). Returns whether anything new was published since the last
    /// call.
    pub fn publish(&mut self) -> bool {
        self.close_open_frame();
        if self.tail_position == self.published_tail_position {
            return false;
        }
        debug_assert!(self.tail_position > self.published_tail_position);
        self.shared
            .tail
            .0
            .store(self.tail_position, Ordering::Release);
        self.published_tail_position = self.tail_position;
        true
    }

    /// Bytes pushed or appended and not yet published.
    pub fn unpublished_bytes(&self) -> usize {
        (self.end_position - self.published_tail_position) as usize
    }

    /// Bytes in use (published or not, including padding and skips), as seen by the producer
    /// (refreshes its cached consumer position with an Acquire load).
    pub fn used_bytes(&mut self) -> usize {
        self.cached_head_position = self.shared.head.0.load(Ordering::Acquire);
        let used_bytes = self.end_position - self.cached_head_position;
        debug_assert!(
            used_bytes <= self.capacity_bytes as u64,
            "spsc head passed tail"
        );
        used_bytes as usize
    }

    /// An upper bound of the bytes in use, from the producer's cached consumer position: no
    /// atomic access (the consumer may have freed more since).
    pub fn used_bytes_at_most(&self) -> usize {
        (self.end_position - self.cached_head_position) as usize
    }

    /// Size of the buffer in bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Largest frame `try_push` accepts: capacity / 4.
    pub fn max_frame_bytes(&self) -> usize {
        self.capacity_bytes / 4
    }

    /// Free bytes by the cached head (a lower bound on the truth).
    fn free_bytes(&self) -> u64 {
        let used_bytes = self.tail_position - self.cached_head_position;
        debug_assert!(
            used_bytes <= self.capacity_bytes as u64,
            "spsc tail passed head + capacity"
        );
        self.capacity_bytes as u64 - used_bytes
    }
}

/// The consuming half. Lives on the consuming shard's thread.
pub struct Consumer {
    shared: Arc<Shared>,
    /// Copy of `shared.capacity_bytes`, to keep the hot path off the shared struct.
    capacity_bytes: usize,
    /// Position of the next frame (or skip) to read. Equals `shared.head` exactly between
    /// calls to `drain`.
    head_position: u64,
    /// A value `shared.tail` held at some point (Acquire-loaded): never ahead of the true tail,
    /// and every byte before it is published and visible to this thread. Reloaded only when
    /// `head_position` catches up with it.
    cached_tail_position: u64,
    /// Makes the type `Send` but not `Sync`: one thread owns each half.
    not_sync: PhantomData<Cell<()>>,
}

impl Consumer {
    /// Hands each published frame, in order, to `handle` (the slice is exactly what was
    /// pushed), stopping once the frames handled take at least `max_bytes` of queue space
    /// (`frame_bytes` of each; always at least one frame if any). The space of handled frames
    /// is returned to the producer (one Release store at the end). Returns the number of
    /// frames handled.
    ///
    /// If `handle` panics, the frame it was given and any not yet handed back are delivered
    /// again by the next `drain`.
    pub fn drain(&mut self, max_bytes: usize, mut handle: impl FnMut(&[u8])) -> usize {
        let capacity_bytes = self.capacity_bytes;
        let start_position = self.head_position;
        let mut frame_count = 0;
        let mut drained_bytes = 0;
        loop {
            if self.head_position == self.cached_tail_position {
                // Seems empty: see whether the producer has published more.
                self.cached_tail_position = self.shared.tail.0.load(Ordering::Acquire);
                if self.head_position == self.cached_tail_position {
                    break;
                }
            }
            debug_assert!(self.head_position < self.cached_tail_position);
            debug_assert!(
                self.cached_tail_position - self.head_position <= capacity_bytes as u64,
                "spsc tail passed head + capacity"
            );
            let index = index_of(self.head_position, capacity_bytes);
            // `index` is 8-aligned (invariant 2) and `index + 8 <= capacity_bytes` (invariant
            // 2: at least 8 bytes remain before the end), so both `u32`s are aligned and in the
            // buffer. They lie in `[head, cached_tail)`, published by the Release store of
            // `tail` we Acquire-loaded, so they are written and the producer will not touch
            // them until we store a head past them (invariant 3).
            // SAFETY: aligned, in bounds, published and not written concurrently (above).
            let (body_len, marker) = unsafe {
                let header = self.shared.buffer.as_ptr().add(index);
                (
                    header.cast::<u32>().read() as usize,
                    header.add(4).cast::<u32>().read(),
                )
            };
            if marker == SKIP_MARKER {
                assert!(
                    index + HEADER_BYTES + body_len == capacity_bytes,
                    "spsc skip not to end"
                );
                self.head_position += (capacity_bytes - index) as u64;
                continue;
            }
            assert!(
                marker == FRAME_MARKER,
                "spsc frame header corrupt: marker {marker:#x}"
            );
            let frame_bytes = frame_bytes(body_len);
            assert!(
                index + frame_bytes <= capacity_bytes,
                "spsc frame runs past the end"
            );
            debug_assert!(self.head_position + frame_bytes as u64 <= self.cached_tail_position);
            // The body `[index + 8, index + 8 + body_len)` is in the buffer (asserted just
            // above) and published, and unchanged until our next head store, by the same
            // reasoning as the header. Every byte is initialized; the producer writes only
            // outside `[head, tail)`, so nothing mutates it while the slice lives.
            // SAFETY: in bounds, initialized, and immutable while `body` lives (above).
            let body = unsafe {
                std::slice::from_raw_parts(
                    self.shared.buffer.as_ptr().add(index + HEADER_BYTES),
                    body_len,
                )
            };
            handle(body);
            self.head_position += frame_bytes as u64;
            frame_count += 1;
            drained_bytes += frame_bytes;
            if drained_bytes >= max_bytes {
                break;
            }
        }
        if self.head_position != start_position {
            self.shared
                .head
                .0
                .store(self.head_position, Ordering::Release);
        }
        frame_count
    }

    /// True when no published frame is waiting.
    pub fn is_empty(&self) -> bool {
        // A published skip is always followed by a published frame (invariant 4), so any
        // published byte past `head` means a frame is waiting.
        self.head_position == self.cached_tail_position
            && self.head_position == self.shared.tail.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// splitmix64: a small deterministic generator for test data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    /// A body of `len` bytes derived from `seed`.
    fn body_for(seed: u64, len: usize) -> Vec<u8> {
        let mut rng = Rng(seed);
        (0..len).map(|_| rng.next() as u8).collect()
    }

    fn push_vec(producer: &mut Producer, body: &[u8]) -> bool {
        producer.try_push(body.len(), |slot| slot.copy_from_slice(body))
    }

    fn drain_all(consumer: &mut Consumer) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        consumer.drain(usize::MAX, |frame| frames.push(frame.to_vec()));
        frames
    }

    #[test]
    fn capacity_rounds_up() {
        assert_eq!(channel(0).0.capacity_bytes(), CAPACITY_BYTES_MIN);
        assert_eq!(channel(65_537).0.capacity_bytes(), 128 * 1024);
        let (producer, _) = channel(1 << 20);
        assert_eq!(producer.capacity_bytes(), 1 << 20);
        assert_eq!(producer.max_frame_bytes(), 1 << 18);
    }

    #[test]
    fn round_trips_random_sizes_and_wraps() {
        let (mut producer, mut consumer) = channel(0);
        let mut rng = Rng(1);
        let mut expected = VecDeque::new();
        let mut seed = 0;
        let mut pushed_bytes = 0;
        let mut skips_seen = 0;
        // Under Miri two wraps (enough for skips), not forty: it interprets every byte.
        let rounds = if cfg!(miri) { 2 } else { 40 };
        while pushed_bytes < rounds * producer.capacity_bytes() {
            let batch = 1 + rng.below(20);
            for _ in 0..batch {
                let len = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(16),
                    2 => rng.below(600),
                    _ => rng.below(producer.max_frame_bytes() + 1),
                };
                seed += 1;
                let body = body_for(seed, len);
                let tail_before = producer.tail_position;
                if !push_vec(&mut producer, &body) {
                    break;
                }
                let advanced = producer.tail_position - tail_before;
                if advanced != frame_bytes(len) as u64 {
                    skips_seen += 1;
                }
                pushed_bytes += frame_bytes(len);
                expected.push_back(body);
            }
            assert!(producer.publish());
            for frame in drain_all(&mut consumer) {
                assert_eq!(frame, expected.pop_front().unwrap());
            }
            assert!(expected.is_empty());
            assert!(consumer.is_empty());
            assert_eq!(producer.used_bytes(), 0);
        }
        // About one skip a wrap.
        assert!(
            skips_seen > rounds / 2,
            "only {skips_seen} skips in {rounds} wraps"
        );
    }

    #[test]
    fn skip_places_frame_at_start() {
        let (mut producer, mut consumer) = channel(0);
        let capacity = producer.capacity_bytes();
        // Fill up to 16 bytes before the end with frames of 1 KiB, then one to land at -16.
        let filler = vec![7u8; 1024 - HEADER_BYTES];
        let mut used = 0;
        while used + 1024 <= capacity - 16 - 1024 {
            assert!(push_vec(&mut producer, &filler));
            used += 1024;
        }
        let last = capacity - 16 - used - HEADER_BYTES;
        assert!(push_vec(&mut producer, &vec![8u8; last]));
        assert_eq!(producer.tail_position, (capacity - 16) as u64);
        producer.publish();
        drain_all(&mut consumer);

        // 100 bytes do not fit in the 16 left: skip 16, place at the start.
        let body = body_for(99, 100);
        assert!(push_vec(&mut producer, &body));
        assert_eq!(producer.tail_position, (capacity + frame_bytes(100)) as u64);
        assert_eq!(producer.used_bytes(), 16 + frame_bytes(100));
        producer.publish();
        let buffer = producer.shared.buffer.as_ptr() as usize;
        let mut seen = 0;
        consumer.drain(usize::MAX, |frame| {
            assert_eq!(frame, &body[..]);
            assert_eq!(frame.as_ptr() as usize, buffer + HEADER_BYTES);
            seen += 1;
        });
        assert_eq!(seen, 1);
        assert_eq!(producer.used_bytes(), 0);
    }

    #[test]
    fn frames_ending_exactly_at_the_end_and_fitting_exactly_need_no_skip() {
        let (mut producer, mut consumer) = channel(0);
        let capacity = producer.capacity_bytes();
        let quarter = producer.max_frame_bytes(); // frame_bytes = quarter + 8
        let mut position = 0;
        // 8 bytes left at the end: a 0-length frame fits exactly there.
        while position + frame_bytes(quarter) <= capacity - 8 - frame_bytes(0) {
            assert!(push_vec(&mut producer, &vec![1u8; quarter]));
            position += frame_bytes(quarter);
        }
        let rest = capacity - 8 - position;
        assert!(push_vec(&mut producer, &vec![2u8; rest - HEADER_BYTES]));
        assert!(push_vec(&mut producer, &[]));
        assert_eq!(producer.tail_position, capacity as u64);
        assert_eq!(producer.used_bytes(), capacity);
        // Completely full: even a 0-length frame is refused.
        assert!(!push_vec(&mut producer, &[]));
        producer.publish();
        let frames = drain_all(&mut consumer);
        assert_eq!(frames.last().unwrap().len(), 0);
        assert_eq!(frames[frames.len() - 2].len(), rest - HEADER_BYTES);
        // Now at index 0 again, with no skip.
        assert!(push_vec(&mut producer, &[3; 5]));
        assert_eq!(producer.tail_position, (capacity + 16) as u64);
        producer.publish();
        assert_eq!(drain_all(&mut consumer), vec![vec![3; 5]]);
    }

    #[test]
    fn full_queue_refuses_then_accepts_after_drain() {
        let (mut producer, mut consumer) = channel(0);
        let body = vec![5u8; 1000]; // frame_bytes 1008
        let mut pushed = 0;
        while push_vec(&mut producer, &body) {
            pushed += 1;
        }
        assert_eq!(pushed, producer.capacity_bytes() / 1008);
        assert!(producer.used_bytes() > producer.capacity_bytes() - 1008);
        // Unpublished frames are invisible, and still take space.
        assert_eq!(consumer.drain(usize::MAX, |_| {}), 0);
        assert!(consumer.is_empty());
        assert!(!push_vec(&mut producer, &body));
        // Refusal writes nothing: the closure is not called.
        assert!(!producer.try_push(1000, |_| panic!("filled a refused frame")));
        assert!(producer.publish());
        assert!(!consumer.is_empty());
        assert_eq!(consumer.drain(0, |frame| assert_eq!(frame, &body[..])), 1);
        assert!(push_vec(&mut producer, &body));
        assert!(!push_vec(&mut producer, &body));
        producer.publish();
        assert_eq!(drain_all(&mut consumer).len(), pushed);
        assert!(consumer.is_empty());
    }

    #[test]
    fn max_frame_bytes_boundary() {
        let (mut producer, mut consumer) = channel(0);
        let max = producer.max_frame_bytes();
        for round in 0..if cfg!(miri) { 3 } else { 20 } {
            let body = body_for(round, max);
            assert!(push_vec(&mut producer, &body));
            assert!(push_vec(&mut producer, &body[..max - 1]));
            producer.publish();
            let frames = drain_all(&mut consumer);
            assert_eq!(frames, vec![body.clone(), body[..max - 1].to_vec()]);
        }
    }

    #[test]
    #[should_panic(expected = "exceeds max_frame_bytes")]
    fn frame_above_max_panics() {
        let (mut producer, _consumer) = channel(0);
        let max = producer.max_frame_bytes();
        producer.try_push(max + 1, |_| {});
    }

    #[test]
    fn publish_reports_news() {
        let (mut producer, mut consumer) = channel(0);
        assert!(!producer.publish());
        assert!(push_vec(&mut producer, &[1, 2, 3]));
        assert_eq!(producer.unpublished_bytes(), frame_bytes(3));
        assert!(consumer.is_empty(), "pushed is not yet visible");
        assert!(producer.publish());
        assert_eq!(producer.unpublished_bytes(), 0);
        assert!(!consumer.is_empty());
        assert!(!producer.publish());
        assert!(push_vec(&mut producer, &[]));
        assert!(push_vec(&mut producer, &[4]));
        assert_eq!(
            producer.unpublished_bytes(),
            frame_bytes(0) + frame_bytes(1)
        );
        assert!(producer.publish());
        assert!(!producer.publish());
        assert_eq!(
            drain_all(&mut consumer),
            vec![vec![1, 2, 3], vec![], vec![4]]
        );
        assert!(!producer.publish());
    }

    #[test]
    fn drain_stops_after_max_bytes() {
        let (mut producer, mut consumer) = channel(0);
        for value in 0..10u8 {
            assert!(push_vec(&mut producer, &[value; 24])); // frame_bytes 32
        }
        producer.publish();
        let mut got = Vec::new();
        let mut take = |max_bytes| consumer.drain(max_bytes, |frame: &[u8]| got.push(frame[0]));
        assert_eq!(take(0), 1);
        assert_eq!(take(1), 1);
        assert_eq!(take(32), 1);
        assert_eq!(take(33), 2);
        assert_eq!(take(64), 2);
        assert_eq!(take(usize::MAX), 3);
        assert_eq!(take(usize::MAX), 0);
        assert_eq!(take(0), 0);
        assert_eq!(got, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn drain_returns_space_to_the_producer() {
        let (mut producer, mut consumer) = channel(0);
        assert!(push_vec(&mut producer, &[0; 100]));
        assert!(push_vec(&mut producer, &[0; 100]));
        producer.publish();
        assert_eq!(producer.used_bytes(), 2 * frame_bytes(100));
        consumer.drain(0, |_| {});
        assert_eq!(producer.used_bytes(), frame_bytes(100));
        consumer.drain(0, |_| {});
        assert_eq!(producer.used_bytes(), 0);
    }

    #[test]
    fn halves_drop_in_either_order() {
        let (mut producer, consumer) = channel(0);
        assert!(push_vec(&mut producer, &[1; 10]));
        producer.publish();
        drop(producer);
        drop(consumer);
        let (producer, consumer) = channel(0);
        drop(consumer);
        drop(producer);
    }

    /// Operations per property-test case; Miri (CI runs it over xshard/) interprets a few
    /// hundred operations with their bodies for minutes.
    const PROPTEST_OPS_MAX: usize = if cfg!(miri) { 12 } else { 300 };

    /// Number of frames in the two-thread test.
    fn two_thread_frame_count() -> u64 {
        if cfg!(miri) {
            3_000
        } else {
            2_000_000
        }
    }

    /// Frame `sequence`'s body: its length from the sequence, bytes from a shared random pool;
    /// from 8 bytes up the first 8 are the sequence, from 16 up the last 8 a checksum of the
    /// rest.
    fn fill_two_thread_frame(pool: &[u8], sequence: u64, body: &mut [u8]) {
        let offset = (sequence.wrapping_mul(0x9E37_79B9) % 1024) as usize;
        body.copy_from_slice(&pool[offset..offset + body.len()]);
        if body.len() >= 8 {
            body[..8].copy_from_slice(&sequence.to_le_bytes());
        }
        if body.len() >= 16 {
            let checksum_at = body.len() - 8;
            let checksum = checksum_of(&body[..checksum_at]);
            body[checksum_at..].copy_from_slice(&checksum.to_le_bytes());
        }
    }

    fn two_thread_frame_len(sequence: u64) -> usize {
        (Rng(sequence).next() % 300) as usize
    }

    fn checksum_of(bytes: &[u8]) -> u64 {
        let mut chunks = bytes.chunks_exact(8);
        let mut sum = 0xCBF2_9CE4_8422_2325u64;
        for chunk in &mut chunks {
            sum =
                (sum ^ u64::from_le_bytes(chunk.try_into().unwrap())).wrapping_mul(0x100_0000_01B3);
        }
        for &byte in chunks.remainder() {
            sum = (sum ^ u64::from(byte)).wrapping_mul(0x100_0000_01B3);
        }
        sum
    }

    /// The producer of the two-thread tests: `frame_count` frames (records, with `append`)
    /// of `two_thread_frame_len` bytes, published in uneven batches. Returns how often the
    /// queue refused one.
    fn spawn_two_thread_producer(
        mut producer: Producer,
        pool: Arc<Vec<u8>>,
        frame_count: u64,
        append: bool,
    ) -> std::thread::JoinHandle<u64> {
        std::thread::spawn(move || {
            let mut refusals = 0u64;
            let mut sequence = 0;
            while sequence < frame_count {
                let len = two_thread_frame_len(sequence);
                let fill = |body: &mut [u8]| fill_two_thread_frame(&pool, sequence, body);
                let taken = if append {
                    producer.append(len, fill)
                } else {
                    producer.try_push(len, fill)
                };
                if taken {
                    sequence += 1;
                    if sequence % 7 == 0 || sequence % 61 == 3 {
                        producer.publish();
                    }
                } else {
                    refusals += 1;
                    producer.publish();
                    std::thread::yield_now();
                }
            }
            producer.publish();
            refusals
        })
    }

    /// A producer thread and this one, through the smallest queue: every frame (with `append`,
    /// every record; their lengths follow from their sequence) arrives whole and in order,
    /// drained with random budgets, and the queue fills up at some point.
    fn two_threads_in_order_and_intact(append: bool, seed: u64) {
        let frame_count = two_thread_frame_count();
        let pool: Arc<Vec<u8>> = Arc::new(body_for(seed, 2048));
        let (producer, mut consumer) = channel(CAPACITY_BYTES_MIN);
        let producer_thread =
            spawn_two_thread_producer(producer, Arc::clone(&pool), frame_count, append);

        let mut expected_sequence = 0u64;
        let mut expected = vec![0u8; 300];
        let mut drain_rng = Rng(seed);
        while expected_sequence < frame_count {
            let max_bytes = drain_rng.below(8192);
            let handled = consumer.drain(max_bytes, |mut body| {
                let first = expected_sequence;
                while !body.is_empty() || (!append && expected_sequence == first) {
                    let len = two_thread_frame_len(expected_sequence);
                    assert!(body.len() >= len, "frame {expected_sequence} cut short");
                    let (record, rest) = body.split_at(len);
                    fill_two_thread_frame(&pool, expected_sequence, &mut expected[..len]);
                    assert_eq!(record, &expected[..len], "frame {expected_sequence}");
                    body = rest;
                    expected_sequence += 1;
                }
                if !append {
                    assert_eq!(expected_sequence, first + 1, "one frame per push");
                }
            });
            if handled == 0 {
                std::thread::yield_now();
            }
        }
        let refusals = producer_thread.join().unwrap();
        assert!(consumer.is_empty());
        assert_eq!(consumer.drain(usize::MAX, |_| panic!("extra frame")), 0);
        // The small queue must actually have filled up.
        if !cfg!(miri) {
            assert!(refusals > 0, "queue never filled");
        }
    }

    #[test]
    fn two_threads_pushing_in_order_and_intact() {
        two_threads_in_order_and_intact(false, 42);
    }

    #[test]
    fn two_threads_appending_in_order_and_intact() {
        two_threads_in_order_and_intact(true, 43);
    }

    #[test]
    fn appends_share_a_frame_until_publish_or_a_push() {
        let (mut producer, mut consumer) = channel(4 * CAPACITY_BYTES_MIN);
        assert!(producer.append(3, |bytes| bytes.copy_from_slice(b"abc")));
        assert!(producer.append(0, |_| {}));
        assert!(producer.append(5, |bytes| bytes.copy_from_slice(b"defgh")));
        assert_eq!(producer.unpublished_bytes(), frame_bytes(8));
        assert!(consumer.is_empty(), "appended is not yet visible");
        assert!(push_vec(&mut producer, b"pushed"));
        assert!(producer.append(2, |bytes| bytes.copy_from_slice(b"ij")));
        assert!(producer.publish());
        assert_eq!(
            drain_all(&mut consumer),
            vec![b"abcdefgh".to_vec(), b"pushed".to_vec(), b"ij".to_vec()]
        );
        // A record larger than the room left opens a new frame.
        let big = vec![7u8; APPEND_ROOM_BYTES - 4];
        assert!(producer.append(8, |bytes| bytes.copy_from_slice(b"12345678")));
        assert!(producer.append(big.len(), |bytes| bytes.copy_from_slice(&big)));
        // One larger than the room gets a frame of its own size.
        let bigger = vec![9u8; APPEND_ROOM_BYTES + 100];
        assert!(producer.append(bigger.len(), |bytes| bytes.copy_from_slice(&bigger)));
        assert!(producer.publish());
        assert_eq!(
            drain_all(&mut consumer),
            vec![b"12345678".to_vec(), big, bigger]
        );
        assert_eq!(producer.used_bytes(), 0);
    }

    #[test]
    fn appends_wrap_around_the_end_behind_a_skip() {
        let (mut producer, mut consumer) = channel(0);
        let capacity = producer.capacity_bytes();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        // Records of 1000 bytes: frames of up to 16 records never end exactly at the end.
        for round in 0..(3 * capacity / 1000) {
            let record = body_for(round as u64, 1000);
            if !producer.append(record.len(), |bytes| bytes.copy_from_slice(&record)) {
                producer.publish();
                consumer.drain(usize::MAX, |body| got.extend_from_slice(body));
                assert!(producer.append(record.len(), |bytes| bytes.copy_from_slice(&record)));
            }
            expected.extend_from_slice(&record);
        }
        producer.publish();
        consumer.drain(usize::MAX, |body| {
            assert!(body.len().is_multiple_of(1000), "whole records per frame");
            got.extend_from_slice(body)
        });
        assert!(got == expected, "every record once, in order");
        assert!(
            producer.tail_position > 2 * capacity as u64,
            "wrapped around"
        );
    }

    #[test]
    fn an_empty_append_to_a_full_queue_is_refused() {
        let (mut producer, mut consumer) = channel(0);
        let capacity = producer.capacity_bytes();
        let quarter = producer.max_frame_bytes();
        for _ in 0..3 {
            assert!(push_vec(&mut producer, &vec![1u8; quarter]));
        }
        let rest = capacity - 3 * frame_bytes(quarter) - HEADER_BYTES;
        assert!(push_vec(&mut producer, &vec![2u8; rest]));
        assert_eq!(producer.used_bytes(), capacity);
        assert!(!producer.append(0, |_| panic!("filled a refused append")));
        assert_eq!(producer.used_bytes(), capacity);
        producer.publish();
        assert_eq!(drain_all(&mut consumer).len(), 4);
        assert!(producer.append(0, |_| {}));
        producer.publish();
        assert_eq!(drain_all(&mut consumer), vec![Vec::<u8>::new()]);
    }

    /// Pushes (and drains) frames until the tail is `before_end` bytes before the buffer's end.
    fn move_tail_to(producer: &mut Producer, consumer: &mut Consumer, before_end: usize) {
        let capacity = producer.capacity_bytes();
        let target = capacity - before_end;
        while index_of(producer.end_position, capacity) != target {
            let index = index_of(producer.end_position, capacity);
            let gap = if index < target {
                target - index
            } else {
                capacity - index
            };
            let len = (gap - HEADER_BYTES).min(producer.max_frame_bytes());
            assert!(push_vec(producer, &vec![0u8; len]));
            producer.publish();
            drain_all(consumer);
        }
    }

    #[test]
    fn an_open_frame_fitting_exactly_to_the_end_has_the_room_up_to_it() {
        let (mut producer, mut consumer) = channel(0);
        move_tail_to(&mut producer, &mut consumer, 64);
        // 56 bytes fit exactly: no skip, and the room ends at the buffer's end.
        assert!(producer.append(56, |bytes| bytes.fill(5)));
        let open = producer.open.expect("open");
        assert_eq!((open.skip_bytes, open.room_bytes), (0, 56));
        // The next one opens a frame at the start, with no skip.
        assert!(producer.append(1, |bytes| bytes.fill(6)));
        assert_eq!(producer.open.expect("open").skip_bytes, 0);
        producer.publish();
        assert_eq!(drain_all(&mut consumer), vec![vec![5u8; 56], vec![6u8]]);

        // 57 bytes do not fit in 64: behind a skip, at the start.
        move_tail_to(&mut producer, &mut consumer, 64);
        assert!(producer.append(57, |bytes| bytes.fill(7)));
        let open = producer.open.expect("open");
        assert_eq!((open.skip_bytes, open.frame_index), (64, 0));
        producer.publish();
        assert_eq!(drain_all(&mut consumer), vec![vec![7u8; 57]]);
        assert_eq!(producer.used_bytes(), 0);
    }

    #[test]
    fn a_panicking_fill_leaves_the_queue_consistent() {
        let (mut producer, mut consumer) = channel(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            producer.append(10, |_| panic!("fill fails"));
        }));
        assert!(result.is_err());
        assert!(producer.unpublished_bytes() <= frame_bytes(0));
        assert!(producer.append(3, |bytes| bytes.copy_from_slice(b"abc")));
        producer.publish();
        assert_eq!(producer.unpublished_bytes(), 0);
        assert_eq!(drain_all(&mut consumer), vec![b"abc".to_vec()]);
        assert_eq!(producer.used_bytes(), 0);
    }

    #[test]
    fn append_refuses_only_when_a_frame_of_its_size_does_not_fit() {
        let (mut producer, mut consumer) = channel(0);
        let mut appended = 0usize;
        while producer.append(100, |bytes| bytes.fill(1)) {
            appended += 1;
        }
        // Full: less than one 100-byte frame of room is left.
        let free = producer.capacity_bytes() - producer.used_bytes();
        assert!(free < frame_bytes(100), "refused with {free} bytes free");
        assert!(!producer.append(100, |_| panic!("filled a refused append")));
        producer.publish();
        let mut drained = 0;
        consumer.drain(usize::MAX, |body| drained += body.len());
        assert_eq!(drained, appended * 100);
        assert!(producer.append(100, |bytes| bytes.fill(2)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push { len: usize, seed: u64 },
        Publish,
        Drain { max_bytes: usize },
        UsedBytes,
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..64, any::<u64>()).prop_map(|(len, seed)| Op::Push { len, seed }),
            3 => (0usize..=CAPACITY_BYTES_MIN / 4, any::<u64>())
                .prop_map(|(len, seed)| Op::Push { len, seed }),
            2 => Just(Op::Publish),
            1 => (0usize..20_000).prop_map(|max_bytes| Op::Drain { max_bytes }),
            1 => Just(Op::Drain { max_bytes: usize::MAX }),
            1 => Just(Op::UsedBytes),
        ]
    }

    /// The naive model: frames as a deque, positions tracked as plain numbers.
    struct Model {
        capacity_bytes: u64,
        tail: u64,
        head: u64,
        published_tail: u64,
        /// (position just past the frame, body), oldest first.
        frames: VecDeque<(u64, Vec<u8>)>,
    }

    impl Model {
        fn push(&mut self, body: Vec<u8>) -> bool {
            let bytes = frame_bytes(body.len()) as u64;
            let to_end = self.capacity_bytes - self.tail % self.capacity_bytes;
            let skip = if bytes > to_end { to_end } else { 0 };
            if self.tail + skip + bytes - self.head > self.capacity_bytes {
                return false;
            }
            self.tail += skip + bytes;
            self.frames.push_back((self.tail, body));
            true
        }
    }

    #[derive(Debug, Clone)]
    enum MixedOp {
        Push { len: usize, seed: u64 },
        Append { len: usize, seed: u64 },
        Publish,
        Drain { max_bytes: usize },
    }

    fn mixed_op_strategy() -> impl Strategy<Value = MixedOp> {
        prop_oneof![
            2 => (0usize..64, any::<u64>()).prop_map(|(len, seed)| MixedOp::Push { len, seed }),
            // Not empty: an empty record at a frame's end could not be told from one at the
            // start of the next (`appends_share_a_frame_until_publish_or_a_push` has them).
            6 => (1usize..200, any::<u64>()).prop_map(|(len, seed)| MixedOp::Append { len, seed }),
            2 => (1usize..=CAPACITY_BYTES_MIN / 4, any::<u64>())
                .prop_map(|(len, seed)| MixedOp::Append { len, seed }),
            1 => (0usize..=CAPACITY_BYTES_MIN / 4, any::<u64>())
                .prop_map(|(len, seed)| MixedOp::Push { len, seed }),
            2 => Just(MixedOp::Publish),
            1 => (0usize..20_000).prop_map(|max_bytes| MixedOp::Drain { max_bytes }),
            1 => Just(MixedOp::Drain { max_bytes: usize::MAX }),
        ]
    }

    /// What a producer wrote, in order: a pushed frame, or an appended record.
    #[derive(Debug)]
    enum Written {
        Pushed(Vec<u8>),
        Appended(Vec<u8>),
    }

    /// Checks a drained body against the oldest written units: a pushed frame alone, or one
    /// or more whole appended records back to back.
    fn take_body(written: &mut VecDeque<Written>, body: &[u8]) -> Result<(), TestCaseError> {
        match written.pop_front() {
            Some(Written::Pushed(frame)) => prop_assert_eq!(body, &frame[..]),
            Some(Written::Appended(record)) => {
                prop_assert!(body.starts_with(&record), "first record of a frame");
                let mut rest = &body[record.len()..];
                while !rest.is_empty() {
                    match written.pop_front() {
                        Some(Written::Appended(record)) => {
                            prop_assert!(rest.starts_with(&record), "next record of a frame");
                            rest = &rest[record.len()..];
                        }
                        other => prop_assert!(false, "frame body runs into {:?}", other),
                    }
                }
            }
            None => prop_assert!(false, "a frame nobody wrote"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
            ..ProptestConfig::default()
        })]
        #[test]
        fn appends_and_pushes_arrive_whole_and_in_order(
            ops in proptest::collection::vec(mixed_op_strategy(), 1..PROPTEST_OPS_MAX)
        ) {
            let (mut producer, mut consumer) = channel(0);
            let capacity = producer.capacity_bytes();
            let mut written = VecDeque::new();
            // How many of `written` are published.
            let mut published = 0usize;
            for op in ops {
                match op {
                    MixedOp::Push { len, seed } => {
                        let body = body_for(seed, len);
                        if push_vec(&mut producer, &body) {
                            written.push_back(Written::Pushed(body));
                        }
                    }
                    MixedOp::Append { len, seed } => {
                        let record = body_for(seed, len);
                        let index = index_of(producer.end_position, capacity);
                        let to_end = capacity - index;
                        let needed = if frame_bytes(len) <= to_end {
                            frame_bytes(len)
                        } else {
                            to_end + frame_bytes(len)
                        };
                        let fits_open = producer
                            .open
                            .is_some_and(|open| open.room_bytes - open.body_bytes >= len);
                        if producer.append(len, |bytes| bytes.copy_from_slice(&record)) {
                            written.push_back(Written::Appended(record));
                        } else {
                            // Refused only when even a frame of its own does not fit.
                            prop_assert!(!fits_open);
                            let free = capacity - producer.used_bytes();
                            prop_assert!(free < needed, "refused {} with {} free", len, free);
                        }
                    }
                    MixedOp::Publish => {
                        producer.publish();
                        published = written.len();
                    }
                    MixedOp::Drain { max_bytes } => {
                        let before = written.len();
                        let mut result = Ok(());
                        consumer.drain(max_bytes, |body| {
                            if result.is_ok() {
                                result = take_body(&mut written, body);
                            }
                        });
                        result?;
                        let drained = before - written.len();
                        prop_assert!(drained <= published, "drained what was not published");
                        published -= drained;
                        if max_bytes == usize::MAX {
                            prop_assert_eq!(published, 0, "a full drain takes all published");
                        }
                    }
                }
                prop_assert!(producer.used_bytes() <= capacity);
            }
            producer.publish();
            let mut result = Ok(());
            consumer.drain(usize::MAX, |body| {
                if result.is_ok() {
                    result = take_body(&mut written, body);
                }
            });
            result?;
            prop_assert!(written.is_empty(), "left over: {:?}", written);
        }
    }

    proptest! {
        // Under Miri: fewer cases, and no failure file (Miri isolates the file system).
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
            ..ProptestConfig::default()
        })]
        #[test]
        fn matches_the_model(ops in proptest::collection::vec(op_strategy(), 1..PROPTEST_OPS_MAX)) {
            let (mut producer, mut consumer) = channel(0);
            let mut model = Model {
                capacity_bytes: producer.capacity_bytes() as u64,
                tail: 0,
                head: 0,
                published_tail: 0,
                frames: VecDeque::new(),
            };
            for op in ops {
                match op {
                    Op::Push { len, seed } => {
                        let body = body_for(seed, len);
                        let pushed = push_vec(&mut producer, &body);
                        prop_assert_eq!(pushed, model.push(body));
                    }
                    Op::Publish => {
                        let news = model.published_tail != model.tail;
                        model.published_tail = model.tail;
                        prop_assert_eq!(producer.publish(), news);
                    }
                    Op::Drain { max_bytes } => {
                        let mut got = Vec::new();
                        let count = consumer.drain(max_bytes, |frame| got.push(frame.to_vec()));
                        let mut want = Vec::new();
                        let mut drained_bytes = 0;
                        while let Some((end, _)) = model.frames.front() {
                            if *end > model.published_tail || (drained_bytes >= max_bytes && !want.is_empty()) {
                                break;
                            }
                            let (end, body) = model.frames.pop_front().unwrap();
                            drained_bytes += frame_bytes(body.len());
                            model.head = end;
                            want.push(body);
                        }
                        prop_assert_eq!(count, want.len());
                        prop_assert_eq!(got, want);
                    }
                    // Only on request: it refreshes the producer's cached head, which would
                    // otherwise keep try_push's "seems full" reload path from running.
                    Op::UsedBytes => {
                        prop_assert_eq!(producer.used_bytes() as u64, model.tail - model.head);
                    }
                }
                let frame_waiting = model.frames.front().is_some_and(|(end, _)| *end <= model.published_tail);
                prop_assert_eq!(consumer.is_empty(), !frame_waiting);
            }
        }
    }
}
