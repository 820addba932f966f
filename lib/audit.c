/*
 * audit.c — audit records (building from a verdict, cleaning, canonical
 * serialisation, spool line form, hash chain and HMAC key) and the milter
 * side of the audit trail: a bounded queue drained by one writer thread into
 * the store, with the configured failure mode (tempfail or local spool and
 * catch-up).  The stores themselves are in audit_store.c.
 */
#include "autoconfig.h"

#include "audit.h"
#include "policy.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CANON_VERSION "clinimail-audit-1"
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* Field limits, in bytes: envelope data is hostile and unbounded. */
#define MAX_ADDR 320
#define MAX_SHORT 128
#define MAX_MSGID 512
#define MAX_LIST 65536
#define MAX_JUSTIFICATION 500

/* ---- the fields, in canonical order ---- */

static const struct {
	const char *name;
	size_t off; /* offsetof(struct audit_record, …); exception is special */
} fields[] = {
    {"kind", offsetof(struct audit_record, kind)},
    {"time", offsetof(struct audit_record, time)},
    {"host", offsetof(struct audit_record, host)},
    {"ref", offsetof(struct audit_record, ref)},
    {"queue_id", offsetof(struct audit_record, queue_id)},
    {"message_id", offsetof(struct audit_record, message_id)},
    {"sender", offsetof(struct audit_record, sender)},
    {"auth_login", offsetof(struct audit_record, auth_login)},
    {"recipients", offsetof(struct audit_record, recipients)},
    {"rules", offsetof(struct audit_record, rules)},
    {"action", offsetof(struct audit_record, action)},
    {"changes", offsetof(struct audit_record, changes)},
    {"content", offsetof(struct audit_record, content)},
    {"body_sha256", offsetof(struct audit_record, body_sha256)},
    {"exception", 0},
    {"justification", offsetof(struct audit_record, justification)},
    {"detail", offsetof(struct audit_record, detail)},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static char **field_ptr(struct audit_record *r, size_t i)
{
	return (char **)((char *)r + fields[i].off);
}

static const char *field_val(const struct audit_record *r, size_t i)
{
	return *(char *const *)((const char *)r + fields[i].off);
}

/* ---- cleaning ---- */

/* A copy of s that is valid UTF-8, free of control characters, at most max bytes. */
static char *clean_text(const char *s, size_t max)
{
	struct strbuf sb;
	gchar *valid;

	sb_init(&sb);
	sb_puts(&sb, "");
	if (s == NULL)
		return sb_steal(&sb);
	valid = g_utf8_make_valid(s, -1);
	for (const gchar *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		size_t clen = (size_t)(g_utf8_next_char(p) - p);

		if (sb.len + clen > max)
			break;
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == 0x2028 || c == 0x2029)
			sb_putc(&sb, '?');
		else
			sb_append(&sb, p, clen);
	}
	g_free(valid);
	return sb_steal(&sb);
}

void audit_set(char **field, const char *s, size_t max)
{
	free(*field);
	*field = clean_text(s, max);
}

struct audit_record *audit_record_new(void)
{
	struct audit_record *r = xcalloc(1, sizeof(*r));

	for (size_t i = 0; i < NFIELDS; i++)
		if (fields[i].off != 0)
			*field_ptr(r, i) = xstrdup("");
	r->prev_hash = xstrdup("");
	r->hash = xstrdup("");
	return r;
}

void audit_record_free(struct audit_record *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < NFIELDS; i++)
		if (fields[i].off != 0)
			free(*field_ptr(r, i));
	free(r->prev_hash);
	free(r->hash);
	free(r);
}

struct audit_record *audit_record_dup(const struct audit_record *r)
{
	struct audit_record *d = xcalloc(1, sizeof(*d));

	for (size_t i = 0; i < NFIELDS; i++)
		if (fields[i].off != 0)
			*field_ptr(d, i) = xstrdup(field_val(r, i) ? field_val(r, i) : "");
	d->id = r->id;
	d->exception = r->exception;
	d->prev_hash = xstrdup(r->prev_hash ? r->prev_hash : "");
	d->hash = xstrdup(r->hash ? r->hash : "");
	return d;
}

/* ---- time ---- */

