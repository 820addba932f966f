/*
 * mime_text.c — read one message the way its recipients would: GMime parses
 * the MIME tree; every text part is decoded (transfer encoding, charset,
 * format=flowed), HTML is turned into text with libxml2, PDF attachments give
 * their text layer through poppler-glib (with a SHA-256-keyed cache), and
 * message/rfc822 parts are read recursively.  Every text segment is
 * normalized (normalize.h).  Broken MIME never hides content: what GMime
 * cannot structure is read as raw text and MC_MALFORMED is set.
 */
#include "autoconfig.h"
#include "mime_text.h"
#include "normalize.h"
#include "util.h"

#include <errno.h>
#include <iconv.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>
#include <libxml/HTMLparser.h>
#include <libxml/encoding.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <poppler.h>

/* ---------------------------------------------------------------------- */
/* Small helpers */

static void sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
		msg_fatal("mime_text: SHA-256 failed");
}

static int has_ext_ci(const char *name, const char *const *exts)
{
	if (!name)
		return 0;
	for (; *exts; exts++)
		if (str_has_suffix_ci(name, *exts))
			return 1;
	return 0;
}

static const char *const image_exts[] = {".jpg",  ".jpeg", ".jpe", ".png",  ".gif",
                                         ".tif",  ".tiff", ".bmp", ".heic", ".heif",
                                         ".webp", ".jfif", NULL};
static const char *const pdf_exts[] = {".pdf", NULL};
static const char *const eml_exts[] = {".eml", NULL};
static const char *const text_exts[] = {".txt", ".csv", ".tsv", ".htm", ".html", ".xml", NULL};
static const char *const html_exts[] = {".htm", ".html", NULL};

static int magic_is_image(const unsigned char *p, size_t n)
{
	if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
		return 1; /* JPEG */
	if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return 1;
	if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
		return 1;
	if (n >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0))
		return 1; /* TIFF */
	if (n >= 2 && p[0] == 'B' && p[1] == 'M' && n >= 26)
		return 1; /* BMP */
	if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
		return 1;
	if (n >= 12 && memcmp(p + 4, "ftyp", 4) == 0 &&
	    (memcmp(p + 8, "heic", 4) == 0 || memcmp(p + 8, "heix", 4) == 0 ||
	     memcmp(p + 8, "mif1", 4) == 0))
		return 1; /* HEIF (phone photos) */
	return 0;
}

/* The PDF header may sit anywhere in the first 1024 bytes. */
static int magic_is_pdf(const unsigned char *p, size_t n)
{
	if (n > 1024)
		n = 1024;
	return n >= 5 && memmem(p, n, "%PDF-", 5) != NULL;
}

/* ---------------------------------------------------------------------- */
/* Charsets: anything to UTF-8, never dropping a byte */

static const uint16_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static void put_cp1252(struct strbuf *out, unsigned char b)
{
	char u[8];
	gunichar c = b >= 0x80 && b < 0xA0 ? cp1252_high[b - 0x80] : b;

	if (c == 0)
		c = ' ';
	sb_append(out, u, (size_t)g_unichar_to_utf8(c, u));
}

/* Valid UTF-8 is kept; each byte that is not is read as windows-1252. */
static void utf8_or_cp1252(const char *p, size_t n, struct strbuf *out)
{
	while (n > 0) {
		const char *bad;
		if (g_utf8_validate_len(p, n, &bad)) {
			sb_append(out, p, n);
			return;
		}
		size_t good = (size_t)(bad - p);
		sb_append(out, p, good);
		put_cp1252(out, (unsigned char)p[good]);
		p += good + 1;
		n -= good + 1;
	}
}

static int charset_is(const char *cs, const char *const *names)
{
	for (; *names; names++)
		if (g_ascii_strcasecmp(cs, *names) == 0)
			return 1;
	return 0;
}

static const char *const cs_utf8ish[] = {
    "utf-8",     "utf8",    "us-ascii",       "ascii", "ansi_x3.4-1968", "unknown", "unknown-8bit",
    "x-unknown", "default", "x-user-defined", NULL};
static const char *const cs_latin1[] = {
    "iso-8859-1", "iso8859-1",    "iso_8859-1", "latin1",   "latin-1", "l1",       "cp819",
    "ibm819",     "windows-1252", "cp1252",     "x-cp1252", "cp-1252", "win-1252", NULL};

static void iconv_to_utf8(iconv_t cd, const char *p, size_t n, struct strbuf *out)
{
	char buf[4096];
	char *inbuf = (char *)p;
	size_t inleft = n;

	while (inleft > 0) {
		char *op = buf;
		size_t oleft = sizeof(buf);
		size_t r = iconv(cd, &inbuf, &inleft, &op, &oleft);
		sb_append(out, buf, (size_t)(op - buf));
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		/* EILSEQ: one bad byte; EINVAL: incomplete sequence at the end. */
		sb_append(out, "\xEF\xBF\xBD", 3);
		if (errno != EILSEQ)
			break;
		inbuf++;
		inleft--;
	}
	for (;;) {
		char *op = buf;
		size_t oleft = sizeof(buf);
		size_t r = iconv(cd, NULL, NULL, &op, &oleft);
		sb_append(out, buf, (size_t)(op - buf));
		if (r != (size_t)-1 || errno != E2BIG)
			break;
	}
}

/* Convert decoded bytes in charset cs (may be NULL) to UTF-8 without NULs. */
static void to_utf8(const char *cs, const char *p, size_t n, struct strbuf *out)
{
	size_t start = out->len;

	if (!cs || !*cs || charset_is(cs, cs_utf8ish)) {
		utf8_or_cp1252(p, n, out);
	} else if (charset_is(cs, cs_latin1)) {
		/* Outlook labels windows-1252 as ISO-8859-1: read the superset. */
		for (size_t i = 0; i < n; i++) {
			unsigned char b = (unsigned char)p[i];
			if (b < 0x80 && b != 0)
				sb_putc(out, (char)b);
			else
				put_cp1252(out, b);
		}
	} else {
		iconv_t cd = g_mime_iconv_open("UTF-8", cs);
		if (cd == (iconv_t)-1) {
			utf8_or_cp1252(p, n, out); /* unknown charset: never drop the text */
		} else {
			iconv_to_utf8(cd, p, n, out);
			g_mime_iconv_close(cd);
		}
	}
	if (!out->data)
		return;
	for (char *q = out->data + start, *e = out->data + out->len;
	     (q = memchr(q, '\0', (size_t)(e - q))) != NULL; q++)
		*q = ' ';
}

