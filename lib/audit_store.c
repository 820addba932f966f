/*
 * audit_store.c — where audit records live: SQLite (one file, WAL mode) or
 * PostgreSQL (libpq, for several MTAs sharing one audit).  Both hold the
 * same two tables: audit_record (one row per record, every field a column,
 * prev_hash and hash chaining them) and audit_meta (schema version, chain
 * mode, chain head).  Appending reads the chain head inside the write
 * transaction (PostgreSQL: SELECT … FOR UPDATE), so concurrent writers
 * serialise on it.  Also: scans for `clinimail audit`, chain verification
 * and retention purge with an anchor record.
 */
#include "autoconfig.h"

#include "audit.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define SCHEMA_VERSION "1"

enum store_kind { STORE_SQLITE, STORE_PGSQL };

struct audit_store {
	enum store_kind kind;
	char *spec;
	sqlite3 *db;
	sqlite3_stmt *ins; /* cached INSERT (SQLite) */
	PGconn *pg;
	int pg_prepared;
};

/* The columns, in the order every SELECT returns them. */
#define COLUMNS                                                                                    \
	"id, kind, time, host, ref, queue_id, message_id, sender, auth_login, recipients, rules, " \
	"action, changes, content, body_sha256, exception, justification, detail, prev_hash, hash"
#define NCOLS 20

static const char *const sqlite_schema =
    "CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_record ("
    " id INTEGER PRIMARY KEY, kind TEXT NOT NULL, time TEXT NOT NULL, host TEXT NOT NULL,"
    " ref TEXT NOT NULL, queue_id TEXT NOT NULL, message_id TEXT NOT NULL,"
    " sender TEXT NOT NULL, auth_login TEXT NOT NULL, recipients TEXT NOT NULL,"
    " rules TEXT NOT NULL, action TEXT NOT NULL, changes TEXT NOT NULL, content TEXT NOT NULL,"
    " body_sha256 TEXT NOT NULL, exception INTEGER NOT NULL, justification TEXT NOT NULL,"
    " detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_record_time ON audit_record(time);"
    "CREATE INDEX IF NOT EXISTS audit_record_ref ON audit_record(ref);";

static const char *const pg_schema =
    "CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_record ("
    " id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, time TEXT NOT NULL, host TEXT NOT NULL,"
    " ref TEXT NOT NULL, queue_id TEXT NOT NULL, message_id TEXT NOT NULL,"
    " sender TEXT NOT NULL, auth_login TEXT NOT NULL, recipients TEXT NOT NULL,"
    " rules TEXT NOT NULL, action TEXT NOT NULL, changes TEXT NOT NULL, content TEXT NOT NULL,"
    " body_sha256 TEXT NOT NULL, exception INTEGER NOT NULL, justification TEXT NOT NULL,"
    " detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_record_time ON audit_record(time);"
    "CREATE INDEX IF NOT EXISTS audit_record_ref ON audit_record(ref);";

#define INSERT_SQL                                                                                 \
	"INSERT INTO audit_record (kind, time, host, ref, queue_id, message_id, sender, "          \
	"auth_login, recipients, rules, action, changes, content, body_sha256, exception, "        \
	"justification, detail, prev_hash, hash) VALUES "

/* The record's values in INSERT order (19 strings; exception as "0"/"1"). */
static void record_values(const struct audit_record *r, const char *vals[19])
{
	vals[0] = r->kind;
	vals[1] = r->time;
	vals[2] = r->host;
	vals[3] = r->ref;
	vals[4] = r->queue_id;
	vals[5] = r->message_id;
	vals[6] = r->sender;
	vals[7] = r->auth_login;
	vals[8] = r->recipients;
	vals[9] = r->rules;
	vals[10] = r->action;
	vals[11] = r->changes;
	vals[12] = r->content;
	vals[13] = r->body_sha256;
	vals[14] = r->exception ? "1" : "0";
	vals[15] = r->justification;
	vals[16] = r->detail;
	vals[17] = r->prev_hash;
	vals[18] = r->hash;
}

static void set_hash(struct audit_record *r, const char *prev, const char *hash)
{
	free(r->prev_hash);
	r->prev_hash = xstrdup(prev);
	free(r->hash);
	r->hash = xstrdup(hash);
}

