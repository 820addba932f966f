/*
 * tap.h — a minimal Test Anything Protocol producer for the unit tests,
 * read by automake's tap-driver.sh.  Header-only: each test program includes
 * it once.
 *
 *   ok(cond, "name %d", i);  is_int(got, want, "name"); is_str(got, want, "name");
 *   return done_testing();
 */
#ifndef CLINIMAIL_TAP_H
#define CLINIMAIL_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3))) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static int is_int(long got, long want, const char *name)
{
	int r = ok(got == want, "%s", name);
	if (!r)
		printf("#   got %ld, want %ld\n", got, want);
	return r;
}

static int is_str(const char *got, const char *want, const char *name)
{
	int r = ok(got && want && strcmp(got, want) == 0, "%s", name);
	if (!r)
		printf("#   got \"%s\", want \"%s\"\n", got ? got : "(null)", want ? want : "(null)");
	return r;
}

__attribute__((format(printf, 1, 2))) static void diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

/* Keep the helpers usable without "unused function" warnings. */
static inline void tap_unused(void)
{
	(void)ok;
	(void)is_int;
	(void)is_str;
	(void)diag;
	(void)done_testing;
}

#endif