/* ---------------------------------------------------------------------- */
/* format=flowed (RFC 3676) */

static void unflow(const char *s, size_t n, int delsp, struct strbuf *out)
{
	const char *end = s + n;
	int prev_flowed = 0, prev_q = -1, first = 1;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;
		if (le > s && le[-1] == '\r')
			le--;
		int q = 0;
		while (s + q < le && s[q] == '>')
			q++;
		const char *body = s + q;
		if (body < le && *body == ' ')
			body++; /* space-stuffing */
		size_t blen = (size_t)(le - body);
		int sig = blen == 3 && memcmp(body, "-- ", 3) == 0;
		int flowed = !sig && blen > 0 && body[blen - 1] == ' ';

		if (!(prev_flowed && q == prev_q)) {
			if (!first)
				sb_putc(out, '\n');
			for (int i = 0; i < q; i++)
				sb_putc(out, '>');
			if (q)
				sb_putc(out, ' ');
		}
		sb_append(out, body, flowed && delsp ? blen - 1 : blen);
		first = 0;
		prev_flowed = flowed;
		prev_q = q;
		s = next;
	}
}

/* ---------------------------------------------------------------------- */
/* HTML to text (libxml2) */

enum tag_kind { TAG_BLOCK = 0, TAG_INLINE, TAG_SKIP };

/*
 * Inline elements join their text to the neighbours' ("<b>Télé</b>consultation");
 * every other element is a break; script, style and head are not shown.
 * libxml2's HTML parser gives element names in lower case.
 */
static enum tag_kind tag_kind(const char *n)
{
	static const char *const inl[] = {
	    "a",    "abbr",  "acronym", "b",     "bdi",  "bdo",    "big",    "blink", "cite",
	    "code", "data",  "del",     "dfn",   "em",   "font",   "i",      "img",   "ins",
	    "kbd",  "label", "mark",    "nobr",  "o:p",  "q",      "rb",     "rp",    "rt",
	    "ruby", "s",     "samp",    "small", "span", "strike", "strong", "sub",   "sup",
	    "time", "tt",    "u",       "var",   "wbr",  NULL};
	static const char *const skip[] = {"head", "script", "style", "template", NULL};

	if (n[0] == 'p' || (n[0] == 'd' && n[1] == 'i') ||
	    (n[0] == 't' && (n[1] == 'd' || n[1] == 'r')))
		return TAG_BLOCK; /* p, div, td, tr: the bulk of mail HTML */
	for (const char *const *l = skip; *l; l++)
		if (**l == n[0] && strcmp(*l, n) == 0)
			return TAG_SKIP;
	for (const char *const *l = inl; *l; l++)
		if (**l == n[0] && strcmp(*l, n) == 0)
			return TAG_INLINE;
	return TAG_BLOCK;
}

struct html_sax {
	struct strbuf *out;
	int skip; /* inside script/style/head */
};

static void sax_start(void *ud, const xmlChar *name, const xmlChar **atts)
{
	struct html_sax *h = ud;
	enum tag_kind k = tag_kind((const char *)name);

	(void)atts;
	if (k == TAG_SKIP)
		h->skip++;
	else if (k == TAG_BLOCK && !h->skip)
		sb_putc(h->out, ' ');
}

static void sax_end(void *ud, const xmlChar *name)
{
	struct html_sax *h = ud;
	enum tag_kind k = tag_kind((const char *)name);

	if (k == TAG_SKIP) {
		if (h->skip > 0)
			h->skip--;
	} else if (k == TAG_BLOCK && !h->skip) {
		sb_putc(h->out, ' ');
	}
}

static void sax_chars(void *ud, const xmlChar *ch, int len)
{
	struct html_sax *h = ud;

	if (!h->skip && len > 0)
		sb_append(h->out, (const char *)ch, (size_t)len);
}

static void sax_ignore_cdata(void *ud, const xmlChar *ch, int len)
{
	(void)ud;
	(void)ch;
	(void)len;
}

static void sax_ignore_error(void *ud, xmlErrorPtr e)
{
	(void)ud;
	(void)e;
}

/*
 * HTML to text with libxml2's HTML parser in SAX mode (no tree: about
 * twice as fast, and no recursion on hostile nesting).  The input is
 * already UTF-8; HTML_PARSE_IGNORE_ENC keeps a <meta charset> from
 * re-decoding it.
 */
static void html_to_text(const char *utf8, size_t len, struct strbuf *out)
{
	const int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
	                 HTML_PARSE_NONET | HTML_PARSE_IGNORE_ENC | HTML_PARSE_NOIMPLIED;
	struct html_sax h = {out, 0};
	htmlParserCtxtPtr ctxt;

	if (len == 0)
		return;
	if (len > INT_MAX)
		len = INT_MAX;
	ctxt = htmlCreateMemoryParserCtxt(utf8, (int)len);
	if (!ctxt) {
		sb_append(out, utf8, len); /* tags and all beat nothing */
		return;
	}
	htmlCtxtUseOptions(ctxt, opts);
	xmlSwitchEncoding(ctxt, XML_CHAR_ENCODING_UTF8);
	memset(ctxt->sax, 0, sizeof(*ctxt->sax));
	ctxt->sax->initialized = XML_SAX2_MAGIC;
	ctxt->sax->startElement = sax_start;
	ctxt->sax->endElement = sax_end;
	ctxt->sax->characters = sax_chars;
	ctxt->sax->ignorableWhitespace = sax_chars;
	ctxt->sax->cdataBlock = sax_ignore_cdata; /* script and style bodies */
	ctxt->sax->serror = sax_ignore_error;
	ctxt->userData = &h;
	htmlParseDocument(ctxt);
	if (ctxt->myDoc)
		xmlFreeDoc(ctxt->myDoc);
	htmlFreeParserCtxt(ctxt);
}

void mime_text_to_utf8(const char *cs, const char *p, size_t n, struct strbuf *out)
{
	to_utf8(cs, p, n, out);
}

void mime_html_to_text(const char *utf8, size_t len, struct strbuf *out)
{
	html_to_text(utf8, len, out);
}

/* ---------------------------------------------------------------------- */
/* PDF text layer (poppler-glib) and its cache */

struct pdf_result {
	char *text; /* normalized */
	size_t len;
	unsigned flags; /* ATT_PDF_NO_TEXT | ATT_ENCRYPTED | ATT_UNREADABLE */
	int truncated;  /* more pages than max_pdf_pages */
};

struct pdf_entry {
	unsigned char key[32];
	size_t max_pages; /* the limit the text was read with */
	struct pdf_result r;
	GList link; /* in pdf_cache.lru, most recent first */
};

