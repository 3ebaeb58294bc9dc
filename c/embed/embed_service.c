/*
 * A C service that owns its libwebsockets context and loop (lws's own poll
 * loop) and serves one C protocol next to two Rust ones, as a service
 * adding Rust parts to an existing lws deployment would.
 *
 *   "c-echo"         written here in C
 *   "rust-echo"      lws::embed::EmbeddedProtocol (the safe API)
 *   "rust-raw-echo"  lws::raw::RawProtocol (the low-level layer)
 *
 * Clients choose with Sec-WebSocket-Protocol. Built by the root build.rs
 * against the same lws as the Rust crates and linked with the Rust side
 * (src/bin/lws-c-embed-service.rs), whose entries come through
 * c/embed/lws_rs_embed.h. The C side initialises OpenSSL (once, through lws);
 * the Rust side never does.
 *
 * usage: lws-c-embed-service [--port N]
 * Prints "listening on ws://127.0.0.1:PORT/" first; SIGINT/SIGTERM end it
 * (exit status 0 after lws_context_destroy).
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lws_rs_embed.h"

/* The C protocol's session: one message at a time, LWS_PRE headroom first. */
struct c_session {
	unsigned char *buf;
	size_t len, cap;
	int binary, ready;
};

static volatile sig_atomic_t stopping;
static struct lws_context *context;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
	if (context)
		lws_cancel_service(context);
}

static int c_echo(struct lws *wsi, enum lws_callback_reasons reason,
		  void *user, void *in, size_t len)
{
	struct c_session *s = user;

	switch (reason) {
	case LWS_CALLBACK_RECEIVE:
		if (s->ready)
			return -1; /* this client must wait for each echo */
		if (lws_is_first_fragment(wsi))
			s->len = 0;
		if (LWS_PRE + s->len + len > s->cap) {
			size_t cap = LWS_PRE + s->len + len;
			unsigned char *p = realloc(s->buf, cap);

			if (!p)
				return -1;
			s->buf = p;
			s->cap = cap;
		}
		memcpy(s->buf + LWS_PRE + s->len, in, len);
		s->len += len;
		s->binary = lws_frame_is_binary(wsi);
		if (lws_is_final_fragment(wsi) &&
		    !lws_remaining_packet_payload(wsi)) {
			s->ready = 1;
			lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!s->ready)
			break;
		s->ready = 0;
		if (lws_write(wsi, s->buf ? s->buf + LWS_PRE : NULL, s->len,
			      s->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
		    (int)s->len)
			return -1;
		break;
	case LWS_CALLBACK_CLOSED:
		free(s->buf);
		s->buf = NULL;
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

int main(int argc, char **argv)
{
	struct lws_protocols protocols[4];
	struct lws_context_creation_info info;
	const struct lws_protocols *rust, *raw;
	struct lws_vhost *vh;
	int port = 9002;

	if (argc == 3 && !strcmp(argv[1], "--port"))
		port = atoi(argv[2]);
	else if (argc != 1) {
		fprintf(stderr, "usage: lws-c-embed-service [--port N]\n");
		return 2;
	}

	rust = lws_rs_echo_protocol();
	raw = lws_rs_raw_echo_protocol();
	if (!rust || !raw) {
		fprintf(stderr, "lws-c-embed-service: no Rust protocols\n");
		return 1;
	}
	memset(protocols, 0, sizeof(protocols));
	/* the C protocol first: lws's vhost-wide callbacks go to it */
	protocols[0].name = "c-echo";
	protocols[0].callback = c_echo;
	protocols[0].per_session_data_size = sizeof(struct c_session);
	protocols[1] = *rust;
	protocols[2] = *raw;
	/* protocols[3] stays zero: the terminator */

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = port;
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	context = lws_create_context(&info);
	if (!context) {
		fprintf(stderr, "lws-c-embed-service: cannot listen on port %d\n",
			port);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	vh = lws_get_vhost_by_name(context, "default");
	printf("listening on ws://127.0.0.1:%d/\n",
	       vh ? lws_get_vhost_listen_port(vh) : port);
	fflush(stdout);

	while (!stopping && lws_service(context, 0) >= 0)
		;
	lws_context_destroy(context);
	return 0;
}
