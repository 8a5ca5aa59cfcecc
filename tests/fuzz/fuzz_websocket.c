/*
 * fuzz_websocket.c — what a WebSocket client sends: its bytes after the handshake, through
 * wslay, the frame tracker (ws_input_track) and the client-message handling of
 * realtime/websocket.c (auth, subscribe, unsubscribe, ping, anything else).
 *
 * The first input byte sets the scene: bit 0, the socket was authenticated at the upgrade
 * (bearer header); bit 1, an `auth` message's token is good; bits 2-3, what a subscribe finds
 * (0/1 the project, 2 no such project, 3 the database away); bit 4, the upgrade's ?ticket= was
 * refused (an unauthenticated socket that sends its error and closes). Messages may carry an
 * `id` the answers echo. The rest is the client's byte stream (frames must be masked, as
 * RFC 6455 requires of clients).
 *
 * The connection is a real struct ws adopted by a hub that has no thread: its bytes come as
 * the "extra" bytes read with the handshake, its answers go to one end of a socketpair, and
 * its jobs (token checks, subscribes: worker_post is wrapped with -Wl,--wrap) are answered
 * here, in order, one at a time, as the worker would. Then the same bytes go through
 * ws_input_track, whole and in pieces whose sizes the input also picks: where the tracker
 * stands must be where a reading of the whole buffer by RFC 6455 5.2 says, whatever the cuts,
 * and its header buffer never overflows.
 */
#include "fuzz.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "realtime/hub_internal.h"

#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char USER[] = "01900000-0000-7000-8000-000000000003";

static struct hub hub;
static struct job *pending; /* the job the hub handed to its "worker" */
static uint8_t scene;

void __wrap_worker_post(struct hub *h, struct job *j);
void __wrap_worker_post(struct hub *h, struct job *j)
{
	(void)h;
	FUZZ_CHECK(pending == NULL); /* one job at a time per connection */
	pending = j;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_OFF);
	pthread_mutex_init(&hub.lock, NULL);
	hub.lim = (struct hub_limits){.max_message = 65536,
				      .max_queue = 1 << 20,
				      .max_subscriptions = 4,
				      .ping_interval_s = 30,
				      .idle_timeout_s = 90,
				      .auth_timeout_s = 10,
				      .sse_heartbeat_s = 15,
				      .max_sockets = 16,
				      .msg_rate = 20,
				      .msg_burst = 100};
	hub.max_sockets = 16;
	hub.epfd = epoll_create1(EPOLL_CLOEXEC);
	hub.evfd = -1;
	return 0;
}

/* Answer the job out as the worker would. */
static void answer(void)
{
	struct job *j = pending;
	pending = NULL;
	switch (j->kind) {
	case JOB_AUTH:
		FUZZ_CHECK(j->token != NULL);
		j->rc = scene & 2 ? 0 : -ERR_UNAUTHENTICATED;
		if (j->rc == 0) {
			memcpy(j->user_id, USER, UUID_STR_LEN);
			j->exp_ms = time_now_ms() + 3600 * 1000;
		}
		break;
	case JOB_SUBSCRIBE:
		FUZZ_CHECK(uuid_valid(j->project_id) && !strcmp(j->user_id, USER));
		FUZZ_CHECK(!j->has_after || j->after >= 0);
		FUZZ_CHECK(j->token != NULL); /* checked again on every subscribe */
		j->auth_rc = 0;
		switch ((scene >> 2) & 3) {
		case 2:
			j->rc = -ERR_NOT_FOUND;
			break;
		case 3:
			j->rc = -ERR_UNAVAILABLE;
			break;
		default:
			j->rc = 0;
			j->seq = 42;
		}
		break;
	case JOB_FETCH:
		FUZZ_CHECK(!"a WebSocket message started a catch-up job");
		break;
	case JOB_RECHECK:
		FUZZ_CHECK(!"a WebSocket message started a revocation re-check");
		break;
	}
	ws_job_done(&hub, j);
}

