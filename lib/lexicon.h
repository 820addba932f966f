/*
 * lexicon.h — the vocabularies the policy reads (drug names, imaging, medical
 * biology, sensitive topics, clinical vocabulary, order words, document
 * types, patient-context words), loaded from plain text files that admins
 * can extend, compiled into one Hyperscan database and matched in one pass.
 *
 * File format (policies/lexicons/NAME.txt, UTF-8): one term per line; '#'
 * starts a comment; blank lines ignored; "[category]" starts a category
 * (used by sensitive.txt: mental-health, oncology, …); a trailing '*' makes
 * the term a word prefix ("chimioth*").  Terms are matched on whole words,
 * ignoring case and accents, with a space or a hyphen between the words of
 * a multi-word term ("beta-HCG" = "beta HCG"; not "beta - HCG": see
 * lexicon.c); a term shorter than 4 bytes (HB, Rx) only between ASCII
 * spaces or punctuation.  NAME.local.txt beside a file, when present, is loaded
 * too (site additions that survive package upgrades).  A term twice in one
 * category is kept once; at most 31 categories in all (content_class keeps
 * one bit per category).
 */
#ifndef CLINIMAIL_LEXICON_H
#define CLINIMAIL_LEXICON_H

#include <stddef.h>

enum lexicon_id {
	LEX_DRUG = 0,  /* drugs.txt: drug names (generic and brand) */
	LEX_IMAGING,   /* imaging.txt: imaging examinations and vocabulary */
	LEX_LAB,       /* lab.txt: medical-biology tests */
	LEX_SENSITIVE, /* sensitive.txt: sensitive topics, by [category] */
	LEX_CLINICAL,  /* clinical.txt: general clinical vocabulary */
	LEX_ORDER,     /* order.txt: words that make a text an order/requisition */
	LEX_DOCUMENT,  /* documents.txt: insurance forms, medical notes, referrals */
	LEX_CONTEXT,   /* context.txt: patient-context phrases ("la patiente", "votre patient") */
	LEX_COUNT
};

/* The file name (without .txt) of each lexicon, e.g. "drugs". */
const char *lexicon_name(enum lexicon_id id);

struct lexicon_hit {
	enum lexicon_id lex;
	unsigned term;     /* index of the term within its lexicon */
	unsigned category; /* index into lexicon_category_name(), 0 = none */
	size_t start, end; /* byte offsets in the scanned text */
};

struct lexicon_hits {
	struct lexicon_hit *v;
	size_t n, cap;
};
void lexicon_hits_free(struct lexicon_hits *h);

/* Compiled, immutable once loaded; safe to scan from many threads at once. */
struct lexicon_set;

/* Load every lexicon from dir.  On error returns NULL with "file:line: reason" in err. */
struct lexicon_set *lexicon_load(const char *dir, char *err, size_t errlen);
void lexicon_free(struct lexicon_set *ls);

/* Number of terms in one lexicon; the folded text of a term (for tests and stats). */
size_t lexicon_size(const struct lexicon_set *ls, enum lexicon_id id);
const char *lexicon_term(const struct lexicon_set *ls, enum lexicon_id id, unsigned term);
const char *lexicon_category_name(const struct lexicon_set *ls, unsigned category);

/*
 * Append every match in text (normalized, see normalize.h) to hits, in no
 * guaranteed order; overlapping terms ("glycémie" and "glycémie à jeun") are
 * both reported.  Thread-safe.  Returns 0, or -1 on an internal
 * (Hyperscan) error or a text longer than 4 GiB.
 */
int lexicon_scan(const struct lexicon_set *ls, const char *text, size_t len,
                 struct lexicon_hits *hits);

#endif
