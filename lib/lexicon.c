/*
 * lexicon.c — load the plain-text lexicons (format in lexicon.h), compile
 * every term of every lexicon into one Hyperscan block-mode database, and
 * scan normalized text in one pass.
 *
 * Terms are folded with text_fold_key() and matched case-insensitively on
 * whole words (\b where the term starts/ends with a word character), any
 * run of spaces or hyphens standing for a space or hyphen of the term.
 * Patterns are compiled with HS_FLAG_SINGLEMATCH: each term is reported at
 * most once per scan, which is all the policy needs (presence and distinct
 * terms) and keeps scanning at memory speed with thousands of terms.  Hit
 * start offsets are therefore approximate (end minus the term's length).
 *
 * The set is immutable after lexicon_load(); the only mutable part is the
 * pool of Hyperscan scratch spaces, under a mutex.
 */
#include "autoconfig.h"

#include "lexicon.h"
#include "normalize.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <glib.h>
#include <hs/hs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TERM_MAX 200

static const char *const names[LEX_COUNT] = {
	[LEX_DRUG] = "drugs",         [LEX_IMAGING] = "imaging", [LEX_LAB] = "lab",
	[LEX_SENSITIVE] = "sensitive", [LEX_CLINICAL] = "clinical", [LEX_ORDER] = "order",
	[LEX_DOCUMENT] = "documents", [LEX_CONTEXT] = "context",
};

struct term_list {
	char **terms;      /* folded */
	unsigned *cats;    /* category index per term */
	size_t n, cap;
	GHashTable *seen;  /* folded term → 1, during loading */
};

struct lexicon_set {
	struct term_list lists[LEX_COUNT];
	char **cats; /* cats[0] = NULL (no category) */
	size_t ncats;
	hs_database_t *db;
	unsigned *id_lex, *id_term; /* pattern id → lexicon, term */
	hs_scratch_t *proto;
	pthread_mutex_t lock;
	hs_scratch_t **pool;
	size_t npool, cappool;
};

const char *lexicon_name(enum lexicon_id id)
{
	return (unsigned)id < LEX_COUNT ? names[id] : "?";
}

void lexicon_hits_free(struct lexicon_hits *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

size_t lexicon_size(const struct lexicon_set *ls, enum lexicon_id id)
{
	return ls && (unsigned)id < LEX_COUNT ? ls->lists[id].n : 0;
}

const char *lexicon_term(const struct lexicon_set *ls, enum lexicon_id id, unsigned term)
{
	if (ls == NULL || (unsigned)id >= LEX_COUNT || term >= ls->lists[id].n)
		return NULL;
	return ls->lists[id].terms[term];
}

const char *lexicon_category_name(const struct lexicon_set *ls, unsigned category)
{
	return ls && category > 0 && category < ls->ncats ? ls->cats[category] : NULL;
}

static unsigned category_index(struct lexicon_set *ls, const char *name)
{
	for (size_t i = 1; i < ls->ncats; i++)
		if (strcmp(ls->cats[i], name) == 0)
			return (unsigned)i;
	ls->cats = xrealloc(ls->cats, (ls->ncats + 1) * sizeof(*ls->cats));
	ls->cats[ls->ncats] = xstrdup(name);
	return (unsigned)ls->ncats++;
}

static void add_term(struct term_list *l, char *folded, unsigned cat)
{
	if (g_hash_table_contains(l->seen, folded)) {
		free(folded);
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->terms = xrealloc(l->terms, l->cap * sizeof(*l->terms));
		l->cats = xrealloc(l->cats, l->cap * sizeof(*l->cats));
	}
	l->terms[l->n] = folded;
	l->cats[l->n] = cat;
	l->n++;
	g_hash_table_add(l->seen, folded);
}

/* Read one lexicon file; a missing optional file is not an error. */
static int load_file(struct lexicon_set *ls, enum lexicon_id id, const char *path, int optional,
                     char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = -1;
	unsigned cat = 0;

	if (fp == NULL) {
		if (optional && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			snprintf(err, errlen, "%s:%d: NUL byte", path, lineno);
			goto out;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = str_trim(line);
		if (*s == '\0')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (close == NULL || close[1] != '\0') {
				snprintf(err, errlen, "%s:%d: expected \"[category]\"", path, lineno);
				goto out;
			}
			*close = '\0';
			char *name = str_trim(s + 1);
			if (*name == '\0') {
				snprintf(err, errlen, "%s:%d: empty category name", path, lineno);
				goto out;
			}
			cat = category_index(ls, name);
			continue;
		}
		if (!g_utf8_validate(s, -1, NULL)) {
			snprintf(err, errlen, "%s:%d: not UTF-8", path, lineno);
			goto out;
		}
		char *folded = text_fold_key(s);
		size_t fl = strlen(folded);
		int word = 0;
		for (size_t i = 0; i < fl; i++)
			word |= isalnum((unsigned char)folded[i]) != 0;
		if (fl == 0 || fl > TERM_MAX || !word || (folded[0] == '*')) {
			snprintf(err, errlen, "%s:%d: bad term (empty, over %d bytes, or no letter)", path,
			         lineno, TERM_MAX);
			free(folded);
			goto out;
		}
		add_term(&ls->lists[id], folded, cat);
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	rc = 0;
out:
	free(line);
	fclose(fp);
	return rc;
}

static int is_word(unsigned char c)
{
	return isalnum(c) || c == '_';
}

/* The Hyperscan expression of a folded term. */
static char *term_pattern(const char *t)
{
	struct strbuf sb;
	size_t len = strlen(t);
	int prefix = len > 0 && t[len - 1] == '*';

	if (prefix)
		len--;
	sb_init(&sb);
	if (len && is_word((unsigned char)t[0]))
		sb_puts(&sb, "\\b");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == ' ' || c == '-') {
			while (i + 1 < len && (t[i + 1] == ' ' || t[i + 1] == '-'))
				i++;
			sb_puts(&sb, "[ \\-]+");
		} else if (isalnum(c)) {
			sb_putc(&sb, (char)c);
		} else if (c >= 0x80) {
			sb_printf(&sb, "\\x%02x", c);
		} else {
			sb_putc(&sb, '\\');
			sb_putc(&sb, (char)c);
		}
	}
	if (prefix)
		sb_puts(&sb, "\\w*");
	else if (len && is_word((unsigned char)t[len - 1]))
		sb_puts(&sb, "\\b");
	return sb_steal(&sb);
}

