/*
 * fax_hylafax.c — a client of HylaFAX's hfaxd (see fax_hylafax.h): plain
 * POSIX sockets, every wait bounded by poll(), FTP-style replies (multi-line
 * "NNN-" continuations), passive data connections for STOT, LIST and RETR.
 *
 * Every byte from the server is treated as hostile: reply lines are bounded
 * and cut, non-printable bytes are replaced before anything is copied out,
 * names the server hands back (temporary document, job id, documents of a
 * job) are checked against strict patterns before being used in a command,
 * and a data connection always goes to the control connection's peer,
 * whatever address a PASV reply names.  Nothing of ours that reaches a
 * command can carry CR, LF or a quote: numbers are digits, keys
 * [A-Za-z0-9-], the user name [A-Za-z0-9._-].
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fax_hylafax.h"
#include "util.h"

#define LINE_MAX_KEPT 1024       /* longer reply lines are cut */
#define LINE_MAX_BYTES 65536     /* a longer line is a protocol error */
#define REPLY_MAX_LINES 10000    /* HELP is ~40 */
#define DATA_MAX_BYTES (8 << 20) /* LIST and RETR results */
#define DOC_MAX_BYTES (256L << 20)

struct hfax_conn {
	int fd;
	int timeout_ms;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char user[64];
	char in[4096];
	size_t inlen, inpos;
	int broken; /* desynchronised or closed: every further call fails HFAX_TEMP */
	int type_image;
};

struct reply {
	int code;
	char text[512];      /* the last line's text, after "NNN " */
	struct strbuf lines; /* every line's text, '\n'-terminated (when wanted) */
	int want_lines;
};

/* ---- small helpers ---- */

static void seterr(char *err, size_t errlen, const char *fmt, ...) CM_PRINTF(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Copy at most n bytes of untrusted text, printable ASCII only. */
static void clean_copy(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t k = 0;
	if (dstlen == 0)
		return;
	for (size_t i = 0; i < n && src[i] && k + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[k++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	dst[k] = '\0';
}

static int all_in(const char *s, size_t minlen, size_t maxlen, const char *extra, int alnum)
{
	size_t n = strlen(s);
	if (n < minlen || n > maxlen)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		int ok = (ch >= '0' && ch <= '9') ||
		         (alnum && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))) ||
		         (extra && ch && strchr(extra, ch));
		if (!ok)
			return 0;
	}
	return 1;
}

static int valid_jobid(const char *s)
{
	return s && all_in(s, 1, 9, NULL, 0);
}

static int valid_key(const char *s)
{
	return s && all_in(s, 1, 64, "-", 1);
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
	long long d = deadline - now_ms();
	return d < 0 ? 0 : (d > 3600000 ? 3600000 : (int)d);
}

/* Wait for fd to be ready; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, left_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		return r > 0;
	}
}

static int write_all(int fd, const void *buf, size_t len, long long deadline)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (wait_fd(fd, POLLOUT, deadline) != 1) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/* Non-blocking connect with a deadline; returns the socket or -1. */
static int connect_addr(const struct sockaddr *sa, socklen_t salen, long long deadline)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, sa, salen) != 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return -1;
		}
		if (wait_fd(fd, POLLOUT, deadline) != 1) {
			close(fd);
			errno = ETIMEDOUT;
			return -1;
		}
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
			close(fd);
			errno = soerr ? soerr : EIO;
			return -1;
		}
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* ---- replies ---- */

static int fill(struct hfax_conn *c, long long deadline)
{
	if (c->inpos < c->inlen)
		return 0;
	c->inpos = c->inlen = 0;
	for (;;) {
		ssize_t n = recv(c->fd, c->in, sizeof c->in, 0);
		if (n > 0) {
			c->inlen = (size_t)n;
			return 0;
		}
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		int w = wait_fd(c->fd, POLLIN, deadline);
		if (w != 1) {
			if (w == 0)
				errno = ETIMEDOUT;
			return -1;
		}
	}
}

/* One reply line, CR LF stripped, cut at LINE_MAX_KEPT - 1 bytes. */
static int read_line(struct hfax_conn *c, char *line, size_t *len, long long deadline)
{
	size_t k = 0, total = 0;
	for (;;) {
		if (fill(c, deadline) != 0)
			return -1;
		while (c->inpos < c->inlen) {
			char ch = c->in[c->inpos++];
			if (ch == '\n') {
				if (k > 0 && line[k - 1] == '\r')
					k--;
				line[k] = '\0';
				*len = k;
				return 0;
			}
			if (++total > LINE_MAX_BYTES) {
				errno = EPROTO;
				return -1;
			}
			if (k + 1 < LINE_MAX_KEPT)
				line[k++] = ch;
		}
	}
}

