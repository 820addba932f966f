/*
 * fax_stamp.c — the milter's approval of a fax (fax_stamp.h): the canonical
 * body hash, the HMAC-SHA256 stamp (OpenSSL 3 EVP_MAC), its strict parser,
 * and the two normalisations both sides must agree on (Message-ID, NANP
 * number).  No global state.
 */
#include "autoconfig.h"
#include "fax_stamp.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define REF_MAX 63

CM_PRINTF(3, 4)
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- key ---- */

int fax_key_load(const char *path, struct fax_key *k, char *err, size_t errlen)
{
	unsigned char buf[sizeof(k->key) + 3];
	struct stat st;
	size_t n = 0;
	int fd;

	memset(k, 0, sizeof(*k));
	/* O_NONBLOCK: a FIFO put in the key's place must not hang the caller. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return fail(err, errlen, "approval key %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		close(fd);
		return fail(err, errlen, "approval key %s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, "approval key %s: not a regular file", path);
	}
	if ((st.st_mode & 077) != 0) {
		close(fd);
		return fail(err, errlen,
		            "approval key %s: group or others have access (mode %03o): chmod 600",
		            path, (unsigned)(st.st_mode & 0777));
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			OPENSSL_cleanse(buf, sizeof(buf));
			return fail(err, errlen, "approval key %s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof(buf))
			break;
	}
	close(fd);
	/* A trailing newline (an editor's) is not part of the key. */
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (n > sizeof(k->key)) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return fail(err, errlen, "approval key %s: longer than %zu bytes", path,
		            sizeof(k->key));
	}
	if (n < 16) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return fail(err, errlen, "approval key %s: shorter than 16 bytes", path);
	}
	memcpy(k->key, buf, n);
	k->len = n;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* ---- canonical body hash ---- */

/*
 * Streaming canonicalisation: a CR is held until we know whether an LF
 * follows (CRLF -> LF); LFs are held until some other byte shows they are
 * not trailing.  At the end, one LF closes a non-empty body.
 */
struct fax_body_hash {
	EVP_MD_CTX *md;
	size_t pending_lf; /* LFs not yet written (may be trailing) */
	int pending_cr;    /* a CR not yet written (may precede an LF) */
	int any;           /* something other than line ends was written */
};

struct fax_body_hash *fax_body_hash_new(void)
{
	struct fax_body_hash *h = xcalloc(1, sizeof(*h));

	h->md = EVP_MD_CTX_new();
	if (h->md == NULL || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
		msg_fatal("fax_body_hash_new: cannot initialise SHA-256");
	return h;
}

static void put(struct fax_body_hash *h, const void *p, size_t n)
{
	if (n > 0 && EVP_DigestUpdate(h->md, p, n) != 1)
		msg_fatal("fax_body_hash: SHA-256 update failed");
}

static void flush_lf(struct fax_body_hash *h)
{
	static const char lfs[64] =
	    "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
	    "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n";
	while (h->pending_lf > 0) {
		size_t n = h->pending_lf < sizeof(lfs) ? h->pending_lf : sizeof(lfs);
		put(h, lfs, n);
		h->pending_lf -= n;
	}
}

/* A byte that is content (not a line end): the held line ends are not trailing. */
static void content_starts(struct fax_body_hash *h)
{
	flush_lf(h);
	h->any = 1;
}

void fax_body_hash_update(struct fax_body_hash *h, const void *buf, size_t len)
{
	const unsigned char *p = buf, *end = p + len;

	while (p < end) {
		if (*p == '\n') {
			h->pending_cr = 0; /* CRLF: the CR goes */
			h->pending_lf++;
			p++;
			continue;
		}
		if (h->pending_cr) { /* a CR not followed by LF is content */
			content_starts(h);
			put(h, "\r", 1);
			h->pending_cr = 0;
		}
		if (*p == '\r') {
			h->pending_cr = 1;
			p++;
			continue;
		}
		/* A run of plain bytes. */
		const unsigned char *q = p;
		while (q < end && *q != '\n' && *q != '\r')
			q++;
		content_starts(h);
		put(h, p, (size_t)(q - p));
		p = q;
	}
}

void fax_body_hash_final(struct fax_body_hash *h, unsigned char out[32])
{
	unsigned int n = 0;

	if (h->pending_cr) {
		content_starts(h);
		put(h, "\r", 1);
	}
	if (h->any)
		put(h, "\n", 1);
	if (EVP_DigestFinal_ex(h->md, out, &n) != 1 || n != 32)
		msg_fatal("fax_body_hash: SHA-256 final failed");
	EVP_MD_CTX_free(h->md);
	free(h);
}

void fax_body_hash_hex(const unsigned char bh[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[bh[i] >> 4];
		hex[2 * i + 1] = digits[bh[i] & 15];
	}
	hex[64] = '\0';
}

/* ---- normalisations ---- */

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/*
 * Unfold a header value: a line break (CRLF or LF) followed by SP/HT is
 * removed.  Any other control character (a bare line break, NUL cannot
 * occur) is refused.  Returns a new string or NULL.
 */
static char *unfold(const char *v)
{
	size_t n = strlen(v);
	char *out = xmalloc(n + 1), *o = out;

	for (const char *p = v; *p;) {
		if (*p == '\r' && p[1] == '\n' && is_wsp((unsigned char)p[2])) {
			p += 2;
			continue;
		}
		if (*p == '\n' && is_wsp((unsigned char)p[1])) {
			p++;
			continue;
		}
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			free(out);
			return NULL;
		}
		if (*p == 0x7f) {
			free(out);
			return NULL;
		}
		*o++ = *p++;
	}
	*o = '\0';
	return out;
}

