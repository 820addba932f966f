/*
 * fax_ledger.h — the bridge's record of every fax (SQLite, WAL), keyed by
 * (Message-ID, number, canonical body hash): the same order delivered twice
 * by the MTA (a crash, a timeout, a requeue) is faxed once (seed 004,
 * « unicité »).  It also holds what the tracker needs: backend job id, state,
 * pages, tries, who to notify, and the spool file to destroy.
 *
 * States: CLAIMED (a delivery process owns the row and is rendering or
 * submitting), SUBMITTED (job id known), DONE, FAILED (final, notice sent),
 * DESTROYED (final, spool and backend copies removed).  Several bridge
 * processes may run at once: claims are taken in BEGIN IMMEDIATE
 * transactions.
 */
#ifndef CLINIMAIL_FAX_LEDGER_H
#define CLINIMAIL_FAX_LEDGER_H

#include <stddef.h>

struct fax_ledger;

enum fax_ledger_state {
	FAXL_CLAIMED = 0,
	FAXL_SUBMITTED,
	FAXL_DONE,
	FAXL_FAILED,
	FAXL_DESTROYED,
};

struct fax_ledger_row {
	long long id;
	char message_id[256];
	char number[16];
	char body_sha256[65]; /* hex */
	enum fax_ledger_state state;
	char ref[64];         /* the milter's decision reference */
	char sender[256];     /* envelope sender, notified */
	char job_id[32];      /* backend job, "" until submitted */
	char backend[16];     /* "hylafax" / "spool" */
	char spool_path[512]; /* our TIFF, "" once destroyed */
	int pages, pages_sent, tries;
	long long claimed_at, submitted_at, finished_at; /* unix time */
	int claim_pid;
	char outcome[256];  /* final reason, words (no content) */
	int retry_notified; /* the sender was told the job is still retrying */
};

/*
 * Open (creating it 0600 with its schema when missing) the ledger file.
 * WAL mode, synchronous=FULL, busy timeout FAX_LEDGER_BUSY_MS.  A file
 * with a newer schema version is refused.  NULL with err on failure.
 */
struct fax_ledger *fax_ledger_open(const char *path, char *err, size_t errlen);
void fax_ledger_close(struct fax_ledger *l);

/*
 * Claim (message_id, number, body_sha256) for this process.  Returns 1 when
 * claimed (*row filled, state CLAIMED), 0 when a row already exists (*row is
 * that row: the caller must not fax again), -1 on error.
 */
int fax_ledger_claim(struct fax_ledger *l, const char *message_id, const char *number,
                     const char *body_sha256, const char *ref, const char *sender, int pid,
                     struct fax_ledger_row *row, char *err, size_t errlen);

/* Update a row's mutable fields (state, job_id, backend, spool_path, pages…, outcome);
   the key, ref and sender never change.  0, or -1 (error, or no such row). */
int fax_ledger_update(struct fax_ledger *l, const struct fax_ledger_row *row, char *err,
                      size_t errlen);

/* Forget a claim that failed before anything was submitted (the MTA will retry).
   Only a CLAIMED row is removed: 0, or -1 (error, or the row is not a claim). */
int fax_ledger_release(struct fax_ledger *l, long long id, char *err, size_t errlen);

/* Rows in a state, oldest first; cb returns non-zero to stop.  The rows are
   read first, so cb may update the ledger. */
int fax_ledger_scan(struct fax_ledger *l, enum fax_ledger_state state,
                    int (*cb)(const struct fax_ledger_row *r, void *arg), void *arg, char *err,
                    size_t errlen);

const char *fax_ledger_state_name(enum fax_ledger_state s);

/* ---- added with fax_ledger.c ---- */

/* One row by id: 1 found (*row filled), 0 not found, -1 error. */
int fax_ledger_get(struct fax_ledger *l, long long id, struct fax_ledger_row *row, char *err,
                   size_t errlen);

/*
 * Take over a CLAIMED row whose owner died (claim_pid was old_pid): the row
 * gets new_pid and a fresh claimed_at, atomically, so that two retries of
 * the same message cannot both take it.  1 taken, 0 not (someone else was
 * quicker, or the row changed), -1 error.
 */
int fax_ledger_takeover(struct fax_ledger *l, long long id, int old_pid, int new_pid, char *err,
                        size_t errlen);

/* The file's schema version this code writes (table schema_version). */
#define FAX_LEDGER_SCHEMA 1
/* How long a call waits for another process's write lock (ms) before failing. */
#define FAX_LEDGER_BUSY_MS 10000

#endif
