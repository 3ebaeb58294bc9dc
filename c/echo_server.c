/*
 * Plain-C reference echo server on libwebsockets' own poll loop, built by
 * the root build.rs against the same lws as the Rust crates. It is the
 * baseline our benchmarks compare examples/echo_server with: what a
 * competent C user writes by lws's documented rule, one lws_write per
 * WRITEABLE (`--batch`: several per WRITEABLE while lws buffers nothing).
 *
 * usage: lws-c-echo-server [--host ADDR] [--port N] [--batch]
 *        [--rx-buffer BYTES] [--tls-cert FILE --tls-key FILE]
 * Prints "listening on ws://HOST:PORT/" first; SIGINT/SIGTERM end it.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One whole message waiting to be echoed, LWS_PRE headroom first. */
struct msg {
	struct msg *next;
	size_t len;
	int binary;
	unsigned char buf[];
};

struct session {
	struct msg *head, *tail; /* echo queue, oldest first */
	unsigned char *rx;       /* message being reassembled */
	size_t rx_len, rx_cap;
};

static volatile sig_atomic_t stopping;
static struct lws_context *context;
static int batch;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
	if (context)
		lws_cancel_service(context);
}

/* Appends in..len to the reassembly buffer; -1 when out of memory. */
static int rx_append(struct session *s, const void *in, size_t len)
{
	if (s->rx_len + len > s->rx_cap) {
		size_t cap = s->rx_cap ? s->rx_cap : 4096;
		unsigned char *p;

		while (cap < s->rx_len + len)
			cap *= 2;
		p = realloc(s->rx, cap);
		if (!p)
			return -1;
		s->rx = p;
		s->rx_cap = cap;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += len;
	return 0;
}

static int enqueue(struct session *s, const void *data, size_t len, int binary)
{
	struct msg *m = malloc(sizeof(*m) + LWS_PRE + len);

	if (!m)
		return -1;
	m->next = NULL;
	m->len = len;
	m->binary = binary;
	if (len)
		memcpy(m->buf + LWS_PRE, data, len);
	if (s->tail)
		s->tail->next = m;
	else
		s->head = m;
	s->tail = m;
	return 0;
}

static void free_session(struct session *s)
{
	while (s->head) {
		struct msg *m = s->head;

		s->head = m->next;
		free(m);
	}
	s->tail = NULL;
	free(s->rx);
	s->rx = NULL;
	s->rx_len = s->rx_cap = 0;
}

/* Writes the oldest queued message; 1 if one was written, -1 on error. */
static int write_one(struct lws *wsi, struct session *s)
{
	struct msg *m = s->head;
	int n;

	if (!m)
		return 0;
	n = lws_write(wsi, m->buf + LWS_PRE, m->len,
		      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
	if (n < (int)m->len)
		return -1;
	s->head = m->next;
	if (!s->head)
		s->tail = NULL;
	free(m);
	return 1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct session *s = user;
	int n;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(s, 0, sizeof(*s));
		break;
	case LWS_CALLBACK_RECEIVE:
		if (lws_is_first_fragment(wsi))
			s->rx_len = 0;
		if (lws_is_final_fragment(wsi) &&
		    !lws_remaining_packet_payload(wsi) && !s->rx_len) {
			/* a whole message in one piece: no reassembly copy */
			if (enqueue(s, in, len, lws_frame_is_binary(wsi)))
				return -1;
		} else {
			if (rx_append(s, in, len))
				return -1;
			if (!lws_is_final_fragment(wsi) ||
			    lws_remaining_packet_payload(wsi))
				break;
			if (enqueue(s, s->rx, s->rx_len,
				    lws_frame_is_binary(wsi)))
				return -1;
			s->rx_len = 0;
		}
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		do {
			n = write_one(wsi, s);
			if (n < 0)
				return -1;
		} while (batch && n && !lws_partial_buffered(wsi));
		if (s->head)
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLOSED:
		free_session(s);
		break;
	default:
		break;
	}
	return 0;
}

static const char *value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "lws-c-echo-server: %s needs a value\n", argv[*i]);
		exit(2);
	}
	return argv[++*i];
}

int main(int argc, char **argv)
{
	struct lws_protocols protocols[] = {
		{ "echo", callback, sizeof(struct session), 0, 0, NULL, 0 },
		LWS_PROTOCOL_LIST_TERM
	};
	struct lws_context_creation_info info;
	const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
	struct lws_vhost *vh;
	int i, port = 9001;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--batch"))
			batch = 1;
		else if (!strcmp(argv[i], "--host"))
			host = value(argc, argv, &i);
		else if (!strcmp(argv[i], "--port"))
			port = atoi(value(argc, argv, &i));
		else if (!strcmp(argv[i], "--rx-buffer"))
			protocols[0].rx_buffer_size =
				(size_t)atol(value(argc, argv, &i));
		else if (!strcmp(argv[i], "--tls-cert"))
			cert = value(argc, argv, &i);
		else if (!strcmp(argv[i], "--tls-key"))
			key = value(argc, argv, &i);
		else {
			fprintf(stderr, "lws-c-echo-server: unexpected %s\n",
				argv[i]);
			return 2;
		}
	}
	if (!cert != !key) {
		fprintf(stderr, "lws-c-echo-server: --tls-cert and --tls-key go together\n");
		return 2;
	}
	/* as examples/echo_server: one send per message, not 4 KiB pieces */
	protocols[0].tx_packet_size = 1 << 20;

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = port;
	info.iface = host;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = cert;
		info.ssl_private_key_filepath = key;
	}
	context = lws_create_context(&info);
	if (!context) {
		fprintf(stderr, "lws-c-echo-server: cannot listen on %s:%d\n",
			host, port);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	vh = lws_get_vhost_by_name(context, "default");
	printf("listening on %s://%s:%d/\n", cert ? "wss" : "ws", host,
	       vh ? lws_get_vhost_listen_port(vh) : port);
	fflush(stdout);

	while (!stopping && lws_service(context, 0) >= 0)
		;
	lws_context_destroy(context);
	return 0;
}
