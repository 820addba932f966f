/*
 * fax_render.c — a message as the pages of a fax (TIFF Class F, see
 * fax_render.h).  The cover page is drawn here with pango/cairo; the body and
 * attachments are laid out by pdf_render() and each page of its PDF is
 * rasterised with poppler-glib.  Every page is drawn in bands of BAND_ROWS
 * rows straight into libtiff, so memory stays at one band (1.7 MB) whatever
 * the page count.
 *
 * Black and white: pages are rasterised with antialiasing off, so text and
 * line art come out as pure black and white pixels and stay exactly as
 * drawn (the sharpest text a fax can carry; antialiased edges thresholded or
 * dithered come out ragged).  Only pixels with an intermediate grey are
 * error-diffused (Floyd–Steinberg, serpentine), and error never spreads
 * into pure pixels, so text next to a photo stays clean.  Inside the areas
 * where poppler reports an image (PNG attachments, scans in PDF
 * attachments) nearly every grey is dithered, so photos stay recognisable;
 * outside them only mid greys (shaded table cells, coloured text) are, the
 * rest is thresholded, so a light shading does not sprinkle dots and a dark
 * fill stays solid.
 */
#include "autoconfig.h"

#include "fax_render.h"

#include <cairo.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <pango/pangocairo.h>
#include <poppler.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include "util.h"

#define BAND_ROWS 256
#define FONT_FAMILY "DejaVu Sans"
#define MARGIN 54.0                          /* points, as pdf_render's */
#define HEADER_BAND 50.0                     /* points: pdf_render's page header line lies above */
#define HEADER_TOP 26.0                      /* top of our own header text */
#define BODY_FONT_SIZE 11                    /* points: fax text a little larger than the PDF's */
#define TIME_BUDGET_US (60 * G_USEC_PER_SEC) /* rasterising, checked between pages */
#define FIELD_MAX_CHARS 160                  /* a cover field longer than this is cut */

/* grey levels: below lo black, above hi white, dithered in between */
#define IMG_LO 16
#define IMG_HI 240
#define VEC_LO 96
#define VEC_HI 235

static const char NOTICE_FR[] =
    "AVIS DE CONFIDENTIALITÉ — Ce document est destiné exclusivement à la personne ou à "
    "l'organisme à qui il est adressé. Il peut contenir des renseignements personnels et "
    "confidentiels, dont des renseignements de santé protégés par la loi. Toute "
    "divulgation, distribution ou reproduction non autorisée est interdite. Si vous avez "
    "reçu cette télécopie par erreur, veuillez en aviser immédiatement l'expéditeur par "
    "téléphone et détruire le document reçu, sans en conserver de copie.";
static const char NOTICE_EN[] =
    "CONFIDENTIALITY NOTICE — This document is intended only for the person or organization "
    "to which it is addressed. It may contain personal and confidential information, "
    "including health information protected by law. Any unauthorized disclosure, "
    "distribution or copying is prohibited. If you have received this fax in error, please "
    "notify the sender immediately by telephone and destroy the document received without "
    "keeping a copy.";

void fax_render_opts_default(struct fax_render_opts *o)
{
	o->fine = 1;
	o->paper = PDF_PAPER_LETTER;
	o->compression = FAX_G4;
	o->max_pages = 50;
}

int fax_page_rows(enum pdf_paper paper, int fine)
{
	if (paper == PDF_PAPER_A4)
		return fine ? FAX_ROWS_A4_FINE : FAX_ROWS_A4_NORMAL;
	return fine ? FAX_ROWS_LETTER_FINE : FAX_ROWS_LETTER_NORMAL;
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

/* ---- text helpers ---- */

/* s as one line of valid UTF-8 without control characters, cut to max characters (g_free). */
static char *clean_line(const char *s, long max)
{
	char *valid, *cut;
	struct strbuf sb;

	if (!s)
		s = "";
	valid = g_utf8_make_valid(s, -1);
	sb_init(&sb);
	sb_puts(&sb, "");
	for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (c < 0x20 || (c >= 0x7F && c < 0xA0) || c == 0x2028 || c == 0x2029)
			sb_putc(&sb, ' ');
		else
			sb_append(&sb, p, (size_t)(g_utf8_next_char(p) - p));
	}
	g_free(valid);
	if (g_utf8_strlen(sb.data, -1) > max) {
		char *head = g_utf8_substring(sb.data, 0, max);
		cut = g_strconcat(head, "…", NULL);
		g_free(head);
	} else {
		cut = g_strdup(sb.data);
	}
	sb_free(&sb);
	return cut;
}