/* Fill a record from one row's 20 column texts (raw: verification needs the stored bytes). */
static void record_from_columns(struct audit_record *r, const char *const col[NCOLS])
{
	char **f[] = {&r->kind,          &r->time,    &r->host,       &r->ref,         &r->queue_id,
	              &r->message_id,    &r->sender,  &r->auth_login, &r->recipients,  &r->rules,
	              &r->action,        &r->changes, &r->content,    &r->body_sha256, NULL,
	              &r->justification, &r->detail,  &r->prev_hash,  &r->hash};

	r->id = col[0] ? strtoll(col[0], NULL, 10) : 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		const char *v = col[i + 1] ? col[i + 1] : "";
		if (f[i] == NULL) {
			r->exception = strcmp(v, "0") != 0;
			continue;
		}
		free(*f[i]);
		*f[i] = xstrdup(v);
	}
}

/* ================= SQLite ================= */

static void sq_err(struct audit_store *s, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s: %s", s->spec, what, sqlite3_errmsg(s->db));
}

static int sq_exec(struct audit_store *s, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", s->spec, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int sq_meta_get(struct audit_store *s, const char *name, char *buf, size_t len, char *err,
                       size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT value FROM audit_meta WHERE name = ?1", -1, &st,
	                       NULL) != SQLITE_OK) {
		sq_err(s, "not a clinimail audit store", err, errlen);
		return -1;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		snprintf(buf, len, "%s", v ? (const char *)v : "");
	} else if (rc == SQLITE_DONE) {
		buf[0] = '\0';
	} else {
		sq_err(s, "reading audit_meta", err, errlen);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

static int sq_meta_set(struct audit_store *s, const char *name, const char *value, char *err,
                       size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db,
	                       "INSERT INTO audit_meta (name, value) VALUES (?1, ?2) "
	                       "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
	                       -1, &st, NULL) != SQLITE_OK) {
		sq_err(s, "writing audit_meta", err, errlen);
		return -1;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		sq_err(s, "writing audit_meta", err, errlen);
		return -1;
	}
	return 0;
}

static int sq_open(struct audit_store *s, const char *path, int create, char *err, size_t errlen)
{
	int flags =
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create == 1 ? SQLITE_OPEN_CREATE : 0);

	if (path[0] == '\0') {
		snprintf(err, errlen, "%s: empty SQLite path", s->spec);
		return -1;
	}
	if (create == 1) {
		/* Not world-readable (addresses); SQLite gives -wal and -shm the same mode. */
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (fd >= 0)
			close(fd);
		else if (errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", s->spec, strerror(errno));
			return -1;
		}
	}
	if (create && access(path, W_OK) != 0) {
		/* Checked first: a read-only open would leave read-only -wal and -shm
		   files behind that keep the store unusable once the file is writable. */
		snprintf(err, errlen, "%s: %s", s->spec,
		         errno == EACCES || errno == EROFS ? "read-only" : strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", s->spec,
		         s->db ? sqlite3_errmsg(s->db) : "cannot open");
		return -1;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 2000);
	if (create == 1) {
		if (sqlite3_db_readonly(s->db, "main") == 1) {
			snprintf(err, errlen, "%s: read-only", s->spec);
			return -1;
		}
		/* WAL: readers (clinimail audit) never block the writer. */
		if (sq_exec(s, "PRAGMA journal_mode=WAL", err, errlen) != 0 ||
		    sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
			return -1;
		if (sq_exec(s, sqlite_schema, err, errlen) != 0 ||
		    sq_exec(s,
		            "INSERT OR IGNORE INTO audit_meta (name, value) VALUES "
		            "('schema', '" SCHEMA_VERSION "'), ('head_id', '0'), ('head_hash', '')",
		            err, errlen) != 0 ||
		    sq_exec(s, "COMMIT", err, errlen) != 0) {
			sq_exec(s, "ROLLBACK", err, 0);
			return -1;
		}
	}
	/* Durable commits: an audit record acknowledged is on disk. */
	return sq_exec(s, "PRAGMA synchronous=FULL", err, errlen);
}

