/*
 * directory.c — load the directory files (formats at the top of each file in
 * policies/directories/ and in clinimail.conf(5)) into GLib hash tables, and
 * answer lookups.  Nothing is modified after directories_load() returns, so
 * lookups (g_hash_table_lookup only reads) are safe from any number of
 * threads.  Every malformed line stops the load with "path:line: reason";
 * error messages name fields, never their values (patient addresses are
 * patient data).
 */
#include "autoconfig.h"
#include "directory.h"
#include "normalize.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LINE 65536 /* longer lines are refused: no directory entry needs more */
#define MAX_DOMAIN 253

/* A hash value for an entry index: index + 1, so that 0 (NULL) stays "absent". */
#define IDX2P(i) GSIZE_TO_POINTER((gsize)(i) + 1)
#define P2IDX(p) (GPOINTER_TO_SIZE(p) - 1)
/* The name-index value of a name shared by several organisations. */
#define AMBIGUOUS GSIZE_TO_POINTER(G_MAXSIZE)

struct org_dir {
	struct org_entry *v;
	size_t n, cap;
	GHashTable *by_email; /* address → IDX2P */
	GHashTable *by_fax;   /* 10 digits → IDX2P */
	GHashTable *by_name;  /* text_fold_key(name) → IDX2P or AMBIGUOUS (NULL when not kept) */
};

struct archive_entry {
	char **addrs;
	size_t n;
};

struct domain_set {
	GHashTable *exact;  /* "a.b" */
	GHashTable *suffix; /* "*.a.b" stored as "a.b" */
	GHashTable *prefix; /* "name.*" stored as "name" (webmail only) */
};

struct directories {
	struct domain_set internal, webmail;
	struct org_dir pharm, imaging;

	struct patient_entry *patients;
	size_t npatients, patients_cap;
	GHashTable *patient_by_addr; /* address → IDX2P */

	GHashTable *archives; /* sender domain → struct archive_entry */
	struct archive_entry *archives_default;
	GHashTable *archive_addrs; /* set of every archives address */

	GHashTable *logins; /* login (lower case) → set of addresses and "@domain" */
};

/* ---- errors and line reading ---- */

CM_PRINTF(5, 6)
static int fail(char *err, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (line)
		snprintf(err, errlen, "%s:%u: %s", path, line, why);
	else
		snprintf(err, errlen, "%s: %s", path, why);
	return -1;
}

struct reader {
	FILE *fp;
	const char *path;
	unsigned lineno;
	char *buf;
	size_t cap;
};

static int reader_open(struct reader *r, const char *path, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
	r->fp = fopen(path, "r");
	if (r->fp == NULL)
		return fail(err, errlen, path, 0, "cannot open: %s", strerror(errno));
	return 0;
}

static void reader_close(struct reader *r)
{
	if (r->fp)
		fclose(r->fp);
	free(r->buf);
	r->fp = NULL;
	r->buf = NULL;
}

/*
 * The next meaningful line (trimmed; blank lines and lines starting with '#'
 * skipped): 1, 0 at end of file, -1 on error (NUL byte, invalid UTF-8, line
 * too long, read error).
 */