static int code_of(const char *line, size_t len)
{
	if (len < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

static void keep_line(struct reply *r, const char *text, size_t n)
{
	if (!r->want_lines)
		return;
	char clean[LINE_MAX_KEPT];
	clean_copy(clean, sizeof clean, text, n);
	sb_puts(&r->lines, clean);
	sb_putc(&r->lines, '\n');
}

static int read_reply(struct hfax_conn *c, struct reply *r, char *err, size_t errlen)
{
	char line[LINE_MAX_KEPT];
	size_t len;
	long long deadline = now_ms() + c->timeout_ms;
	r->code = -1;
	r->text[0] = '\0';
	sb_reset(&r->lines);
	if (read_line(c, line, &len, deadline) != 0)
		goto io;
	int code = code_of(line, len);
	if (code < 0 || (len > 3 && line[3] != ' ' && line[3] != '-')) {
		c->broken = 1;
		seterr(err, errlen, "HylaFAX: malformed reply");
		return HFAX_TEMP;
	}
	if (len > 3 && line[3] == '-') {
		/* multi-line: up to "NNN " with the same code */
		keep_line(r, line + 4, len - 4);
		for (int n = 0;; n++) {
			if (n >= REPLY_MAX_LINES) {
				c->broken = 1;
				seterr(err, errlen, "HylaFAX: reply too long");
				return HFAX_TEMP;
			}
			if (read_line(c, line, &len, deadline) != 0)
				goto io;
			int lc = code_of(line, len);
			if (lc == code && (len == 3 || line[3] == ' '))
				break;
			if (lc == code && line[3] == '-')
				keep_line(r, line + 4, len - 4);
			else
				keep_line(r, line, len);
		}
	}
	r->code = code;
	if (len > 4)
		clean_copy(r->text, sizeof r->text, line + 4, len - 4);
	keep_line(r, len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
	return HFAX_OK;
io:
	c->broken = 1;
	seterr(err, errlen, "HylaFAX: no reply: %s", strerror(errno));
	return HFAX_TEMP;
}

/* Send one command built from already-validated pieces. */
static int send_cmd(struct hfax_conn *c, char *err, size_t errlen, const char *fmt, va_list ap)
{
	char buf[1100];
	int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
	if (n < 0 || (size_t)n >= sizeof buf - 2) {
		seterr(err, errlen, "HylaFAX: command too long");
		return HFAX_PERM;
	}
	for (int i = 0; i < n; i++) {
		if (buf[i] == '\r' || buf[i] == '\n') {
			seterr(err, errlen, "HylaFAX: refusing a command with a line break");
			return HFAX_PERM;
		}
	}
	buf[n++] = '\r';
	buf[n++] = '\n';
	if (write_all(c->fd, buf, (size_t)n, now_ms() + c->timeout_ms) != 0) {
		c->broken = 1;
		seterr(err, errlen, "HylaFAX: cannot send: %s", strerror(errno));
		return HFAX_TEMP;
	}
	return HFAX_OK;
}

static int cmd(struct hfax_conn *c, struct reply *r, char *err, size_t errlen, const char *fmt, ...)
    CM_PRINTF(5, 6);
static int cmd(struct hfax_conn *c, struct reply *r, char *err, size_t errlen, const char *fmt, ...)
{
	if (!c || c->broken) {
		seterr(err, errlen, "HylaFAX: connection lost");
		return HFAX_TEMP;
	}
	va_list ap;
	va_start(ap, fmt);
	int rc = send_cmd(c, err, errlen, fmt, ap);
	va_end(ap);
	if (rc != HFAX_OK)
		return rc;
	return read_reply(c, r, err, errlen);
}

/* 4xx: try later; 5xx: refused. */
static int refused(const struct reply *r, const char *what, char *err, size_t errlen)
{
	seterr(err, errlen, "HylaFAX %s: %d %s", what, r->code, r->text);
	return r->code >= 500 ? HFAX_PERM : HFAX_TEMP;
}

static void reply_init(struct reply *r, int want_lines)
{
	memset(r, 0, sizeof *r);
	sb_init(&r->lines);
	r->want_lines = want_lines;
}

/* ---- data connections ---- */

/* PASV: the port from "227 ... (h1,h2,h3,h4,p1,p2)"; the address is ignored. */
static int parse_pasv_port(const char *text)
{
	const char *p = strchr(text, '(');
	p = p ? p + 1 : text;
	while (*p && (*p < '0' || *p > '9'))
		p++;
	long v[6];
	for (int i = 0; i < 6; i++) {
		char *end;
		if (*p < '0' || *p > '9')
			return -1;
		v[i] = strtol(p, &end, 10);
		if (end == p || v[i] < 0 || v[i] > 255)
			return -1;
		p = end;
		if (i < 5) {
			if (*p != ',')
				return -1;
			p++;
		}
	}
	int port = (int)(v[4] * 256 + v[5]);
	return port > 0 ? port : -1;
}

static int ensure_type_image(struct hfax_conn *c, char *err, size_t errlen)
{
	if (c->type_image)
		return HFAX_OK;
	struct reply r;
	reply_init(&r, 0);
	int rc = cmd(c, &r, err, errlen, "TYPE I");
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "TYPE I", err, errlen);
	sb_free(&r.lines);
	if (rc == HFAX_OK)
		c->type_image = 1;
	return rc;
}

/* PASV and connect to the control connection's peer at the given port. */
static int open_data(struct hfax_conn *c, int *dfd, char *err, size_t errlen)
{
	struct reply r;
	reply_init(&r, 0);
	int rc = ensure_type_image(c, err, errlen);
	if (rc == HFAX_OK)
		rc = cmd(c, &r, err, errlen, "PASV");
	if (rc == HFAX_OK && r.code != 227) {
		seterr(err, errlen, "HylaFAX PASV: %d %s", r.code, r.text);
		rc = HFAX_TEMP;
	}
	int port = rc == HFAX_OK ? parse_pasv_port(r.text) : -1;
	sb_free(&r.lines);
	if (rc != HFAX_OK)
		return rc;
	if (port < 0) {
		c->broken = 1;
		seterr(err, errlen, "HylaFAX: malformed PASV reply");
		return HFAX_TEMP;
	}
	struct sockaddr_storage sa = c->peer;
	if (sa.ss_family == AF_INET)
		((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
	else if (sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
	else {
		seterr(err, errlen, "HylaFAX: unsupported address family");
		return HFAX_TEMP;
	}
	*dfd = connect_addr((struct sockaddr *)&sa, c->peerlen, now_ms() + c->timeout_ms);
	if (*dfd < 0) {
		seterr(err, errlen, "HylaFAX: data connection: %s", strerror(errno));
		return HFAX_TEMP;
	}
	return HFAX_OK;
}

/* "FILE: /tmp/doc12.tif" in a STOT reply: only that exact shape is accepted. */
static int parse_tmp_doc(const char *text, char *doc, size_t doclen)
{
	const char *p = strstr(text, "FILE: ");
	if (!p)
		return -1;
	p += 6;
	size_t n = 0;
	while (p[n] && p[n] != ' ' && p[n] != ')')
		n++;
	if (n > 0 && p[n - 1] == '.')
		n--;
	char name[80];
	if (n == 0 || n >= sizeof name)
		return -1;
	memcpy(name, p, n);
	name[n] = '\0';
	if (strncmp(name, "/tmp/doc", 8) != 0)
		return -1;
	const char *q = name + 8;
	size_t digits = strspn(q, "0123456789");
	if (digits == 0 || digits > 10 || q[digits] != '.')
		return -1;
	if (!all_in(q + digits + 1, 1, 8, NULL, 1))
		return -1;
	if ((size_t)snprintf(doc, doclen, "%s", name) >= doclen)
		return -1;
	return 0;
}

/* Run a command that sends data to us (LIST, RETR) and collect it, bounded. */
static int fetch_data(struct hfax_conn *c, struct strbuf *out, char *err, size_t errlen,
                      const char *fmt, ...) CM_PRINTF(5, 6);
static int fetch_data(struct hfax_conn *c, struct strbuf *out, char *err, size_t errlen,
                      const char *fmt, ...)
{
	int dfd = -1;
	int rc = open_data(c, &dfd, err, errlen);
	if (rc != HFAX_OK)
		return rc;
	va_list ap;
	va_start(ap, fmt);
	rc = send_cmd(c, err, errlen, fmt, ap);
	va_end(ap);
	struct reply r;
	reply_init(&r, 0);
	if (rc == HFAX_OK)
		rc = read_reply(c, &r, err, errlen);
	if (rc == HFAX_OK && r.code != 150 && r.code != 125) {
		rc = refused(&r, "transfer", err, errlen);
		goto out;
	}
	if (rc != HFAX_OK)
		goto out;
	long long deadline = now_ms() + c->timeout_ms;
	char buf[8192];
	for (;;) {
		ssize_t n = recv(dfd, buf, sizeof buf, 0);
		if (n > 0) {
			if (out->len + (size_t)n > DATA_MAX_BYTES) {
				c->broken = 1;
				seterr(err, errlen, "HylaFAX: listing too large");
				rc = HFAX_TEMP;
				goto out;
			}
			sb_append(out, buf, (size_t)n);
			deadline = now_ms() + c->timeout_ms;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
		    wait_fd(dfd, POLLIN, deadline) != 1) {
			c->broken = 1;
			seterr(err, errlen, "HylaFAX: data connection: %s",
			       errno == EAGAIN ? "timeout" : strerror(errno));
			rc = HFAX_TEMP;
			goto out;
		}
	}
	close(dfd);
	dfd = -1;
	rc = read_reply(c, &r, err, errlen);
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "transfer", err, errlen);
out:
	if (dfd >= 0)
		close(dfd);
	sb_free(&r.lines);
	return rc;
}

/* ---- connection ---- */

int hfax_connect(const char *host, const char *port, const char *user, int timeout_s,
                 struct hfax_conn **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!host || !*host || !port || !*port) {
		seterr(err, errlen, "HylaFAX: no host or port");
		return HFAX_PERM;
	}
	if (!user || !all_in(user, 1, 32, "._-", 1)) {
		seterr(err, errlen, "HylaFAX: invalid user name");
		return HFAX_PERM;
	}
	if (timeout_s <= 0)
		timeout_s = 30;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(host, port, &hints, &ai);
	if (g != 0) {
		seterr(err, errlen, "HylaFAX %s:%s: %s", host, port, gai_strerror(g));
		return HFAX_TEMP;
	}
	long long deadline = now_ms() + (long long)timeout_s * 1000;
	int fd = -1, saved = 0;
	struct addrinfo *used = NULL;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = connect_addr(a->ai_addr, a->ai_addrlen, deadline);
		if (fd >= 0) {
			used = a;
			break;
		}
		saved = errno;
	}
	if (fd < 0) {
		freeaddrinfo(ai);
		seterr(err, errlen, "HylaFAX %s:%s: %s", host, port, strerror(saved));
		return HFAX_TEMP;
	}
	struct hfax_conn *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->timeout_ms = timeout_s * 1000;
	memcpy(&c->peer, used->ai_addr, used->ai_addrlen);
	c->peerlen = used->ai_addrlen;
	freeaddrinfo(ai);
	snprintf(c->user, sizeof c->user, "%s", user);

	struct reply r;
	reply_init(&r, 0);
	int rc = read_reply(c, &r, err, errlen);
	if (rc == HFAX_OK && r.code != 220) {
		seterr(err, errlen, "HylaFAX greeting: %d %s", r.code, r.text);
		rc = HFAX_TEMP;
	}
	if (rc == HFAX_OK)
		rc = cmd(c, &r, err, errlen, "USER %s", user);
	if (rc == HFAX_OK && r.code != 230) {
		/* 331 asks for a password we do not have; 530 refuses us: both are
		 * configuration problems, not the message's: try later. */
		seterr(err, errlen, "HylaFAX login as %s: %d %s", user, r.code, r.text);
		rc = HFAX_TEMP;
	}
	sb_free(&r.lines);
	if (rc != HFAX_OK) {
		close(c->fd);
		free(c);
		return rc;
	}
	*out = c;
	return HFAX_OK;
}

void hfax_close(struct hfax_conn *c)
{
	if (!c)
		return;
	if (!c->broken) {
		struct reply r;
		reply_init(&r, 0);
		c->timeout_ms = c->timeout_ms > 2000 ? 2000 : c->timeout_ms;
		(void)cmd(c, &r, NULL, 0, "QUIT");
		sb_free(&r.lines);
	}
	close(c->fd);
	free(c);
}

int hfax_admin(struct hfax_conn *c, const char *password, char *err, size_t errlen)
{
	if (!password || !all_in(password, 1, 64, "!#$%&'()*+,-./:;<=>?@[]^_`{|}~", 1)) {
		seterr(err, errlen, "HylaFAX: invalid admin password (printable, no spaces)");
		return HFAX_PERM;
	}
	struct reply r;
	reply_init(&r, 0);
	int rc = cmd(c, &r, err, errlen, "ADMIN %s", password);
	if (rc == HFAX_OK && r.code != 230) {
		/* a configuration problem: try later */
		seterr(err, errlen, "HylaFAX ADMIN: %d %s", r.code, r.text);
		rc = HFAX_TEMP;
	}
	sb_free(&r.lines);
	return rc;
}

/* ---- jobs ---- */

/* A "213 N" style unsigned value. */
static int parse_uint(const char *text, int *v)
{
	size_t n = strspn(text, "0123456789");
	if (n == 0 || n > 6 || (text[n] != '\0' && text[n] != ' ' && text[n] != '.'))
		return -1;
	*v = atoi(text);
	return 0;
}

/* "jobid: 12" in a JNEW reply */
static int parse_jobid(const char *text, char *jobid, size_t jobidlen)
{
	const char *p = strstr(text, "jobid: ");
	if (!p)
		return -1;
	p += 7;
	size_t n = strspn(p, "0123456789");
	if (n == 0 || n > 9 || n >= jobidlen)
		return -1;
	memcpy(jobid, p, n);
	jobid[n] = '\0';
	return 0;
}

static int set_parm(struct hfax_conn *c, const char *name, const char *value, char *err,
                    size_t errlen)
{
	struct reply r;
	reply_init(&r, 0);
	int rc = cmd(c, &r, err, errlen, "JPARM %s %s", name, value);
	if (rc == HFAX_OK && r.code / 100 != 2) {
		char what[48];
		snprintf(what, sizeof what, "JPARM %s", name);
		rc = refused(&r, what, err, errlen);
	}
	sb_free(&r.lines);
	return rc;
}

static int valid_tag_line(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 200)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			return 0;
	}
	return 1;
}

