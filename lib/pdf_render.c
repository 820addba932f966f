/*
 * pdf_render.c — one message rendered into one PDF in memory: cairo's PDF
 * surface written to a bounded buffer, pango laying out text paragraph by
 * paragraph (so a huge body costs only the pages it fills, up to the page
 * bound), poppler-glib drawing PDF attachments' pages, cairo decoding PNGs,
 * libjpeg-turbo decoding JPEG photos.
 */
#include "autoconfig.h"

#include "pdf_render.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <glib.h>
#include <limits.h>
#include <pango/pangocairo.h>
#include <poppler.h>
#include <stdarg.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "util.h"

#define MARGIN 54.0                          /* 0.75 in on every side */
#define HEADER_TOP 28.0                      /* top of the page header line's text */
#define CHUNK_BYTES 2048                     /* longest text handed to pango at once */
#define IMAGE_DPI 150.0                      /* images are downsampled to this resolution */
#define TIME_BUDGET_US (30 * G_USEC_PER_SEC) /* checked between pages */
#define FONT_FAMILY "DejaVu Sans"
#define NOT_RENDERED "pièce jointe non rendue"

struct render {
	const struct pdf_render_opts *o;
	cairo_surface_t *surf;
	cairo_t *cr;
	PangoLayout *layout; /* body text */
	PangoLayout *hdr;    /* page header */
	PangoFontDescription *font, *small;
	struct strbuf out;
	double pw, ph, x0, width, y, ybottom;
	int page;
	int too_large;    /* a bound was reached */
	int write_failed; /* max_bytes reached inside cairo's writer */
	const char *why;  /* reason for too_large */
	gint64 t0;
	struct pdf_render_result res;
};

void pdf_render_opts_default(struct pdf_render_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->paper = PDF_PAPER_LETTER;
	o->max_pages = 200;
	o->max_bytes = 64u << 20;
	o->title = "Message sécurisé";
	o->font_size = 10.0;
	o->max_image_pixels = 40L * 1000 * 1000;
}

static cairo_status_t write_cb(void *closure, const unsigned char *data, unsigned int length)
{
	struct render *r = closure;

	if (r->out.len + length > r->o->max_bytes) {
		r->write_failed = 1;
		return CAIRO_STATUS_WRITE_ERROR;
	}
	sb_append(&r->out, (const char *)data, length);
	return CAIRO_STATUS_SUCCESS;
}

/*
 * Valid UTF-8 with no control characters but newline and tab: CRLF and lone
 * CR become newlines, NUL, other C0/C1 controls and DEL become spaces,
 * invalid sequences U+FFFD.  Returns a new string (g_free it).
 */
static char *sanitize_text(const char *s, size_t len)
{
	char *copy = g_malloc(len + 1), *valid;
	struct strbuf sb;

	for (size_t i = 0; i < len; i++)
		copy[i] = s[i] ? s[i] : ' ';
	copy[len] = '\0';
	valid = g_utf8_make_valid(copy, (gssize)len);
	g_free(copy);
	sb_init(&sb);
	for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (c == '\r') {
			if (p[1] != '\n')
				sb_putc(&sb, '\n');
		} else if (c == '\n' || c == '\t') {
			sb_putc(&sb, (char)c);
		} else if (c < 0x20 || (c >= 0x7F && c < 0xA0)) {
			sb_putc(&sb, ' ');
		} else {
			sb_append(&sb, p, (size_t)(g_utf8_next_char(p) - p));
		}
	}
	g_free(valid);
	if (!sb.data)
		sb_puts(&sb, "");
	char *r = g_strdup(sb.data);
	sb_free(&sb);
	return r;
}

static int cairo_ok(struct render *r)
{
	return !r->write_failed && cairo_status(r->cr) == CAIRO_STATUS_SUCCESS &&
	       cairo_surface_status(r->surf) == CAIRO_STATUS_SUCCESS;
}

static void set_too_large(struct render *r, const char *why)
{
	if (!r->too_large) {
		r->too_large = 1;
		r->why = why;
	}
}

