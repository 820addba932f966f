/*
 * fax_render.h — turn a message into the pages of a fax: one multi-page TIFF
 * Class F file (RFC 3949 profile S: 1 bit, FillOrder MSB2LSB, 1728 pixels
 * wide, 204 dpi across and 196 or 98 lpi down, CCITT G4 by default or G3 2-D)
 * that HylaFAX sends as is (tiffcheck accepts it: A4 is 2291 rows at 196 lpi,
 * Letter 2152; see FAX_ROWS_*).
 *
 * Page 1 is a cover page (establishment, sender with phone and licence,
 * recipient name and number, date, page count, the order number that makes
 * the fax unique, the confidentiality notice in French and English); then
 * the text body (UTF-8 with accents, pango/cairo, DejaVu Sans), text
 * attachments, PDF attachments page by page (poppler-glib) and images
 * dithered to black and white.  The body and attachments are laid out by
 * pdf_render() and each of its pages rasterised: one layout engine for the
 * patient PDF and the fax.
 *
 * Errors never carry message content.  Reentrant (call
 * pdf_render_global_init() once first).
 */
#ifndef CLINIMAIL_FAX_RENDER_H
#define CLINIMAIL_FAX_RENDER_H

#include <stddef.h>

#include "pdf_render.h"

#define FAX_WIDTH 1728     /* pixels, every resolution and paper size */
#define FAX_XRES 204       /* dpi across */
#define FAX_YRES_FINE 196  /* lpi down, "fine" */
#define FAX_YRES_NORMAL 98 /* lpi down, "normal" */
/*
 * Rows per page.  HylaFAX's tiffcheck (run by tiff2fax with the job's
 * PAGELENGTH in whole millimetres: 297 for A4, 279 for Letter) asks for a
 * RESIZE, i.e. re-imaging the page, when rows / lpi * 25.4 exceeds
 * PAGELENGTH: A4 2292 rows at 196 lpi is 297.03 mm, Letter 2156 rows is
 * 279.4 mm > 279.  So Letter is 2152 rows (278.9 mm), not the exact 11 in.
 * The job must also say VRES 196 (fine) or 98, or tiffcheck asks for REVRES.
 */
#define FAX_ROWS_A4_FINE 2291 /* 2292 makes HylaFAX re-image the page */
#define FAX_ROWS_LETTER_FINE 2152
#define FAX_ROWS_A4_NORMAL 1145
#define FAX_ROWS_LETTER_NORMAL 1076

enum fax_compression { FAX_G4 = 0, FAX_G3 = 1 };

struct fax_cover {
	const char *establishment;    /* "Hôpital Exemple" */
	const char *sender_name;      /* may be NULL */
	const char *sender_address;   /* e-mail, may be NULL */
	const char *sender_phone;     /* may be NULL */
	const char *sender_licence;   /* practice licence number, may be NULL */
	const char *recipient_name;   /* directory name of the pharmacy / service, may be NULL */
	const char *recipient_number; /* 10 digits */
	const char *date;             /* already formatted, e.g. "2026-11-22 14:03" */
	const char *order_number;     /* the decision reference CM-YYYYMMDD-XXXXXXXX */
	const char *notice_fr;        /* confidentiality notice; NULL: built-in text */
	const char *notice_en;
};

struct fax_render_opts {
	int fine;             /* 1: 196 lpi (default), 0: 98 lpi */
	enum pdf_paper paper; /* PDF_PAPER_LETTER (default) or PDF_PAPER_A4 */
	enum fax_compression compression;
	int max_pages; /* cover included; default 50 */
};
void fax_render_opts_default(struct fax_render_opts *o);

/* Rows of one page for that paper and resolution (one of FAX_ROWS_*). */
int fax_page_rows(enum pdf_paper paper, int fine);

enum fax_render_status {
	FAX_RENDER_OK = 0,
	FAX_RENDER_ERROR = -1,     /* transient: memory, cairo, disk (EX_TEMPFAIL) */
	FAX_RENDER_TOO_LARGE = -2, /* more pages than max_pages (permanent) */
	FAX_RENDER_BAD_INPUT = -3, /* nothing to send, an attachment that cannot be rendered
	                              (permanent, the reason says which by file name) */
};

/*
 * Render cover + content into the TIFF file tiff_path (created 0600, replaced
 * if present).  *pages gets the page count (cover included).  err gets a
 * one-line reason on failure.
 */
int fax_render(const struct pdf_message *content, const struct fax_cover *cover,
               const struct fax_render_opts *opts, const char *tiff_path, int *pages, char *err,
               size_t errlen);

#endif