static int check_opts(const struct hfax_job_opts *o, char *err, size_t errlen)
{
	if (!o->number || !all_in(o->number, 1, 20, NULL, 0)) {
		seterr(err, errlen, "invalid fax number (digits only)");
		return HFAX_PERM;
	}
	if (!o->tiff_path || !*o->tiff_path) {
		seterr(err, errlen, "no document");
		return HFAX_PERM;
	}
	if (o->user_key && *o->user_key && !valid_key(o->user_key)) {
		seterr(err, errlen, "invalid job key (A-Z a-z 0-9 -)");
		return HFAX_PERM;
	}
	if (o->tag_line && *o->tag_line && !valid_tag_line(o->tag_line)) {
		seterr(err, errlen, "invalid tag line");
		return HFAX_PERM;
	}
	if (o->notify_addr && *o->notify_addr && !all_in(o->notify_addr, 3, 128, "._+@-", 1)) {
		seterr(err, errlen, "invalid notification address");
		return HFAX_PERM;
	}
	if (o->max_dials < 0 || o->max_dials > 999 || o->max_tries < 0 || o->max_tries > 999 ||
	    o->kill_minutes < 0 || o->kill_minutes > 99 * 1440) {
		seterr(err, errlen, "retry limits out of range");
		return HFAX_PERM;
	}
	return HFAX_OK;
}