struct pdf_cache {
	GMutex mu;
	GHashTable *map; /* key (32 bytes in the entry) -> entry */
	GQueue lru;
	size_t max_entries;
	size_t bytes, max_bytes;
	unsigned long hits, misses;
};

/* Also bounded in bytes, so that a few huge text layers cannot pin memory. */
#define PDF_CACHE_MAX_BYTES (64u << 20)

static guint digest_hash(gconstpointer k)
{
	guint h;
	memcpy(&h, k, sizeof(h));
	return h;
}

static gboolean digest_equal(gconstpointer a, gconstpointer b)
{
	return memcmp(a, b, 32) == 0;
}

struct pdf_cache *pdf_cache_new(size_t max_entries)
{
	struct pdf_cache *c = xcalloc(1, sizeof(*c));

	g_mutex_init(&c->mu);
	c->map = g_hash_table_new(digest_hash, digest_equal);
	g_queue_init(&c->lru);
	c->max_entries = max_entries ? max_entries : 1;
	c->max_bytes = PDF_CACHE_MAX_BYTES;
	return c;
}

static void pdf_entry_free(struct pdf_entry *e)
{
	free(e->r.text);
	free(e);
}

void pdf_cache_free(struct pdf_cache *c)
{
	GList *l;

	if (!c)
		return;
	while ((l = g_queue_pop_head_link(&c->lru)) != NULL)
		pdf_entry_free(l->data);
	g_hash_table_destroy(c->map);
	g_mutex_clear(&c->mu);
	free(c);
}

void pdf_cache_stats(struct pdf_cache *c, unsigned long *hits, unsigned long *misses,
                     size_t *entries)
{
	g_mutex_lock(&c->mu);
	if (hits)
		*hits = c->hits;
	if (misses)
		*misses = c->misses;
	if (entries)
		*entries = g_hash_table_size(c->map);
	g_mutex_unlock(&c->mu);
}

static int pdf_cache_get(struct pdf_cache *c, const unsigned char key[32], size_t max_pages,
                         struct pdf_result *r)
{
	struct pdf_entry *e;
	int found = 0;

	g_mutex_lock(&c->mu);
	e = g_hash_table_lookup(c->map, key);
	if (e && e->max_pages == max_pages) {
		g_queue_unlink(&c->lru, &e->link);
		g_queue_push_head_link(&c->lru, &e->link);
		*r = e->r;
		r->text = xstrndup(e->r.text, e->r.len);
		c->hits++;
		found = 1;
	} else {
		c->misses++;
	}
	g_mutex_unlock(&c->mu);
	return found;
}

static void pdf_cache_remove_locked(struct pdf_cache *c, struct pdf_entry *e)
{
	g_hash_table_remove(c->map, e->key);
	g_queue_unlink(&c->lru, &e->link);
	c->bytes -= e->r.len;
	pdf_entry_free(e);
}

static void pdf_cache_put(struct pdf_cache *c, const unsigned char key[32], size_t max_pages,
                          const struct pdf_result *r)
{
	struct pdf_entry *e, *old;

	if (r->len > c->max_bytes / 4)
		return; /* one text that big would flush everything else */
	e = xcalloc(1, sizeof(*e));
	memcpy(e->key, key, 32);
	e->max_pages = max_pages;
	e->r = *r;
	e->r.text = xstrndup(r->text, r->len);
	e->link.data = e;
	g_mutex_lock(&c->mu);
	old = g_hash_table_lookup(c->map, key);
	if (old)
		pdf_cache_remove_locked(c, old);
	g_hash_table_insert(c->map, e->key, e);
	g_queue_push_head_link(&c->lru, &e->link);
	c->bytes += e->r.len;
	while (g_queue_get_length(&c->lru) > c->max_entries || c->bytes > c->max_bytes) {
		GList *tail = g_queue_peek_tail_link(&c->lru);
		if (!tail || tail->data == e)
			break;
		pdf_cache_remove_locked(c, tail->data);
	}
	g_mutex_unlock(&c->mu);
}

/*
 * A PDF counts as a scan when its text layer has fewer than this many
 * letters and digits per page read (a page number or a stamp is not a text
 * layer).
 */
#define PDF_MIN_ALNUM_PER_PAGE 16

/*
 * Text extraction time per PDF, checked between pages: a small PDF can hide
 * a content stream that inflates to gigabytes.  poppler-glib offers no way
 * to stop inside a page, so one page can still exceed it.
 */
#define PDF_TIME_BUDGET_US (2 * G_USEC_PER_SEC)

