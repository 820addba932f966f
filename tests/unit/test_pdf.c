/*
 * test_pdf.c — the password-protected PDF for patients: rendering
 * (pdf_render), AES encryption (pdf_encrypt) checked with the qpdf and
 * pdftotext command line tools, password generation and the registered
 * passphrase check (password).  Files are written only under a mkdtemp
 * directory, removed at the end.
 */
#include "autoconfig.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <pango/pangocairo.h>
#include <poppler.h>
#include <pthread.h>
#include <stdio.h>

#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "password.h"
#include "pdf_encrypt.h"
#include "pdf_render.h"
#include "tap.h"
#include "util.h"

#define PW "Kq4xT7mWp9RcNa3Y"
#define ACCENTS "Téléconsultation, éèàçôù"
#define ATT_TEXT "Résultat de glycémie à jeun : 5,4 mmol/L"
#define PDF_ATT_TEXT "Requisition imagerie numero 4711"

static char tmpdir[64];

static char *path_in(const char *name)
{
	size_t n = strlen(tmpdir) + strlen(name) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", tmpdir, name);
	return p;
}

static int write_file(const char *name, const unsigned char *buf, size_t len)
{
	char *p = path_in(name);
	FILE *f = fopen(p, "wb");
	int rc = -1;

	if (f) {
		rc = fwrite(buf, 1, len, f) == len ? 0 : -1;
		if (fclose(f) != 0)
			rc = -1;
	}
	free(p);
	return rc;
}

