/*
 * test_audit.c — the audit trail: records built from verdicts (cleaned, no
 * clinical content), canonical and spool forms, the hash chain with and
 * without an HMAC key, verification naming the first altered / removed
 * record, purge with an anchor, the writer thread (queue full with the store
 * down refuses, spool then catch-up), and a real policy verdict whose
 * identifiers must appear neither in the store nor in the log.
 */
#include "autoconfig.h"

#include "audit.h"
#include "config.h"
#include "mime_text.h"
#include "policy.h"
#include "util.h"

#include "tap.h"

#include <dirent.h>
#include <fcntl.h>
#include <glib.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmp[256];

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static char *path_in(const char *name)
{
	return g_strdup_printf("%s/%s", tmp, name);
}

/* The store under test: SQLite files in tmp, or the PostgreSQL database named by
   CLINIMAIL_TEST_PGSQL (a libpq conninfo), emptied before each use. */
static const char *pg;

static char *spec_for(const char *name)
{
	return pg ? g_strdup_printf("pgsql:%s", pg) : g_strdup_printf("sqlite:%s/%s", tmp, name);
}

static int sql(const char *spec, const char *stmt)
{
	if (strncmp(spec, "pgsql:", 6) == 0) {
		PGconn *c = PQconnectdb(spec + 6);
		PGresult *r = PQexec(c, stmt);
		int okr =
		    PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!okr)
			diag("sql %s: %s", stmt, PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return okr ? 0 : -1;
	}
	sqlite3 *h = NULL;
	char *msg = NULL;
	int rc = sqlite3_open(spec + 7, &h);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(h, 5000);
		rc = sqlite3_exec(h, stmt, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK)
		diag("sql %s: %s", stmt, msg ? msg : sqlite3_errmsg(h));
	sqlite3_free(msg);
	sqlite3_close(h);
	return rc == SQLITE_OK ? 0 : -1;
}