/* Upload the document with STOT; doc gets the server's temporary name. */
static int upload(struct hfax_conn *c, int file, char *doc, size_t doclen, char *err, size_t errlen)
{
	int dfd = -1;
	int rc = open_data(c, &dfd, err, errlen);
	if (rc != HFAX_OK)
		return rc;
	struct reply r;
	reply_init(&r, 0);
	doc[0] = '\0';
	/* FORM names the temporary file's suffix (the default, PS, gives docN.ps) */
	rc = cmd(c, &r, err, errlen, "FORM TIFF");
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "FORM TIFF", err, errlen);
	if (rc == HFAX_OK)
		rc = cmd(c, &r, err, errlen, "STOT");
	if (rc == HFAX_OK && r.code != 150 && r.code != 125) {
		rc = refused(&r, "STOT", err, errlen);
		if (rc == HFAX_PERM) /* a server-side storage problem, not the document's */
			rc = HFAX_TEMP;
		goto out;
	}
	if (rc != HFAX_OK)
		goto out;
	(void)parse_tmp_doc(r.text, doc, doclen);
	char buf[16384];
	for (;;) {
		ssize_t n = read(file, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			seterr(err, errlen, "reading the document: %s", strerror(errno));
			c->broken = 1; /* the server now waits for data we will not send */
			rc = HFAX_TEMP;
			goto out;
		}
		if (n == 0)
			break;
		if (write_all(dfd, buf, (size_t)n, now_ms() + c->timeout_ms) != 0) {
			seterr(err, errlen, "HylaFAX: sending the document: %s", strerror(errno));
			c->broken = 1;
			rc = HFAX_TEMP;
			goto out;
		}
	}
	close(dfd);
	dfd = -1;
	rc = read_reply(c, &r, err, errlen);
	if (rc != HFAX_OK)
		goto out;
	if (r.code / 100 != 2) {
		(void)refused(&r, "STOT", err, errlen);
		rc = HFAX_TEMP; /* the transfer failed, not the document */
		goto out;
	}
	if (!doc[0] && parse_tmp_doc(r.text, doc, doclen) != 0) {
		seterr(err, errlen, "HylaFAX: no usable document name in the STOT reply");
		rc = HFAX_TEMP;
	}
