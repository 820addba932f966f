/*
 * test_fax_render.c — the fax pages (fax_render): TIFF Class F tags read back
 * with libtiff, HylaFAX's tiffcheck accepting the file as is, ink where the
 * text and its accents are and none in the margins, PDF and PNG attachments,
 * the refusals (empty message, unrenderable attachment, too many pages), the
 * file's mode; and every document rendered goes through an in-process T.30
 * call (two spandsp fax terminals, tests/fax/t30_loop.c) whose received pages
 * must equal the pages sent (tests/fax/tiff_compare.c).  Files are written
 * only under a mkdtemp directory, removed at the end.
 */
#include "autoconfig.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <dirent.h>
#include <errno.h>
#include <pango/pangocairo.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <tiffio.h>
#include <time.h>
#include <unistd.h>

#include "fax_render.h"
#include "pdf_render.h"
#include "t30_loop.h"
#include "tap.h"
#include "tiff_compare.h"
#include "util.h"

#define TIFFCHECK "/usr/sbin/tiffcheck"

static char tmpdir[64];
static int nloops;     /* T.30 calls made */
static double loop_ms; /* their total wall time */
static int loop_pages; /* pages they carried */

static char *path_in(const char *name)
{
	size_t n = strlen(tmpdir) + strlen(name) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", tmpdir, name);
	return p;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static cairo_status_t sb_write(void *closure, const unsigned char *data, unsigned int len)
{
	sb_append(closure, (const char *)data, len);
	return CAIRO_STATUS_SUCCESS;
}

/* A PDF of npages A4 pages with a line of text each and a light grey box. */
static char *make_pdf(int npages, size_t *len)
{
	struct strbuf sb;
	cairo_surface_t *s;
	cairo_t *cr;

	sb_init(&sb);
	s = cairo_pdf_surface_create_for_stream(sb_write, &sb, 595, 842);
	cr = cairo_create(s);
	for (int i = 0; i < npages; i++) {
		PangoLayout *l = pango_cairo_create_layout(cr);
		PangoFontDescription *fd = pango_font_description_from_string("DejaVu Sans 16");
		char line[64];

		snprintf(line, sizeof(line), "Réquisition d'imagerie 4711, page %d", i + 1);
		pango_layout_set_font_description(l, fd);
		pango_layout_set_text(l, line, -1);
		cairo_move_to(cr, 72, 72);
		pango_cairo_show_layout(cr, l);
		pango_font_description_free(fd);
		g_object_unref(l);
		cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
		cairo_rectangle(cr, 72, 140, 300, 60);
		cairo_fill(cr);
		cairo_set_source_rgb(cr, 0, 0, 0);
		cairo_show_page(cr);
	}
	cairo_destroy(cr);
	cairo_surface_finish(s);
	cairo_surface_destroy(s);
	*len = sb.len;
	return sb_steal(&sb);
}

/* A w x h PNG: left half grey level `left`, right half `right` (0 black .. 1 white). */
static char *make_png(int w, int h, double left, double right, size_t *len)
{
	struct strbuf sb;
	cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
	cairo_t *cr = cairo_create(s);

	cairo_set_source_rgb(cr, left, left, left);
	cairo_rectangle(cr, 0, 0, w / 2, h);
	cairo_fill(cr);
	cairo_set_source_rgb(cr, right, right, right);
	cairo_rectangle(cr, w / 2, 0, w - w / 2, h);
	cairo_fill(cr);
	cairo_destroy(cr);
	sb_init(&sb);
	cairo_surface_write_to_png_stream(s, sb_write, &sb);
	cairo_surface_destroy(s);
	*len = sb.len;
	return sb_steal(&sb);
}

static const char *recips[] = {"8195550102@fax.hopital.example"};

static void base_message(struct pdf_message *m, const char *body)
{
	memset(m, 0, sizeof(*m));
	m->from = "Dr Jean Tremblay <dr.tremblay@hopital.example>";
	m->date = "Sun, 22 Nov 2026 14:03:00 -0500";
	m->recipients = recips;
	m->nrecipients = 1;
	m->subject = "Ordonnance";
	m->body = body;
	m->body_len = body ? strlen(body) : 0;
}

static const struct fax_cover cover = {"Hôpital Exemple",
                                       "Dr Jean Tremblay",
                                       "dr.tremblay@hopital.example",
                                       "8195550100",
                                       "1-23456",
                                       "Pharmacie du Lac",
                                       "8195550102",
                                       "2026-11-22 14:03",
                                       "CM-20261122-7K3F9Q2A",
                                       NULL,
                                       NULL};

/* Every file fax_render wrote, to send each through the T.30 loop at the end. */
static char *rendered[64];
static size_t nrendered;

static void remember(const char *name)
{
	for (size_t i = 0; i < nrendered; i++)
		if (strcmp(rendered[i], name) == 0)
			return;
	if (nrendered < sizeof(rendered) / sizeof(rendered[0]))
		rendered[nrendered++] = xstrdup(name);
}

/* Render into tmpdir/name; returns the status, *pages the page count. */
static int render_cover(const struct pdf_message *m, const struct fax_cover *c,
                        const struct fax_render_opts *o, const char *name, int *pages, char *err,
                        size_t errlen)
{
	char *p = path_in(name);
	int rc = fax_render(m, c, o, p, pages, err, errlen);

	free(p);
	if (rc == FAX_RENDER_OK)
		remember(name);
	return rc;
}

static int render(const struct pdf_message *m, const struct fax_render_opts *o, const char *name,
                  int *pages, char *err, size_t errlen)
{
	return render_cover(m, &cover, o, name, pages, err, errlen);
}

/* ---- checks ---- */

/* Every page's tags as RFC 3949 profile S and fax_render.h say; 0 when all are right. */
static int check_tags(const char *name, const struct fax_render_opts *o, int want_pages)
{
	char *p = path_in(name);
	TIFF *t = TIFFOpen(p, "r");
	int bad = 0, n = 0, rows = fax_page_rows(o->paper, o->fine);
	float yres_want = o->fine ? FAX_YRES_FINE : FAX_YRES_NORMAL;

	free(p);
	if (!t) {
		diag("%s: libtiff cannot open it", name);
		return -1;
	}
	do {
		uint32_t w = 0, h = 0, sft = 0, g3 = 99, g4 = 99;
		uint16_t bps = 0, spp = 0, comp = 0, photo = 99, fill = 0, unit = 0, pn = 99,
		         pt = 0;
		float xr = 0, yr = 0;

		n++;
		TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
		TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
		TIFFGetField(t, TIFFTAG_SUBFILETYPE, &sft);
		TIFFGetField(t, TIFFTAG_BITSPERSAMPLE, &bps);
		TIFFGetField(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
		TIFFGetField(t, TIFFTAG_COMPRESSION, &comp);
		TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo);
		TIFFGetField(t, TIFFTAG_FILLORDER, &fill);
		TIFFGetField(t, TIFFTAG_XRESOLUTION, &xr);
		TIFFGetField(t, TIFFTAG_YRESOLUTION, &yr);
		TIFFGetField(t, TIFFTAG_RESOLUTIONUNIT, &unit);
		TIFFGetField(t, TIFFTAG_PAGENUMBER, &pn, &pt);
		if (w != FAX_WIDTH || (int)h != rows || sft != FILETYPE_PAGE || bps != 1 ||
		    spp != 1 || photo != PHOTOMETRIC_MINISWHITE || fill != FILLORDER_MSB2LSB ||
		    xr != FAX_XRES || yr != yres_want || unit != RESUNIT_INCH || pn != n - 1 ||
		    pt != want_pages || TIFFNumberOfStrips(t) != 1) {
			diag("%s page %d: %ux%u subfile %u bps %u spp %u photo %u fill %u res "
			     "%gx%g unit "
			     "%u pagenumber %u/%u strips %u",
			     name, n, w, h, sft, bps, spp, photo, fill, xr, yr, unit, pn, pt,
			     (unsigned)TIFFNumberOfStrips(t));
			bad++;
		}
		if (o->compression == FAX_G4) {
			TIFFGetField(t, TIFFTAG_GROUP4OPTIONS, &g4);
			if (comp != COMPRESSION_CCITTFAX4 || g4 != 0) {
				diag("%s page %d: compression %u T6Options %u", name, n, comp, g4);
				bad++;
			}
		} else {
			TIFFGetField(t, TIFFTAG_GROUP3OPTIONS, &g3);
			if (comp != COMPRESSION_CCITTFAX3 ||
			    g3 != (GROUP3OPT_2DENCODING | GROUP3OPT_FILLBITS)) {
				diag("%s page %d: compression %u T4Options %u", name, n, comp, g3);
				bad++;
			}
		}
	} while (TIFFReadDirectory(t));
	TIFFClose(t);
	if (n != want_pages) {
		diag("%s: %d pages, want %d", name, n, want_pages);
		bad++;
	}
	return bad ? -1 : 0;
}

/*
 * HylaFAX's verdict on a file: the first line of tiffcheck's output with
 * the options tiff2fax gives it for this job (encoding, VRES, PAGELENGTH
 * 279 for Letter / 297 for A4); "" when tiffcheck cannot run.
 */
static void tiffcheck(const char *path, const char *enc, int vres, int length, char *out,
                      size_t outlen)
{
	char cmd[512];
	FILE *p;

	out[0] = '\0';
	snprintf(cmd, sizeof(cmd), TIFFCHECK " %s -r %d -l %d %s 2>&1", enc, vres, length, path);
	p = popen(cmd, "r");
	if (!p)
		return;
	if (!fgets(out, (int)outlen, p))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	while (fgetc(p) != EOF)
		;
	pclose(p);
}

static void check_tiffcheck(const char *name, const struct fax_render_opts *o)
{
	char *p = path_in(name), verdict[256];
	int vres = o->fine ? 196 : 98, len = o->paper == PDF_PAPER_A4 ? 297 : 279;

	tiffcheck(p, o->compression == FAX_G4 ? "-3" : "-2", vres, len, verdict, sizeof(verdict));
	if (!is_str(verdict, "OK", "tiffcheck: HylaFAX sends it as is"))
		diag("%s: tiffcheck %s -r %d -l %d", name, o->compression == FAX_G4 ? "-3" : "-2",
		     vres, len);
	free(p);
}

/* Send the file through an in-process T.30 call and compare what arrives; 0 when equal. */
static int loop_check(const char *name, const struct t30_loop_opts *lo, const char *what)
{
	char *tx = path_in(name), rxname[128], *rx, err[512] = "";
	struct t30_loop_result r;
	int rc, pa = 0, pb = 0, first = 0;
	double t0 = now_ms();

	snprintf(rxname, sizeof(rxname), "rx-%s-%d", name, nloops);
	rx = path_in(rxname);
	rc = t30_loop_run(tx, rx, lo, &r, err, sizeof(err));
	loop_ms += now_ms() - t0;
	nloops++;
	loop_pages += r.pages_rx;
	if (rc != 0) {
		ok(0, "T.30 %s: %s transmitted", what, name);
		diag("%s", err);
	} else {
		rc = tiff_compare(tx, rx, &pa, &pb, &first, err, sizeof(err));
		if (!ok(rc == 0 && pa == r.pages_in_file, "T.30 %s: %s, %d pages at %d bit/s, %s",
		        what, name, r.pages_rx, r.bit_rate, "received pages equal the pages sent"))
			diag("tiff_compare %d: %s", rc, err);
	}
	unlink(rx);
	free(rx);
	free(tx);
	return rc;
}

/* Through the loop with and without ECM. */
static void loop_both(const char *name)
{
	struct t30_loop_opts lo = {0, 0, 0, 0};

	loop_check(name, &lo, "no ECM");
	lo.ecm = 1;
	loop_check(name, &lo, "ECM");
}

/* ---- pixels ---- */

struct page {
	unsigned char *bits;
	int w, h, stride;
};

static int load_page(const char *name, int n, struct page *pg)
{
	char *p = path_in(name), err[256];
	int rc = tiff_read_page(p, n, &pg->bits, &pg->w, &pg->h, err, sizeof(err));

	free(p);
	if (rc < 0) {
		diag("%s page %d: %s", name, n, err);
		pg->bits = NULL;
		return -1;
	}
	pg->stride = (pg->w + 7) / 8;
	return 0;
}

static int ink(const struct page *pg, int x, int y)
{
	return (pg->bits[(size_t)y * (size_t)pg->stride + (size_t)(x >> 3)] >> (7 - (x & 7))) & 1;
}

static long ink_in(const struct page *pg, int x0, int y0, int x1, int y1)
{
	long n = 0;

	for (int y = y0; y < y1 && y < pg->h; y++)
		for (int x = x0; x < x1 && x < pg->w; x++)
			n += ink(pg, x, y);
	return n;
}

/* ---- tests ---- */

static void test_rows(void)
{
	is_int(fax_page_rows(PDF_PAPER_A4, 1), 2291, "rows: A4 fine 2291 (2292 is re-imaged)");
	is_int(fax_page_rows(PDF_PAPER_A4, 0), 1145, "rows: A4 normal 1145");
	is_int(fax_page_rows(PDF_PAPER_LETTER, 1), 2152, "rows: Letter fine 2152");
	is_int(fax_page_rows(PDF_PAPER_LETTER, 0), 1076, "rows: Letter normal 1076");
}

/* A one-page blank G4 TIFF of the given rows, to see tiffcheck refuse a wrong length. */
static int write_blank(const char *name, int rows)
{
	char *p = path_in(name);
	TIFF *t = TIFFOpen(p, "w");
	unsigned char line[FAX_WIDTH / 8];
	int rc = 0;

	free(p);
	if (!t)
		return -1;
	memset(line, 0, sizeof(line));
	TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)FAX_WIDTH);
	TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)rows);
	TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 1);
	TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
	TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);
	TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX4);
	TIFFSetField(t, TIFFTAG_XRESOLUTION, 204.0f);
	TIFFSetField(t, TIFFTAG_YRESOLUTION, 196.0f);
	TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH);
	TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, (uint32_t)rows);
	for (int r = 0; r < rows && rc == 0; r++)
		if (TIFFWriteScanline(t, line, (uint32_t)r, 0) < 0)
			rc = -1;
	TIFFClose(t);
	return rc;
}

