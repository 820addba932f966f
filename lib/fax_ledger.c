/*
 * fax_ledger.c — the bridge's record of every fax (fax_ledger.h), one
 * SQLite file in WAL mode shared by every delivery process and the
 * tracker.  Claims are taken inside BEGIN IMMEDIATE, and the UNIQUE key
 * (message_id, number, body_sha256) makes a second insert impossible even
 * if two processes raced past the lookup.  Ids are AUTOINCREMENT: a
 * released claim's id (and spool file name) is never reused.
 */
#include "autoconfig.h"
#include "fax_ledger.h"
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

#include <sqlite3.h>

struct fax_ledger {
	sqlite3 *db;
	char *path;
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS faxes ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " message_id TEXT NOT NULL,"
    " number TEXT NOT NULL,"
    " body_sha256 TEXT NOT NULL,"
    " state INTEGER NOT NULL,"
    " ref TEXT NOT NULL DEFAULT '',"
    " sender TEXT NOT NULL DEFAULT '',"
    " job_id TEXT NOT NULL DEFAULT '',"
    " backend TEXT NOT NULL DEFAULT '',"
    " spool_path TEXT NOT NULL DEFAULT '',"
    " pages INTEGER NOT NULL DEFAULT 0,"
    " pages_sent INTEGER NOT NULL DEFAULT 0,"
    " tries INTEGER NOT NULL DEFAULT 0,"
    " claimed_at INTEGER NOT NULL DEFAULT 0,"
    " submitted_at INTEGER NOT NULL DEFAULT 0,"
    " finished_at INTEGER NOT NULL DEFAULT 0,"
    " claim_pid INTEGER NOT NULL DEFAULT 0,"
    " outcome TEXT NOT NULL DEFAULT '',"
    " retry_notified INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (message_id, number, body_sha256));"
    "CREATE INDEX IF NOT EXISTS faxes_state ON faxes (state, id);";

#define COLUMNS                                                                                    \
	"id, message_id, number, body_sha256, state, ref, sender, job_id, backend, spool_path, "   \
	"pages, pages_sent, tries, claimed_at, submitted_at, finished_at, claim_pid, outcome, "    \
	"retry_notified"

CM_PRINTF(3, 4)
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int db_fail(struct fax_ledger *l, char *err, size_t errlen, const char *what)
{
	int code = sqlite3_extended_errcode(l->db);

	if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
		return fail(err, errlen, "ledger %s: %s: busy (another process holds the lock)",
		            l->path, what);
	return fail(err, errlen, "ledger %s: %s: %s", l->path, what, sqlite3_errmsg(l->db));
}

static int exec(struct fax_ledger *l, const char *sql, char *err, size_t errlen)
{
	if (sqlite3_exec(l->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(l, err, errlen, sql[0] == 'B' || sql[0] == 'C' ? sql : "statement");
	return 0;
}

static void rollback(struct fax_ledger *l)
{
	if (!sqlite3_get_autocommit(l->db))
		sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
}

const char *fax_ledger_state_name(enum fax_ledger_state s)
{
	switch (s) {
	case FAXL_CLAIMED:
		return "claimed";
	case FAXL_SUBMITTED:
		return "submitted";
	case FAXL_DONE:
		return "done";
	case FAXL_FAILED:
		return "failed";
	case FAXL_DESTROYED:
		return "destroyed";
	}
	return "unknown";
}

/* ---- open ---- */

static int init_schema(struct fax_ledger *l, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int version = -1, rc;

	if (exec(l, "BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	if (exec(l, schema_sql, err, errlen) < 0)
		goto bad;
	if (sqlite3_prepare_v2(l->db, "SELECT max(version), count(*) FROM schema_version", -1, &st,
	                       NULL) != SQLITE_OK) {
		db_fail(l, err, errlen, "schema version");
		goto bad;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		db_fail(l, err, errlen, "schema version");
		goto bad;
	}
	if (sqlite3_column_int(st, 1) > 0)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version < 0) {
		char sql[80];
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)",
		         FAX_LEDGER_SCHEMA);
		if (exec(l, sql, err, errlen) < 0)
			goto bad;
	} else if (version > FAX_LEDGER_SCHEMA) {
		fail(err, errlen, "ledger %s: schema version %d is newer than this program's (%d)",
		     l->path, version, FAX_LEDGER_SCHEMA);
		goto bad;
	} else if (version < 1) {
		fail(err, errlen, "ledger %s: unknown schema version %d", l->path, version);
		goto bad;
	}
	if (exec(l, "COMMIT", err, errlen) < 0)
		goto bad;
	return 0;
bad:
	sqlite3_finalize(st);
	rollback(l);
	return -1;
}

struct fax_ledger *fax_ledger_open(const char *path, char *err, size_t errlen)
{
	struct fax_ledger *l;
	int fd;

	if (path == NULL || path[0] == '\0') {
		fail(err, errlen, "ledger: no file given");
		return NULL;
	}
	/* Create the file ourselves so that it is 0600 whatever the umask; SQLite
	   gives its -wal and -shm files the same mode. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		fail(err, errlen, "ledger %s: %s", path, strerror(errno));
		return NULL;
	}
	{
		struct stat st;
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			fail(err, errlen, "ledger %s: not a regular file", path);
			return NULL;
		}
		if ((st.st_mode & 077) != 0 && fchmod(fd, st.st_mode & 0700) != 0)
			msg_warn("ledger %s: cannot make it private: %s", path, strerror(errno));
	}
	close(fd);

	l = xcalloc(1, sizeof(*l));
	l->path = xstrdup(path);
	if (sqlite3_open_v2(path, &l->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK) {
		fail(err, errlen, "ledger %s: %s", path,
		     l->db ? sqlite3_errmsg(l->db) : "cannot open");
		goto bad;
	}
	sqlite3_extended_result_codes(l->db, 1);
	sqlite3_busy_timeout(l->db, FAX_LEDGER_BUSY_MS);
	/* WAL: the tracker reads while deliveries write.  FULL: a commit (a
	   claim, a job id) survives a power cut. */
	/* Switching a new file to WAL and creating the schema take locks for
	   which SQLite does not always call the busy handler: when several
	   deliveries open a new ledger at once one of them may get SQLITE_BUSY
	   at once.  Retry for up to the busy timeout before giving up. */
	for (int waited = 0;; waited += 20) {
		if (exec(l, "PRAGMA journal_mode=WAL", err, errlen) == 0 &&
		    exec(l, "PRAGMA synchronous=FULL", err, errlen) == 0 &&
		    exec(l, "PRAGMA secure_delete=ON", err, errlen) == 0 &&
		    init_schema(l, err, errlen) == 0)
			break;
		/* init_schema() rolls back on failure, which resets the error code:
		   its message still says "database is locked" */
		int code = sqlite3_errcode(l->db) & 0xff;
		int busy =
		    code == SQLITE_BUSY || code == SQLITE_LOCKED || strstr(err, "locked") != NULL;
		if (!busy || waited >= FAX_LEDGER_BUSY_MS)
			goto bad;
		usleep(20000);
	}
	return l;
bad:
	fax_ledger_close(l);
	return NULL;
}

void fax_ledger_close(struct fax_ledger *l)
{
	if (l == NULL)
		return;
	if (l->db)
		sqlite3_close_v2(l->db);
	free(l->path);
	free(l);
}

/* ---- rows ---- */

static void col_text(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

static void read_row(sqlite3_stmt *st, struct fax_ledger_row *r)
{
	int s;

	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, r->message_id, sizeof(r->message_id));
	col_text(st, 2, r->number, sizeof(r->number));
	col_text(st, 3, r->body_sha256, sizeof(r->body_sha256));
	s = sqlite3_column_int(st, 4);
	r->state =
	    s >= FAXL_CLAIMED && s <= FAXL_DESTROYED ? (enum fax_ledger_state)s : FAXL_FAILED;
	col_text(st, 5, r->ref, sizeof(r->ref));
	col_text(st, 6, r->sender, sizeof(r->sender));
	col_text(st, 7, r->job_id, sizeof(r->job_id));
	col_text(st, 8, r->backend, sizeof(r->backend));
	col_text(st, 9, r->spool_path, sizeof(r->spool_path));
	r->pages = sqlite3_column_int(st, 10);
	r->pages_sent = sqlite3_column_int(st, 11);
	r->tries = sqlite3_column_int(st, 12);
	r->claimed_at = sqlite3_column_int64(st, 13);
	r->submitted_at = sqlite3_column_int64(st, 14);
	r->finished_at = sqlite3_column_int64(st, 15);
	r->claim_pid = sqlite3_column_int(st, 16);
	col_text(st, 17, r->outcome, sizeof(r->outcome));
	r->retry_notified = sqlite3_column_int(st, 18);
}

static int prepare(struct fax_ledger *l, const char *sql, sqlite3_stmt **st, char *err,
                   size_t errlen)
{
	if (sqlite3_prepare_v2(l->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(l, err, errlen, "prepare");
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_TRANSIENT);
}

int fax_ledger_claim(struct fax_ledger *l, const char *message_id, const char *number,
                     const char *body_sha256, const char *ref, const char *sender, int pid,
                     struct fax_ledger_row *row, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	long long id;
	int rc;

	if (message_id == NULL || number == NULL || body_sha256 == NULL)
		return fail(err, errlen, "ledger: claim without a key");
	if (exec(l, "BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	if (prepare(l,
	            "SELECT " COLUMNS " FROM faxes WHERE message_id = ?1 AND number = ?2 "
	            "AND body_sha256 = ?3",
	            &st, err, errlen) < 0)
		goto bad;
	bind_text(st, 1, message_id);
	bind_text(st, 2, number);
	bind_text(st, 3, body_sha256);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_row(st, row);
		sqlite3_finalize(st);
		rollback(l);
		return 0;
	}
	if (rc != SQLITE_DONE) {
		db_fail(l, err, errlen, "lookup");
		goto bad;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (prepare(l,
	            "INSERT INTO faxes (message_id, number, body_sha256, state, ref, sender, "
	            "claimed_at, claim_pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	            &st, err, errlen) < 0)
		goto bad;
	bind_text(st, 1, message_id);
	bind_text(st, 2, number);
	bind_text(st, 3, body_sha256);
	sqlite3_bind_int(st, 4, FAXL_CLAIMED);
	bind_text(st, 5, ref);
	bind_text(st, 6, sender);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)time(NULL));
	sqlite3_bind_int(st, 8, pid);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(l, err, errlen, "insert");
		goto bad;
	}
	sqlite3_finalize(st);
	st = NULL;
	id = sqlite3_last_insert_rowid(l->db);
	if (prepare(l, "SELECT " COLUMNS " FROM faxes WHERE id = ?1", &st, err, errlen) < 0)
		goto bad;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_fail(l, err, errlen, "read back");
		goto bad;
	}
	read_row(st, row);
	sqlite3_finalize(st);
	st = NULL;
	if (exec(l, "COMMIT", err, errlen) < 0)
		goto bad;
	return 1;
bad:
	sqlite3_finalize(st);
	rollback(l);
	return -1;
}

int fax_ledger_get(struct fax_ledger *l, long long id, struct fax_ledger_row *row, char *err,
                   size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (prepare(l, "SELECT " COLUMNS " FROM faxes WHERE id = ?1", &st, err, errlen) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_row(st, row);
		sqlite3_finalize(st);
		return 1;
	}
	if (rc != SQLITE_DONE) {
		db_fail(l, err, errlen, "read");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

int fax_ledger_update(struct fax_ledger *l, const struct fax_ledger_row *r, char *err,
                      size_t errlen)
{
	sqlite3_stmt *st = NULL;

	if (prepare(l,
	            "UPDATE faxes SET state = ?2, job_id = ?3, backend = ?4, spool_path = ?5, "
	            "pages = ?6, pages_sent = ?7, tries = ?8, claimed_at = ?9, "
	            "submitted_at = ?10, finished_at = ?11, claim_pid = ?12, outcome = ?13, "
	            "retry_notified = ?14 WHERE id = ?1",
	            &st, err, errlen) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_int(st, 2, (int)r->state);
	bind_text(st, 3, r->job_id);
	bind_text(st, 4, r->backend);
	bind_text(st, 5, r->spool_path);
	sqlite3_bind_int(st, 6, r->pages);
	sqlite3_bind_int(st, 7, r->pages_sent);
	sqlite3_bind_int(st, 8, r->tries);
	sqlite3_bind_int64(st, 9, r->claimed_at);
	sqlite3_bind_int64(st, 10, r->submitted_at);
	sqlite3_bind_int64(st, 11, r->finished_at);
	sqlite3_bind_int(st, 12, r->claim_pid);
	bind_text(st, 13, r->outcome);
	sqlite3_bind_int(st, 14, r->retry_notified);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(l, err, errlen, "update");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (sqlite3_changes(l->db) != 1)
		return fail(err, errlen, "ledger %s: no row %lld to update", l->path, r->id);
	return 0;
}

int fax_ledger_release(struct fax_ledger *l, long long id, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;

	if (prepare(l, "DELETE FROM faxes WHERE id = ?1 AND state = ?2", &st, err, errlen) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, FAXL_CLAIMED);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(l, err, errlen, "release");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (sqlite3_changes(l->db) != 1)
		return fail(err, errlen, "ledger %s: row %lld is not a claim", l->path, id);
	return 0;
}

int fax_ledger_takeover(struct fax_ledger *l, long long id, int old_pid, int new_pid, char *err,
                        size_t errlen)
{
	sqlite3_stmt *st = NULL;

	if (prepare(l,
	            "UPDATE faxes SET claim_pid = ?3, claimed_at = ?4 WHERE id = ?1 AND "
	            "state = ?5 AND claim_pid = ?2",
	            &st, err, errlen) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, old_pid);
	sqlite3_bind_int(st, 3, new_pid);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	sqlite3_bind_int(st, 5, FAXL_CLAIMED);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(l, err, errlen, "takeover");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return sqlite3_changes(l->db) == 1 ? 1 : 0;
}

int fax_ledger_scan(struct fax_ledger *l, enum fax_ledger_state state,
                    int (*cb)(const struct fax_ledger_row *r, void *arg), void *arg, char *err,
                    size_t errlen)
{
	sqlite3_stmt *st = NULL;
	struct fax_ledger_row *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (prepare(l, "SELECT " COLUMNS " FROM faxes WHERE state = ?1 ORDER BY id", &st, err,
	            errlen) < 0)
		return -1;
	sqlite3_bind_int(st, 1, (int)state);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		read_row(st, &rows[n++]);
	}
	if (rc != SQLITE_DONE) {
		db_fail(l, err, errlen, "scan");
		sqlite3_finalize(st);
		free(rows);
		return -1;
	}
	sqlite3_finalize(st);
	/* The statement is finished: the callbacks may write. */
	for (size_t i = 0; i < n; i++)
		if (cb(&rows[i], arg) != 0)
			break;
	free(rows);
	return 0;
}