/* Finish the current page (if any) and start the next, with its header line. */
static int new_page(struct render *r)
{
	char *line;
	int w, h;

	if (r->too_large || !cairo_ok(r))
		return -1;
	if (r->page >= r->o->max_pages) {
		set_too_large(r, "page limit reached");
		return -1;
	}
	if (r->page > 0 && g_get_monotonic_time() - r->t0 > TIME_BUDGET_US) {
		set_too_large(r, "time limit reached");
		return -1;
	}
	if (r->page > 0)
		cairo_show_page(r->cr);
	r->page++;
	r->res.pages = r->page;
	line = g_strdup_printf("%s — page %d", r->o->title, r->page);
	pango_layout_set_text(r->hdr, line, -1);
	g_free(line);
	cairo_set_source_rgb(r->cr, 0.3, 0.3, 0.3);
	cairo_move_to(r->cr, r->x0, HEADER_TOP);
	pango_cairo_show_layout(r->cr, r->hdr);
	pango_layout_get_pixel_size(r->hdr, &w, &h);
	cairo_set_line_width(r->cr, 0.5);
	cairo_move_to(r->cr, r->x0, HEADER_TOP + h + 3);
	cairo_line_to(r->cr, r->x0 + r->width, HEADER_TOP + h + 3);
	cairo_stroke(r->cr);
	cairo_set_source_rgb(r->cr, 0, 0, 0);
	r->y = MARGIN;
	if (r->y < HEADER_TOP + h + 12)
		r->y = HEADER_TOP + h + 12;
	return cairo_ok(r) ? 0 : -1;
}

/* Lay out the text already set in r->layout and draw it line by line, breaking pages. */
static int show_layout_lines(struct render *r, double indent)
{
	PangoLayoutIter *it = pango_layout_get_iter(r->layout);
	int rc = 0;

	do {
		PangoLayoutLine *line = pango_layout_iter_get_line_readonly(it);
		PangoRectangle logical;
		double lh, base;

		pango_layout_iter_get_line_extents(it, NULL, &logical);
		lh = (double)logical.height / PANGO_SCALE;
		base = (double)(pango_layout_iter_get_baseline(it) - logical.y) / PANGO_SCALE;
		if (r->y + lh > r->ybottom && new_page(r) < 0) {
			rc = -1;
			break;
		}
		cairo_move_to(r->cr, r->x0 + indent + (double)logical.x / PANGO_SCALE, r->y + base);
		pango_cairo_show_layout_line(r->cr, line);
		r->y += lh;
	} while (pango_layout_iter_next_line(it));
	pango_layout_iter_free(it);
	return rc;
}

/*
 * Draw sanitized text (valid UTF-8) as paragraphs, each cut into chunks of
 * at most CHUNK_BYTES (at a space when there is one) so that pango never
 * lays out more than a page or so at once.
 */
static int put_text(struct render *r, const char *text, const PangoFontDescription *font,
                    double indent)
{
	const char *p = text;

	pango_layout_set_font_description(r->layout, font);
	pango_layout_set_width(r->layout, (int)((r->width - indent) * PANGO_SCALE));
	pango_layout_set_wrap(r->layout, PANGO_WRAP_WORD_CHAR);
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t plen = nl ? (size_t)(nl - p) : strlen(p);
		const char *end = p + plen;

		do {
			size_t n = (size_t)(end - p);
			if (n > CHUNK_BYTES) {
				const char *cut = g_utf8_find_prev_char(p, p + CHUNK_BYTES + 1);
				const char *sp = cut;
				while (sp > p + CHUNK_BYTES / 2 && *sp != ' ')
					sp--;
				if (*sp == ' ')
					cut = sp + 1;
				n = (size_t)(cut - p);
			}
			pango_layout_set_text(r->layout, p, (int)n);
			if (show_layout_lines(r, indent) < 0)
				return -1;
			p += n;
		} while (p < end);
		if (!nl)
			break;
		p = nl + 1;
	}
	return cairo_ok(r) ? 0 : -1;
}