static void test_tiffcheck_itself(void)
{
	char verdict[256], *p;

	if (access(TIFFCHECK, X_OK) != 0) {
		ok(0,
		   "tiffcheck: " TIFFCHECK " is installed (hylafax-server, a declared dependency)");
		return;
	}
	/* the row counts of fax_render.h are the largest tiffcheck takes */
	p = path_in("a4-2292.tif");
	write_blank("a4-2292.tif", 2292);
	tiffcheck(p, "-3", 196, 297, verdict, sizeof(verdict));
	ok(strncmp(verdict, "RESIZE", 6) == 0, "tiffcheck: A4 with 2292 rows is resized (%s)",
	   verdict);
	free(p);
	p = path_in("let-2153.tif");
	write_blank("let-2153.tif", 2153);
	tiffcheck(p, "-3", 196, 279, verdict, sizeof(verdict));
	ok(strncmp(verdict, "RESIZE", 6) == 0,
	   "tiffcheck: Letter with 2153 rows is resized at PAGELENGTH 279 (%s)", verdict);
	free(p);
	p = path_in("let-2152.tif");
	write_blank("let-2152.tif", 2152);
	tiffcheck(p, "-3", 196, 279, verdict, sizeof(verdict));
	is_str(verdict, "OK", "tiffcheck: Letter with 2152 rows is OK");
	tiffcheck(p, "-2", 196, 279, verdict, sizeof(verdict));
	ok(strncmp(verdict, "REFORMAT", 8) == 0,
	   "tiffcheck: G4 for a G3-only job is reformatted (%s)", verdict);
	free(p);
}

