//! `/v1/stream`'s own frames (docs/protocol.md §4): `hello`, `indicator`, `withdrawn`,
//! `dropped`, `reset`, `plan`, as `domain::Frame` writes them.

use axum::extract::ws::Utf8Bytes;
use domain::Frame;

use super::Dialect;
use crate::frames::{Encoding, FramedEntry};
use crate::stream::Output;

/// Sluice's native protocol.
pub struct Native;

impl Dialect for Native {
    const NAME: &'static str = "native";

    fn greeting(&self, hello: &Frame) -> Utf8Bytes {
        hello.encode().into()
    }

    fn encode(&self, output: &Output) -> Option<Utf8Bytes> {
        match output {
            Output::Indicator(entry) => Some(native_indicator(entry)),
            notice => notice.notice().map(|frame| frame.encode().into()),
        }
    }
}

/// An entry's `indicator` frame (`withdrawn` for a withdrawal), encoded once per node.
pub fn native_indicator(entry: &FramedEntry) -> Utf8Bytes {
    entry.encoded(Encoding::Native, |entry| {
        if entry.indicator.is_withdrawn() {
            domain::protocol::withdrawn_frame(&entry.cursor, entry.json())
        } else {
            domain::protocol::indicator_frame(&entry.cursor, entry.json())
        }
    })
}
