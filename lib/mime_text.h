/*
 * mime_text.h — turn one RFC 5322 message into the text the policy engine
 * reads, with GMime: the Subject (RFC 2047 decoded), every text/plain part
 * (any charset, QP/base64, format=flowed rejoined), every text/html part
 * converted to text, nested multiparts, forwarded messages (message/rfc822)
 * recursively, and the text layer of PDF attachments (poppler-glib).  Every
 * segment is normalized (normalize.h).  Attachments are described (type,
 * name, size, image / PDF without text layer) so rules can judge them.
 *
 * Parsing is bounded by struct extract_limits; hitting a bound sets a flag in
 * msg_content.flags instead of silently dropping content, so the policy can
 * take its documented decision.
 */
#ifndef CLINIMAIL_MIME_TEXT_H
#define CLINIMAIL_MIME_TEXT_H

#include <stddef.h>

enum text_origin {
	TXT_SUBJECT = 0,  /* the top-level Subject */
	TXT_BODY,         /* a text/plain or text/html part of the top-level message */
	TXT_ATTACHMENT,   /* text extracted from an attachment (PDF text layer, text/any attachment) */
	TXT_FORWARDED,    /* any text inside a message/rfc822 part (incl. its Subject) */
};

struct text_seg {
	enum text_origin origin;
	int depth;   /* message/rfc822 nesting depth, 0 = top level */
	char *text;  /* normalized (normalize.h), NUL-terminated */
	size_t len;
};

enum attachment_flags {
	ATT_IMAGE = 1 << 0,          /* image/any (or an image file name) */
	ATT_PDF = 1 << 1,            /* application/pdf (or .pdf) */
	ATT_PDF_NO_TEXT = 1 << 2,    /* a PDF whose text layer is empty: a scan */
	ATT_INLINE_RELATED = 1 << 3, /* inside multipart/related with a Content-ID (HTML signature logo) */
	ATT_UNREADABLE = 1 << 4,     /* could not be decoded (broken PDF, bad base64 …) */
	ATT_ENCRYPTED = 1 << 5,      /* encrypted PDF, S/MIME or PGP part: content unknown */
	ATT_TEXT = 1 << 6,           /* text/any attachment whose text was read */
};

struct attachment {
	char *content_type; /* lower case "type/subtype" */
	char *filename;     /* decoded, may be NULL; never logged */
	size_t size;        /* decoded size in bytes */
	unsigned flags;     /* enum attachment_flags */
	int depth;          /* message/rfc822 nesting depth */
	unsigned char sha256[32]; /* of the decoded content */
};

enum msg_content_flags {
	MC_MALFORMED = 1 << 0,      /* MIME structure broken; what could be read was read */
	MC_TOO_MANY_PARTS = 1 << 1, /* limits.max_parts reached: the rest was not read */
	MC_TOO_DEEP = 1 << 2,       /* limits.max_depth reached */
	MC_TEXT_TRUNCATED = 1 << 3, /* limits.max_text reached */
	MC_ENCRYPTED = 1 << 4,      /* the message itself is S/MIME or PGP encrypted */
	MC_NO_SUBJECT = 1 << 5,     /* no Subject header, or one that is empty after trimming */
};

struct extract_limits {
	size_t max_parts;      /* MIME parts walked (default 1000) */
	int max_depth;         /* nesting of multiparts + message/rfc822 (default 20) */
	size_t max_text;       /* total normalized text kept, bytes (default 16 MiB) */
	size_t max_pdf_pages;  /* pages read per PDF (default 200) */
};
void extract_limits_default(struct extract_limits *lim);

struct msg_content {
	struct text_seg *segs;
	size_t nsegs;
	struct attachment *atts;
	size_t natts;
	unsigned flags;       /* enum msg_content_flags */
	char *subject;        /* decoded + normalized; "" when none */
	char *from_addr;      /* first From address, lower case, or NULL */
	char *from_display;   /* its display name, decoded + normalized, or NULL */
	size_t nfrom;         /* number of addresses in From */
	char **to_cc;         /* addresses in To and Cc (lower case) */
	size_t nto_cc;
	char *message_id;     /* without <>, or NULL */
	unsigned char body_sha256[32]; /* of the raw message body (after the header) */
};

/*
 * Cache of PDF text layers keyed by the SHA-256 of the decoded attachment, so
 * that an attachment seen before (the same order forwarded, a re-delivery) is
 * not extracted again.  Thread-safe; bounded to max_entries (LRU).
 */
struct pdf_cache;
struct pdf_cache *pdf_cache_new(size_t max_entries);
void pdf_cache_free(struct pdf_cache *c);
/* Counters since creation (lookups that found / did not find an entry) and current size. */
void pdf_cache_stats(struct pdf_cache *c, unsigned long *hits, unsigned long *misses,
                     size_t *entries);

/*
 * Parse msg (a whole message: header, blank line, body; CRLF or LF).  cache
 * may be NULL.  Returns 0 and *out on success; on an internal error (not on
 * broken MIME, which gives a partial result with MC_MALFORMED) returns -1
 * with a reason in err.
 */
int msg_content_extract(const char *msg, size_t len, const struct extract_limits *lim,
                        struct pdf_cache *cache, struct msg_content **out, char *err,
                        size_t errlen);
void msg_content_free(struct msg_content *mc);

/* Once per process, before any thread parses (g_mime_init). */
void mime_text_global_init(void);

struct strbuf;
/* Decoded bytes in charset cs (NULL: UTF-8, else Windows-1252) appended as UTF-8. */
void mime_text_to_utf8(const char *cs, const char *p, size_t n, struct strbuf *out);
/* HTML (UTF-8) appended as plain text (libxml2 SAX, scripts and styles dropped). */
void mime_html_to_text(const char *utf8, size_t len, struct strbuf *out);

#endif