/* "(819) 555-0102" for 10 digits, "1 (819) 555-0102" for 1 + 10; anything else cleaned as is. */
static char *format_number(const char *num)
{
	const char *d = num ? num : "";
	size_t n = strlen(d);
	int all = n > 0;

	for (size_t i = 0; i < n; i++)
		if (d[i] < '0' || d[i] > '9')
			all = 0;
	if (all && n == 10)
		return g_strdup_printf("(%.3s) %.3s-%.4s", d, d + 3, d + 6);
	if (all && n == 11 && d[0] == '1')
		return g_strdup_printf("1 (%.3s) %.3s-%.4s", d + 1, d + 4, d + 7);
	return clean_line(d, 40);
}

static int is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == '\f' ||
		      s[i] == '\v' || s[i] == '\0'))
			return 0;
	return 1;
}

/* ---- TIFF output ---- */

struct tiff_err {
	char msg[200];
	int failed;
};

static int tiff_on_error(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
	struct tiff_err *e = user;

	(void)t, (void)module;
	if (!e->failed) {
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		e->failed = 1;
	}
	return 1;
}

static int tiff_on_warning(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
	(void)t, (void)user, (void)module, (void)fmt, (void)ap;
	return 1;
}

/* ---- rasterising ---- */

struct box {
	int x0, y0, x1, y1; /* pixels, x1/y1 exclusive */
};

/* Draws one page in points; returns 0, or -1 on a cairo/pango error. */
typedef int (*paint_fn)(cairo_t *cr, void *user);

struct raster {
	const struct fax_render_opts *o;
	TIFF *tif;
	struct tiff_err terr;
	int rows;    /* per page */
	double yres; /* lpi */
	int page;    /* being written, 1-based */
	int total;   /* pages in the fax */
	const char *order;
	cairo_surface_t *band;
	int *err_cur, *err_next; /* Floyd–Steinberg error, 1/16 grey level, 2 guard cells */
	unsigned char *mask;     /* columns inside an image on the current row */
	unsigned char *gray;     /* one row */
	unsigned char *bits;     /* one packed row */
	gint64 t0;
};

static void font_options_crisp(cairo_t *cr)
{
	cairo_font_options_t *fo = cairo_font_options_create();

	cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
	cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_NONE);
	cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
	cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
	cairo_set_font_options(cr, fo);
	cairo_font_options_destroy(fo);
}

static int set_page_tags(struct raster *rs)
{
	TIFF *t = rs->tif;
	int ok = 1;

	ok &= TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
	ok &= TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)FAX_WIDTH);
	ok &= TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)rs->rows);
	ok &= TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 1);
	ok &= TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
	ok &= TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
	ok &= TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);
	ok &= TIFFSetField(t, TIFFTAG_FILLORDER, FILLORDER_MSB2LSB);
	ok &= TIFFSetField(t, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
	if (rs->o->compression == FAX_G3) {
		ok &= TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX3);
		ok &= TIFFSetField(t, TIFFTAG_GROUP3OPTIONS,
		                   (uint32_t)(GROUP3OPT_2DENCODING | GROUP3OPT_FILLBITS));
	} else {
		ok &= TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX4);
		ok &= TIFFSetField(t, TIFFTAG_GROUP4OPTIONS, (uint32_t)0);
	}
	ok &= TIFFSetField(t, TIFFTAG_XRESOLUTION, (float)FAX_XRES);
	ok &= TIFFSetField(t, TIFFTAG_YRESOLUTION, (float)rs->yres);
	ok &= TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH);
	ok &= TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, (uint32_t)rs->rows); /* one strip per page */
	ok &= TIFFSetField(t, TIFFTAG_PAGENUMBER, (uint16_t)(rs->page - 1), (uint16_t)rs->total);
	ok &= TIFFSetField(t, TIFFTAG_SOFTWARE, "clinimail");
	return ok ? 0 : -1;
}

/* One row of grey levels to packed bits (1 = black), dithering as the file comment says. */
static void dither_row(struct raster *rs, int row)
{
	int *cur = rs->err_cur + 1, *next = rs->err_next + 1; /* index -1 and FAX_WIDTH valid */
	int ltr = row % 2 == 0;

	memset(rs->bits, 0, FAX_WIDTH / 8);
	for (int i = 0; i < FAX_WIDTH; i++) {
		int x = ltr ? i : FAX_WIDTH - 1 - i, dir = ltr ? 1 : -1;
		int v = rs->gray[x], lo = rs->mask[x] ? IMG_LO : VEC_LO,
		    hi = rs->mask[x] ? IMG_HI : VEC_HI;
		int black;

		if (v < lo) {
			black = 1;
		} else if (v > hi) {
			black = 0;
		} else {
			int t = v + cur[x] / 16, e;
			black = t < 128;
			e = t - (black ? 0 : 255);
			cur[x + dir] += e * 7;
			next[x - dir] += e * 3;
			next[x] += e * 5;
			next[x + dir] += e;
		}
		if (black)
			rs->bits[x >> 3] |= (unsigned char)(0x80 >> (x & 7));
	}
	memcpy(rs->err_cur, rs->err_next, sizeof(int) * (FAX_WIDTH + 2));
	memset(rs->err_next, 0, sizeof(int) * (FAX_WIDTH + 2));
}