static void pdf_extract(const char *data, size_t len, size_t max_pages, struct pdf_result *r)
{
	GBytes *bytes = g_bytes_new_static(data, len);
	GError *err = NULL;
	PopplerDocument *doc;
	struct strbuf sb;
	int npages;
	size_t alnum = 0, nread;
	gint64 t0;

	memset(r, 0, sizeof(*r));
	doc = poppler_document_new_from_bytes(bytes, NULL, &err);
	g_bytes_unref(bytes);
	if (!doc) {
		if (err && err->domain == POPPLER_ERROR && err->code == POPPLER_ERROR_ENCRYPTED)
			r->flags = ATT_ENCRYPTED;
		else
			r->flags = ATT_UNREADABLE;
		g_clear_error(&err);
		r->text = xstrdup("");
		return;
	}
	npages = poppler_document_get_n_pages(doc);
	nread = npages < 0 ? 0 : (size_t)npages;
	if (nread > max_pages) {
		nread = max_pages;
		r->truncated = 1;
	}
	sb_init(&sb);
	t0 = g_get_monotonic_time();
	for (size_t i = 0; i < nread; i++) {
		if (i > 0 && g_get_monotonic_time() - t0 > PDF_TIME_BUDGET_US) {
			r->truncated = 1; /* a compression bomb: stop between pages */
			nread = i;
			break;
		}
		PopplerPage *page = poppler_document_get_page(doc, (int)i);
		if (!page)
			continue;
		char *t = poppler_page_get_text(page);
		if (t) {
			sb_puts(&sb, t);
			sb_putc(&sb, '\n');
			g_free(t);
		}
		g_object_unref(page);
	}
	g_object_unref(doc);
	r->text = text_normalize(sb.data ? sb.data : "", sb.len, &r->len);
	sb_free(&sb);
	for (size_t i = 0; i < r->len; i++) {
		unsigned char ch = (unsigned char)r->text[i];
		if ((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
		    ch >= 0xC0)
			alnum++;
	}
	if (alnum < PDF_MIN_ALNUM_PER_PAGE * (nread ? nread : 1))
		r->flags |= ATT_PDF_NO_TEXT;
}

/* ---------------------------------------------------------------------- */
/* The walk */

struct ctx {
	const struct extract_limits *lim;
	struct pdf_cache *cache;
	struct msg_content *mc;
	GMimeParserOptions *opts;
	size_t nparts;
	size_t text_total;
	size_t segcap, attcap;
	int stop; /* max_parts reached: walk no more */
	int text_full;
	int recovering; /* inside a subtree re-parsed after a missing boundary */
};

static void add_seg_norm(struct ctx *x, enum text_origin origin, int depth, char *norm, size_t n)
{
	struct msg_content *mc = x->mc;

	if (n == 0 || x->text_full) {
		if (n > 0)
			mc->flags |= MC_TEXT_TRUNCATED;
		free(norm);
		return;
	}
	if (x->text_total + n > x->lim->max_text) {
		size_t keep = x->lim->max_text - x->text_total;
		while (keep > 0 && ((unsigned char)norm[keep] & 0xC0) == 0x80)
			keep--; /* do not cut a UTF-8 sequence */
		n = keep;
		norm[n] = '\0';
		mc->flags |= MC_TEXT_TRUNCATED;
		x->text_full = 1;
		if (n == 0) {
			free(norm);
			return;
		}
	}
	if (mc->nsegs == x->segcap) {
		x->segcap = x->segcap ? 2 * x->segcap : 8;
		mc->segs = xrealloc(mc->segs, x->segcap * sizeof(*mc->segs));
	}
	mc->segs[mc->nsegs].origin = origin;
	mc->segs[mc->nsegs].depth = depth;
	mc->segs[mc->nsegs].text = norm;
	mc->segs[mc->nsegs].len = n;
	mc->nsegs++;
	x->text_total += n;
}

static void add_seg(struct ctx *x, enum text_origin origin, int depth, const char *utf8, size_t len)
{
	size_t n;

	if (x->text_full) {
		if (len > 0)
			x->mc->flags |= MC_TEXT_TRUNCATED;
		return;
	}
	char *norm = text_normalize(utf8, len, &n);
	add_seg_norm(x, origin, depth, norm, n);
}

static struct attachment *add_att(struct ctx *x, const char *ctype, const char *filename,
                                  const char *data, size_t size, int depth)
{
	struct msg_content *mc = x->mc;
	struct attachment *a;

	if (mc->natts == x->attcap) {
		x->attcap = x->attcap ? 2 * x->attcap : 4;
		mc->atts = xrealloc(mc->atts, x->attcap * sizeof(*mc->atts));
	}
	a = &mc->atts[mc->natts++];
	memset(a, 0, sizeof(*a));
	a->content_type = xstrdup(ctype);
	a->filename = filename ? xstrdup(filename) : NULL;
	a->size = size;
	a->depth = depth;
	sha256(data ? data : "", data ? size : 0, a->sha256);
	return a;
}

static enum text_origin body_origin(int rdepth, int attached)
{
	if (rdepth > 0)
		return TXT_FORWARDED;
	return attached ? TXT_ATTACHMENT : TXT_BODY;
}

/* "type/subtype", lower case; caller frees. */
static char *mime_type_lower(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	const char *t = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *s = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
	struct strbuf sb;

	sb_init(&sb);
	sb_printf(&sb, "%s/%s", t && *t ? t : "text", s && *s ? s : "plain");
	str_lower(sb.data);
	return sb_steal(&sb);
}

static const char *ct_param(GMimeObject *obj, const char *name)
{
	return g_mime_object_get_content_type_parameter(obj, name);
}

/* Bytes that may appear in base64 content (alphabet, padding, white space). */
static const unsigned char b64_alphabet[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
};

/* Decoded content of a leaf part; *raw_bad set when its base64 had foreign bytes. */
static GByteArray *part_decode(GMimePart *part, GMimeStream **keep, int *raw_bad,
                               struct strbuf *raw_copy)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeStream *mem = g_mime_stream_mem_new();

	*raw_bad = 0;
	if (dw) {
		GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(dw);
		if (enc == GMIME_CONTENT_ENCODING_BASE64) {
			GMimeStream *raw = g_mime_data_wrapper_get_stream(dw);
			char buf[4096];
			ssize_t r;
			if (raw && g_mime_stream_reset(raw) == 0) {
				unsigned char foreign = 0;
				while ((r = g_mime_stream_read(raw, buf, sizeof(buf))) > 0) {
					for (ssize_t i = 0; i < r; i++)
						foreign |=
						    (unsigned char)(b64_alphabet[(
						                        unsigned char)buf[i]] ^
						                    1);
					if (foreign)
						*raw_bad = 1;
					if (raw_copy)
						sb_append(raw_copy, buf, (size_t)r);
				}
				g_mime_stream_reset(raw);
			}
		}
		if (g_mime_data_wrapper_write_to_stream(dw, mem) < 0)
			*raw_bad = 1;
	}
	*keep = mem;
	return g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
}

static void walk(struct ctx *x, GMimeObject *obj, int nest, int rdepth, int in_related, int top);
static const char *guard_input(struct ctx *x, const char *msg, size_t *len, GByteArray **copy);

static void walk_message(struct ctx *x, GMimeMessage *m, int nest, int rdepth)
{
	const char *subj = g_mime_message_get_subject(m);
	GMimeObject *body;

	if (subj && *subj)
		add_seg(x, TXT_FORWARDED, rdepth, subj, strlen(subj));
	body = g_mime_message_get_mime_part(m);
	if (body)
		walk(x, body, nest, rdepth, 0, 0);
}

/* Parse bytes as a message (rfc822 that GMime kept encoded, .eml attachment). */
static void walk_message_bytes(struct ctx *x, const char *data, size_t len, int nest, int rdepth)
{
	GByteArray *copy;
	GMimeStream *s;

	data = guard_input(x, data, &len, &copy);
	s = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeParser *p = g_mime_parser_new_with_stream(s);
	GMimeMessage *m = g_mime_parser_construct_message(p, x->opts);

	if (m) {
		walk_message(x, m, nest, rdepth);
		g_object_unref(m);
	} else {
		x->mc->flags |= MC_MALFORMED;
		struct strbuf sb;
		sb_init(&sb);
		to_utf8(NULL, data, len, &sb);
		add_seg(x, TXT_FORWARDED, rdepth, sb.data ? sb.data : "", sb.len);
		sb_free(&sb);
	}
	g_object_unref(p);
	g_object_unref(s);
	if (copy)
		g_byte_array_unref(copy);
}