int fax_message_id_canon(const char *raw, char *out, size_t outlen)
{
	char *u, *s, *e;
	size_t n;

	if (outlen > 0)
		out[0] = '\0';
	if (raw == NULL || (u = unfold(raw)) == NULL)
		return -1;
	s = u;
	while (is_wsp((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_wsp((unsigned char)e[-1]))
		e--;
	if (e - s >= 2 && *s == '<' && e[-1] == '>') {
		s++;
		e--;
	}
	n = (size_t)(e - s);
	if (n == 0 || n >= outlen) {
		free(u);
		return -1;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	free(u);
	return 0;
}

int fax_number_nanp(const char *in, char out[11])
{
	char d[12];
	size_t n = 0;
	const char *p = in;

	out[0] = '\0';
	if (p == NULL || *p == '\0')
		return -1;
	if (*p == '+')
		p++;
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9') {
			if (n >= 11)
				return -1;
			d[n++] = *p;
		} else if ((*p == '-' || *p == '.') && n > 0 && p[1] != '\0' && p[1] != '-' &&
		           p[1] != '.') {
			continue;
		} else {
			return -1;
		}
	}
	if (n == 11) {
		if (d[0] != '1')
			return -1;
		memmove(d, d + 1, 10);
		n = 10;
	} else if (in[0] == '+') {
		return -1; /* +NXX… without the country code 1 is not North American */
	}
	if (n != 10)
		return -1;
	if (d[0] < '2' || d[3] < '2') /* area code and exchange: [2-9]XX */
		return -1;
	memcpy(out, d, 10);
	out[10] = '\0';
	return 0;
}

/* ---- the MAC ---- */

static int valid_ref(const char *ref)
{
	size_t n = 0;

	if (ref == NULL)
		return 0;
	for (; ref[n]; n++)
		if (!isalnum((unsigned char)ref[n]) && ref[n] != '-' && ref[n] != '_' &&
		    ref[n] != '.')
			return 0;
	return n >= 1 && n <= REF_MAX;
}

static int ten_digits(const char *s)
{
	if (s == NULL)
		return 0;
	for (int i = 0; i < 10; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return s[10] == '\0';
}

static int cmp_num(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void mac_field(struct strbuf *sb, const char *name, const char *value)
{
	sb_puts(sb, name);
	sb_puts(sb, value);
	sb_append(sb, "", 1); /* the NUL terminator of the field */
}

/* HMAC-SHA256 over the canonical input; numbers sorted, unique.  0 or -1. */
static int compute_mac(const struct fax_key *k, const char *ref, long long t, const char *mid,
                       const char *const *sorted, size_t n, const unsigned char bh[32],
                       unsigned char mac[32])
{
	struct strbuf sb;
	char tbuf[32];
	EVP_MAC *m = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t outl = 0;
	int rc = -1;

	sb_init(&sb);
	mac_field(&sb, "clinimail-fax-approval", "");
	mac_field(&sb, "v=", "1");
	mac_field(&sb, "ref=", ref);
	snprintf(tbuf, sizeof(tbuf), "%lld", t);
	mac_field(&sb, "t=", tbuf);
	mac_field(&sb, "mid=", mid);
	sb_puts(&sb, "to=");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_putc(&sb, ',');
		sb_puts(&sb, sorted[i]);
	}
	sb_append(&sb, "", 1);
	sb_puts(&sb, "bh=");
	sb_append(&sb, (const char *)bh, 32);
	sb_append(&sb, "", 1);

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((m = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL && (ctx = EVP_MAC_CTX_new(m)) != NULL &&
	    EVP_MAC_init(ctx, k->key, k->len, params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)sb.data, sb.len) == 1 &&
	    EVP_MAC_final(ctx, mac, &outl, 32) == 1 && outl == 32)
		rc = 0;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	sb_free(&sb);
	return rc;
}

static void b64_32(const unsigned char in[32], char out[45])
{
	EVP_EncodeBlock((unsigned char *)out, in, 32); /* 44 characters and a NUL */
}

/* Strict standard base64 of exactly 32 bytes (white space already removed). */
static int unb64_32(const char *s, unsigned char out[32])
{
	unsigned char tmp[36];
	char again[45];

	if (strlen(s) != 44 || s[43] != '=')
		return -1;
	for (int i = 0; i < 43; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
			return -1;
	if (EVP_DecodeBlock(tmp, (const unsigned char *)s, 44) != 33)
		return -1;
	memcpy(out, tmp, 32);
	b64_32(out, again); /* canonical: the unused low bits are zero */
	return strcmp(again, s) == 0 ? 0 : -1;
}

char *fax_stamp_make(const struct fax_key *k, const char *ref, time_t t, const char *message_id,
                     const char *const *numbers, size_t nnumbers, const unsigned char bh[32])
{
	const char *sorted[FAX_STAMP_MAX_NUMBERS];
	unsigned char mac[32];
	char bh64[45], mac64[45];
	struct strbuf sb;
	size_t n = 0;

	if (k == NULL || k->len == 0 || !valid_ref(ref) || message_id == NULL || t < 0 ||
	    nnumbers == 0 || numbers == NULL)
		return NULL;
	if (strchr(message_id, '\r') || strchr(message_id, '\n'))
		return NULL;
	for (size_t i = 0; i < nnumbers; i++) {
		int dup = 0;
		if (!ten_digits(numbers[i]))
			return NULL;
		for (size_t j = 0; j < n; j++)
			if (strcmp(sorted[j], numbers[i]) == 0)
				dup = 1;
		if (dup)
			continue;
		if (n == FAX_STAMP_MAX_NUMBERS)
			return NULL;
		sorted[n++] = numbers[i];
	}
	qsort(sorted, n, sizeof(sorted[0]), cmp_num);
	if (compute_mac(k, ref, (long long)t, message_id, sorted, n, bh, mac) < 0)
		return NULL;
	b64_32(bh, bh64);
	b64_32(mac, mac64);
	sb_init(&sb);
	sb_printf(&sb, "v=1; ref=%s; t=%lld; to=", ref, (long long)t);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_putc(&sb, ',');
		sb_puts(&sb, sorted[i]);
	}
	sb_printf(&sb, "; bh=%s; mac=%s", bh64, mac64);
	OPENSSL_cleanse(mac, sizeof(mac));
	return sb_steal(&sb);
}

/* ---- the parser ---- */

enum tag { TAG_V, TAG_REF, TAG_T, TAG_TO, TAG_BH, TAG_MAC, NTAGS };
static const char *const tag_names[NTAGS] = {"v", "ref", "t", "to", "bh", "mac"};

static char *trim(char *s)
{
	char *e;

	while (is_wsp((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_wsp((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Remove every SP/HT (base64 values may be folded). */
static void squeeze(char *s)
{
	char *o = s;

	for (; *s; s++)
		if (!is_wsp((unsigned char)*s))
			*o++ = *s;
	*o = '\0';
}

static int parse_numbers(char *v, struct fax_stamp *out, char *err, size_t errlen)
{
	char *save = NULL;
	int trailing = v[0] == '\0' || v[strlen(v) - 1] == ',';

	out->nnumbers = 0;
	/* strtok_r skips empty fields: refuse them first */
	if (trailing || v[0] == ',' || strstr(v, ",,") != NULL)
		return fail(err, errlen, "malformed stamp: empty number in to=");
	for (char *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		t = trim(t);
		if (!ten_digits(t))
			return fail(err, errlen,
			            "malformed stamp: to= holds something other than "
			            "10-digit numbers");
		if (out->nnumbers == FAX_STAMP_MAX_NUMBERS)
			return fail(err, errlen, "malformed stamp: more than %d numbers",
			            FAX_STAMP_MAX_NUMBERS);
		if (out->nnumbers > 0 && strcmp(out->numbers[out->nnumbers - 1], t) >= 0)
			return fail(err, errlen,
			            "malformed stamp: to= numbers not sorted or repeated");
		memcpy(out->numbers[out->nnumbers++], t, 11);
	}
	return 0;
}

int fax_stamp_verify(const struct fax_key *k, const char *value, const char *message_id,
                     const unsigned char bh[32], struct fax_stamp *out, char *err, size_t errlen)
{
	char *vals[NTAGS] = {NULL};
	char *u = NULL, *p, *save = NULL;
	unsigned char hbh[32], hmac[32], mac[32];
	const char *sorted[FAX_STAMP_MAX_NUMBERS];
	struct fax_stamp st;
	char *copy_to = NULL;
	long long t = 0;
	int rc = -1;

	memset(&st, 0, sizeof(st));
	if (out)
		memset(out, 0, sizeof(*out));
	if (k == NULL || k->len == 0)
		return fail(err, errlen, "no approval key");
	if (value == NULL || message_id == NULL)
		return fail(err, errlen, "malformed stamp: empty");
	if (strlen(value) > FAX_STAMP_MAX_VALUE)
		return fail(err, errlen, "malformed stamp: longer than %d bytes",
		            FAX_STAMP_MAX_VALUE);
	if ((u = unfold(value)) == NULL)
		return fail(err, errlen, "malformed stamp: control character");
	p = trim(u);
	if (*p && p[strlen(p) - 1] == ';') /* one trailing ';' */
		p[strlen(p) - 1] = '\0';
	if (strstr(p, ";;") != NULL) {
		fail(err, errlen, "malformed stamp: empty tag");
		goto out;
	}
	for (char *tag = strtok_r(p, ";", &save); tag; tag = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(tag, '='), *name, *val;
		int which = -1;
		if (eq == NULL) {
			fail(err, errlen, "malformed stamp: tag without '='");
			goto out;
		}
		*eq = '\0';
		name = trim(tag);
		val = trim(eq + 1);
		for (int i = 0; i < NTAGS; i++)
			if (strcmp(name, tag_names[i]) == 0)
				which = i;
		if (which < 0) {
			fail(err, errlen, "malformed stamp: unknown tag \"%.20s\"", name);
			goto out;
		}
		if (vals[which] != NULL) {
			fail(err, errlen, "malformed stamp: tag %s given twice", tag_names[which]);
			goto out;
		}
		vals[which] = val;
	}
	for (int i = 0; i < NTAGS; i++)
		if (vals[i] == NULL) {
			fail(err, errlen, "malformed stamp: tag %s missing", tag_names[i]);
			goto out;
		}
	if (strcmp(vals[TAG_V], "1") != 0) {
		fail(err, errlen, "unknown stamp version \"%.10s\"", vals[TAG_V]);
		goto out;
	}
	if (!valid_ref(vals[TAG_REF])) {
		fail(err, errlen, "malformed stamp: bad ref=");
		goto out;
	}
	snprintf(st.ref, sizeof(st.ref), "%s", vals[TAG_REF]);
	{
		const char *s = vals[TAG_T];
		size_t n = strlen(s);
		if (n == 0 || n > 18 || strspn(s, "0123456789") != n) {
			fail(err, errlen, "malformed stamp: bad t=");
			goto out;
		}
		t = strtoll(s, NULL, 10);
		if ((long long)(time_t)t != t) {
			fail(err, errlen, "malformed stamp: bad t=");
			goto out;
		}
		st.t = (time_t)t;
	}
	copy_to = xstrdup(vals[TAG_TO]);
	if (parse_numbers(copy_to, &st, err, errlen) < 0)
		goto out;
	squeeze(vals[TAG_BH]);
	squeeze(vals[TAG_MAC]);
	if (unb64_32(vals[TAG_BH], hbh) < 0 || unb64_32(vals[TAG_MAC], hmac) < 0) {
		fail(err, errlen, "malformed stamp: bh= or mac= is not base64 of 32 bytes");
		goto out;
	}
	for (size_t i = 0; i < st.nnumbers; i++)
		sorted[i] = st.numbers[i];
	if (compute_mac(k, st.ref, t, message_id, sorted, st.nnumbers, hbh, mac) < 0) {
		fail(err, errlen, "cannot compute the MAC");
		goto out;
	}
	if (CRYPTO_memcmp(mac, hmac, 32) != 0) {
		fail(err, errlen,
		     "bad MAC: not made with this key, or the stamp or Message-ID was altered");
		goto out;
	}
	if (bh == NULL || CRYPTO_memcmp(hbh, bh, 32) != 0) {
		fail(err, errlen, "body changed since the approval");
		goto out;
	}
	if (out)
		*out = st;
	rc = 0;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	free(copy_to);
	free(u);
	return rc;
}

int fax_stamp_allows(const struct fax_stamp *s, const char *number)
{
	if (s == NULL || !ten_digits(number))
		return 0;
	for (size_t i = 0; i < s->nnumbers && i < FAX_STAMP_MAX_NUMBERS; i++)
		if (strcmp(s->numbers[i], number) == 0)
			return 1;
	return 0;
}