void audit_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
		ts.tv_sec = time(NULL);
		ts.tv_nsec = 0;
	}
	if (gmtime_r(&ts.tv_sec, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
}

static int digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int num(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

int audit_parse_date(const char *in, int end_of_day, char *out, size_t len)
{
	struct tm tm;
	int hh = 0, mm = 0, ss = 0;
	size_t n;

	if (in == NULL)
		return -1;
	n = strlen(in);
	if (n < 10 || !digits(in, 4) || in[4] != '-' || !digits(in + 5, 2) || in[7] != '-' ||
	    !digits(in + 8, 2))
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = num(in, 4) - 1900;
	tm.tm_mon = num(in + 5, 2) - 1;
	tm.tm_mday = num(in + 8, 2);
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	if (n > 10) {
		const char *t = in + 10;
		if ((*t != 'T' && *t != ' ') || strlen(t) < 6 || !digits(t + 1, 2) || t[3] != ':' ||
		    !digits(t + 4, 2))
			return -1;
		hh = num(t + 1, 2);
		mm = num(t + 4, 2);
		t += 6;
		if (*t == ':') {
			if (!digits(t + 1, 2))
				return -1;
			ss = num(t + 1, 2);
			t += 3;
		}
		if (*t == 'Z')
			t++;
		if (*t != '\0' || hh > 23 || mm > 59 || ss > 60)
			return -1;
		end_of_day = 0;
	}
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	if (end_of_day)
		t += 86400;
	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	/* Reject dates that do not exist (2026-02-30 would roll over). */
	if (!end_of_day && tm.tm_mday != num(in + 8, 2))
		return -1;
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* ---- building a decision record ---- */

static const char *final_action(const struct verdict *v)
{
	switch (v->action) {
	case VERDICT_ACCEPT:
		return v->nadded > 0 || v->applied[0] || v->fax_approved ? "modified" : "accepted";
	case VERDICT_REJECT:
		return "rejected";
	case VERDICT_HOLD:
		return "held";
	case VERDICT_TEMPFAIL:
	default:
		return "tempfailed";
	}
}

static void add_rcpt_line(struct strbuf *sb, const char *cls, int fax, int added, const char *addr)
{
	char *clean = clean_text(addr, MAX_ADDR);

	/* The address itself may hold spaces (quoted local part): it comes last. */
	for (char *p = clean; *p; p++)
		if (*p == '\n')
			*p = '?';
	if (sb->len > 0)
		sb_putc(sb, '\n');
	sb_printf(sb, "%s%s%s %s", cls, fax ? ",fax" : "", added ? ",added" : "",
	          *clean ? clean : "?");
	free(clean);
}

struct audit_record *audit_record_from_verdict(const struct envelope *env, const struct verdict *v,
                                               const char *host)
{
	struct audit_record *r = audit_record_new();
	struct strbuf sb;
	char buf[256];

	audit_set(&r->kind, "decision", MAX_SHORT);
	audit_now(buf, sizeof(buf));
	audit_set(&r->time, buf, MAX_SHORT);
	audit_set(&r->host, host, MAX_SHORT);
	audit_set(&r->ref, v->ref, MAX_SHORT);
	audit_set(&r->queue_id, env != NULL ? env->queue_id : NULL, MAX_SHORT);
	audit_set(&r->message_id, v->message_id, MAX_MSGID);
	if (env != NULL && env->mail_from != NULL && env->mail_from[0] != '\0' &&
	    strcmp(env->mail_from, "<>") != 0) {
		char *norm = addr_normalize(env->mail_from);
		audit_set(&r->sender, norm != NULL ? norm : env->mail_from, MAX_ADDR);
		free(norm);
	} else {
		audit_set(&r->sender, "<>", MAX_SHORT);
	}
	audit_set(&r->auth_login, env != NULL ? env->auth_login : NULL, MAX_SHORT);

	sb_init(&sb);
	if (v->nrcpts > 0) {
		for (size_t i = 0; i < v->nrcpts && sb.len < MAX_LIST; i++)
			add_rcpt_line(&sb, rcpt_class_name(v->rcpts[i].cls), v->rcpts[i].via_fax, 0,
			              v->rcpts[i].addr);
	} else if (env != NULL) {
		/* No classification (internal error before it): the envelope as given. */
		for (size_t i = 0; i < env->nrcpts && sb.len < MAX_LIST; i++) {
			char *norm = addr_normalize(env->rcpts[i]);
			add_rcpt_line(&sb, "unknown", 0, 0, norm != NULL ? norm : env->rcpts[i]);
			free(norm);
		}
	}
	for (size_t i = 0; i < v->nadded && sb.len < MAX_LIST; i++)
		add_rcpt_line(&sb, "archives", 0, 1, v->added_rcpts[i]);
	/* Each line is already clean; the newlines between them are the format. */
	free(r->recipients);
	r->recipients = xstrdup(sb.data != NULL ? sb.data : "");
	sb_reset(&sb);

	for (size_t i = 0; i < v->nhits; i++)
		sb_printf(&sb, "%s%s:%s", i ? "," : "", rule_name(v->hits[i].rule),
		          rule_action_name(v->hits[i].action));
	audit_set(&r->rules, sb.data, MAX_LIST);
	sb_reset(&sb);

	audit_set(&r->action, final_action(v), MAX_SHORT);
	if (v->nadded > 0 || v->applied[0] || v->fax_approved) {
		struct strbuf ch;
		sb_init(&ch);
		if (v->nadded > 0)
			sb_puts(&ch, "archives-added");
		if (v->applied[0])
			sb_printf(&ch, "%s%s", ch.len ? "," : "", v->applied);
		if (v->fax_approved)
			sb_printf(&ch, "%s%s", ch.len ? "," : "", "fax-approved");
		audit_set(&r->changes, ch.data, MAX_SHORT);
		sb_free(&ch);
	}
	content_class_names(v->content, buf, sizeof(buf));
	audit_set(&r->content, buf, MAX_SHORT);
	if (v->have_body_hash) {
		for (size_t i = 0; i < sizeof(v->body_sha256); i++)
			snprintf(buf + 2 * i, 3, "%02x", v->body_sha256[i]);
		audit_set(&r->body_sha256, buf, MAX_SHORT);
	}
	r->exception = v->exception_reason != NULL;
	if (v->exception_reason != NULL)
		audit_set(&r->justification, v->exception_reason, MAX_JUSTIFICATION);
	if (v->oversize)
		sb_puts(&sb, "oversize=yes");
	if (v->action == VERDICT_TEMPFAIL)
		sb_printf(&sb, "%serror=yes", sb.len ? " " : "");
	audit_set(&r->detail, sb.data, MAX_SHORT);
	sb_free(&sb);
	return r;
}

/* ---- serialisations ---- */

char *audit_canonical(const struct audit_record *r, size_t *len)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_puts(&sb, CANON_VERSION "\n");
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *v = fields[i].off != 0 ? field_val(r, i) : (r->exception ? "1" : "0");
		if (v == NULL)
			v = "";
		sb_printf(&sb, "%s:%zu:", fields[i].name, strlen(v));
		sb_puts(&sb, v);
		sb_putc(&sb, '\n');
	}
	if (len != NULL)
		*len = sb.len;
	return sb_steal(&sb);
}

static void escape_into(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\':
			sb_puts(sb, "\\\\");
			break;
		case '\t':
			sb_puts(sb, "\\t");
			break;
		case '\n':
			sb_puts(sb, "\\n");
			break;
		case '\r':
			sb_puts(sb, "\\r");
			break;
		default:
			sb_putc(sb, *s);
		}
	}
}