/* One "Label : value" line (value wrapped), the label in bold. */
static int put_field(struct render *r, const char *label, const char *value)
{
	char *clean = sanitize_text(value, strlen(value));
	char *esc = g_markup_escape_text(clean, -1);
	char *markup = g_strdup_printf("<b>%s</b> %s", label, esc);
	int rc;

	g_free(clean);
	g_free(esc);
	pango_layout_set_font_description(r->layout, r->font);
	pango_layout_set_width(r->layout, (int)(r->width * PANGO_SCALE));
	pango_layout_set_wrap(r->layout, PANGO_WRAP_WORD_CHAR);
	pango_layout_set_markup(r->layout, markup, -1);
	g_free(markup);
	rc = show_layout_lines(r, 0);
	pango_layout_set_attributes(r->layout, NULL);
	return rc;
}

static void rule_line(struct render *r)
{
	r->y += 4;
	if (r->y + 8 > r->ybottom)
		return; /* the next line starts a page anyway */
	cairo_set_line_width(r->cr, 0.5);
	cairo_move_to(r->cr, r->x0, r->y);
	cairo_line_to(r->cr, r->x0 + r->width, r->y);
	cairo_stroke(r->cr);
	r->y += 8;
}

/* s sanitized and cut to max characters (a file name can be kilobytes long). */
static char *short_text(const char *s, long max)
{
	char *clean = sanitize_text(s, strlen(s)), *r;

	if (g_utf8_strlen(clean, -1) <= max)
		return clean;
	r = g_utf8_substring(clean, 0, max);
	g_free(clean);
	clean = g_strconcat(r, "…", NULL);
	g_free(r);
	return clean;
}

/* "name (type, size)" or "name (type, page i/n)" for an attachment heading. */
static char *att_label(const struct pdf_attachment *a, int i, int n)
{
	char *name = short_text(a->filename && a->filename[0] ? a->filename : "(sans nom)", 120);
	char *type = short_text(a->content_type ? a->content_type : "type inconnu", 60);
	char *line = n > 1 ? g_strdup_printf("%s (%s, page %d/%d)", name, type, i, n)
	                   : g_strdup_printf("%s (%s, %zu octets)", name, type, a->len);

	g_free(name);
	g_free(type);
	return line;
}

static int att_heading(struct render *r, const struct pdf_attachment *a, const char *note)
{
	char *label = att_label(a, 1, 1);
	char *line = g_strdup_printf("%s%s%s", label, note ? " — " : "", note ? note : "");
	int rc;

	g_free(label);
	r->y += 6;
	rule_line(r);
	rc = put_field(r, "Pièce jointe :", line);
	g_free(line);
	r->y += 4;
	return rc;
}

static int not_rendered(struct render *r, const struct pdf_attachment *a, const char *why)
{
	char *note = g_strdup_printf(NOT_RENDERED " (%s)", why);
	int rc = att_heading(r, a, note);

	g_free(note);
	r->res.atts_not_rendered++;
	return rc;
}

/* Scale and place a w x h box in what is left of the page, centred. */
static void fit_box(struct render *r, double w, double h, double maxscale, double *sx, double *x,
                    double *y)
{
	double aw = r->width, ah = r->ybottom - r->y;
	double s = aw / w < ah / h ? aw / w : ah / h;

	if (s > maxscale)
		s = maxscale;
	*sx = s;
	*x = r->x0 + (aw - w * s) / 2;
	*y = r->y;
}

/* An attachment drawn as pages starts a page, its heading at the top. */
static int att_page(struct render *r, const struct pdf_attachment *a, int i, int n)
{
	char *line;
	int rc;

	if (new_page(r) < 0)
		return -1;
	line = att_label(a, i, n);
	rc = put_field(r, "Pièce jointe :", line);
	g_free(line);
	r->y += 6;
	return rc;
}

