//! Capture of one output stream (stdout or stderr) of an attempt, with bounded memory: bytes
//! become UTF-8 [`OutputChunk`]s with contiguous byte offsets, at most `chunk_max` bytes each,
//! and at most `cap` bytes per stream. Beyond the cap the bytes are only counted (the child
//! must never block on a full pipe) and a visible marker line closes the stream. A multi-byte
//! character split across two reads is held back until it is complete, so the lossy
//! conversion only replaces bytes that really are invalid.

use capstan_proto::jobs::{OutputChunk, OutputStream};

/// The marker line appended when bytes were dropped.
pub fn truncation_marker(dropped: u64) -> String {
    format!("[capstan: output truncated: {dropped} bytes dropped]\n")
}

/// What a stream amounted to once the attempt ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// Bytes the process(es) wrote, including what the cap dropped.
    pub written: u64,
    /// Bytes sent as chunks (the next offset), marker included.
    pub emitted: u64,
    pub truncated: bool,
}

/// The capture of one stream across all parts (pre-script, action, post-script) of an attempt.
#[derive(Debug)]
pub struct StreamCapture {
    stream: OutputStream,
    cap: u64,
    chunk_max: usize,
    /// Accepted bytes not yet emitted; never more than `chunk_max` plus one read.
    pending: Vec<u8>,
    emitted: u64,
    written: u64,
    dropped: u64,
    ends_with_newline: bool,
    high_water: usize,
}

impl StreamCapture {
    pub fn new(stream: OutputStream, cap: usize, chunk_max: usize) -> Self {
        Self {
            stream,
            cap: cap as u64,
            // A chunk must be able to hold any single character, or no progress is possible.
            chunk_max: chunk_max.max(4),
            pending: Vec::new(),
            emitted: 0,
            written: 0,
            dropped: 0,
            ends_with_newline: true,
            high_water: 0,
        }
    }

    /// Bytes the process wrote. Full chunks are appended to `out` at once.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<OutputChunk>) {
        self.written += bytes.len() as u64;
        self.accept(bytes, out);
    }

    /// Emit what is pending (a tick of the flush timer), holding back an incomplete character.
    pub fn flush(&mut self, out: &mut Vec<OutputChunk>) {
        self.drain(false, out);
    }

    /// A line of our own (a part header) on a line of its own; counted against the cap but
    /// not as process output. Skipped once the cap is reached.
    pub fn insert_line(&mut self, text: &str, out: &mut Vec<OutputChunk>) {
        // A part boundary is a process boundary: a dangling partial character will never be
        // completed, so it is converted now rather than glued to our text.
        self.drain(true, out);
        if self.is_full() {
            return;
        }
        let mut line = String::with_capacity(text.len() + 2);
        if !self.ends_with_newline {
            line.push('\n');
        }
        line.push_str(text);
        line.push('\n');
        self.accept(line.as_bytes(), out);
        self.drain(true, out);
    }

    /// Emit everything, then the truncation marker if bytes were dropped.
    pub fn finish(&mut self, out: &mut Vec<OutputChunk>) -> StreamTotals {
        self.drain(true, out);
        if self.dropped > 0 {
            let mut marker = String::new();
            if !self.ends_with_newline {
                marker.push('\n');
            }
            marker.push_str(&truncation_marker(self.dropped));
            self.emit_text(marker, out);
        }
        self.totals()
    }

    pub fn totals(&self) -> StreamTotals {
        StreamTotals {
            written: self.written,
            emitted: self.emitted,
            truncated: self.dropped > 0,
        }
    }

    /// The most bytes ever held back at once (memory stays bounded however much is written).
    #[cfg(test)]
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    fn is_full(&self) -> bool {
        self.emitted >= self.cap
    }

    fn accept(&mut self, bytes: &[u8], out: &mut Vec<OutputChunk>) {
        if self.is_full() {
            self.dropped += bytes.len() as u64;
            return;
        }
        self.pending.extend_from_slice(bytes);
        self.high_water = self.high_water.max(self.pending.len());
        while self.pending.len() >= self.chunk_max {
            if !self.emit_one(false, out) {
                break;
            }
        }
    }

    fn drain(&mut self, last: bool, out: &mut Vec<OutputChunk>) {
        while !self.pending.is_empty() {
            if !self.emit_one(last, out) {
                break;
            }
        }
    }

    /// Emit one chunk from `pending`; false when no progress was possible.
    fn emit_one(&mut self, last: bool, out: &mut Vec<OutputChunk>) -> bool {
        let room = usize::try_from(self.cap.saturating_sub(self.emitted)).unwrap_or(usize::MAX);
        let cap_limited = room < self.chunk_max;
        let budget = room.min(self.chunk_max);
        let taken = take_utf8(&self.pending, budget, last);
        if taken.consumed == 0 {
            if cap_limited && !taken.waiting {
                // Not even the next character fits below the cap: the stream is full.
                self.drop_pending();
            }
            return false;
        }
        self.pending.drain(..taken.consumed);
        self.emit_text(taken.text, out);
        true
    }

    fn drop_pending(&mut self) {
        self.dropped += self.pending.len() as u64;
        self.pending.clear();
        self.pending.shrink_to(self.chunk_max);
    }

    fn emit_text(&mut self, text: String, out: &mut Vec<OutputChunk>) {
        if text.is_empty() {
            return;
        }
        self.ends_with_newline = text.ends_with('\n');
        let offset = self.emitted;
        self.emitted += text.len() as u64;
        out.push(OutputChunk {
            stream: self.stream,
            offset,
            data: text,
        });
    }
}

