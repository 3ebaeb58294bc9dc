//! Several small queued frames as one raw write.
//!
//! Each `lws_write` is one send(), and with pipelined small messages the
//! kernel's loopback path per send is most of the cost (lws-notes: one
//! write per message keeps a server at a fifth of tokio-tungstenite's
//! rate). When no extension is active on a connection, frames are plain
//! RFC 6455 framing, so we frame small messages ourselves, put them one
//! after another in one buffer and hand lws that buffer as
//! `LWS_WRITE_RAW`: one send() carries a whole batch. lws copies what the
//! kernel does not take into its own buffer, so the batch buffer is reused
//! at once. Large frames are not copied: they still go out one
//! `lws_write` each, from the headroom they were queued with.

use crate::connection::Frame;
use lws_sys as sys;
use std::cell::RefCell;

/// Frames with more payload than this are written on their own, uncopied.
pub(crate) const FRAME_MAX: usize = 16 * 1024;

/// Upper bound of one batch (frame headers included).
pub(crate) const BATCH_MAX: usize = 64 * 1024;

/// At most this many frames per batch (a client draws one masking key each).
pub(crate) const FRAMES_MAX: usize = 256;

/// Largest RFC 6455 header: 2 bytes, 8 of extended length, 4 of mask.
const HEADER_MAX: usize = 14;

/// The opcode and FIN bit of a queued frame, if it is one we may frame
/// ourselves: text, binary, continuation, ping, pong. (Raw frames the
/// deflate code built are already framed; close goes through lws.)
pub(crate) fn first_byte(frame: &Frame) -> Option<u8> {
    let opcode = match frame.kind & 0x1f {
        sys::LWS_WRITE_TEXT => 0x1,
        sys::LWS_WRITE_BINARY => 0x2,
        sys::LWS_WRITE_CONTINUATION => 0x0,
        sys::LWS_WRITE_PING => 0x9,
        sys::LWS_WRITE_PONG => 0xa,
        _ => return None,
    };
    let fin = if frame.kind & sys::LWS_WRITE_NO_FIN != 0 {
        0
    } else {
        0x80
    };
    Some(fin | opcode)
}

/// True if `frame` can join a batch whose encoded size is `so_far`.
pub(crate) fn fits(frame: &Frame, so_far: usize) -> bool {
    frame.payload <= FRAME_MAX
        && so_far + HEADER_MAX + frame.payload <= BATCH_MAX
        && first_byte(frame).is_some()
}

/// How many frames at the front of `queue` make one batch (0 or 1: write
/// the front frame on its own).
pub(crate) fn leading<'a>(queue: impl IntoIterator<Item = &'a Frame>) -> usize {
    let mut size = 0;
    let mut n = 0;
    for frame in queue.into_iter().take(FRAMES_MAX) {
        if !fits(frame, size) {
            break;
        }
        size += HEADER_MAX + frame.payload;
        n += 1;
    }
    n
}

/// Appends `frame` to `out`, framed (RFC 6455 section 5.2), masked with
/// `mask` when given (a client's frames).
pub(crate) fn encode(out: &mut Vec<u8>, frame: &Frame, mask: Option<[u8; 4]>) {
    let first = first_byte(frame).expect("encode is only given frames that fit");
    put_frame(out, first, &frame.buf[sys::LWS_PRE..], mask);
}

/// Appends one frame: `first` (FIN, RSV, opcode), the length, then
/// `payload`, masked with `mask` when given.
pub(crate) fn put_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(first);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= 0xffff => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend_from_slice(payload);
            apply_mask(&mut out[start + 4..], key);
        }
        None => out.extend_from_slice(payload),
    }
}

/// XORs `data` with the repeating 4-byte `key`, a word at a time.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// Keys read from lws's random source per refill of [`MaskKeys`].
const POOL_KEYS: usize = 64;

/// Masking keys for the frames a client sends, from lws's random source
/// (the kernel's), read 64 keys at a time: a read per batch or per
/// uncompressed deflate frame was a syscall per message on a busy client.
pub(crate) struct MaskKeys(RefCell<KeyPool>);

struct KeyPool {
    keys: [[u8; 4]; POOL_KEYS],
    /// Keys from here to `end` are unused.
    next: usize,
    end: usize,
}

impl Default for MaskKeys {
    fn default() -> MaskKeys {
        MaskKeys(RefCell::new(KeyPool {
            keys: [[0; 4]; POOL_KEYS],
            next: 0,
            end: 0,
        }))
    }
}

