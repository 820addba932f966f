/*
 * fax_hylafax.h — a client of HylaFAX's hfaxd (the client protocol on port
 * 4559, FTP-like): log in, upload a TIFF (TYPE I, PASV, STOT), create and
 * submit a job (JNEW, JPARM …, JSUBM), poll it (JOB n, JPARM STATE, STATUS,
 * NPAGES, TOTPAGES, NDIALS, NTRIES …), delete it (JDELE) and the document it
 * left in docq/.  Written here rather than running sendfax(1) so that every
 * reply is checked and a job's outcome is read, not guessed.
 *
 * Every call returns HFAX_OK, HFAX_TEMP (network, server busy, timeouts: the
 * MTA retries) or HFAX_PERM (the server refused what we asked: a bad
 * number, a refused document), with the server's reply in err.  HylaFAX
 * reports STATUSCODE 333 for every failure: the STATUS text is what says why.
 * One connection per thread; no global state.
 */
#ifndef CLINIMAIL_FAX_HYLAFAX_H
#define CLINIMAIL_FAX_HYLAFAX_H

#include <stddef.h>

#define HFAX_OK 0
#define HFAX_PERM (-1)
#define HFAX_TEMP (-2)

struct hfax_conn;

/* host, port ("4559"), user (a HylaFAX user allowed in hosts.hfaxd), timeout per reply. */
int hfax_connect(const char *host, const char *port, const char *user, int timeout_s,
                 struct hfax_conn **out, char *err, size_t errlen);
void hfax_close(struct hfax_conn *c); /* QUIT; NULL is fine */

struct hfax_job_opts {
	const char *number;    /* dial string: 10 digits (dial prefixes are HylaFAX's dialrules) */
	const char *tiff_path; /* TIFF Class F from fax_render() */
	int fine;              /* VRES 196 or 98 */
	int letter;            /* PAGEWIDTH/PAGELENGTH: 216x279 (Letter) or 210x297 (A4) */
	int max_dials;         /* MAXDIALS (0: server default) */
	int max_tries;         /* MAXTRIES (0: server default) */
	int kill_minutes;      /* LASTTIME (0: HylaFAX's default, 3 hours, sent explicitly) */
	const char *user_key;  /* USRKEY: our ledger key, to find the job again */
	const char *tag_line;  /* TAGLINE format, NULL: server default (keep it in production) */
	/* Added by the HylaFAX client's author (keep last so that designated
	 * initializers elsewhere are unaffected): NOTIFYADDR, NULL: the server's
	 * default (user@client-host).  faxq runs its NotifyCmd (bin/notify, which
	 * mails this address) for EVERY failed job, whatever NOTIFY says. */
	const char *notify_addr;
};

/* Upload the document and submit one job; jobid gets the job number. */
int hfax_submit(struct hfax_conn *c, const struct hfax_job_opts *o, char *jobid, size_t jobidlen,
                char *err, size_t errlen);

enum hfax_state {
	HFAX_STATE_UNKNOWN = 0,
	HFAX_STATE_PENDING, /* waiting for its time or a modem (HylaFAX PENDING, SLEEPING,
	                       BLOCKED, READY, SUSPENDED) */
	HFAX_STATE_ACTIVE,  /* being sent */
	HFAX_STATE_DONE,    /* finished: every page sent (check npages == totpages anyway) */
	HFAX_STATE_FAILED,  /* finished without success: status says why */
	HFAX_STATE_GONE,    /* the server does not know the job (deleted or never existed) */
};

struct hfax_status {
	enum hfax_state state;
	char state_text[32]; /* HylaFAX's own word: "DONE", "SLEEPING" … */
	char status[256];    /* STATUS text, "" when none */
	int npages;          /* pages sent */
	int totpages;        /* pages in the job */
	int ndials, ntries;  /* dials and answered tries so far (TOTDIALS, TOTTRIES) */
	int maxdials, maxtries;
	char csi[64]; /* remote station id when HylaFAX gives it, else "": not a JPARM;
	                 read from the finished job's queue file ("csi:") */
};

int hfax_poll(struct hfax_conn *c, const char *jobid, struct hfax_status *st, char *err,
              size_t errlen);

/* Added by the HylaFAX client's author: ADMIN, privileged access for this
 * connection.  hfax_delete needs it to remove a finished job's document from
 * docq/: HylaFAX 6.0.7 stores documents mode 0640 and gives their owner only
 * the group bits, so an unprivileged owner can read them but never DELE (or
 * CHMOD) them.  The password is the 4th field of the user's hosts.hfaxd
 * entry (crypt(3) form there, e.g. "^clinimail@127\.0\.0\.1$:1001::$6$..."). */
int hfax_admin(struct hfax_conn *c, const char *password, char *err, size_t errlen);

/* Remove the job (JKILL if still queued, then JDELE) and its document from docq/.
 * Without hfax_admin on the connection the job is deleted but the document
 * stays (HFAX_PERM, err says so; faxqclean on the server removes it later). */
int hfax_delete(struct hfax_conn *c, const char *jobid, char *err, size_t errlen);

/* Find a job by USRKEY (after a crash between submit and ledger): jobid "" when none.
 * Only jobs owned by this connection's user count; the newest (highest id) wins. */
int hfax_find_by_key(struct hfax_conn *c, const char *user_key, char *jobid, size_t jobidlen,
                     char *err, size_t errlen);

#endif
