/*
 * fax_backend.h — where a rendered fax goes: "hylafax:HOST:PORT" (a real
 * fax line, through lib/fax_hylafax.h) or "spool:/dir" (an outbox folder:
 * the TIFF and a metadata file, for trying the product without a fax line
 * or for another sending system).  One interface for the delivery agent
 * and the tracker; statuses are HylaFAX's (struct hfax_status).
 */
#ifndef CLINIMAIL_FAX_BACKEND_H
#define CLINIMAIL_FAX_BACKEND_H

#include <stddef.h>
#include <time.h>

#include "fax_hylafax.h" /* HFAX_OK / HFAX_TEMP / HFAX_PERM, struct hfax_status */
#include "fax_ledger.h"

struct fax_config;
struct fax_backend;

/* What the delivery agent submits. */
struct fax_submission {
	const char *number;    /* 10 digits */
	const char *tiff_path; /* our spool file */
	int pages;             /* cover included */
	const char *ref;       /* the milter's reference */
	const char *sender;    /* envelope sender */
	const char *user_key;  /* the ledger key (HylaFAX USRKEY) */
	long long ledger_id;
	time_t when;
};

/* The backend the configuration names (connections are opened on demand). */
struct fax_backend *fax_backend_new(const struct fax_config *c);
void fax_backend_free(struct fax_backend *b); /* closes any connection */

/* "hylafax" or "spool": the name kept in the ledger row. */
const char *fax_backend_name(const struct fax_backend *b);

/* Submit; jobid gets the job number (hylafax) or the outbox file stem (spool). */
int fax_backend_submit(struct fax_backend *b, const struct fax_submission *s, char *jobid,
                       size_t jobidlen, char *err, size_t errlen);

/* Status of a submitted row.  A spool job is DONE at once with every page. */
int fax_backend_poll(struct fax_backend *b, const struct fax_ledger_row *r, struct hfax_status *st,
                     char *err, size_t errlen);

/* Remove the backend's copies (HylaFAX job and document; nothing for spool:
   the outbox belongs to whoever reads it).  A job the server no longer
   knows is not an error. */
int fax_backend_delete(struct fax_backend *b, const struct fax_ledger_row *r, char *err,
                       size_t errlen);

/* A job submitted with this ledger key before a crash: jobid "" when none
   (spool: always none, the outbox file is looked up by its stem). */
int fax_backend_find(struct fax_backend *b, const struct fax_ledger_row *r, const char *user_key,
                     char *jobid, size_t jobidlen, char *err, size_t errlen);

/* Can a job be submitted now?  hylafax: connect (and log in); spool: the
   outbox folder exists (created 0700) and is writable.  HFAX_OK or HFAX_TEMP. */
int fax_backend_connect(struct fax_backend *b, char *err, size_t errlen);

/* Close the connection (between tracker passes). */
void fax_backend_disconnect(struct fax_backend *b);

/* The ledger key sent as HylaFAX USRKEY: "cmfax-<ledger id>-<number>". */
void fax_backend_user_key(const struct fax_ledger_row *r, char *out, size_t outlen);

#endif