/* Parse bytes as one MIME entity (content of an opaque S/MIME signature, a recovered multipart). */
static void walk_entity_bytes(struct ctx *x, const char *data, size_t len, int nest, int rdepth)
{
	GByteArray *copy;
	GMimeStream *s;
	GMimeParser *p;
	GMimeObject *o;

	data = guard_input(x, data, &len, &copy);
	s = g_mime_stream_mem_new_with_buffer(data, len);
	if (copy)
		g_byte_array_unref(copy); /* the stream holds its own copy */
	p = g_mime_parser_new_with_stream(s);
	o = g_mime_parser_construct_part(p, x->opts);

	if (o) {
		walk(x, o, nest, rdepth, 0, 0);
		g_object_unref(o);
	}
	g_object_unref(p);
	g_object_unref(s);
}

/*
 * Opaque S/MIME signature (smime-type=signed-data): the signed entity is
 * inside the DER structure, readable without any key.  Returns 1 if read.
 */
static int walk_pkcs7_signed(struct ctx *x, const char *der, size_t len, int nest, int rdepth)
{
	const unsigned char *p = (const unsigned char *)der;
	PKCS7 *p7;
	int done = 0;

	if (len > LONG_MAX)
		return 0;
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	if (!p7)
		return 0;
	if (PKCS7_type_is_signed(p7) && p7->d.sign && p7->d.sign->contents &&
	    PKCS7_type_is_data(p7->d.sign->contents) && p7->d.sign->contents->d.data) {
		ASN1_OCTET_STRING *os = p7->d.sign->contents->d.data;
		walk_entity_bytes(x, (const char *)ASN1_STRING_get0_data(os),
		                  (size_t)ASN1_STRING_length(os), nest, rdepth);
		done = 1;
	}
	PKCS7_free(p7);
	return done;
}

/* Text of a text part: charset, flowed, HTML; then a segment. */
static void text_part(struct ctx *x, GMimeObject *obj, const char *mtype, const char *data,
                      size_t len, enum text_origin origin, int rdepth, int top)
{
	struct strbuf u, v;
	const char *fmt = ct_param(obj, "format");
	const char *delsp = ct_param(obj, "delsp");
	const char *text;
	size_t tlen;

	if (x->text_full) {
		if (len > 0)
			x->mc->flags |= MC_TEXT_TRUNCATED;
		return;
	}
	sb_init(&u);
	sb_init(&v);
	to_utf8(ct_param(obj, "charset"), data, len, &u);
	text = u.data ? u.data : "";
	tlen = u.len;
	if (strcmp(mtype, "text/plain") == 0 && fmt && g_ascii_strcasecmp(fmt, "flowed") == 0) {
		unflow(text, tlen, delsp && g_ascii_strcasecmp(delsp, "yes") == 0, &v);
		sb_free(&u);
		u = v;
		sb_init(&v);
		text = u.data ? u.data : "";
		tlen = u.len;
	}
	if (strcmp(mtype, "text/html") == 0 || strcmp(mtype, "application/xhtml+xml") == 0) {
		html_to_text(text, tlen, &v);
		text = v.data ? v.data : "";
		tlen = v.len;
	}
	if (top && origin == TXT_BODY && memmem(text, tlen, "-----BEGIN PGP MESSAGE-----", 27))
		x->mc->flags |= MC_ENCRYPTED; /* inline PGP */
	add_seg(x, origin, rdepth, text, tlen);
	sb_free(&u);
	sb_free(&v);
}

static void pdf_part(struct ctx *x, struct attachment *a, const char *data, size_t len, int rdepth)
{
	struct pdf_result r;
	size_t maxp = x->lim->max_pdf_pages;

	if (!x->cache || !pdf_cache_get(x->cache, a->sha256, maxp, &r)) {
		pdf_extract(data, len, maxp, &r);
		if (x->cache)
			pdf_cache_put(x->cache, a->sha256, maxp, &r);
	}
	a->flags |= r.flags;
	if (r.truncated)
		x->mc->flags |= MC_TEXT_TRUNCATED;
	if (r.len > 0)
		add_seg_norm(x, rdepth > 0 ? TXT_FORWARDED : TXT_ATTACHMENT, rdepth, r.text, r.len);
	else
		free(r.text);
}