static int sq_bind_insert(struct audit_store *s, const struct audit_record *r, char *err,
                          size_t errlen)
{
	const char *vals[19];

	if (s->ins == NULL &&
	    sqlite3_prepare_v2(s->db,
	                       INSERT_SQL
	                       "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
	                       "?14, ?15, ?16, ?17, ?18, ?19)",
	                       -1, &s->ins, NULL) != SQLITE_OK) {
		sq_err(s, "preparing the insert", err, errlen);
		return -1;
	}
	sqlite3_reset(s->ins);
	sqlite3_clear_bindings(s->ins);
	record_values(r, vals);
	for (int i = 0; i < 19; i++) {
		if (i == 14)
			sqlite3_bind_int(s->ins, i + 1, r->exception ? 1 : 0);
		else
			sqlite3_bind_text(s->ins, i + 1, vals[i], -1, SQLITE_STATIC);
	}
	if (sqlite3_step(s->ins) != SQLITE_DONE) {
		sq_err(s, "insert", err, errlen);
		sqlite3_reset(s->ins);
		return -1;
	}
	sqlite3_reset(s->ins);
	return 0;
}

/* ================= PostgreSQL ================= */

static void pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* "relation already exists, skipping" and the like */
}

static void pg_err(struct audit_store *s, const char *what, char *err, size_t errlen)
{
	char msg[400];
	size_t n;

	snprintf(msg, sizeof(msg), "%s", s->pg ? PQerrorMessage(s->pg) : "no connection");
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	snprintf(err, errlen, "pgsql: %s: %s", what, msg);
}

static int pg_exec(struct audit_store *s, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(s->pg, sql);
	ExecStatusType st = PQresultStatus(res);

	PQclear(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		pg_err(s, sql, err, errlen);
		return -1;
	}
	return 0;
}

/* One-value query; buf gets "" when there is no row.  sql has at most one parameter. */
static int pg_value(struct audit_store *s, const char *sql, const char *param, char *buf,
                    size_t len, char *err, size_t errlen)
{
	PGresult *res =
	    PQexecParams(s->pg, sql, param ? 1 : 0, NULL, param ? &param : NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pg_err(s, "query", err, errlen);
		PQclear(res);
		return -1;
	}
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		snprintf(buf, len, "%s", PQgetvalue(res, 0, 0));
	else
		buf[0] = '\0';
	PQclear(res);
	return 0;
}

static int pg_meta_set(struct audit_store *s, const char *name, const char *value, char *err,
                       size_t errlen)
{
	const char *p[2] = {name, value};
	PGresult *res = PQexecParams(s->pg,
	                             "INSERT INTO audit_meta (name, value) VALUES ($1, $2) "
	                             "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
	                             2, NULL, p, NULL, NULL, 0);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	if (!ok) {
		pg_err(s, "writing audit_meta", err, errlen);
		return -1;
	}
	return 0;
}

static int pg_open(struct audit_store *s, const char *conninfo, int create, char *err,
                   size_t errlen)
{
	/* Our connect_timeout first: the site's conninfo may override it. */
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {"5", "clinimail", conninfo, NULL};

	s->pg = PQconnectdbParams(keys, vals, 1);
	if (s->pg == NULL || PQstatus(s->pg) != CONNECTION_OK) {
		pg_err(s, "connect", err, errlen);
		return -1;
	}
	PQsetNoticeProcessor(s->pg, pg_quiet, NULL);
	/* A chain head locked for long (another writer stuck, an officer's session) is
	   an outage, not a reason to stop recording forever. */
	if (pg_exec(s, "SET lock_timeout = 2000", err, errlen) != 0)
		return -1;
	if (create == 1) {
		/* Several MTAs may start at once: serialise the schema creation. */
		if (pg_exec(s, "BEGIN", err, errlen) != 0)
			return -1;
		if (pg_exec(s, "SELECT pg_advisory_xact_lock(7235846031)", err, errlen) != 0 ||
		    pg_exec(s, pg_schema, err, errlen) != 0 ||
		    pg_exec(
		        s,
		        "INSERT INTO audit_meta (name, value) VALUES ('schema', '" SCHEMA_VERSION
		        "'), ('head_id', '0'), ('head_hash', '') ON CONFLICT (name) DO NOTHING",
		        err, errlen) != 0 ||
		    pg_exec(s, "COMMIT", err, errlen) != 0) {
			pg_exec(s, "ROLLBACK", err, 0);
			return -1;
		}
	}
	return 0;
}

