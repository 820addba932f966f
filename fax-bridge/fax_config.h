/*
 * fax_config.h — clinimail-fax.conf, the fax bridge's own configuration
 * (clinimail-fax(8)): "Key Value" lines checked against one schema table,
 * as clinimail.conf; then what it names is loaded (the approval key, the
 * senders directory, the pharmacy and imaging directories for recipient
 * names).  Immutable once loaded.
 */
#ifndef CLINIMAIL_FAX_CONFIG_H
#define CLINIMAIL_FAX_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "fax_render.h"
#include "fax_stamp.h"

struct directories;

#define FAX_DEFAULT_CONFIG SYSCONFDIR "/clinimail/clinimail-fax.conf"

enum fax_backend_kind { FAX_BACKEND_SPOOL = 0, FAX_BACKEND_HYLAFAX };

/* One line of the senders directory: address | name | phone | licence. */
struct fax_sender {
	char *address; /* lower case */
	char *name;
	char *phone; /* as written, may be "" */
	char *licence;
};

struct fax_config {
	char *path;

	/* establishment and addresses */
	char *establishment;     /* EstablishmentName */
	char *fax_domain;        /* FaxDomain, lower case */
	char *approval_key_file; /* ApprovalKey */
	char *notify_from;       /* NotifyFrom */
	char *archives;          /* Archives: address in Cc of every notice, may be NULL */
	char *sendmail;          /* Sendmail: program (argv[0]), no shell */

	/* backend */
	char *backend; /* Backend as written: spool:/dir | hylafax:HOST:PORT */
	enum fax_backend_kind backend_kind;
	char *outbox; /* spool: the outbox folder */
	char *hylafax_host, *hylafax_port;
	char *hylafax_user;       /* HylafaxUser */
	char *hylafax_admin_file; /* HylafaxAdminPassword: file holding the ADMIN password */
	char *hylafax_admin;      /* its first line, NULL when unset; secret, never logged */
	int hylafax_timeout;      /* HylafaxTimeout, seconds per reply */
	char *tag_line;           /* TagLine, NULL: HylaFAX's default */
	int max_dials, max_tries, kill_time; /* MaxDials, MaxTries, KillTime (minutes) */

	/* files */
	char *spool_dir;       /* SpoolDirectory */
	char *ledger;          /* Ledger */
	char *senders_file;    /* Senders */
	char *pharmacies_file; /* Pharmacies */
	char *imaging_file;    /* ImagingServices */

	/* rendering */
	char *resolution;        /* fine | normal */
	char *paper;             /* letter | a4 */
	char *compression;       /* g4 | g3 */
	int max_pages;           /* MaxPages, cover included */
	size_t max_message_size; /* MaxMessageSize */

	/* tracking */
	int retry_notice_after; /* RetryNoticeAfter: tries before the "still retrying" notice */
	int poll_interval;      /* PollInterval, seconds */
	int claim_timeout;      /* ClaimTimeout, seconds: a claim older than this is dead */

	/* audit */
	char *audit_store;    /* AuditStore: none | sqlite:/path | pgsql:conninfo */
	char *audit_key_file; /* AuditKey, may be NULL */

	/* logging */
	int syslog;            /* Syslog */
	char *log_file;        /* LogFile: with Syslog no, log lines appended here, not stderr */
	char *syslog_facility; /* SyslogFacility */
	int log_level;         /* LogLevel */

	/* built by fax_config_load() */
	struct fax_key key;
	struct fax_sender *senders;
	size_t nsenders;
	struct directories *dirs; /* pharmacies and imaging only; NULL when neither is given */
};

/* Load and check path; NULL with "file:line: reason" in err. */
struct fax_config *fax_config_load(const char *path, char *err, size_t errlen);
void fax_config_free(struct fax_config *c);

/* Every key with its value (secrets are file names, never contents). */
void fax_config_dump(const struct fax_config *c, FILE *fp);

/* The senders directory entry for addr (any case), or NULL. */
const struct fax_sender *fax_config_sender(const struct fax_config *c, const char *addr);

/* The directory name of a fax number (pharmacy, then imaging service), or NULL. */
const char *fax_config_recipient_name(const struct fax_config *c, const char *number);

/* Rendering options from Resolution, PaperSize, Compression, MaxPages. */
void fax_config_render_opts(const struct fax_config *c, struct fax_render_opts *o);

/* syslog facility number of SyslogFacility. */
int fax_config_facility(const struct fax_config *c);

/*
 * Start logging as the configuration says: syslog, or standard error, or
 * (Syslog no with LogFile) standard error redirected to LogFile, so that
 * under pipe(8) nothing but the outcome line reaches the MTA.  0, or -1
 * with err (LogFile cannot be opened).
 */
int fax_config_logging(const struct fax_config *c, const char *ident, char *err, size_t errlen);

#endif