static int compile(struct lexicon_set *ls, const char *dir, char *err, size_t errlen)
{
	size_t total = 0, k = 0;
	const char **exprs;
	unsigned *flags, *ids;
	char **owned;
	hs_compile_error_t *cerr = NULL;
	int rc = -1;

	for (int l = 0; l < LEX_COUNT; l++)
		total += ls->lists[l].n;
	if (total == 0)
		return 0; /* nothing to match: scans find nothing */
	exprs = xcalloc(total, sizeof(*exprs));
	owned = xcalloc(total, sizeof(*owned));
	flags = xcalloc(total, sizeof(*flags));
	ids = xcalloc(total, sizeof(*ids));
	ls->id_lex = xcalloc(total, sizeof(*ls->id_lex));
	ls->id_term = xcalloc(total, sizeof(*ls->id_term));
	for (int l = 0; l < LEX_COUNT; l++)
		for (size_t t = 0; t < ls->lists[l].n; t++, k++) {
			owned[k] = term_pattern(ls->lists[l].terms[t]);
			exprs[k] = owned[k];
			flags[k] = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH;
			ids[k] = (unsigned)k;
			ls->id_lex[k] = (unsigned)l;
			ls->id_term[k] = (unsigned)t;
		}
	if (hs_compile_multi(exprs, flags, ids, (unsigned)total, HS_MODE_BLOCK, NULL, &ls->db,
	                     &cerr) != HS_SUCCESS) {
		if (cerr && cerr->expression >= 0 && (size_t)cerr->expression < total) {
			size_t e = (size_t)cerr->expression;
			snprintf(err, errlen, "%s/%s.txt: term \"%s\": %s", dir, names[ls->id_lex[e]],
			         ls->lists[ls->id_lex[e]].terms[ls->id_term[e]], cerr->message);
		} else {
			snprintf(err, errlen, "%s: Hyperscan: %s", dir, cerr ? cerr->message : "compile error");
		}
		hs_free_compile_error(cerr);
		goto out;
	}
	if (hs_alloc_scratch(ls->db, &ls->proto) != HS_SUCCESS) {
		snprintf(err, errlen, "%s: Hyperscan: cannot allocate scratch space", dir);
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < total; i++)
		free(owned[i]);
	free(owned);
	free(exprs);
	free(flags);
	free(ids);
	return rc;
}

struct lexicon_set *lexicon_load(const char *dir, char *err, size_t errlen)
{
	struct lexicon_set *ls = xcalloc(1, sizeof(*ls));
	char path[4096];