/// The result of [`take_utf8`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub text: String,
    /// Input bytes the text covers.
    pub consumed: usize,
    /// Stopped at an incomplete character at the end of the input (more bytes may come).
    pub waiting: bool,
}

/// Convert a prefix of `bytes` to text of at most `budget` bytes, replacing each invalid
/// sequence with U+FFFD the way `String::from_utf8_lossy` does. Unless `last`, an incomplete
/// character at the very end is left for the next call, since its remaining bytes may still
/// arrive.
pub fn take_utf8(bytes: &[u8], budget: usize, last: bool) -> Taken {
    let mut text = String::with_capacity(budget.min(bytes.len()));
    let mut consumed = 0usize;
    let done = |text: String, consumed: usize, waiting: bool| Taken {
        text,
        consumed,
        waiting,
    };
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let room = budget - text.len();
        if valid.len() > room {
            let mut cut = room;
            while !valid.is_char_boundary(cut) {
                cut -= 1;
            }
            text.push_str(&valid[..cut]);
            consumed += cut;
            return done(text, consumed, false);
        }
        text.push_str(valid);
        consumed += valid.len();
        let invalid = chunk.invalid();
        if invalid.is_empty() {
            continue;
        }
        let at_end = consumed + invalid.len() == bytes.len();
        let incomplete = std::str::from_utf8(invalid)
            .err()
            .is_some_and(|e| e.error_len().is_none());
        if at_end && incomplete && !last {
            return done(text, consumed, true);
        }
        if text.len() + '\u{FFFD}'.len_utf8() > budget {
            return done(text, consumed, false);
        }
        text.push('\u{FFFD}');
        consumed += invalid.len();
    }
    done(text, consumed, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(chunks: &[OutputChunk]) -> String {
        chunks.iter().map(|c| c.data.as_str()).collect()
    }

    /// Offsets start at 0 and each chunk begins where the previous one ended.
    fn assert_contiguous(chunks: &[OutputChunk]) {
        let mut next = 0u64;
        for c in chunks {
            assert_eq!(c.offset, next, "chunk at {} after {next}", c.offset);
            assert!(!c.data.is_empty());
            next += c.data.len() as u64;
        }
    }

    #[test]
    fn take_utf8_cases() {
        // (input, budget, last) -> (text, consumed)
        let cases: &[(&[u8], usize, bool, &str, usize)] = &[
            (b"hello", 10, false, "hello", 5),
            (b"hello", 3, false, "hel", 3),
            ("hé".as_bytes(), 2, false, "h", 1),
            (b"h\xc3", 10, false, "h", 1),
            (b"h\xc3", 10, true, "h\u{FFFD}", 2),
            (b"a\xffb", 10, false, "a\u{FFFD}b", 3),
            (b"a\xffb", 3, false, "a", 1),
            (b"\xe2\x82", 10, false, "", 0),
            (b"\xe2\x82x", 10, false, "\u{FFFD}x", 3),
            (b"", 10, true, "", 0),
        ];
        for &(input, budget, last, text, consumed) in cases {
            let taken = take_utf8(input, budget, last);
            assert_eq!(
                (taken.text.as_str(), taken.consumed),
                (text, consumed),
                "{input:?} budget {budget} last {last}"
            );
        }
        assert!(take_utf8(b"ab\xe2\x82", 10, false).waiting);
        assert!(!take_utf8(b"ab\xe2\x82", 10, true).waiting);
    }

    #[test]
    fn a_character_split_across_reads_is_not_mangled() {
        let mut cap = StreamCapture::new(OutputStream::Stdout, 1024, 64);
        let mut out = Vec::new();
        let euro = "€".as_bytes();
        cap.push(&[b'x', euro[0]], &mut out);
        cap.flush(&mut out);
        cap.push(&euro[1..], &mut out);
        cap.flush(&mut out);
        let totals = cap.finish(&mut out);
        assert_eq!(joined(&out), "x€");
        assert_eq!(out.len(), 2);
        assert_contiguous(&out);
        assert_eq!(totals.written, 4);
        assert!(!totals.truncated);
    }

    #[test]
    fn chunks_respect_the_size_limit_and_stay_contiguous() {
        let mut cap = StreamCapture::new(OutputStream::Stderr, 1 << 20, 16);
        let mut out = Vec::new();
        let text = "αβγδ0123456789".repeat(20);
        for piece in text.as_bytes().chunks(7) {
            cap.push(piece, &mut out);
        }
        cap.finish(&mut out);
        assert_eq!(joined(&out), text);
        assert!(out.iter().all(|c| c.data.len() <= 16));
        assert!(out.iter().all(|c| c.stream == OutputStream::Stderr));
        assert_contiguous(&out);
        assert!(cap.high_water() <= 16 + 7);
    }

    #[test]
    fn beyond_the_cap_bytes_are_counted_and_a_marker_closes_the_stream() {
        let mut cap = StreamCapture::new(OutputStream::Stdout, 100, 32);
        let mut out = Vec::new();
        for _ in 0..1000 {
            cap.push(b"0123456789", &mut out);
        }
        let totals = cap.finish(&mut out);
        let text = joined(&out);
        assert_contiguous(&out);
        assert_eq!(totals.written, 10_000);
        assert!(totals.truncated);
        let kept = "0123456789".repeat(10);
        assert_eq!(
            text,
            format!("{kept}\n[capstan: output truncated: 9900 bytes dropped]\n")
        );
        assert_eq!(totals.emitted, text.len() as u64);
        assert!(cap.high_water() <= 32 + 10);
    }

    #[test]
    fn the_cap_cuts_at_a_character_boundary_and_counts_the_rest() {
        // 5 three-byte characters, cap 10: three fit (9 bytes), the 4th would cross the cap.
        let mut cap = StreamCapture::new(OutputStream::Stdout, 10, 64);
        let mut out = Vec::new();
        cap.push("€€€€€\n".as_bytes(), &mut out);
        let totals = cap.finish(&mut out);
        assert_eq!(
            joined(&out),
            "€€€\n[capstan: output truncated: 7 bytes dropped]\n"
        );
        assert_eq!(totals.written, 16);
        assert_contiguous(&out);
    }

    #[test]
    fn a_character_completing_just_below_the_cap_is_kept() {
        let mut cap = StreamCapture::new(OutputStream::Stdout, 10, 64);
        let mut out = Vec::new();
        let euro = "€".as_bytes();
        cap.push(b"abc", &mut out);
        cap.push(&euro[..1], &mut out);
        cap.flush(&mut out);
        cap.push(&euro[1..], &mut out);
        let totals = cap.finish(&mut out);
        assert_eq!(joined(&out), "abc€");
        assert!(!totals.truncated);
    }

    #[test]
    fn output_exactly_at_the_cap_is_not_truncated() {
        let mut cap = StreamCapture::new(OutputStream::Stdout, 10, 4);
        let mut out = Vec::new();
        cap.push(b"0123456789", &mut out);
        let totals = cap.finish(&mut out);
        assert_eq!(joined(&out), "0123456789");
        assert!(!totals.truncated);
    }

    #[test]
    fn headers_sit_on_their_own_lines() {
        let mut cap = StreamCapture::new(OutputStream::Stdout, 1024, 64);
        let mut out = Vec::new();
        cap.insert_line("== pre-script ==", &mut out);
        cap.push(b"no newline", &mut out);
        cap.insert_line("== action ==", &mut out);
        cap.push(b"done\n", &mut out);
        let totals = cap.finish(&mut out);
        assert_eq!(
            joined(&out),
            "== pre-script ==\nno newline\n== action ==\ndone\n"
        );
        // Only what the processes wrote counts as written.
        assert_eq!(totals.written, 15);
        assert_contiguous(&out);
    }

    #[test]
    fn invalid_utf8_is_replaced_per_sequence() {
        let mut cap = StreamCapture::new(OutputStream::Stdout, 1024, 64);
        let mut out = Vec::new();
        cap.push(b"ok \xff\xfe end \xc3", &mut out);
        cap.finish(&mut out);
        assert_eq!(joined(&out), "ok \u{FFFD}\u{FFFD} end \u{FFFD}");
    }
}