static long long sql_int(const char *spec, const char *stmt)
{
	long long v = -1;
	if (strncmp(spec, "pgsql:", 6) == 0) {
		PGconn *c = PQconnectdb(spec + 6);
		PGresult *r = PQexec(c, stmt);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
			v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		PQfinish(c);
		return v;
	}
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_open(spec + 7, &h) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, stmt, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* Start from an empty store. */
static void reset_store(const char *spec)
{
	if (strncmp(spec, "pgsql:", 6) == 0) {
		sql(spec, "DROP TABLE IF EXISTS audit_record, audit_meta");
		return;
	}
	char *w = g_strdup_printf("%s-wal", spec + 7), *m = g_strdup_printf("%s-shm", spec + 7);
	unlink(spec + 7);
	unlink(w);
	unlink(m);
	g_free(w);
	g_free(m);
}

/* A hand-made verdict with hostile envelope data. */
static void fake_verdict(struct verdict *v, struct envelope *env, char **rcpts, const char *ref)
{
	memset(v, 0, sizeof(*v));
	memset(env, 0, sizeof(*env));
	v->action = VERDICT_ACCEPT;
	snprintf(v->ref, sizeof(v->ref), "%s", ref);
	v->content = CC_CLINICAL | CC_MED_ORDER;
	v->nrcpts = 2;
	v->rcpts = xcalloc(2, sizeof(*v->rcpts));
	v->rcpts[0].addr = xstrdup("9993335554@fax.hopital.example");
	v->rcpts[0].cls = RC_PHARMACY;
	v->rcpts[0].via_fax = 1;
	v->rcpts[1].addr = xstrdup("bad\x01\n\xff"
	                           "name@x.example");
	v->rcpts[1].cls = RC_EXTERNAL;
	v->nhits = 2;
	v->hits = xcalloc(2, sizeof(*v->hits));
	v->hits[0].rule = RULE_SUBJECT;
	v->hits[0].action = ACT_WARN;
	v->hits[1].rule = RULE_ARCHIVES_COPY;
	v->hits[1].action = ACT_ADD;
	v->nadded = 1;
	v->added_rcpts = xcalloc(1, sizeof(char *));
	v->added_rcpts[0] = xstrdup("archives@hopital.example");
	v->message_id = xstrdup("msg.1@hopital.example");
	v->have_body_hash = 1;
	for (int i = 0; i < 32; i++)
		v->body_sha256[i] = (unsigned char)i;
	v->exception_reason = xstrdup("suivi urgent\tdemande");
	rcpts[0] = "<9993335554@fax.hopital.example>";
	rcpts[1] = "<bad@x.example>";
	env->queue_id = "4ABCDEF";
	env->auth_login = "jtremblay";
	env->mail_from = "<Dr.Tremblay@Hopital.Example>";
	env->rcpts = rcpts;
	env->nrcpts = 2;
}

static struct audit_record *rec(const char *ref, const char *time, const char *action)
{
	struct audit_record *r = audit_record_new();
	audit_set(&r->kind, "decision", 64);
	audit_set(&r->time, time, 64);
	audit_set(&r->host, "mta1.test", 64);
	audit_set(&r->ref, ref, 64);
	audit_set(&r->sender, "dr.tremblay@hopital.example", 64);
	audit_set(&r->recipients, "webmail someone@gmail.com", 64);
	audit_set(&r->rules, "webmail:reject", 64);
	audit_set(&r->action, action, 64);
	audit_set(&r->content, "clinical", 64);
	return r;
}

/* A fresh store holding n records (day d of January 2026 for record d). */
static struct audit_store *fresh_store(const char *name, int n, const struct audit_key *k,
                                       char **spec_out)
{
	char err[512], mode[96], ref[32], t[40];
	char *spec = spec_for(name);
	struct audit_store *s;

	reset_store(spec);
	audit_key_mode(k, mode, sizeof(mode));
	s = audit_store_open(spec, 1, mode, err, sizeof(err));
	if (s == NULL) {
		diag("open %s: %s", spec, err);
		g_free(spec);
		return NULL;
	}
	for (int i = 1; i <= n; i++) {
		struct audit_record *r;
		snprintf(ref, sizeof(ref), "CM-20260101-REC%05d", i);
		snprintf(t, sizeof(t), "2026-01-%02dT10:00:00.000Z", i);
		r = rec(ref, t, i % 2 ? "rejected" : "accepted");
		if (audit_store_append(s, &r, 1, k, err, sizeof(err)) != 0)
			diag("append: %s", err);
		audit_record_free(r);
	}
	*spec_out = spec;
	return s;
}

static int verify(struct audit_store *s, const struct audit_key *k, struct audit_verify_result *res)
{
	char err[512];
	int rc = audit_verify(s, k, res, err, sizeof(err));
	if (rc < 0)
		diag("verify error: %s", err);
	else if (rc > 0)
		diag("verify: id %lld ref %s: %s", res->bad_id, res->bad_ref, res->reason);
	return rc;
}

static void test_record(void)
{
	struct verdict v;
	struct envelope env;
	char *rcpts[2];
	struct audit_record *r, *back;
	char *line, *c1, *c2;

	fake_verdict(&v, &env, rcpts, "CM-20261122-AAAAAAAA");
	r = audit_record_from_verdict(&env, &v, "mta1.test");
	is_str(r->kind, "decision", "record kind");
	is_str(r->ref, "CM-20261122-AAAAAAAA", "record ref");
	is_str(r->queue_id, "4ABCDEF", "record queue id");
	is_str(r->message_id, "msg.1@hopital.example", "record Message-ID");
	is_str(r->sender, "dr.tremblay@hopital.example", "envelope sender normalised");
	is_str(r->auth_login, "jtremblay", "auth login");
	is_str(r->action, "modified", "accept with an added recipient is 'modified'");
	is_str(r->changes, "archives-added", "changes say archives added");
	is_str(r->rules, "subject:warn,archives-copy:add", "rules with their action");
	is_str(r->content, "clinical,med-order", "content classes");
	is_str(r->body_sha256, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	       "body SHA-256 in hex");
	is_int(r->exception, 1, "exception flag");
	is_str(r->justification, "suivi urgent?demande",
	       "justification kept, control characters cleaned");
	ok(strstr(r->recipients, "pharmacy,fax 9993335554@fax.hopital.example\n") == r->recipients,
	   "first recipient line: class, fax flag, address");
	ok(strstr(r->recipients, "\narchives,added archives@hopital.example") != NULL,
	   "added archives recipient recorded");
	ok(g_utf8_validate(r->recipients, -1, NULL) && strchr(r->recipients, '\x01') == NULL,
	   "hostile recipient cleaned to valid UTF-8 without control characters");
	ok(strlen(r->time) == 24 && r->time[10] == 'T' && r->time[23] == 'Z',
	   "ISO 8601 UTC time (%s)", r->time);

	line = audit_record_to_line(r);
	ok(strchr(line, '\n') == NULL, "spool line is one line");
	back = audit_record_from_line(line);
	ok(back != NULL, "spool line parses back");
	c1 = audit_canonical(r, NULL);
	c2 = back ? audit_canonical(back, NULL) : xstrdup("");
	is_str(c2, c1, "spool round trip keeps the canonical form");
	ok(audit_record_from_line("clinimail-audit-1\tx") == NULL, "short spool line refused");
	ok(audit_record_from_line("garbage") == NULL, "garbage spool line refused");
	free(c1);
	free(c2);
	free(line);
	audit_record_free(back);

	/* Hashes: deterministic, keyed differs, any field change differs. */
	{
		char h1[65], h2[65], h3[65], h4[65];
		struct audit_key k;
		memset(&k, 0, sizeof(k));
		memcpy(k.key, "0123456789abcdef0123", 20);
		k.len = 20;
		audit_record_hash(r, NULL, NULL, h1);
		audit_record_hash(r, NULL, NULL, h2);
		audit_record_hash(r, NULL, &k, h3);
		audit_set(&r->action, "accepted", 32);
		audit_record_hash(r, NULL, NULL, h4);
		is_str(h1, h2, "hash is deterministic");
		ok(strcmp(h1, h3) != 0, "HMAC differs from plain SHA-256");
		ok(strcmp(h1, h4) != 0, "changing the action changes the hash");
		ok(strlen(h1) == 64, "hash is 64 hex digits");
	}
	audit_record_free(r);

	/* Tempfail with no classification: envelope recipients as "unknown". */
	verdict_free(&v);
	memset(&v, 0, sizeof(v));
	snprintf(v.ref, sizeof(v.ref), "CM-20261122-BBBBBBBB");
	v.action = VERDICT_TEMPFAIL;
	r = audit_record_from_verdict(&env, &v, "mta1.test");
	is_str(r->action, "tempfailed", "tempfail recorded");
	ok(strstr(r->recipients, "unknown 9993335554@fax.hopital.example") != NULL,
	   "unclassified envelope recipients recorded as unknown");
	is_str(r->detail, "error=yes", "tempfail detail");
	audit_record_free(r);
}

static void test_dates(void)
{
	char out[40];
	ok(audit_parse_date("2026-11-22", 0, out, sizeof(out)) == 0 &&
	       strcmp(out, "2026-11-22T00:00:00.000Z") == 0,
	   "date");
	ok(audit_parse_date("2026-11-22", 1, out, sizeof(out)) == 0 &&
	       strcmp(out, "2026-11-23T00:00:00.000Z") == 0,
	   "date, end of day");
	ok(audit_parse_date("2026-12-31T23:59", 1, out, sizeof(out)) == 0 &&
	       strcmp(out, "2026-12-31T23:59:00.000Z") == 0,
	   "date and time");
	ok(audit_parse_date("2026-02-30", 0, out, sizeof(out)) != 0, "impossible date refused");
	ok(audit_parse_date("22/11/2026", 0, out, sizeof(out)) != 0, "other format refused");
	ok(audit_parse_date("2026-11-22T10:00x", 0, out, sizeof(out)) != 0,
	   "trailing junk refused");
}

static void test_key(void)
{
	char err[512];
	struct audit_key k;
	char *p = path_in("key");
	FILE *fp = fopen(p, "w");

	fputs("a-long-enough-secret-key-for-tests\n", fp);
	fclose(fp);
	chmod(p, 0644);
	ok(audit_key_load(p, &k, err, sizeof(err)) != 0 && strstr(err, "others") != NULL,
	   "world-readable key refused (%s)", err);
	chmod(p, 0600);
	ok(audit_key_load(p, &k, err, sizeof(err)) == 0, "private key loaded");
	is_int((long)k.len, 34, "trailing newline is not part of the key");
	is_int((long)strlen(k.id), 16, "key id is 16 hex digits");
	fp = fopen(p, "w");
	fputs("short\n", fp);
	fclose(fp);
	ok(audit_key_load(p, &k, err, sizeof(err)) != 0, "short key refused");
	g_free(p);
}

static void test_chain(void)
{
	struct audit_verify_result res;
	struct audit_store *s;
	char *db = NULL, err[512];

	s = fresh_store("chain.db", 6, NULL, &db);
	ok(s != NULL, "store created");
	if (s == NULL)
		return;
	is_int(verify(s, NULL, &res), 0, "fresh chain verifies");
	is_int((long)res.records, 6, "six records checked");

	sql(db, "UPDATE audit_record SET action = 'accepted' WHERE id = 3");
	is_int(verify(s, NULL, &res), 1, "UPDATE of one row breaks the chain");
	is_int((long)res.bad_id, 3, "verify names the altered row");
	is_str(res.bad_ref, "CM-20260101-REC00003", "verify names its reference");
	ok(strstr(res.reason, "altered") != NULL, "reason says altered");
	sql(db, "UPDATE audit_record SET action = 'rejected' WHERE id = 3");
	is_int(verify(s, NULL, &res), 0, "restored row verifies again");

	sql(db, "UPDATE audit_record SET recipients = 'internal x@hopital.example' WHERE id = 5");
	is_int(verify(s, NULL, &res), 1, "altered recipients detected");
	is_int((long)res.bad_id, 5, "at row 5");
	audit_store_close(s);
	g_free(db);

	s = fresh_store("chain2.db", 6, NULL, &db);
	sql(db, "DELETE FROM audit_record WHERE id = 4");
	is_int(verify(s, NULL, &res), 1, "a removed row breaks the chain");
	is_int((long)res.bad_id, 5, "at the row after the gap");
	ok(strstr(res.reason, "removed") != NULL, "reason says removed");
	audit_store_close(s);
	g_free(db);

	s = fresh_store("chain3.db", 6, NULL, &db);
	sql(db, "DELETE FROM audit_record WHERE id = 6");
	is_int(verify(s, NULL, &res), 1, "removing the newest row is detected (chain head)");
	is_int((long)res.bad_id, 6, "named by the head id");
	sql(db, "DELETE FROM audit_record WHERE id = 1");
	is_int(verify(s, NULL, &res), 1, "removing the oldest row is detected");
	is_int((long)res.bad_id, 2, "at the new first row");
	audit_store_close(s);
	g_free(db);

	/* Purge keeps the chain verifiable through its anchor. */
	s = fresh_store("purge.db", 6, NULL, &db);
	{
		long long purged = -1;
		ok(audit_store_purge(s, "2026-01-04T00:00:00.000Z", NULL, "mta1.test", &purged, err,
		                     sizeof(err)) == 0,
		   "purge");
		is_int((long)purged, 3, "three records purged");
		is_int(
		    (long)sql_int(db, "SELECT COUNT(*) FROM audit_record WHERE kind = 'decision'"),
		    3, "three decisions left");
		is_int((long)sql_int(db, "SELECT COUNT(*) FROM audit_record WHERE kind = 'anchor'"),
		       1, "one anchor");
		is_int(verify(s, NULL, &res), 0, "chain verifies after purge");
		is_int((long)res.records, 4, "three records and the anchor");
		ok(audit_store_purge(s, "2026-01-01T00:00:00.000Z", NULL, "mta1.test", &purged, err,
		                     sizeof(err)) == 0 &&
		       purged == 0,
		   "purge with nothing older does nothing");
		ok(audit_store_purge(s, "2026-01-06T00:00:00.000Z", NULL, "mta1.test", &purged, err,
		                     sizeof(err)) == 0 &&
		       purged == 2,
		   "second purge");
		is_int(verify(s, NULL, &res), 0, "chain verifies after a second purge");
		sql(db, "DELETE FROM audit_record WHERE kind = 'anchor'");
		is_int(verify(s, NULL, &res), 1, "removing the anchor is detected");
	}
	audit_store_close(s);
	g_free(db);
}

/* Rewrite every row from id `from` with plain SHA-256, as someone without the key would. */
struct rows {
	struct audit_record *r[16];
	size_t n;
};

static int collect_cb(const struct audit_record *r, void *arg)
{
	struct rows *rows = arg;
	if (rows->n < 16)
		rows->r[rows->n++] = audit_record_dup(r);
	return 0;
}

static void forge_rewrite(struct audit_store *s, const char *spec, long long from)
{
	struct rows rows = {.n = 0};
	struct audit_query q;
	char prev[65] = "", hash[65], err[256], stmt[512];

	memset(&q, 0, sizeof(q));
	if (audit_store_scan(s, &q, collect_cb, &rows, err, sizeof(err)) != 0)
		diag("scan: %s", err);
	for (size_t i = 0; i < rows.n; i++) {
		struct audit_record *r = rows.r[i];
		if (r->id < from) {
			snprintf(prev, sizeof(prev), "%s", r->hash);
			continue;
		}
		if (r->id == from)
			audit_set(&r->action, "accepted", 32);
		audit_record_hash(r, prev, NULL, hash);
		snprintf(stmt, sizeof(stmt),
		         "UPDATE audit_record SET action = '%s', prev_hash = '%s', hash = '%s' "
		         "WHERE id = %lld",
		         r->action, prev, hash, r->id);
		sql(spec, stmt);
		snprintf(prev, sizeof(prev), "%s", hash);
	}
	snprintf(stmt, sizeof(stmt), "UPDATE audit_meta SET value = '%s' WHERE name = 'head_hash'",
	         prev);
	sql(spec, stmt);
	for (size_t i = 0; i < rows.n; i++)
		audit_record_free(rows.r[i]);
}

static void test_hmac(void)
{
	struct audit_verify_result res;
	struct audit_key k, k2;
	struct audit_store *s, *s2;
	char *db = NULL, err[512];

	memset(&k, 0, sizeof(k));
	memcpy(k.key, "the-audit-key-0123456789", 24);
	k.len = 24;
	snprintf(k.id, sizeof(k.id), "00000000000000aa");
	k2 = k;
	k2.key[0] = 'X';
	snprintf(k2.id, sizeof(k2.id), "00000000000000bb");

	s = fresh_store("hmac.db", 5, &k, &db);
	ok(s != NULL, "keyed store created");
	if (s == NULL)
		return;
	is_int(verify(s, &k, &res), 0, "keyed chain verifies with its key");
	ok(audit_verify(s, NULL, &res, err, sizeof(err)) < 0 && strstr(err, "--key") != NULL,
	   "verify without the key is an error that asks for it");
	ok(audit_verify(s, &k2, &res, err, sizeof(err)) < 0, "verify with another key is an error");
	s2 = audit_store_open(db, 1, "sha256", err, sizeof(err));
	ok(s2 == NULL && strstr(err, "chain mode") != NULL,
	   "opening a keyed store without the key is refused (%s)", err);
	audit_store_close(s2);

	forge_rewrite(s, db, 2);
	is_int(verify(s, &k, &res), 1, "history rewritten without the key is detected");
	is_int((long)res.bad_id, 2, "at the first rewritten row");
	audit_store_close(s);
	g_free(db);

	/* The same rewrite of an unkeyed chain cannot be told apart: that is what the key is for.
	 */
	s = fresh_store("plain.db", 5, NULL, &db);
	forge_rewrite(s, db, 2);
	is_int(verify(s, NULL, &res), 0,
	       "unkeyed chain fully rewritten verifies (why AuditKey exists)");
	audit_store_close(s);
	g_free(db);
}

static void submit_n(struct audit *a, int n, int *rcs, const char *tag)
{
	for (int i = 0; i < n; i++) {
		struct verdict v;
		struct envelope env;
		char *rcpts[2], ref[32];
		snprintf(ref, sizeof(ref), "CM-20261122-%s%02d", tag, i);
		fake_verdict(&v, &env, rcpts, ref);
		rcs[i] = audit_submit(a, &env, &v);
		verdict_free(&v);
	}
}

static int wait_for(struct audit *a, int (*cond)(const struct audit_stats *), long ms)
{
	struct audit_stats st;
	for (long t = 0; t < ms; t += 50) {
		audit_get_stats(a, &st);
		if (cond(&st))
			return 1;
		sleep_ms(50);
	}
	return 0;
}

static int is_down(const struct audit_stats *st)
{
	return st->store_down;
}
static int is_up(const struct audit_stats *st)
{
	return !st->store_down && st->queued == 0;
}
static int spooled3(const struct audit_stats *st)
{
	return st->spooled >= 3;
}

static size_t spool_files(const char *dir, size_t *lines)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	*lines = 0;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".audit") == NULL)
			continue;
		n++;
		char *p = g_strdup_printf("%s/%s", dir, de->d_name);
		FILE *fp = fopen(p, "r");
		int c;
		while (fp && (c = fgetc(fp)) != EOF)
			if (c == '\n')
				(*lines)++;
		if (fp)
			fclose(fp);
		g_free(p);
	}
	closedir(d);
	return n;
}

