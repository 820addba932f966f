/*
 * msg_render.h — read a raw RFC 5322 message into the printable form that
 * pdf_render() (the patient's password-protected PDF) and fax_render() (the
 * fax pages) lay out: sender, date, recipients, subject, the text body
 * (text/plain preferred, else text/html converted, any charset to UTF-8) and
 * the attachments decoded (text parts converted to UTF-8).  Parts of a
 * multipart/alternative other than the one chosen are not attachments;
 * inline images of a multipart/related HTML body are kept as attachments
 * only when they are not the HTML's own logos (Content-ID referenced).
 * Bounded like the engine: at most max_parts leaves and max_bytes decoded.
 */
#ifndef CLINIMAIL_MSG_RENDER_H
#define CLINIMAIL_MSG_RENDER_H

#include <stddef.h>

#include "pdf_render.h"

struct printable_msg {
	struct pdf_message m; /* points into the fields below */
	char *from, *date, *subject, *body;
	char **rcpts;
	size_t nrcpts;
	struct pdf_attachment *atts;
	char **att_names, **att_types;
	unsigned char **att_data;
	size_t natts;
};

/*
 * Parse msg[len].  0 on success (free with printable_msg_free), -1 when the
 * message cannot be parsed or goes past the bounds (err says which).
 */
int printable_msg_from_raw(const char *msg, size_t len, size_t max_parts, size_t max_bytes,
                           struct printable_msg *out, char *err, size_t errlen);
void printable_msg_free(struct printable_msg *p);

#endif
