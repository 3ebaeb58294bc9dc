/*
 * Plain-C reference latency client on libwebsockets' own poll loop, built
 * by the root build.rs against the same lws as the Rust crates: the C
 * counterpart of examples/latency.rs, so a client-side comparison runs on
 * one library too.
 *
 * usage: lws-c-latency [--host ADDR] --port N [--size BYTES] [--count N]
 *        [--warmup N]
 * One connection, one binary message in flight; every echo checked byte
 * for byte. Prints one "RESULT name=c-lws-client mode=rtt ..." line; exit
 * 0 when every echo came back intact, 1 otherwise, 2 for bad arguments.
 */
#include <libwebsockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t size = 64, count = 10000, warmup = 1000;
static size_t sent, received, got; /* got: bytes of the current echo */
static unsigned char *out, *echo, *want; /* lws masks out in place */
static uint64_t *samples, started;
static int done, failed, mismatches;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Message i: its sequence number, then a pattern derived from it. */
static void fill(unsigned char *p, size_t i)
{
	size_t j;

	for (j = 0; j < size; j++)
		p[j] = (unsigned char)((i * 31 + j) % 251);
	if (size >= sizeof(i))
		memcpy(p, &i, sizeof(i));
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	(void)user;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		/* lws also calls this unasked once a buffered write drained */
		if (sent != received)
			break;
		fill(out + LWS_PRE, sent);
		memcpy(want, out + LWS_PRE, size);
		started = now_ns();
		if (lws_write(wsi, out + LWS_PRE, size, LWS_WRITE_BINARY) < (int)size)
			return -1;
		sent++;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (got + len > size) {
			mismatches++;
			return -1;
		}
		memcpy(echo + got, in, len);
		got += len;
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
			break;
		if (received >= warmup)
			samples[received - warmup] = now_ns() - started;
		if (got != size || memcmp(echo, want, size))
			mismatches++;
		got = 0;
		if (++received == warmup + count) {
			done = 1;
			return -1;
		}
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		fprintf(stderr, "lws-c-latency: connect failed: %s\n",
			in ? (const char *)in : "?");
		failed = 1;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (!done)
			failed = 1;
		break;
	default:
		break;
	}
	return 0;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(double q)
{
	size_t i = (size_t)(q * (double)(count - 1) + 0.5);

	return (double)samples[i] / 1e3;
}

int main(int argc, char **argv)
{
	struct lws_protocols protocols[] = {
		{ "latency", callback, 0, 0, 0, NULL, 1 << 20 },
		LWS_PROTOCOL_LIST_TERM
	};
	struct lws_context_creation_info info;
	struct lws_client_connect_info cc;
	struct lws_context *context;
	const char *host = "127.0.0.1";
	uint64_t total = 0;
	int i, port = 0;
	size_t k;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--host"))
			host = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--size"))
			size = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--count"))
			count = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--warmup"))
			warmup = (size_t)atol(argv[i + 1]);
		else
			break;
	}
	if (i != argc || port <= 0 || !size || !count) {
		fprintf(stderr, "usage: lws-c-latency [--host ADDR] --port N "
				"[--size BYTES] [--count N] [--warmup N]\n");
		return 2;
	}
	out = malloc(LWS_PRE + size);
	echo = malloc(size);
	want = malloc(size);
	samples = calloc(count, sizeof(*samples));
	if (!out || !echo || !want || !samples)
		return 1;

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	context = lws_create_context(&info);
	if (!context)
		return 1;
	memset(&cc, 0, sizeof(cc));
	cc.context = context;
	cc.address = host;
	cc.port = port;
	cc.path = "/";
	cc.host = host;
	cc.origin = host;
	cc.protocol = NULL;
	cc.local_protocol_name = "latency";
	if (!lws_client_connect_via_info(&cc))
		failed = 1;
	while (!done && !failed && lws_service(context, 0) >= 0)
		;
	lws_context_destroy(context);

	if (done) {
		qsort(samples, count, sizeof(*samples), cmp);
		for (k = 0; k < count; k++)
			total += samples[k];
	}
	printf("RESULT name=c-lws-client mode=rtt kind=binary size=%zu n=%zu "
	       "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
	       "msgs_per_s=%.0f mismatches=%d status=%s\n",
	       size, done ? count : 0, done ? pct_us(0.5) : 0,
	       done ? pct_us(0.9) : 0, done ? pct_us(0.99) : 0,
	       done ? pct_us(0.999) : 0, done ? pct_us(1.0) : 0,
	       total ? (double)count * 1e9 / (double)total : 0, mismatches,
	       done && !mismatches ? "ok" : "FAIL");
	free(out);
	free(echo);
	free(want);
	free(samples);
	return done && !mismatches ? 0 : 1;
}
