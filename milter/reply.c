/*
 * reply.c — turning the engine's reply lines and headers into what
 * libmilter accepts: '%' escaped, no CR/LF, bounded line length and count.
 * The engine already produces safe text; this is the last check before the
 * bytes reach the MTA, so it never trusts it.
 */
#include "autoconfig.h"
#include "milter.h"

#include <string.h>

#include "util.h"

char *reply_line_escape(const char *line, int *changed)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_puts(&sb, ""); /* an empty line still gives a string */
	for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
		char rep[2];
		size_t n = 1;

		if (*p == '%') {
			rep[0] = rep[1] = '%';
			n = 2;
		} else if (*p < 0x20 || *p == 0x7f) {
			rep[0] = ' ';
			*changed = 1;
		} else if (*p >= 0x80) {
			rep[0] = '?';
			*changed = 1;
		} else {
			rep[0] = (char)*p;
		}
		if (sb.len + n > REPLY_MAX_LEN) {
			*changed = 1;
			break;
		}
		sb_append(&sb, rep, n);
	}
	return sb_steal(&sb);
}

size_t reply_lines_build(char *const *lines, size_t n, char **out, int *changed)
{
	size_t k = 0;

	if (n > REPLY_MAX_LINES) {
		for (; k < REPLY_MAX_LINES - 1; k++)
			out[k] = reply_line_escape(lines[k], changed);
		out[k++] = xstrdup("...");
		*changed = 1;
	} else {
		for (; k < n; k++)
			out[k] = reply_line_escape(lines[k], changed);
	}
	out[k] = NULL;
	return k;
}

int header_is_safe(const char *name, const char *value)
{
	if (name == NULL || value == NULL || *name == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == ':')
			return 0;
	return strpbrk(value, "\r\n") == NULL;
}