/* Run a shell command (arguments are ours: no quoting issues); output in *out. */
static int run(const char *cmd, char **out)
{
	struct strbuf sb;
	char buf[4096];
	size_t n;
	FILE *p = popen(cmd, "r");
	int st;

	sb_init(&sb);
	sb_puts(&sb, "");
	if (!p) {
		if (out)
			*out = sb_steal(&sb);
		else
			sb_free(&sb);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		sb_append(&sb, buf, n);
	st = pclose(p);
	if (out)
		*out = sb_steal(&sb);
	else
		sb_free(&sb);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_tool(const char *name)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return run(cmd, NULL) == 0;
}

static cairo_status_t sb_write(void *closure, const unsigned char *data, unsigned int len)
{
	sb_append(closure, (const char *)data, len);
	return CAIRO_STATUS_SUCCESS;
}

/* A one-page PDF with a line of text, as a scanned requisition would not have. */
static char *make_pdf_attachment(size_t *len)
{
	struct strbuf sb;
	cairo_surface_t *s;
	cairo_t *cr;
	PangoLayout *l;
	PangoFontDescription *fd;

	sb_init(&sb);
	s = cairo_pdf_surface_create_for_stream(sb_write, &sb, 595, 842);
	cr = cairo_create(s);
	l = pango_cairo_create_layout(cr);
	fd = pango_font_description_from_string("DejaVu Sans 14");
	pango_layout_set_font_description(l, fd);
	pango_layout_set_text(l, PDF_ATT_TEXT, -1);
	cairo_move_to(cr, 72, 72);
	pango_cairo_show_layout(cr, l);
	pango_font_description_free(fd);
	g_object_unref(l);
	cairo_destroy(cr);
	cairo_surface_finish(s);
	cairo_surface_destroy(s);
	*len = sb.len;
	return sb_steal(&sb);
}

static char *make_png(int w, int h, size_t *len)
{
	struct strbuf sb;
	cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
	cairo_t *cr = cairo_create(s);

	cairo_set_source_rgb(cr, 0.2, 0.4, 0.8);
	cairo_paint(cr);
	cairo_destroy(cr);
	sb_init(&sb);
	cairo_surface_write_to_png_stream(s, sb_write, &sb);
	cairo_surface_destroy(s);
	*len = sb.len;
	return sb_steal(&sb);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *recips[] = {"marie.lapointe@videotron.ca"};

static void base_message(struct pdf_message *m, const char *body)
{
	memset(m, 0, sizeof(*m));
	m->from = "Dr Jean Tremblay <dr.tremblay@hopital.example>";
	m->date = "Mon, 3 Mar 2025 10:15:00 -0500";
	m->recipients = recips;
	m->nrecipients = 1;
	m->subject = "Suivi de votre téléconsultation";
	m->body = body;
	m->body_len = strlen(body);
}

static int contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

/* Page count and size of the first page, read back with poppler. */
static int pdf_pages(const unsigned char *pdf, size_t len, double *w, double *h)
{
	GBytes *b = g_bytes_new_static(pdf, len);
	PopplerDocument *doc = poppler_document_new_from_bytes(b, NULL, NULL);
	int n = -1;

	g_bytes_unref(b);
	*w = *h = 0;
	if (!doc)
		return -1;
	n = poppler_document_get_n_pages(doc);
	if (n > 0) {
		PopplerPage *pg = poppler_document_get_page(doc, 0);
		if (pg) {
			poppler_page_get_size(pg, w, h);
			g_object_unref(pg);
		}
	}
	g_object_unref(doc);
	return n;
}

static char *body_of_lines(int nlines)
{
	struct strbuf sb;

	sb_init(&sb);
	for (int i = 0; i < nlines; i++)
		sb_printf(&sb, "Ligne %d : pression artérielle stable, même traitement.\n", i);
	return sb_steal(&sb);
}

/* A real JPEG (libjpeg): a colour gradient w x h. */
static unsigned char *make_jpeg(int w, int h, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char *out = NULL;
	unsigned long outlen = 0;
	unsigned char *row = malloc((size_t)w * 3);

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out, &outlen);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 80, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		for (int x = 0; x < w; x++) {
			row[3 * x] = (unsigned char)(x * 255 / w);
			row[3 * x + 1] = (unsigned char)(c.next_scanline * 255 / (unsigned)h);
			row[3 * x + 2] = 128;
		}
		JSAMPROW rp = row;
		jpeg_write_scanlines(&c, &rp, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	*len = outlen;
	return out;
}

static void test_jpeg(void)
{
	struct pdf_message m;
	struct pdf_attachment att;
	struct pdf_render_result res;
	unsigned char *pdf = NULL;
	size_t pdflen = 0, jlen;
	char err[512] = "";
	unsigned char *jpg = make_jpeg(1600, 1200, &jlen);

	base_message(&m, "Photo de la lésion, prise ce matin.\n");
	att = (struct pdf_attachment){"lesion.jpg", "image/jpeg", jpg, jlen};
	m.atts = &att;
	m.natts = 1;
	int rc = pdf_render(&m, NULL, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_OK, "jpeg: a message with a JPEG photo renders");
	is_int(res.atts_rendered, 1, "jpeg: the photo is rendered");
	is_int(res.atts_not_rendered, 0, "jpeg: nothing is left out");
	is_int(res.pages, 2, "jpeg: message page + photo page");
	free(pdf);
	pdf = NULL;
	/* the same JPEG announced as 60000 x 60000 pixels is not decoded */
	for (size_t i = 0; i + 8 < jlen; i++)
		if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
			jpg[i + 5] = 0xEA;
			jpg[i + 6] = 0x60;
			jpg[i + 7] = 0xEA;
			jpg[i + 8] = 0x60;
			break;
		}
	rc = pdf_render(&m, NULL, &pdf, &pdflen, &res, err, sizeof(err));
	ok(rc == PDF_RENDER_OK && res.atts_not_rendered == 1,
	   "jpeg: a JPEG declaring 60000 x 60000 pixels is not decoded");
	free(pdf);
	pdf = NULL;
	/* truncated in the middle: a clean refusal or a partial image, never a crash */
	att.len = jlen / 2;
	jpg[0] = 0xFF;
	rc = pdf_render(&m, NULL, &pdf, &pdflen, &res, err, sizeof(err));
	ok(rc == PDF_RENDER_OK, "jpeg: a truncated JPEG does not break rendering");
	free(pdf);
	free(jpg);
}

static void test_render_encrypt(int tools)
{
	struct pdf_message m;
	struct pdf_attachment atts[4];
	struct pdf_render_result res;
	unsigned char *pdf = NULL, *enc = NULL, *enc4 = NULL;
	size_t pdflen = 0, enclen = 0, enc4len = 0, attpdflen, pnglen;
	char err[512] = "", *out = NULL, cmd[1024];
	char *attpdf = make_pdf_attachment(&attpdflen);
	char *png = make_png(640, 480, &pnglen);
	static const char jpeg[] = "\xFF\xD8\xFF\xE0 not really a JPEG";
	char *encp = path_in("enc.pdf"), *decp = path_in("dec.pdf"), *plainp = path_in("plain.pdf");
	char *enc4p = path_in("enc4.pdf");
	int rc;

	base_message(&m, "Bonjour Madame,\n\n" ACCENTS
	                 ".\r\nVoici vos résultats; la suite du suivi se fera par téléphone.\n");
	memset(atts, 0, sizeof(atts));
	atts[0] = (struct pdf_attachment){"resultats.txt", "text/plain",
	                                  (const unsigned char *)ATT_TEXT, strlen(ATT_TEXT)};
	atts[1] = (struct pdf_attachment){"requisition.pdf", "application/pdf",
	                                  (const unsigned char *)attpdf, attpdflen};
	atts[2] =
	    (struct pdf_attachment){"schema.png", "image/png", (const unsigned char *)png, pnglen};
	atts[3] = (struct pdf_attachment){"photo.jpg", "image/jpeg", (const unsigned char *)jpeg,
	                                  sizeof(jpeg) - 1};
	m.atts = atts;
	m.natts = 4;

	rc = pdf_render(&m, NULL, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_OK, "render: message with text, PDF, PNG and JPEG attachments");
	if (rc != PDF_RENDER_OK) {
		diag("err: %s", err);
		goto out;
	}
	ok(pdflen > 100 && memcmp(pdf, "%PDF-", 5) == 0, "render: output is a PDF (%zu bytes)",
	   pdflen);
	is_int(res.pages, 3, "render: 3 pages (message + text attachment, PDF page, PNG)");
	is_int(res.atts_rendered, 3, "render: text, PDF and PNG attachments rendered");
	is_int(res.atts_not_rendered, 1, "render: the JPEG is counted as not rendered");
	{
		double w, h;
		is_int(pdf_pages(pdf, pdflen, &w, &h), res.pages,
		       "render: poppler reads the pages");
	}

	rc = pdf_encrypt(pdf, pdflen, PW, PDF_ENC_AES256_R6, &enc, &enclen, err, sizeof(err));
	is_int(rc, 0, "encrypt: AES-256 R6");
	if (rc != 0) {
		diag("err: %s", err);
		goto out;
	}
	ok(enclen > 100 && memcmp(enc, "%PDF-", 5) == 0, "encrypt: output is a PDF");
	ok(memmem(enc, enclen, "Tremblay", 8) == NULL, "encrypt: no clear text in the output");
	rc = pdf_encrypt(pdf, pdflen, PW, PDF_ENC_AES128_R4, &enc4, &enc4len, err, sizeof(err));
	is_int(rc, 0, "encrypt: AES-128 R4 fallback");

	if (!tools) {
		diag("qpdf or pdftotext missing: command line checks skipped");
		goto out;
	}
	ok(write_file("enc.pdf", enc, enclen) == 0 && write_file("plain.pdf", pdf, pdflen) == 0 &&
	       write_file("enc4.pdf", enc4, enc4len) == 0,
	   "files written");

	snprintf(cmd, sizeof(cmd), "qpdf --show-encryption --password=%s %s 2>&1", PW, encp);
	rc = run(cmd, &out);
	ok(rc == 0 && contains(out, "R = 6") && contains(out, "AESv3"),
	   "qpdf --show-encryption: R = 6, AESv3 (AES-256)");
	ok(contains(out, "P = ") && contains(out, "print high resolution: allowed"),
	   "qpdf --show-encryption: the patient may print");
	if (!contains(out, "R = 6"))
		diag("%s", out);
	free(out);

	snprintf(cmd, sizeof(cmd), "qpdf --requires-password %s", encp);
	is_int(run(cmd, NULL), 0, "qpdf --requires-password: exit 0 (a password is required)");
	snprintf(cmd, sizeof(cmd), "qpdf --requires-password %s", plainp);
	is_int(run(cmd, NULL), 2, "qpdf --requires-password on the rendering: exit 2 (clear)");

	snprintf(cmd, sizeof(cmd), "qpdf --decrypt %s %s 2>&1", encp, decp);
	ok(run(cmd, NULL) != 0, "qpdf --decrypt without the password fails");
	snprintf(cmd, sizeof(cmd), "qpdf --password=wrongpassword123 --decrypt %s %s 2>&1", encp,
	         decp);
	ok(run(cmd, NULL) != 0, "qpdf --decrypt with a wrong password fails");
	snprintf(cmd, sizeof(cmd), "pdftotext %s - 2>/dev/null", encp);
	ok(run(cmd, NULL) != 0, "pdftotext without the password fails");

	snprintf(cmd, sizeof(cmd), "qpdf --password=%s --decrypt %s %s 2>&1", PW, encp, decp);
	is_int(run(cmd, NULL), 0, "qpdf --password --decrypt succeeds");
	snprintf(cmd, sizeof(cmd), "pdftotext -enc UTF-8 %s - 2>&1", decp);
	rc = run(cmd, &out);
	is_int(rc, 0, "pdftotext on the decrypted PDF");
	ok(contains(out, ACCENTS), "decrypted text has the accented body (exact UTF-8)");
	ok(contains(out, "Objet : Suivi de votre téléconsultation"), "decrypted text: the subject");
	ok(contains(out, "marie.lapointe@videotron.ca"), "decrypted text: the recipient");
	ok(contains(out, ATT_TEXT), "decrypted text: the text attachment");
	ok(contains(out, PDF_ATT_TEXT), "decrypted text: the PDF attachment's page");
	ok(contains(out, "Message sécurisé — page 1") && contains(out, "Message sécurisé — page 3"),
	   "decrypted text: the page header on every page");
	ok(contains(out, "photo.jpg") && contains(out, "pièce jointe non rendue"),
	   "decrypted text: the JPEG is named as not rendered");
	if (!contains(out, ACCENTS) || !contains(out, PDF_ATT_TEXT))
		diag("pdftotext said:\n%s", out);
	free(out);

	snprintf(cmd, sizeof(cmd), "qpdf --show-encryption --password=%s %s 2>&1", PW, enc4p);
	rc = run(cmd, &out);
	ok(rc == 0 && contains(out, "R = 4") && contains(out, "AESv2") && !contains(out, "RC4"),
	   "R4 fallback: R = 4, AESv2, no RC4");
	if (!contains(out, "AESv2"))
		diag("%s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "pdftotext -upw %s %s - 2>&1", PW, enc4p);
	rc = run(cmd, &out);
	ok(rc == 0 && contains(out, ACCENTS), "R4 fallback: pdftotext with the password reads it");
	free(out);
	snprintf(cmd, sizeof(cmd), "qpdf --requires-password %s", enc4p);
	is_int(run(cmd, NULL), 0, "R4 fallback: a password is required");

out:
	free(pdf);
	free(enc);
	free(enc4);
	free(attpdf);
	free(png);
	free(encp);
	free(decp);
	free(plainp);
	free(enc4p);
}

/* A registered passphrase with accents: NFKC-normalized for R6, Latin-1 for R4. */
static void test_accented_password(int tools)
{
	static const char pass[] = "Pommes d'été à Magog";
	struct pdf_message m;
	unsigned char *pdf = NULL, *enc = NULL, *enc4 = NULL;
	size_t pdflen, enclen, enc4len;
	char err[512], cmd[512], *out = NULL, *p = path_in("acc.pdf"), *p4 = path_in("acc4.pdf");

	base_message(&m, ACCENTS);
	if (pdf_render(&m, NULL, &pdf, &pdflen, NULL, err, sizeof(err)) != PDF_RENDER_OK) {
		ok(0, "render for the accented password: %s", err);
		goto out;
	}
	is_int(pdf_encrypt(pdf, pdflen, pass, PDF_ENC_AES256_R6, &enc, &enclen, err, sizeof(err)),
	       0, "encrypt with an accented passphrase (R6)");
	is_int(pdf_encrypt(pdf, pdflen, pass, PDF_ENC_AES128_R4, &enc4, &enc4len, err, sizeof(err)),
	       0, "encrypt with an accented passphrase (R4, Latin-1)");
	{
		unsigned char *x = NULL;
		size_t xlen = 0;
		is_int(pdf_encrypt(pdf, pdflen, "mot de passe ✓ 2025", PDF_ENC_AES128_R4, &x, &xlen,
		                   err, sizeof(err)),
		       -1, "R4 refuses a password outside Latin-1");
		ok(x == NULL, "R4 refusal: no output");
		free(x);
	}
	ok(contains(err, "R4"), "R4 refusal says why");
	if (!tools || !enc)
		goto out;
	write_file("acc.pdf", enc, enclen);
	snprintf(cmd, sizeof(cmd), "pdftotext -upw \"%s\" %s - 2>&1", pass, p);
	ok(run(cmd, &out) == 0 && contains(out, ACCENTS),
	   "R6: pdftotext opens it with the passphrase");
	free(out);
	out = NULL;
	snprintf(cmd, sizeof(cmd), "qpdf --requires-password %s", p);
	is_int(run(cmd, NULL), 0, "R6 accented: a password is required");
out:
	free(pdf);
	free(enc);
	free(enc4);
	free(p);
	free(p4);
}

static void test_limits(void)
{
	struct pdf_render_opts o;
	struct pdf_message m;
	struct pdf_attachment a;
	struct pdf_render_result res;
	struct strbuf body;
	unsigned char *pdf = NULL;
	size_t pdflen = 0, attlen, pnglen;
	char err[256] = "";
	char *att, *png;
	int rc;

	sb_init(&body);
	for (int i = 0; i < 3000; i++)
		sb_printf(&body, "Ligne %d : suivi de la tension artérielle et de la glycémie.\n",
		          i);
	base_message(&m, body.data);
	pdf_render_opts_default(&o);
	o.max_pages = 5;
	rc = pdf_render(&m, &o, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_TOO_LARGE, "too many pages: PDF_RENDER_TOO_LARGE");
	ok(contains(err, "too large to render"), "too many pages: \"too large to render\" (%s)",
	   err);
	ok(pdf == NULL && pdflen == 0, "too many pages: no output");

	/* a PDF attachment with more pages than are left */
	att = make_pdf_attachment(&attlen);
	base_message(&m, "court");
	a = (struct pdf_attachment){"a.pdf", "application/pdf", (const unsigned char *)att, attlen};
	m.atts = &a;
	m.natts = 1;
	o.max_pages = 1;
	rc = pdf_render(&m, &o, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_TOO_LARGE, "PDF attachment beyond max_pages: too large");
	o.max_pages = 2;
	rc = pdf_render(&m, &o, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_OK, "PDF attachment within max_pages: rendered");
	free(pdf);
	pdf = NULL;

	/* the output size bound */
	pdf_render_opts_default(&o);
	o.max_bytes = 2000;
	base_message(&m, "court");
	rc = pdf_render(&m, &o, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_TOO_LARGE, "max_bytes reached: too large");
	ok(pdf == NULL, "max_bytes reached: no output");

	/* a PNG that declares 100000 x 100000 pixels is not decoded */
	png = make_png(4, 4, &pnglen);
	png[16] = 0;
	png[17] = 1;
	png[18] = 0x86;
	png[19] = 0xA0; /* width 100000 */
	png[20] = 0;
	png[21] = 1;
	png[22] = 0x86;
	png[23] = 0xA0;
	a = (struct pdf_attachment){"big.png", "image/png", (const unsigned char *)png, pnglen};
	m.atts = &a;
	m.natts = 1;
	rc = pdf_render(&m, NULL, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_OK, "huge PNG declared: the message still renders");
	is_int(res.atts_not_rendered, 1, "huge PNG declared: not rendered, counted");
	free(pdf);
	pdf = NULL;

	free(att);
	free(png);
	sb_free(&body);
}

static void test_hostile(void)
{
	struct pdf_message m;
	struct pdf_attachment a[4];
	struct pdf_render_result res;
	unsigned char *pdf = NULL;
	size_t pdflen = 0, pnglen;
	char *png = make_png(300, 200, &pnglen), longname[10001];
	char err[256] = "";
	static const char broken_pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage";
	static const unsigned char bad_text[] = {'a',  0,   'b',  0xC3, 0x28, 0x1B,
	                                         '[',  '3', '1',  'm',  0xFF, 0xFE,
	                                         '\r', 'c', 0x7F, 0xC2, 0x85, 'd'};
	struct strbuf body;
	int rc;

	sb_init(&body);
	sb_append(&body, (const char *)bad_text, sizeof(bad_text));
	for (int i = 0; i < 20000; i++) /* a 20 kB word: wrapped by characters */
		sb_putc(&body, 'x');
	sb_putc(&body, '\n');
	memset(&m, 0, sizeof(m)); /* no From, Date, recipients or subject */
	m.body = body.data;
	m.body_len = body.len;
	a[0] = (struct pdf_attachment){"broken.pdf", "application/pdf",
	                               (const unsigned char *)broken_pdf, sizeof(broken_pdf) - 1};
	a[1] = (struct pdf_attachment){NULL, "text/plain", bad_text, sizeof(bad_text)};
	a[2] = (struct pdf_attachment){"x.bin", NULL, (const unsigned char *)"\0\1\2", 3};
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	a[3] = (struct pdf_attachment){longname, "image/png", (const unsigned char *)png, pnglen};
	m.atts = a;
	m.natts = 4;
	rc = pdf_render(&m, NULL, &pdf, &pdflen, &res, err, sizeof(err));
	is_int(rc, PDF_RENDER_OK,
	       "hostile input (NUL, invalid UTF-8, controls, 20 kB word) renders");
	if (rc != PDF_RENDER_OK)
		diag("err: %s", err);
	is_int(res.atts_not_rendered, 2, "broken PDF and unknown type: not rendered");
	is_int(res.atts_rendered, 2, "binary text attachment and PNG with a 10 kB name: rendered");
	ok(res.pages >= 4 && res.pages <= 10, "20 kB word spans pages, the PNG one (%d)",
	   res.pages);
	free(pdf);
	free(png);
	sb_free(&body);

	/* pdf_encrypt errors carry qpdf's text */
	unsigned char *enc = NULL;
	size_t enclen = 0;
	rc = pdf_encrypt((const unsigned char *)broken_pdf, sizeof(broken_pdf) - 1, PW,
	                 PDF_ENC_AES256_R6, &enc, &enclen, err, sizeof(err));
	ok(rc == -1 && enc == NULL, "encrypt: a broken PDF fails");
	ok(contains(err, "qpdf"), "encrypt: the error is qpdf's (%s)", err);
	rc = pdf_encrypt((const unsigned char *)"%PDF", 4, "", PDF_ENC_AES256_R6, &enc, &enclen,
	                 err, sizeof(err));
	ok(rc == -1, "encrypt: an empty password is refused");
}

static void test_paper(void)
{
	struct pdf_render_opts o;
	struct pdf_message m;
	struct pdf_render_result res;
	unsigned char *pdf = NULL;
	size_t len;
	double w, h;
	char err[256];

	base_message(&m, ACCENTS);
	pdf_render_opts_default(&o);
	is_int(pdf_render(&m, &o, &pdf, &len, &res, err, sizeof(err)), PDF_RENDER_OK,
	       "paper: letter renders");
	ok(pdf && pdf_pages(pdf, len, &w, &h) == 1 && (int)(w + 0.5) == 612 &&
	       (int)(h + 0.5) == 792,
	   "paper: letter is 612 x 792 pt (%.1f x %.1f)", w, h);
	free(pdf);
	pdf = NULL;
	o.paper = PDF_PAPER_A4;
	is_int(pdf_render(&m, &o, &pdf, &len, &res, err, sizeof(err)), PDF_RENDER_OK,
	       "paper: A4 renders");
	ok(pdf && pdf_pages(pdf, len, &w, &h) == 1 && (int)(w + 0.5) == 595 &&
	       (int)(h + 0.5) == 842,
	   "paper: A4 is 595 x 842 pt (%.1f x %.1f)", w, h);
	free(pdf);
}

/* The milter renders from several threads at once. */
static void *render_thread(void *arg)
{
	const char *body = arg;
	struct pdf_message m;
	long fails = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char *pdf = NULL, *enc = NULL;
		size_t len, elen;
		char err[256];
		base_message(&m, body);
		if (pdf_render(&m, NULL, &pdf, &len, NULL, err, sizeof(err)) != PDF_RENDER_OK ||
		    pdf_encrypt(pdf, len, PW, PDF_ENC_AES256_R6, &enc, &elen, err, sizeof(err)) !=
		        0)
			fails++;
		free(pdf);
		free(enc);
	}
	pango_cairo_font_map_set_default(NULL); /* this thread's font map, for leak checkers */
	return (void *)fails;
}

static void test_threads(void)
{
	enum { N = 4 };
	pthread_t t[N];
	char *body = body_of_lines(150);
	long fails = 0;
	int started = 0;

	for (int i = 0; i < N; i++)
		if (pthread_create(&t[i], NULL, render_thread, body) == 0)
			started++;
	for (int i = 0; i < started; i++) {
		void *r;
		pthread_join(t[i], &r);
		fails += (long)r;
	}
	is_int(started, N, "threads: started");
	is_int(fails, 0, "threads: 4 x 4 concurrent render + encrypt succeed");
	free(body);
}

static void test_password(void)
{
	char pw[PASSWORD_GEN_LEN + 1];
	char small[8];
	char(*all)[PASSWORD_GEN_LEN + 1] = xcalloc(1000, sizeof(*all));
	int bad_len = 0, bad_chars = 0, dups = 0, counts[256] = {0};
	char err[128];

	is_int(password_generate(pw, sizeof(pw), PASSWORD_GEN_LEN), 0, "generate: ok");
	is_int((long)strlen(pw), PASSWORD_GEN_LEN, "generate: 16 characters");
	is_int(password_generate(small, sizeof(small), 8), -1, "generate: no room for the NUL");
	is_int(password_generate(small, sizeof(small), 0), -1, "generate: zero length");
	for (int i = 0; i < 1000; i++) {
		if (password_generate(all[i], sizeof(all[i]), PASSWORD_GEN_LEN) != 0)
			bad_len++;
		if (strlen(all[i]) != PASSWORD_GEN_LEN)
			bad_len++;
		for (const char *c = all[i]; *c; c++) {
			if (!strchr(PASSWORD_ALPHABET, *c))
				bad_chars++;
			counts[(unsigned char)*c]++;
		}
	}
	for (int i = 0; i < 1000; i++)
		for (int j = i + 1; j < 1000; j++)
			if (strcmp(all[i], all[j]) == 0)
				dups++;
	is_int(bad_len, 0, "1000 passwords: all 16 characters");
	is_int(bad_chars, 0, "1000 passwords: only the unambiguous alphabet");
	is_int(dups, 0, "1000 passwords: all distinct");
	{
		/* 16000 draws over 48 symbols: ~333 each; every symbol used, none > 2x */
		int unused = 0, skewed = 0;
		for (const char *c = PASSWORD_ALPHABET; *c; c++) {
			if (counts[(unsigned char)*c] == 0)
				unused++;
			if (counts[(unsigned char)*c] > 666)
				skewed++;
		}
		ok(unused == 0 && skewed == 0, "1000 passwords: every symbol used, none skewed");
	}
	ok(!strpbrk(PASSWORD_ALPHABET, "0O1lI"), "alphabet: no 0/O/1/l/I");
	free(all);

	const struct patient_ident ids[] = {
	    {IDENT_NAM, "LAPM 8503 1215"},
	    {IDENT_DOB, "1985-03-12"},
	    {IDENT_FILE_NO, "H-0042917"},
	};
	is_int(password_check_passphrase("Le chat de la voisine mange des pommes", ids, 3, err,
	                                 sizeof(err)),
	       0, "passphrase: a good one is accepted");
	is_int(password_check_passphrase("mon code LAPM85031215!", ids, 3, err, sizeof(err)), -1,
	       "passphrase: containing the NAM is refused");
	ok(contains(err, "NAM") && !contains(err, "8503"), "passphrase: reason names the NAM only");
	is_int(password_check_passphrase("lapm 8503 1215 bonjour", ids, 3, err, sizeof(err)), -1,
	       "passphrase: the NAM with spaces, lower case, is refused");
	is_int(password_check_passphrase("mes chiffres 85031215 ok", ids, 3, err, sizeof(err)), -1,
	       "passphrase: the NAM's digits are refused");
	is_int(
	    password_check_passphrase("née le 12/03/1985 à Sherbrooke", ids, 3, err, sizeof(err)),
	    -1, "passphrase: the DOB as DD/MM/YYYY is refused");
	ok(contains(err, "date of birth"), "passphrase: reason names the date of birth");
	is_int(password_check_passphrase("anniversaire 19850312 !", ids, 3, err, sizeof(err)), -1,
	       "passphrase: the DOB as YYYYMMDD is refused");
	is_int(password_check_passphrase("mars 03-12-85 fête!", ids, 3, err, sizeof(err)), -1,
	       "passphrase: the DOB as MM-DD-YY is refused");
	is_int(password_check_passphrase("dossier h0042917 ici", ids, 3, err, sizeof(err)), -1,
	       "passphrase: the file number is refused");
	is_int(password_check_passphrase("court", ids, 3, err, sizeof(err)), -1,
	       "passphrase: shorter than 12 characters is refused");
	is_int(password_check_passphrase("éééééééééééé", NULL, 0, err, sizeof(err)), 0,
	       "passphrase: 12 accented characters (24 bytes) is long enough");
	is_int(password_check_passphrase("ééééééééééé", NULL, 0, err, sizeof(err)), -1,
	       "passphrase: 11 characters is not");
	is_int(password_check_passphrase("abcdefghijkl\xff", NULL, 0, err, sizeof(err)), -1,
	       "passphrase: invalid UTF-8 is refused");
}

static int pages_for(int nlines)
{
	struct pdf_message m;
	struct pdf_render_result res = {0};
	unsigned char *pdf = NULL;
	size_t len;
	char *body = body_of_lines(nlines);

	base_message(&m, body);
	if (pdf_render(&m, NULL, &pdf, &len, &res, NULL, 0) != PDF_RENDER_OK)
		res.pages = -1;
	free(pdf);
	free(body);
	return res.pages;
}

/* A body that fills exactly npages pages (the most lines that still fit). */
static char *body_of_pages(int npages)
{
	int lo = 1, hi = 80 * npages; /* pages_for(lo) <= npages < pages_for(hi) */

	while (hi - lo > 1) {
		int mid = (lo + hi) / 2;
		if (pages_for(mid) <= npages)
			lo = mid;
		else
			hi = mid;
	}
	return body_of_lines(lo);
}

static void bench(int target_pages)
{
	enum { RUNS = 5 };
	struct pdf_message m;
	struct pdf_render_result res = {0};
	char *body = body_of_pages(target_pages), err[256];
	double t_render = 0, t_enc = 0;
	size_t pdflen = 0, enclen = 0;
	int fails = 0;

	base_message(&m, body);
	for (int i = 0; i < RUNS; i++) {
		unsigned char *pdf = NULL, *enc = NULL;
		double t0 = now_ms(), t1, t2;
		if (pdf_render(&m, NULL, &pdf, &pdflen, &res, err, sizeof(err)) != PDF_RENDER_OK) {
			fails++;
			continue;
		}
		t1 = now_ms();
		if (pdf_encrypt(pdf, pdflen, PW, PDF_ENC_AES256_R6, &enc, &enclen, err,
		                sizeof(err)))
			fails++;
		t2 = now_ms();
		t_render += t1 - t0;
		t_enc += t2 - t1;
		free(pdf);
		free(enc);
	}
	is_int(fails, 0, "bench: every render + encrypt succeeded");
	is_int(res.pages, target_pages, "bench: page count as intended");
	diag("%2d page(s): render %.1f ms + encrypt %.1f ms = %.1f ms per message "
	     "(mean of %d; %zu -> %zu bytes)",
	     res.pages, t_render / RUNS, t_enc / RUNS, (t_render + t_enc) / RUNS, RUNS, pdflen,
	     enclen);
	free(body);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	int tools = have_tool("qpdf") && have_tool("pdftotext");
	double t0;

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_pdf.XXXXXX",
	         base && strlen(base) < 40 ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp");
		return done_testing();
	}
	t0 = now_ms();
	pdf_render_global_init();
	diag("pdf_render_global_init: %.1f ms", now_ms() - t0);

	test_render_encrypt(tools);
	test_accented_password(tools);
	test_limits();
	test_jpeg();
	test_hostile();
	test_password();
	test_paper();
	test_threads();
	bench(1);
	bench(10);

	/* pango's per-thread font map and cairo's caches, so that LeakSanitizer
	 * and valgrind report only what is ours */
	pango_cairo_font_map_set_default(NULL);
	cairo_debug_reset_static_data();
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (run(cmd, NULL) != 0)
			diag("could not remove %s", tmpdir);
	}
	return done_testing();
}