static int render_pdf_att(struct render *r, const struct pdf_attachment *a)
{
	GBytes *bytes = g_bytes_new_static(a->data, a->len);
	GError *gerr = NULL;
	PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
	int n, rc = 0;

	g_bytes_unref(bytes);
	if (!doc) {
		int enc =
		    gerr && gerr->domain == POPPLER_ERROR && gerr->code == POPPLER_ERROR_ENCRYPTED;
		g_clear_error(&gerr);
		return not_rendered(r, a, enc ? "PDF chiffré" : "PDF illisible");
	}
	n = poppler_document_get_n_pages(doc);
	if (n <= 0) {
		g_object_unref(doc);
		return not_rendered(r, a, "PDF sans page");
	}
	if (n > r->o->max_pages - r->page) {
		g_object_unref(doc);
		set_too_large(r, "page limit reached (PDF attachment)");
		return -1;
	}
	for (int i = 0; i < n && rc == 0; i++) {
		PopplerPage *pg = poppler_document_get_page(doc, i);
		double w = 0, h = 0, s, x, y;

		if (att_page(r, a, i + 1, n) < 0) {
			if (pg)
				g_object_unref(pg);
			rc = -1;
			break;
		}
		if (!pg)
			continue;
		poppler_page_get_size(pg, &w, &h);
		if (w >= 1 && h >= 1) {
			fit_box(r, w, h, 1.0, &s, &x, &y);
			cairo_save(r->cr);
			cairo_translate(r->cr, x, y);
			cairo_scale(r->cr, s, s);
			cairo_set_line_width(r->cr, 0.5 / s);
			cairo_rectangle(r->cr, 0, 0, w, h);
			cairo_stroke(r->cr); /* the attachment page's edge */
			cairo_rectangle(r->cr, 0, 0, w, h);
			cairo_clip(r->cr);
			poppler_page_render_for_printing(pg, r->cr);
			cairo_restore(r->cr);
			r->y = y + h * s + 8;
		}
		g_object_unref(pg);
		if (!cairo_ok(r))
			rc = -1;
	}
	g_object_unref(doc);
	if (rc == 0)
		r->res.atts_rendered++;
	return rc;
}

struct mem_reader {
	const unsigned char *p;
	size_t left;
};

static cairo_status_t png_read_cb(void *closure, unsigned char *data, unsigned int length)
{
	struct mem_reader *m = closure;

	if (length > m->left)
		return CAIRO_STATUS_READ_ERROR;
	memcpy(data, m->p, length);
	m->p += length;
	m->left -= length;
	return CAIRO_STATUS_SUCCESS;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int place_image(struct render *r, const struct pdf_attachment *a, cairo_surface_t *img);

static int render_png_att(struct render *r, const struct pdf_attachment *a)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
	struct mem_reader m = {a->data, a->len};
	cairo_surface_t *img;
	double iw, ih;

	/* the dimensions from IHDR first: a small file can declare a huge image */
	if (a->len < 33 || memcmp(a->data, sig, 8) != 0 || memcmp(a->data + 12, "IHDR", 4) != 0)
		return not_rendered(r, a, "PNG illisible");
	iw = be32(a->data + 16);
	ih = be32(a->data + 20);
	if (iw < 1 || ih < 1 || iw * ih > (double)r->o->max_image_pixels)
		return not_rendered(r, a, "image trop grande");
	img = cairo_image_surface_create_from_png_stream(png_read_cb, &m);
	if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
		cairo_surface_destroy(img);
		return not_rendered(r, a, "PNG illisible");
	}
	return place_image(r, a, img);
}

/* Put a decoded image on a page of its own, fitted, downsampled when large. */
static int place_image(struct render *r, const struct pdf_attachment *a, cairo_surface_t *img)
{
	cairo_surface_t *src;
	double iw, ih, s, x, y;

	iw = cairo_image_surface_get_width(img);
	ih = cairo_image_surface_get_height(img);
	if (att_page(r, a, 1, 1) < 0) {
		cairo_surface_destroy(img);
		return -1;
	}
	fit_box(r, iw, ih, 2.0, &s, &x, &y);
	src = img;
	if (s * IMAGE_DPI / 72.0 < 0.66) {
		/* downsample to IMAGE_DPI rather than embed every pixel of a photo */
		int dw = (int)(iw * s * IMAGE_DPI / 72.0) + 1,
		    dh = (int)(ih * s * IMAGE_DPI / 72.0) + 1;
		cairo_surface_t *d = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, dw, dh);
		cairo_t *dc = cairo_create(d);
		cairo_scale(dc, dw / iw, dh / ih);
		cairo_set_source_surface(dc, img, 0, 0);
		cairo_pattern_set_filter(cairo_get_source(dc), CAIRO_FILTER_GOOD);
		cairo_paint(dc);
		if (cairo_status(dc) == CAIRO_STATUS_SUCCESS) {
			src = d;
			s *= iw / dw;
			iw = dw;
			ih = dh;
		} else {
			cairo_surface_destroy(d);
		}
		cairo_destroy(dc);
	}
	cairo_save(r->cr);
	cairo_translate(r->cr, x, y);
	cairo_scale(r->cr, s, s);
	cairo_set_source_surface(r->cr, src, 0, 0);
	cairo_rectangle(r->cr, 0, 0, iw, ih);
	cairo_fill(r->cr);
	cairo_restore(r->cr);
	if (src != img)
		cairo_surface_destroy(src);
	cairo_surface_destroy(img);
	r->y = y + ih * s + 8;
	if (!cairo_ok(r))
		return -1;
	r->res.atts_rendered++;
	return 0;
}