out:
	if (dfd >= 0)
		close(dfd);
	sb_free(&r.lines);
	return rc;
}

int hfax_submit(struct hfax_conn *c, const struct hfax_job_opts *o, char *jobid, size_t jobidlen,
                char *err, size_t errlen)
{
	if (jobidlen > 0)
		jobid[0] = '\0';
	int rc = check_opts(o, err, errlen);
	if (rc != HFAX_OK)
		return rc;
	if (!c || c->broken) {
		seterr(err, errlen, "HylaFAX: connection lost");
		return HFAX_TEMP;
	}
	int file = open(o->tiff_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat sb;
	if (file < 0 || fstat(file, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    sb.st_size > DOC_MAX_BYTES) {
		seterr(err, errlen, "document %s: %s", o->tiff_path,
		       file < 0 ? strerror(errno) : "not a usable regular file");
		if (file >= 0)
			close(file);
		return HFAX_PERM;
	}
	char doc[80];
	rc = upload(c, file, doc, sizeof doc, err, errlen);
	close(file);
	if (rc != HFAX_OK)
		return rc;

	struct reply r;
	reply_init(&r, 0);
	char id[16] = "";
	rc = cmd(c, &r, err, errlen, "JNEW");
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "JNEW", err, errlen);
	if (rc == HFAX_OK && parse_jobid(r.text, id, sizeof id) != 0) {
		seterr(err, errlen, "HylaFAX: no job id in the JNEW reply");
		rc = HFAX_TEMP;
	}
	char v[220];
	if (rc == HFAX_OK)
		rc = set_parm(c, "FROMUSER", c->user, err, errlen);
	if (rc == HFAX_OK && o->notify_addr && *o->notify_addr)
		rc = set_parm(c, "NOTIFYADDR", o->notify_addr, err, errlen);
	if (rc == HFAX_OK)
		rc = set_parm(c, "DIALSTRING", o->number, err, errlen);
	if (rc == HFAX_OK)
		rc = set_parm(c, "NOTIFY", "NONE", err, errlen);
	if (rc == HFAX_OK)
		rc = set_parm(c, "VRES", o->fine ? "196" : "98", err, errlen);
	if (rc == HFAX_OK)
		rc = set_parm(c, "PAGEWIDTH", o->letter ? "216" : "210", err, errlen);
	if (rc == HFAX_OK)
		rc = set_parm(c, "PAGELENGTH", o->letter ? "279" : "297", err, errlen);
	if (rc == HFAX_OK && o->max_dials > 0) {
		snprintf(v, sizeof v, "%d", o->max_dials);
		rc = set_parm(c, "MAXDIALS", v, err, errlen);
	}
	if (rc == HFAX_OK && o->max_tries > 0) {
		snprintf(v, sizeof v, "%d", o->max_tries);
		rc = set_parm(c, "MAXTRIES", v, err, errlen);
	}
	/* SENDTIME before LASTTIME: hfaxd makes LASTTIME relative to SENDTIME,
	 * and without either the job's kill time is a bare 3 hours after the
	 * epoch (faxq then fails the job at once as "timedout"). */
	if (rc == HFAX_OK)
		rc = set_parm(c, "SENDTIME", "NOW", err, errlen);
	if (rc == HFAX_OK) {
		int m = o->kill_minutes > 0 ? o->kill_minutes : 180; /* HylaFAX's FAX_TIMEOUT */
		snprintf(v, sizeof v, "%02d%02d%02d", m / 1440, (m / 60) % 24, m % 60);
		rc = set_parm(c, "LASTTIME", v, err, errlen);
	}
	if (rc == HFAX_OK && o->user_key && *o->user_key)
		rc = set_parm(c, "USRKEY", o->user_key, err, errlen);
	if (rc == HFAX_OK && o->tag_line && *o->tag_line) {
		snprintf(v, sizeof v, "\"%s\"", o->tag_line);
		rc = set_parm(c, "TAGLINE", v, err, errlen);
	}
	if (rc == HFAX_OK)
		rc = set_parm(c, "PAGECHOP", "NONE", err, errlen);
	if (rc == HFAX_OK)
		rc = set_parm(c, "DOCUMENT", doc, err, errlen);
	if (rc == HFAX_OK)
		rc = cmd(c, &r, err, errlen, "JSUBM");
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "JSUBM", err, errlen);
	if (rc != HFAX_OK && id[0] && !c->broken) {
		/* never submitted: remove the job and its link in docq now */
		char ignored[64];
		(void)cmd(c, &r, ignored, sizeof ignored, "JDELE %s", id);
		(void)cmd(c, &r, ignored, sizeof ignored, "DELE /docq/%s.%s", doc + 5, id);
	}
	/* the job holds its own link in docq: drop the temporary copy now
	 * rather than at the end of the session */
	if (!c->broken) {
		char ignored[64];
		(void)cmd(c, &r, ignored, sizeof ignored, "DELE %s", doc);
	}
	sb_free(&r.lines);
	if (rc == HFAX_OK && (size_t)snprintf(jobid, jobidlen, "%s", id) >= jobidlen) {
		seterr(err, errlen, "job id buffer too small");
		return HFAX_PERM;
	}
	return rc;
}