static int pg_insert(struct audit_store *s, struct audit_record *r, char *err, size_t errlen)
{
	const char *vals[19];
	PGresult *res;

	if (!s->pg_prepared) {
		res = PQprepare(s->pg, "cm_audit_insert",
		                INSERT_SQL
		                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
		                "$15::integer, $16, $17, $18, $19) RETURNING id",
		                19, NULL);
		int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		if (!ok) {
			pg_err(s, "preparing the insert", err, errlen);
			return -1;
		}
		s->pg_prepared = 1;
	}
	record_values(r, vals);
	res = PQexecPrepared(s->pg, "cm_audit_insert", 19, vals, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pg_err(s, "insert", err, errlen);
		PQclear(res);
		return -1;
	}
	r->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/* ================= common ================= */

struct audit_store *audit_store_open(const char *spec, int create, const char *mode, char *err,
                                     size_t errlen)
{
	struct audit_store *s = xcalloc(1, sizeof(*s));
	char stored[128];
	int rc;

	s->spec = xstrdup(spec ? spec : "");
	if (spec != NULL && strncmp(spec, "sqlite:", 7) == 0) {
		s->kind = STORE_SQLITE;
		rc = sq_open(s, spec + 7, create, err, errlen);
	} else if (spec != NULL && strncmp(spec, "pgsql:", 6) == 0) {
		s->kind = STORE_PGSQL;
		rc = pg_open(s, spec + 6, create, err, errlen);
	} else {
		snprintf(err, errlen, "audit store \"%s\": expected sqlite:/path or pgsql:conninfo",
		         spec ? spec : "");
		rc = -1;
	}
	if (rc == 0 && audit_store_mode(s, stored, sizeof(stored), err, errlen) != 0)
		rc = -1;
	if (rc == 0 && stored[0] == '\0') {
		/* A new store: its chain mode is fixed now. */
		if (create != 1 || mode == NULL) {
			snprintf(err, errlen, "%s: not a clinimail audit store (no chain mode)",
			         s->spec);
			rc = -1;
		} else if ((s->kind == STORE_SQLITE
		                ? sq_meta_set(s, "mode", mode, err, errlen)
		                : pg_meta_set(s, "mode", mode, err, errlen)) != 0) {
			rc = -1;
		}
	} else if (rc == 0 && mode != NULL && strcmp(stored, mode) != 0) {
		snprintf(err, errlen,
		         "%s: the store's chain mode is %s but the configuration gives %s "
		         "(a store keeps the key it was created with)",
		         s->spec, stored, mode);
		rc = -1;
	}
	if (rc != 0) {
		audit_store_close(s);
		return NULL;
	}
	return s;
}

void audit_store_close(struct audit_store *s)
{
	if (s == NULL)
		return;
	if (s->ins != NULL)
		sqlite3_finalize(s->ins);
	if (s->db != NULL)
		sqlite3_close(s->db);
	if (s->pg != NULL)
		PQfinish(s->pg);
	free(s->spec);
	free(s);
}

const char *audit_store_kind(const struct audit_store *s)
{
	return s->kind == STORE_SQLITE ? "sqlite" : "pgsql";
}

int audit_store_mode(struct audit_store *s, char *buf, size_t len, char *err, size_t errlen)
{
	if (s->kind == STORE_SQLITE)
		return sq_meta_get(s, "mode", buf, len, err, errlen);
	return pg_value(s, "SELECT value FROM audit_meta WHERE name = 'mode'", NULL, buf, len, err,
	                errlen);
}

int audit_store_probe(struct audit_store *s, char *err, size_t errlen)
{
	if (s->kind == STORE_PGSQL) {
		char one[8];
		if (PQstatus(s->pg) != CONNECTION_OK) {
			pg_err(s, "connection", err, errlen);
			return -1;
		}
		return pg_value(s, "SELECT 1", NULL, one, sizeof(one), err, errlen);
	}
	if (sq_exec(s, "BEGIN IMMEDIATE", err, errlen) != 0)
		return -1;
	int rc =
	    sq_exec(s, "UPDATE audit_meta SET value = value WHERE name = 'schema'", err, errlen);
	sq_exec(s, "ROLLBACK", err, 0);
	return rc;
}

static int head_get(struct audit_store *s, int for_update, long long *id, char *hash,
                    size_t hashlen, char *err, size_t errlen)
{
	char idbuf[32];

	if (s->kind == STORE_SQLITE) {
		if (sq_meta_get(s, "head_id", idbuf, sizeof(idbuf), err, errlen) != 0 ||
		    sq_meta_get(s, "head_hash", hash, hashlen, err, errlen) != 0)
			return -1;
	} else {
		if (pg_value(
		        s,
		        for_update
		            ? "SELECT value FROM audit_meta WHERE name = 'head_hash' FOR UPDATE"
		            : "SELECT value FROM audit_meta WHERE name = 'head_hash'",
		        NULL, hash, hashlen, err, errlen) != 0 ||
		    pg_value(s, "SELECT value FROM audit_meta WHERE name = 'head_id'", NULL, idbuf,
		             sizeof(idbuf), err, errlen) != 0)
			return -1;
	}
	*id = strtoll(idbuf, NULL, 10);
	return 0;
}

int audit_store_head(struct audit_store *s, long long *id, char *hash, size_t hashlen, char *err,
                     size_t errlen)
{
	return head_get(s, 0, id, hash, hashlen, err, errlen);
}

static int begin(struct audit_store *s, char *err, size_t errlen)
{
	return s->kind == STORE_SQLITE ? sq_exec(s, "BEGIN IMMEDIATE", err, errlen)
	                               : pg_exec(s, "BEGIN", err, errlen);
}

static int commit(struct audit_store *s, char *err, size_t errlen)
{
	return s->kind == STORE_SQLITE ? sq_exec(s, "COMMIT", err, errlen)
	                               : pg_exec(s, "COMMIT", err, errlen);
}

/* A read-only snapshot (SQLite: a deferred transaction, never the write lock). */
static int begin_read(struct audit_store *s, char *err, size_t errlen)
{
	return s->kind == STORE_SQLITE
	           ? sq_exec(s, "BEGIN", err, errlen)
	           : pg_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen);
}