static void leaf(struct ctx *x, GMimePart *part, int nest, int rdepth, int in_related, int top)
{
	GMimeObject *obj = GMIME_OBJECT(part);
	char *mtype = mime_type_lower(obj);
	const char *fname = g_mime_part_get_filename(part);
	GMimeContentDisposition *disp = g_mime_object_get_content_disposition(obj);
	int attached =
	    (disp && g_mime_content_disposition_is_attachment(disp)) || (fname && *fname);
	int is_text = strncmp(mtype, "text/", 5) == 0;
	int bad = 0;
	struct strbuf raw;
	GMimeStream *keep = NULL;
	GByteArray *ba;
	const char *data;
	size_t size;

	sb_init(&raw);
	ba = part_decode(part, &keep, &bad, is_text ? &raw : NULL);
	data = ba && ba->data ? (const char *)ba->data : "";
	size = ba ? ba->len : 0;
	if (bad)
		x->mc->flags |= MC_MALFORMED;

	if (is_text && !attached &&
	    (strcmp(mtype, "text/plain") == 0 || strcmp(mtype, "text/html") == 0)) {
		text_part(x, obj, mtype, data, size, body_origin(rdepth, 0), rdepth, top);
		if (bad) /* text labelled base64 that is not: read it as it is too */
			text_part(x, obj, "text/plain", raw.data ? raw.data : "", raw.len,
			          body_origin(rdepth, 0), rdepth, 0);
		goto out;
	}

	struct attachment *a = add_att(x, mtype, fname, data, size, rdepth);
	const unsigned char *u = (const unsigned char *)data;
	if (bad)
		a->flags |= ATT_UNREADABLE;

	if (is_text) {
		a->flags |= ATT_TEXT;
		text_part(x, obj, mtype, data, size, body_origin(rdepth, 1), rdepth, 0);
		if (bad)
			text_part(x, obj, "text/plain", raw.data ? raw.data : "", raw.len,
			          body_origin(rdepth, 1), rdepth, 0);
		goto out;
	}
	if (strcmp(mtype, "application/pkcs7-mime") == 0 ||
	    strcmp(mtype, "application/x-pkcs7-mime") == 0) {
		const char *st = ct_param(obj, "smime-type");
		if (!(st && g_ascii_strcasecmp(st, "signed-data") == 0 &&
		      nest < x->lim->max_depth &&
		      walk_pkcs7_signed(x, data, size, nest + 1, rdepth))) {
			a->flags |= ATT_ENCRYPTED;
			if (top)
				x->mc->flags |= MC_ENCRYPTED;
		}
		goto out;
	}
	if (strcmp(mtype, "application/pgp-encrypted") == 0 ||
	    strcmp(mtype, "application/pgp") == 0) {
		a->flags |= ATT_ENCRYPTED;
		if (top)
			x->mc->flags |= MC_ENCRYPTED;
		goto out;
	}
	/* PDF bytes are read as a PDF whatever the label says ("image/png", octet-stream). */
	int pdf_magic = magic_is_pdf(u, size);
	if (!pdf_magic && (strncmp(mtype, "image/", 6) == 0 || magic_is_image(u, size) ||
	                   has_ext_ci(fname, image_exts))) {
		a->flags |= ATT_IMAGE;
		if (in_related && g_mime_object_get_content_id(obj))
			a->flags |= ATT_INLINE_RELATED;
		goto out;
	}
	if (pdf_magic || strcmp(mtype, "application/pdf") == 0 ||
	    strcmp(mtype, "application/x-pdf") == 0 || has_ext_ci(fname, pdf_exts)) {
		a->flags |= ATT_PDF;
		if (bad && !pdf_magic)
			a->flags |= ATT_UNREADABLE;
		else
			pdf_part(x, a, data, size, rdepth);
		goto out;
	}
	/* Text under a generic label (application/octet-stream; name="notes.txt"). */
	if (has_ext_ci(fname, text_exts)) {
		int html = has_ext_ci(fname, html_exts);
		a->flags |= ATT_TEXT;
		text_part(x, obj, html ? "text/html" : "text/plain", data, size,
		          body_origin(rdepth, 1), rdepth, 0);
		goto out;
	}
	if (in_related && g_mime_object_get_content_id(obj))
		a->flags |= ATT_INLINE_RELATED;
	/* message/rfc822 that GMime kept opaque (encoded), or a .eml attachment. */
	if (strcmp(mtype, "message/rfc822") == 0 || strcmp(mtype, "message/global") == 0 ||
	    has_ext_ci(fname, eml_exts)) {
		if (nest >= x->lim->max_depth)
			x->mc->flags |= MC_TOO_DEEP;
		else
			walk_message_bytes(x, data, size, nest + 1, rdepth + 1);
		goto out;
	}
	if (strncmp(mtype, "message/", 8) == 0) { /* delivery-status and the like: text */
		a->flags |= ATT_TEXT;
		text_part(x, obj, "text/plain", data, size, body_origin(rdepth, 1), rdepth, 0);
	}
out:
	sb_free(&raw);
	if (keep)
		g_object_unref(keep);
	free(mtype);
}

/*
 * A multipart GMime could not split (no boundary, or nesting beyond GMime's
 * own bound) keeps everything in its prologue.  If a line there looks like
 * a delimiter ("--token"), parse the prologue again with that boundary, so
 * that encoded parts are decoded.  The raw prologue is read as text as well:
 * a guessed boundary could turn lines of text into part headers.
 */
static void recover_multipart(struct ctx *x, GMimeMultipart *mp, const char *mtype, int nest,
                              int rdepth)
{
	const char *pro = g_mime_multipart_get_prologue(mp);
	const char *epi = g_mime_multipart_get_epilogue(mp);

	x->mc->flags |= MC_MALFORMED;
	if (!pro || !*pro) {
		pro = epi;
		if (!pro || !*pro)
			return;
	}
	for (const char *l = pro; l && *l && !x->recovering && !x->stop;) {
		if (l[0] == '-' && l[1] == '-') {
			const char *b = l + 2, *e = b;
			while (*e && *e != '\n' && *e != '\r' && *e != ' ' && *e != '\t' &&
			       *e != '"')
				e++;
			if (e > b && e - b <= 200) {
				struct strbuf sb;
				sb_init(&sb);
				sb_printf(&sb, "Content-Type: %s; boundary=\"%.*s\"\n\n", mtype,
				          (int)(e - b), b);
				sb_puts(&sb, pro);
				x->recovering = 1;
				walk_entity_bytes(x, sb.data, sb.len, nest + 1, rdepth);
				x->recovering = 0;
				sb_free(&sb);
				break;
			}
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	add_seg(x, body_origin(rdepth, 0), rdepth, pro, strlen(pro));
}

static void walk(struct ctx *x, GMimeObject *obj, int nest, int rdepth, int in_related, int top)
{
	if (x->stop)
		return;
	if (x->nparts >= x->lim->max_parts) {
		x->mc->flags |= MC_TOO_MANY_PARTS;
		x->stop = 1;
		return;
	}
	x->nparts++;
	if (nest > x->lim->max_depth) {
		x->mc->flags |= MC_TOO_DEEP;
		return;
	}

	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		char *mtype = mime_type_lower(obj);
		int n = g_mime_multipart_get_count(mp);
		if (strcmp(mtype, "multipart/encrypted") == 0) {
			struct attachment *a = add_att(x, mtype, NULL, NULL, 0, rdepth);
			a->flags |= ATT_ENCRYPTED;
			if (top)
				x->mc->flags |= MC_ENCRYPTED;
		} else if (n == 0) {
			recover_multipart(x, mp, mtype, nest, rdepth);
		} else {
			int related = strcmp(mtype, "multipart/related") == 0;
			int signed_ = strcmp(mtype, "multipart/signed") == 0;
			for (int i = 0; i < n && !x->stop; i++)
				walk(x, g_mime_multipart_get_part(mp, i), nest + 1, rdepth, related,
				     top && signed_ && i == 0);
		}
		free(mtype);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m)
			walk_message(x, m, nest + 1, rdepth + 1);
	} else if (GMIME_IS_MESSAGE_PARTIAL(obj)) {
		char *mtype = mime_type_lower(obj);
		add_att(x, mtype, NULL, NULL, 0, rdepth);
		free(mtype);
	} else if (GMIME_IS_PART(obj)) {
		leaf(x, GMIME_PART(obj), nest, rdepth, in_related, top);
	}
}

/* ---------------------------------------------------------------------- */
/* Header fields */

static void parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user)
{
	struct ctx *x = user;

	(void)offset;
	(void)item;
	switch (code) {
	case GMIME_CRIT_NESTING_OVERFLOW:
		x->mc->flags |= MC_TOO_DEEP;
		break;
	case GMIME_WARN_MALFORMED_MULTIPART:
	case GMIME_WARN_TRUNCATED_MESSAGE:
	case GMIME_WARN_MALFORMED_MESSAGE:
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
	case GMIME_CRIT_CONFLICTING_HEADER:
	case GMIME_CRIT_CONFLICTING_PARAMETER:
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		x->mc->flags |= MC_MALFORMED;
		break;
	default:
		break;
	}
}