/* libjpeg reports errors by calling error_exit: jump back instead of exiting. */
struct jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
};

static void jpeg_err_exit(j_common_ptr cinfo)
{
	struct jpeg_err *e = (struct jpeg_err *)cinfo->err;
	longjmp(e->jb, 1);
}

static void jpeg_err_quiet(j_common_ptr cinfo, int level)
{
	(void)cinfo;
	(void)level; /* warnings (a truncated photo still decodes) go nowhere */
}

/*
 * A JPEG photo (libjpeg-turbo), decoded at the smallest DCT scale (1/1 to
 * 1/8) that keeps it within max_image_pixels and near IMAGE_DPI on the page.
 */
static int render_jpeg_att(struct render *r, const struct pdf_attachment *a)
{
	struct jpeg_decompress_struct ci;
	struct jpeg_err je;
	cairo_surface_t *volatile img = NULL;
	unsigned char *volatile row = NULL;

	if (a->len < 4 || a->len > ULONG_MAX || a->data[0] != 0xFF || a->data[1] != 0xD8)
		return not_rendered(r, a, "JPEG illisible");
	ci.err = jpeg_std_error(&je.pub);
	je.pub.error_exit = jpeg_err_exit;
	je.pub.emit_message = jpeg_err_quiet;
	if (setjmp(je.jb)) {
		jpeg_destroy_decompress(&ci);
		free(row);
		if (img)
			cairo_surface_destroy(img);
		return not_rendered(r, a, "JPEG illisible");
	}
	jpeg_create_decompress(&ci);
	jpeg_mem_src(&ci, a->data, (unsigned long)a->len);
	jpeg_read_header(&ci, TRUE);
	/* a page is at most ~8.5 x 11 in at IMAGE_DPI: no need for more pixels */
	double want = (8.5 * IMAGE_DPI) * (11.0 * IMAGE_DPI) * 2.0;
	double px = (double)ci.image_width * ci.image_height;
	ci.scale_num = 1;
	ci.scale_denom = 1;
	while (ci.scale_denom < 8 &&
	       (px / ((double)ci.scale_denom * ci.scale_denom) > want ||
	        px / ((double)ci.scale_denom * ci.scale_denom) > (double)r->o->max_image_pixels))
		ci.scale_denom *= 2;
	if (px / ((double)ci.scale_denom * ci.scale_denom) > (double)r->o->max_image_pixels) {
		jpeg_destroy_decompress(&ci);
		return not_rendered(r, a, "image trop grande");
	}
	ci.out_color_space = JCS_RGB;
	jpeg_start_decompress(&ci);
	int w = (int)ci.output_width, h = (int)ci.output_height;
	img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
	if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
		jpeg_destroy_decompress(&ci);
		cairo_surface_destroy(img);
		return -1;
	}
	row = xmalloc((size_t)w * 3);
	unsigned char *pix = cairo_image_surface_get_data(img);
	int stride = cairo_image_surface_get_stride(img);
	cairo_surface_flush(img);
	while (ci.output_scanline < ci.output_height) {
		JSAMPROW rp = row;
		unsigned y = ci.output_scanline;
		if (jpeg_read_scanlines(&ci, &rp, 1) != 1)
			break;
		uint32_t *d = (uint32_t *)(void *)(pix + (size_t)y * (size_t)stride);
		for (int x = 0; x < w; x++)
			d[x] = (uint32_t)row[3 * x] << 16 | (uint32_t)row[3 * x + 1] << 8 |
			       row[3 * x + 2];
	}
	cairo_surface_mark_dirty(img);
	jpeg_finish_decompress(&ci);
	jpeg_destroy_decompress(&ci);
	free(row);
	return place_image(r, a, img);
}

