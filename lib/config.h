/*
 * config.h — clinimail.conf, in the OpenDKIM manner: "Key Value" lines, one
 * schema table (config.c) naming every key, its type and default; unknown,
 * duplicated or malformed keys stop startup with file:line.  A loaded
 * configuration also owns everything built from it (directories, lexicons,
 * detectors, SPF checker), is immutable, and is reference-counted so that a
 * reload (SIGUSR1) builds a new one aside and swaps it atomically while
 * messages in flight finish on the old one.
 */
#ifndef CLINIMAIL_CONFIG_H
#define CLINIMAIL_CONFIG_H

#include <stddef.h>
#include <pthread.h>
#include <stdio.h>

#include "rules.h"

struct directories;
struct lexicon_set;
struct detectors;
struct sender_auth;
struct bounce_texts;
struct secure_secrets;

struct cm_config {
	char *path; /* the file it was read from */

	/* daemon */
	char *socket;   /* Socket: unix:/path | local:/path | inet:port@host | inet6:port@host */
	char *pid_file; /* PidFile */
	char *user;     /* UserID: user[:group] */
	int background; /* Background */
	int syslog;     /* Syslog */
	char *syslog_facility; /* SyslogFacility */
	int verbose;           /* LogLevel 0..3 */
	int add_headers;       /* AddHeaders: X-Clinimail-* verdict headers */

	/* establishment */
	char *establishment; /* EstablishmentName */
	char *fax_domain;    /* FaxDomain, lower case */

	/* files (absolute; relative paths in the file are taken from its folder) */
	char *internal_domains_file; /* InternalDomains */
	char *webmail_domains_file;  /* WebmailDomains */
	char *pharmacies_file;       /* Pharmacies */
	char *imaging_file;          /* ImagingServices */
	char *patients_file;         /* Patients */
	char *archives_file;         /* Archives */
	char *sender_logins_file;    /* SenderLogins */
	char *lexicon_dir;           /* LexiconDirectory */
	char *bounce_file;           /* BounceTexts */

	/* sender authenticity */
	char **trusted_relays; /* TrustedRelays: IPs or CIDRs (v4/v6) */
	size_t ntrusted_relays;
	char *spf_resolver; /* SPFResolver: "dns" or "zone:/path" */

	/* limits and thresholds */
	size_t max_message_size; /* MaximumMessageSize (bytes) */
	size_t max_mime_parts;   /* MaximumMimeParts */
	int clinical_threshold;  /* ClinicalThreshold: vocabulary score that makes text clinical */
	enum rule_action actions[RULE_COUNT]; /* Rule-<id> keys */

	/* audit trail (lib/audit.h); read once at milter startup, not on reload */
	char *audit_store;       /* AuditStore: sqlite:/path | pgsql:conninfo | none */
	int audit_store_default; /* AuditStore not given in the file: the built-in default */
	char *audit_key_file;    /* AuditKey: HMAC key file, NULL for plain SHA-256 */
	char *audit_failure;     /* AuditFailure: tempfail | spool:/dir */
	size_t audit_queue_size; /* AuditQueueSize */

	/* encryption to patients, signing of orders (issue 3; lib/secure_mail.h) */
	char *smime_establishment_cert; /* SmimeEstablishmentCertificate: archives' copy (PEM) */
	char *archives_pdf_password_file; /* ArchivesPdfPassword: owner password of patient PDFs */
	char *patient_passphrases_file;   /* PatientPassphrases: "REF passphrase" lines (secret) */
	char *pdf_encryption;             /* PdfEncryption: aes256 | aes128 */
	char *pdf_paper;                  /* PdfPaper: letter | a4 */
	char *sendmail;                   /* Sendmail: program for the password notices */
	char *notify_from;                /* NotifyFrom: envelope sender of notices */
	char *smime_sign_cert;            /* SmimeSigningCertificate (PEM, may hold the chain) */
	char *smime_sign_key;             /* SmimeSigningKey (PEM, secret) */
	/* fax approval stamp (issue 4; lib/fax_stamp.h) */
	char *fax_approval_key_file;      /* FaxApprovalKey (secret) */

	/* built from the above by config_load() */
	struct secure_secrets *secrets; /* passphrases, archives password, keys (never logged) */
	struct directories *dirs;
	struct lexicon_set *lex;
	struct detectors *det;
	struct sender_auth *sauth;
	struct bounce_texts *bounces;

	/* reference count, see config_ref()/config_unref() */
	int refs;
	pthread_mutex_t lock;
};

/*
 * Read and build a configuration.  On error returns NULL and writes
 * "path:line: reason" (or "path: reason") into err.
 */
struct cm_config *config_load(const char *path, char *err, size_t errlen);

/* Take / drop a reference.  The last unref frees everything. */
struct cm_config *config_ref(struct cm_config *c);
void config_unref(struct cm_config *c);

/* Print every key with its current value, for clinimail-milter -n -v. */
void config_dump(const struct cm_config *c, FILE *fp);

/*
 * The process-wide current configuration: a locked pointer swapped on reload.
 * config_current() returns a new reference (caller unrefs).
 */
void config_install(struct cm_config *c); /* takes over the caller's reference; NULL
                                             uninstalls (the old one is unreffed) */
struct cm_config *config_current(void);

#endif