/* Mailboxes of a list, groups flattened, in order. */
static void collect_mailboxes(InternetAddressList *l, GPtrArray *out, int level)
{
	int n = l ? internet_address_list_length(l) : 0;

	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(l, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			g_ptr_array_add(out, ia);
		else if (INTERNET_ADDRESS_IS_GROUP(ia) && level < 4)
			collect_mailboxes(
			    internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out,
			    level + 1);
	}
}

static void header_fields(struct ctx *x, GMimeMessage *m)
{
	struct msg_content *mc = x->mc;
	GPtrArray *boxes = g_ptr_array_new();
	GHashTable *seen;
	const char *s;

	collect_mailboxes(g_mime_message_get_from(m), boxes, 0);
	mc->nfrom = boxes->len;
	if (boxes->len > 0) {
		InternetAddress *ia = boxes->pdata[0];
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		const char *name = internet_address_get_name(ia);
		mc->from_addr = addr ? addr_normalize(addr) : NULL;
		if (!mc->from_addr && addr && *addr) {
			mc->from_addr = xstrdup(addr);
			str_lower(mc->from_addr);
		}
		if (name && *name) {
			size_t n;
			mc->from_display = text_normalize(name, strlen(name), &n);
			if (n == 0) {
				free(mc->from_display);
				mc->from_display = NULL;
			}
		}
	}
	g_ptr_array_set_size(boxes, 0);
	collect_mailboxes(g_mime_message_get_to(m), boxes, 0);
	collect_mailboxes(g_mime_message_get_cc(m), boxes, 0);
	seen = g_hash_table_new(g_str_hash, g_str_equal);
	mc->to_cc = xcalloc(boxes->len + 1, sizeof(char *));
	for (guint i = 0; i < boxes->len; i++) {
		const char *addr =
		    internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(boxes->pdata[i]));
		char *a = addr ? addr_normalize(addr) : NULL;
		if (!a)
			continue;
		if (g_hash_table_contains(seen, a)) {
			free(a);
			continue;
		}
		mc->to_cc[mc->nto_cc++] = a;
		g_hash_table_add(seen, a);
	}
	g_hash_table_destroy(seen);
	g_ptr_array_free(boxes, TRUE);

	s = g_mime_message_get_message_id(m);
	if (s && *s)
		mc->message_id = xstrdup(s);
}

/* Offset of the body: after the first empty line (LF or CRLF), or len. */
static size_t body_offset(const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len;

	/* An empty first line: no header at all. */
	if (len >= 1 && msg[0] == '\n')
		return 1;
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (size_t)(p + 1 - msg);
		if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p + 2 - msg);
	}
	return len;
}

/*
 * Bound GMime's own memory before it parses.  GMime keeps every header
 * field as an object (~600 bytes each) and every address as another, so a
 * message made of millions of tiny header lines or of parts would cost
 * gigabytes.  One pass over the lines counts header fields, delimiter lines
 * ("--boundary": every MIME part needs one) and the size of address fields;
 * only when a bound is exceeded is a filtered copy made:
 *   - past limit_delims delimiter lines the message is cut (MC_TOO_MANY_PARTS);
 *   - header fields past limit_fields are dropped (MC_MALFORMED);
 *   - an address field (To, Cc, From …) longer than GUARD_ADDR_FIELD_MAX is
 *     cut after its last whole address (MC_MALFORMED).
 * A line following a delimiter is taken as a header line until an empty
 * line, as in a MIME part; body text is never dropped, only cut at the
 * delimiter bound.
 */
#define GUARD_ADDR_FIELD_MAX (64u << 10)

static int is_address_field(const char *p, size_t n)
{
	static const char *const names[] = {
	    "to",        "cc",        "bcc",        "from",        "sender",        "reply-to",
	    "resent-to", "resent-cc", "resent-bcc", "resent-from", "resent-sender", NULL};
	const char *colon = memchr(p, ':', n < 32 ? n : 32);
	size_t nl;

	if (!colon)
		return 0;
	nl = (size_t)(colon - p);
	while (nl > 0 && (p[nl - 1] == ' ' || p[nl - 1] == '\t'))
		nl--;
	for (const char *const *l = names; *l; l++)
		if (strlen(*l) == nl && g_ascii_strncasecmp(*l, p, nl) == 0)
			return 1;
	return 0;
}

struct guard {
	size_t limit_fields, limit_delims;
	unsigned flags; /* MC_* raised */
};

/* One pass; with out == NULL only checks.  Returns 1 when a bound was hit. */
static int guard_pass(struct guard *g, const char *msg, size_t len, GByteArray *out)
{
	const char *p = msg, *end = msg + len, *fstart = msg;
	size_t fields = 0, delims = 0, flen = 0;
	int in_hdr = 1, drop = 0, hit = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		size_t n = (size_t)(next - p);
		int blank = n == 1 || (n == 2 && p[0] == '\r' && nl);

		if (in_hdr && !(nl && blank)) {
			int cont = p[0] == ' ' || p[0] == '\t';
			if (!cont) {
				fields++;
				drop = 0;
				flen = 0;
				fstart = p;
				if (fields > g->limit_fields) {
					drop = 1;
					hit = 1;
					g->flags |= MC_MALFORMED;
				}
			}
			/* Only a field grown this long is looked at by name. */
			if (!drop && flen + n > GUARD_ADDR_FIELD_MAX &&
			    is_address_field(fstart, (size_t)(end - fstart))) {
				drop = 1;
				hit = 1;
				g->flags |= MC_MALFORMED;
				if (out && !cont) {
					/* One huge line: keep it up to its last whole address. */
					const char *comma = p + GUARD_ADDR_FIELD_MAX;
					while (comma > p && *comma != ',')
						comma--;
					if (*comma == ',') {
						g_byte_array_append(out, (const guint8 *)p,
						                    (guint)(comma - p));
						g_byte_array_append(out, (const guint8 *)"\n", 1);
					}
				}
			}
			flen += n;
			if (out && !drop)
				g_byte_array_append(out, (const guint8 *)p, (guint)n);
			p = next;
			continue;
		}
		if (in_hdr) {
			in_hdr = 0; /* the empty line that ends a header */
		} else if (n >= 2 && p[0] == '-' && p[1] == '-') {
			if (++delims > g->limit_delims) {
				hit = 1;
				g->flags |= MC_TOO_MANY_PARTS;
				break;
			}
			in_hdr = 1;
			drop = 0;
		}
		if (out)
			g_byte_array_append(out, (const guint8 *)p, (guint)n);
		p = next;
	}
	return hit;
}