static enum hfax_state map_state(const char *s)
{
	static const char *const pending[] = {"SUSPENDED", "PENDING", "SLEEPING", "BLOCKED",
	                                      "READY"};
	for (size_t i = 0; i < sizeof pending / sizeof pending[0]; i++)
		if (strcmp(s, pending[i]) == 0)
			return HFAX_STATE_PENDING;
	if (strcmp(s, "ACTIVE") == 0)
		return HFAX_STATE_ACTIVE;
	if (strcmp(s, "DONE") == 0)
		return HFAX_STATE_DONE;
	if (strcmp(s, "FAILED") == 0)
		return HFAX_STATE_FAILED;
	return HFAX_STATE_UNKNOWN;
}

/* JOB n: HFAX_OK (selected), HFAX_OK with *gone set, or an error. */
static int select_job(struct hfax_conn *c, const char *jobid, int *gone, char *err, size_t errlen)
{
	struct reply r;
	reply_init(&r, 0);
	*gone = 0;
	int rc = cmd(c, &r, err, errlen, "JOB %s", jobid);
	if (rc == HFAX_OK && r.code / 100 != 2) {
		if (r.code >= 500 && strstr(r.text, "does not exist"))
			*gone = 1;
		else
			rc = refused(&r, "JOB", err, errlen);
	}
	sb_free(&r.lines);
	return rc;
}

static int get_parm(struct hfax_conn *c, const char *name, char *val, size_t vallen, char *err,
                    size_t errlen)
{
	struct reply r;
	reply_init(&r, 0);
	int rc = cmd(c, &r, err, errlen, "JPARM %s", name);
	if (rc == HFAX_OK && r.code / 100 != 2) {
		char what[48];
		snprintf(what, sizeof what, "JPARM %s", name);
		rc = refused(&r, what, err, errlen);
	}
	if (rc == HFAX_OK && vallen > 0) {
		size_t n = strlen(r.text); /* cut to fit: status texts can be long */
		if (n >= vallen)
			n = vallen - 1;
		memcpy(val, r.text, n);
		val[n] = '\0';
	}
	sb_free(&r.lines);
	return rc;
}

static int get_num(struct hfax_conn *c, const char *name, int *v, char *err, size_t errlen)
{
	char buf[64];
	int rc = get_parm(c, name, buf, sizeof buf, err, errlen);
	if (rc == HFAX_OK && parse_uint(buf, v) != 0) {
		seterr(err, errlen, "HylaFAX: JPARM %s: not a number", name);
		rc = HFAX_TEMP;
	}
	return rc;
}

/* The remote CSI is not a job parameter of the protocol; faxsend stores it in
 * the job's queue file ("csi:"), which the owner may RETR (JobProtection). */