static void rollback(struct audit_store *s)
{
	char ignored[8];
	if (s->kind == STORE_SQLITE)
		sq_exec(s, "ROLLBACK", ignored, sizeof(ignored));
	else if (PQstatus(s->pg) == CONNECTION_OK)
		pg_exec(s, "ROLLBACK", ignored, sizeof(ignored));
}

/* Inside a transaction: chain and insert the records, move the head. */
static int append_in_tx(struct audit_store *s, struct audit_record *const *recs, size_t n,
                        const struct audit_key *k, char *err, size_t errlen)
{
	char prev[AUDIT_HASH_HEX + 8], hash[AUDIT_HASH_HEX + 1], idbuf[32];
	long long head_id;

	if (head_get(s, 1, &head_id, prev, sizeof(prev), err, errlen) != 0)
		return -1;
	if (prev[0] == '\0')
		snprintf(prev, sizeof(prev), "%s", ZERO_HASH);
	for (size_t i = 0; i < n; i++) {
		struct audit_record *r = recs[i];
		audit_record_hash(r, prev, k, hash);
		set_hash(r, prev, hash);
		if (s->kind == STORE_SQLITE) {
			if (sq_bind_insert(s, r, err, errlen) != 0)
				return -1;
			r->id = (long long)sqlite3_last_insert_rowid(s->db);
		} else if (pg_insert(s, r, err, errlen) != 0) {
			return -1;
		}
		snprintf(prev, sizeof(prev), "%s", hash);
		head_id = r->id;
	}
	snprintf(idbuf, sizeof(idbuf), "%lld", head_id);
	if (s->kind == STORE_SQLITE)
		return sq_meta_set(s, "head_hash", prev, err, errlen) == 0 &&
		               sq_meta_set(s, "head_id", idbuf, err, errlen) == 0
		           ? 0
		           : -1;
	return pg_meta_set(s, "head_hash", prev, err, errlen) == 0 &&
	               pg_meta_set(s, "head_id", idbuf, err, errlen) == 0
	           ? 0
	           : -1;
}

int audit_store_append(struct audit_store *s, struct audit_record *const *recs, size_t n,
                       const struct audit_key *k, char *err, size_t errlen)
{
	if (n == 0)
		return 0;
	if (begin(s, err, errlen) != 0)
		return -1;
	if (append_in_tx(s, recs, n, k, err, errlen) != 0 || commit(s, err, errlen) != 0) {
		rollback(s);
		return -1;
	}
	return 0;
}

/* ---- scans ---- */

struct where {
	struct strbuf sql;
	const char *params[8];
	int is_int[8];
	int nparams;
};

static void where_add(struct where *w, enum store_kind kind, const char *cond, const char *param,
                      int is_int)
{
	sb_puts(&w->sql, w->nparams == 0 ? " WHERE " : " AND ");
	sb_puts(&w->sql, cond);
	w->is_int[w->nparams] = is_int;
	w->params[w->nparams++] = param;
	if (kind == STORE_SQLITE)
		sb_printf(&w->sql, "?%d", w->nparams);
	else
		sb_printf(&w->sql, "$%d%s", w->nparams, is_int ? "::bigint" : "");
}

