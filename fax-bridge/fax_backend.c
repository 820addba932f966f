/*
 * fax_backend.c — the two backends of fax_backend.h.  hylafax: one hfaxd
 * connection opened on demand and dropped after any transient error.
 * spool: the TIFF is copied into the outbox under a temporary name and
 * renamed, then the metadata file likewise (it appears last: a reader takes
 * a job once its .txt exists); both 0600.
 */
#include "autoconfig.h"
#include "fax_backend.h"
#include "fax_config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fax_backend {
	const struct fax_config *c;
	struct hfax_conn *conn; /* hylafax, NULL until needed */
	int admin;              /* ADMIN accepted on conn */
};

CM_PRINTF(3, 4)
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return HFAX_TEMP;
}

struct fax_backend *fax_backend_new(const struct fax_config *c)
{
	struct fax_backend *b = xcalloc(1, sizeof(*b));
	b->c = c;
	return b;
}

void fax_backend_disconnect(struct fax_backend *b)
{
	if (b && b->conn) {
		hfax_close(b->conn);
		b->conn = NULL;
		b->admin = 0;
	}
}

void fax_backend_free(struct fax_backend *b)
{
	if (b == NULL)
		return;
	fax_backend_disconnect(b);
	free(b);
}

const char *fax_backend_name(const struct fax_backend *b)
{
	return b->c->backend_kind == FAX_BACKEND_HYLAFAX ? "hylafax" : "spool";
}

void fax_backend_user_key(const struct fax_ledger_row *r, char *out, size_t outlen)
{
	snprintf(out, outlen, "cmfax-%lld-%s-%.12s", r->id, r->number, r->body_sha256);
}

/* ---- hylafax ---- */

static int connect_hylafax(struct fax_backend *b, char *err, size_t errlen)
{
	const struct fax_config *c = b->c;
	int rc;

	if (b->conn)
		return HFAX_OK;
	rc = hfax_connect(c->hylafax_host, c->hylafax_port, c->hylafax_user, c->hylafax_timeout,
	                  &b->conn, err, errlen);
	if (rc != HFAX_OK) {
		b->conn = NULL;
		/* A server that refuses our login is a configuration problem, but
		   waiting loses nothing: the MTA retries while the admin fixes it. */
		return HFAX_TEMP;
	}
	return HFAX_OK;
}

/* After a transient error the connection may be half-dead: drop it. */
static int after(struct fax_backend *b, int rc)
{
	if (rc == HFAX_TEMP)
		fax_backend_disconnect(b);
	return rc;
}

/* ---- spool ---- */

/*
 * The outbox file stem of a row, also its job id (at most 31 characters):
 * "<ref>-<ledger id>", unique per row and readable; "L<id>-<number>" when
 * the reference is long.
 */
static void spool_stem(const char *ref, const char *number, long long id, char *out, size_t len)
{
	char s[128];

	snprintf(s, sizeof(s), "%s-%lld", ref && *ref ? ref : "noref", id);
	if (strlen(s) > 31)
		snprintf(s, sizeof(s), "L%lld-%s", id, number);
	snprintf(out, len, "%s", s);
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Create dir/.tmp-NAME 0600, fill it (from src_fd, or data), fsync, rename to dir/NAME. */
static int publish(const char *dir, const char *name, int src_fd, const char *data, char *err,
                   size_t errlen)
{
	char tmp[1024], final[1024];
	int fd, e;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, name) >= sizeof(tmp) ||
	    (size_t)snprintf(final, sizeof(final), "%s/%s", dir, name) >= sizeof(final))
		return fail(err, errlen, "outbox path too long");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fail(err, errlen, "outbox %s: %s", dir, strerror(errno));
	if (fchmod(fd, 0600) != 0)
		goto io;
	if (src_fd >= 0) {
		char buf[65536];
		ssize_t r;
		if (lseek(src_fd, 0, SEEK_SET) < 0)
			goto io;
		while ((r = read(src_fd, buf, sizeof(buf))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 || write_all(fd, buf, (size_t)r) < 0)
				goto io;
		}
	} else if (write_all(fd, data, strlen(data)) < 0) {
		goto io;
	}
	if (fsync(fd) != 0)
		goto io;
	if (close(fd) != 0) {
		fd = -1;
		goto io;
	}
	fd = -1;
	if (rename(tmp, final) != 0)
		goto io;
	return HFAX_OK;
io:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return fail(err, errlen, "outbox %s: %s", dir, strerror(e));
}

