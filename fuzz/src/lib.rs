//! The checks behind natsring's fuzz targets, one module per target, plus a corpus replayer.
//!
//! Each target in `fuzz_targets/` is a few lines: under `cargo fuzz` (`--cfg fuzzing`) it hands
//! libFuzzer's input to a `check` function here; built as a plain binary on stable it replays
//! files and directories through the same function (see [`replay`]). A check panics on a
//! finding; it never returns an error.

pub mod conf_parse;
pub mod connect_json;
pub mod msg_writer;
pub mod parser_splits;
pub mod replay;
pub mod route_splits;
pub mod subject_rules;
pub mod sublist_oracle;
pub mod tls_handover;

/// Reads the fuzz input front to back; past its end every read is 0, so any input is usable.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }

    /// The next `len` bytes, or fewer when the input ends first.
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(len.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}
