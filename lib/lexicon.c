/*
 * lexicon.c — the vocabularies (lexicon.h): plain text files loaded into one
 * Hyperscan block-mode database, scanned in one pass.
 *
 * Terms are folded with text_fold_key (no accents, lower case) and matched
 * caseless, in Hyperscan's byte (non-UTF-8) mode: the text is folded to
 * ASCII, and bytes >= 0x80 are not word characters.
 *
 * Each term is given to Hyperscan as plain literals, not as a regular
 * expression: a term with separators becomes one literal per way of writing
 * them ("beta hcg", "beta-hcg": see term_literals()), and the word
 * boundaries — before a term starting with a letter or digit, after one
 * ending with one, and the rest of the word after a prefix term ("chimioth*")
 * — are checked in the match callback.  Measured on the shipped lexicons,
 * literals take a quarter of the instructions of the equivalent
 * word[ \-]+word expressions, and with 5,000 more terms the database
 * compiles in under a second instead of half a minute.  What this gives up:
 * runs of several separators between two words ("beta - hcg", "beta--hcg"),
 * which normalized text (one space between words) rarely has; a " - "
 * variant of every term would cost a third more scanning time.  The start of a
 * match is its end minus the literal's length: exact, no start-of-match
 * tracking needed.
 *
 * Thread safety: the set is immutable once loaded, except for a pool of
 * Hyperscan scratch spaces under a mutex; each scan takes one (cloning the
 * prototype when the pool is empty) and gives it back.
 */
#include "autoconfig.h"
#include "lexicon.h"
#include "normalize.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <hs.h>

#define MAX_TERM 200      /* bytes of a folded term */
#define MAX_CATEGORIES 31 /* content_class keeps one bit per category */
#define TERM_BITS 24      /* terms per lexicon: fewer than 1 << TERM_BITS */

static const char *const lex_names[LEX_COUNT] = {
    [LEX_DRUG] = "drugs",          [LEX_IMAGING] = "imaging",   [LEX_LAB] = "lab",
    [LEX_SENSITIVE] = "sensitive", [LEX_CLINICAL] = "clinical", [LEX_ORDER] = "order",
    [LEX_DOCUMENT] = "documents",  [LEX_CONTEXT] = "context",
};

const char *lexicon_name(enum lexicon_id id)
{
	if ((unsigned)id >= LEX_COUNT)
		return NULL;
	return lex_names[id];
}

struct term {
	char *text; /* folded, without the '*' */
	size_t len;
	unsigned category; /* index into the set's categories, 0 = none */
	int prefix;        /* written with a trailing '*' */
	char *file;        /* for error messages: shared with the other terms of the file */
	unsigned line;
};

struct lexicon {
	struct term *v;
	size_t n, cap;
};

/* One Hyperscan literal: a way of writing a term. */
struct variant {
	unsigned char lex;
	unsigned term;
	unsigned len;
};

struct lexicon_set {
	struct lexicon lex[LEX_COUNT];
	struct variant *var; /* indexed by Hyperscan id */
	size_t nvar;
	char *cats[MAX_CATEGORIES + 1]; /* cats[0] = "" */
	unsigned ncats;
	char **files; /* file names the terms point to */
	size_t nfiles;
	hs_database_t *db;
	hs_scratch_t *proto; /* never scans: cloned into the pool */
	pthread_mutex_t lock;
	hs_scratch_t **pool; /* idle scratches, protected by lock */
	size_t npool, cappool;
};