static int spool_submit(struct fax_backend *b, const struct fax_submission *s, char *jobid,
                        size_t jobidlen, char *err, size_t errlen)
{
	const char *dir = b->c->outbox;
	char stem[256], name[300], when[64];
	struct strbuf meta;
	struct tm tm;
	int src, rc, dfd;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail(err, errlen, "outbox %s: %s", dir, strerror(errno));
	spool_stem(s->ref, s->number, s->ledger_id, stem, sizeof(stem));
	src = open(s->tiff_path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return fail(err, errlen, "%s: %s", s->tiff_path, strerror(errno));
	snprintf(name, sizeof(name), "%s.tif", stem);
	rc = publish(dir, name, src, NULL, err, errlen);
	close(src);
	if (rc != HFAX_OK)
		return rc;
	gmtime_r(&s->when, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	sb_init(&meta);
	sb_printf(&meta,
	          "# clinimail-fax outbox job: %s.tif is the fax (TIFF Class F)\n"
	          "number: %s\npages: %d\nref: %s\nsender: %s\ntime: %s\nledger-id: %lld\n",
	          stem, s->number, s->pages, s->ref, s->sender, when, s->ledger_id);
	snprintf(name, sizeof(name), "%s.txt", stem);
	rc = publish(dir, name, -1, meta.data, err, errlen);
	sb_free(&meta);
	if (rc != HFAX_OK) {
		snprintf(name, sizeof(name), "%s/%s.tif", dir, stem);
		unlink(name);
		return rc;
	}
	/* The renames themselves survive a crash. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(dfd) != 0)
			msg_warn("outbox %s: fsync: %s", dir, strerror(errno));
		close(dfd);
	}
	snprintf(jobid, jobidlen, "%s", stem);
	return HFAX_OK;
}

/* ---- the interface ---- */

int fax_backend_connect(struct fax_backend *b, char *err, size_t errlen)
{
	const char *dir = b->c->outbox;

	if (b->c->backend_kind == FAX_BACKEND_HYLAFAX)
		return connect_hylafax(b, err, errlen);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail(err, errlen, "outbox %s: %s", dir, strerror(errno));
	if (access(dir, W_OK | X_OK) != 0)
		return fail(err, errlen, "outbox %s: %s", dir, strerror(errno));
	return HFAX_OK;
}

int fax_backend_submit(struct fax_backend *b, const struct fax_submission *s, char *jobid,
                       size_t jobidlen, char *err, size_t errlen)
{
	const struct fax_config *c = b->c;
	struct hfax_job_opts o;
	int rc;

	jobid[0] = '\0';
	if (c->backend_kind == FAX_BACKEND_SPOOL)
		return spool_submit(b, s, jobid, jobidlen, err, errlen);
	if ((rc = connect_hylafax(b, err, errlen)) != HFAX_OK)
		return rc;
	memset(&o, 0, sizeof(o));
	o.number = s->number;
	o.tiff_path = s->tiff_path;
	o.fine = strcmp(c->resolution, "normal") != 0;
	o.letter = strcmp(c->paper, "a4") != 0;
	o.max_dials = c->max_dials;
	o.max_tries = c->max_tries;
	o.kill_minutes = c->kill_time;
	o.user_key = s->user_key;
	o.tag_line = c->tag_line;
	/* faxq mails every failed job to NOTIFYADDR whatever NOTIFY says: to the
	   service's own mailbox, not to user@host; the sender gets our notice. */
	o.notify_addr = c->notify_from;
	return after(b, hfax_submit(b->conn, &o, jobid, jobidlen, err, errlen));
}

int fax_backend_poll(struct fax_backend *b, const struct fax_ledger_row *r, struct hfax_status *st,
                     char *err, size_t errlen)
{
	int rc;

	memset(st, 0, sizeof(*st));
	if (strcmp(r->backend, "spool") == 0) {
		/* Written to the outbox at submission: every page "sent". */
		st->state = HFAX_STATE_DONE;
		snprintf(st->state_text, sizeof(st->state_text), "DONE");
		snprintf(st->status, sizeof(st->status), "written to the outbox");
		st->npages = st->totpages = r->pages;
		return HFAX_OK;
	}
	if (b->c->backend_kind != FAX_BACKEND_HYLAFAX)
		return fail(err, errlen, "job %s was sent through %s, not configured now",
		            r->job_id, r->backend);
	if ((rc = connect_hylafax(b, err, errlen)) != HFAX_OK)
		return rc;
	return after(b, hfax_poll(b->conn, r->job_id, st, err, errlen));
}

int fax_backend_delete(struct fax_backend *b, const struct fax_ledger_row *r, char *err,
                       size_t errlen)
{
	int rc;

	if (strcmp(r->backend, "spool") == 0 || r->job_id[0] == '\0')
		return HFAX_OK;
	if (b->c->backend_kind != FAX_BACKEND_HYLAFAX)
		return fail(err, errlen, "job %s was sent through %s, not configured now",
		            r->job_id, r->backend);
	if ((rc = connect_hylafax(b, err, errlen)) != HFAX_OK)
		return rc;
	/* Removing the document from docq/ needs HylaFAX's ADMIN privilege. */
	if (b->c->hylafax_admin && !b->admin) {
		rc = hfax_admin(b->conn, b->c->hylafax_admin, err, errlen);
		if (rc != HFAX_OK)
			return after(b, rc);
		b->admin = 1;
	}
	return after(b, hfax_delete(b->conn, r->job_id, err, errlen));
}

int fax_backend_find(struct fax_backend *b, const struct fax_ledger_row *r, const char *user_key,
                     char *jobid, size_t jobidlen, char *err, size_t errlen)
{
	int rc;

	jobid[0] = '\0';
	if (b->c->backend_kind == FAX_BACKEND_SPOOL) {
		char stem[256], path[1024];
		struct stat st;
		spool_stem(r->ref, r->number, r->id, stem, sizeof(stem));
		snprintf(path, sizeof(path), "%s/%s.txt", b->c->outbox, stem);
		if (stat(path, &st) == 0)
			snprintf(jobid, jobidlen, "%s", stem);
		else if (errno != ENOENT)
			return fail(err, errlen, "outbox %s: %s", b->c->outbox, strerror(errno));
		return HFAX_OK;
	}
	if ((rc = connect_hylafax(b, err, errlen)) != HFAX_OK)
		return rc;
	return after(b, hfax_find_by_key(b->conn, user_key, jobid, jobidlen, err, errlen));
}