int audit_store_scan(struct audit_store *s, const struct audit_query *q,
                     int (*cb)(const struct audit_record *r, void *arg), void *arg, char *err,
                     size_t errlen)
{
	struct where w;
	char after[32], maxid[32];
	struct audit_record *r = audit_record_new();
	const char *col[NCOLS];
	int rc = 0;

	memset(&w, 0, sizeof(w));
	sb_init(&w.sql);
	sb_puts(&w.sql, "SELECT " COLUMNS " FROM audit_record");
	if (q != NULL) {
		if (q->since)
			where_add(&w, s->kind, "time >= ", q->since, 0);
		if (q->until)
			where_add(&w, s->kind, "time < ", q->until, 0);
		if (q->ref)
			where_add(&w, s->kind, "ref = ", q->ref, 0);
		if (q->kind)
			where_add(&w, s->kind, "kind = ", q->kind, 0);
		if (q->after_id > 0) {
			snprintf(after, sizeof(after), "%lld", q->after_id);
			where_add(&w, s->kind, "id > ", after, 1);
		}
		if (q->max_id > 0) {
			snprintf(maxid, sizeof(maxid), "%lld", q->max_id);
			where_add(&w, s->kind, "id <= ", maxid, 1);
		}
	}
	sb_puts(&w.sql, " ORDER BY id");

	if (s->kind == STORE_SQLITE) {
		sqlite3_stmt *st = NULL;
		int step;
		if (sqlite3_prepare_v2(s->db, w.sql.data, -1, &st, NULL) != SQLITE_OK) {
			sq_err(s, "query", err, errlen);
			rc = -1;
			goto out;
		}
		for (int i = 0; i < w.nparams; i++) {
			if (w.is_int[i])
				sqlite3_bind_int64(st, i + 1, strtoll(w.params[i], NULL, 10));
			else
				sqlite3_bind_text(st, i + 1, w.params[i], -1, SQLITE_STATIC);
		}
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			for (int i = 0; i < NCOLS; i++)
				col[i] = (const char *)sqlite3_column_text(st, i);
			record_from_columns(r, col);
			if (cb(r, arg) != 0)
				break;
		}
		if (step != SQLITE_ROW && step != SQLITE_DONE) {
			sq_err(s, "query", err, errlen);
			rc = -1;
		}
		sqlite3_finalize(st);
	} else {
		PGresult *res;
		int stop = 0;
		if (!PQsendQueryParams(s->pg, w.sql.data, w.nparams, NULL, w.params, NULL, NULL,
		                       0) ||
		    !PQsetSingleRowMode(s->pg)) {
			pg_err(s, "query", err, errlen);
			rc = -1;
			goto out;
		}
		while ((res = PQgetResult(s->pg)) != NULL) {
			ExecStatusType st = PQresultStatus(res);
			if (st == PGRES_SINGLE_TUPLE && !stop) {
				for (int i = 0; i < NCOLS; i++)
					col[i] =
					    PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
				record_from_columns(r, col);
				if (cb(r, arg) != 0)
					stop = 1; /* drain the remaining results */
			} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK) {
				pg_err(s, "query", err, errlen);
				rc = -1;
			}
			PQclear(res);
		}
	}
out:
	sb_free(&w.sql);
	audit_record_free(r);
	return rc;
}

/* ---- retention ---- */