static int has_prefix(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

static int is_jpeg(const char *ct, const char *fn)
{
	return strcmp(ct, "image/jpeg") == 0 || strcmp(ct, "image/jpg") == 0 ||
	       strcmp(ct, "image/pjpeg") == 0 ||
	       ((!ct[0] || strcmp(ct, "application/octet-stream") == 0) &&
	        (str_has_suffix_ci(fn, ".jpg") || str_has_suffix_ci(fn, ".jpeg")));
}

/*
 * fontconfig (loaded by pango for every program that renders: the milter,
 * clinimail check, the fax bridge, the tests) keeps its configuration and
 * font caches for the life of the process and never frees them: tell
 * LeakSanitizer (sanitizer builds) once, here, for every program.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libfontconfig.so\n";
}

int pdf_render_supports(const struct pdf_attachment *a)
{
	const char *ct = a->content_type ? a->content_type : "";
	const char *fn = a->filename ? a->filename : "";

	return strcmp(ct, "application/pdf") == 0 || (!ct[0] && str_has_suffix_ci(fn, ".pdf")) ||
	       strcmp(ct, "image/png") == 0 || (!ct[0] && str_has_suffix_ci(fn, ".png")) ||
	       is_jpeg(ct, fn) || has_prefix(ct, "text/");
}

static int render_att(struct render *r, const struct pdf_attachment *a)
{
	const char *ct = a->content_type ? a->content_type : "";
	const char *fn = a->filename ? a->filename : "";

	if (!a->data && a->len)
		return not_rendered(r, a, "contenu absent");
	if (strcmp(ct, "application/pdf") == 0 || (!ct[0] && str_has_suffix_ci(fn, ".pdf")))
		return render_pdf_att(r, a);
	if (strcmp(ct, "image/png") == 0 || (!ct[0] && str_has_suffix_ci(fn, ".png")))
		return render_png_att(r, a);
	if (is_jpeg(ct, fn))
		return render_jpeg_att(r, a);
	if (has_prefix(ct, "text/")) {
		char *t = sanitize_text((const char *)a->data, a->len);
		int rc = att_heading(r, a, NULL);
		if (rc == 0)
			rc = put_text(r, t, r->font, 0);
		g_free(t);
		if (rc == 0)
			r->res.atts_rendered++;
		return rc;
	}
	return not_rendered(r, a, "format non pris en charge");
}

static int render_all(struct render *r, const struct pdf_message *m)
{
	if (new_page(r) < 0)
		return -1;
	if (put_field(r, "De :", m->from ? m->from : "") < 0 ||
	    put_field(r, "Date :", m->date ? m->date : "") < 0)
		return -1;
	{
		struct strbuf sb;
		int rc;
		sb_init(&sb);
		for (size_t i = 0; i < m->nrecipients; i++) {
			if (i)
				sb_puts(&sb, ", ");
			sb_puts(&sb, m->recipients[i] ? m->recipients[i] : "");
		}
		rc = put_field(r, "À :", sb.data ? sb.data : "");
		sb_free(&sb);
		if (rc < 0)
			return -1;
	}
	if (put_field(r, "Objet :", m->subject ? m->subject : "") < 0)
		return -1;
	rule_line(r);
	if (m->body && m->body_len) {
		char *t = sanitize_text(m->body, m->body_len);
		int rc = put_text(r, t, r->font, 0);
		g_free(t);
		if (rc < 0)
			return -1;
	}
	for (size_t i = 0; i < m->natts; i++)
		if (render_att(r, &m->atts[i]) < 0)
			return -1;
	return 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) CM_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int pdf_render(const struct pdf_message *m, const struct pdf_render_opts *opts, unsigned char **out,
               size_t *outlen, struct pdf_render_result *res, char *err, size_t errlen)
{
	struct pdf_render_opts defaults;
	struct render r;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (res)
		memset(res, 0, sizeof(*res));
	if (!opts) {
		pdf_render_opts_default(&defaults);
		opts = &defaults;
	}
	memset(&r, 0, sizeof(r));
	r.o = opts;
	if (opts->max_pages < 1 || opts->font_size < 4 || opts->font_size > 72 || !opts->title) {
		set_err(err, errlen, "pdf_render: bad options");
		return PDF_RENDER_ERROR;
	}
	if (opts->paper == PDF_PAPER_A4) {
		r.pw = 595.2756;
		r.ph = 841.8898;
	} else {
		r.pw = 612;
		r.ph = 792;
	}
	r.x0 = MARGIN;
	r.width = r.pw - 2 * MARGIN;
	r.ybottom = r.ph - MARGIN;
	r.t0 = g_get_monotonic_time();
	sb_init(&r.out);

	r.surf = cairo_pdf_surface_create_for_stream(write_cb, &r, r.pw, r.ph);
	cairo_pdf_surface_set_metadata(r.surf, CAIRO_PDF_METADATA_TITLE, opts->title);
	cairo_pdf_surface_set_metadata(r.surf, CAIRO_PDF_METADATA_CREATOR, "clinimail");
	r.cr = cairo_create(r.surf);
	r.layout = pango_cairo_create_layout(r.cr);
	r.hdr = pango_cairo_create_layout(r.cr);
	r.font = pango_font_description_from_string(FONT_FAMILY);
	pango_font_description_set_size(r.font, (gint)(opts->font_size * PANGO_SCALE));
	r.small = pango_font_description_copy(r.font);
	pango_font_description_set_size(r.small, (gint)(opts->font_size * 0.8 * PANGO_SCALE));
	pango_layout_set_font_description(r.hdr, r.small);

	rc = cairo_ok(&r) ? render_all(&r, m) : -1;
	cairo_surface_finish(r.surf); /* writes the last page and the trailer */
	if (rc == 0 && !cairo_ok(&r))
		rc = -1;
	if (r.write_failed)
		set_too_large(&r, "size limit reached");

	if (r.too_large) {
		set_err(err, errlen, "too large to render: %s", r.why);
		rc = PDF_RENDER_TOO_LARGE;
	} else if (rc < 0) {
		cairo_status_t st = cairo_status(r.cr);
		if (st == CAIRO_STATUS_SUCCESS)
			st = cairo_surface_status(r.surf);
		set_err(err, errlen, "pdf_render: cairo: %s", cairo_status_to_string(st));
		rc = PDF_RENDER_ERROR;
	} else {
		rc = PDF_RENDER_OK;
	}

	pango_font_description_free(r.font);
	pango_font_description_free(r.small);
	g_object_unref(r.layout);
	g_object_unref(r.hdr);
	cairo_destroy(r.cr);
	cairo_surface_destroy(r.surf);
	if (rc == PDF_RENDER_OK) {
		*outlen = r.out.len;
		*out = (unsigned char *)sb_steal(&r.out);
		if (res)
			*res = r.res;
	} else {
		sb_free(&r.out);
	}
	return rc;
}

void pdf_render_global_init(void)
{
	/* once through every path: fontconfig's configuration and caches,
	 * pango's font map, poppler's global parameters */
	struct pdf_message m = {0};
	struct pdf_attachment a = {0};
	unsigned char *p1 = NULL, *p2 = NULL;
	size_t n1, n2;

	m.body = "é";
	m.body_len = strlen(m.body);
	if (pdf_render(&m, NULL, &p1, &n1, NULL, NULL, 0) != PDF_RENDER_OK)
		return;
	a.content_type = "application/pdf";
	a.data = p1;
	a.len = n1;
	m.atts = &a;
	m.natts = 1;
	if (pdf_render(&m, NULL, &p2, &n2, NULL, NULL, 0) == PDF_RENDER_OK)
		free(p2);
	free(p1);
}