struct fit {
	double sx, sy, ox, oy; /* pixels per point across and down, offset of the page */
};

/* A page of pw x ph points at FAX_XRES x yres, shrunk if it does not fit, centred. */
static struct fit fit_page(const struct raster *rs, double pw, double ph)
{
	struct fit f;
	double s = 1.0;

	if (pw * FAX_XRES / 72.0 > FAX_WIDTH)
		s = FAX_WIDTH / (pw * FAX_XRES / 72.0);
	if (ph * rs->yres / 72.0 * s > rs->rows)
		s = rs->rows / (ph * rs->yres / 72.0);
	f.sx = s * FAX_XRES / 72.0;
	f.sy = s * rs->yres / 72.0;
	f.ox = (FAX_WIDTH - pw * f.sx) / 2;
	f.oy = (rs->rows - ph * f.sy) / 2;
	return f;
}

/*
 * Draw a page of pw x ph points (paint, in points) fitted into the fax page
 * at FAX_XRES x yres, band by band, and append it to the TIFF file.  imgs
 * (pixel boxes, may be NULL) are the areas where photos are dithered.
 */
static int write_page(struct raster *rs, double pw, double ph, paint_fn paint, void *user,
                      const struct box *imgs, size_t nimgs, char *err, size_t errlen)
{
	struct fit f = fit_page(rs, pw, ph);
	int stride = cairo_image_surface_get_stride(rs->band);

	if (set_page_tags(rs) < 0) {
		set_err(err, errlen, "libtiff: cannot set the page's tags");
		return FAX_RENDER_ERROR;
	}
	memset(rs->err_cur, 0, sizeof(int) * (FAX_WIDTH + 2));
	memset(rs->err_next, 0, sizeof(int) * (FAX_WIDTH + 2));
	for (int y0 = 0; y0 < rs->rows; y0 += BAND_ROWS) {
		cairo_t *cr = cairo_create(rs->band);
		cairo_status_t st;
		const unsigned char *px;
		int prc;

		cairo_set_source_rgb(cr, 1, 1, 1);
		cairo_paint(cr);
		cairo_set_source_rgb(cr, 0, 0, 0);
		font_options_crisp(cr);
		cairo_translate(cr, f.ox, f.oy - y0);
		cairo_scale(cr, f.sx, f.sy);
		prc = paint(cr, user);
		st = cairo_status(cr);
		cairo_destroy(cr);
		cairo_surface_flush(rs->band);
		if (prc < 0 || st != CAIRO_STATUS_SUCCESS ||
		    cairo_surface_status(rs->band) != CAIRO_STATUS_SUCCESS) {
			set_err(err, errlen, "cairo: %s",
			        cairo_status_to_string(
			            st != CAIRO_STATUS_SUCCESS ? st : CAIRO_STATUS_NO_MEMORY));
			return FAX_RENDER_ERROR;
		}
		px = cairo_image_surface_get_data(rs->band);
		for (int r = 0; r < BAND_ROWS && y0 + r < rs->rows; r++) {
			const uint32_t *p =
			    (const uint32_t *)(const void *)(px + (size_t)r * (size_t)stride);
			int row = y0 + r;

			for (int x = 0; x < FAX_WIDTH; x++) {
				uint32_t c = p[x];
				rs->gray[x] =
				    (unsigned char)((77 * ((c >> 16) & 0xff) +
				                     150 * ((c >> 8) & 0xff) + 29 * (c & 0xff)) >>
				                    8);
			}
			memset(rs->mask, 0, FAX_WIDTH);
			for (size_t i = 0; i < nimgs; i++)
				if (row >= imgs[i].y0 && row < imgs[i].y1)
					memset(rs->mask + imgs[i].x0, 1,
					       (size_t)(imgs[i].x1 - imgs[i].x0));
			dither_row(rs, row);
			if (TIFFWriteScanline(rs->tif, rs->bits, (uint32_t)row, 0) < 0 ||
			    rs->terr.failed) {
				set_err(err, errlen, "libtiff: %s",
				        rs->terr.failed ? rs->terr.msg : "cannot write a row");
				return FAX_RENDER_ERROR;
			}
		}
	}
	if (!TIFFWriteDirectory(rs->tif) || rs->terr.failed) {
		set_err(err, errlen, "libtiff: %s",
		        rs->terr.failed ? rs->terr.msg : "cannot write a page");
		return FAX_RENDER_ERROR;
	}
	return FAX_RENDER_OK;
}