static void read_csi(struct hfax_conn *c, const char *jobid, int finished, char *csi, size_t csilen)
{
	struct strbuf data;
	char ignored[128];
	sb_init(&data);
	csi[0] = '\0';
	int rc = fetch_data(c, &data, ignored, sizeof ignored, "RETR /%s/q%s",
	                    finished ? "doneq" : "sendq", jobid);
	if (rc == HFAX_OK) {
		const char *p = data.data ? data.data : "";
		const char *end = p + data.len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
			if (n > 4 && memcmp(p, "csi:", 4) == 0) {
				const char *v = p + 4;
				size_t vn = n - 4;
				while (vn > 0 && (*v == ' ' || *v == '\t'))
					v++, vn--;
				while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\r'))
					vn--;
				clean_copy(csi, csilen, v, vn);
				break;
			}
			p += n + 1;
		}
	}
	sb_free(&data);
}

static int poll_once(struct hfax_conn *c, const char *jobid, struct hfax_status *st, char *err,
                     size_t errlen);

/*
 * faxq moves a finished job from sendq to doneq at any moment: hfaxd then
 * answers "job deleted by another party" for the job this session selected
 * until it is selected again.  Select it again and read it once more.
 */
int hfax_poll(struct hfax_conn *c, const char *jobid, struct hfax_status *st, char *err,
              size_t errlen)
{
	int rc = HFAX_TEMP;

	for (int attempt = 0; attempt < 3; attempt++) {
		rc = poll_once(c, jobid, st, err, errlen);
		if (rc == HFAX_OK || err == NULL || strstr(err, "another party") == NULL)
			return rc;
		usleep(200000);
	}
	return rc;
}

static int poll_once(struct hfax_conn *c, const char *jobid, struct hfax_status *st, char *err,
                     size_t errlen)
{
	memset(st, 0, sizeof *st);
	if (!valid_jobid(jobid)) {
		seterr(err, errlen, "invalid job id");
		return HFAX_PERM;
	}
	int gone;
	int rc = select_job(c, jobid, &gone, err, errlen);
	if (rc != HFAX_OK)
		return rc;
	if (gone) {
		st->state = HFAX_STATE_GONE;
		snprintf(st->state_text, sizeof st->state_text, "GONE");
		return HFAX_OK;
	}
	rc = get_parm(c, "STATE", st->state_text, sizeof st->state_text, err, errlen);
	if (rc == HFAX_OK)
		rc = get_parm(c, "STATUS", st->status, sizeof st->status, err, errlen);
	if (rc == HFAX_OK)
		rc = get_num(c, "NPAGES", &st->npages, err, errlen);
	if (rc == HFAX_OK)
		rc = get_num(c, "TOTPAGES", &st->totpages, err, errlen);
	if (rc == HFAX_OK)
		rc = get_num(c, "TOTDIALS", &st->ndials, err, errlen);
	if (rc == HFAX_OK)
		rc = get_num(c, "TOTTRIES", &st->ntries, err, errlen);
	if (rc == HFAX_OK)
		rc = get_num(c, "MAXDIALS", &st->maxdials, err, errlen);
	if (rc == HFAX_OK)
		rc = get_num(c, "MAXTRIES", &st->maxtries, err, errlen);
	if (rc != HFAX_OK)
		return rc;
	st->state = map_state(st->state_text);
	if (st->state == HFAX_STATE_DONE || st->state == HFAX_STATE_FAILED)
		read_csi(c, jobid, 1, st->csi, sizeof st->csi);
	return HFAX_OK;
}

/* A document a job names ("TIFF docq/doc12.tif" or "… docq/doc12.tif.7"):
 * only plain names directly in docq are accepted. */
static int parse_doc_line(const char *line, char *path, size_t pathlen)
{
	const char *p = strchr(line, ' ');
	if (!p)
		return -1;
	p++;
	if (*p == '/')
		p++;
	if (strncmp(p, "docq/", 5) != 0)
		return -1;
	const char *name = p + 5;
	if (!all_in(name, 1, 64, "._-", 1) || name[0] == '.' || strstr(name, ".."))
		return -1;
	if ((size_t)snprintf(path, pathlen, "/docq/%s", name) >= pathlen)
		return -1;
	return 0;
}

/* DELE one document; a file already gone is fine. */
static int remove_doc(struct hfax_conn *c, const char *path, char *err, size_t errlen)
{
	struct reply r;
	reply_init(&r, 0);
	int rc = cmd(c, &r, err, errlen, "DELE %s", path);
	if (rc == HFAX_OK && r.code / 100 != 2 && !strstr(r.text, "No such file")) {
		rc = refused(&r, "DELE", err, errlen);
		if (strstr(r.text, "not permitted"))
			seterr(err, errlen,
			       "HylaFAX refuses to delete %s for an unprivileged user (use "
			       "hfax_admin, "
			       "or faxqclean on the server): %d %s",
			       path, r.code, r.text);
	}
	sb_free(&r.lines);
	return rc;
}