/* The full document in each format: tags, tiffcheck, mode, T.30 both ways. */
static void test_formats(void)
{
	static const struct {
		enum pdf_paper paper;
		int fine;
		enum fax_compression comp;
		const char *name;
	} fmt[] = {
	    {PDF_PAPER_LETTER, 1, FAX_G4, "letter-fine-g4.tif"},
	    {PDF_PAPER_A4, 1, FAX_G3, "a4-fine-g3.tif"},
	    {PDF_PAPER_LETTER, 0, FAX_G3, "letter-normal-g3.tif"},
	    {PDF_PAPER_A4, 0, FAX_G4, "a4-normal-g4.tif"},
	};
	struct pdf_message m;
	struct pdf_attachment atts[3];
	size_t pdflen, pnglen;
	char *pdf = make_pdf(2, &pdflen), *png = make_png(400, 300, 0.3, 0.7, &pnglen);
	static const char txt[] = "Posologie : 500 mg trois fois par jour.\n";

	base_message(&m, "Bonjour,\n\nVeuillez servir l'ordonnance ci-jointe. Élève, été, "
	                 "ça, où, Ê.\n\nDr Jean Tremblay\n");
	atts[0] = (struct pdf_attachment){"posologie.txt", "text/plain", (const unsigned char *)txt,
	                                  sizeof(txt) - 1};
	atts[1] = (struct pdf_attachment){"requisition.pdf", "application/pdf",
	                                  (const unsigned char *)pdf, pdflen};
	atts[2] =
	    (struct pdf_attachment){"photo.png", "image/png", (const unsigned char *)png, pnglen};
	m.atts = atts;
	m.natts = 3;

	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		struct fax_render_opts o;
		char err[512] = "", *p;
		struct stat st;
		int pages = 0, rc;

		fax_render_opts_default(&o);
		o.paper = fmt[i].paper;
		o.fine = fmt[i].fine;
		o.compression = fmt[i].comp;
		rc = render(&m, &o, fmt[i].name, &pages, err, sizeof(err));
		if (!is_int(rc, FAX_RENDER_OK, fmt[i].name)) {
			diag("%s", err);
			continue;
		}
		/* cover, body + text attachment, PNG page, 2 PDF pages */
		is_int(pages, 5, "pages: cover + body + PNG + 2 PDF pages");
		ok(check_tags(fmt[i].name, &o, pages) == 0, "tags: %s as TIFF Class F",
		   fmt[i].name);
		check_tiffcheck(fmt[i].name, &o);
		p = path_in(fmt[i].name);
		memset(&st, 0, sizeof(st));
		rc = stat(p, &st);
		ok(rc == 0 && (st.st_mode & 07777) == 0600, "file mode 0600 (%o)",
		   (unsigned)(st.st_mode & 07777));
		free(p);
	}
	free(pdf);
	free(png);
}

