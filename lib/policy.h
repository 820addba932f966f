/*
 * policy.h — the policy engine: given the configuration, the SMTP envelope
 * and the whole message, decide what the MTA does with it.  Free of
 * libmilter: clinimail-milter, `clinimail check` and the fax bridge call
 * policy_eval() the same way.
 *
 * A verdict says: the final action (accept / reject / hold / tempfail), the
 * rules that fired (each with its own action and the recipients concerned),
 * each recipient's class, recipients to add (archives), headers to add, the
 * SMTP reply (code, enhanced code, lines: French first then English) and a
 * reference id that the security officer finds in the log.
 */
#ifndef CLINIMAIL_POLICY_H
#define CLINIMAIL_POLICY_H

#include <stddef.h>

#include "rules.h"

struct cm_config;
struct pdf_cache;
struct msg_edit;

enum rcpt_class {
	RC_INTERNAL = 0, /* establishment and RSSS domains */
	RC_PHARMACY,     /* in the pharmacy directory (by e-mail, or by fax number) */
	RC_IMAGING,      /* in the imaging directory (by e-mail, or by fax number) */
	RC_PATIENT,      /* in the patient registry */
	RC_ARCHIVES,     /* the medical records service */
	RC_FAX,          /* NUMBER@<fax domain> not found in any directory */
	RC_WEBMAIL,      /* public webmail / ISP mailbox */
	RC_EXTERNAL,     /* anything else */
	RC_COUNT
};
const char *rcpt_class_name(enum rcpt_class c);

enum content_class {
	CC_CLINICAL = 1 << 0,      /* clinical / nominative */
	CC_MED_ORDER = 1 << 1,     /* medication order */
	CC_IMAGING_ORDER = 1 << 2, /* imaging order */
	CC_LAB_ORDER = 1 << 3,     /* medical-biology order */
	CC_DOCUMENT = 1 << 4,      /* insurance form, medical note, referral */
	CC_SENSITIVE = 1 << 5,     /* sensitive topic */
};
/* Comma-separated names of the classes in mask, "non-clinical" for 0. */
void content_class_names(unsigned mask, char *buf, size_t len);

enum verdict_action {
	VERDICT_ACCEPT = 0,
	VERDICT_REJECT,
	VERDICT_HOLD,
	VERDICT_TEMPFAIL,
};
const char *verdict_action_name(enum verdict_action a);

struct envelope {
	const char *queue_id;    /* may be NULL */
	const char *client_ip;   /* may be NULL (local submission) */
	const char *helo;        /* may be NULL */
	const char *auth_login;  /* {auth_authen}, NULL if none */
	const char *mail_from;   /* envelope sender as given ("" or "<>" for null sender) */
	char *const *rcpts;      /* envelope recipients as given */
	size_t nrcpts;
	int explain;             /* fill verdict.explain (clinimail check --explain) */
};

struct rcpt_info {
	char *addr;              /* normalized */
	enum rcpt_class cls;
	int via_fax;             /* NUMBER@fax-domain */
	char fax_number[16];     /* the number when via_fax */
	int visible;             /* appears in To or Cc (else Bcc) */
	const char *org_name;    /* pharmacy / imaging service name, points into config */
};

struct rule_hit {
	enum rule_id rule;
	enum rule_action action;
	const char *variant; /* bounce-text key prefix when not the rule's name (a case of it) */
	char *detail_fr;  /* what was found / what is missing, no clinical text */
	char *detail_en;
	char *fix_fr;     /* the concrete fix */
	char *fix_en;
	size_t *rcpts;    /* indexes into verdict.rcpts concerned, may be empty */
	size_t nrcpts;
};

struct header_add {
	char *name;
	char *value;
};

struct verdict {
	enum verdict_action action;
	char ref[32];            /* reference id, e.g. "CM-20261122-4F7KQ2ZD" */
	unsigned content;        /* enum content_class mask */
	struct rcpt_info *rcpts;
	size_t nrcpts;
	struct rule_hit *hits;
	size_t nhits;
	char **added_rcpts;
	size_t nadded;
	struct header_add *headers;
	size_t nheaders;
	/* SMTP reply for reject / tempfail / hold (hold: informational only) */
	char rcode[4];   /* "550", "451" */
	char xcode[8];   /* "5.7.1", "4.7.0" */
	char **reply;    /* lines, ASCII-safe, no CR/LF, no '%' unescaped concerns: see reply.h */
	size_t nreply;
	char *exception_reason; /* sender's justification when an exception was used */
	int oversize;    /* the message exceeded MaximumMessageSize */
	char *message_id;             /* Message-ID without <>, or NULL (for the audit trail) */
	int have_body_hash;           /* body_sha256 is set */
	unsigned char body_sha256[32];/* SHA-256 of the raw body (for the audit trail) */
	/* what the milter must do to the message once accepted (lib/secure_mail.h) */
	int secure;             /* enum secure_method: encrypt for a patient */
	size_t secure_rcpt;     /* that patient, index into rcpts */
	int sign;               /* S/MIME-sign (order-signature) */
	struct msg_edit *edit;  /* the encrypted / signed message, NULL when unchanged */
	int fax_approved;       /* an X-Clinimail-Fax-Approval stamp is among the headers */
	char applied[64];       /* what the milter changed, comma-separated ("encrypted-pdf",
	                           "signed", "fax-approved"), for the audit trail */
	char *error;     /* internal error text, for TEMPFAIL */
	char *explain;   /* matched terms and findings, when envelope.explain was set */
};

/*
 * Evaluate one message.  msg may be NULL with msg_size > MaximumMessageSize
 * (the milter stopped buffering): the oversize decision is taken from the
 * envelope alone.  Always fills v (an internal error gives VERDICT_TEMPFAIL).
 * Thread-safe; cache may be NULL.
 */
void policy_eval(const struct cm_config *cfg, const struct envelope *env, const char *msg,
                 size_t msg_len, size_t msg_size, struct pdf_cache *cache, struct verdict *v);
void verdict_free(struct verdict *v);

/* A fresh reference id (time + random); buf must hold 32 bytes. */
void policy_new_ref(char *buf, size_t len);

/* Classify one recipient (exposed for tests and `clinimail check`). */
enum rcpt_class recipient_class(const struct cm_config *cfg, const char *addr, int *via_fax,
                                char *fax_number, size_t fax_len, const char **org_name);

/* One-line summary for the log: ref, action, rules, classes; never clinical text. */
void verdict_log_line(const struct verdict *v, const struct envelope *env, char *buf, size_t len);

/* The SMTP reply as the client sees it ("550-5.7.1 …" lines joined by \n); caller frees. */
char *verdict_reply_text(const struct verdict *v);

/* The verdict as JSON (for `clinimail check --json`); caller frees. */
char *verdict_to_json(const struct verdict *v);

#endif
