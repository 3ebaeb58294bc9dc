/*
 * What the Rust side of c/embed/embed_service.c exports (src/bin/lws-c-embed-service.rs).
 *
 * Each function returns a `struct lws_protocols` entry made by the Rust crate
 * `lws` (lws::embed::EmbeddedProtocol or lws::raw::RawProtocol). Copy the
 * entry into your protocol list before lws_create_context / lws_create_vhost;
 * the memory it points to stays valid for the rest of the process.
 *
 * Call them on the thread that will run the context's service loop: the
 * Rust protocol refuses callbacks from any other thread.
 *
 * Neither function touches OpenSSL or lws's log hook: the C side owns both.
 */
#ifndef LWS_RS_EMBED_H
#define LWS_RS_EMBED_H

#include <libwebsockets.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "rust-echo": the safe API (lws::Callbacks): reassembled messages echoed
 * through the send queue; "close:CODE:REASON" closes with that code and
 * reason; "panic" panics inside the callback (caught: nothing unwinds into
 * C and the connection goes on). NULL if it cannot be made. */
const struct lws_protocols *lws_rs_echo_protocol(void);

/* "rust-raw-echo": the low-level layer (lws::raw), written like a C
 * callback switch; "panic" panics (caught; that connection is closed). */
const struct lws_protocols *lws_rs_raw_echo_protocol(void);

#ifdef __cplusplus
}
#endif

#endif