/* "ÉÉÉÉ" and "EEEE" at the same place: the only difference is ink above the capitals. */
static void test_accents(void)
{
	struct pdf_message m;
	struct fax_render_opts o;
	struct page a = {0}, b = {0};
	char err[512];
	int pages, top_e = -1, dy0 = -1, dy1 = -1, dx0 = FAX_WIDTH, dx1 = -1;
	long extra_a = 0, extra_b = 0;

	fax_render_opts_default(&o);
	base_message(&m, "ÉÉÉÉ ÉTÉ");
	if (render(&m, &o, "accent.tif", &pages, err, sizeof(err)) != FAX_RENDER_OK)
		diag("%s", err);
	base_message(&m, "EEEE ETE");
	if (render(&m, &o, "plain.tif", &pages, err, sizeof(err)) != FAX_RENDER_OK)
		diag("%s", err);
	if (load_page("accent.tif", 2, &a) < 0 || load_page("plain.tif", 2, &b) < 0) {
		ok(0, "accents: body pages readable");
		goto out;
	}
	for (int y = 0; y < a.h; y++)
		for (int x = 0; x < a.w; x++) {
			int ia = ink(&a, x, y), ib = ink(&b, x, y);
			if (ia && !ib) {
				extra_a++;
				if (dy0 < 0)
					dy0 = y;
				dy1 = y;
				if (x < dx0)
					dx0 = x;
				if (x > dx1)
					dx1 = x;
			} else if (ib && !ia) {
				extra_b++;
			}
		}
	ok(extra_a > 60, "accents: É has ink E has not (%ld pixels)", extra_a);
	is_int(extra_b, 0, "accents: no ink of E missing from É");
	/* the capitals' top under the accents, in the plain rendering */
	for (int y = 0; y < b.h && top_e < 0; y++)
		if (ink_in(&b, dx0, y, dx1 + 1, y + 1) > 0 && y > dy0)
			top_e = y;
	ok(dy0 >= 0 && top_e > 0 && dy1 <= top_e + 1,
	   "accents: the extra ink (rows %d-%d) lies above the capitals (top row %d)", dy0, dy1,
	   top_e);
	ok(dy1 - dy0 >= 3 && dx1 - dx0 > 150, "accents: six accents, visible (%dx%d pixels)",
	   dx1 - dx0 + 1, dy1 - dy0 + 1);
out:
	free(a.bits);
	free(b.bits);
}