static int count_and_last(struct audit_store *s, const char *before, long long *count,
                          long long *last_id, char *last_hash, size_t hashlen, char *err,
                          size_t errlen)
{
	/* The prefix to purge: every record before the first one at or after `before`. */
	static const char *const sq_sql =
	    "SELECT COUNT(*), MAX(id) FROM audit_record WHERE id < "
	    "COALESCE((SELECT MIN(id) FROM audit_record WHERE time >= ?1), "
	    "(SELECT COALESCE(MAX(id), 0) + 1 FROM audit_record))";
	static const char *const pg_sql =
	    "SELECT COUNT(*), MAX(id) FROM audit_record WHERE id < "
	    "COALESCE((SELECT MIN(id) FROM audit_record WHERE time >= $1), "
	    "(SELECT COALESCE(MAX(id), 0) + 1 FROM audit_record))";
	char buf[32];

	*count = 0;
	*last_id = 0;
	last_hash[0] = '\0';
	if (s->kind == STORE_SQLITE) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(s->db, sq_sql, -1, &st, NULL) != SQLITE_OK) {
			sq_err(s, "purge", err, errlen);
			return -1;
		}
		sqlite3_bind_text(st, 1, before, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sq_err(s, "purge", err, errlen);
			sqlite3_finalize(st);
			return -1;
		}
		*count = sqlite3_column_int64(st, 0);
		*last_id = sqlite3_column_int64(st, 1);
		sqlite3_finalize(st);
		if (*count == 0)
			return 0;
		if (sqlite3_prepare_v2(s->db, "SELECT hash FROM audit_record WHERE id = ?1", -1,
		                       &st, NULL) != SQLITE_OK) {
			sq_err(s, "purge", err, errlen);
			return -1;
		}
		sqlite3_bind_int64(st, 1, *last_id);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sq_err(s, "purge", err, errlen);
			sqlite3_finalize(st);
			return -1;
		}
		snprintf(last_hash, hashlen, "%s", (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		return 0;
	}
	PGresult *res = PQexecParams(s->pg, pg_sql, 1, NULL, &before, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pg_err(s, "purge", err, errlen);
		PQclear(res);
		return -1;
	}
	*count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*last_id = PQgetisnull(res, 0, 1) ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (*count == 0)
		return 0;
	snprintf(buf, sizeof(buf), "%lld", *last_id);
	return pg_value(s, "SELECT hash FROM audit_record WHERE id = $1::bigint", buf, last_hash,
	                hashlen, err, errlen);
}

int audit_store_purge(struct audit_store *s, const char *before, const struct audit_key *k,
                      const char *host, long long *purged, char *err, size_t errlen)
{
	long long count, last_id, head_id;
	char last_hash[AUDIT_HASH_HEX + 8], head[AUDIT_HASH_HEX + 8], buf[400], now[40];
	struct audit_record *anchor;
	int rc = -1;

	*purged = 0;
	if (begin(s, err, errlen) != 0)
		return -1;
	/* Lock the chain head first: writers wait until the purge is committed. */
	if (head_get(s, 1, &head_id, head, sizeof(head), err, errlen) != 0 ||
	    count_and_last(s, before, &count, &last_id, last_hash, sizeof(last_hash), err,
	                   errlen) != 0)
		goto fail;
	if (count == 0) {
		rollback(s);
		return 0;
	}
	snprintf(buf, sizeof(buf), "%lld", last_id);
	if (s->kind == STORE_SQLITE) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(s->db, "DELETE FROM audit_record WHERE id <= ?1", -1, &st,
		                       NULL) != SQLITE_OK) {
			sq_err(s, "purge", err, errlen);
			goto fail;
		}
		sqlite3_bind_int64(st, 1, last_id);
		int step = sqlite3_step(st);
		sqlite3_finalize(st);
		if (step != SQLITE_DONE) {
			sq_err(s, "purge", err, errlen);
			goto fail;
		}
	} else {
		const char *p = buf;
		PGresult *res =
		    PQexecParams(s->pg, "DELETE FROM audit_record WHERE id <= $1::bigint", 1, NULL,
		                 &p, NULL, NULL, 0);
		int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		if (!ok) {
			pg_err(s, "purge", err, errlen);
			goto fail;
		}
	}
	anchor = audit_record_new();
	audit_set(&anchor->kind, "anchor", 32);
	audit_now(now, sizeof(now));
	audit_set(&anchor->time, now, 64);
	audit_set(&anchor->host, host, 128);
	audit_set(&anchor->action, "purged", 32);
	snprintf(buf, sizeof(buf), "purged=%lld before=%s last_id=%lld last_hash=%s", count, before,
	         last_id, last_hash);
	audit_set(&anchor->detail, buf, sizeof(buf));
	rc = append_in_tx(s, &anchor, 1, k, err, errlen);
	audit_record_free(anchor);
	if (rc != 0 || commit(s, err, errlen) != 0)
		goto fail;
	*purged = count;
	return 0;
fail:
	rollback(s);
	return -1;
}

/* ---- verification ---- */

struct verify_state {
	const struct audit_key *k;
	struct audit_verify_result *res;
	char expected[AUDIT_HASH_HEX + 8];
	long long prev_id;
	int broken;
};