char *audit_record_to_line(const struct audit_record *r)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_puts(&sb, CANON_VERSION);
	for (size_t i = 0; i < NFIELDS; i++) {
		sb_putc(&sb, '\t');
		if (fields[i].off == 0)
			sb_puts(&sb, r->exception ? "1" : "0");
		else
			escape_into(&sb, field_val(r, i) ? field_val(r, i) : "");
	}
	return sb_steal(&sb);
}

struct audit_record *audit_record_from_line(const char *line)
{
	const size_t vlen = strlen(CANON_VERSION);
	struct audit_record *r;
	const char *p;
	struct strbuf sb;

	if (line == NULL || strncmp(line, CANON_VERSION, vlen) != 0 || line[vlen] != '\t')
		return NULL;
	r = audit_record_new();
	p = line + vlen;
	sb_init(&sb);
	for (size_t i = 0; i < NFIELDS; i++) {
		if (*p != '\t')
			goto bad;
		p++;
		sb_reset(&sb);
		sb_puts(&sb, "");
		for (; *p != '\0' && *p != '\t' && *p != '\n' && *p != '\r'; p++) {
			if (*p == '\\') {
				p++;
				if (*p == '\\')
					sb_putc(&sb, '\\');
				else if (*p == 't')
					sb_putc(&sb, '\t');
				else if (*p == 'n')
					sb_putc(&sb, '\n');
				else if (*p == 'r')
					sb_putc(&sb, '\r');
				else
					goto bad;
			} else {
				sb_putc(&sb, *p);
			}
		}
		if (fields[i].off == 0) {
			if (strcmp(sb.data, "0") != 0 && strcmp(sb.data, "1") != 0)
				goto bad;
			r->exception = sb.data[0] == '1';
		} else if (strcmp(fields[i].name, "recipients") == 0) {
			/* Keep the line structure; clean each line. */
			struct strbuf out;
			char *save = NULL, *copy = xstrdup(sb.data);
			sb_init(&out);
			for (char *l = strtok_r(copy, "\n", &save); l;
			     l = strtok_r(NULL, "\n", &save)) {
				char *c = clean_text(l, MAX_ADDR + MAX_SHORT);
				if (out.len)
					sb_putc(&out, '\n');
				sb_puts(&out, c);
				free(c);
			}
			free(copy);
			free(*field_ptr(r, i));
			*field_ptr(r, i) = out.data ? sb_steal(&out) : xstrdup("");
		} else {
			audit_set(field_ptr(r, i), sb.data, MAX_LIST);
		}
	}
	if (*p != '\0' && *p != '\n' && *p != '\r')
		goto bad;
	sb_free(&sb);
	return r;
bad:
	sb_free(&sb);
	audit_record_free(r);
	return NULL;
}

