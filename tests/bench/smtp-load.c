/*
 * smtp-load.c — the benchmark's SMTP load client.  S concurrent sessions
 * over loopback send N copies of one or more .eml files to an MTA and, for
 * each message, time the wait between the end-of-data "." and the server's
 * reply: that is where Postfix runs the milter (and writes the queue file).
 *
 *   smtp-load [-p PORT] [-s SESSIONS] [-n COUNT] [-f FROM] -t RCPT [-t RCPT…]
 *             [-a LOGIN:PASSWORD] [-k] [-T SECONDS] [-L latencies.txt] FILE.eml…
 *
 * Bounded by design: it only talks to 127.0.0.1, at most 1,000,000 messages,
 * 64 sessions, 50 recipients, and it gives up after -T seconds overall
 * (default 600) or 30 s without an answer.  Files are sent round-robin
 * (message i is file i mod nfiles); they are converted to CRLF and
 * dot-stuffed once, then sent as they are.  -a does AUTH PLAIN (Postfix must
 * allow it without TLS, as the bench's private instance does).  -k keeps each
 * session's connection for several messages (RSET between them); the default
 * is one connection per message, as a mail client submitting does.
 *
 * Prints one line of key=value pairs:
 *   sent=N ok=N rejected=N failed=N elapsed_s=… msg_per_s=… p50_ms=… p90_ms=…
 *   p99_ms=… max_ms=…
 * ("ok" got 2xx after ".", "rejected" 4xx/5xx there, "failed" anything else:
 * refused earlier in the dialogue, timeout, connection lost).  msg_per_s
 * counts every message answered after "." over the whole run's wall time.
 * Exit status 0 when every message got 2xx, 1 otherwise, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_MESSAGES 1000000
#define MAX_SESSIONS 64
#define MAX_RCPTS 50
#define MAX_FILES 4096
#define MAX_FILE_SIZE (64u << 20)
#define IO_TIMEOUT_S 30
#define LINE_MAX_LEN 4096

struct payload {
	char *data; /* CRLF, dot-stuffed, ending with CRLF ".\r\n" */
	size_t len;
};

struct run {
	int port;
	const char *from;
	const char *rcpts[MAX_RCPTS];
	int nrcpts;
	char *auth_plain; /* base64 of "\0login\0password", or NULL */
	int keep;
	long count;
	double deadline; /* monotonic seconds */
	struct payload *files;
	size_t nfiles;

	atomic_long next; /* next message index to send */
	double *lat_ms;   /* per message; < 0 when no reply after "." */
	atomic_long ok, rejected, failed;
	pthread_mutex_t err_lock;
	int errors_printed;
};