static int verify_cb(const struct audit_record *r, void *arg)
{
	struct verify_state *v = arg;
	char hash[AUDIT_HASH_HEX + 1];

	v->res->records++;
	if (strcmp(r->prev_hash, v->expected) != 0) {
		if (v->prev_id > 0)
			snprintf(v->res->reason, sizeof(v->res->reason),
			         "prev_hash is not the hash of the preceding record (id %lld): "
			         "records removed, inserted or reordered",
			         v->prev_id);
		else
			snprintf(v->res->reason, sizeof(v->res->reason),
			         "prev_hash of the first record does not match %s: earlier records "
			         "removed",
			         strcmp(v->expected, ZERO_HASH) == 0 ? "the start of the chain"
			                                             : "the last purge anchor");
		v->broken = 1;
	} else {
		audit_record_hash(r, r->prev_hash, v->k, hash);
		if (strcmp(hash, r->hash) != 0) {
			snprintf(v->res->reason, sizeof(v->res->reason),
			         "hash mismatch: the record was altered%s",
			         v->k && v->k->len ? " (or hashed with another key)" : "");
			v->broken = 1;
		}
	}
	if (v->broken) {
		v->res->bad_id = r->id;
		snprintf(v->res->bad_ref, sizeof(v->res->bad_ref), "%s", r->ref);
		return 1;
	}
	snprintf(v->expected, sizeof(v->expected), "%s", r->hash);
	v->prev_id = r->id;
	return 0;
}

/* The last anchor's last_hash (the record before the first one kept), or "". */
struct anchor_state {
	char last_hash[AUDIT_HASH_HEX + 8];
};

static int anchor_cb(const struct audit_record *r, void *arg)
{
	struct anchor_state *a = arg;
	const char *p = strstr(r->detail, "last_hash=");

	a->last_hash[0] = '\0';
	if (p != NULL)
		snprintf(a->last_hash, sizeof(a->last_hash), "%.*s", AUDIT_HASH_HEX, p + 10);
	return 0;
}

int audit_verify(struct audit_store *s, const struct audit_key *k, struct audit_verify_result *res,
                 char *err, size_t errlen)
{
	char mode[128], want[128], head[AUDIT_HASH_HEX + 8];
	long long head_id;
	struct verify_state v;
	struct anchor_state an;
	struct audit_query q;

	memset(res, 0, sizeof(*res));
	if (audit_store_mode(s, mode, sizeof(mode), err, errlen) != 0)
		return -1;
	audit_key_mode(k, want, sizeof(want));
	if (strcmp(mode, want) != 0) {
		if (strncmp(mode, "hmac", 4) == 0 && (k == NULL || k->len == 0))
			snprintf(err, errlen, "the store is keyed (%s): give its key (--key FILE)",
			         mode);
		else
			snprintf(err, errlen,
			         "the store's chain mode is %s, the key given means %s", mode,
			         want);
		return -1;
	}
	if (begin_read(s, err, errlen) != 0) /* one snapshot for head and rows */
		return -1;
	if (head_get(s, 0, &head_id, head, sizeof(head), err, errlen) != 0) {
		rollback(s);
		return -1;
	}
	memset(&an, 0, sizeof(an));
	memset(&q, 0, sizeof(q));
	q.kind = "anchor";
	q.max_id = head_id;
	if (head_id > 0 && audit_store_scan(s, &q, anchor_cb, &an, err, errlen) != 0) {
		rollback(s);
		return -1;
	}
	memset(&v, 0, sizeof(v));
	v.k = k;
	v.res = res;
	snprintf(v.expected, sizeof(v.expected), "%s", an.last_hash[0] ? an.last_hash : ZERO_HASH);
	memset(&q, 0, sizeof(q));
	q.max_id = head_id; /* rows appended while we read are for the next run */
	if (audit_store_scan(s, &q, verify_cb, &v, err, errlen) != 0) {
		rollback(s);
		return -1;
	}
	rollback(s);
	if (v.broken)
		return 1;
	if (head_id > 0 && (v.prev_id != head_id || strcmp(v.expected, head) != 0)) {
		res->bad_id = head_id;
		snprintf(
		    res->reason, sizeof(res->reason),
		    "the chain ends at id %lld but its head is id %lld: the newest records were "
		    "removed",
		    v.prev_id, head_id);
		return 1;
	}
	if (head_id == 0 && res->records > 0) {
		res->bad_id = 0;
		snprintf(res->reason, sizeof(res->reason),
		         "records exist but the chain head is empty: metadata altered");
		return 1;
	}
	return 0;
}