/* ---- cover page ---- */

struct cover_ctx {
	const struct fax_cover *c;
	double pw, ph;
	int total;
};

static PangoLayout *new_layout(cairo_t *cr, double size, int bold, double width)
{
	PangoLayout *l = pango_cairo_create_layout(cr);
	PangoFontDescription *fd = pango_font_description_from_string(FONT_FAMILY);
	cairo_font_options_t *fo = cairo_font_options_create();

	cairo_get_font_options(cr, fo); /* antialiasing off, see font_options_crisp */
	pango_cairo_context_set_font_options(pango_layout_get_context(l), fo);
	cairo_font_options_destroy(fo);
	/*
	 * Lay text out in points, unhinted and unrounded (positions rounded to
	 * whole user units would be whole points), and let cairo map it to the
	 * 204 x 196 (or 98) device grid: with the device matrix in the pango
	 * context, the anisotropic scale garbles glyph placement at 98 lpi.
	 */
	pango_context_set_matrix(pango_layout_get_context(l), NULL);
	pango_context_set_round_glyph_positions(pango_layout_get_context(l), FALSE);
	pango_cairo_context_set_resolution(pango_layout_get_context(l), 72.0);
	pango_layout_context_changed(l);
	pango_font_description_set_size(fd, (gint)(size * PANGO_SCALE));
	if (bold)
		pango_font_description_set_weight(fd, PANGO_WEIGHT_BOLD);
	pango_layout_set_font_description(l, fd);
	pango_font_description_free(fd);
	pango_layout_set_width(l, (int)(width * PANGO_SCALE));
	pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
	return l;
}

enum { WRAP = 0, ONE_LINE = 1, TWO_LINES = 2 };

/* Draw text at (x, *y) and move *y below it; max_lines > 0: cut with "…" after that many. */
static void show_text(cairo_t *cr, double x, double *y, const char *text, double size, int bold,
                      double width, PangoAlignment align, int max_lines)
{
	PangoLayout *l = new_layout(cr, size, bold, width);
	int w, h;

	pango_layout_set_alignment(l, align);
	if (max_lines > 0) {
		pango_layout_set_height(l, -max_lines);
		pango_layout_set_ellipsize(l, PANGO_ELLIPSIZE_END);
	}
	pango_layout_set_text(l, text, -1);
	cairo_move_to(cr, x, *y);
	pango_cairo_show_layout(cr, l);
	pango_layout_get_size(l, &w, &h);
	g_object_unref(l);
	*y += (double)h / PANGO_SCALE;
}

static double text_height(cairo_t *cr, const char *text, double size, double width)
{
	PangoLayout *l = new_layout(cr, size, 0, width);
	int w, h;

	pango_layout_set_text(l, text, -1);
	pango_layout_get_size(l, &w, &h);
	g_object_unref(l);
	return (double)h / PANGO_SCALE;
}

#define COVER_SIZE 15.0 /* points, the cover's table */
#define LABEL_WIDTH 200.0

/* A "label  value" row of the cover's table, one line; nothing when value is NULL or empty. */
static void cover_field(cairo_t *cr, double *y, double width, const char *label, const char *value)
{
	char *v;
	double y1, y2;

	if (!value || !value[0])
		return;
	v = clean_line(value, FIELD_MAX_CHARS);
	y1 = y2 = *y;
	show_text(cr, MARGIN, &y1, label, COVER_SIZE, 1, LABEL_WIDTH - 8, PANGO_ALIGN_LEFT,
	          TWO_LINES);
	show_text(cr, MARGIN + LABEL_WIDTH, &y2, v, COVER_SIZE, 0, width - LABEL_WIDTH,
	          PANGO_ALIGN_LEFT, ONE_LINE);
	g_free(v);
	*y = (y1 > y2 ? y1 : y2) + 4;
}

/*
 * The cover: every field on one line (cut if too long), so that the page
 * always holds the confidentiality notice, which sits in a box at the
 * bottom margin and shrinks (down to 8 pt) rather than leave the page.
 */
