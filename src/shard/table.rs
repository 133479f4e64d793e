//! The shard's connection table: its connections and their subscriptions, each in a slab,
//! with the generations that tell a reused slot from the one a completion, a table entry or a
//! peer's frame named; the dirty list (connections with output to flush this round); and the
//! receive operations the protocol side wants started or cancelled, which the loop submits at
//! the end of the round (`Shard::submit_wanted`, cancels before arms: both name the same token).
//! So everything that changes connections (handlers, delivery, back-pressure, closing) needs no
//! ring and is unit-tested without one; nothing changes for the kernel, which sees a round's
//! SQEs when the loop enters the ring (or when the submission queue is full).

use std::ops::{Index, IndexMut};

use slab::Slab;

use super::backpressure::SubscriberNow;
use super::conn::{Conn, RecvState, Subscription};
use super::ring::{Token, GENERATION_MASK};

#[derive(Default)]
pub struct ConnTable {
    /// The connections, by slot (the slot of every token naming one).
    pub slots: Slab<Conn>,
    /// The subscriptions of every connection here, by slot (a `SubHandle`'s slot).
    pub subs: Slab<Subscription>,
    /// Source of connection and subscription generations (never reused while a slot lives).
    next_generation: u32,
    /// Slots with output to flush this round (deduplicated by `Conn::dirty`).
    pub dirty: Vec<u32>,
    /// Slots whose receive is to be armed this round, if they are then still open, not paused
    /// and not receiving (a new connection, a resumed publisher, one whose multishot receive
    /// ended: for lack of buffers, or cancelled).
    pub to_arm: Vec<u32>,
    /// Slots whose armed receive is to be cancelled this round (already counted in
    /// `ops_in_flight` and marked `Cancelling`, so the slot stays until the cancel completes).
    pub to_cancel: Vec<u32>,
}

impl ConnTable {
    pub fn new() -> ConnTable {
        ConnTable {
            next_generation: 1,
            ..ConnTable::default()
        }
    }

    #[inline]
    pub fn get(&self, slot: u32) -> Option<&Conn> {
        self.slots.get(slot as usize)
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The connection a completion names, if its slot still holds that connection.
    #[inline]
    pub fn by_token(&mut self, token: Token) -> Option<&mut Conn> {
        self.slots
            .get_mut(token.slot as usize)
            .filter(|conn| conn.generation & GENERATION_MASK == token.generation)
    }

    /// A generation for a new connection or subscription (never 0).
    pub fn take_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        generation
    }

    /// Puts `slot` on the dirty list (once).
    #[inline]
    pub fn mark(&mut self, slot: u32) {
        let conn = &mut self.slots[slot as usize];
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Asks for `slot`'s receive to be armed this round.
    pub fn want_recv(&mut self, slot: u32) {
        self.to_arm.push(slot);
    }

    /// The next slot on `to_arm` whose connection still wants a receive armed: open, not
    /// paused, none armed (it may have closed, paused or been re-armed since it was asked for).
    pub fn next_to_arm(&mut self) -> Option<u32> {
        while let Some(slot) = self.to_arm.pop() {
            let Some(conn) = self.slots.get(slot as usize) else {
                continue;
            };
            if conn.is_open() && conn.paused.is_none() && conn.recv == RecvState::Idle {
                return Some(slot);
            }
        }
        None
    }

    /// Asks for `slot`'s armed receive to be cancelled (to pause or close it); nothing when it
    /// has none armed.
    pub fn cancel_recv(&mut self, slot: u32) {
        let conn = &mut self.slots[slot as usize];
        if conn.recv != RecvState::Armed {
            return;
        }
        conn.recv = RecvState::Cancelling;
        conn.ops_in_flight += 1;
        self.to_cancel.push(slot);
    }

    /// The connection in `slot` as a back-pressure wait sees it.
    pub fn subscriber_now(&self, slot: u32) -> Option<SubscriberNow> {
        self.slots.get(slot as usize).map(|conn| SubscriberNow {
            generation: conn.generation,
            open: conn.is_open(),
            pending_bytes: conn.out.pending_bytes(),
            write_stalled_since_ms: conn.write_stalled_since_ms,
        })
    }
}

impl Index<u32> for ConnTable {
    type Output = Conn;

    #[inline]
    fn index(&self, slot: u32) -> &Conn {
        &self.slots[slot as usize]
    }
}

impl IndexMut<u32> for ConnTable {
    #[inline]
    fn index_mut(&mut self, slot: u32) -> &mut Conn {
        &mut self.slots[slot as usize]
    }
}