/* A second connection holding the write lock: the store is "down" for the writer. */
struct lock {
	sqlite3 *db;
	PGconn *pg;
};

static struct lock lock_store(const char *spec)
{
	struct lock l = {NULL, NULL};
	if (strncmp(spec, "pgsql:", 6) == 0) {
		PGresult *r;
		l.pg = PQconnectdb(spec + 6);
		r = PQexec(l.pg, "BEGIN; LOCK TABLE audit_meta IN ACCESS EXCLUSIVE MODE");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			diag("cannot lock: %s", PQerrorMessage(l.pg));
		PQclear(r);
		return l;
	}
	if (sqlite3_open(spec + 7, &l.db) != SQLITE_OK ||
	    sqlite3_exec(l.db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK)
		diag("cannot lock %s: %s", spec, sqlite3_errmsg(l.db));
	return l;
}

static void unlock_store(struct lock l)
{
	if (l.pg != NULL) {
		PQclear(PQexec(l.pg, "ROLLBACK"));
		PQfinish(l.pg);
		return;
	}
	sqlite3_exec(l.db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(l.db);
}

static void test_writer(void)
{
	char err[512];
	char *db = spec_for("writer.db");
	const char *spec = db;
	struct audit_options o;
	struct audit_verify_result res;
	struct audit_stats st;
	struct audit *a;
	int rcs[8];
	struct lock lock;

	reset_store(db);
	memset(&o, 0, sizeof(o));
	o.store = spec;
	o.queue_size = 2;
	o.create = 1;
	o.host = "mta1.test";
	o.idle_close_ms = 100;
	a = audit_open(&o, err, sizeof(err));
	ok(a != NULL, "audit opened (%s)", a ? "ok" : err);
	if (a == NULL)
		return;
	submit_n(a, 2, rcs, "W");
	ok(rcs[0] == 0 && rcs[1] == 0, "two records queued");
	ok(audit_flush(a, 10000) == 0, "queue drained");
	submit_n(a, 2, rcs, "X");
	ok(audit_flush(a, 10000) == 0 && rcs[0] == 0 && rcs[1] == 0, "two more");
	is_int((long)sql_int(db, "SELECT COUNT(*) FROM audit_record"), 4, "four rows stored");
	ok(sql_int(db, "SELECT COUNT(*) FROM audit_record WHERE ref = 'CM-20261122-X01' AND "
	               "action = 'modified' AND rules = 'subject:warn,archives-copy:add'") == 1,
	   "row holds the decision");

	/* Store down (write lock held elsewhere), tempfail mode. */
	sleep_ms(300); /* let the writer close its idle connection */
	lock = lock_store(db);
	submit_n(a, 2, rcs, "Y");
	ok(rcs[0] == 0 && rcs[1] == 0, "records queued before the outage is noticed");
	ok(wait_for(a, is_down, 15000), "writer notices the store is down");
	submit_n(a, 1, rcs, "Z");
	is_int(rcs[0], -1, "store down and queue full in tempfail mode: submit refuses (-1)");
	audit_get_stats(a, &st);
	is_int((long)st.queued, 2, "the two queued records are still kept");
	unlock_store(lock);
	ok(wait_for(a, is_up, 20000), "store back: queue drained, store up");
	submit_n(a, 1, rcs, "Q");
	is_int(rcs[0], 0, "submit accepted again");
	ok(audit_flush(a, 10000) == 0, "flushed");
	is_int((long)sql_int(db, "SELECT COUNT(*) FROM audit_record"), 7,
	       "nothing lost: 4 + 2 kept + 1 new (the refused one was tempfailed)");
	audit_close(a);

	struct audit_store *s = audit_store_open(spec, 0, NULL, err, sizeof(err));
	is_int(s ? verify(s, NULL, &res) : -1, 0, "chain written by the writer verifies");
	audit_store_close(s);
	g_free(db);
}

static void test_spool(void)
{
	char err[512], fail[400];
	char *db = spec_for("spool.db"), *dir = path_in("spool");
	const char *spec = db;
	struct audit_options o;
	struct audit_verify_result res;
	struct audit *a;
	size_t lines = 0;
	int rcs[8];
	struct lock lock;

	reset_store(db);
	snprintf(fail, sizeof(fail), "spool:%s", dir);
	memset(&o, 0, sizeof(o));
	o.store = spec;
	o.failure = fail;
	o.queue_size = 100;
	o.create = 1;
	o.host = "mta1.test";
	o.idle_close_ms = 100;
	a = audit_open(&o, err, sizeof(err));
	ok(a != NULL, "audit with spool opened (%s)", a ? "ok" : err);
	if (a == NULL)
		return;
	submit_n(a, 1, rcs, "S");
	ok(audit_flush(a, 10000) == 0, "first record stored");
	sleep_ms(300);
	lock = lock_store(db);
	submit_n(a, 3, rcs, "T");
	ok(rcs[0] == 0 && rcs[1] == 0 && rcs[2] == 0,
	   "spool mode: submit accepts while the store is down");
	ok(wait_for(a, spooled3, 20000), "three records spooled");
	is_int((long)spool_files(dir, &lines), 1, "one spool file");
	is_int((long)lines, 3, "holding three records");
	submit_n(a, 1, rcs, "U");
	is_int(rcs[0], 0, "still accepting while spooling");
	unlock_store(lock);
	ok(wait_for(a, is_up, 20000), "store back");
	ok(audit_flush(a, 10000) == 0, "flushed");
	for (int i = 0; i < 100 && spool_files(dir, &lines) > 0; i++)
		sleep_ms(100);
	is_int((long)spool_files(dir, &lines), 0, "spool emptied by the catch-up");
	is_int((long)sql_int(db, "SELECT COUNT(*) FROM audit_record"), 5,
	       "all five records in the store");
	is_int(
	    (long)sql_int(db, "SELECT COUNT(*) FROM audit_record WHERE ref LIKE 'CM-20261122-T%'"),
	    3, "the spooled ones among them");
	audit_close(a);
	struct audit_store *s = audit_store_open(spec, 0, NULL, err, sizeof(err));
	is_int(s ? verify(s, NULL, &res) : -1, 0, "chain verifies after catch-up");
	audit_store_close(s);

	/* Spool files left by a previous run are caught up at the next start. */
	{
		FILE *fp;
		char *old = g_strdup_printf("%s/20260101T000000-1-0.audit", dir);
		struct audit_record *r =
		    rec("CM-20260101-OLDSPOOL", "2026-01-01T00:00:00.000Z", "held");
		char *line = audit_record_to_line(r);
		fp = fopen(old, "w");
		fprintf(fp, "%s\n", line);
		fclose(fp);
		free(line);
		audit_record_free(r);
		a = audit_open(&o, err, sizeof(err));
		for (int i = 0; i < 100 && access(old, F_OK) == 0; i++)
			sleep_ms(100);
		ok(access(old, F_OK) != 0, "left-over spool file caught up at start");
		audit_close(a);
		is_int(
		    (long)sql_int(
		        db, "SELECT COUNT(*) FROM audit_record WHERE ref = 'CM-20260101-OLDSPOOL'"),
		    1, "its record is in the store once");
		g_free(old);
	}
	g_free(db);
	g_free(dir);
}

/* ---- a real verdict: nothing of the message's clinical content reaches the store or log ---- */

static int file_has(const char *path, const char *needle)
{
	gchar *data = NULL;
	gsize len = 0;
	int found = 0;
	if (!g_file_get_contents(path, &data, &len, NULL))
		return 0;
	found = g_strstr_len(data, (gssize)len, needle) != NULL;
	g_free(data);
	return found;
}

static void test_no_identifiers(void)
{
	const char *src = getenv("top_srcdir");
	char err[512];
	char *conf, *spec = spec_for("ident.db"), *logf = path_in("ident.log");
	const char *db = strncmp(spec, "sqlite:", 7) == 0 ? spec + 7 : "/nonexistent";
	struct cm_config *cfg;
	struct audit_options o;
	struct audit *a;
	static const char msg[] =
	    "From: Dr Jean Tremblay <dr.tremblay@hopital.example>\r\n"
	    "To: someone@gmail.com\r\n"
	    "Subject: Suivi de Mme Gertrude Ouellette-Brisebois\r\n"
	    "Message-ID: <audit-test-1@hopital.example>\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	    "Bonjour,\r\n\r\nSuivi de Mme Gertrude Ouellette-Brisebois, NAM OUEG 4653 0312, "
	    "dossier 0987654, DDN 1946-03-03, 72 ans, vue pour douleur thoracique. "
	    "ECG normal, troponine negative. Diabete de type 2.\r\n";
	static const char *const ids[] = {"OUEG",    "Ouellette",  "Brisebois", "Gertrude",
	                                  "0987654", "thoracique", "troponine", "Suivi de"};
	char *rcpts[] = {"someone@gmail.com"};
	struct envelope env = {.queue_id = "5IDTEST",
	                       .auth_login = "jtremblay",
	                       .mail_from = "dr.tremblay@hopital.example",
	                       .rcpts = rcpts,
	                       .nrcpts = 1};
	struct verdict v;
	int saved, fd;

	if (src == NULL)
		src = ".";
	conf = g_strdup_printf("%s/policies/clinimail.conf", src);
	cfg = config_load(conf, err, sizeof(err));
	ok(cfg != NULL, "shipped policy loads (%s)", cfg ? "ok" : err);
	if (cfg == NULL) {
		g_free(conf);
		return;
	}
	memset(&v, 0, sizeof(v));
	policy_eval(cfg, &env, msg, strlen(msg), strlen(msg), NULL, &v);
	is_str(verdict_action_name(v.action), "reject", "clinical mail to webmail is rejected");

	reset_store(spec);
	memset(&o, 0, sizeof(o));
	o.store = spec;
	o.create = 1;
	o.host = "mta1.test";
	/* Capture the log (stderr) while the record is submitted. */
	fflush(stderr);
	saved = dup(2);
	fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	a = audit_open(&o, err, sizeof(err));
	int rc = a ? audit_submit(a, &env, &v) : -1;
	if (a)
		audit_flush(a, 10000);
	/* Keep the connection open: the bytes must not hide in the WAL either. */
	char *wal = g_strdup_printf("%s-wal", db);
	int found = 0;
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (file_has(db, ids[i]) || file_has(wal, ids[i]))
			found++;
	audit_close(a);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	is_int(rc, 0, "decision recorded");
	is_int((long)sql_int(
	           spec, "SELECT COUNT(*) FROM audit_record WHERE rules LIKE '%webmail:reject%' "
	                 "AND message_id = 'audit-test-1@hopital.example' AND action = 'rejected'"),
	       1, "record holds rule, action and Message-ID");
	ok(file_has(logf, "audit: ref=") && file_has(logf, "action=rejected"), "audit line logged");
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (file_has(db, ids[i]) || file_has(logf, ids[i]))
			found++;
	{
		/* Every field of every record, as the store gives them back. */
		struct audit_store *st = audit_store_open(spec, 0, NULL, err, sizeof(err));
		struct rows rows = {.n = 0};
		struct audit_query q;
		memset(&q, 0, sizeof(q));
		if (st != NULL)
			audit_store_scan(st, &q, collect_cb, &rows, err, sizeof(err));
		audit_store_close(st);
		is_int((long)rows.n, 1, "one record");
		for (size_t j = 0; j < rows.n; j++) {
			char *canon = audit_canonical(rows.r[j], NULL);
			for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
				if (strstr(canon, ids[i]) != NULL ||
				    strstr(rows.r[j]->hash, ids[i]) != NULL)
					found++;
			free(canon);
			audit_record_free(rows.r[j]);
		}
	}
	is_int(found, 0, "no identifier or clinical word of the message in the store, WAL or log");
	verdict_free(&v);
	config_unref(cfg);
	g_free(conf);
	g_free(spec);
	g_free(wal);
	g_free(logf);
}

static void rm_rf(const char *dir)
{
	char *cmd = g_strdup_printf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	g_free(cmd);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/test_audit.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	pg = getenv("CLINIMAIL_TEST_PGSQL");
	if (pg != NULL && *pg == '\0')
		pg = NULL;
	diag("store under test: %s", pg ? "PostgreSQL (CLINIMAIL_TEST_PGSQL)" : "SQLite");
	mime_text_global_init();
	test_record();
	test_dates();
	test_key();
	test_chain();
	test_hmac();
	test_writer();
	test_spool();
	test_no_identifiers();
	if (getenv("KEEP") == NULL)
		rm_rf(tmp);
	else
		diag("kept %s", tmp);
	return done_testing();
}
