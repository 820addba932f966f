/*
 * normalize.c — fold decoded UTF-8 text into the one form every detector
 * reads (see normalize.h).  One pass over the input: ASCII is copied with
 * white space collapsed; any other code point is validated (invalid bytes
 * become U+FFFD, as g_utf8_make_valid does), compatibility-decomposed
 * (g_unichar_fully_decompose, i.e. NFKD one character at a time: the
 * canonical reordering NFKD adds only moves combining marks, which are then
 * dropped anyway) and mapped (ligatures, quotes, dashes, spaces, zero-width
 * and other format characters).  Results for U+0080..U+FFFF are computed
 * once into an immutable table, so common text never calls into GLib.
 */
#include "autoconfig.h"
#include "normalize.h"
#include "util.h"

#include <glib.h>
#include <stdint.h>
#include <string.h>

/* What one code point becomes. */
enum fold_kind {
	FOLD_TEXT = 0, /* bytes in .s (possibly empty: removed) */
	FOLD_SPACE,    /* white space: joins the current run of white space */
};

/* Longest folded form of one code point: 18 chars of up to 4 bytes. */
#define FOLD_MAX (G_UNICHAR_MAX_DECOMPOSITION_LENGTH * 4 * 2)

struct fold {
	unsigned char kind;
	unsigned char len;
	char s[FOLD_MAX];
};

/*
 * Characters NFKD leaves alone that must still be folded.  Returns the ASCII
 * replacement, "" to remove, or NULL when the character is not special.
 */
static const char *fold_special(gunichar c)
{
	switch (c) {
	case 0x0152: /* Œ */
		return "OE";
	case 0x0153: /* œ */
		return "oe";
	case 0x00C6: /* Æ */
		return "AE";
	case 0x00E6: /* æ */
		return "ae";
	case 0x00DF: /* ß */
	case 0x1E9E: /* ẞ */
		return "ss";
	case 0x00D8: /* Ø */
		return "O";
	case 0x00F8: /* ø */
		return "o";
	case 0x0141: /* Ł */
		return "L";
	case 0x0142: /* ł */
		return "l";
	case 0x0110: /* Đ */
		return "D";
	case 0x0111: /* đ */
		return "d";
	case 0x2018: /* ‘ */
	case 0x2019: /* ’ */
	case 0x201A: /* ‚ */
	case 0x201B: /* ‛ */
	case 0x2032: /* ′ */
	case 0x2035: /* ‵ */
	case 0x02BC: /* ʼ modifier apostrophe */
	case 0x02B9: /* ʹ */
	case 0x00B4: /* ´ (NFKD gives space + mark) */
	case 0x0060: /* ` */
		return "'";
	case 0x201C: /* “ */
	case 0x201D: /* ” */
	case 0x201E: /* „ */
	case 0x201F: /* ‟ */
	case 0x00AB: /* « */
	case 0x00BB: /* » */
	case 0x2039: /* ‹ */
	case 0x203A: /* › */
	case 0x2033: /* ″ */
		return "\"";
	case 0x2010: /* hyphen */
	case 0x2011: /* non-breaking hyphen */
	case 0x2012: /* figure dash */
	case 0x2013: /* en dash */
	case 0x2014: /* em dash */
	case 0x2015: /* horizontal bar */
	case 0x2043: /* hyphen bullet */
	case 0x2212: /* minus sign */
	case 0x2E3A: /* two-em dash */
	case 0x2E3B: /* three-em dash */
	case 0x2E17: /* double oblique hyphen */
		return "-";
	case 0x00AD: /* soft hyphen */
		return "";
	default:
		return NULL;
	}
}

/* White space inside a decomposition ("¨" is space + mark; U+FDFA has words). */
static void fold_space(struct fold *f)
{
	if (f->len == 0)
		f->kind = FOLD_SPACE;
	else if (f->s[f->len - 1] != ' ')
		f->s[f->len++] = ' ';
}