void audit_record_summary(const struct audit_record *r, char *buf, size_t len)
{
	snprintf(buf, len, "audit: ref=%s kind=%s action=%s rules=%s content=%s%s%s%s",
	         r->ref[0] ? r->ref : "-", r->kind, r->action[0] ? r->action : "-",
	         r->rules[0] ? r->rules : "-", r->content[0] ? r->content : "-",
	         r->changes[0] ? " changes=" : "", r->changes,
	         r->exception ? " exception=yes" : "");
}

/* ---- hashing ---- */

static void to_hex(const unsigned char *md, size_t n, char *hex)
{
	static const char digitsx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digitsx[md[i] >> 4];
		hex[2 * i + 1] = digitsx[md[i] & 15];
	}
	hex[2 * n] = '\0';
}

void audit_record_hash(const struct audit_record *r, const char *prev_hash,
                       const struct audit_key *k, char hex[AUDIT_HASH_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct strbuf sb;
	size_t clen;
	char *canon = audit_canonical(r, &clen);

	sb_init(&sb);
	sb_puts(&sb, prev_hash != NULL && prev_hash[0] ? prev_hash : ZERO_HASH);
	sb_putc(&sb, '\n');
	sb_append(&sb, canon, clen);
	free(canon);
	if (k != NULL && k->len > 0) {
		if (HMAC(EVP_sha256(), k->key, (int)k->len, (const unsigned char *)sb.data, sb.len,
		         md, &mdlen) == NULL)
			msg_fatal("audit: HMAC-SHA256 failed");
	} else if (EVP_Digest(sb.data, sb.len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		msg_fatal("audit: SHA-256 failed");
	}
	sb_free(&sb);
	to_hex(md, 32, hex);
}

int audit_key_load(const char *path, struct audit_key *k, char *err, size_t errlen)
{
	struct stat st;
	unsigned char buf[sizeof(k->key) + 2];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	ssize_t n;
	size_t len;
	int fd;

	memset(k, 0, sizeof(*k));
	fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "audit key %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "audit key %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 007) != 0) {
		snprintf(err, errlen,
		         "audit key %s: readable or writable by others (mode %03o): "
		         "refused, chmod o-rwx it",
		         path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "audit key %s: %s", path, strerror(errno));
		return -1;
	}
	len = (size_t)n;
	if (len > sizeof(k->key) + 1) {
		snprintf(err, errlen, "audit key %s: longer than %zu bytes", path, sizeof(k->key));
		return -1;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len < 16 || len > sizeof(k->key)) {
		snprintf(err, errlen, "audit key %s: must hold 16 to %zu bytes", path,
		         sizeof(k->key));
		return -1;
	}
	memcpy(k->key, buf, len);
	k->len = len;
	OPENSSL_cleanse(buf, sizeof(buf));
	{
		/* A public identifier of the key: SHA-256 of a label and the key. */
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		static const char label[] = "clinimail-audit-key-id\n";
		if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(ctx, label, sizeof(label) - 1) != 1 ||
		    EVP_DigestUpdate(ctx, k->key, k->len) != 1 ||
		    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
			EVP_MD_CTX_free(ctx);
			snprintf(err, errlen, "audit key %s: SHA-256 failed", path);
			return -1;
		}
		EVP_MD_CTX_free(ctx);
	}
	to_hex(md, 8, k->id);
	return 0;
}

void audit_key_mode(const struct audit_key *k, char *buf, size_t len)
{
	if (k != NULL && k->len > 0)
		snprintf(buf, len, "hmac-sha256:%s", k->id);
	else
		snprintf(buf, len, "sha256");
}

/* ==== the milter side: queue, writer thread, spool ==== */

#define BATCH_MAX 256
#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 2000
#define CLOSE_GIVE_UP_MS 3000

struct audit {
	char *store_spec; /* NULL: log only */
	struct audit_key key;
	char mode[64];
	char *spool_dir; /* NULL: tempfail mode */
	char host[256];
	int idle_close_ms;

	pthread_mutex_t lock;
	pthread_cond_t wake; /* the writer waits on it */
	pthread_cond_t done; /* audit_flush waits on it */
	struct audit_record **q;
	size_t qmax, qhead, qlen;
	int stop;
	int store_down;
	int writing; /* the writer holds a batch taken from the queue head */
	unsigned long stored, spooled, refused;
	pthread_t thread;
	int thread_started;

	/* writer thread only */
	struct audit_store *store;
	int spool_fd; /* the spool file being appended to, -1 */
	char *spool_path;
	int spool_pending; /* spool files may wait for catch-up */
	unsigned spool_seq;
};

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000L + (now.tv_nsec - t->tv_nsec) / 1000000L;
}

