//! permessage-deflate (RFC 7692) through lws's extension, with the
//! corrections lws 4.3.5 needs, and our own uncompressed frames for
//! messages under the threshold.
//!
//! What lws does and does not do, and what we do about it:
//! - A server vhost with the extension accepts it whenever a client offers
//!   it; we decide per connection at `LWS_CALLBACK_CONFIRM_EXTENSION_OKAY`
//!   from the listener's current settings, so every listener carries the
//!   extension and `configure_listener` can switch it.
//! - lws's server resets the wrong zlib stream for the no-context-takeover
//!   parameters (the inflater for `server_no_context_takeover`, the
//!   deflater for `client_no_context_takeover`): [`configure`] sets the
//!   arguments so each stream does what was negotiated.
//! - lws's server inflates with `server_max_window_bits`, so it must stay
//!   15 on a server (clients compress with up to 15).
//! - lws compresses every data message. Messages under
//!   [`Deflate::threshold`] go out as frames we build (RSV1 clear), which a
//!   peer decodes as uncompressed; they do not touch the compressor.
//! - zlib reads the payload after `lws_write` returns while lws drains a
//!   message over several writes: callback.rs keeps the frame alive until
//!   the next WRITEABLE and writes no more data frames in that callback.
//! - lws compresses an empty message that follows another to zero bytes
//!   (zlib has nothing to flush; a compressed empty message is the one
//!   byte 00), which no inflater reads, and sends an empty first fragment
//!   uncompressed with the rest of its message compressed: connection.rs
//!   sends empty messages as our own frames whatever the threshold, and
//!   does not send empty fragments that do not end their message.
//! - lws sends each fill of its compression buffer (1 KiB) as a frame,
//!   whatever `max_frame_size`: [`configure`] shrinks the buffer to fit.
//!   (Received compressed frames are checked against `max_frame_size` only
//!   roughly: lws reports what is left of a frame, not its length, and has
//!   already consumed what it read of it.)

use crate::Deflate;
use lws_sys as sys;
use std::ffi::{CStr, CString};

/// `Sync` wrapper for an extension table lws reads.
pub(crate) struct Extensions(pub(crate) [sys::lws_extension; 2]);
// SAFETY: an immutable table of static strings and a function pointer, or
// (for client tables) strings the context keeps alive as long as the table.
unsafe impl Sync for Extensions {}
// SAFETY: as above; moved only before lws sees it.
unsafe impl Send for Extensions {}

const NAME: &CStr = c"permessage-deflate";

const END: sys::lws_extension = sys::lws_extension {
    name: std::ptr::null(),
    callback: None,
    client_offer: std::ptr::null(),
};

/// The table every listener's vhost carries (the offer string is unused on
/// servers).
pub(crate) static SERVER: Extensions = Extensions([
    sys::lws_extension {
        name: NAME.as_ptr(),
        callback: Some(sys::lws_extension_callback_pm_deflate),
        client_offer: c"permessage-deflate; client_max_window_bits".as_ptr(),
    },
    END,
]);

