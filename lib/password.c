/*
 * password.c — per-message password generation (OpenSSL CSPRNG, rejection
 * sampling so that every symbol is equally likely) and the check of a
 * patient's registered passphrase against the identifiers the policy found.
 */
#include "autoconfig.h"

#include "password.h"

#include <glib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

int password_generate(char *out, size_t outsize, size_t len)
{
	static const char alphabet[] = PASSWORD_ALPHABET;
	const unsigned n = sizeof(alphabet) - 1;
	/* the largest multiple of n not above 256: bytes at or above it are redrawn */
	const unsigned limit = 256 - 256 % n;
	unsigned char rnd[64];
	size_t have = 0, pos = sizeof(rnd);

	if (!out || len == 0 || outsize <= len)
		return -1;
	while (have < len) {
		if (pos == sizeof(rnd)) {
			if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
				OPENSSL_cleanse(out, outsize);
				out[0] = '\0';
				return -1;
			}
			pos = 0;
		}
		unsigned b = rnd[pos++];
		if (b >= limit)
			continue;
		out[have++] = alphabet[b % n];
	}
	out[len] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return 0;
}

/* Lower-case ASCII letters and digits of s, everything else dropped. */
static char *fold_alnum(const char *s)
{
	size_t n = strlen(s);
	char *f = xmalloc(n + 1), *p = f;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= '0' && c <= '9')
			*p++ = (char)c;
		else if (c >= 'a' && c <= 'z')
			*p++ = (char)c;
		else if (c >= 'A' && c <= 'Z')
			*p++ = (char)(c - 'A' + 'a');
	}
	*p = '\0';
	return f;
}

static char *digits_only(const char *s)
{
	char *f = xmalloc(strlen(s) + 1), *p = f;

	for (; *s; s++)
		if (*s >= '0' && *s <= '9')
			*p++ = *s;
	*p = '\0';
	return f;
}

/*
 * The digit groups of a date of birth: year, month, day.  Accepts YYYYMMDD,
 * Y-M-D and D-M-Y / M-D-Y with any separators (the day/month order does not
 * matter: both orders are checked).  Returns 0, or -1 when not a date.
 */
static int parse_dob(const char *s, int *y, int *a, int *b)
{
	int g[3], glen[3], ng = 0;

	while (*s) {
		if (*s < '0' || *s > '9') {
			s++;
			continue;
		}
		if (ng == 3)
			return -1;
		g[ng] = 0;
		glen[ng] = 0;
		while (*s >= '0' && *s <= '9') {
			if (glen[ng] < 9)
				g[ng] = g[ng] * 10 + (*s - '0');
			glen[ng]++;
			s++;
		}
		ng++;
	}
	if (ng == 1 && glen[0] == 8) {
		int v = g[0];
		if (v / 10000 >= 1900 && v / 10000 <= 2100) { /* YYYYMMDD */
			*y = v / 10000;
			*a = v / 100 % 100;
			*b = v % 100;
		} else { /* DDMMYYYY or MMDDYYYY */
			*y = v % 10000;
			*a = v / 1000000;
			*b = v / 10000 % 100;
		}
		return 0;
	}
	if (ng != 3)
		return -1;
	if (glen[0] == 4 && glen[1] <= 2 && glen[2] <= 2) {
		*y = g[0];
		*a = g[1];
		*b = g[2];
		return 0;
	}
	if (glen[2] == 4 && glen[0] <= 2 && glen[1] <= 2) {
		*y = g[2];
		*a = g[0];
		*b = g[1];
		return 0;
	}
	return -1;
}

static int contains(const char *hay, const char *needle)
{
	return needle[0] && strstr(hay, needle) != NULL;
}

static int dob_in(const char *folded, const char *dob)
{
	int y, a, b;
	char v[16];

	if (parse_dob(dob, &y, &a, &b) < 0) {
		char *f = fold_alnum(dob);
		int hit = strlen(f) >= 4 && contains(folded, f);
		free(f);
		return hit;
	}
	if (y < 0 || y > 9999 || a < 0 || a > 99 || b < 0 || b > 99)
		return 0;
	/* a and b are day and month in either order: both orders, 4- and 2-digit years */
	const int pair[2][2] = {{a, b}, {b, a}};
	for (int i = 0; i < 2; i++) {
		int p = pair[i][0], q = pair[i][1];
		snprintf(v, sizeof(v), "%04d%02d%02d", y, p, q);
		if (contains(folded, v))
			return 1;
		snprintf(v, sizeof(v), "%02d%02d%04d", p, q, y);
		if (contains(folded, v))
			return 1;
		snprintf(v, sizeof(v), "%02d%02d%02d", y % 100, p, q);
		if (contains(folded, v))
			return 1;
		snprintf(v, sizeof(v), "%02d%02d%02d", p, q, y % 100);
		if (contains(folded, v))
			return 1;
	}
	return 0;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

int password_check_passphrase(const char *pass, const struct patient_ident *ids, size_t nids,
                              char *err, size_t errlen)
{
	char *folded;
	int bad = 0;

	if (!pass || !g_utf8_validate(pass, -1, NULL)) {
		set_err(err, errlen, "passphrase is not valid UTF-8");
		return -1;
	}
	if (g_utf8_strlen(pass, -1) < PASSPHRASE_MIN_CHARS) {
		set_err(err, errlen, "passphrase shorter than 12 characters");
		return -1;
	}
	folded = fold_alnum(pass);
	for (size_t i = 0; i < nids && !bad; i++) {
		const char *v = ids[i].value;
		if (!v)
			continue;
		switch (ids[i].kind) {
		case IDENT_NAM: {
			char *f = fold_alnum(v), *d = digits_only(v);
			if ((strlen(f) >= 4 && contains(folded, f)) ||
			    (strlen(d) >= 6 && contains(folded, d))) {
				set_err(err, errlen, "passphrase contains the patient's NAM");
				bad = 1;
			}
			free(f);
			free(d);
			break;
		}
		case IDENT_DOB:
			if (dob_in(folded, v)) {
				set_err(err, errlen,
				        "passphrase contains the patient's date of birth");
				bad = 1;
			}
			break;
		case IDENT_FILE_NO: {
			char *f = fold_alnum(v);
			if (strlen(f) >= 4 && contains(folded, f)) {
				set_err(err, errlen,
				        "passphrase contains the patient's file number");
				bad = 1;
			}
			free(f);
			break;
		}
		}
	}
	OPENSSL_cleanse(folded, strlen(folded));
	free(folded);
	return bad ? -1 : 0;
}