	pthread_mutex_init(&ls->lock, NULL);
	ls->cats = xcalloc(1, sizeof(*ls->cats));
	ls->ncats = 1;
	for (int l = 0; l < LEX_COUNT; l++) {
		ls->lists[l].seen = g_hash_table_new(g_str_hash, g_str_equal);
		snprintf(path, sizeof(path), "%s/%s.txt", dir, names[l]);
		if (load_file(ls, l, path, 0, err, errlen) != 0)
			goto fail;
		snprintf(path, sizeof(path), "%s/%s.local.txt", dir, names[l]);
		if (load_file(ls, l, path, 1, err, errlen) != 0)
			goto fail;
	}
	for (int l = 0; l < LEX_COUNT; l++) {
		g_hash_table_destroy(ls->lists[l].seen);
		ls->lists[l].seen = NULL;
	}
	if (compile(ls, dir, err, errlen) != 0)
		goto fail;
	return ls;
fail:
	lexicon_free(ls);
	return NULL;
}

void lexicon_free(struct lexicon_set *ls)
{
	if (ls == NULL)
		return;
	for (int l = 0; l < LEX_COUNT; l++) {
		for (size_t t = 0; t < ls->lists[l].n; t++)
			free(ls->lists[l].terms[t]);
		free(ls->lists[l].terms);
		free(ls->lists[l].cats);
		if (ls->lists[l].seen)
			g_hash_table_destroy(ls->lists[l].seen);
	}
	for (size_t i = 1; i < ls->ncats; i++)
		free(ls->cats[i]);
	free(ls->cats);
	for (size_t i = 0; i < ls->npool; i++)
		hs_free_scratch(ls->pool[i]);
	free(ls->pool);
	if (ls->proto)
		hs_free_scratch(ls->proto);
	if (ls->db)
		hs_free_database(ls->db);
	free(ls->id_lex);
	free(ls->id_term);
	pthread_mutex_destroy(&ls->lock);
	free(ls);
}

struct scan_ctx {
	const struct lexicon_set *ls;
	struct lexicon_hits *hits;
};

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
	struct scan_ctx *sc = ctx;
	const struct lexicon_set *ls = sc->ls;
	struct lexicon_hits *h = sc->hits;
	unsigned l = ls->id_lex[id], t = ls->id_term[id];
	size_t tl = strlen(ls->lists[l].terms[t]);

	(void)from;
	(void)flags;
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 32;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	h->v[h->n].lex = (enum lexicon_id)l;
	h->v[h->n].term = t;
	h->v[h->n].category = ls->lists[l].cats[t];
	h->v[h->n].end = (size_t)to;
	h->v[h->n].start = (size_t)to > tl ? (size_t)to - tl : 0;
	h->n++;
	return 0;
}

static hs_scratch_t *scratch_get(struct lexicon_set *ls)
{
	hs_scratch_t *s = NULL;
	pthread_mutex_lock(&ls->lock);
	if (ls->npool > 0)
		s = ls->pool[--ls->npool];
	pthread_mutex_unlock(&ls->lock);
	if (s == NULL && hs_clone_scratch(ls->proto, &s) != HS_SUCCESS)
		return NULL;
	return s;
}

static void scratch_put(struct lexicon_set *ls, hs_scratch_t *s)
{
	pthread_mutex_lock(&ls->lock);
	if (ls->npool == ls->cappool) {
		ls->cappool = ls->cappool ? ls->cappool * 2 : 8;
		ls->pool = xrealloc(ls->pool, ls->cappool * sizeof(*ls->pool));
	}
	ls->pool[ls->npool++] = s;
	pthread_mutex_unlock(&ls->lock);
}

int lexicon_scan(const struct lexicon_set *cls, const char *text, size_t len,
                 struct lexicon_hits *hits)
{
	/* The scratch pool is the one mutable part of a loaded set (locked). */
	struct lexicon_set *ls = (struct lexicon_set *)cls;
	struct scan_ctx sc = {cls, hits};
	hs_scratch_t *s;
	hs_error_t e;

	if (ls == NULL || ls->db == NULL || len == 0)
		return 0;
	if (len > 0xffffffffu)
		len = 0xffffffffu;
	if ((s = scratch_get(ls)) == NULL)
		return -1;
	e = hs_scan(ls->db, text, (unsigned)len, 0, s, on_match, &sc);
	scratch_put(ls, s);
	return e == HS_SUCCESS ? 0 : -1;
}