/// What a client offers for `d`.
pub(crate) fn client_offer(d: &Deflate) -> String {
    let mut offer = String::from("permessage-deflate");
    if d.client_max_window_bits < 15 {
        offer.push_str(&format!(
            "; client_max_window_bits={}",
            d.client_max_window_bits.clamp(9, 15)
        ));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    if d.server_max_window_bits < 15 {
        offer.push_str(&format!(
            "; server_max_window_bits={}",
            d.server_max_window_bits.clamp(9, 15)
        ));
    }
    if d.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if d.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    offer
}

/// A client vhost's table offering `offer` (kept alive by the caller).
pub(crate) fn client_table(offer: &CString) -> Box<Extensions> {
    Box::new(Extensions([
        sys::lws_extension {
            name: NAME.as_ptr(),
            callback: Some(sys::lws_extension_callback_pm_deflate),
            client_offer: offer.as_ptr(),
        },
        END,
    ]))
}

/// Sets one of the extension's options on `wsi`; false if the extension is
/// not active there.
fn set(wsi: *mut sys::lws, name: &CStr, value: &str) -> bool {
    let Ok(value) = CString::new(value) else {
        return false;
    };
    // SAFETY: wsi is live (callers are in its ESTABLISHED callback); the
    // option names passed are ones lws's extension knows (an unknown one
    // would make it read past its table).
    unsafe { sys::lws_set_extension_option(wsi, NAME.as_ptr(), name.as_ptr(), value.as_ptr()) == 0 }
}

/// Just after the handshake: applies `d` to the extension on `wsi` and
/// says whether it is active. `offer` is what a server's client offered;
/// `max_frame_size` the connection's limit on frames (0: none).
pub(crate) fn configure(
    wsi: *mut sys::lws,
    d: &Deflate,
    server: bool,
    offer: Option<&str>,
    max_frame_size: usize,
) -> bool {
    if !set(wsi, c"compression_level", &d.level.clamp(1, 9).to_string()) {
        return false;
    }
    if let Some(bits) = tx_buf_bits(max_frame_size) {
        set(wsi, c"tx_buf_size", &bits.to_string());
    }
    if server {
        // lws's server resets its inflater for server_no_context_takeover
        // and its deflater for client_no_context_takeover: the inflater
        // never needs to (a peer that resets its compressor still sends a
        // stream any inflater decodes); the deflater must when the client
        // asked for server_no_context_takeover (lws agreed to it in its
        // answer), and may when we want the memory back.
        let asked = offer.is_some_and(|o| {
            o.split([';', ','])
                .any(|t| t.trim() == "server_no_context_takeover")
        });
        let reset_tx = d.server_no_context_takeover || asked;
        set(wsi, c"server_no_context_takeover", "0");
        set(
            wsi,
            c"client_no_context_takeover",
            if reset_tx { "1" } else { "0" },
        );
    }
    true
}

/// lws sends each fill of its 2^tx_buf_size-byte compression buffer
/// (default 2^10) as one frame: the largest power of two within
/// `max_frame_size` keeps compressed frames within it. Not under 2^4:
/// zlib needs room to finish a sync flush (a `max_frame_size` under 16
/// still lets compressed frames carry 16 bytes). None: the default fits.
fn tx_buf_bits(max_frame_size: usize) -> Option<u32> {
    if max_frame_size == 0 || max_frame_size >= 1 << 10 {
        return None;
    }
    Some(max_frame_size.ilog2().max(4))
}

/// The bytes of an unmasked (server) or masked (client) frame carrying
/// `payload` uncompressed, after LWS_PRE bytes of headroom, for
/// `lws_write(LWS_WRITE_RAW)`.
pub(crate) fn raw_frame(payload: &[u8], binary: bool, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(sys::LWS_PRE + 14 + payload.len());
    buf.resize(sys::LWS_PRE, 0);
    // FIN, RSV1 clear: lws's compressor never sees this frame.
    let first = 0x80 | if binary { 0x2 } else { 0x1 };
    crate::batch::put_frame(&mut buf, first, payload, mask);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_follow_rfc6455_framing() {
        let f = raw_frame(b"hi", false, None);
        assert_eq!(&f[sys::LWS_PRE..], &[0x81, 2, b'h', b'i']);
        let f = raw_frame(&[7; 300], true, None);
        assert_eq!(&f[sys::LWS_PRE..sys::LWS_PRE + 4], &[0x82, 126, 1, 44]);
        let f = raw_frame(b"abcd", false, Some([1, 2, 3, 4]));
        assert_eq!(
            &f[sys::LWS_PRE..],
            &[
                0x81,
                0x84,
                1,
                2,
                3,
                4,
                b'a' ^ 1,
                b'b' ^ 2,
                b'c' ^ 3,
                b'd' ^ 4
            ]
        );
    }

    #[test]
    fn compressed_frames_fit_max_frame_size() {
        assert_eq!(tx_buf_bits(0), None);
        assert_eq!(tx_buf_bits(1024), None);
        assert_eq!(tx_buf_bits(1 << 20), None);
        assert_eq!(tx_buf_bits(1023), Some(9));
        assert_eq!(tx_buf_bits(1000), Some(9));
        assert_eq!(tx_buf_bits(512), Some(9));
        assert_eq!(tx_buf_bits(100), Some(6));
        assert_eq!(tx_buf_bits(3), Some(4));
    }

    #[test]
    fn client_offers_name_what_differs_from_the_defaults() {
        assert_eq!(
            client_offer(&Deflate::default()),
            "permessage-deflate; client_max_window_bits"
        );
        let d = Deflate {
            server_max_window_bits: 10,
            client_no_context_takeover: true,
            ..Deflate::default()
        };
        assert_eq!(
            client_offer(&d),
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10; client_no_context_takeover"
        );
    }
}