/* Ink where the text is, none in the margins; the cover has ink too. */
static void test_layout(void)
{
	struct pdf_message m;
	struct fax_render_opts o;
	struct page body = {0}, cov = {0};
	char err[512];
	int pages;
	/* 0.75 in margins: 153 pixels across at 204 dpi, 147 rows down at 196 lpi */
	const int mx = 140, my_bottom = 140;

	fax_render_opts_default(&o);
	base_message(&m,
	             "Ligne de texte du corps du message, assez longue pour aller d'une marge "
	             "à l'autre et revenir à la ligne plusieurs fois de suite, encore et encore "
	             "jusqu'à remplir quelques lignes.\n");
	if (render(&m, &o, "layout.tif", &pages, err, sizeof(err)) != FAX_RENDER_OK ||
	    load_page("layout.tif", 2, &body) < 0 || load_page("layout.tif", 1, &cov) < 0) {
		ok(0, "layout: rendered (%s)", err);
		goto out;
	}
	is_int(pages, 2, "layout: cover + one page");
	is_int(ink_in(&body, 0, 0, mx, body.h), 0, "layout: no ink in the left margin");
	is_int(ink_in(&body, FAX_WIDTH - mx, 0, FAX_WIDTH, body.h), 0,
	       "layout: no ink in the right margin");
	is_int(ink_in(&body, 0, body.h - my_bottom, FAX_WIDTH, body.h), 0,
	       "layout: no ink in the bottom margin");
	is_int(ink_in(&body, 0, 0, FAX_WIDTH, 40), 0, "layout: nothing in the top 40 rows");
	ok(ink_in(&body, mx, 60, 700, 130) > 500, "layout: page header line has ink");
	ok(ink_in(&body, mx, 150, FAX_WIDTH - mx, 700) > 5000,
	   "layout: header fields and body text have ink");
	ok(ink_in(&body, mx, 1000, FAX_WIDTH - mx, body.h) == 0, "layout: lower half empty");
	ok(ink_in(&cov, mx, 100, FAX_WIDTH - mx, 600) > 20000,
	   "layout: cover has establishment and title");
	ok(ink_in(&cov, mx, cov.h - 700, FAX_WIDTH - mx, cov.h - 140) > 20000,
	   "layout: cover has the confidentiality notice at the bottom");
	is_int(ink_in(&cov, 0, 0, mx, cov.h), 0, "layout: cover's left margin empty");
out:
	free(body.bits);
	free(cov.bits);
}

