/*
 * milter.h — what the pieces of clinimail-milter share: the libmilter
 * callback table (callbacks.c), the process-wide objects it reads (set once
 * before smfi_main, then only read), and the SMTP reply helpers (reply.c).
 */
#ifndef CLINIMAIL_MILTER_H
#define CLINIMAIL_MILTER_H

#include <stddef.h>

#include <libmilter/mfapi.h>

struct pdf_cache;

/* The filter description handed to smfi_register(). */
extern struct smfiDesc milter_desc;

/*
 * Set once in main() before smfi_main() starts any thread: the PDF text
 * cache shared by every connection (thread-safe itself).
 */
void milter_set_pdf_cache(struct pdf_cache *cache);

/*
 * Set once in main() before smfi_main() (after the privilege drop): the
 * audit trail every end-of-message verdict is submitted to, or NULL.
 */
struct audit;
void milter_set_audit(struct audit *audit);

/* libmilter's limit on reply lines (smfi_setmlreply) and on one line's length. */
#define REPLY_MAX_LINES 32
#define REPLY_MAX_LEN 980

/*
 * Make one reply line safe for smfi_setmlreply(): every '%' doubled (libmilter
 * and Sendmail treat a lone '%' as a format character), CR, LF and other
 * control or non-ASCII bytes replaced by a space or '?', and the result cut
 * at REPLY_MAX_LEN without splitting a "%%" pair.  Returns a new string and
 * sets *changed when anything but '%' doubling was needed.
 */
char *reply_line_escape(const char *line, int *changed);

/*
 * Build the argument vector for smfi_setmlreply(): at most REPLY_MAX_LINES
 * escaped lines; when there are more, the first REPLY_MAX_LINES - 1 and a
 * last line "...".  out must hold REPLY_MAX_LINES + 1 pointers; it is
 * NULL-terminated.  Returns the number of lines; the caller frees each.
 */
size_t reply_lines_build(char *const *lines, size_t n, char **out, int *changed);

/*
 * A header name safe to hand to smfi_addheader (printable ASCII, no ':' and
 * no space) and a value free of CR, LF and NUL.  Returns 1 when both are.
 */
int header_is_safe(const char *name, const char *value);

#endif