static int paint_cover(cairo_t *cr, void *user)
{
	const struct cover_ctx *cc = user;
	const struct fax_cover *c = cc->c;
	double width = cc->pw - 2 * MARGIN, y = MARGIN, ny = 0, size, box_top = 0;
	char *s, *pages;
	char *nfr = clean_line(c->notice_fr ? c->notice_fr : NOTICE_FR, 1500);
	char *nen = clean_line(c->notice_en ? c->notice_en : NOTICE_EN, 1500);

	s = clean_line(c->establishment, FIELD_MAX_CHARS);
	show_text(cr, MARGIN, &y, s, 22, 1, width, PANGO_ALIGN_LEFT, TWO_LINES);
	g_free(s);
	y += 6;
	cairo_set_line_width(cr, 3);
	cairo_move_to(cr, MARGIN, y);
	cairo_line_to(cr, MARGIN + width, y);
	cairo_stroke(cr);
	y += 14;
	show_text(cr, MARGIN, &y, "TÉLÉCOPIE / FAX", 40, 1, width, PANGO_ALIGN_CENTER, ONE_LINE);
	y += 20;

	cover_field(cr, &y, width, "De / From", c->sender_name);
	cover_field(cr, &y, width, "Courriel / E-mail", c->sender_address);
	s = c->sender_phone ? format_number(c->sender_phone) : NULL;
	cover_field(cr, &y, width, "Téléphone / Phone", s);
	g_free(s);
	cover_field(cr, &y, width, "Permis / Licence", c->sender_licence);
	y += 10;
	cover_field(cr, &y, width, "À / To", c->recipient_name);
	s = format_number(c->recipient_number);
	cover_field(cr, &y, width, "Télécopieur / Fax", s);
	g_free(s);
	y += 10;
	cover_field(cr, &y, width, "Date", c->date);
	cover_field(cr, &y, width, "N° de commande / Order no.", c->order_number);
	y += 12;
	pages = g_strdup_printf("Pages : %d (page couverture incluse)", cc->total);
	show_text(cr, MARGIN, &y, pages, COVER_SIZE, 1, width, PANGO_ALIGN_LEFT, ONE_LINE);
	g_free(pages);
	pages = g_strdup_printf("Pages: %d (including cover)", cc->total);
	show_text(cr, MARGIN, &y, pages, COVER_SIZE, 1, width, PANGO_ALIGN_LEFT, ONE_LINE);
	g_free(pages);
	y += 18;

	for (size = 12.5; size >= 8; size -= 0.5) {
		ny = text_height(cr, nfr, size, width - 24) + 8 +
		     text_height(cr, nen, size, width - 24);
		box_top = cc->ph - MARGIN - ny - 20;
		if (box_top >= y)
			break;
	}
	if (box_top < y)
		box_top = y; /* a custom notice too long even at 8 pt: it runs into the margin */
	cairo_set_line_width(cr, 1.5);
	cairo_rectangle(cr, MARGIN, box_top, width, ny + 20);
	cairo_stroke(cr);
	y = box_top + 10;
	show_text(cr, MARGIN + 12, &y, nfr, size, 0, width - 24, PANGO_ALIGN_LEFT, WRAP);
	y += 8;
	show_text(cr, MARGIN + 12, &y, nen, size, 0, width - 24, PANGO_ALIGN_LEFT, WRAP);
	g_free(nfr);
	g_free(nen);
	return cairo_status(cr) == CAIRO_STATUS_SUCCESS ? 0 : -1;
}

/* ---- content pages ---- */

struct content_ctx {
	PopplerPage *page;
	double pw;
	const char *header; /* replaces pdf_render's page header line */
};

static int paint_content(cairo_t *cr, void *user)
{
	const struct content_ctx *cc = user;
	double y = HEADER_TOP;

	cairo_save(cr);
	poppler_page_render_for_printing(cc->page, cr);
	cairo_restore(cr);
	/*
	 * pdf_render numbers its pages from 1 ("… — page N"); here the cover is
	 * page 1, so its header band (above the 54 pt margin, where it draws
	 * nothing else) is painted over with ours: "page N / total".
	 */
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_rectangle(cr, 0, 0, cc->pw, HEADER_BAND);
	cairo_fill(cr);
	cairo_set_source_rgb(cr, 0, 0, 0);
	show_text(cr, MARGIN, &y, cc->header, 10, 1, cc->pw - 2 * MARGIN, PANGO_ALIGN_LEFT,
	          ONE_LINE);
	cairo_set_line_width(cr, 0.75);
	cairo_move_to(cr, MARGIN, y + 3);
	cairo_line_to(cr, cc->pw - MARGIN, y + 3);
	cairo_stroke(cr);
	return cairo_status(cr) == CAIRO_STATUS_SUCCESS ? 0 : -1;
}