static void test_attachments(void)
{
	struct pdf_message m;
	struct pdf_attachment att;
	struct fax_render_opts o;
	struct page pg = {0};
	size_t pdflen, pnglen;
	char *pdf = make_pdf(2, &pdflen), *png = make_png(600, 400, 0.25, 0.75, &pnglen);
	char err[512];
	int p0 = 0, p1 = 0, p2 = 0;

	fax_render_opts_default(&o);
	base_message(&m, "Voir pièce jointe.");
	if (render(&m, &o, "noatt.tif", &p0, err, sizeof(err)) != FAX_RENDER_OK)
		diag("%s", err);
	att = (struct pdf_attachment){"req.pdf", "application/pdf", (const unsigned char *)pdf,
	                              pdflen};
	m.atts = &att;
	m.natts = 1;
	if (render(&m, &o, "pdfatt.tif", &p1, err, sizeof(err)) != FAX_RENDER_OK)
		diag("%s", err);
	is_int(p1, p0 + 2, "attachments: a 2-page PDF adds 2 pages");

	att = (struct pdf_attachment){"photo.png", "image/png", (const unsigned char *)png, pnglen};
	if (render(&m, &o, "pngatt.tif", &p2, err, sizeof(err)) != FAX_RENDER_OK)
		diag("%s", err);
	is_int(p2, p0 + 1, "attachments: a PNG adds 1 page");
	if (load_page("pngatt.tif", p2, &pg) == 0) {
		/* the image fills the text width (504 pt = 1428 px) below the heading */
		long dark = ink_in(&pg, 300, 400, 700, 800),
		     light = ink_in(&pg, 1050, 400, 1450, 800);
		double fd = dark / 160000.0, fl = light / 160000.0;

		ok(fd > 0.6 && fd < 0.9, "attachments: 25%% grey is dithered, %.0f%% black",
		   fd * 100);
		ok(fl > 0.1 && fl < 0.4, "attachments: 75%% grey is dithered, %.0f%% black",
		   fl * 100);
		free(pg.bits);
	} else {
		ok(0, "attachments: PNG page readable");
	}
	free(pdf);
	free(png);
}