struct conn {
	int fd;
	char buf[8192];
	size_t start, end;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_error(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_error(struct run *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->err_lock);
	if (r->errors_printed < 10) {
		fprintf(stderr, "smtp-load: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	} else if (r->errors_printed == 10) {
		fprintf(stderr, "smtp-load: (more errors not shown)\n");
	}
	r->errors_printed++;
	pthread_mutex_unlock(&r->err_lock);
}

static int conn_open(struct conn *c, int port)
{
	struct sockaddr_in sa;
	struct timeval tv = {IO_TIMEOUT_S, 0};
	int one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* only ever 127.0.0.1 */
	c->start = c->end = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int send_all(struct conn *c, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_cmd(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int send_cmd(struct conn *c, const char *fmt, ...)
{
	char line[LINE_MAX_LEN];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return -1;
	memcpy(line + n, "\r\n", 2);
	return send_all(c, line, (size_t)n + 2);
}

/* One line without CRLF into out (cut at outlen - 1); -1 on EOF / error / timeout. */
static int read_line(struct conn *c, char *out, size_t outlen)
{
	size_t o = 0;

	for (;;) {
		while (c->start < c->end) {
			char ch = c->buf[c->start++];
			if (ch == '\n') {
				if (o > 0 && out[o - 1] == '\r')
					o--;
				out[o] = '\0';
				return 0;
			}
			if (o + 1 < outlen)
				out[o++] = ch;
		}
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->start = 0;
		c->end = (size_t)n;
	}
}

/* A whole (multi-line) reply; returns its code, or -1; the last line in last. */
static int read_reply(struct conn *c, char *last, size_t lastlen)
{
	char line[LINE_MAX_LEN];

	for (;;) {
		if (read_line(c, line, sizeof(line)) < 0)
			return -1;
		if (strlen(line) < 3 || line[0] < '1' || line[0] > '5')
			return -1;
		if (line[3] != '-') {
			snprintf(last, lastlen, "%s", line);
			return atoi(line);
		}
	}
}

/* Read a reply and expect its code in [lo, hi]; returns the code or -1. */
static int expect(struct run *r, struct conn *c, int lo, int hi, const char *what)
{
	char last[LINE_MAX_LEN];
	int code;

	errno = 0;
	code = read_reply(c, last, sizeof(last));
	if (code < 0) {
		run_error(r, "%s: no reply (%s)", what, errno ? strerror(errno) : "closed");
		return -1;
	}
	if (code < lo || code > hi) {
		run_error(r, "%s: %s", what, last);
		return -1;
	}
	return code;
}

/* Send a command and expect a reply in [lo, hi]; returns the code or -1. */
static int command(struct run *r, struct conn *c, int lo, int hi, const char *what, const char *fmt,
                   ...) __attribute__((format(printf, 6, 7)));
static int command(struct run *r, struct conn *c, int lo, int hi, const char *what, const char *fmt,
                   ...)
{
	char line[LINE_MAX_LEN];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || send_cmd(c, "%s", line) < 0) {
		run_error(r, "%s: send failed: %s", what, strerror(errno));
		return -1;
	}
	return expect(r, c, lo, hi, what);
}

static int session_open(struct run *r, struct conn *c)
{
	if (conn_open(c, r->port) < 0) {
		run_error(r, "connect 127.0.0.1:%d: %s", r->port, strerror(errno));
		return -1;
	}
	if (expect(r, c, 220, 220, "banner") < 0 ||
	    command(r, c, 250, 250, "EHLO", "EHLO smtp-load.bench.test") < 0 ||
	    (r->auth_plain &&
	     command(r, c, 235, 235, "AUTH", "AUTH PLAIN %s", r->auth_plain) < 0)) {
		conn_close(c);
		return -1;
	}
	return 0;
}

/* One transaction; 1 = 2xx after ".", 0 = 4xx/5xx after ".", -1 = failed earlier. */
static int transaction(struct run *r, struct conn *c, long idx)
{
	const struct payload *p = &r->files[(size_t)idx % r->nfiles];
	char last[LINE_MAX_LEN];
	double t0;
	int code;

	if (command(r, c, 250, 250, "MAIL", "MAIL FROM:<%s>", r->from) < 0)
		return -1;
	for (int i = 0; i < r->nrcpts; i++)
		if (command(r, c, 250, 251, "RCPT", "RCPT TO:<%s>", r->rcpts[i]) < 0)
			return -1;
	if (command(r, c, 354, 354, "DATA", "DATA") < 0)
		return -1;
	/* The payload ends with "\r\n.\r\n": time from the moment it is all handed over. */
	if (send_all(c, p->data, p->len) < 0) {
		run_error(r, "message %ld: send failed: %s", idx, strerror(errno));
		return -1;
	}
	t0 = now();
	code = read_reply(c, last, sizeof(last));
	if (code < 0) {
		run_error(r, "message %ld: no reply after end of data", idx);
		return -1;
	}
	r->lat_ms[idx] = (now() - t0) * 1000.0;
	if (code >= 200 && code < 300)
		return 1;
	run_error(r, "message %ld: %s", idx, last);
	return 0;
}

static void *worker(void *arg)
{
	struct run *r = arg;
	struct conn c = {.fd = -1};

	for (;;) {
		long idx = atomic_fetch_add(&r->next, 1);
		int res;

		if (idx >= r->count)
			break;
		if (now() > r->deadline) {
			atomic_fetch_add(&r->failed, 1);
			continue;
		}
		if (c.fd < 0 && session_open(r, &c) < 0) {
			atomic_fetch_add(&r->failed, 1);
			continue;
		}
		res = transaction(r, &c, idx);
		if (res > 0)
			atomic_fetch_add(&r->ok, 1);
		else if (res == 0)
			atomic_fetch_add(&r->rejected, 1);
		else
			atomic_fetch_add(&r->failed, 1);
		if (res < 0 || !r->keep) {
			if (res >= 0)
				(void)command(r, &c, 221, 221, "QUIT", "QUIT");
			conn_close(&c);
		} else if (command(r, &c, 250, 250, "RSET", "RSET") < 0) {
			conn_close(&c);
		}
	}
	if (c.fd >= 0) {
		(void)command(r, &c, 221, 221, "QUIT", "QUIT");
		conn_close(&c);
	}
	return NULL;
}

/* Read a message file, turn LF / CRLF into CRLF, dot-stuff, add "." */
static int load_file(const char *path, struct payload *p)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;
	char *raw, *out;
	size_t n, o = 0;
	int bol = 1;

	if (!fp || fstat(fileno(fp), &st) < 0 || st.st_size < 0 ||
	    (size_t)st.st_size > MAX_FILE_SIZE) {
		fprintf(stderr, "smtp-load: %s: %s\n", path, fp ? "too large" : strerror(errno));
		if (fp)
			fclose(fp);
		return -1;
	}
	n = (size_t)st.st_size;
	raw = malloc(n + 1);
	out = malloc(2 * n + 8);
	if (!raw || !out || fread(raw, 1, n, fp) != n) {
		fprintf(stderr, "smtp-load: %s: read error\n", path);
		free(raw);
		free(out);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	for (size_t i = 0; i < n; i++) {
		char ch = raw[i];
		if (bol && ch == '.')
			out[o++] = '.';
		bol = 0;
		if (ch == '\r' && i + 1 < n && raw[i + 1] == '\n')
			continue; /* the LF below writes CRLF */
		if (ch == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			bol = 1;
			continue;
		}
		out[o++] = ch;
	}
	if (!bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	o += 3;
	free(raw);
	p->data = out;
	p->len = o;
	return 0;
}

static char *base64(const unsigned char *in, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*o++ = tab[(v >> 18) & 63];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, double pct)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static void usage(void)
{
	fprintf(stderr, "usage: smtp-load [-p PORT] [-s SESSIONS] [-n COUNT] [-f FROM] -t RCPT "
	                "[-t RCPT...]\n"
	                "                 [-a LOGIN:PASSWORD] [-k] [-T SECONDS] [-L FILE] "
	                "FILE.eml...\n");
	exit(2);
}

static long num_arg(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "smtp-load: %s must be %ld..%ld\n", what, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static struct run r;
	pthread_t th[MAX_SESSIONS];
	const char *auth = NULL, *lat_file = NULL;
	long sessions = 4, timeout = 600;
	double t_start, elapsed, *sorted;
	size_t nlat = 0;
	int ch;

	r.port = 25;
	r.count = 1;
	r.from = "bench@hopital.example";
	while ((ch = getopt(argc, argv, "p:s:n:f:t:a:kT:L:h")) != -1) {
		switch (ch) {
		case 'p':
			r.port = (int)num_arg(optarg, 1, 65535, "port");
			break;
		case 's':
			sessions = num_arg(optarg, 1, MAX_SESSIONS, "sessions");
			break;
		case 'n':
			r.count = num_arg(optarg, 1, MAX_MESSAGES, "count");
			break;
		case 'f':
			r.from = optarg;
			break;
		case 't':
			if (r.nrcpts == MAX_RCPTS)
				usage();
			r.rcpts[r.nrcpts++] = optarg;
			break;
		case 'a':
			auth = optarg;
			break;
		case 'k':
			r.keep = 1;
			break;
		case 'T':
			timeout = num_arg(optarg, 1, 3600, "timeout");
			break;
		case 'L':
			lat_file = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || r.nrcpts == 0 || argc - optind > MAX_FILES)
		usage();
	for (const char *s = r.from; *s; s++)
		if (*s == '<' || *s == '>' || *s == '\r' || *s == '\n')
			usage();
	for (int i = 0; i < r.nrcpts; i++)
		if (strpbrk(r.rcpts[i], "<>\r\n"))
			usage();

	if (auth) {
		const char *colon = strchr(auth, ':');
		size_t ul, pl;
		unsigned char *blob;

		if (!colon || strlen(auth) > 512)
			usage();
		ul = (size_t)(colon - auth);
		pl = strlen(colon + 1);
		blob = malloc(ul + pl + 2);
		if (!blob)
			return 1;
		blob[0] = '\0';
		memcpy(blob + 1, auth, ul);
		blob[1 + ul] = '\0';
		memcpy(blob + 2 + ul, colon + 1, pl);
		r.auth_plain = base64(blob, ul + pl + 2);
		free(blob);
		if (!r.auth_plain)
			return 1;
	}

	r.nfiles = (size_t)(argc - optind);
	r.files = calloc(r.nfiles, sizeof(*r.files));
	r.lat_ms = malloc((size_t)r.count * sizeof(double));
	sorted = malloc((size_t)r.count * sizeof(double));
	if (!r.files || !r.lat_ms || !sorted)
		return 1;
	for (size_t i = 0; i < r.nfiles; i++)
		if (load_file(argv[optind + (int)i], &r.files[i]) < 0)
			return 2;
	for (long i = 0; i < r.count; i++)
		r.lat_ms[i] = -1;
	pthread_mutex_init(&r.err_lock, NULL);
	if (sessions > r.count)
		sessions = r.count;

	t_start = now();
	r.deadline = t_start + (double)timeout;
	for (long i = 0; i < sessions; i++)
		if (pthread_create(&th[i], NULL, worker, &r) != 0) {
			fprintf(stderr, "smtp-load: pthread_create failed\n");
			return 1;
		}
	for (long i = 0; i < sessions; i++)
		pthread_join(th[i], NULL);
	elapsed = now() - t_start;

	for (long i = 0; i < r.count; i++)
		if (r.lat_ms[i] >= 0)
			sorted[nlat++] = r.lat_ms[i];
	qsort(sorted, nlat, sizeof(double), cmp_double);
	if (lat_file) {
		FILE *fp = fopen(lat_file, "w");
		if (!fp) {
			fprintf(stderr, "smtp-load: %s: %s\n", lat_file, strerror(errno));
			return 1;
		}
		for (long i = 0; i < r.count; i++)
			fprintf(fp, "%.3f\n", r.lat_ms[i]);
		if (fclose(fp) != 0) {
			fprintf(stderr, "smtp-load: %s: write error\n", lat_file);
			return 1;
		}
	}
	printf("sent=%ld ok=%ld rejected=%ld failed=%ld elapsed_s=%.3f msg_per_s=%.1f "
	       "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
	       r.count, atomic_load(&r.ok), atomic_load(&r.rejected), atomic_load(&r.failed),
	       elapsed, elapsed > 0 ? (double)nlat / elapsed : 0.0, percentile(sorted, nlat, 50),
	       percentile(sorted, nlat, 90), percentile(sorted, nlat, 99),
	       nlat ? sorted[nlat - 1] : 0.0);
	for (size_t i = 0; i < r.nfiles; i++)
		free(r.files[i].data);
	free(r.files);
	free(r.lat_ms);
	free(sorted);
	free(r.auth_plain);
	return atomic_load(&r.ok) == r.count ? 0 : 1;
}