static void connection(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	struct adopt ad = {.fd = sv[0], .extra = NULL, .extra_len = size};
	if (size) {
		ad.extra = malloc(size);
		memcpy(ad.extra, data, size);
	}
	if (scene & 1) {
		memcpy(ad.user_id, USER, UUID_STR_LEN);
		ad.tok.token = strdup("header.token.sig"); /* moved to the connection */
		ad.tok.exp_ms = time_now_ms() + 3600 * 1000;
	} else if (scene & 16) {
		ad.ticket_refused = true;
	}
	ws_adopt(&hub, &ad);
	/* The hub's loop, for this one connection: answer its jobs, let it read what is left. */
	for (int turn = 0; turn < 10000; turn++) {
		if (pending) {
			answer();
			continue;
		}
		struct ws *w = hub.sockets;
		if (!w || !w->extra)
			break;
		ws_on_ready(&hub, w, EPOLLIN);
	}
	FUZZ_CHECK(!pending);
	if (hub.sockets) {
		FUZZ_CHECK(hub.sockets->in.head_len < sizeof(hub.sockets->in.head));
		FUZZ_CHECK(hub.sockets->nsubs <= hub.lim.max_subscriptions);
		ws_destroy(&hub, hub.sockets);
		if (pending)
			answer(); /* frees the orphan */
	}
	FUZZ_CHECK(hub.nsockets == 0 && !hub.sockets);
	pthread_mutex_lock(&hub.lock);
	topics_prune(&hub);
	pthread_mutex_unlock(&hub.lock);
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		FUZZ_CHECK(hub.topics[b] == NULL);
	close(sv[1]);
}

/*
 * The oracle: where RFC 6455 5.2 says the stream stands after `n` bytes, read as a whole
 * (offsets into the buffer, where the tracker keeps a running state).
 */
static void reference(const uint8_t *p, size_t n, struct ws_input *out)
{
	size_t off = 0;
	memset(out, 0, sizeof(*out));
	while (off < n) {
		size_t avail = n - off;
		unsigned len7 = avail >= 2 ? p[off + 1] & 0x7fu : 0;
		size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
		size_t head = avail >= 2 ? 2 + ext + (p[off + 1] & 0x80u ? 4 : 0) : 2;
		if (avail < head) {
			out->head_len = (uint8_t)avail;
			memcpy(out->head, p + off, avail);
			return;
		}
		uint64_t len = len7;
		if (ext) {
			len = 0;
			for (size_t i = 0; i < ext; i++)
				len = len << 8 | p[off + 2 + i];
		}
		if ((p[off] & 0x0fu) < 0x8)
			out->fragmented = !(p[off] & 0x80u);
		off += head;
		if (len > n - off) {
			out->payload = len - (n - off);
			return;
		}
		off += (size_t)len;
	}
}

static void tracker(const uint8_t *cuts, size_t ncuts, const uint8_t *data, size_t size)
{
	struct ws_input ref;
	reference(data, size, &ref);
	struct ws_input whole, pieces;
	memset(&whole, 0, sizeof(whole));
	memset(&pieces, 0, sizeof(pieces));
	ws_input_track(&whole, data, size);
	FUZZ_CHECK(whole.head_len < sizeof(whole.head));
	size_t off = 0, i = 0;
	while (off < size) {
		size_t n = ncuts ? (size_t)cuts[i++ % ncuts] % 16 + 1 : 1;
		if (n > size - off)
			n = size - off;
		ws_input_track(&pieces, data + off, n);
		FUZZ_CHECK(pieces.head_len < sizeof(pieces.head));
		off += n;
	}
	FUZZ_CHECK(whole.payload == ref.payload && whole.head_len == ref.head_len &&
		   whole.fragmented == ref.fragmented &&
		   memcmp(whole.head, ref.head, ref.head_len) == 0);
	FUZZ_CHECK(whole.payload == pieces.payload && whole.head_len == pieces.head_len &&
		   whole.fragmented == pieces.fragmented &&
		   memcmp(whole.head, pieces.head, whole.head_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	scene = data[0];
	connection(data + 1, size - 1);
	tracker(data, size > 8 ? 8 : size, data + 1, size - 1);
	return 0;
}