static void test_refusals(void)
{
	struct pdf_message m;
	struct pdf_attachment atts[3];
	struct fax_render_opts o;
	static const char jpeg[] = "\xFF\xD8\xFF\xE0 not really a JPEG";
	static const char broken[] = "%PDF-1.4 nothing else";
	char err[512] = "", *p;
	int pages = -1, rc;
	size_t pdflen;
	char *pdf = make_pdf(2, &pdflen);

	fax_render_opts_default(&o);
	base_message(&m, NULL);
	rc = render(&m, &o, "empty.tif", &pages, err, sizeof(err));
	is_int(rc, FAX_RENDER_BAD_INPUT, "refuse: no body, no attachment");
	ok(strstr(err, "empty") != NULL, "refuse: says empty (%s)", err);
	base_message(&m, " \r\n\t\n ");
	is_int(render(&m, &o, "empty.tif", &pages, err, sizeof(err)), FAX_RENDER_BAD_INPUT,
	       "refuse: blank body");
	p = path_in("empty.tif");
	ok(access(p, F_OK) != 0, "refuse: no file left");
	free(p);

	base_message(&m, "Voir les pièces jointes.");
	atts[0] = (struct pdf_attachment){"scan.jpg", "image/jpeg", (const unsigned char *)jpeg,
	                                  sizeof(jpeg) - 1};
	atts[1] = (struct pdf_attachment){"req.pdf", "application/pdf", (const unsigned char *)pdf,
	                                  pdflen};
	atts[2] = (struct pdf_attachment){"broken.pdf", "application/pdf",
	                                  (const unsigned char *)broken, sizeof(broken) - 1};
	m.atts = atts;
	m.natts = 3;
	rc = render(&m, &o, "atts.tif", &pages, err, sizeof(err));
	is_int(rc, FAX_RENDER_BAD_INPUT, "refuse: unrenderable attachments");
	ok(strstr(err, "scan.jpg") && strstr(err, "image/jpeg") && strstr(err, "broken.pdf") &&
	       !strstr(err, "req.pdf") && strstr(err, "2 attachments"),
	   "refuse: names the JPEG and the broken PDF, not the good one (%s)", err);

	/* page bounds: cover + body + 2 PDF pages = 4 */
	m.natts = 1;
	m.atts = atts + 1;
	o.max_pages = 3;
	rc = render(&m, &o, "big.tif", &pages, err, sizeof(err));
	is_int(rc, FAX_RENDER_TOO_LARGE, "refuse: 4 pages with max_pages 3");
	o.max_pages = 4;
	rc = render(&m, &o, "big.tif", &pages, err, sizeof(err));
	ok(rc == FAX_RENDER_OK && pages == 4, "max_pages 4: 4 pages fit (%d, %s)", pages, err);
	{
		struct strbuf sb;
		sb_init(&sb);
		for (int i = 0; i < 400; i++)
			sb_printf(&sb, "Ligne %d du dossier, texte assez long pour une ligne.\n",
			          i);
		base_message(&m, sb.data);
		o.max_pages = 5;
		rc = render(&m, &o, "long.tif", &pages, err, sizeof(err));
		ok(rc == FAX_RENDER_TOO_LARGE, "refuse: a long body beyond 5 pages (%s)", err);
		sb_free(&sb);
	}
	p = path_in("long.tif");
	ok(access(p, F_OK) != 0, "refuse: no file left after TOO_LARGE");
	free(p);
	free(pdf);
}

/* Replaces an existing file, mode 0600 whatever the umask, no temporary file left. */
static void test_file(void)
{
	struct pdf_message m;
	struct fax_render_opts o;
	char *p = path_in("replace.tif"), err[512];
	struct stat st;
	FILE *f = fopen(p, "w");
	mode_t old = umask(0);
	int pages, rc, others = 0;
	DIR *d;
	struct dirent *de;

	if (f) {
		fputs("old content", f);
		fclose(f);
	}
	chmod(p, 0644);
	fax_render_opts_default(&o);
	base_message(&m, "Texte.");
	rc = render(&m, &o, "replace.tif", &pages, err, sizeof(err));
	umask(old);
	is_int(rc, FAX_RENDER_OK, "file: render over an existing file");
	memset(&st, 0, sizeof(st));
	rc = stat(p, &st);
	ok(rc == 0 && (st.st_mode & 07777) == 0600 && st.st_size > 1000,
	   "file: replaced, mode 0600 with umask 0 (%o)", (unsigned)(st.st_mode & 07777));
	d = opendir(tmpdir);
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, "replace.tif.", 12) == 0)
			others++;
	if (d)
		closedir(d);
	is_int(others, 0, "file: no temporary file left");
	free(p);
	p = xstrdup("/nonexistent-dir/x.tif");
	rc = fax_render(&m, &cover, &o, p, &pages, err, sizeof(err));
	ok(rc == FAX_RENDER_ERROR && err[0], "file: unwritable directory is an error (%s)", err);
	free(p);
}

/* Hostile cover fields: invalid UTF-8, controls, a huge name; still one cover page. */
static void test_hostile_cover(void)
{
	struct pdf_message m;
	struct fax_render_opts o;
	struct fax_cover c = cover;
	char big[20000], err[512];
	int pages, rc;

	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	c.establishment = big;
	c.sender_name = "Dr \xff\xfe Tr\x01\x1b[31mmblay";
	c.recipient_number = "not a number\n";
	c.notice_fr = big;
	c.notice_en = "";
	c.sender_phone = NULL;
	fax_render_opts_default(&o);
	base_message(&m, "Texte\0avec NUL");
	m.body_len = 14;
	rc = render_cover(&m, &c, &o, "hostile.tif", &pages, err, sizeof(err));
	ok(rc == FAX_RENDER_OK && pages == 2, "hostile cover fields: rendered on one page (%s)",
	   err);
	if (rc == FAX_RENDER_OK)
		ok(check_tags("hostile.tif", &o, 2) == 0, "hostile cover fields: valid TIFF");
}

