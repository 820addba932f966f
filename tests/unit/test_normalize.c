/*
 * test_normalize.c — text_normalize() and text_fold_key(): accents,
 * ligatures, quotes, dashes, Unicode spaces, zero-width evasion, white space
 * folding, hostile bytes (invalid UTF-8, NUL), and a throughput figure.
 */
#include "autoconfig.h"
#include "normalize.h"
#include "util.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void norm_is(const char *in, const char *want, const char *name)
{
	size_t n = 12345;
	char *got = text_normalize(in, strlen(in), &n);
	is_str(got, want, name);
	if (strlen(got) != n)
		ok(0, "%s: outlen %zu matches strlen %zu", name, n, strlen(got));
	free(got);
}

static void norm_len_is(const char *in, size_t len, const char *want, const char *name)
{
	size_t n = 0;
	char *got = text_normalize(in, len, &n);
	is_str(got, want, name);
	is_int((long)n, (long)strlen(want), "  and its length");
	free(got);
}

static void key_is(const char *in, const char *want, const char *name)
{
	char *got = text_fold_key(in);
	is_str(got, want, name);
	free(got);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust on a busy machine */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench(void)
{
	static const char para[] =
	    "Bonjour Dr Tremblay,\r\nVoici l\xE2\x80\x99ordonnance pour la patiente "
	    "(t\xC3\xA9l\xC3\xA9\x63onsultation du 12 mars) : amoxicilline 500\xC2\xA0mg "
	    "\xE2\x80\x94 trois fois par jour, "
	    "\xC2\xAB\xC2\xA0r\xC3\xA9\x65valuation\xC2\xA0\xC2\xBB "
	    "dans une semaine. Le m\xC3\xA9\x64\x65\x63in traitant pr\xC3\xA9\x63ise que "
	    "l\xE2\x80\x99\xC5\x93\x64\xC3\xA8me a diminu\xC3\xA9.\r\n\r\n";
	size_t target = 1 << 20, plen = strlen(para), len = 0;
	char *text = xmalloc(target + plen + 1);
	double t0, best = 1e9;
	size_t outn = 0;

	while (len < target) {
		memcpy(text + len, para, plen);
		len += plen;
	}
	text[len] = '\0';
	for (int r = 0; r < 5; r++) {
		t0 = now();
		char *o = text_normalize(text, len, &outn);
		double dt = now() - t0;
		if (dt < best)
			best = dt;
		free(o);
	}
	ok(outn > 0 && outn < len, "1 MiB French text normalized (%zu -> %zu bytes)", len, outn);
	diag("text_normalize: %.0f MB/s on %zu bytes of French text (best of 5)",
	     (double)len / best / 1e6, len);
	free(text);
}

int main(void)
{
	/* Accents and case. */
	norm_is("T\xC3\xA9l\xC3\xA9\x63onsultation", "Teleconsultation", "accents removed");
	norm_is("T\xC3\x89L\xC3\x89\x43ONSULTATION", "TELECONSULTATION",
	        "capitals kept, accents gone");
	norm_is("e\xCC\x81"
	        "chographie",
	        "echographie", "combining acute (NFD input) dropped");
	norm_is("\xC3\xA0 \xC3\xA2 \xC3\xA7 \xC3\xA8 \xC3\xAA \xC3\xAB \xC3\xAE \xC3\xAF \xC3\xB4 "
	        "\xC3\xB9 \xC3\xBB \xC3\xBC \xC3\xBF",
	        "a a c e e e i i o u u u y", "French accented letters");
	norm_is("\xC3\x80\xC3\x87\xC3\x89\xC3\x88\xC3\x8E\xC3\x94\xC3\x9B", "ACEEIOU",
	        "French capitals");

	/* Ligatures and special letters. */
	norm_is("\xEF\xAC\x81"
	        "brillation",
	        "fibrillation", "fi ligature (NFKD)");
	norm_is("\xC5\x93\x64\xC3\xA8me \xC5\x92sophage", "oedeme OEsophage", "oe ligatures");
	norm_is("\xC3\xA6 \xC3\x86 Stra\xC3\x9F\x65", "ae AE Strasse", "ae ligature and sharp s");
	norm_is("x\xC2\xB2 \xE2\x85\xA0", "x2 I",
	        "compatibility forms (superscript, roman numeral)");
	norm_is("\xEF\xBC\xB4\xEF\xBC\xA5\xEF\xBC\xAC\xEF\xBC\xA5", "TELE", "fullwidth letters");
	norm_is("\xE2\x84\x96 5, n\xC2\xB0 5", "No 5, n\xC2\xB0 5",
	        "numero sign after NFKD, n-degree kept");

	/* Quotes, dashes. */
	norm_is("l\xE2\x80\x99h\xC3\xB4pital \xE2\x80\x98x\xE2\x80\x9B \xE2\x80\xB2",
	        "l'hopital 'x' '", "single quotes and prime");
	norm_is("\xE2\x80\x9C"
	        "a\xE2\x80\x9D \xC2\xAB b \xC2\xBB \xE2\x80\x9E"
	        "c",
	        "\"a\" \" b \" \"c", "double quotes and guillemets");
	norm_is("a\xE2\x80\x90"
	        "b\xE2\x80\x91"
	        "c\xE2\x80\x92"
	        "d\xE2\x80\x93"
	        "e\xE2\x80\x94"
	        "f\xE2\x80\x95g\xE2\x88\x92h",
	        "a-b-c-d-e-f-g-h", "hyphens, dashes, minus");
	norm_is("t\xC3\xA9l\xC3\xA9\xC2\xAD\x63onsultation", "teleconsultation",
	        "soft hyphen removed");

	/* Spaces. */
	norm_is("500\xC2\xA0mg", "500 mg", "NBSP");
	norm_is("\xC2\xAB\xE2\x80\xAFoui\xE2\x80\xAF\xC2\xBB", "\" oui \"", "narrow NBSP");
	norm_is("a\xE2\x80\x89"
	        "b\xE2\x80\x8A"
	        "c\xE3\x80\x80"
	        "d\xE2\x80\x83"
	        "e",
	        "a b c d e", "thin, hair, ideographic, em spaces");
	norm_is("a\xE2\x80\xA8"
	        "b\xE2\x80\xA9"
	        "c",
	        "a b c", "line and paragraph separators");
	norm_is("a \xC2\xA0\xE2\x80\xAF\t b", "a b", "mixed space run collapses to one");

	/* Zero-width and format characters (evasion). */
	norm_is("T\xC3\x89L\xC3\x89\xE2\x80\x8B\x43ONSULTATION", "TELECONSULTATION",
	        "zero-width space removed");
	norm_is("t\xE2\x80\x8C\xC3\xA9\xE2\x80\x8Dl\xE2\x81\xA0\xC3\xA9\xEF\xBB\xBF\x63onsultation",
	        "teleconsultation", "ZWNJ, ZWJ, word joiner, BOM removed");
	norm_is("\xEF\xBB\xBF"
	        "Bonjour",
	        "Bonjour", "leading BOM removed");
	norm_is("ab\xE2\x80\x8E\xE2\x80\xAE"
	        "cd",
	        "abcd", "bidi controls removed");
	norm_is("tel\xCD\x8F"
	        "e",
	        "tele", "combining grapheme joiner removed");

	/* White space and line folding. */
	norm_is("  a\r\n  b\t\tc \r\n", "a b c", "CRLF/TAB folding and trimming");
	norm_is("t\xC3\xA9l\xC3\xA9\r\n\t\xC2\xA0 consultation", "tele consultation",
	        "folded line becomes one space");
	norm_is("a \xC3\xA9 b \xC3\xA9", "a e b e", "single spaces around accented letters");
	norm_is("word ", "word", "one trailing space");
	norm_is("l`h\xC3\xB4pital `x`", "l'hopital 'x'", "backtick read as an apostrophe");
	norm_is("", "", "empty input");
	norm_is(" \r\n\t\xC2\xA0\xE2\x80\x8B ", "", "only white space gives empty string");
	norm_is("a\x01\x02\x1F\x7F"
	        "b",
	        "a b", "C0 controls and DEL are spaces");
	norm_is("a\xC2\x85\xC2\x9F"
	        "b",
	        "a b", "C1 controls are spaces");

	/* Hostile bytes. */
	norm_len_is("T\xC3\x89L\xC3\x89\0CONSULTATION", 20, "TELE CONSULTATION",
	            "NUL byte becomes a space");
	norm_len_is("\0\0\0", 3, "", "only NUL bytes");
	norm_is("caf\xE9 ok", "caf\xEF\xBF\xBD ok", "invalid byte becomes U+FFFD");
	norm_is("\xC3", "\xEF\xBF\xBD", "truncated sequence at end");
	norm_is("\xC0\xAF"
	        "a",
	        "\xEF\xBF\xBD\xEF\xBF\xBD"
	        "a",
	        "overlong encoding rejected");
	norm_is("\xED\xA0\x80"
	        "a",
	        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
	        "a",
	        "UTF-16 surrogate rejected");
	norm_is("\xF0\x9D\x90\x80"
	        "BC",
	        "ABC", "mathematical bold A (outside the BMP)");
	norm_is("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80", "emoji kept as is");
	{
		size_t n = 1;
		char *s = text_normalize(NULL, 0, &n);
		ok(s && *s == '\0' && n == 0, "NULL input gives empty string");
		free(s);
	}
	{
		/* Worst-case expansion: one 3-byte char that decomposes to 18 chars. */
		size_t count = 2000, n = 0;
		char *in = xmalloc(count * 3 + 1);
		for (size_t i = 0; i < count; i++)
			memcpy(in + 3 * i, "\xEF\xB7\xBA", 3); /* U+FDFA */
		char *s = text_normalize(in, count * 3, &n);
		ok(n > count * 3 && strlen(s) == n,
		   "expanding decomposition grows the buffer (%zu)", n);
		free(s);
		free(in);
	}
	{
		/* A long random byte soup must produce valid UTF-8 and no crash. */
		size_t len = 1 << 16, n = 0;
		unsigned char *in = xmalloc(len);
		unsigned seed = 12345;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (unsigned char)(seed >> 16);
		}
		char *s = text_normalize((char *)in, len, &n);
		ok(strlen(s) == n, "random bytes: no NUL inside output");
		ok(n == 0 || (s[0] != ' ' && s[n - 1] != ' '), "random bytes: trimmed");
		ok(strstr(s, "  ") == NULL, "random bytes: no double space");
		free(s);
		free(in);
	}

	/* text_fold_key. */
	key_is("T\xC3\x89L\xC3\x89\x43ONSULTATION", "teleconsultation", "fold key lower-cases");
	key_is("  Imagerie\xC2\xA0M\xC3\xA9\x64icale \r\n", "imagerie medicale",
	       "fold key trims and folds");
	key_is("\xC5\x92sophage\xE2\x80\x93Gastro", "oesophage-gastro", "fold key ligature, dash");
	key_is("", "", "fold key of empty string");

	bench();
	return done_testing();
}
