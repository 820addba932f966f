/*
 * audit.h — the audit trail for security officers: one record per decision
 * (time, reference, queue id, Message-ID, envelope sender, login,
 * recipients with their class, rules fired, final action, content classes,
 * body SHA-256, exception flag), never any clinical content.
 *
 * Records are chained per store: hash = SHA-256 (or HMAC-SHA256 with the
 * AuditKey) over the previous record's hash and the record's canonical
 * serialisation, so that `clinimail audit verify` finds the first altered,
 * removed or reordered record.
 *
 * The milter side (struct audit) never writes to the store itself: records
 * are built in the caller's thread, logged as one "audit:" line and put in a
 * bounded queue that one writer thread drains into the store (SQLite in WAL
 * mode, or PostgreSQL through libpq).  When the store is unavailable the
 * configured failure mode applies: "tempfail" (audit_submit() fails, so the
 * message is tempfailed: fail closed) or "spool:/dir" (records are appended
 * to a local spool and inserted when the store returns).
 *
 * The store side (struct audit_store) is what `clinimail audit` reads,
 * verifies and purges.
 */
#ifndef CLINIMAIL_AUDIT_H
#define CLINIMAIL_AUDIT_H

#include <stddef.h>

struct envelope;
struct verdict;

#define AUDIT_DEFAULT_STORE "sqlite:/var/lib/clinimail/audit.db"
#define AUDIT_DEFAULT_QUEUE 10000
#define AUDIT_HASH_HEX 64

/* ---- records ---- */

/*
 * One record, every field a valid UTF-8 string without control characters
 * (never NULL once built or read; "" when absent).
 */
struct audit_record {
	long long id;        /* row id in the store (0 before insertion) */
	char *kind;          /* "decision"; "anchor" (written by purge); fax events later */
	char *time;          /* UTC, ISO 8601 with milliseconds: 2026-11-22T14:03:05.123Z */
	char *host;          /* the MTA host that took the decision */
	char *ref;           /* reference id printed in the bounce (CM-YYYYMMDD-XXXXXXXX) */
	char *queue_id;      /* MTA queue id */
	char *message_id;    /* Message-ID without <> */
	char *sender;        /* envelope sender, "<>" for the null sender */
	char *auth_login;    /* SMTP AUTH login */
	char *recipients;    /* lines "CLASS[,fax][,added] ADDRESS" joined by "\n" */
	char *rules;         /* "rule:action" joined by "," (the rules that fired) */
	char *action;        /* accepted | modified | rejected | held | tempfailed */
	char *changes;       /* what was changed when modified: "archives-added" */
	char *content;       /* content classes: "clinical,med-order" or "non-clinical" */
	char *body_sha256;   /* hex SHA-256 of the raw body, "" when unknown */
	int exception;       /* the sender used the sensitive-topic exception */
	char *justification; /* the sender's justification: SENDER-PROVIDED TEXT */
	char *detail;        /* kind-specific "key=value" words (anchor: purge data) */
	char *prev_hash;     /* hex; 64 zeros for the first record of a chain */
	char *hash;          /* hex */
};

/* Build the record of one decision (hash fields left empty).  Caller frees. */
struct audit_record *audit_record_from_verdict(const struct envelope *env, const struct verdict *v,
                                               const char *host);
struct audit_record *audit_record_new(void); /* every field "" */
struct audit_record *audit_record_dup(const struct audit_record *r);
void audit_record_free(struct audit_record *r);
/* Replace a field with a cleaned copy of s (valid UTF-8, no control characters, at
   most max bytes). */
void audit_set(char **field, const char *s, size_t max);

/*
 * The canonical serialisation: a version line, then every field but id,
 * prev_hash and hash as "name:length:value\n" in a fixed order.  Caller frees.
 */
char *audit_canonical(const struct audit_record *r, size_t *len);

/* Line form (spool files, catch-up): "clinimail-audit-1 <field>\t<field>…", escaped. */
char *audit_record_to_line(const struct audit_record *r);
struct audit_record *audit_record_from_line(const char *line);

/* The one-line summary logged for every record: "ref=… action=… rules=…". */
void audit_record_summary(const struct audit_record *r, char *buf, size_t len);

/* ---- hashing ---- */

struct audit_key {
	unsigned char key[256];
	size_t len;  /* 0: no key, plain SHA-256 */
	char id[17]; /* key identifier: 16 hex digits (not secret) */
};

/*
 * Load an HMAC key file: refused when it is readable or writable by others
 * (mode & 007), not a regular file, or shorter than 16 bytes.  A trailing
 * newline is not part of the key.  0 on success.
 */
int audit_key_load(const char *path, struct audit_key *k, char *err, size_t errlen);

/* The chain mode a key implies: "sha256" or "hmac-sha256:<key id>". */
void audit_key_mode(const struct audit_key *k, char *buf, size_t len);

/* hex (65 bytes) = H(prev_hash "\n" canonical(r)), H keyed when k has a key. */
void audit_record_hash(const struct audit_record *r, const char *prev_hash,
                       const struct audit_key *k, char hex[AUDIT_HASH_HEX + 1]);

/* ---- stores ---- */

struct audit_store;

/*
 * Open a store: "sqlite:/path" or "pgsql:conninfo".  create: 0 opens an
 * existing store (read-only access is enough: the officers' tools); 1
 * creates the database (SQLite file, mode 0640) and the schema when missing
 * and needs write access; 2 opens an existing store that must be writable
 * (the writer reopening it).  The chain mode is fixed at creation: mode is
 * checked against it (NULL: not checked).  NULL on error.
 */