/* Pixel boxes of the images poppler finds on a page (*n of them; g_free the array). */
static struct box *image_boxes(PopplerPage *pg, double pw, double ph, const struct raster *rs,
                               size_t *n)
{
	GList *map = poppler_page_get_image_mapping(pg), *it;
	struct box *b = g_new0(struct box, g_list_length(map) + 1);
	struct fit f = fit_page(rs, pw, ph);
	*n = 0;
	for (it = map; it; it = it->next) {
		const PopplerImageMapping *m = it->data;
		double x1 = m->area.x1 < m->area.x2 ? m->area.x1 : m->area.x2;
		double x2 = m->area.x1 < m->area.x2 ? m->area.x2 : m->area.x1;
		double y1 = m->area.y1 < m->area.y2 ? m->area.y1 : m->area.y2;
		double y2 = m->area.y1 < m->area.y2 ? m->area.y2 : m->area.y1;
		struct box bx;

		bx.x0 = (int)(f.ox + x1 * f.sx);
		bx.x1 = (int)(f.ox + x2 * f.sx + 1);
		bx.y0 = (int)(f.oy + y1 * f.sy);
		bx.y1 = (int)(f.oy + y2 * f.sy + 1);
		if (bx.x0 < 0)
			bx.x0 = 0;
		if (bx.y0 < 0)
			bx.y0 = 0;
		if (bx.x1 > FAX_WIDTH)
			bx.x1 = FAX_WIDTH;
		if (bx.y1 > rs->rows)
			bx.y1 = rs->rows;
		if (bx.x0 < bx.x1 && bx.y0 < bx.y1)
			b[(*n)++] = bx;
	}
	poppler_page_free_image_mapping(map);
	return b;
}

/* ---- unrenderable attachments ---- */

/*
 * pdf_render counts the attachments it could not draw but does not say
 * which: find them (types it never draws; PDF and image files it failed to
 * read, by rendering each alone) and name them in err.
 */
static void name_unrendered(const struct pdf_message *m, const struct pdf_render_opts *po,
                            int count, char *err, size_t errlen)
{
	struct strbuf sb;
	int named = 0;

	sb_init(&sb);
	for (size_t i = 0; i < m->natts && named < 3; i++) {
		const struct pdf_attachment *a = &m->atts[i];
		int bad = !pdf_render_supports(a);

		if (!bad) {
			struct pdf_message one = {0};
			struct pdf_render_result res;
			unsigned char *out = NULL;
			size_t len;

			one.atts = a;
			one.natts = 1;
			if (pdf_render(&one, po, &out, &len, &res, NULL, 0) == PDF_RENDER_OK)
				bad = res.atts_not_rendered > 0;
			free(out);
		}
		if (bad) {
			char *fn = clean_line(
			    a->filename && a->filename[0] ? a->filename : "(no name)", 60);
			char *ct =
			    clean_line(a->content_type ? a->content_type : "unknown type", 60);
			sb_printf(&sb, "%s\"%s\" (%s)", named ? ", " : "", fn, ct);
			g_free(fn);
			g_free(ct);
			named++;
		}
	}
	set_err(err, errlen, "%d attachment%s cannot be rendered on a fax: %s%s", count,
	        count > 1 ? "s" : "", sb.data ? sb.data : "?", count > named ? ", …" : "");
	sb_free(&sb);
}

/* ---- the whole fax ---- */

static int render_pages(struct raster *rs, const struct fax_cover *cover, PopplerDocument *doc,
                        int ncontent, double cover_w, double cover_h, char *err, size_t errlen)
{
	struct cover_ctx cc = {cover, cover_w, cover_h, rs->total};
	char *order = clean_line(cover->order_number ? cover->order_number : "", 40);
	int rc;

	rs->page = 1;
	rc = write_page(rs, cover_w, cover_h, paint_cover, &cc, NULL, 0, err, errlen);
	for (int i = 0; i < ncontent && rc == FAX_RENDER_OK; i++) {
		PopplerPage *pg = poppler_document_get_page(doc, i);
		struct content_ctx ct;
		struct box *boxes;
		size_t nboxes;
		double pw = 0, ph = 0;
		char *header;

		if (g_get_monotonic_time() - rs->t0 > TIME_BUDGET_US) {
			set_err(err, errlen, "too large to render: time limit reached");
			rc = FAX_RENDER_TOO_LARGE;
			if (pg)
				g_object_unref(pg);
			break;
		}
		if (!pg) {
			set_err(err, errlen, "poppler: cannot read page %d", i + 1);
			rc = FAX_RENDER_ERROR;
			break;
		}
		poppler_page_get_size(pg, &pw, &ph);
		if (pw < 1 || ph < 1) {
			pw = cover_w;
			ph = cover_h;
		}
		rs->page = i + 2;
		header = g_strdup_printf("Télécopie / Fax%s%s — page %d / %d", order[0] ? " " : "",
		                         order, rs->page, rs->total);
		ct.page = pg;
		ct.pw = pw;
		ct.header = header;
		boxes = image_boxes(pg, pw, ph, rs, &nboxes);
		rc = write_page(rs, pw, ph, paint_content, &ct, boxes, nboxes, err, errlen);
		g_free(header);
		g_free(boxes);
		g_object_unref(pg);
	}
	g_free(order);
	return rc;
}

