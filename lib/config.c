/*
 * config.c — clinimail.conf (see config.h and clinimail.conf(5)): "Key
 * Value" lines checked against one static schema table, in the manner of
 * OpenDKIM's configuration tables; then everything the configuration names
 * is built (directories, lexicons, detectors, SPF checker, bounce texts).
 * A configuration is immutable and reference-counted; the one process-wide
 * "current" pointer below, behind a mutex, is the only global mutable state
 * of the engine.
 */
#include "autoconfig.h"
#include "config.h"
#include "audit.h"
#include "bounce.h"
#include "detect.h"
#include "directory.h"
#include "lexicon.h"
#include "secure_mail.h"
#include "sender_auth.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINE 65536

enum ctype {
	CT_STRING, /* char * */
	CT_PATH,   /* char *, made absolute against the file's folder */
	CT_BOOL,   /* int: yes/no/true/false/1/0 */
	CT_INT,    /* int within [min, max] */
	CT_SIZE,   /* size_t with optional K/M/G suffix, within [min, max] */
	CT_LIST,   /* char ** + size_t count (the next member), comma or space separated */
	CT_ACTION, /* enum rule_action of rule .rule */
};

enum cflags {
	CF_REQUIRED = 1 << 0, /* the key must be given */
	CF_READ = 1 << 1,     /* CT_PATH: a readable regular file */
	CF_DIR = 1 << 2,      /* CT_PATH: a readable folder */
};

/* Extra syntax check / conversion of a string value: a new string, or NULL with why. */
typedef char *(*conv_fn)(const char *value, const char *dir, char *why, size_t whylen);

struct key_def {
	const char *name;
	enum ctype type;
	size_t offset;   /* in struct cm_config */
	const char *def; /* default in file syntax; NULL: none (or the rule's default) */
	unsigned flags;  /* enum cflags */
	long long min, max;
	conv_fn conv;
	int rule; /* CT_ACTION */
};

