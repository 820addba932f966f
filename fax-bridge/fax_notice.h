/*
 * fax_notice.h — the notices the tracker sends about a fax (RULES.md rule
 * 14: « confirmation du succès de l'envoi »): delivered, written to the
 * outbox (spool backend), failed (with "2 of 3 pages" when partial), and
 * still retrying.  A short mail, French then English, to the envelope
 * sender with the archives in Cc; no clinical content (not even the
 * original Subject): number, recipient name, pages, time, remote station
 * id, the reason in words, the reference and the Message-ID.  Sent by
 * running the configured Sendmail program with an argv (never a shell).
 */
#ifndef CLINIMAIL_FAX_NOTICE_H
#define CLINIMAIL_FAX_NOTICE_H

#include <stddef.h>
#include <time.h>

struct fax_config;

enum fax_notice_kind {
	FAXN_DELIVERED = 0, /* every page sent */
	FAXN_SPOOLED,       /* written to the outbox (spool backend), not transmitted */
	FAXN_FAILED,        /* final failure, possibly partial */
	FAXN_RETRYING,      /* not sent yet, the fax server keeps trying */
};

struct fax_notice {
	enum fax_notice_kind kind;
	const char *sender;         /* envelope sender (To:); "" or "<>": archives only */
	const char *number;         /* 10 digits */
	const char *recipient_name; /* directory name, may be NULL */
	const char *ref;            /* the milter's reference */
	const char *message_id;     /* of the original message, may be NULL */
	const char *job_id;
	long long ledger_id;
	int pages_sent, pages_total;
	int tries, max_tries; /* FAXN_RETRYING */
	time_t when;          /* end of the job (or now) */
	const char *csi;      /* remote station id, may be NULL or "" */
	const char *status;   /* the fax server's own words, may be NULL */
};

/* The reason in words for a fax server STATUS text (French, English). */
void fax_reason_words(const char *status, const char **fr, const char **en);

/* The whole notice (header and body, LF line ends).  Caller frees. */
char *fax_notice_message(const struct fax_config *c, const struct fax_notice *n);

/*
 * Send the notice: Sendmail -i -f NotifyFrom -- sender [archives], the
 * message on its standard input, its exit status checked (60 s at most).
 * 0, or -1 with err set (the caller keeps the row and tries again).  With
 * no valid recipient at all, 0 and nothing sent (logged).
 */
int fax_notice_send(const struct fax_config *c, const struct fax_notice *n, char *err,
                    size_t errlen);

#endif
