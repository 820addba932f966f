/*
 * pdf_render.h — render a message (header fields, text body, attachments)
 * into one PDF in memory, for the password-protected PDF sent to patients
 * (issue 3, RULES.md rule 7).  cairo's PDF surface, pango for text layout
 * (DejaVu Sans, wrapping, page breaks, a "Message sécurisé — page N" line on
 * every page), poppler-glib to append PDF attachments page by page, cairo
 * for PNG images, libjpeg-turbo for JPEG photos.  Other types are not
 * rendered: a line "pièce jointe non rendue" names them instead, and the
 * result counts them so the policy can decide whether the message may leave
 * that way.
 *
 * Bounded: max_pages, max_bytes and 30 s of rendering (checked between
 * pages: a PDF attachment can be a decompression bomb); beyond them the
 * call fails with PDF_RENDER_TOO_LARGE, a permanent failure (the message
 * never leaves in clear).  Reentrant: no global state of ours (pango keeps
 * one font map per thread); call pdf_render_global_init() once before
 * threads start.
 */
#ifndef CLINIMAIL_PDF_RENDER_H
#define CLINIMAIL_PDF_RENDER_H

#include <stddef.h>

enum pdf_paper {
	PDF_PAPER_LETTER = 0, /* 8.5 x 11 in, the Quebec default */
	PDF_PAPER_A4,
};

struct pdf_attachment {
	const char *filename;      /* decoded, may be NULL */
	const char *content_type;  /* lower case "type/subtype", may be NULL */
	const unsigned char *data; /* decoded content; text/any must be UTF-8 */
	size_t len;
};

struct pdf_message {
	const char *from; /* sender as printed ("Dr J. Tremblay <dr.tremblay@…>"), may be NULL */
	const char *date; /* the Date header as printed, may be NULL */
	const char *const *recipients; /* printed on the "À :" line, comma-separated */
	size_t nrecipients;
	const char *subject; /* the original subject (it moves inside the PDF), may be NULL */
	const char *body;    /* UTF-8 text; invalid bytes and control characters are replaced */
	size_t body_len;
	const struct pdf_attachment *atts;
	size_t natts;
};

struct pdf_render_opts {
	enum pdf_paper paper;
	int max_pages;         /* pages in the output, attachments included (default 200) */
	size_t max_bytes;      /* size of the output PDF (default 64 MiB) */
	const char *title;     /* page header title, default "Message sécurisé" */
	double font_size;      /* points, default 10 */
	long max_image_pixels; /* width x height of a PNG decoded (default 40 M) */
};
void pdf_render_opts_default(struct pdf_render_opts *o);

struct pdf_render_result {
	int pages;             /* pages in the output */
	int atts_rendered;     /* attachments rendered (text, PDF pages, PNG) */
	int atts_not_rendered; /* attachments replaced by "pièce jointe non rendue" */
};

enum pdf_render_status {
	PDF_RENDER_OK = 0,
	PDF_RENDER_ERROR = -1,     /* cairo / pango failure: transient (TEMPFAIL) */
	PDF_RENDER_TOO_LARGE = -2, /* "too large to render": permanent (reject) */
};

/*
 * Render m into a new PDF: on PDF_RENDER_OK, *out (free() it) holds *outlen
 * bytes and res (may be NULL) is filled.  Otherwise a reason is in err (no
 * message content in it).  opts may be NULL for the defaults.
 */
int pdf_render(const struct pdf_message *m, const struct pdf_render_opts *opts, unsigned char **out,
               size_t *outlen, struct pdf_render_result *res, char *err, size_t errlen);

/* Is the attachment of a type pdf_render() draws (PDF, PNG, JPEG, text)? */
int pdf_render_supports(const struct pdf_attachment *a);

/* Once per process before threads: loads fontconfig and pango's font map. */
void pdf_render_global_init(void);

#endif