static int reader_next(struct reader *r, char **out, char *err, size_t errlen)
{
	for (;;) {
		ssize_t n = getline(&r->buf, &r->cap, r->fp);
		char *s;

		if (n < 0) {
			if (ferror(r->fp))
				return fail(err, errlen, r->path, r->lineno + 1, "read error: %s",
				            strerror(errno));
			return 0;
		}
		r->lineno++;
		if (n > MAX_LINE)
			return fail(err, errlen, r->path, r->lineno, "line longer than %d bytes",
			            MAX_LINE);
		if (memchr(r->buf, '\0', (size_t)n) != NULL)
			return fail(err, errlen, r->path, r->lineno, "NUL byte in line");
		while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r'))
			r->buf[--n] = '\0';
		s = r->buf;
		if (r->lineno == 1 && (unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb &&
		    (unsigned char)s[2] == 0xbf)
			s += 3; /* UTF-8 byte order mark */
		if (!g_utf8_validate(s, -1, NULL))
			return fail(err, errlen, r->path, r->lineno, "invalid UTF-8");
		s = str_trim(s);
		if (*s == '\0' || *s == '#')
			continue;
		*out = s;
		return 1;
	}
}

/*
 * Split s on sep into at most max trimmed fields.  Returns the number of
 * fields found (which may exceed max: the caller reports it).
 */
static size_t split(char *s, char sep, char **fields, size_t max)
{
	size_t n = 0;

	for (;;) {
		char *e = strchr(s, sep);
		if (e)
			*e = '\0';
		if (n < max)
			fields[n] = str_trim(s);
		n++;
		if (e == NULL)
			return n;
		s = e + 1;
	}
}

/* ---- value syntax ---- */

/* Lower-case, validated domain name (ASCII letters, digits, '-', '_', dots). */
static int domain_valid(const char *d)
{
	size_t len = strlen(d), label = 0;

	if (len == 0 || len > MAX_DOMAIN)
		return 0;
	for (const char *p = d; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!(isalnum(c) || c == '-' || c == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

/* A normalized e-mail address: one '@', a non-empty local part, a valid domain. */
static char *address_parse(const char *raw)
{
	char *a = addr_normalize(raw);
	const char *at;

	if (a == NULL)
		return NULL;
	at = strchr(a, '@');
	if (at != strrchr(a, '@') || at == a || !domain_valid(at + 1))
		goto bad;
	for (const char *p = a; p < at; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c == 0x7f || strchr("<>(),;:\"[]\\", c))
			goto bad;
	}
	return a;
bad:
	free(a);
	return NULL;
}

int dir_normalize_phone(const char *in, char out[11])
{
	char d[12];
	size_t n = 0;

	out[0] = '\0';
	for (const char *p = in; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (isdigit(c)) {
			if (n >= 11)
				return -1;
			d[n++] = (char)c;
		} else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' ||
		             c == '+')) {
			return -1;
		}
	}
	if (n == 11 && d[0] == '1') {
		memmove(d, d + 1, 10);
		n = 10;
	}
	if (n != 10)
		return -1;
	memcpy(out, d, 10);
	out[10] = '\0';
	return 0;
}

/*
 * Lower-case copy of a lookup key into buf (keys are expected normalized,
 * but a caller's upper case must not turn a directory hit into a miss).
 */
static const char *lower_key(const char *s, char *buf, size_t buflen)
{
	size_t len;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	if (len >= buflen)
		return NULL;
	for (size_t i = 0; i <= len; i++)
		buf[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
	return buf;
}

/* ---- domain lists ---- */

static void domain_set_init(struct domain_set *s)
{
	s->exact = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	s->suffix = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	s->prefix = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
}

static void domain_set_free(struct domain_set *s)
{
	if (s->exact)
		g_hash_table_destroy(s->exact);
	if (s->suffix)
		g_hash_table_destroy(s->suffix);
	if (s->prefix)
		g_hash_table_destroy(s->prefix);
}

/* One domain per line: "a.b", "*.a.b" / ".a.b", and, when allow_prefix, "name.*". */
static int load_domains(struct domain_set *set, const char *path, int allow_prefix, char *err,
                        size_t errlen)
{
	struct reader r;
	char *line;
	int rc;

	if (reader_open(&r, path, err, errlen) < 0)
		return -1;
	while ((rc = reader_next(&r, &line, err, errlen)) > 0) {
		char *hash = strchr(line, '#');
		GHashTable *t = set->exact;
		char *d;
		size_t len;

		if (hash) {
			*hash = '\0';
			line = str_trim(line);
		}
		if (strpbrk(line, " \t") != NULL) {
			rc = fail(err, errlen, path, r.lineno, "one domain per line expected");
			break;
		}
		str_lower(line);
		d = line;
		len = strlen(d);
		if (len > 0 && d[len - 1] == '.')
			d[--len] = '\0'; /* "example.com." */
		if (strncmp(d, "*.", 2) == 0) {
			d += 2;
			t = set->suffix;
		} else if (d[0] == '.') {
			d += 1;
			t = set->suffix;
		} else if (allow_prefix && len > 2 && strcmp(d + len - 2, ".*") == 0) {
			d[len - 2] = '\0';
			t = set->prefix;
		}
		if (!domain_valid(d)) {
			rc = fail(err, errlen, path, r.lineno,
			          strchr(d, '*') ? "unsupported wildcard" : "invalid domain name");
			break;
		}
		g_hash_table_add(t, xstrdup(d));
	}
	reader_close(&r);
	return rc < 0 ? -1 : 0;
}

static int domain_set_match(const struct domain_set *s, const char *domain)
{
	char buf[MAX_DOMAIN + 2];
	const char *d = lower_key(domain, buf, sizeof(buf));
	size_t len;

	if (d == NULL || *d == '\0')
		return 0;
	len = strlen(d);
	if (d[len - 1] == '.')
		buf[--len] = '\0';
	if (g_hash_table_contains(s->exact, d))
		return 1;
	/* "*.suffix": every proper parent of the name. */
	if (g_hash_table_size(s->suffix) > 0)
		for (const char *p = strchr(d, '.'); p; p = strchr(p + 1, '.'))
			if (p[1] && g_hash_table_contains(s->suffix, p + 1))
				return 1;
	/* "name.*": the name followed by at least one more label. */
	if (g_hash_table_size(s->prefix) > 0) {
		for (char *p = strchr(buf, '.'); p; p = strchr(p + 1, '.')) {
			int hit;
			if (p[1] == '\0')
				break;
			*p = '\0';
			hit = g_hash_table_contains(s->prefix, buf);
			*p = '.';
			if (hit)
				return 1;
		}
	}
	return 0;
}

int dir_is_internal_domain(const struct directories *d, const char *domain)
{
	return d && domain && domain_set_match(&d->internal, domain);
}

int dir_is_webmail_domain(const struct directories *d, const char *domain)
{
	return d && domain && domain_set_match(&d->webmail, domain);
}

/* ---- pharmacies and imaging services ---- */

static void org_dir_init(struct org_dir *o, int by_name)
{
	memset(o, 0, sizeof(*o));
	o->by_email = g_hash_table_new(g_str_hash, g_str_equal);
	o->by_fax = g_hash_table_new(g_str_hash, g_str_equal);
	if (by_name)
		o->by_name = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
}

static void org_entry_free(struct org_entry *e)
{
	free(e->id);
	free(e->name);
	for (size_t i = 0; i < e->nemails; i++)
		free(e->emails[i]);
	free(e->emails);
	for (size_t i = 0; i < e->nfaxes; i++)
		free(e->faxes[i]);
	free(e->faxes);
	free(e->phone);
}

static void org_dir_free(struct org_dir *o)
{
	if (o->by_email)
		g_hash_table_destroy(o->by_email);
	if (o->by_fax)
		g_hash_table_destroy(o->by_fax);
	if (o->by_name)
		g_hash_table_destroy(o->by_name);
	for (size_t i = 0; i < o->n; i++)
		org_entry_free(&o->v[i]);
	free(o->v);
}

/* Split a comma-separated list in place; empty list → 0 items; empty item → -1. */
static int split_list(char *s, char ***items, size_t *n)
{
	size_t count = 0, i = 0;

	*items = NULL;
	*n = 0;
	if (*s == '\0')
		return 0;
	for (const char *p = s; *p; p++)
		if (*p == ',')
			count++;
	count++;
	*items = xcalloc(count, sizeof(char *));
	split(s, ',', *items, count);
	for (i = 0; i < count; i++)
		if ((*items)[i][0] == '\0') {
			free(*items);
			*items = NULL;
			return -1;
		}
	*n = count;
	return 0;
}

static int parse_org_line(struct org_dir *o, GHashTable *ids, char *line, const char *path,
                          unsigned lineno, char *err, size_t errlen)
{
	char *f[5], **list;
	size_t nf = split(line, '|', f, 5), nlist;
	struct org_entry e;
	size_t idx = o->n;

	if (nf != 5)
		return fail(err, errlen, path, lineno,
		            "expected 5 fields (id | name | e-mail addresses | fax numbers | "
		            "phone), found %zu",
		            nf);
	if (f[0][0] == '\0' || strpbrk(f[0], " \t") != NULL)
		return fail(err, errlen, path, lineno, "id: empty or contains spaces");
	if (g_hash_table_contains(ids, f[0]))
		return fail(err, errlen, path, lineno, "id: duplicate id %s", f[0]);
	if (f[1][0] == '\0')
		return fail(err, errlen, path, lineno, "name: empty");

	memset(&e, 0, sizeof(e));
	if (split_list(f[2], &list, &nlist) < 0)
		return fail(err, errlen, path, lineno, "e-mail addresses: empty item in list");
	e.emails = xcalloc(nlist ? nlist : 1, sizeof(char *));
	for (size_t i = 0; i < nlist; i++) {
		char *a = address_parse(list[i]);
		if (a == NULL) {
			free(list);
			org_entry_free(&e);
			return fail(err, errlen, path, lineno,
			            "e-mail addresses: invalid address (item %zu)", i + 1);
		}
		e.emails[e.nemails++] = a;
		if (g_hash_table_contains(o->by_email, a)) {
			free(list);
			org_entry_free(&e);
			return fail(err, errlen, path, lineno,
			            "e-mail addresses: address listed twice in this file");
		}
	}
	free(list);

	if (split_list(f[3], &list, &nlist) < 0) {
		org_entry_free(&e);
		return fail(err, errlen, path, lineno, "fax numbers: empty item in list");
	}
	e.faxes = xcalloc(nlist ? nlist : 1, sizeof(char *));
	for (size_t i = 0; i < nlist; i++) {
		char num[11];
		if (dir_normalize_phone(list[i], num) < 0) {
			free(list);
			org_entry_free(&e);
			return fail(
			    err, errlen, path, lineno,
			    "fax numbers: item %zu is not a 10-digit number (or 1 + 10 digits)",
			    i + 1);
		}
		e.faxes[e.nfaxes++] = xstrdup(num);
		if (g_hash_table_contains(o->by_fax, num)) {
			free(list);
			org_entry_free(&e);
			return fail(err, errlen, path, lineno,
			            "fax numbers: number listed twice in this file");
		}
	}
	free(list);
	if (e.nemails == 0 && e.nfaxes == 0) {
		org_entry_free(&e);
		return fail(err, errlen, path, lineno,
		            "neither an e-mail address nor a fax number");
	}

	if (f[4][0] != '\0') {
		char num[11];
		if (dir_normalize_phone(f[4], num) < 0) {
			org_entry_free(&e);
			return fail(err, errlen, path, lineno,
			            "phone: not a 10-digit number (or 1 + 10 digits)");
		}
		e.phone = xstrdup(num);
	}
	e.id = xstrdup(f[0]);
	e.name = xstrdup(f[1]);

	/* Checks passed: index it. */
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 64;
		o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	o->v[o->n++] = e;
	g_hash_table_add(ids, e.id);
	for (size_t i = 0; i < e.nemails; i++)
		g_hash_table_insert(o->by_email, e.emails[i], IDX2P(idx));
	for (size_t i = 0; i < e.nfaxes; i++)
		g_hash_table_insert(o->by_fax, e.faxes[i], IDX2P(idx));
	if (o->by_name) {
		char *key = text_fold_key(e.name);
		if (key == NULL || *key == '\0') {
			free(key);
		} else if (g_hash_table_contains(o->by_name, key)) {
			g_hash_table_insert(o->by_name, key, AMBIGUOUS); /* frees key */
		} else {
			g_hash_table_insert(o->by_name, key, IDX2P(idx));
		}
	}
	return 0;
}

static int load_orgs(struct org_dir *o, const char *path, char *err, size_t errlen)
{
	struct reader r;
	GHashTable *ids;
	char *line;
	int rc;

	if (reader_open(&r, path, err, errlen) < 0)
		return -1;
	ids = g_hash_table_new(g_str_hash, g_str_equal);
	while ((rc = reader_next(&r, &line, err, errlen)) > 0)
		if (parse_org_line(o, ids, line, path, r.lineno, err, errlen) < 0) {
			rc = -1;
			break;
		}
	g_hash_table_destroy(ids);
	reader_close(&r);
	return rc < 0 ? -1 : 0;
}

static const struct org_entry *org_lookup(const struct org_dir *o, GHashTable *t, const char *key)
{
	gpointer v;

	if (t == NULL || key == NULL)
		return NULL;
	v = g_hash_table_lookup(t, key);
	if (v == NULL || v == AMBIGUOUS)
		return NULL;
	return &o->v[P2IDX(v)];
}

const struct org_entry *dir_pharmacy_by_email(const struct directories *d, const char *addr)
{
	char buf[512];
	return d ? org_lookup(&d->pharm, d->pharm.by_email, lower_key(addr, buf, sizeof(buf)))
	         : NULL;
}

const struct org_entry *dir_pharmacy_by_fax(const struct directories *d, const char *digits10)
{
	return d ? org_lookup(&d->pharm, d->pharm.by_fax, digits10) : NULL;
}

const struct org_entry *dir_imaging_by_email(const struct directories *d, const char *addr)
{
	char buf[512];
	return d ? org_lookup(&d->imaging, d->imaging.by_email, lower_key(addr, buf, sizeof(buf)))
	         : NULL;
}

const struct org_entry *dir_imaging_by_fax(const struct directories *d, const char *digits10)
{
	return d ? org_lookup(&d->imaging, d->imaging.by_fax, digits10) : NULL;
}

const struct org_entry *dir_pharmacy_by_name(const struct directories *d, const char *name)
{
	const struct org_entry *e;
	char *key;

	if (d == NULL || name == NULL)
		return NULL;
	key = text_fold_key(name);
	if (key == NULL)
		return NULL;
	e = org_lookup(&d->pharm, d->pharm.by_name, key);
	free(key);
	return e;
}

size_t dir_count_pharmacies(const struct directories *d)
{
	return d ? d->pharm.n : 0;
}

size_t dir_count_imaging(const struct directories *d)
{
	return d ? d->imaging.n : 0;
}

/* ---- patients ---- */

static void patient_free(struct patient_entry *p)
{
	free(p->address);
	free(p->cert_path);
	free(p->password_mode);
	free(p->passphrase_ref);
}

static int days_in_month(int y, int m)
{
	static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* "YYYY-MM-DD" → YYYYMMDD, "none" → 0, else -1. */
static int parse_consent_date(const char *s)
{
	int y, m, d;

	if (str_iequal(s, "none"))
		return 0;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return -1;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return -1;
	return y * 10000 + m * 100 + d;
}

static int parse_scope(char *s, unsigned *scope)
{
	static const struct {
		const char *name;
		unsigned bits;
	} names[] = {
	    {"general", SCOPE_GENERAL},
	    {"clinical", SCOPE_CLINICAL},
	    {"lab-order", SCOPE_LAB_ORDER},
	    {"documents", SCOPE_DOCUMENTS},
	    {"all", SCOPE_ALL},
	};
	char **items;
	size_t n;

	*scope = 0;
	if (split_list(s, &items, &n) < 0 || n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		size_t k;
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (str_iequal(items[i], names[k].name))
				break;
		if (k == sizeof(names) / sizeof(names[0])) {
			free(items);
			return -1;
		}
		*scope |= names[k].bits;
	}
	free(items);
	return 0;
}

/* A relative path in a directory file is taken from that file's folder. */
static char *resolve_beside(const char *file, const char *rel)
{
	const char *slash;

	if (rel[0] == '/' || (slash = strrchr(file, '/')) == NULL)
		return xstrdup(rel);
	struct strbuf sb;
	sb_init(&sb);
	sb_append(&sb, file, (size_t)(slash - file) + 1);
	sb_puts(&sb, rel);
	return sb_steal(&sb);
}

static int parse_patient_options(struct patient_entry *p, char *opts, const char *path,
                                 unsigned lineno, char *err, size_t errlen)
{
	int seen_tp = 0, seen_tpc = 0;
	char *save = NULL;

	for (char *tok = strtok_r(opts, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		const char *val;

		if (eq == NULL || eq == tok || eq[1] == '\0')
			return fail(err, errlen, path, lineno,
			            "options: \"key=value\" expected (item without '=' or value)");
		*eq = '\0';
		val = eq + 1;
		if (strcmp(tok, "third-party") == 0) {
			static const char *const tp[] = {"employer", "school", "family", "other"};
			size_t k;
			if (seen_tp++)
				return fail(err, errlen, path, lineno,
				            "options: third-party given twice");
			for (k = 0; k < 4; k++)
				if (str_iequal(val, tp[k]))
					break;
			if (k == 4)
				return fail(
				    err, errlen, path, lineno,
				    "options: third-party must be employer, school, family or "
				    "other");
			p->third_party = (enum third_party)(TP_EMPLOYER + k);
		} else if (strcmp(tok, "third-party-consent") == 0) {
			if (seen_tpc++)
				return fail(err, errlen, path, lineno,
				            "options: third-party-consent given twice");
			if (str_iequal(val, "yes"))
				p->third_party_consented = 1;
			else if (str_iequal(val, "no"))
				p->third_party_consented = 0;
			else
				return fail(err, errlen, path, lineno,
				            "options: third-party-consent must be yes or no");
		} else if (strcmp(tok, "cert") == 0) {
			if (p->cert_path)
				return fail(err, errlen, path, lineno, "options: cert given twice");
			p->cert_path = resolve_beside(path, val);
			if (access(p->cert_path, R_OK) != 0)
				return fail(err, errlen, path, lineno,
				            "options: cert: cannot read: %s", strerror(errno));
		} else if (strcmp(tok, "password") == 0) {
			if (p->password_mode)
				return fail(err, errlen, path, lineno,
				            "options: password given twice");
			if (strcmp(val, "registered") != 0 && strcmp(val, "generated") != 0)
				return fail(err, errlen, path, lineno,
				            "options: password must be registered or generated");
			p->password_mode = xstrdup(val);
		} else if (strcmp(tok, "passphrase") == 0) {
			if (p->passphrase_ref)
				return fail(err, errlen, path, lineno,
				            "options: passphrase given twice");
			p->passphrase_ref = xstrdup(val);
		} else {
			return fail(err, errlen, path, lineno, "options: unknown option \"%.40s\"",
			            tok);
		}
	}
	if (p->third_party_consented && p->third_party == TP_NONE)
		return fail(err, errlen, path, lineno,
		            "options: third-party-consent=yes without third-party=");
	return 0;
}

static int parse_patient_line(struct directories *d, char *line, const char *path, unsigned lineno,
                              char *err, size_t errlen)
{
	char *f[4];
	size_t nf = split(line, '|', f, 4);
	struct patient_entry p;
	int date;

	if (nf < 3 || nf > 4)
		return fail(
		    err, errlen, path, lineno,
		    "expected 4 fields (address | consent date | scope | options), found %zu", nf);
	memset(&p, 0, sizeof(p));
	p.address = address_parse(f[0]);
	if (p.address == NULL)
		return fail(err, errlen, path, lineno, "address: invalid e-mail address");
	if (g_hash_table_contains(d->patient_by_addr, p.address)) {
		patient_free(&p);
		return fail(err, errlen, path, lineno, "address: listed twice in this file");
	}
	if ((date = parse_consent_date(f[1])) < 0) {
		patient_free(&p);
		return fail(err, errlen, path, lineno,
		            "consent date: YYYY-MM-DD (a valid date) or \"none\" expected");
	}
	p.consent_date = date;
	if (parse_scope(f[2], &p.scope) < 0) {
		patient_free(&p);
		return fail(err, errlen, path, lineno,
		            "scope: comma-separated list of general, clinical, lab-order, "
		            "documents, all expected");
	}
	if (nf == 4 && parse_patient_options(&p, f[3], path, lineno, err, errlen) < 0) {
		patient_free(&p);
		return -1;
	}
	if (d->npatients == d->patients_cap) {
		d->patients_cap = d->patients_cap ? d->patients_cap * 2 : 1024;
		d->patients = xrealloc(d->patients, d->patients_cap * sizeof(*d->patients));
	}
	d->patients[d->npatients] = p;
	g_hash_table_insert(d->patient_by_addr, p.address, IDX2P(d->npatients));
	d->npatients++;
	return 0;
}


/* The line parsers of the files read into struct directories. */
typedef int (*dir_line_parser)(struct directories *d, char *line, const char *path,
                               unsigned lineno, char *err, size_t errlen);

/* Read path line by line through parse; the first bad line stops loading. */
static int load_lines(struct directories *d, const char *path, dir_line_parser parse, char *err,
                      size_t errlen)
{
	struct reader r;
	char *line;
	int rc;

	if (reader_open(&r, path, err, errlen) < 0)
		return -1;
	while ((rc = reader_next(&r, &line, err, errlen)) > 0)
		if (parse(d, line, path, r.lineno, err, errlen) < 0) {
			rc = -1;
			break;
		}
	reader_close(&r);
	return rc < 0 ? -1 : 0;
}

const struct patient_entry *dir_patient(const struct directories *d, const char *addr)
{
	char buf[512];
	const char *key = lower_key(addr, buf, sizeof(buf));
	gpointer v;

	if (d == NULL || key == NULL)
		return NULL;
	v = g_hash_table_lookup(d->patient_by_addr, key);
	return v ? &d->patients[P2IDX(v)] : NULL;
}

size_t dir_count_patients(const struct directories *d)
{
	return d ? d->npatients : 0;
}

/* ---- archives ---- */

static void archive_entry_free(gpointer p)
{
	struct archive_entry *a = p;
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->addrs[i]);
	free(a->addrs);
	free(a);
}

static int parse_archives_line(struct directories *d, char *line, const char *path, unsigned lineno,
                               char *err, size_t errlen)
{
	char *f[2], **list;
	size_t nf = split(line, '|', f, 2), n;
	struct archive_entry *a;

	if (nf != 2)
		return fail(err, errlen, path, lineno,
		            "expected 2 fields (sender domain | archives addresses), found %zu",
		            nf);
	str_lower(f[0]);
	if (strcmp(f[0], "*") == 0) {
		if (d->archives_default)
			return fail(err, errlen, path, lineno, "\"*\" listed twice");
	} else if (!domain_valid(f[0])) {
		return fail(err, errlen, path, lineno, "sender domain: invalid domain name");
	} else if (g_hash_table_contains(d->archives, f[0])) {
		return fail(err, errlen, path, lineno, "sender domain: listed twice");
	}
	if (split_list(f[1], &list, &n) < 0 || n == 0) {
		free(list);
		return fail(err, errlen, path, lineno, "archives addresses: empty list or item");
	}
	a = xcalloc(1, sizeof(*a));
	a->addrs = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char *addr = address_parse(list[i]);
		if (addr == NULL) {
			free(list);
			archive_entry_free(a);
			return fail(err, errlen, path, lineno,
			            "archives addresses: invalid address (item %zu)", i + 1);
		}
		a->addrs[a->n++] = addr;
	}
	free(list);
	for (size_t i = 0; i < a->n; i++)
		g_hash_table_add(d->archive_addrs, xstrdup(a->addrs[i]));
	if (strcmp(f[0], "*") == 0)
		d->archives_default = a;
	else
		g_hash_table_insert(d->archives, xstrdup(f[0]), a);
	return 0;
}


char *const *dir_archives_for(const struct directories *d, const char *sender_domain, size_t *n)
{
	char buf[MAX_DOMAIN + 2];
	const char *key = lower_key(sender_domain, buf, sizeof(buf));
	const struct archive_entry *a = NULL;

	*n = 0;
	if (d == NULL)
		return NULL;
	if (key)
		a = g_hash_table_lookup(d->archives, key);
	if (a == NULL)
		a = d->archives_default;
	if (a == NULL)
		return NULL;
	*n = a->n;
	return a->addrs;
}

int dir_is_archives(const struct directories *d, const char *addr)
{
	char buf[512];
	const char *key = lower_key(addr, buf, sizeof(buf));
	return d && key && g_hash_table_contains(d->archive_addrs, key);
}

/* ---- sender logins ---- */

static int parse_login_line(struct directories *d, char *line, const char *path, unsigned lineno,
                            char *err, size_t errlen)
{
	char *f[2], **list;
	size_t nf = split(line, '|', f, 2), n;
	GHashTable *set;

	if (nf != 2)
		return fail(err, errlen, path, lineno,
		            "expected 2 fields (login | addresses), found %zu", nf);
	if (f[0][0] == '\0' || strpbrk(f[0], " \t") != NULL)
		return fail(err, errlen, path, lineno, "login: empty or contains spaces");
	str_lower(f[0]);
	if (g_hash_table_contains(d->logins, f[0]))
		return fail(err, errlen, path, lineno, "login: listed twice");
	if (split_list(f[1], &list, &n) < 0 || n == 0) {
		free(list);
		return fail(err, errlen, path, lineno, "addresses: empty list or item");
	}
	set = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	for (size_t i = 0; i < n; i++) {
		char *item;
		if (list[i][0] == '@') {
			item = xstrdup(list[i]);
			str_lower(item);
			if (!domain_valid(item + 1)) {
				free(item);
				item = NULL;
			}
		} else {
			item = address_parse(list[i]);
		}
		if (item == NULL) {
			free(list);
			g_hash_table_destroy(set);
			return fail(err, errlen, path, lineno,
			            "addresses: item %zu is neither an address nor \"@domain\"",
			            i + 1);
		}
		g_hash_table_add(set, item);
	}
	free(list);
	g_hash_table_insert(d->logins, xstrdup(f[0]), set);
	return 0;
}


int dir_login_may_send_as(const struct directories *d, const char *login, const char *addr)
{
	char lbuf[512], abuf[512];
	const char *l = lower_key(login, lbuf, sizeof(lbuf));
	const char *a = lower_key(addr, abuf, sizeof(abuf));
	const char *at;
	GHashTable *set;

	if (d == NULL || l == NULL || a == NULL || *l == '\0' || (at = strrchr(a, '@')) == NULL)
		return 0;
	if (strcmp(l, a) == 0)
		return 1; /* a login that is itself the address */
	set = g_hash_table_lookup(d->logins, l);
	if (set == NULL)
		return 0;
	return g_hash_table_contains(set, a) || g_hash_table_contains(set, at);
}

/* ---- the whole ---- */

void directories_free(struct directories *d)
{
	if (d == NULL)
		return;
	domain_set_free(&d->internal);
	domain_set_free(&d->webmail);
	org_dir_free(&d->pharm);
	org_dir_free(&d->imaging);
	if (d->patient_by_addr)
		g_hash_table_destroy(d->patient_by_addr);
	for (size_t i = 0; i < d->npatients; i++)
		patient_free(&d->patients[i]);
	free(d->patients);
	if (d->archives)
		g_hash_table_destroy(d->archives);
	archive_entry_free(d->archives_default);
	if (d->archive_addrs)
		g_hash_table_destroy(d->archive_addrs);
	if (d->logins)
		g_hash_table_destroy(d->logins);
	free(d);
}

struct directories *directories_load(const struct dir_paths *p, char *err, size_t errlen)
{
	struct directories *d = xcalloc(1, sizeof(*d));

	domain_set_init(&d->internal);
	domain_set_init(&d->webmail);
	org_dir_init(&d->pharm, 1);
	org_dir_init(&d->imaging, 0);
	d->patient_by_addr = g_hash_table_new(g_str_hash, g_str_equal);
	d->archives = g_hash_table_new_full(g_str_hash, g_str_equal, free, archive_entry_free);
	d->archive_addrs = g_hash_table_new_full(g_str_hash, g_str_equal, free, NULL);
	d->logins = g_hash_table_new_full(g_str_hash, g_str_equal, free,
	                                  (GDestroyNotify)g_hash_table_destroy);

	if (p->internal_domains == NULL) {
		snprintf(err, errlen, "internal domains: no file given");
		goto bad;
	}
	if (p->webmail_domains == NULL) {
		snprintf(err, errlen, "webmail domains: no file given");
		goto bad;
	}
	if (load_domains(&d->internal, p->internal_domains, 0, err, errlen) < 0 ||
	    load_domains(&d->webmail, p->webmail_domains, 1, err, errlen) < 0)
		goto bad;
	if (p->pharmacies && load_orgs(&d->pharm, p->pharmacies, err, errlen) < 0)
		goto bad;
	if (p->imaging && load_orgs(&d->imaging, p->imaging, err, errlen) < 0)
		goto bad;
	if (p->patients && load_lines(d, p->patients, parse_patient_line, err, errlen) < 0)
		goto bad;
	if (p->archives && load_lines(d, p->archives, parse_archives_line, err, errlen) < 0)
		goto bad;
	if (p->sender_logins && load_lines(d, p->sender_logins, parse_login_line, err, errlen) < 0)
		goto bad;
	return d;
bad:
	directories_free(d);
	return NULL;
}