/* Fold one code point that has already been decomposed. */
static void fold_append_atom(struct fold *f, gunichar c)
{
	const char *sp;
	GUnicodeType t;

	if (g_unichar_ismark(c))
		return;
	if (c < 0x80 && c != 0x60) {
		if (c <= 0x20 || c == 0x7f) {
			fold_space(f);
			return;
		}
		f->s[f->len++] = (char)c;
		return;
	}
	sp = fold_special(c);
	if (sp) {
		size_t n = strlen(sp);
		memcpy(f->s + f->len, sp, n);
		f->len += (unsigned char)n;
		return;
	}
	t = g_unichar_type(c);
	switch (t) {
	case G_UNICODE_CONTROL:
	case G_UNICODE_SPACE_SEPARATOR:
	case G_UNICODE_LINE_SEPARATOR:
	case G_UNICODE_PARAGRAPH_SEPARATOR:
		fold_space(f);
		return;
	case G_UNICODE_FORMAT: /* zero-width (joiners, ZWSP, WJ, BOM), bidi controls, tags */
		return;
	default:
		break;
	}
	f->len += (unsigned char)g_unichar_to_utf8(c, f->s + f->len);
}

static void fold_compute(gunichar c, struct fold *f)
{
	gunichar d[G_UNICHAR_MAX_DECOMPOSITION_LENGTH];
	const char *sp;
	gsize n;

	memset(f, 0, sizeof(*f));
	/* Specials first: ´ would otherwise decompose into a space and a mark. */
	sp = fold_special(c);
	if (sp) {
		f->len = (unsigned char)strlen(sp);
		memcpy(f->s, sp, f->len);
		return;
	}
	n = g_unichar_fully_decompose(c, TRUE, d, G_N_ELEMENTS(d));
	if (n > G_N_ELEMENTS(d))
		n = G_N_ELEMENTS(d);
	for (gsize i = 0; i < n; i++)
		fold_append_atom(f, d[i]);
	while (f->len > 0 && f->s[f->len - 1] == ' ')
		f->len--;
	/* A decomposition that is only white space (NBSP, U+2007 …) is a space. */
	if (f->len > 0)
		f->kind = FOLD_TEXT;
}

/*
 * Immutable table for the Basic Multilingual Plane, built once: for each
 * code point, whether it is kept as is, is white space, or becomes the bytes
 * at pool[off], len.
 */
enum { TAB_SAME = 0, TAB_SPACE, TAB_TEXT };
struct fold_entry {
	uint32_t off;
	uint8_t len;
	uint8_t kind;
};
struct fold_table {
	struct fold_entry e[0x10000];
	char *pool;
};

static gpointer fold_table_build(gpointer unused)
{
	struct fold_table *t = xcalloc(1, sizeof(*t));
	struct strbuf pool;
	struct fold f;
	char self[8];

	(void)unused;
	sb_init(&pool);
	for (gunichar c = 0x80; c < 0x10000; c++) {
		if (c >= 0xD800 && c <= 0xDFFF)
			continue;
		fold_compute(c, &f);
		if (f.kind == FOLD_SPACE) {
			t->e[c].kind = TAB_SPACE;
			continue;
		}
		int n = g_unichar_to_utf8(c, self);
		if (f.len == (unsigned)n && memcmp(f.s, self, (size_t)n) == 0)
			continue; /* TAB_SAME */
		t->e[c].kind = TAB_TEXT;
		t->e[c].off = (uint32_t)pool.len;
		t->e[c].len = f.len;
		sb_append(&pool, f.s, f.len);
	}
	t->pool = sb_steal(&pool);
	return t;
}

static const struct fold_table *fold_table_get(void)
{
	static GOnce once = G_ONCE_INIT;
	return g_once(&once, fold_table_build, NULL);
}

/* Byte classes for the ASCII fast path. */
enum { AC_TEXT = 0, AC_SPACE, AC_BACKTICK, AC_HIGH };
#define AC_SPACES16                                                                                \
	AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE,  \
	    AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE, AC_SPACE
#define AC_HIGH16                                                                                  \
	AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH,  \
	    AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH, AC_HIGH