/* A new file next to path, mode 0600, its name in tmp. */
static int create_temp(const char *path, char **tmp)
{
	int fd;

	*tmp = g_strdup_printf("%s.XXXXXX", path);
	fd = mkstemp(*tmp);
	if (fd < 0) {
		g_free(*tmp);
		*tmp = NULL;
		return -1;
	}
	if (fchmod(fd, 0600) < 0) {
		close(fd);
		unlink(*tmp);
		g_free(*tmp);
		*tmp = NULL;
		return -1;
	}
	return fd;
}

static int write_tiff(const struct fax_render_opts *o, const struct fax_cover *cover,
                      PopplerDocument *doc, int ncontent, const char *tiff_path, char *err,
                      size_t errlen)
{
	struct raster rs;
	TIFFOpenOptions *topts;
	char *tmp = NULL;
	int fd, fd2, rc;
	double cw = o->paper == PDF_PAPER_A4 ? 595.2756 : 612;
	double ch = o->paper == PDF_PAPER_A4 ? 841.8898 : 792;

	memset(&rs, 0, sizeof(rs));
	rs.o = o;
	rs.rows = fax_page_rows(o->paper, o->fine);
	rs.yres = o->fine ? FAX_YRES_FINE : FAX_YRES_NORMAL;
	rs.total = ncontent + 1;
	rs.t0 = g_get_monotonic_time();

	fd = create_temp(tiff_path, &tmp);
	if (fd < 0) {
		set_err(err, errlen, "cannot create a file next to %s: %s", tiff_path,
		        strerror(errno));
		return FAX_RENDER_ERROR;
	}
	fd2 = dup(fd); /* libtiff closes fd; fd2 is kept to fsync the result */
	topts = TIFFOpenOptionsAlloc();
	if (fd2 < 0 || !topts) {
		set_err(err, errlen, "out of resources: %s", strerror(errno));
		if (topts)
			TIFFOpenOptionsFree(topts);
		if (fd2 >= 0)
			close(fd2);
		close(fd);
		unlink(tmp);
		g_free(tmp);
		return FAX_RENDER_ERROR;
	}
	TIFFOpenOptionsSetErrorHandlerExtR(topts, tiff_on_error, &rs.terr);
	TIFFOpenOptionsSetWarningHandlerExtR(topts, tiff_on_warning, NULL);
	rs.tif = TIFFFdOpenExt(fd, tmp, "w", topts);
	TIFFOpenOptionsFree(topts);
	if (!rs.tif) {
		set_err(err, errlen, "libtiff: cannot open %s: %s", tmp,
		        rs.terr.failed ? rs.terr.msg : "?");
		close(fd);
		close(fd2);
		unlink(tmp);
		g_free(tmp);
		return FAX_RENDER_ERROR;
	}

	rs.band = cairo_image_surface_create(CAIRO_FORMAT_RGB24, FAX_WIDTH, BAND_ROWS);
	rs.err_cur = g_new0(int, FAX_WIDTH + 2);
	rs.err_next = g_new0(int, FAX_WIDTH + 2);
	rs.mask = g_malloc0(FAX_WIDTH);
	rs.gray = g_malloc0(FAX_WIDTH);
	rs.bits = g_malloc0(FAX_WIDTH / 8);
	if (cairo_surface_status(rs.band) != CAIRO_STATUS_SUCCESS) {
		set_err(err, errlen, "cairo: %s",
		        cairo_status_to_string(cairo_surface_status(rs.band)));
		rc = FAX_RENDER_ERROR;
	} else {
		rc = render_pages(&rs, cover, doc, ncontent, cw, ch, err, errlen);
	}
	TIFFClose(rs.tif); /* closes fd */
	if (rc == FAX_RENDER_OK && rs.terr.failed) {
		set_err(err, errlen, "libtiff: %s", rs.terr.msg);
		rc = FAX_RENDER_ERROR;
	}
	if (rc == FAX_RENDER_OK && fsync(fd2) < 0) {
		set_err(err, errlen, "%s: %s", tmp, strerror(errno));
		rc = FAX_RENDER_ERROR;
	}
	if (close(fd2) < 0 && rc == FAX_RENDER_OK) {
		set_err(err, errlen, "%s: %s", tmp, strerror(errno));
		rc = FAX_RENDER_ERROR;
	}
	if (rc == FAX_RENDER_OK && rename(tmp, tiff_path) < 0) {
		set_err(err, errlen, "cannot rename to %s: %s", tiff_path, strerror(errno));
		rc = FAX_RENDER_ERROR;
	}
	if (rc != FAX_RENDER_OK)
		unlink(tmp);
	cairo_surface_destroy(rs.band);
	g_free(rs.err_cur);
	g_free(rs.err_next);
	g_free(rs.mask);
	g_free(rs.gray);
	g_free(rs.bits);
	g_free(tmp);
	return rc;
}