static char *conv_socket(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_facility(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_domain(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_user(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_resolver(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_relay(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_audit_store(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_audit_key(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_audit_failure(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_secret_file(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_pdf_encryption(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_pdf_paper(const char *v, const char *dir, char *why, size_t whylen);

#define OFF(m) offsetof(struct cm_config, m)
#define RULE_KEY(id, nm)                                                                           \
	{                                                                                          \
		"Rule-" nm, CT_ACTION, OFF(actions) + (size_t)(id) * sizeof(enum rule_action),     \
		    NULL, 0, 0, 0, NULL, id                                                        \
	}

/* The schema: every key clinimail.conf may hold.  Keep clinimail.conf(5) in step. */
static const struct key_def schema[] = {
    /* daemon */
    {"Socket", CT_STRING, OFF(socket), "local:/run/clinimail/clinimail.sock", 0, 0, 0, conv_socket,
     0},
    {"PidFile", CT_PATH, OFF(pid_file), NULL, 0, 0, 0, NULL, 0},
    {"UserID", CT_STRING, OFF(user), NULL, 0, 0, 0, conv_user, 0},
    {"Background", CT_BOOL, OFF(background), "yes", 0, 0, 0, NULL, 0},
    {"Syslog", CT_BOOL, OFF(syslog), "yes", 0, 0, 0, NULL, 0},
    {"SyslogFacility", CT_STRING, OFF(syslog_facility), "mail", 0, 0, 0, conv_facility, 0},
    {"LogLevel", CT_INT, OFF(verbose), "0", 0, 0, 3, NULL, 0},
    {"AddHeaders", CT_BOOL, OFF(add_headers), "yes", 0, 0, 0, NULL, 0},
    /* establishment */
    {"EstablishmentName", CT_STRING, OFF(establishment), "Établissement", 0, 0, 0, NULL, 0},
    {"FaxDomain", CT_STRING, OFF(fax_domain), NULL, 0, 0, 0, conv_domain, 0},
    /* directories and texts */
    {"InternalDomains", CT_PATH, OFF(internal_domains_file), NULL, CF_REQUIRED | CF_READ, 0, 0,
     NULL, 0},
    {"WebmailDomains", CT_PATH, OFF(webmail_domains_file), NULL, CF_REQUIRED | CF_READ, 0, 0, NULL,
     0},
    {"Pharmacies", CT_PATH, OFF(pharmacies_file), NULL, CF_READ, 0, 0, NULL, 0},
    {"ImagingServices", CT_PATH, OFF(imaging_file), NULL, CF_READ, 0, 0, NULL, 0},
    {"Patients", CT_PATH, OFF(patients_file), NULL, CF_READ, 0, 0, NULL, 0},
    {"Archives", CT_PATH, OFF(archives_file), NULL, CF_READ, 0, 0, NULL, 0},
    {"SenderLogins", CT_PATH, OFF(sender_logins_file), NULL, CF_READ, 0, 0, NULL, 0},
    {"LexiconDirectory", CT_PATH, OFF(lexicon_dir), NULL, CF_REQUIRED | CF_DIR, 0, 0, NULL, 0},
    {"BounceTexts", CT_PATH, OFF(bounce_file), NULL, CF_REQUIRED | CF_READ, 0, 0, NULL, 0},
    /* sender authenticity */
    {"TrustedRelays", CT_LIST, OFF(trusted_relays), NULL, 0, 0, 0, conv_relay, 0},
    {"SPFResolver", CT_STRING, OFF(spf_resolver), "dns", 0, 0, 0, conv_resolver, 0},
    /* limits */
    {"MaximumMessageSize", CT_SIZE, OFF(max_message_size), "50M", 0, 1024, 1LL << 40, NULL, 0},
    {"MaximumMimeParts", CT_SIZE, OFF(max_mime_parts), "1000", 0, 1, 1000000, NULL, 0},
    {"ClinicalThreshold", CT_INT, OFF(clinical_threshold), "4", 0, 1, 1000, NULL, 0},
    /* audit trail */
    {"AuditStore", CT_STRING, OFF(audit_store), AUDIT_DEFAULT_STORE, 0, 0, 0, conv_audit_store, 0},
    {"AuditKey", CT_STRING, OFF(audit_key_file), NULL, 0, 0, 0, conv_audit_key, 0},
    {"AuditFailure", CT_STRING, OFF(audit_failure), "tempfail", 0, 0, 0, conv_audit_failure, 0},
    {"AuditQueueSize", CT_SIZE, OFF(audit_queue_size), "10000", 0, 1, 10000000, NULL, 0},
    /* encryption to patients and signing of orders */
    {"SmimeEstablishmentCertificate", CT_PATH, OFF(smime_establishment_cert), NULL, CF_READ, 0, 0,
     NULL, 0},
    {"ArchivesPdfPassword", CT_STRING, OFF(archives_pdf_password_file), NULL, 0, 0, 0,
     conv_secret_file, 0},
    {"PatientPassphrases", CT_STRING, OFF(patient_passphrases_file), NULL, 0, 0, 0,
     conv_secret_file, 0},
    {"PdfEncryption", CT_STRING, OFF(pdf_encryption), "aes256", 0, 0, 0, conv_pdf_encryption, 0},
    {"PdfPaper", CT_STRING, OFF(pdf_paper), "letter", 0, 0, 0, conv_pdf_paper, 0},
    {"Sendmail", CT_PATH, OFF(sendmail), "/usr/sbin/sendmail", 0, 0, 0, NULL, 0},
    {"NotifyFrom", CT_STRING, OFF(notify_from), NULL, 0, 0, 0, NULL, 0},
    {"SmimeSigningCertificate", CT_PATH, OFF(smime_sign_cert), NULL, CF_READ, 0, 0, NULL, 0},
    {"SmimeSigningKey", CT_STRING, OFF(smime_sign_key), NULL, 0, 0, 0, conv_secret_file, 0},
    /* fax bridge */
    {"FaxApprovalKey", CT_STRING, OFF(fax_approval_key_file), NULL, 0, 0, 0, conv_secret_file, 0},
    /* rules: one key per rule of rules.h */
    RULE_KEY(RULE_WEBMAIL, "webmail"),
    RULE_KEY(RULE_MED_ORDER_RECIPIENT, "med-order-recipient"),
    RULE_KEY(RULE_ORDER_SINGLE_RECIPIENT, "order-single-recipient"),
    RULE_KEY(RULE_ORDER_FIELDS, "order-fields"),
    RULE_KEY(RULE_ORDER_ATTACHMENTS, "order-attachments"),
    RULE_KEY(RULE_IMAGING_ORDER_RECIPIENT, "imaging-order-recipient"),
    RULE_KEY(RULE_PATIENT_CONSENT, "patient-consent"),
    RULE_KEY(RULE_PATIENT_ENCRYPTION, "patient-encryption"),
    RULE_KEY(RULE_LAB_ORDER, "lab-order"),
    RULE_KEY(RULE_ARCHIVES_COPY, "archives-copy"),
    RULE_KEY(RULE_SENSITIVE_TOPIC, "sensitive-topic"),
    RULE_KEY(RULE_PATIENTS_VISIBLE, "patients-visible"),
    RULE_KEY(RULE_SENDER_AUTHENTICITY, "sender-authenticity"),
    RULE_KEY(RULE_SUBJECT, "subject"),
    RULE_KEY(RULE_OVERSIZE, "oversize"),
    RULE_KEY(RULE_ORDER_SIGNATURE, "order-signature"),
};
#define NKEYS (sizeof(schema) / sizeof(schema[0]))

/* CT_LIST: the count is the member right after the array pointer. */
_Static_assert(offsetof(struct cm_config, ntrusted_relays) ==
                   offsetof(struct cm_config, trusted_relays) + sizeof(char **),
               "TrustedRelays count must follow the list");

/* ---- small helpers ---- */

CM_PRINTF(3, 4)
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void *field(struct cm_config *c, const struct key_def *k)
{
	return (char *)c + k->offset;
}

static const void *cfield(const struct cm_config *c, const struct key_def *k)
{
	return (const char *)c + k->offset;
}

/* The absolute folder of the configuration file, for relative paths. */
static char *config_folder(const char *path)
{
	const char *slash = strrchr(path, '/');
	struct strbuf sb;

	sb_init(&sb);
	if (path[0] != '/') {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return NULL;
		sb_puts(&sb, cwd);
		if (slash) {
			sb_putc(&sb, '/');
			sb_append(&sb, path, (size_t)(slash - path));
		}
	} else if (slash == path) {
		sb_puts(&sb, "/");
	} else {
		sb_append(&sb, path, (size_t)(slash - path));
	}
	return sb_steal(&sb);
}

static char *resolve(const char *dir, const char *p)
{
	struct strbuf sb;

	if (p[0] == '/')
		return xstrdup(p);
	sb_init(&sb);
	sb_puts(&sb, dir);
	if (sb.len == 0 || sb.data[sb.len - 1] != '/')
		sb_putc(&sb, '/');
	sb_puts(&sb, p);
	return sb_steal(&sb);
}

static int check_readable_file(const char *p, char *why, size_t whylen)
{
	struct stat st;
	FILE *fp;

	if (stat(p, &st) != 0) {
		snprintf(why, whylen, "cannot read %s: %s", p, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", p);
		return -1;
	}
	if ((fp = fopen(p, "r")) == NULL) {
		snprintf(why, whylen, "cannot read %s: %s", p, strerror(errno));
		return -1;
	}
	fclose(fp);
	return 0;
}

static int check_readable_dir(const char *p, char *why, size_t whylen)
{
	struct stat st;

	if (stat(p, &st) != 0) {
		snprintf(why, whylen, "cannot read folder %s: %s", p, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "%s is not a folder", p);
		return -1;
	}
	if (access(p, R_OK | X_OK) != 0) {
		snprintf(why, whylen, "cannot read folder %s: %s", p, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- value conversions ---- */

static char *conv_socket(const char *v, const char *dir, char *why, size_t whylen)
{
	const char *path = NULL;
	(void)dir;

	if (strncmp(v, "unix:", 5) == 0)
		path = v + 5;
	else if (strncmp(v, "local:", 6) == 0)
		path = v + 6;
	else if (v[0] == '/')
		path = v;
	if (path) {
		if (path[0] != '/') {
			snprintf(why, whylen, "the socket path must be absolute");
			return NULL;
		}
		if (strlen(path) >= 108) { /* sizeof(sun_path) */
			snprintf(why, whylen, "socket path too long");
			return NULL;
		}
		return xstrdup(v);
	}
	if (strncmp(v, "inet:", 5) == 0 || strncmp(v, "inet6:", 6) == 0) {
		const char *port = strchr(v, ':') + 1;
		char *end;
		long n = strtol(port, &end, 10);
		if (end != port && isdigit((unsigned char)*port) && n > 0 && n < 65536 &&
		    (*end == '\0' || *end == '@'))
			return xstrdup(v);
	}
	snprintf(why, whylen,
	         "expected unix:/path, local:/path, inet:PORT@HOST or inet6:PORT@HOST");
	return NULL;
}

static char *conv_facility(const char *v, const char *dir, char *why, size_t whylen)
{
	static const char *const names[] = {"mail",   "daemon", "user",   "local0",
	                                    "local1", "local2", "local3", "local4",
	                                    "local5", "local6", "local7"};
	(void)dir;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (str_iequal(v, names[i]))
			return xstrdup(names[i]);
	snprintf(why, whylen, "expected mail, daemon, user or local0 … local7");
	return NULL;
}

static char *conv_domain(const char *v, const char *dir, char *why, size_t whylen)
{
	char *d = xstrdup(v);
	size_t label = 0;
	(void)dir;

	str_lower(d);
	for (const char *p = d; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				goto bad;
			label = 0;
		} else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
			label++;
		} else {
			goto bad;
		}
	}
	if (label > 0 && strlen(d) <= 253)
		return d;
bad:
	free(d);
	snprintf(why, whylen, "not a domain name");
	return NULL;
}

static char *conv_user(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	if (strpbrk(v, " \t") != NULL || v[0] == ':' || v[strlen(v) - 1] == ':') {
		snprintf(why, whylen, "expected user or user:group");
		return NULL;
	}
	return xstrdup(v);
}

static char *conv_resolver(const char *v, const char *dir, char *why, size_t whylen)
{
	struct strbuf sb;
	char *p;

	if (strcmp(v, "dns") == 0)
		return xstrdup(v);
	if (strncmp(v, "zone:", 5) != 0 || v[5] == '\0') {
		snprintf(why, whylen, "expected dns or zone:PATH");
		return NULL;
	}
	p = resolve(dir, v + 5);
	if (check_readable_file(p, why, whylen) < 0) {
		free(p);
		return NULL;
	}
	sb_init(&sb);
	sb_printf(&sb, "zone:%s", p);
	free(p);
	return sb_steal(&sb);
}

/* AuditStore: none, sqlite:PATH (relative to the file's folder) or pgsql:CONNINFO. */
static char *conv_audit_store(const char *v, const char *dir, char *why, size_t whylen)
{
	struct strbuf sb;
	char *p;

	if (strcmp(v, "none") == 0)
		return xstrdup(v);
	if (strncmp(v, "pgsql:", 6) == 0 && v[6] != '\0')
		return xstrdup(v);
	if (strncmp(v, "sqlite:", 7) != 0 || v[7] == '\0') {
		snprintf(why, whylen, "expected sqlite:PATH, pgsql:CONNINFO or none");
		return NULL;
	}
	p = resolve(dir, v + 7);
	sb_init(&sb);
	sb_printf(&sb, "sqlite:%s", p);
	free(p);
	return sb_steal(&sb);
}

/* AuditKey: a regular file that others can neither read nor write. */
static char *conv_audit_key(const char *v, const char *dir, char *why, size_t whylen)
{
	char *p = resolve(dir, v);
	struct stat st;

	if (stat(p, &st) != 0) {
		snprintf(why, whylen, "%s: %s", p, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s: not a regular file", p);
	} else if ((st.st_mode & 007) != 0) {
		snprintf(why, whylen, "%s: readable or writable by others (mode %03o): chmod o-rwx",
		         p, (unsigned)(st.st_mode & 0777));
	} else {
		return p;
	}
	free(p);
	return NULL;
}

/* Keys, passwords: a regular file that others can neither read nor write. */
static char *conv_secret_file(const char *v, const char *dir, char *why, size_t whylen)
{
	return conv_audit_key(v, dir, why, whylen);
}

static char *conv_pdf_encryption(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	if (strcmp(v, "aes256") == 0 || strcmp(v, "aes128") == 0)
		return xstrdup(v);
	snprintf(why, whylen, "expected aes256 (PDF 2.0, R6) or aes128 (R4, old readers)");
	return NULL;
}

static char *conv_pdf_paper(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	if (strcmp(v, "letter") == 0 || strcmp(v, "a4") == 0)
		return xstrdup(v);
	snprintf(why, whylen, "expected letter or a4");
	return NULL;
}

/* AuditFailure: tempfail, or spool:DIR (relative to the file's folder). */
static char *conv_audit_failure(const char *v, const char *dir, char *why, size_t whylen)
{
	struct strbuf sb;
	char *p;

	if (strcmp(v, "tempfail") == 0)
		return xstrdup(v);
	if (strncmp(v, "spool:", 6) != 0 || v[6] == '\0') {
		snprintf(why, whylen, "expected tempfail or spool:DIRECTORY");
		return NULL;
	}
	p = resolve(dir, v + 6);
	sb_init(&sb);
	sb_printf(&sb, "spool:%s", p);
	free(p);
	return sb_steal(&sb);
}

static char *conv_relay(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	if (!sender_auth_valid_relay(v)) {
		snprintf(why, whylen, "\"%.60s\" is not an IP address or CIDR", v);
		return NULL;
	}
	return xstrdup(v);
}

/* yes/no/true/false/1/0 */
static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = {"yes", "true", "1"}, *const no[] = {"no", "false", "0"};
	for (int i = 0; i < 3; i++) {
		if (str_iequal(v, yes[i])) {
			*out = 1;
			return 0;
		}
		if (str_iequal(v, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Decimal digits with an optional K/M/G (powers of 1024) suffix. */
static int parse_number(const char *v, int allow_suffix, unsigned long long *out)
{
	unsigned long long n = 0, mult = 1;
	const char *p = v;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > (ULLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (unsigned)(*p - '0');
	}
	if (*p && allow_suffix) {
		switch (toupper((unsigned char)*p)) {
		case 'K':
			mult = 1ULL << 10;
			break;
		case 'M':
			mult = 1ULL << 20;
			break;
		case 'G':
			mult = 1ULL << 30;
			break;
		default:
			return -1;
		}
		p++;
	}
	if (*p != '\0' || (n != 0 && mult > ULLONG_MAX / n))
		return -1;
	*out = n * mult;
	return 0;
}

static void free_value(struct cm_config *c, const struct key_def *k)
{
	void *f = field(c, k);

	switch (k->type) {
	case CT_STRING:
	case CT_PATH:
		free(*(char **)f);
		*(char **)f = NULL;
		break;
	case CT_LIST: {
		char ***list = f;
		size_t *n = (size_t *)((char *)f + sizeof(char **));
		for (size_t i = 0; i < *n; i++)
			free((*list)[i]);
		free(*list);
		*list = NULL;
		*n = 0;
		break;
	}
	default:
		break;
	}
}

/* Parse one value into its field.  Returns 0, or -1 with why. */
static int set_value(struct cm_config *c, const struct key_def *k, const char *v, const char *dir,
                     char *why, size_t whylen)
{
	void *f = field(c, k);
	unsigned long long n;

	switch (k->type) {
	case CT_STRING: {
		char *s = k->conv ? k->conv(v, dir, why, whylen) : xstrdup(v);
		if (s == NULL)
			return -1;
		free(*(char **)f);
		*(char **)f = s;
		return 0;
	}
	case CT_PATH: {
		char *p = resolve(dir, v);
		if (((k->flags & CF_READ) && check_readable_file(p, why, whylen) < 0) ||
		    ((k->flags & CF_DIR) && check_readable_dir(p, why, whylen) < 0)) {
			free(p);
			return -1;
		}
		free(*(char **)f);
		*(char **)f = p;
		return 0;
	}
	case CT_BOOL:
		if (parse_bool(v, (int *)f) < 0) {
			snprintf(why, whylen, "expected yes, no, true, false, 1 or 0");
			return -1;
		}
		return 0;
	case CT_INT:
		if (parse_number(v, 0, &n) < 0 || (long long)n < k->min || (long long)n > k->max) {
			snprintf(why, whylen, "expected a whole number from %lld to %lld", k->min,
			         k->max);
			return -1;
		}
		*(int *)f = (int)n;
		return 0;
	case CT_SIZE:
		if (parse_number(v, 1, &n) < 0 || n > (unsigned long long)k->max ||
		    (long long)n < k->min || n > SIZE_MAX) {
			snprintf(why, whylen,
			         "expected a size from %lld to %lld (suffix K, M or G allowed)",
			         k->min, k->max);
			return -1;
		}
		*(size_t *)f = (size_t)n;
		return 0;
	case CT_LIST: {
		char *copy = xstrdup(v), *save = NULL;
		char ***list = f;
		size_t *count = (size_t *)((char *)f + sizeof(char **));
		free_value(c, k);
		*list = xcalloc(strlen(v) / 2 + 1, sizeof(char *));
		for (char *t = strtok_r(copy, ", \t", &save); t;
		     t = strtok_r(NULL, ", \t", &save)) {
			char *item = k->conv ? k->conv(t, dir, why, whylen) : xstrdup(t);
			if (item == NULL) {
				free(copy);
				return -1;
			}
			(*list)[(*count)++] = item;
		}
		free(copy);
		if (*count == 0) {
			snprintf(why, whylen, "empty list");
			return -1;
		}
		return 0;
	}
	case CT_ACTION: {
		char low[16];
		int a;
		snprintf(low, sizeof(low), "%s", v);
		str_lower(low);
		a = strlen(v) < sizeof(low) ? rule_action_from_name(low) : -1;
		if (a < 0) {
			snprintf(why, whylen, "expected off, warn, add, hold or reject");
			return -1;
		}
		if (!rule_action_allowed((enum rule_id)k->rule, (enum rule_action)a)) {
			snprintf(why, whylen, "action %s is not allowed for rule %s", low,
			         rule_name((enum rule_id)k->rule));
			return -1;
		}
		((enum rule_action *)f)[0] = (enum rule_action)a;
		return 0;
	}
	}
	return -1;
}

/* ---- the file ---- */

static const struct key_def *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (str_iequal(schema[i].name, name))
			return &schema[i];
	return NULL;
}

/* Strip a comment: '#' at the start of the line or after white space. */
static void strip_comment(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '#' && (p == s || *(p - 1) == ' ' || *(p - 1) == '\t')) {
			*p = '\0';
			return;
		}
}

static int read_file(struct cm_config *c, const char *path, const char *dir, char *err,
                     size_t errlen)
{
	unsigned seen[NKEYS];
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t n;
	int rc = 0;
	char why[PATH_MAX + 256];

	if (fp == NULL) {
		set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	memset(seen, 0, sizeof(seen));
	while ((n = getline(&buf, &cap, fp)) >= 0) {
		const struct key_def *k;
		char *s, *key, *val;

		lineno++;
		if (n > MAX_LINE) {
			set_err(err, errlen, "%s:%u: line too long", path, lineno);
			rc = -1;
			break;
		}
		if (memchr(buf, '\0', (size_t)n) != NULL) {
			set_err(err, errlen, "%s:%u: NUL byte in line", path, lineno);
			rc = -1;
			break;
		}
		if (!g_utf8_validate(buf, n, NULL)) {
			set_err(err, errlen, "%s:%u: invalid UTF-8", path, lineno);
			rc = -1;
			break;
		}
		strip_comment(buf);
		s = str_trim(buf);
		if (*s == '\0')
			continue;
		key = s;
		val = s + strcspn(s, " \t");
		if (*val)
			*val++ = '\0';
		val = str_trim(val);
		if ((k = find_key(key)) == NULL) {
			set_err(err, errlen, "%s:%u: unknown key \"%.60s\"", path, lineno, key);
			rc = -1;
			break;
		}
		if (seen[k - schema]) {
			set_err(err, errlen, "%s:%u: duplicate key %s (first given on line %u)",
			        path, lineno, k->name, seen[k - schema]);
			rc = -1;
			break;
		}
		seen[k - schema] = lineno;
		if (*val == '\0') {
			set_err(err, errlen, "%s:%u: %s: missing value", path, lineno, k->name);
			rc = -1;
			break;
		}
		if (set_value(c, k, val, dir, why, sizeof(why)) < 0) {
			set_err(err, errlen, "%s:%u: %s: %s", path, lineno, k->name, why);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		set_err(err, errlen, "%s: read error", path);
		rc = -1;
	}
	free(buf);
	fclose(fp);
	if (rc < 0)
		return -1;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &schema[i];
		if (seen[i])
			continue;
		if (k->offset == OFF(audit_store))
			c->audit_store_default = 1;
		if (k->flags & CF_REQUIRED) {
			set_err(err, errlen, "%s: missing required key %s", path, k->name);
			return -1;
		}
		if (k->type == CT_ACTION)
			*(enum rule_action *)field(c, k) =
			    rule_default_action((enum rule_id)k->rule);
		else if (k->def && set_value(c, k, k->def, dir, why, sizeof(why)) < 0)
			msg_fatal("config: built-in default of %s: %s", k->name, why);
	}
	return 0;
}

/* ---- building and freeing ---- */

static void config_free(struct cm_config *c)
{
	directories_free(c->dirs);
	lexicon_free(c->lex);
	detectors_free(c->det);
	sender_auth_free(c->sauth);
	bounce_texts_free(c->bounces);
	secure_secrets_free(c->secrets);
	for (size_t i = 0; i < NKEYS; i++)
		free_value(c, &schema[i]);
	free(c->path);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The schema must name every rule once, under its rules.h name. */
static int schema_ok(void)
{
	int count[RULE_COUNT] = {0};

	for (size_t i = 0; i < NKEYS; i++) {
		if (schema[i].type != CT_ACTION)
			continue;
		if (schema[i].rule < 0 || schema[i].rule >= RULE_COUNT ||
		    strcmp(schema[i].name + 5, rule_name((enum rule_id)schema[i].rule)) != 0)
			return 0;
		count[schema[i].rule]++;
	}
	for (int r = 0; r < RULE_COUNT; r++)
		if (count[r] != 1)
			return 0;
	return 1;
}

struct cm_config *config_load(const char *path, char *err, size_t errlen)
{
	struct cm_config *c;
	struct dir_paths dp;
	char *dir;

	if (err && errlen)
		err[0] = '\0';
	if (path == NULL) {
		set_err(err, errlen, "no configuration file given");
		return NULL;
	}
	if (!schema_ok()) {
		set_err(err, errlen, "internal error: configuration schema and rules.h disagree");
		return NULL;
	}
	if ((dir = config_folder(path)) == NULL) {
		set_err(err, errlen, "%s: cannot find the current folder: %s", path,
		        strerror(errno));
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	c->refs = 1;
	if (pthread_mutex_init(&c->lock, NULL) != 0)
		msg_fatal("pthread_mutex_init failed");
	if (read_file(c, path, dir, err, errlen) < 0)
		goto bad;

	memset(&dp, 0, sizeof(dp));
	dp.internal_domains = c->internal_domains_file;
	dp.webmail_domains = c->webmail_domains_file;
	dp.pharmacies = c->pharmacies_file;
	dp.imaging = c->imaging_file;
	dp.patients = c->patients_file;
	dp.archives = c->archives_file;
	dp.sender_logins = c->sender_logins_file;
	if ((c->dirs = directories_load(&dp, err, errlen)) == NULL)
		goto bad;
	if ((c->lex = lexicon_load(c->lexicon_dir, err, errlen)) == NULL)
		goto bad;
	if ((c->det = detectors_new(err, errlen)) == NULL)
		goto bad;
	if ((c->sauth = sender_auth_new(c->spf_resolver, c->trusted_relays, c->ntrusted_relays, err,
	                                errlen)) == NULL)
		goto bad;
	if ((c->bounces = bounce_texts_load(c->bounce_file, err, errlen)) == NULL)
		goto bad;
	if ((c->secrets = secure_secrets_load(c, err, errlen)) == NULL)
		goto bad;
	free(dir);
	return c;
bad:
	if (err && errlen && err[0] == '\0')
		set_err(err, errlen, "%s: cannot build the configuration", path);
	free(dir);
	config_free(c);
	return NULL;
}

struct cm_config *config_ref(struct cm_config *c)
{
	if (c == NULL)
		return NULL;
	pthread_mutex_lock(&c->lock);
	c->refs++;
	pthread_mutex_unlock(&c->lock);
	return c;
}

void config_unref(struct cm_config *c)
{
	int left;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	left = --c->refs;
	pthread_mutex_unlock(&c->lock);
	if (left == 0)
		config_free(c);
	else if (left < 0)
		msg_fatal("config_unref: reference count below zero");
}

/* ---- dump ---- */

void config_dump(const struct cm_config *c, FILE *fp)
{
	fprintf(fp, "# %s\n", c->path);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &schema[i];
		const void *f = cfield(c, k);

		switch (k->type) {
		case CT_STRING:
		case CT_PATH:
			if (*(char *const *)f)
				fprintf(fp, "%s %s\n", k->name, *(char *const *)f);
			else
				fprintf(fp, "# %s (not set)\n", k->name);
			break;
		case CT_BOOL:
			fprintf(fp, "%s %s\n", k->name, *(const int *)f ? "yes" : "no");
			break;
		case CT_INT:
			fprintf(fp, "%s %d\n", k->name, *(const int *)f);
			break;
		case CT_SIZE:
			fprintf(fp, "%s %zu\n", k->name, *(const size_t *)f);
			break;
		case CT_LIST: {
			char *const *list = *(char **const *)f;
			size_t n = *(const size_t *)((const char *)f + sizeof(char **));
			if (n == 0) {
				fprintf(fp, "# %s (not set)\n", k->name);
				break;
			}
			fprintf(fp, "%s ", k->name);
			for (size_t j = 0; j < n; j++)
				fprintf(fp, "%s%s", j ? ", " : "", list[j]);
			fputc('\n', fp);
			break;
		}
		case CT_ACTION:
			fprintf(fp, "%s %s\n", k->name,
			        rule_action_name(*(const enum rule_action *)f));
			break;
		}
	}
}

/* ---- the process-wide current configuration ---- */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cm_config *current;

void config_install(struct cm_config *c)
{
	struct cm_config *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = c;
	pthread_mutex_unlock(&current_lock);
	/* Messages in flight hold their own references: the old one lives on until they finish. */
	config_unref(old);
}

struct cm_config *config_current(void)
{
	struct cm_config *c;

	pthread_mutex_lock(&current_lock);
	c = config_ref(current);
	pthread_mutex_unlock(&current_lock);
	return c;
}