static const unsigned char ascii_class[256] = {
    AC_SPACES16,        AC_SPACES16, [' '] = AC_SPACE, ['`'] = AC_BACKTICK, [0x7f] = AC_SPACE,
    [0x80] = AC_HIGH16, AC_HIGH16,   AC_HIGH16,        AC_HIGH16,           AC_HIGH16,
    AC_HIGH16,          AC_HIGH16,   AC_HIGH16,
};

char *text_normalize(const char *utf8, size_t len, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)utf8;
	const unsigned char *end = utf8 ? p + len : p;
	const struct fold_table *tab = NULL;
	size_t cap = (utf8 ? len : 0) + 1, o = 0;
	char *out = xmalloc(cap);
	int pending = 0; /* a run of white space waits to be written as one ' ' */
	struct fold tmp;

	/*
	 * Invariant: cap >= o + pending + (end - p) + 1.  ASCII writes at most
	 * one byte per byte read (a pending space was paid for by the white
	 * space read earlier), so only expanding folds need a check.
	 */
	while (p < end) {
		unsigned char b = *p;
		if (ascii_class[b] == AC_TEXT) {
			/* The common case: a run of printable ASCII. */
			if (pending && o > 0)
				out[o++] = ' ';
			pending = 0;
			/* Single spaces between words stay inside the run. */
			do {
				out[o++] = (char)b;
				if (++p == end)
					break;
				b = *p;
				if (b == ' ') {
					if (p + 1 == end || ascii_class[p[1]] != AC_TEXT)
						break;
					out[o++] = ' ';
					b = *++p;
				}
			} while (ascii_class[b] == AC_TEXT);
			continue;
		}
		if (ascii_class[b] == AC_SPACE) {
			pending = 1;
			p++;
			continue;
		}
		if (ascii_class[b] == AC_BACKTICK) {
			if (pending && o > 0)
				out[o++] = ' ';
			pending = 0;
			out[o++] = '\'';
			p++;
			continue;
		}

		gunichar c;
		const unsigned char *start = p;
		const char *s;
		size_t n;
		if (b >= 0xC2 && b <= 0xDF && end - p >= 2 && (p[1] & 0xC0) == 0x80) {
			c = ((gunichar)(b & 0x1F) << 6) | (p[1] & 0x3F); /* Latin-1 range, inline */
			p += 2;
		} else {
			c = g_utf8_get_char_validated((const char *)p, (gssize)(end - p));
			if (c == (gunichar)-1 || c == (gunichar)-2) {
				c = 0xFFFD; /* as g_utf8_make_valid: one replacement per bad byte */
				p++;
			} else {
				p += g_utf8_skip[b];
			}
		}
		if (!tab)
			tab = fold_table_get();
		if (c < 0x10000) {
			const struct fold_entry *e = &tab->e[c];
			if (e->kind == TAB_SPACE) {
				pending = 1;
				continue;
			}
			if (e->kind == TAB_SAME) {
				if (c == 0xFFFD && p - start == 1) {
					s = "\xEF\xBF\xBD";
					n = 3;
				} else {
					s = (const char *)start;
					n = (size_t)(p - start);
				}
			} else {
				s = tab->pool + e->off;
				n = e->len;
			}
		} else {
			fold_compute(c, &tmp);
			if (tmp.kind == FOLD_SPACE) {
				pending = 1;
				continue;
			}
			s = tmp.s;
			n = tmp.len;
		}
		if (n == 0)
			continue; /* removed: zero-width, soft hyphen, lone mark … */
		size_t need = o + 1 + n + (size_t)(end - p) + 1;
		if (cap < need) {
			cap = need + need / 2;
			out = xrealloc(out, cap);
		}
		if (pending && o > 0)
			out[o++] = ' ';
		pending = 0;
		if (n <= 4) {
			for (size_t i = 0; i < n; i++)
				out[o + i] = s[i];
		} else {
			memcpy(out + o, s, n);
		}
		o += n;
	}
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return out;
}

char *text_fold_key(const char *utf8)
{
	size_t n;
	char *s = text_normalize(utf8, utf8 ? strlen(utf8) : 0, &n);

	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
	return s;
}