void lexicon_hits_free(struct lexicon_hits *h)
{
	if (!h)
		return;
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

void lexicon_free(struct lexicon_set *ls)
{
	if (!ls)
		return;
	for (int l = 0; l < LEX_COUNT; l++) {
		for (size_t i = 0; i < ls->lex[l].n; i++)
			free(ls->lex[l].v[i].text);
		free(ls->lex[l].v);
	}
	for (unsigned i = 0; i <= ls->ncats && i <= MAX_CATEGORIES; i++)
		free(ls->cats[i]);
	free(ls->var);
	for (size_t i = 0; i < ls->nfiles; i++)
		free(ls->files[i]);
	free(ls->files);
	for (size_t i = 0; i < ls->npool; i++)
		hs_free_scratch(ls->pool[i]);
	free(ls->pool);
	if (ls->proto)
		hs_free_scratch(ls->proto);
	if (ls->db)
		hs_free_database(ls->db);
	pthread_mutex_destroy(&ls->lock);
	free(ls);
}

size_t lexicon_size(const struct lexicon_set *ls, enum lexicon_id id)
{
	if (!ls || (unsigned)id >= LEX_COUNT)
		return 0;
	return ls->lex[id].n;
}

const char *lexicon_term(const struct lexicon_set *ls, enum lexicon_id id, unsigned term)
{
	if (!ls || (unsigned)id >= LEX_COUNT || term >= ls->lex[id].n)
		return NULL;
	return ls->lex[id].v[term].text;
}

const char *lexicon_category_name(const struct lexicon_set *ls, unsigned category)
{
	if (!ls || category > ls->ncats)
		return NULL;
	return ls->cats[category];
}

/* ---- loading ---- */

static int is_word(unsigned char c)
{
	return isalnum(c) || c == '_';
}

/*
 * Can byte c border a term of len bytes?  Any non-word byte for a term of 4
 * bytes or more; for a shorter one (HB, CK, Rx, TDM) only ASCII space or
 * punctuation: in garbage (a binary part read as text, random bytes) short
 * runs of letters between non-ASCII bytes are everywhere, and in normalized
 * text a real abbreviation has a space or punctuation around it.
 */
static int is_boundary(unsigned char c, size_t len)
{
	if (is_word(c))
		return 0;
	return len >= 4 || (c >= 0x20 && c < 0x7f);
}

static int is_sep(unsigned char c)
{
	return c == ' ' || c == '-';
}

static unsigned category_index(struct lexicon_set *ls, const char *name, int *full)
{
	for (unsigned i = 1; i <= ls->ncats; i++)
		if (strcmp(ls->cats[i], name) == 0)
			return i;
	if (ls->ncats >= MAX_CATEGORIES) {
		*full = 1;
		return 0;
	}
	ls->cats[++ls->ncats] = xstrdup(name);
	return ls->ncats;
}

/*
 * One line of a lexicon file, already stripped of its comment and trimmed.
 * Returns NULL when fine, else the reason (static string).
 */
static const char *load_line(struct lexicon_set *ls, struct lexicon *lx, GHashTable *seen,
                             char *line, unsigned *category, char *file, unsigned lineno)
{
	size_t n = strlen(line);
	int prefix = 0, has_alnum = 0;
	char *folded, *key;
	struct term *t;

	if (line[0] == '[') {
		char *name = line + 1;
		int full = 0;
		if (line[n - 1] != ']')
			return "category: missing ']'";
		line[n - 1] = '\0';
		name = str_trim(name);
		if (!*name)
			return "empty category name";
		for (const char *p = name; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
				return "category name: only letters, digits, '-' and '_'";
		*category = category_index(ls, name, &full);
		if (full)
			return "too many categories (31 at most)";
		return NULL;
	}
	if (line[n - 1] == '*') {
		prefix = 1;
		line[--n] = '\0';
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
	}
	if (strchr(line, '*'))
		return "'*' is only allowed at the end of a term";
	folded = text_fold_key(line);
	if (!folded)
		return "cannot fold the term";
	n = strlen(folded);
	for (size_t i = 0; i < n; i++)
		has_alnum |= isalnum((unsigned char)folded[i]) != 0;
	if (!has_alnum) {
		free(folded);
		return prefix && n == 0 ? "'*' alone is not a term"
		                        : "term without a letter or digit";
	}
	if (n > MAX_TERM) {
		free(folded);
		return "term too long (200 bytes at most)";
	}
	if (prefix && !is_word((unsigned char)folded[n - 1])) {
		free(folded);
		return "'*' must follow a letter or digit";
	}
	if (lx->n >= (1u << TERM_BITS)) {
		free(folded);
		return "too many terms";
	}
	/* The same term twice in a category (after folding: "Aspirine" and
	 * "aspirine"): keep one.  In two categories it counts for both. */
	key = g_strdup_printf("%u:%s%s", *category, folded, prefix ? "*" : "");
	for (char *k = key; *k; k++)
		if (*k == '-')
			*k = ' '; /* "beta-hcg" and "beta hcg" are one term */
	if (g_hash_table_contains(seen, key)) {
		g_free(key);
		free(folded);
		return NULL;
	}
	g_hash_table_add(seen, key);
	if (lx->n == lx->cap) {
		lx->cap = lx->cap ? 2 * lx->cap : 256;
		lx->v = xrealloc(lx->v, lx->cap * sizeof(*lx->v));
	}
	t = &lx->v[lx->n++];
	t->text = folded;
	t->len = n;
	t->category = *category;
	t->prefix = prefix;
	t->file = file;
	t->line = lineno;
	return NULL;
}

/* Load one file into lexicon lx.  Returns 0, 1 when absent and optional, -1 on error. */
static int load_file(struct lexicon_set *ls, struct lexicon *lx, GHashTable *seen, const char *path,
                     int optional, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, *file;
	size_t cap = 0;
	ssize_t got;
	unsigned lineno = 0, category = 0;
	int rc = 0;

	if (!f) {
		if (optional && errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	file = xstrdup(path);
	ls->files = xrealloc(ls->files, (ls->nfiles + 1) * sizeof(*ls->files));
	ls->files[ls->nfiles++] = file;
	while ((got = getline(&line, &cap, f)) != -1) {
		const char *why;
		char *p, *hash;

		lineno++;
		if (memchr(line, '\0', (size_t)got)) {
			snprintf(err, errlen, "%s:%u: NUL byte in line", path, lineno);
			rc = -1;
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		p = str_trim(line);
		if (!*p)
			continue;
		why = load_line(ls, lx, seen, p, &category, file, lineno);
		if (why) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

/* Collect the literals of every term (see the header comment). */
struct lits {
	char **lit;
	size_t *len;
	unsigned *flags, *ids;
	size_t n, cap;
};

static void add_literal(struct lexicon_set *ls, struct lits *L, char *lit, unsigned lex,
                        unsigned term)
{
	if (L->n == L->cap) {
		L->cap = L->cap ? 2 * L->cap : 1024;
		L->lit = xrealloc(L->lit, L->cap * sizeof(*L->lit));
		L->len = xrealloc(L->len, L->cap * sizeof(*L->len));
		L->flags = xrealloc(L->flags, L->cap * sizeof(*L->flags));
		L->ids = xrealloc(L->ids, L->cap * sizeof(*L->ids));
		ls->var = xrealloc(ls->var, L->cap * sizeof(*ls->var));
	}
	L->lit[L->n] = lit;
	L->len[L->n] = strlen(lit);
	L->flags[L->n] = HS_FLAG_CASELESS;
	L->ids[L->n] = (unsigned)L->n;
	ls->var[L->n].lex = (unsigned char)lex;
	ls->var[L->n].term = term;
	ls->var[L->n].len = (unsigned)L->len[L->n];
	L->n++;
}

/*
 * The ways of writing a term: each run of separators as " " or "-" (all
 * combinations for up to three places; beyond, all spaces or all hyphens).
 */
static void term_literals(struct lexicon_set *ls, struct lits *L, unsigned lex, unsigned term)
{
	static const char *const seps[] = {" ", "-"};
	const char *t = ls->lex[lex].v[term].text;
	size_t n = strlen(t), nsep = 0, nways, combos = 1;
	char **part = xmalloc((n + 1) * sizeof(*part)); /* the words between separators */
	char *copy = xstrdup(t), *p = copy;

	part[0] = p;
	for (; *p; p++)
		if (is_sep((unsigned char)*p)) {
			*p = '\0';
			while (is_sep((unsigned char)p[1]))
				p++;
			part[++nsep] = p + 1;
		}
	nways = nsep <= 3 ? 2 : 1;
	for (size_t k = 0; k < nsep; k++)
		combos *= nways;
	for (size_t c = 0; c < (nsep > 3 ? 2 : combos); c++) {
		struct strbuf sb;
		size_t code = c;
		sb_init(&sb);
		sb_puts(&sb, part[0]);
		for (size_t k = 1; k <= nsep; k++) {
			/* beyond three places: all spaces, or all hyphens */
			sb_puts(&sb, seps[nsep > 3 ? c : code % nways]);
			code /= nways;
			sb_puts(&sb, part[k]);
		}
		add_literal(ls, L, sb_steal(&sb), lex, term);
	}
	free(part);
	free(copy);
}

static int compile_set(struct lexicon_set *ls, char *err, size_t errlen)
{
	struct lits L = {0};
	hs_compile_error_t *cerr = NULL;
	int rc = 0;

	for (unsigned l = 0; l < LEX_COUNT; l++)
		for (size_t i = 0; i < ls->lex[l].n; i++)
			term_literals(ls, &L, l, (unsigned)i);
	ls->nvar = L.n;
	if (L.n == 0) {
		snprintf(err, errlen, "lexicons: no terms at all");
		rc = -1;
	} else if (L.n > UINT_MAX) {
		snprintf(err, errlen, "lexicons: too many terms");
		rc = -1;
	} else if (hs_compile_lit_multi((const char *const *)L.lit, L.flags, L.ids, L.len,
	                                (unsigned)L.n, HS_MODE_BLOCK, NULL, &ls->db,
	                                &cerr) != HS_SUCCESS) {
		if (cerr->expression >= 0 && (size_t)cerr->expression < L.n) {
			const struct variant *v = &ls->var[cerr->expression];
			const struct term *t = &ls->lex[v->lex].v[v->term];
			snprintf(err, errlen, "%s:%u: %s", t->file, t->line, cerr->message);
		} else {
			snprintf(err, errlen, "lexicons: %s", cerr->message);
		}
		hs_free_compile_error(cerr);
		rc = -1;
	} else if (hs_alloc_scratch(ls->db, &ls->proto) != HS_SUCCESS) {
		snprintf(err, errlen, "lexicons: cannot allocate Hyperscan scratch");
		rc = -1;
	}
	for (size_t i = 0; i < L.n; i++)
		free(L.lit[i]);
	free(L.lit);
	free(L.len);
	free(L.flags);
	free(L.ids);
	return rc;
}

struct lexicon_set *lexicon_load(const char *dir, char *err, size_t errlen)
{
	struct lexicon_set *ls = xcalloc(1, sizeof(*ls));

	if (pthread_mutex_init(&ls->lock, NULL) != 0) {
		snprintf(err, errlen, "lexicons: mutex init failed");
		free(ls);
		return NULL;
	}
	ls->cats[0] = xstrdup("");
	if (hs_valid_platform() != HS_SUCCESS) {
		snprintf(err, errlen, "lexicons: this CPU cannot run Hyperscan (SSSE3 needed)");
		goto fail;
	}
	for (int l = 0; l < LEX_COUNT; l++) {
		GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		char *path = g_strdup_printf("%s/%s.txt", dir, lex_names[l]);
		char *local = g_strdup_printf("%s/%s.local.txt", dir, lex_names[l]);
		int rc = load_file(ls, &ls->lex[l], seen, path, 0, err, errlen);
		if (rc == 0)
			rc = load_file(ls, &ls->lex[l], seen, local, 1, err, errlen);
		g_free(path);
		g_free(local);
		g_hash_table_destroy(seen);
		if (rc < 0)
			goto fail;
	}
	if (compile_set(ls, err, errlen) != 0)
		goto fail;
	return ls;
fail:
	lexicon_free(ls);
	return NULL;
}

/* ---- scanning ---- */

static hs_scratch_t *scratch_get(const struct lexicon_set *cls)
{
	struct lexicon_set *ls = (struct lexicon_set *)cls; /* only the locked pool changes */
	hs_scratch_t *s = NULL;

	pthread_mutex_lock(&ls->lock);
	if (ls->npool > 0)
		s = ls->pool[--ls->npool];
	else if (hs_clone_scratch(ls->proto, &s) != HS_SUCCESS)
		s = NULL;
	pthread_mutex_unlock(&ls->lock);
	return s;
}

static void scratch_put(const struct lexicon_set *cls, hs_scratch_t *s)
{
	struct lexicon_set *ls = (struct lexicon_set *)cls;

	pthread_mutex_lock(&ls->lock);
	if (ls->npool == ls->cappool) {
		ls->cappool = ls->cappool ? 2 * ls->cappool : 4;
		ls->pool = xrealloc(ls->pool, ls->cappool * sizeof(*ls->pool));
	}
	ls->pool[ls->npool++] = s;
	pthread_mutex_unlock(&ls->lock);
}

struct scan_ctx {
	const struct lexicon_set *ls;
	const unsigned char *text;
	size_t len;
	struct lexicon_hits *hits;
};

static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned fl,
                    void *ctx)
{
	struct scan_ctx *c = ctx;
	const struct variant *v = &c->ls->var[id];
	const struct term *t = &c->ls->lex[v->lex].v[v->term];
	const unsigned char *x = c->text, *s = (const unsigned char *)t->text;
	size_t end = (size_t)to, start = end - v->len;
	struct lexicon_hits *h = c->hits;

	(void)from;
	(void)fl;
	/* Whole words: "aspirine" not in "aspirines", "oncolog*" to the word's end. */
	if (is_word(s[0]) && start > 0 && !is_boundary(x[start - 1], v->len))
		return 0;
	if (t->prefix) {
		while (end < c->len && is_word(x[end]))
			end++;
	} else if (is_word(s[t->len - 1]) && end < c->len && !is_boundary(x[end], v->len)) {
		return 0;
	}
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	h->v[h->n].lex = (enum lexicon_id)v->lex;
	h->v[h->n].term = v->term;
	h->v[h->n].category = t->category;
	h->v[h->n].start = start;
	h->v[h->n].end = end;
	h->n++;
	return 0;
}

int lexicon_scan(const struct lexicon_set *ls, const char *text, size_t len,
                 struct lexicon_hits *hits)
{
	struct scan_ctx c = {ls, (const unsigned char *)text, len, hits};
	hs_scratch_t *s;
	hs_error_t rc;

	if (!ls || !hits || (!text && len))
		return -1;
	if (len == 0)
		return 0;
	if (len > UINT_MAX) {
		msg_error("lexicon: text of %zu bytes is too large to scan", len);
		return -1;
	}
	s = scratch_get(ls);
	if (!s) {
		msg_error("lexicon: cannot allocate Hyperscan scratch");
		return -1;
	}
	rc = hs_scan(ls->db, text, (unsigned)len, 0, s, on_match, &c);
	scratch_put(ls, s);
	if (rc != HS_SUCCESS) {
		msg_error("lexicon: Hyperscan scan failed (%d)", (int)rc);
		return -1;
	}
	return 0;
}
