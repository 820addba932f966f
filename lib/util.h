/*
 * util.h — logging discipline (msg_info/msg_warn/msg_error/msg_fatal, in the
 * Postfix manner), checked allocation and a growable string buffer shared by
 * every clinimail program.  No clinical text is ever passed to the log
 * functions: callers log rule ids, classes, counts and reference ids only.
 */
#ifndef CLINIMAIL_UTIL_H
#define CLINIMAIL_UTIL_H

#include <stdarg.h>
#include <stddef.h>

#define CM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Where log lines go: stderr (default, tools and foreground) or syslog. */
void log_init(const char *ident, int use_syslog, int facility);
void log_set_verbose(int level);
int log_verbose(void);
void msg_info(const char *fmt, ...) CM_PRINTF(1, 2);
void msg_warn(const char *fmt, ...) CM_PRINTF(1, 2);
void msg_error(const char *fmt, ...) CM_PRINTF(1, 2);
void msg_debug(const char *fmt, ...) CM_PRINTF(1, 2);
_Noreturn void msg_fatal(const char *fmt, ...) CM_PRINTF(1, 2);

/* Allocation that never returns NULL: out of memory is fatal, as in Postfix. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Growable NUL-terminated byte buffer. */
struct strbuf {
	char *data;
	size_t len;
	size_t cap;
};
void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_putc(struct strbuf *sb, char c);
void sb_printf(struct strbuf *sb, const char *fmt, ...) CM_PRINTF(2, 3);
/* Detach the buffer; caller frees.  The strbuf is left empty. */
char *sb_steal(struct strbuf *sb);

/* Small string helpers. */
char *str_trim(char *s);                  /* in place, returns s */
void str_lower(char *s);                  /* ASCII only, in place */
int str_iequal(const char *a, const char *b);
int str_has_suffix_ci(const char *s, const char *suffix);

/*
 * Lower-case an e-mail address, strip surrounding <> and spaces.  Returns a
 * new string, or NULL when the input has no '@' (callers decide what that means).
 */
char *addr_normalize(const char *raw);
/* Domain part of a normalized address (pointer into it), or NULL. */
const char *addr_domain(const char *addr);

#endif