/* Writer: make sure the store is open.  0, or -1 with err. */
static int writer_open(struct audit *a, char *err, size_t errlen)
{
	if (a->store != NULL)
		return 0;
	/* Created at audit_open(); a store that vanished since is an outage, not re-created. */
	a->store = audit_store_open(a->store_spec, 2, a->mode, err, errlen);
	return a->store != NULL ? 0 : -1;
}

static void writer_close_store(struct audit *a)
{
	if (a->store != NULL) {
		audit_store_close(a->store);
		a->store = NULL;
	}
}

/* Append with one reconnection attempt (a server restart, a stale file handle). */
static int writer_append(struct audit *a, struct audit_record *const *recs, size_t n, char *err,
                         size_t errlen)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (writer_open(a, err, errlen) == 0 &&
		    audit_store_append(a->store, recs, n, &a->key, err, errlen) == 0)
			return 0;
		writer_close_store(a);
	}
	return -1;
}

static void spool_close(struct audit *a)
{
	if (a->spool_fd >= 0) {
		close(a->spool_fd); /* releases the flock */
		a->spool_fd = -1;
	}
	free(a->spool_path);
	a->spool_path = NULL;
}

/* Append records to this writer's spool file (created, locked, on first use). */
static int spool_append(struct audit *a, struct audit_record *const *recs, size_t n)
{
	struct strbuf sb;
	size_t off = 0;
	int rc = 0;

	if (a->spool_fd < 0) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		struct strbuf p;

		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
		sb_init(&p);
		sb_printf(&p, "%s/%s-%ld-%u.audit", a->spool_dir, stamp, (long)getpid(),
		          a->spool_seq++);
		a->spool_fd =
		    open(p.data, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (a->spool_fd < 0 || flock(a->spool_fd, LOCK_EX) != 0) {
			msg_error("audit: spool %s: %s", p.data, strerror(errno));
			if (a->spool_fd >= 0)
				close(a->spool_fd);
			a->spool_fd = -1;
			sb_free(&p);
			return -1;
		}
		a->spool_path = sb_steal(&p);
		a->spool_pending = 1;
		msg_warn("audit: store unavailable: spooling records to %s", a->spool_path);
	}
	sb_init(&sb);
	for (size_t i = 0; i < n; i++) {
		char *line = audit_record_to_line(recs[i]);
		sb_puts(&sb, line);
		sb_putc(&sb, '\n');
		free(line);
	}
	while (off < sb.len) {
		ssize_t w = write(a->spool_fd, sb.data + off, sb.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			msg_error("audit: spool %s: write: %s", a->spool_path, strerror(errno));
			rc = -1;
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fdatasync(a->spool_fd) != 0) {
		msg_error("audit: spool %s: fdatasync: %s", a->spool_path, strerror(errno));
		rc = -1;
	}
	if (rc != 0 && off > 0) {
		/* A partial line would be lost at catch-up: cut it off, or stop using this file. */
		struct stat st;
		if (fstat(a->spool_fd, &st) != 0 ||
		    ftruncate(a->spool_fd, st.st_size - (off_t)off) != 0)
			spool_close(a);
	}
	sb_free(&sb);
	return rc;
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Whether the store already holds this record (a catch-up interrupted after its commit). */
struct dup_probe {
	const struct audit_record *r;
	int found;
};

static int dup_cb(const struct audit_record *s, void *arg)
{
	struct dup_probe *d = arg;
	if (strcmp(s->time, d->r->time) == 0 && strcmp(s->host, d->r->host) == 0 &&
	    strcmp(s->kind, d->r->kind) == 0 && strcmp(s->queue_id, d->r->queue_id) == 0) {
		d->found = 1;
		return 1;
	}
	return 0;
}

/* Insert one spool file into the store, then remove it.  0, or -1 (store failed). */
static int catch_up_file(struct audit *a, const char *path, int *skipped)
{
	char err[512];
	FILE *fp;
	int fd, rc = 0;
	char *line = NULL;
	size_t cap = 0, n = 0, total = 0, bad = 0;
	struct audit_record *batch[BATCH_MAX];

	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd); /* another writer is still appending to it */
		*skipped = 1;
		return 0;
	}
	fp = fdopen(fd, "r");
	if (fp == NULL) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t len = getline(&line, &cap, fp);
		struct audit_record *r = NULL;

		if (len > 0) {
			r = audit_record_from_line(line);
			if (r == NULL) {
				bad++;
				continue;
			}
			struct audit_query q = {.ref = r->ref[0] ? r->ref : NULL};
			struct dup_probe d = {r, 0};
			if (r->ref[0] &&
			    audit_store_scan(a->store, &q, dup_cb, &d, err, sizeof(err)) != 0) {
				audit_record_free(r);
				rc = -1;
				break;
			}
			if (d.found) {
				audit_record_free(r);
				continue;
			}
			batch[n++] = r;
		}
		if (n == BATCH_MAX || (len < 0 && n > 0)) {
			if (audit_store_append(a->store, batch, n, &a->key, err, sizeof(err)) !=
			    0) {
				msg_warn("audit: catch-up of %s: %s", path, err);
				rc = -1;
			} else {
				total += n;
			}
			for (size_t i = 0; i < n; i++)
				audit_record_free(batch[i]);
			n = 0;
			if (rc != 0)
				break;
		}
		if (len < 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		audit_record_free(batch[i]);
	free(line);
	if (rc == 0) {
		if (bad > 0)
			msg_error("audit: catch-up of %s: %zu malformed line(s) kept in %s.bad",
			          path, bad, path);
		if (bad > 0) {
			char *badp = g_strdup_printf("%s.bad", path);
			if (rename(path, badp) != 0)
				msg_error("audit: rename %s: %s", path, strerror(errno));
			g_free(badp);
		} else if (unlink(path) != 0) {
			msg_error("audit: unlink %s: %s", path, strerror(errno));
		}
		msg_info("audit: caught up %zu spooled record(s) from %s", total, path);
		pthread_mutex_lock(&a->lock);
		a->stored += total;
		pthread_mutex_unlock(&a->lock);
	}
	fclose(fp);
	return rc;
}

/* Insert every spool file (oldest first).  0 when none is left, -1 on store failure. */
static int catch_up(struct audit *a)
{
	char err[512];
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0, skipped = 0;

	if (writer_open(a, err, sizeof(err)) != 0 ||
	    audit_store_probe(a->store, err, sizeof(err)) != 0) {
		writer_close_store(a);
		return -1;
	}
	spool_close(a); /* the store is back: stop appending there */
	d = opendir(a->spool_dir);
	if (d == NULL) {
		msg_error("audit: spool %s: %s", a->spool_dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 7 || strcmp(de->d_name + l - 6, ".audit") != 0 || de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = g_strdup_printf("%s/%s", a->spool_dir, de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && catch_up_file(a, names[i], &skipped) != 0) {
			writer_close_store(a);
			rc = -1;
		}
		g_free(names[i]);
	}
	free(names);
	/* Files locked by another running writer are theirs to catch up. */
	a->spool_pending = rc != 0;
	(void)skipped;
	return rc;
}

/* Last resort at shutdown: the record in the log, at error level, in full. */
static void log_lost(const struct audit_record *r)
{
	char *line = audit_record_to_line(r);
	msg_error("audit: record not stored (store unavailable at shutdown): %s", line);
	free(line);
}

static void *writer_main(void *arg)
{
	struct audit *a = arg;
	struct audit_record *batch[BATCH_MAX];
	long retry_ms = RETRY_MIN_MS;
	struct timespec give_up_start = {0, 0};
	int giving_up = 0, catchup_tried = 0;
	struct timespec catchup_last = {0, 0};
	char err[512];

	pthread_mutex_lock(&a->lock);
	for (;;) {
		/* Wait for work; meanwhile check the store's health and catch up the spool. */
		while (a->qlen == 0 && !a->stop) {
			struct timespec dl;
			int periodic = a->store_down || (a->spool_dir != NULL && a->spool_pending);
			int was_down, ok;

			deadline_in(&dl, periodic ? retry_ms : a->idle_close_ms);
			if (pthread_cond_timedwait(&a->wake, &a->lock, &dl) != ETIMEDOUT)
				continue;
			if (a->qlen > 0 || a->stop)
				break;
			was_down = a->store_down;
			pthread_mutex_unlock(&a->lock);
			/* An outage is noticed before mail needs the store (tempfail mode then
			   refuses at once), a recovery as soon as it happens. */
			ok = writer_open(a, err, sizeof(err)) == 0 &&
			     audit_store_probe(a->store, err, sizeof(err)) == 0;
			if (ok && a->spool_dir != NULL && a->spool_pending && catch_up(a) != 0) {
				snprintf(err, sizeof(err), "catch-up of the spool failed");
				ok = 0;
			}
			/* SQLite is not kept open while idle: permissions changed, a file
			   replaced or removed are seen at the next open.  PostgreSQL keeps
			   its session. */
			if (!ok ||
			    (a->store != NULL && strcmp(audit_store_kind(a->store), "sqlite") == 0))
				writer_close_store(a);
			pthread_mutex_lock(&a->lock);
			if (!ok)
				msg_debug("audit: store check failed: %s", err);
			if (ok && was_down) {
				a->store_down = 0;
				msg_info("audit: store available again");
			} else if (!ok && !was_down) {
				a->store_down = 1;
				msg_error("audit: store %s unavailable: %s%s", a->store_spec, err,
				          a->spool_dir != NULL
				              ? " (spooling)"
				              : " (mail is tempfailed until it returns)");
			}
			retry_ms = ok ? RETRY_MIN_MS
			              : (retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2);
		}
		if (a->qlen == 0 && a->stop)
			break;

		size_t n = a->qlen < BATCH_MAX ? a->qlen : BATCH_MAX;
		for (size_t i = 0; i < n; i++)
			batch[i] = a->q[(a->qhead + i) % a->qmax];
		a->writing = 1;
		pthread_mutex_unlock(&a->lock);

		int stored = 0, spooled = 0;
		err[0] = '\0';
		/* Spooled records go in first, to keep the chain close to time order; under
		   constant load, try that at most once per retry interval. */
		if (a->spool_dir != NULL && a->spool_pending &&
		    (!catchup_tried || ms_since(&catchup_last) >= retry_ms)) {
			catchup_tried = 1;
			clock_gettime(CLOCK_MONOTONIC, &catchup_last);
			if (catch_up(a) != 0) {
				snprintf(err, sizeof(err), "catch-up of the spool failed");
				retry_ms =
				    retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2;
			}
		}
		if (!(a->spool_dir != NULL && a->spool_pending) &&
		    writer_append(a, batch, n, err, sizeof(err)) == 0)
			stored = 1;
		if (!stored && a->spool_dir != NULL && spool_append(a, batch, n) == 0)
			spooled = 1;

		pthread_mutex_lock(&a->lock);
		a->writing = 0;
		if (stored || spooled) {
			for (size_t i = 0; i < n; i++)
				audit_record_free(batch[i]);
			a->qhead = (a->qhead + n) % a->qmax;
			a->qlen -= n;
			if (stored)
				a->stored += n;
			else
				a->spooled += n;
			if (stored && a->store_down) {
				a->store_down = 0;
				msg_info("audit: store available again");
			}
			if (spooled && !a->store_down) {
				a->store_down = 1;
				msg_error("audit: store %s unavailable: %s", a->store_spec, err);
			}
			if (stored)
				retry_ms = RETRY_MIN_MS;
			giving_up = 0;
			pthread_cond_broadcast(&a->done);
			continue;
		}
		if (!a->store_down) {
			a->store_down = 1;
			msg_error("audit: store %s unavailable: %s%s", a->store_spec, err,
			          a->spool_dir != NULL ? ""
			                               : " (mail is tempfailed until it returns)");
		}
		if (a->stop) {
			if (!giving_up) {
				giving_up = 1;
				clock_gettime(CLOCK_MONOTONIC, &give_up_start);
			} else if (ms_since(&give_up_start) >= CLOSE_GIVE_UP_MS) {
				for (size_t i = 0; i < a->qlen; i++) {
					struct audit_record *r = a->q[(a->qhead + i) % a->qmax];
					log_lost(r);
					audit_record_free(r);
				}
				a->qlen = 0;
				pthread_cond_broadcast(&a->done);
				break;
			}
		}
		struct timespec dl;
		deadline_in(&dl, retry_ms);
		pthread_cond_timedwait(&a->wake, &a->lock, &dl);
		retry_ms = retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2;
	}
	pthread_mutex_unlock(&a->lock);
	writer_close_store(a);
	spool_close(a);
	return NULL;
}

/* Does the spool directory hold files waiting for catch-up? */
static int spool_has_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	if (d == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		found = l >= 7 && strcmp(de->d_name + l - 6, ".audit") == 0;
	}
	closedir(d);
	return found;
}

struct audit *audit_open(const struct audit_options *o, char *err, size_t errlen)
{
	struct audit *a = xcalloc(1, sizeof(*a));
	const char *store = o->store;

	a->spool_fd = -1;
	a->qmax = o->queue_size > 0 ? o->queue_size : AUDIT_DEFAULT_QUEUE;
	a->idle_close_ms = o->idle_close_ms > 0 ? o->idle_close_ms : 1000;
	if (o->host != NULL) {
		snprintf(a->host, sizeof(a->host), "%s", o->host);
	} else if (gethostname(a->host, sizeof(a->host) - 1) != 0) {
		snprintf(a->host, sizeof(a->host), "localhost");
	}
	if (store != NULL && (store[0] == '\0' || strcmp(store, "none") == 0))
		store = NULL;
	if (store != NULL && strncmp(store, "sqlite:", 7) != 0 &&
	    strncmp(store, "pgsql:", 6) != 0) {
		snprintf(err, errlen,
		         "audit store \"%s\": expected sqlite:/path, pgsql:conninfo or none",
		         store);
		goto fail;
	}
	if (o->failure != NULL && o->failure[0] != '\0' && strcmp(o->failure, "tempfail") != 0) {
		if (strncmp(o->failure, "spool:", 6) != 0 || o->failure[6] != '/') {
			snprintf(
			    err, errlen,
			    "audit failure mode \"%s\": expected tempfail or spool:/absolute/dir",
			    o->failure);
			goto fail;
		}
		a->spool_dir = xstrdup(o->failure + 6);
		if (mkdir(a->spool_dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "audit spool %s: %s", a->spool_dir, strerror(errno));
			goto fail;
		}
		if (access(a->spool_dir, W_OK | X_OK) != 0) {
			snprintf(err, errlen, "audit spool %s: %s", a->spool_dir, strerror(errno));
			goto fail;
		}
		a->spool_pending = spool_has_files(a->spool_dir);
	}
	if (o->key != NULL)
		a->key = *o->key;
	else if (o->key_file != NULL && o->key_file[0] != '\0' &&
	         audit_key_load(o->key_file, &a->key, err, errlen) != 0)
		goto fail;
	audit_key_mode(&a->key, a->mode, sizeof(a->mode));
	if (pthread_mutex_init(&a->lock, NULL) != 0 || pthread_cond_init(&a->wake, NULL) != 0 ||
	    pthread_cond_init(&a->done, NULL) != 0) {
		snprintf(err, errlen, "audit: cannot initialise locks");
		goto fail;
	}
	if (store == NULL)
		return a; /* log only */
	a->store_spec = xstrdup(store);
	a->q = xcalloc(a->qmax, sizeof(*a->q));
	a->store = audit_store_open(a->store_spec, o->create ? 1 : 2, a->mode, err, errlen);
	if (a->store == NULL) {
		/* A local file that cannot be opened is a configuration error; a
		   database server that is not up yet is an outage. */
		if (strncmp(store, "pgsql:", 6) != 0 || strstr(err, "chain mode") != NULL)
			goto fail;
		msg_warn("audit: %s", err);
		a->store_down = 1;
	}
	if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
		snprintf(err, errlen, "audit: cannot start the writer thread");
		goto fail;
	}
	a->thread_started = 1;
	return a;
fail:
	if (a->store != NULL)
		audit_store_close(a->store);
	free(a->q);
	free(a->store_spec);
	free(a->spool_dir);
	OPENSSL_cleanse(&a->key, sizeof(a->key));
	free(a);
	return NULL;
}

