/*
 * secure_mail.h — what happens to a message the policy accepted on
 * condition (issue 3, RULES.md rule 7; seed 004 for signatures):
 *
 * - encrypted for a patient: S/MIME enveloped-data when the patient
 *   registered a certificate (also encrypted to SmimeEstablishmentCertificate
 *   so the archives copy, which is the same message, opens with the
 *   establishment's key), otherwise the message rendered into one PDF
 *   protected with AES-256 (R6; R4/AES-128 with PdfEncryption aes128) whose
 *   user password is the patient's registered passphrase or a password
 *   generated for this message and sent to the clinician in a separate
 *   notice, and whose owner password is ArchivesPdfPassword (the archives
 *   open their copy with it).  Without ArchivesPdfPassword, a generated
 *   password's notice also goes to the archives (that is how they open their
 *   copy) and registered passphrases cannot be used (tempfail, logged).  The outer message keeps only routing headers:
 *   a generic Subject « Message sécurisé de <établissement> / Secure message
 *   from … » (the original subject goes inside), To/Cc reduced to bare
 *   addresses, every other header that could carry an identifier removed.
 * - S/MIME-signed (multipart/signed, detached, SHA-256) with the
 *   establishment's key: orders to pharmacies and imaging services when
 *   Rule-order-signature is "sign".
 *
 * The result is a list of header edits and a new body for the milter
 * (smfi_chgheader / smfi_addheader / smfi_replacebody).  Nothing here talks
 * to the MTA, so `clinimail check --apply` and the tests run it offline.
 *
 * Errors: SECURE_PERM (the message cannot be sent protected: certificate
 * expired, no registered passphrase, too large to render — the message is
 * rejected with the reason), SECURE_TEMP (resources, configuration to fix:
 * tempfail).  Never a partial result, never the message in clear.
 */
#ifndef CLINIMAIL_SECURE_MAIL_H
#define CLINIMAIL_SECURE_MAIL_H

#include <stddef.h>

struct cm_config;
struct verdict;
struct fax_key;

#define SECURE_OK 0
#define SECURE_PERM (-1)
#define SECURE_TEMP (-2)

enum secure_method {
	SECURE_NONE = 0,
	SECURE_SMIME,         /* the patient's certificate */
	SECURE_PDF_REGISTERED, /* PDF, the passphrase the patient registered at consent */
	SECURE_PDF_GENERATED,  /* PDF, a password generated for this message */
};
const char *secure_method_name(int m); /* "smime", "pdf-registered", "pdf-generated" */

/* ---- secrets, loaded with the configuration (never logged) ---- */

struct secure_secrets;
struct secure_secrets *secure_secrets_load(const struct cm_config *c, char *err, size_t errlen);
void secure_secrets_free(struct secure_secrets *s);
/* The registered passphrase for REF, or NULL. */
const char *secure_passphrase(const struct secure_secrets *s, const char *ref);
int secure_can_sign(const struct secure_secrets *s);
int secure_have_archives_password(const struct secure_secrets *s);
/* The fax approval key (FaxApprovalKey), or NULL when not configured. */
const struct fax_key *secure_fax_key(const struct secure_secrets *s);

/* ---- the edit the milter applies ---- */

struct header_edit {
	char *name;
	int index;   /* 1-based occurrence to change or delete; 0: add */
	char *value; /* new value (unfolded, may hold RFC 2047 words); NULL: delete */
};

struct msg_edit {
	struct header_edit *hdrs; /* deletions of one name come in decreasing index order */
	size_t nhdrs;
	char *body; /* the new body, CRLF line ends */
	size_t body_len;
	char *notice_rcpt; /* a notice to send (generated password), or NULL */
	char *notice_cc;   /* its copy to the archives (when ArchivesPdfPassword is not set) */
	char *notice;      /* the whole notice message (headers and body, LF line ends) */
	const char *change; /* for the audit trail: "encrypted-smime", "encrypted-pdf", "signed" */
};
void msg_edit_free(struct msg_edit *e);
/* Append one header edit (index 0: add; value NULL: delete). */
void secure_edit_header(struct msg_edit *e, const char *name, int index, const char *value);

struct strbuf;
/* The message as the MTA will deliver it after the edit (e may be NULL): CRLF. */
int msg_edit_apply(const char *msg, size_t len, const struct msg_edit *e, struct strbuf *out);

/*
 * Encrypt msg[len] for the patient v->rcpts[v->secure_rcpt] by v->secure.
 * sender: the clinician who gets the password notice (envelope sender).
 */
int secure_mail_encrypt(const struct cm_config *cfg, const struct verdict *v, const char *msg,
                        size_t len, const char *sender, struct msg_edit *out, char *err,
                        size_t errlen);

/* S/MIME-sign msg[len] with SmimeSigningCertificate / SmimeSigningKey. */
int secure_mail_sign(const struct cm_config *cfg, const char *msg, size_t len,
                     struct msg_edit *out, char *err, size_t errlen);

/*
 * Can the patient's mail be encrypted at all (checked by the policy so that
 * the sender learns why at once)?  SECURE_OK with *method set, SECURE_PERM
 * with a reason key ("patient-encryption.cert", ".passphrase", ".several")
 * in *why_key, or SECURE_TEMP (configuration: establishment certificate or
 * archives password missing) with a reason in err.
 */
int secure_plan(const struct cm_config *cfg, const char *patient_addr, int *method,
                const char **why_key, char *err, size_t errlen);

/*
 * The first value of header `name` in msg[len] (unfolded; caller frees) or
 * NULL; *count (may be NULL) gets how many there are, *body_off (may be
 * NULL) where the body starts.
 */
char *secure_header_value(const char *msg, size_t len, const char *name, int *count,
                          size_t *body_off);

/*
 * Hand a notice to the MTA: Sendmail -i -f NotifyFrom -- rcpt, message on
 * its standard input, at most timeout_s seconds.  0, or -1 with err set.
 */
int secure_send_notice(const struct cm_config *cfg, const char *rcpt, const char *cc,
                       const char *msg, int timeout_s, char *err, size_t errlen);

#endif