/* tiff_compare itself must see a difference. */
static void test_compare_sees_differences(void)
{
	char *a = path_in("accent.tif"), *b = path_in("plain.tif"), *c = path_in("pdfatt.tif");
	char err[256];
	int pa, pb, first, rc;

	rc = tiff_compare(a, b, &pa, &pb, &first, err, sizeof(err));
	ok(rc == 1 && first == 2, "tiff_compare: É vs E differ on page 2 (%s)", err);
	rc = tiff_compare(a, c, &pa, &pb, &first, err, sizeof(err));
	ok(rc == 1 && pa == 2 && pb == 4, "tiff_compare: page counts differ (%s)", err);
	rc = tiff_compare(a, a, &pa, &pb, &first, err, sizeof(err));
	ok(rc == 0 && pa == 2, "tiff_compare: a file equals itself");
	free(a);
	free(b);
	free(c);
}

/* V.29 and V.27ter as well (the loop above negotiates V.17). */
static void test_modems(void)
{
	struct t30_loop_opts lo = {0, T30_LOOP_V29, 0, 0};

	loop_check("layout.tif", &lo, "V.29");
	lo.modems = T30_LOOP_V27TER;
	lo.ecm = 1;
	loop_check("layout.tif", &lo, "V.27ter ECM");
}

struct thr {
	char name[32];
	int rc;
};

static void *thread_render(void *arg)
{
	struct thr *t = arg;
	struct pdf_message m;
	struct fax_render_opts o;
	char err[256];
	int pages;

	fax_render_opts_default(&o);
	base_message(&m, "Rendu en parallèle, même texte.");
	t->rc = render(&m, &o, t->name, &pages, err, sizeof(err));
	return NULL;
}

static void test_threads(void)
{
	struct thr t[2] = {{"thr0.tif", -9}, {"thr1.tif", -9}};
	pthread_t th[2];
	char *a = path_in("thr0.tif"), *b = path_in("thr1.tif"), err[256];

	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, thread_render, &t[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ok(t[0].rc == 0 && t[1].rc == 0 &&
	       tiff_compare(a, b, NULL, NULL, NULL, err, sizeof(err)) == 0,
	   "threads: two renderings at once, identical");
	free(a);
	free(b);
}

static void measure(void)
{
	struct pdf_message m;
	struct fax_render_opts o;
	struct strbuf sb;
	char err[256];
	int pages1 = 0, pages10 = 0;
	double t0, t1, t2;

	fax_render_opts_default(&o);
	base_message(&m, "Une ordonnance d'une page : amoxicilline 500 mg.");
	t0 = now_ms();
	render(&m, &o, "one.tif", &pages1, err, sizeof(err));
	t1 = now_ms();
	sb_init(&sb);
	for (int i = 0; i < 470; i++)
		sb_printf(&sb, "Ligne %d du dossier, résultats et suivi du traitement en cours.\n",
		          i);
	base_message(&m, sb.data);
	t2 = now_ms();
	render(&m, &o, "ten.tif", &pages10, err, sizeof(err));
	ok(pages10 >= 10, "measure: a long body renders %d pages", pages10);
	diag("render: 1-page message (%d pages with cover) %.0f ms; %d-page message %.0f ms",
	     pages1, t1 - t0, pages10 - 1, now_ms() - t2);
	sb_free(&sb);
}

static void cleanup(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *p = path_in(de->d_name);
		unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_fax_render.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	pdf_render_global_init();

	test_rows();
	test_tiffcheck_itself();
	test_formats();
	test_accents();
	test_layout();
	test_attachments();
	test_refusals();
	test_file();
	test_hostile_cover();
	test_compare_sees_differences();
	test_modems();
	test_threads();
	measure();
	/* every document rendered above, with and without ECM */
	for (size_t i = 0; i < nrendered; i++) {
		loop_both(rendered[i]);
		free(rendered[i]);
	}
	ok(nrendered >= 15 && nloops == 2 * (int)nrendered + 2, "T.30: %zu documents, %d calls",
	   nrendered, nloops);
	diag("T.30 loop: %d calls, %d pages, %.0f ms, %.1f ms per page", nloops, loop_pages,
	     loop_ms, loop_pages ? loop_ms / loop_pages : 0);

	cleanup();
	return done_testing();
}