/*
 * Returns the bytes GMime should parse: msg itself, or a filtered copy put
 * in *copy (caller frees with g_byte_array_unref).
 */
static const char *guard_input(struct ctx *x, const char *msg, size_t *len, GByteArray **copy)
{
	size_t mp = x->lim->max_parts;
	struct guard g;

	g.limit_delims = mp > SIZE_MAX / 4 - 64 ? SIZE_MAX : 4 * mp + 64;
	g.limit_fields = mp > SIZE_MAX / 20 - 1000 ? SIZE_MAX : 20 * mp + 1000;
	g.flags = 0;
	*copy = NULL;
	if (*len > G_MAXUINT || !guard_pass(&g, msg, *len, NULL))
		return msg;
	*copy = g_byte_array_sized_new((guint)*len);
	g.flags = 0;
	guard_pass(&g, msg, *len, *copy);
	x->mc->flags |= g.flags;
	*len = (*copy)->len;
	return (const char *)(*copy)->data;
}

/* ---------------------------------------------------------------------- */
/* Public API */

void extract_limits_default(struct extract_limits *lim)
{
	lim->max_parts = 1000;
	lim->max_depth = 20;
	lim->max_text = 16u << 20;
	lim->max_pdf_pages = 200;
}

void msg_content_free(struct msg_content *mc)
{
	if (!mc)
		return;
	for (size_t i = 0; i < mc->nsegs; i++)
		free(mc->segs[i].text);
	free(mc->segs);
	for (size_t i = 0; i < mc->natts; i++) {
		free(mc->atts[i].content_type);
		free(mc->atts[i].filename);
	}
	free(mc->atts);
	free(mc->subject);
	free(mc->from_addr);
	free(mc->from_display);
	for (size_t i = 0; i < mc->nto_cc; i++)
		free(mc->to_cc[i]);
	free(mc->to_cc);
	free(mc->message_id);
	free(mc);
}

int msg_content_extract(const char *msg, size_t len, const struct extract_limits *lim,
                        struct pdf_cache *cache, struct msg_content **out, char *err, size_t errlen)
{
	static const char *fallback[] = {"UTF-8", "windows-1252", NULL};
	struct extract_limits dflt;
	struct msg_content *mc;
	struct ctx x;
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *m;
	size_t boff, plen;
	const char *pmsg;
	GByteArray *copy;

	if (!out || (!msg && len > 0)) {
		if (err && errlen)
			snprintf(err, errlen, "msg_content_extract: invalid arguments");
		return -1;
	}
	*out = NULL;
	if (!msg)
		msg = "";
	if (!lim) {
		extract_limits_default(&dflt);
		lim = &dflt;
	}
	mc = xcalloc(1, sizeof(*mc));
	memset(&x, 0, sizeof(x));
	x.lim = lim;
	x.cache = cache;
	x.mc = mc;

	boff = body_offset(msg, len);
	sha256(msg + boff, len - boff, mc->body_sha256);

	plen = len;
	pmsg = guard_input(&x, msg, &plen, &copy);

	x.opts = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(x.opts, fallback);
	g_mime_parser_options_set_warning_callback(x.opts, parser_warning, &x);
	stream = g_mime_stream_mem_new_with_buffer(pmsg, plen);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	m = g_mime_parser_construct_message(parser, x.opts);

	if (m) {
		const char *subj = g_mime_message_get_subject(m);
		GMimeObject *body = g_mime_message_get_mime_part(m);
		size_t n = 0;
		mc->subject = text_normalize(subj ? subj : "", subj ? strlen(subj) : 0, &n);
		if (n > 0)
			add_seg(&x, TXT_SUBJECT, 0, mc->subject, n);
		header_fields(&x, m);
		if (body)
			walk(&x, body, 0, 0, 0, 1);
		else if ((boff = body_offset(pmsg, plen)) < plen) {
			/* GMime found no body entity: read the bytes as text. */
			struct strbuf sb;
			mc->flags |= MC_MALFORMED;
			sb_init(&sb);
			to_utf8(NULL, pmsg + boff, plen - boff, &sb);
			add_seg(&x, TXT_BODY, 0, sb.data ? sb.data : "", sb.len);
			sb_free(&sb);
		}
		g_object_unref(m);
	} else {
		/* Not even a header: the raw bytes are the text. */
		struct strbuf sb;
		mc->flags |= MC_MALFORMED;
		mc->subject = xstrdup("");
		sb_init(&sb);
		boff = body_offset(pmsg, plen);
		to_utf8(NULL, pmsg + boff, plen - boff, &sb);
		add_seg(&x, TXT_BODY, 0, sb.data ? sb.data : "", sb.len);
		sb_free(&sb);
	}
	if (!mc->subject[0])
		mc->flags |= MC_NO_SUBJECT;
	if (!mc->to_cc)
		mc->to_cc = xcalloc(1, sizeof(char *));
	g_object_unref(parser);
	g_object_unref(stream);
	g_mime_parser_options_free(x.opts);
	if (copy)
		g_byte_array_unref(copy);
	*out = mc;
	return 0;
}

/*
 * The smallest valid PDF (one empty page), read once at start: poppler
 * creates its process-wide GlobalParams on first use, without a lock.
 */
static void poppler_warm_up(void)
{
	static const char *objs[] = {
	    "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
	    "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n",
	    "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>\nendobj\n",
	};
	struct strbuf sb;
	size_t off[3], xref;
	struct pdf_result r;

	sb_init(&sb);
	sb_puts(&sb, "%PDF-1.4\n");
	for (int i = 0; i < 3; i++) {
		off[i] = sb.len;
		sb_puts(&sb, objs[i]);
	}
	xref = sb.len;
	sb_puts(&sb, "xref\n0 4\n0000000000 65535 f \n");
	for (int i = 0; i < 3; i++)
		sb_printf(&sb, "%010zu 00000 n \n", off[i]);
	sb_printf(&sb, "trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", xref);
	pdf_extract(sb.data, sb.len, 1, &r);
	free(r.text);
	sb_free(&sb);
}

void mime_text_global_init(void)
{
	g_mime_init();
	xmlInitParser();
	free(text_fold_key("\xC3\xA9")); /* builds normalize's table now, not in a message */
	poppler_warm_up();
}