impl MaskKeys {
    /// Fills `keys` with fresh keys, each used once.
    pub(crate) fn fill(&self, cx: *mut sys::lws_context, keys: &mut [[u8; 4]]) {
        let mut pool = self.0.borrow_mut();
        for key in keys {
            if pool.next == pool.end {
                // SAFETY: cx is the live context; the pool holds exactly
                // 4 * POOL_KEYS writable bytes.
                let n = unsafe {
                    sys::lws_get_random(
                        cx,
                        pool.keys.as_mut_ptr() as *mut libc::c_void,
                        4 * POOL_KEYS,
                    )
                };
                pool.next = 0;
                pool.end = n / 4;
                if pool.end == 0 {
                    // The kernel's random source failed to read, which
                    // does not happen in practice: the frame still goes
                    // out, valid, with an all-zero key (as it did before
                    // the pool, which ignored the read's result).
                    *key = [0; 4];
                    continue;
                }
            }
            *key = pool.keys[pool.next];
            pool.next += 1;
        }
    }

    /// One fresh key.
    pub(crate) fn one(&self, cx: *mut sys::lws_context) -> [u8; 4] {
        let mut key = [[0u8; 4]];
        self.fill(cx, &mut key);
        key[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8], kind: sys::lws_write_protocol) -> Frame {
        Frame::new(&Default::default(), payload, kind)
    }

    #[test]
    fn mask_keys_are_fresh_across_refills() {
        let cx = crate::Context::new(crate::ContextOptions::default()).expect("context");
        let raw = cx.shared.raw.get();
        let pool = MaskKeys::default();
        let mut keys = [[0u8; 4]; 3 * POOL_KEYS + 5];
        pool.fill(raw, &mut keys[..7]);
        pool.fill(raw, &mut keys[7..]);
        // 197 random 32-bit keys: a repeat is a reused pool slot, not chance
        // (odds about 1 in 200,000).
        let mut seen = std::collections::HashSet::new();
        assert!(keys.iter().all(|k| seen.insert(*k)), "a key came twice");
    }

    #[test]
    fn frames_follow_rfc6455_framing() {
        let mut out = Vec::new();
        encode(&mut out, &frame(b"hi", sys::LWS_WRITE_TEXT), None);
        assert_eq!(out, [0x81, 2, b'h', b'i']);

        out.clear();
        encode(&mut out, &frame(&[7; 300], sys::LWS_WRITE_BINARY), None);
        assert_eq!(&out[..4], &[0x82, 126, 1, 44]);
        assert_eq!(out.len(), 4 + 300);

        out.clear();
        encode(&mut out, &frame(&[1; 70000], sys::LWS_WRITE_BINARY), None);
        assert_eq!(&out[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn fragments_and_controls_keep_their_opcode_and_fin() {
        let start = sys::lws_write_ws_flags(sys::LWS_WRITE_BINARY as i32, true, false);
        let middle = sys::lws_write_ws_flags(sys::LWS_WRITE_BINARY as i32, false, false);
        let last = sys::lws_write_ws_flags(sys::LWS_WRITE_BINARY as i32, false, true);
        let byte = |kind: i32| first_byte(&frame(b"", kind as sys::lws_write_protocol));
        assert_eq!(byte(start), Some(0x02));
        assert_eq!(byte(middle), Some(0x00));
        assert_eq!(byte(last), Some(0x80));
        assert_eq!(byte(sys::LWS_WRITE_PING as i32), Some(0x89));
        assert_eq!(byte(sys::LWS_WRITE_PONG as i32), Some(0x8a));
        assert_eq!(byte(sys::LWS_WRITE_HTTP as i32), None);
    }

    #[test]
    fn client_frames_are_masked_with_their_key() {
        let mut out = Vec::new();
        let payload = b"abcdefghij";
        let key = [1, 2, 3, 4];
        encode(&mut out, &frame(payload, sys::LWS_WRITE_TEXT), Some(key));
        assert_eq!(&out[..6], &[0x81, 0x80 | 10, 1, 2, 3, 4]);
        let unmasked: Vec<u8> = out[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, payload);
    }

    #[test]
    fn only_small_frames_join_a_batch() {
        let small = frame(&[0; 100], sys::LWS_WRITE_BINARY);
        let big = frame(&vec![0; FRAME_MAX + 1], sys::LWS_WRITE_BINARY);
        assert!(fits(&small, 0));
        assert!(!fits(&big, 0));
        assert!(!fits(&small, BATCH_MAX - 100));
        let raw = Frame::raw(vec![0; sys::LWS_PRE + 4], 2);
        assert!(!fits(&raw, 0));
        let queue = [
            small,
            frame(b"x", sys::LWS_WRITE_TEXT),
            big,
            frame(b"y", sys::LWS_WRITE_TEXT),
        ];
        assert_eq!(leading(&queue), 2);
        assert_eq!(leading(&queue[2..]), 0);
        let many: Vec<Frame> = (0..FRAMES_MAX + 5)
            .map(|_| frame(b"z", sys::LWS_WRITE_TEXT))
            .collect();
        assert_eq!(leading(&many), FRAMES_MAX);
    }
}