struct audit_store *audit_store_open(const char *spec, int create, const char *mode, char *err,
                                     size_t errlen);
void audit_store_close(struct audit_store *s);
const char *audit_store_kind(const struct audit_store *s); /* "sqlite" / "pgsql" */

/* Can the store take a write now?  (SQLite: a write lock taken and released;
   PostgreSQL: a round trip.)  0, or -1 with err set. */
int audit_store_probe(struct audit_store *s, char *err, size_t errlen);

/* The chain mode recorded in the store ("sha256" / "hmac-sha256:<id>"). */
int audit_store_mode(struct audit_store *s, char *buf, size_t len, char *err, size_t errlen);

/*
 * Append records in one transaction, in order: each gets its prev_hash,
 * hash and id.  The chain head is read inside the transaction, so several
 * writers (MTAs sharing one PostgreSQL) interleave safely.  0, or -1 with
 * err set (nothing appended).
 */
int audit_store_append(struct audit_store *s, struct audit_record *const *recs, size_t n,
                       const struct audit_key *k, char *err, size_t errlen);

/* A query: every bound is optional (NULL / 0). */
struct audit_query {
	const char *since;  /* time >= since (ISO 8601 prefix) */
	const char *until;  /* time < until */
	const char *ref;    /* exactly this reference */
	const char *kind;   /* only this kind */
	long long after_id; /* id > after_id */
	long long max_id;   /* id <= max_id (0: no bound) */
};

/*
 * Call cb for every matching record in id order (the record is only valid
 * during the call).  cb returns non-zero to stop.  0, or -1 with err set.
 */
int audit_store_scan(struct audit_store *s, const struct audit_query *q,
                     int (*cb)(const struct audit_record *r, void *arg), void *arg, char *err,
                     size_t errlen);

/* The chain head as recorded in the store's metadata (id 0 and "" when empty). */
int audit_store_head(struct audit_store *s, long long *id, char *hash, size_t hashlen, char *err,
                     size_t errlen);

/*
 * Retention: delete the oldest records, in id order, while their time is
 * before `before`, then append an "anchor" record naming how many were
 * purged and the hash of the last one, so that the chain stays verifiable.
 * *purged gets the count.  0, or -1 with err set.
 */
int audit_store_purge(struct audit_store *s, const char *before, const struct audit_key *k,
                      const char *host, long long *purged, char *err, size_t errlen);

/* Outcome of audit_verify(). */
struct audit_verify_result {
	long long records; /* records checked */
	long long bad_id;  /* first broken record, 0 when the chain is intact */
	char bad_ref[64];
	char reason[256];
};

/*
 * Walk the whole chain.  Returns 0 when intact, 1 when broken (result says
 * where and why), -1 on error (err set).
 */
int audit_verify(struct audit_store *s, const struct audit_key *k, struct audit_verify_result *res,
                 char *err, size_t errlen);

/* ---- the milter side: bounded queue and one writer thread ---- */

struct audit_options {
	const char *store;    /* "sqlite:/path", "pgsql:conninfo"; NULL, "" or "none": log only */
	const char *key_file; /* HMAC key file, NULL for plain SHA-256 */
	const struct audit_key *key; /* or the key already loaded (e.g. before a privilege
	                                drop); used instead of key_file when set */
	const char *failure;         /* "tempfail" (NULL) or "spool:/dir" */
	size_t queue_size;           /* 0: AUDIT_DEFAULT_QUEUE */
	const char *host;            /* recorded host name; NULL: gethostname() */
	int create;                  /* create the store when missing (the milter does) */
	int idle_close_ms;           /* close the store after this idle time; 0: 1000 ms */
};

struct audit;

/*
 * Validate the options, load the key, open the store (so that a broken
 * configuration stops startup) and start the writer thread.  A PostgreSQL
 * server that does not answer yet is not an error: the writer keeps trying
 * (and, in tempfail mode, mail is tempfailed meanwhile).  NULL on error.
 */
struct audit *audit_open(const struct audit_options *o, char *err, size_t errlen);

/*
 * Record one decision: log the "audit:" line and queue the record.  Never
 * waits for the disk.  Thread-safe.  Returns 0 when the record is kept
 * (queued, or logged only when no store is configured), -1 when it cannot
 * be: the queue is full, or in tempfail mode the store is known to be
 * unavailable.  The caller then tempfails the message (fail closed).
 */
int audit_submit(struct audit *a, const struct envelope *env, const struct verdict *v);
/* Same for a record built by the caller (fax events); takes ownership of r. */
int audit_submit_record(struct audit *a, struct audit_record *r);

/* Wait until every queued record is stored or spooled; 0, or -1 after timeout_ms. */
int audit_flush(struct audit *a, int timeout_ms);

struct audit_stats {
	size_t queued;        /* records waiting in memory */
	int store_down;       /* the last write failed */
	unsigned long stored; /* records written to the store */
	unsigned long spooled;
	unsigned long refused; /* audit_submit() returned -1 */
};
void audit_get_stats(struct audit *a, struct audit_stats *st);

/*
 * Stop the writer after it has drained the queue.  Records the store still
 * cannot take are spooled (spool mode) or, as a last resort, logged in full
 * at error level: never dropped silently.
 */
void audit_close(struct audit *a);

/* ---- small helpers shared with `clinimail audit` ---- */

/* Current time as the records write it. */
void audit_now(char *buf, size_t len);
/*
 * Normalise a date given by a user (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z]) to
 * the records' form.  With end_of_day, a bare date means the day after (for
 * inclusive --until).  0, or -1 when malformed.
 */
int audit_parse_date(const char *in, int end_of_day, char *out, size_t len);

#endif