int audit_submit_record(struct audit *a, struct audit_record *r)
{
	char line[1024];

	audit_record_summary(r, line, sizeof(line));
	if (r->queue_id[0])
		msg_info("%s: %s", r->queue_id, line);
	else
		msg_info("%s", line);
	if (a->store_spec == NULL) {
		audit_record_free(r);
		return 0;
	}
	pthread_mutex_lock(&a->lock);
	if (a->qlen >= a->qmax || (a->store_down && a->spool_dir == NULL) || a->stop) {
		a->refused++;
		pthread_mutex_unlock(&a->lock);
		msg_error("%s: audit: record %s cannot be kept (%s): tempfail",
		          r->queue_id[0] ? r->queue_id : "NOQUEUE", r->ref,
		          a->qlen >= a->qmax ? "queue full" : "store unavailable");
		audit_record_free(r);
		return -1;
	}
	a->q[(a->qhead + a->qlen) % a->qmax] = r;
	a->qlen++;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

int audit_submit(struct audit *a, const struct envelope *env, const struct verdict *v)
{
	return audit_submit_record(a, audit_record_from_verdict(env, v, a->host));
}

int audit_flush(struct audit *a, int timeout_ms)
{
	struct timespec dl;
	int rc = 0;

	if (a->store_spec == NULL)
		return 0;
	deadline_in(&dl, timeout_ms);
	pthread_mutex_lock(&a->lock);
	while ((a->qlen > 0 || a->writing) && rc == 0)
		if (pthread_cond_timedwait(&a->done, &a->lock, &dl) == ETIMEDOUT)
			rc = -1;
	if (a->qlen > 0)
		rc = -1;
	pthread_mutex_unlock(&a->lock);
	return rc;
}

void audit_get_stats(struct audit *a, struct audit_stats *st)
{
	pthread_mutex_lock(&a->lock);
	st->queued = a->qlen;
	st->store_down = a->store_down;
	st->stored = a->stored;
	st->spooled = a->spooled;
	st->refused = a->refused;
	pthread_mutex_unlock(&a->lock);
}

void audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->thread_started) {
		pthread_mutex_lock(&a->lock);
		a->stop = 1;
		pthread_cond_signal(&a->wake);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	} else if (a->store != NULL) {
		audit_store_close(a->store);
	}
	for (size_t i = 0; i < a->qlen; i++)
		audit_record_free(a->q[(a->qhead + i) % a->qmax]);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->done);
	free(a->q);
	free(a->store_spec);
	free(a->spool_dir);
	OPENSSL_cleanse(&a->key, sizeof(a->key));
	free(a);
}