int fax_render(const struct pdf_message *content, const struct fax_cover *cover,
               const struct fax_render_opts *opts, const char *tiff_path, int *pages, char *err,
               size_t errlen)
{
	struct fax_render_opts defaults;
	struct pdf_render_opts po;
	struct pdf_render_result res;
	unsigned char *pdf = NULL;
	size_t pdflen = 0;
	PopplerDocument *doc;
	GBytes *bytes;
	GError *gerr = NULL;
	char why[256] = "";
	int rc, n;

	*pages = 0;
	if (err && errlen)
		err[0] = '\0';
	if (!opts) {
		fax_render_opts_default(&defaults);
		opts = &defaults;
	}
	if (!content || !cover || !tiff_path || !tiff_path[0]) {
		set_err(err, errlen, "fax_render: missing content, cover or file name");
		return FAX_RENDER_ERROR;
	}
	if (opts->max_pages < 1 ||
	    (opts->paper != PDF_PAPER_LETTER && opts->paper != PDF_PAPER_A4) ||
	    (opts->compression != FAX_G4 && opts->compression != FAX_G3)) {
		set_err(err, errlen, "fax_render: bad options");
		return FAX_RENDER_ERROR;
	}
	if ((!content->body || is_blank(content->body, content->body_len)) && content->natts == 0) {
		set_err(err, errlen, "empty message: no text and no attachment to fax");
		return FAX_RENDER_BAD_INPUT;
	}
	if (opts->max_pages < 2) {
		set_err(err, errlen, "too large to render: more than %d pages", opts->max_pages);
		return FAX_RENDER_TOO_LARGE;
	}

	pdf_render_opts_default(&po);
	po.paper = opts->paper;
	po.max_pages = opts->max_pages - 1; /* the cover is one */
	po.title = "Télécopie / Fax";
	po.font_size = BODY_FONT_SIZE;
	rc = pdf_render(content, &po, &pdf, &pdflen, &res, why, sizeof(why));
	if (rc == PDF_RENDER_TOO_LARGE) {
		/* why: "too large to render: page limit reached" and the like */
		set_err(err, errlen, "%s (a fax has at most %d pages, cover included)", why,
		        opts->max_pages);
		return FAX_RENDER_TOO_LARGE;
	}
	if (rc != PDF_RENDER_OK) {
		set_err(err, errlen, "%s", why);
		return FAX_RENDER_ERROR;
	}
	if (res.atts_not_rendered > 0) {
		free(pdf);
		name_unrendered(content, &po, res.atts_not_rendered, err, errlen);
		return FAX_RENDER_BAD_INPUT;
	}

	bytes = g_bytes_new_with_free_func(pdf, pdflen, free, pdf);
	doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
	g_bytes_unref(bytes);
	if (!doc) {
		set_err(err, errlen, "poppler: cannot read the rendered PDF: %s",
		        gerr ? gerr->message : "?");
		g_clear_error(&gerr);
		return FAX_RENDER_ERROR;
	}
	n = poppler_document_get_n_pages(doc);
	if (n < 1) {
		set_err(err, errlen, "poppler: the rendered PDF has no page");
		g_object_unref(doc);
		return FAX_RENDER_ERROR;
	}
	if (n + 1 > opts->max_pages) {
		set_err(err, errlen, "too large to render: %d pages, at most %d", n + 1,
		        opts->max_pages);
		g_object_unref(doc);
		return FAX_RENDER_TOO_LARGE;
	}
	rc = write_tiff(opts, cover, doc, n, tiff_path, err, errlen);
	g_object_unref(doc);
	if (rc == FAX_RENDER_OK)
		*pages = n + 1;
	return rc;
}