int hfax_delete(struct hfax_conn *c, const char *jobid, char *err, size_t errlen)
{
	if (!valid_jobid(jobid)) {
		seterr(err, errlen, "invalid job id");
		return HFAX_PERM;
	}
	int gone;
	int rc = select_job(c, jobid, &gone, err, errlen);
	if (rc != HFAX_OK || gone)
		return rc;
	char state[32];
	rc = get_parm(c, "STATE", state, sizeof state, err, errlen);
	if (rc != HFAX_OK)
		return rc;
	struct reply r;
	reply_init(&r, 1);
	if (strcmp(state, "DONE") != 0 && strcmp(state, "FAILED") != 0 &&
	    strcmp(state, "SUSPENDED") != 0) {
		rc = cmd(c, &r, err, errlen, "JKILL %s", jobid);
		if (rc == HFAX_OK && r.code / 100 != 2 && !strstr(r.text, "already done"))
			rc = refused(&r, "JKILL", err, errlen);
		/* faxq acknowledges the kill and moves the queue file to doneq:
		 * select the job again (hfaxd then finds it there) until it is over */
		long long deadline = now_ms() + c->timeout_ms;
		while (rc == HFAX_OK) {
			rc = select_job(c, jobid, &gone, err, errlen);
			if (rc == HFAX_OK && gone)
				goto out; /* removed meanwhile: nothing left to name its documents
				           */
			if (rc == HFAX_OK)
				rc = get_parm(c, "STATE", state, sizeof state, err, errlen);
			if (rc != HFAX_OK || strcmp(state, "DONE") == 0 ||
			    strcmp(state, "FAILED") == 0)
				break;
			if (now_ms() > deadline) {
				seterr(err, errlen, "HylaFAX: job %s still %s after JKILL", jobid,
				       state);
				rc = HFAX_TEMP;
				break;
			}
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (rc != HFAX_OK)
			goto out;
	}
	/* the documents, before the job that names them is gone */
	char docs[8][80];
	int ndocs = 0;
	rc = cmd(c, &r, err, errlen, "JPARM DOCUMENT");
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "JPARM DOCUMENT", err, errlen);
	if (rc != HFAX_OK)
		goto out;
	for (char *line = r.lines.data, *nl; line && *line && ndocs < 8; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (parse_doc_line(line, docs[ndocs], sizeof docs[ndocs]) == 0)
			ndocs++;
	}
	rc = cmd(c, &r, err, errlen, "JDELE %s", jobid);
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "JDELE", err, errlen);
	if (rc != HFAX_OK)
		goto out;
	/* JDELE leaves a finished job's documents in docq (faxqclean's work):
	 * remove each under its base name ("doc12.tif") and its per-job link
	 * name ("doc12.tif.7"), and the STOT copy ("/tmp/doc12.tif") that hfaxd
	 * keeps until the submitting session ends. */
	for (int i = 0; i < ndocs && rc == HFAX_OK; i++) {
		const char *name = docs[i] + 6; /* after "/docq/" */
		size_t n = strlen(name), sl = strlen(jobid);
		if (n > sl + 1 && name[n - sl - 1] == '.' && strcmp(name + n - sl, jobid) == 0)
			n -= sl + 1;
		char base[80], cand[3][100];
		snprintf(base, sizeof base, "%.*s", (int)n, name);
		snprintf(cand[0], sizeof cand[0], "/docq/%s", base);
		snprintf(cand[1], sizeof cand[1], "/docq/%s.%s", base, jobid);
		snprintf(cand[2], sizeof cand[2], "/tmp/%s", base);
		for (int k = 0; k < 3 && rc == HFAX_OK; k++)
			rc = remove_doc(c, cand[k], err, errlen);
	}
out:
	sb_free(&r.lines);
	return rc;
}

int hfax_find_by_key(struct hfax_conn *c, const char *user_key, char *jobid, size_t jobidlen,
                     char *err, size_t errlen)
{
	if (jobidlen > 0)
		jobid[0] = '\0';
	if (!valid_key(user_key)) {
		seterr(err, errlen, "invalid job key (A-Z a-z 0-9 -)");
		return HFAX_PERM;
	}
	struct reply r;
	reply_init(&r, 0);
	int rc = cmd(c, &r, err, errlen, "JOBFMT \"%%j|%%o|%%J\"");
	if (rc == HFAX_OK && r.code / 100 != 2)
		rc = refused(&r, "JOBFMT", err, errlen);
	sb_free(&r.lines);
	if (rc != HFAX_OK)
		return rc;
	long best = -1;
	static const char *const dirs[] = {"/sendq", "/doneq"};
	for (size_t d = 0; d < 2 && rc == HFAX_OK; d++) {
		struct strbuf data;
		sb_init(&data);
		rc = fetch_data(c, &data, err, errlen, "LIST %s", dirs[d]);
		const char *p = data.data ? data.data : "";
		const char *end = p + data.len;
		while (rc == HFAX_OK && p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
			char line[256];
			clean_copy(line, sizeof line, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n);
			p += n + 1;
			/* "id|owner|key", each field trimmed */
			char *f[3], *save = NULL;
			int k = 0;
			for (char *t = strtok_r(line, "|", &save); t && k < 3;
			     t = strtok_r(NULL, "|", &save))
				f[k++] = str_trim(t);
			if (k != 3 || !valid_jobid(f[0]) || strcmp(f[1], c->user) != 0 ||
			    strcmp(f[2], user_key) != 0)
				continue;
			long id = atol(f[0]);
			if (id > best)
				best = id;
		}
		sb_free(&data);
	}
	if (rc == HFAX_OK && best >= 0 &&
	    (size_t)snprintf(jobid, jobidlen, "%ld", best) >= jobidlen) {
		seterr(err, errlen, "job id buffer too small");
		return HFAX_PERM;
	}
	return rc;
}
