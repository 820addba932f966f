/*
 * fax_config.c — clinimail-fax.conf (fax_config.h, clinimail-fax(8)):
 * "Key Value" lines checked against one static schema table, in the style
 * of lib/config.c (file:line errors, unknown or repeated key = error,
 * relative paths against the file's folder); then the approval key, the
 * senders directory and the pharmacy / imaging directories are loaded.
 */
#include "autoconfig.h"
#include "fax_config.h"
#include "directory.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define MAX_LINE 65536

enum ctype {
	CT_STRING, /* char *, through conv when set */
	CT_PATH,   /* char *, made absolute against the file's folder */
	CT_BOOL,   /* int */
	CT_INT,    /* int within [min, max] */
	CT_SIZE,   /* size_t, K/M/G suffix */
};

enum cflags {
	CF_REQUIRED = 1 << 0,
	CF_READ = 1 << 1, /* CT_PATH: a readable regular file */
};

typedef char *(*conv_fn)(const char *value, const char *dir, char *why, size_t whylen);

struct key_def {
	const char *name;
	enum ctype type;
	size_t offset;
	const char *def;
	unsigned flags;
	long long min, max;
	conv_fn conv;
};

static char *conv_domain(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_address(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_program(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_backend(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_resolution(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_paper(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_compression(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_audit_store(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_facility(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_word(const char *v, const char *dir, char *why, size_t whylen);
static char *conv_tagline(const char *v, const char *dir, char *why, size_t whylen);

#define OFF(m) offsetof(struct fax_config, m)

/* Every key clinimail-fax.conf may hold.  Keep clinimail-fax(8) and
   policies/clinimail-fax.conf in step. */
static const struct key_def schema[] = {
    /* establishment and addresses */
    {"EstablishmentName", CT_STRING, OFF(establishment), "Établissement", 0, 0, 0, NULL},
    {"FaxDomain", CT_STRING, OFF(fax_domain), NULL, CF_REQUIRED, 0, 0, conv_domain},
    {"ApprovalKey", CT_PATH, OFF(approval_key_file), NULL, CF_REQUIRED, 0, 0, NULL},
    {"NotifyFrom", CT_STRING, OFF(notify_from), NULL, CF_REQUIRED, 0, 0, conv_address},
    {"Archives", CT_STRING, OFF(archives), NULL, 0, 0, 0, conv_address},
    {"Sendmail", CT_STRING, OFF(sendmail), "/usr/sbin/sendmail", 0, 0, 0, conv_program},
    /* backend */
    {"Backend", CT_STRING, OFF(backend), "spool:/var/spool/clinimail-fax/outbox", 0, 0, 0,
     conv_backend},
    {"HylafaxUser", CT_STRING, OFF(hylafax_user), "clinimail-fax", 0, 0, 0, conv_word},
    {"HylafaxAdminPassword", CT_PATH, OFF(hylafax_admin_file), NULL, 0, 0, 0, NULL},
    {"HylafaxTimeout", CT_INT, OFF(hylafax_timeout), "30", 0, 1, 600, NULL},
    {"TagLine", CT_STRING, OFF(tag_line), NULL, 0, 0, 0, conv_tagline},
    {"MaxDials", CT_INT, OFF(max_dials), "12", 0, 0, 100, NULL},
    {"MaxTries", CT_INT, OFF(max_tries), "3", 0, 0, 100, NULL},
    {"KillTime", CT_INT, OFF(kill_time), "180", 0, 0, 10080, NULL},
    /* files */
    {"SpoolDirectory", CT_PATH, OFF(spool_dir), "/var/spool/clinimail-fax", 0, 0, 0, NULL},
    {"Ledger", CT_PATH, OFF(ledger), "/var/lib/clinimail-fax/ledger.db", 0, 0, 0, NULL},
    {"Senders", CT_PATH, OFF(senders_file), NULL, CF_READ, 0, 0, NULL},
    {"Pharmacies", CT_PATH, OFF(pharmacies_file), NULL, CF_READ, 0, 0, NULL},
    {"ImagingServices", CT_PATH, OFF(imaging_file), NULL, CF_READ, 0, 0, NULL},
    /* rendering */
    {"Resolution", CT_STRING, OFF(resolution), "fine", 0, 0, 0, conv_resolution},
    {"PaperSize", CT_STRING, OFF(paper), "letter", 0, 0, 0, conv_paper},
    {"Compression", CT_STRING, OFF(compression), "g4", 0, 0, 0, conv_compression},
    {"MaxPages", CT_INT, OFF(max_pages), "50", 0, 2, 1000, NULL},
    {"MaxMessageSize", CT_SIZE, OFF(max_message_size), "50M", 0, 1024, 1LL << 30, NULL},
    /* tracking */
    {"RetryNoticeAfter", CT_INT, OFF(retry_notice_after), "3", 0, 0, 1000, NULL},
    {"PollInterval", CT_INT, OFF(poll_interval), "30", 0, 1, 86400, NULL},
    {"ClaimTimeout", CT_INT, OFF(claim_timeout), "3600", 0, 60, 604800, NULL},
    /* audit */
    {"AuditStore", CT_STRING, OFF(audit_store), "none", 0, 0, 0, conv_audit_store},
    {"AuditKey", CT_PATH, OFF(audit_key_file), NULL, 0, 0, 0, NULL},
    /* logging */
    {"Syslog", CT_BOOL, OFF(syslog), "yes", 0, 0, 0, NULL},
    {"LogFile", CT_PATH, OFF(log_file), NULL, 0, 0, 0, NULL},
    {"SyslogFacility", CT_STRING, OFF(syslog_facility), "mail", 0, 0, 0, conv_facility},
    {"LogLevel", CT_INT, OFF(log_level), "0", 0, 0, 3, NULL},
};
#define NKEYS (sizeof(schema) / sizeof(schema[0]))

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

static void *field(struct fax_config *c, const struct key_def *k)
{
	return (char *)c + k->offset;
}

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

	if (stat(p, &st) != 0) {
		snprintf(why, whylen, "cannot read %s: %s", p, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", p);
		return -1;
	}
	if (access(p, R_OK) != 0) {
		snprintf(why, whylen, "cannot read %s: %s", p, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- value conversions ---- */

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

/* A bare address (it goes on sendmail's command line and in headers). */
static char *conv_address(const char *v, const char *dir, char *why, size_t whylen)
{
	char *a;
	(void)dir;

	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == '"' ||
		    *p == '(' || *p == ')' || *p == ';' || (unsigned char)*p >= 0x7f) {
			snprintf(why, whylen, "expected a bare address (user@domain)");
			return NULL;
		}
	if (v[0] == '-' || (a = addr_normalize(v)) == NULL || addr_domain(a) == NULL ||
	    *addr_domain(a) == '\0' || a[0] == '@') {
		snprintf(why, whylen, "expected a bare address (user@domain)");
		return NULL;
	}
	return a;
}

static char *conv_program(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	if (v[0] != '/' || strpbrk(v, " \t") != NULL) {
		snprintf(why, whylen, "expected the absolute path of a program (no arguments)");
		return NULL;
	}
	return xstrdup(v);
}

static char *conv_word(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
			snprintf(why, whylen, "expected letters, digits, '-', '_' or '.'");
			return NULL;
		}
	return xstrdup(v);
}

/* TagLine goes to HylaFAX in one JPARM line: printable ASCII only, bounded. */
static char *conv_tagline(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	if (strlen(v) > 200)
		goto bad;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			goto bad;
	if (strcmp(v, "\"\"") == 0)
		return xstrdup(""); /* TagLine "": no tag line (tests) */
	return xstrdup(v);
bad:
	snprintf(why, whylen, "expected at most 200 printable ASCII characters");
	return NULL;
}

/* spool:DIR (relative to the file's folder) or hylafax:HOST:PORT. */
static char *conv_backend(const char *v, const char *dir, char *why, size_t whylen)
{
	struct strbuf sb;

	if (strncmp(v, "spool:", 6) == 0 && v[6] != '\0') {
		char *p = resolve(dir, v + 6);
		sb_init(&sb);
		sb_printf(&sb, "spool:%s", p);
		free(p);
		return sb_steal(&sb);
	}
	if (strncmp(v, "hylafax:", 8) == 0) {
		const char *host = v + 8, *colon = strrchr(host, ':');
		const char *port = colon ? colon + 1 : NULL;
		char *end;
		long n = port ? strtol(port, &end, 10) : 0;
		int host_ok = colon && colon > host;
		for (const char *p = host; host_ok && p < colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != ':' &&
			    *p != '[' && *p != ']')
				host_ok = 0;
		if (host_ok && port && isdigit((unsigned char)*port) && *end == '\0' && n > 0 &&
		    n < 65536)
			return xstrdup(v);
	}
	snprintf(why, whylen, "expected spool:DIRECTORY or hylafax:HOST:PORT");
	return NULL;
}

static char *choice(const char *v, const char *const *names, char *why, size_t whylen,
                    const char *expected)
{
	for (; *names; names++)
		if (str_iequal(v, *names))
			return xstrdup(*names);
	snprintf(why, whylen, "expected %s", expected);
	return NULL;
}

static char *conv_resolution(const char *v, const char *dir, char *why, size_t whylen)
{
	static const char *const n[] = {"fine", "normal", NULL};
	(void)dir;
	return choice(v, n, why, whylen, "fine or normal");
}

static char *conv_paper(const char *v, const char *dir, char *why, size_t whylen)
{
	static const char *const n[] = {"letter", "a4", NULL};
	(void)dir;
	return choice(v, n, why, whylen, "letter or a4");
}

static char *conv_compression(const char *v, const char *dir, char *why, size_t whylen)
{
	static const char *const n[] = {"g4", "g3", NULL};
	(void)dir;
	return choice(v, n, why, whylen, "g4 or g3");
}

static const struct {
	const char *name;
	int value;
} facilities[] = {{"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
                  {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
                  {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
                  {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};

static char *conv_facility(const char *v, const char *dir, char *why, size_t whylen)
{
	(void)dir;
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (str_iequal(v, facilities[i].name))
			return xstrdup(facilities[i].name);
	snprintf(why, whylen, "expected mail, daemon, user or local0 … local7");
	return NULL;
}

int fax_config_logging(const struct fax_config *c, const char *ident, char *err, size_t errlen)
{
	if (!c->syslog && c->log_file) {
		int fd =
		    open(c->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd < 0) {
			set_err(err, errlen, "LogFile %s: %s", c->log_file, strerror(errno));
			return -1;
		}
		if (fd != 2 && (dup2(fd, 2) < 0 || close(fd) != 0)) {
			set_err(err, errlen, "LogFile %s: %s", c->log_file, strerror(errno));
			return -1;
		}
	}
	log_init(ident, c->syslog, fax_config_facility(c));
	log_set_verbose(c->log_level);
	return 0;
}

int fax_config_facility(const struct fax_config *c)
{
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (c->syslog_facility && strcmp(c->syslog_facility, facilities[i].name) == 0)
			return facilities[i].value;
	return LOG_MAIL;
}

/* AuditStore: none, sqlite:PATH (relative to the file's folder) or pgsql:CONNINFO
   (the same syntax as clinimail.conf). */
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

static int set_value(struct fax_config *c, const struct key_def *k, const char *v, const char *dir,
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
		if ((k->flags & CF_READ) && check_readable_file(p, why, whylen) < 0) {
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
	}
	return -1;
}

static const struct key_def *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (str_iequal(schema[i].name, name))
			return &schema[i];
	return NULL;
}

static void strip_comment(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '#' && (p == s || *(p - 1) == ' ' || *(p - 1) == '\t')) {
			*p = '\0';
			return;
		}
}

static int read_file(struct fax_config *c, const char *path, const char *dir, char *err,
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
		if (k->flags & CF_REQUIRED) {
			set_err(err, errlen, "%s: missing required key %s", path, k->name);
			return -1;
		}
		if (k->def && set_value(c, k, k->def, dir, why, sizeof(why)) < 0)
			msg_fatal("config: built-in default of %s: %s", k->name, why);
	}
	return 0;
}

/* ---- HylafaxAdminPassword: a secret file, its first line ---- */

static int load_admin_password(struct fax_config *c, char *err, size_t errlen)
{
	const char *p = c->hylafax_admin_file;
	char buf[256];
	struct stat st;
	FILE *fp;
	size_t n;

	if ((fp = fopen(p, "re")) == NULL) {
		set_err(err, errlen, "%s: HylafaxAdminPassword %s: %s", c->path, p,
		        strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		fclose(fp);
		set_err(
		    err, errlen,
		    "%s: HylafaxAdminPassword %s: not a regular file readable by its owner only "
		    "(chmod 600)",
		    c->path, p);
		return -1;
	}
	if (fgets(buf, sizeof(buf), fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] == 0x7f)
			n = 0; /* a control character: refused below */
	if (n == 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		set_err(err, errlen, "%s: HylafaxAdminPassword %s: empty or not one line of text",
		        c->path, p);
		return -1;
	}
	c->hylafax_admin = xstrdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* ---- the senders directory: address | name | phone | licence ---- */

static int load_senders(struct fax_config *c, char *err, size_t errlen)
{
	FILE *fp = fopen(c->senders_file, "r");
	char *buf = NULL;
	size_t cap = 0, scap = 0;
	unsigned lineno = 0;
	ssize_t n;
	int rc = 0;

	if (fp == NULL) {
		set_err(err, errlen, "%s: cannot open: %s", c->senders_file, strerror(errno));
		return -1;
	}
	while ((n = getline(&buf, &cap, fp)) >= 0) {
		char *f[5], *s, *addr;
		size_t nf = 0;

		lineno++;
		if (n > MAX_LINE || memchr(buf, '\0', (size_t)n) != NULL ||
		    !g_utf8_validate(buf, n, NULL)) {
			set_err(err, errlen, "%s:%u: line too long, NUL byte or invalid UTF-8",
			        c->senders_file, lineno);
			rc = -1;
			break;
		}
		s = str_trim(buf);
		if (*s == '\0' || *s == '#')
			continue;
		for (char *p = s;; p++) {
			char *bar = strchr(p, '|');
			if (nf < 5)
				f[nf] = p;
			nf++;
			if (bar == NULL)
				break;
			*bar = '\0';
			p = bar;
		}
		if (nf < 2 || nf > 4) {
			set_err(err, errlen, "%s:%u: expected address | name | phone | licence",
			        c->senders_file, lineno);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < nf; i++)
			f[i] = str_trim(f[i]);
		addr = addr_normalize(f[0]);
		if (addr == NULL || strpbrk(addr, " \t<>") != NULL) {
			free(addr);
			set_err(err, errlen, "%s:%u: \"%.60s\" is not an address", c->senders_file,
			        lineno, f[0]);
			rc = -1;
			break;
		}
		if (fax_config_sender(c, addr) != NULL) {
			set_err(err, errlen, "%s:%u: %s listed twice", c->senders_file, lineno,
			        addr);
			free(addr);
			rc = -1;
			break;
		}
		if (c->nsenders == scap) {
			scap = scap ? scap * 2 : 16;
			c->senders = xrealloc(c->senders, scap * sizeof(*c->senders));
		}
		c->senders[c->nsenders].address = addr;
		c->senders[c->nsenders].name = xstrdup(f[1]);
		c->senders[c->nsenders].phone = xstrdup(nf > 2 ? f[2] : "");
		c->senders[c->nsenders].licence = xstrdup(nf > 3 ? f[3] : "");
		c->nsenders++;
	}
	free(buf);
	fclose(fp);
	return rc;
}

const struct fax_sender *fax_config_sender(const struct fax_config *c, const char *addr)
{
	char *a = addr ? addr_normalize(addr) : NULL;
	const struct fax_sender *found = NULL;

	if (a == NULL)
		return NULL;
	/* A few dozen clinicians per bridge: a linear search is fine. */
	for (size_t i = 0; i < c->nsenders && !found; i++)
		if (strcmp(c->senders[i].address, a) == 0)
			found = &c->senders[i];
	free(a);
	return found;
}

const char *fax_config_recipient_name(const struct fax_config *c, const char *number)
{
	const struct org_entry *e;

	if (c->dirs == NULL || number == NULL)
		return NULL;
	if ((e = dir_pharmacy_by_fax(c->dirs, number)) != NULL ||
	    (e = dir_imaging_by_fax(c->dirs, number)) != NULL)
		return e->name;
	return NULL;
}

void fax_config_render_opts(const struct fax_config *c, struct fax_render_opts *o)
{
	fax_render_opts_default(o);
	o->fine = strcmp(c->resolution, "normal") != 0;
	o->paper = strcmp(c->paper, "a4") == 0 ? PDF_PAPER_A4 : PDF_PAPER_LETTER;
	o->compression = strcmp(c->compression, "g3") == 0 ? FAX_G3 : FAX_G4;
	o->max_pages = c->max_pages;
}

/* ---- load / free ---- */

void fax_config_free(struct fax_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (schema[i].type == CT_STRING || schema[i].type == CT_PATH)
			free(*(char **)field(c, &schema[i]));
	for (size_t i = 0; i < c->nsenders; i++) {
		free(c->senders[i].address);
		free(c->senders[i].name);
		free(c->senders[i].phone);
		free(c->senders[i].licence);
	}
	free(c->senders);
	free(c->outbox);
	free(c->hylafax_host);
	free(c->hylafax_port);
	if (c->hylafax_admin) {
		OPENSSL_cleanse(c->hylafax_admin, strlen(c->hylafax_admin));
		free(c->hylafax_admin);
	}
	directories_free(c->dirs);
	OPENSSL_cleanse(&c->key, sizeof(c->key));
	free(c->path);
	free(c);
}

static void split_backend(struct fax_config *c)
{
	if (strncmp(c->backend, "spool:", 6) == 0) {
		c->backend_kind = FAX_BACKEND_SPOOL;
		c->outbox = xstrdup(c->backend + 6);
	} else {
		const char *host = c->backend + 8, *colon = strrchr(host, ':');
		c->backend_kind = FAX_BACKEND_HYLAFAX;
		/* [::1]:4559 → ::1 */
		if (host[0] == '[' && colon > host + 1 && colon[-1] == ']')
			c->hylafax_host = xstrndup(host + 1, (size_t)(colon - host - 2));
		else
			c->hylafax_host = xstrndup(host, (size_t)(colon - host));
		c->hylafax_port = xstrdup(colon + 1);
	}
}

struct fax_config *fax_config_load(const char *path, char *err, size_t errlen)
{
	struct fax_config *c;
	char *dir;

	if (err && errlen)
		err[0] = '\0';
	if (path == NULL) {
		set_err(err, errlen, "no configuration file given");
		return NULL;
	}
	if ((dir = config_folder(path)) == NULL) {
		set_err(err, errlen, "%s: cannot find the current folder: %s", path,
		        strerror(errno));
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	if (read_file(c, path, dir, err, errlen) < 0)
		goto bad;
	split_backend(c);
	if (c->audit_key_file && strcmp(c->audit_store, "none") == 0) {
		set_err(err, errlen, "%s: AuditKey is set but AuditStore is none", path);
		goto bad;
	}
	if (fax_key_load(c->approval_key_file, &c->key, err, errlen) < 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", err);
		set_err(err, errlen, "%s: ApprovalKey: %s", path, why);
		goto bad;
	}
	if (c->hylafax_admin_file && load_admin_password(c, err, errlen) < 0)
		goto bad;
	if (c->senders_file && load_senders(c, err, errlen) < 0)
		goto bad;
	if (c->pharmacies_file || c->imaging_file) {
		/* Only the organisations are needed: the domain lists are empty. */
		struct dir_paths dp;
		memset(&dp, 0, sizeof(dp));
		dp.internal_domains = "/dev/null";
		dp.webmail_domains = "/dev/null";
		dp.pharmacies = c->pharmacies_file;
		dp.imaging = c->imaging_file;
		if ((c->dirs = directories_load(&dp, err, errlen)) == NULL)
			goto bad;
	}
	free(dir);
	return c;
bad:
	if (err && errlen && err[0] == '\0')
		set_err(err, errlen, "%s: cannot load the configuration", path);
	free(dir);
	fax_config_free(c);
	return NULL;
}

void fax_config_dump(const struct fax_config *c, FILE *fp)
{
	fprintf(fp, "# %s\n", c->path);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &schema[i];
		const void *f = (const char *)c + k->offset;

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
		}
	}
	fprintf(fp, "# %zu senders, %zu pharmacies, %zu imaging services\n", c->nsenders,
	        c->dirs ? dir_count_pharmacies(c->dirs) : 0,
	        c->dirs ? dir_count_imaging(c->dirs) : 0);
}
