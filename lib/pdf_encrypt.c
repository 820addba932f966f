/*
 * pdf_encrypt.c — AES encryption of an in-memory PDF through qpdf's C API.
 * One qpdf_data object per call, so calls from several threads are safe.
 * qpdf 11 names its R4 setter *_insecure because R4 derives the key with
 * MD5; with AES (never RC4) it is still the only choice for old readers,
 * which is why it is a per-policy fallback and not the default.
 */
#include "autoconfig.h"

#include "pdf_encrypt.h"

#include <glib.h>
#include <openssl/crypto.h>
#include <qpdf/qpdf-c.h>
#include <stdio.h>
#include <string.h>

#include "password.h"
#include "util.h"

/* Owner password: random, long, discarded after the call. */
#define OWNER_PW_LEN 32

static void set_err(char *err, size_t errlen, const char *what, const char *detail)
{
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

/*
 * R4 passwords are PDFDocEncoding bytes; PDFDocEncoding agrees with Latin-1
 * on printable ASCII and on U+00A1..U+00FF except U+00AD.  Returns a new
 * string, or NULL when the password has a character outside that range.
 */
static char *utf8_to_pdfdoc(const char *pw)
{
	char *out = xmalloc(strlen(pw) + 1), *p = out;

	for (const char *s = pw; *s; s = g_utf8_next_char(s)) {
		gunichar c = g_utf8_get_char(s);
		if ((c >= 0x20 && c <= 0x7E) || (c >= 0xA1 && c <= 0xFF && c != 0xAD)) {
			*p++ = (char)(unsigned char)c;
		} else {
			OPENSSL_cleanse(out, strlen(pw) + 1);
			free(out);
			return NULL;
		}
	}
	*p = '\0';
	return out;
}

static void cleanse_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		g_free(s);
	}
}

int pdf_encrypt(const unsigned char *in, size_t inlen, const char *user_password,
                enum pdf_enc_mode mode, unsigned char **out, size_t *outlen, char *err,
                size_t errlen)
{
	return pdf_encrypt_owner(in, inlen, user_password, NULL, mode, out, outlen, err, errlen);
}

/* The password as qpdf takes it: NFKC for R6 (SASLprep), PDFDocEncoding for R4. */
static char *password_for_mode(const char *pw, enum pdf_enc_mode mode)
{
	char *r = NULL;
	if (mode == PDF_ENC_AES256_R6)
		return g_utf8_normalize(pw, -1, G_NORMALIZE_NFKC);
	char *pd = utf8_to_pdfdoc(pw);
	if (pd) {
		r = g_strdup(pd);
		OPENSSL_cleanse(pd, strlen(pd));
		free(pd);
	}
	return r;
}

int pdf_encrypt_owner(const unsigned char *in, size_t inlen, const char *user_password,
                      const char *owner_password, enum pdf_enc_mode mode, unsigned char **out,
                      size_t *outlen, char *err, size_t errlen)
{
	char owner_buf[OWNER_PW_LEN + 1];
	char *owner = owner_buf;
	char *owner_given = NULL; /* g_malloc'd, when owner_password was given */
	char *user = NULL;        /* g_malloc'd: the password as it is handed to qpdf */
	qpdf_data q = NULL;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (!in || inlen == 0) {
		set_err(err, errlen, "pdf_encrypt: empty input", NULL);
		return -1;
	}
	if (!user_password || !user_password[0] || !g_utf8_validate(user_password, -1, NULL)) {
		set_err(err, errlen, "pdf_encrypt: empty or invalid (not UTF-8) password", NULL);
		return -1;
	}
	if (mode != PDF_ENC_AES256_R6 && mode != PDF_ENC_AES128_R4) {
		set_err(err, errlen, "pdf_encrypt: unknown encryption mode", NULL);
		return -1;
	}
	user = password_for_mode(user_password, mode);
	if (!user || !user[0]) {
		set_err(err, errlen,
		        "pdf_encrypt: password not representable for AES-128 (R4): use "
		        "Latin-1 characters or AES-256",
		        NULL);
		cleanse_free(user);
		return -1;
	}
	if (owner_password != NULL) {
		if (!owner_password[0] || !g_utf8_validate(owner_password, -1, NULL) ||
		    (owner_given = password_for_mode(owner_password, mode)) == NULL ||
		    !owner_given[0]) {
			set_err(err, errlen,
			        "pdf_encrypt: owner password empty or not representable", NULL);
			cleanse_free(user);
			cleanse_free(owner_given);
			return -1;
		}
		owner = owner_given;
	} else if (password_generate(owner_buf, sizeof(owner_buf), OWNER_PW_LEN) < 0) {
		set_err(err, errlen, "pdf_encrypt: random owner password failed", NULL);
		cleanse_free(user);
		return -1;
	}

	q = qpdf_init();
	qpdf_silence_errors(q);
	{
		/* qpdf's warnings (a damaged file it repairs) go nowhere, not to stderr */
		qpdflogger_handle l = qpdflogger_create();
		qpdflogger_set_info(l, qpdf_log_dest_discard, NULL, NULL);
		qpdflogger_set_warn(l, qpdf_log_dest_discard, NULL, NULL);
		qpdflogger_set_error(l, qpdf_log_dest_discard, NULL, NULL);
		qpdf_set_logger(q, l);
		qpdflogger_cleanup(&l);
	}
	if (qpdf_read_memory(q, "rendered message", (const char *)in, (unsigned long long)inlen,
	                     NULL) &
	    QPDF_ERRORS)
		goto qerr;
	if (qpdf_init_write_memory(q) & QPDF_ERRORS)
		goto qerr;
	/* compact output; the patient may print, copy and read aloud their own message */
	qpdf_set_object_stream_mode(q, qpdf_o_generate);
	if (mode == PDF_ENC_AES256_R6)
		qpdf_set_r6_encryption_parameters2(q, user, owner, QPDF_TRUE, QPDF_TRUE, QPDF_TRUE,
		                                   QPDF_TRUE, QPDF_TRUE, QPDF_TRUE, qpdf_r3p_full,
		                                   QPDF_TRUE);
	else
		qpdf_set_r4_encryption_parameters_insecure(
		    q, user, owner, QPDF_TRUE, QPDF_TRUE, QPDF_TRUE, QPDF_TRUE, QPDF_TRUE,
		    QPDF_TRUE, qpdf_r3p_full, QPDF_TRUE, QPDF_TRUE /* AES, never RC4 */);
	if (qpdf_has_error(q))
		goto qerr;
	if (qpdf_write(q) & QPDF_ERRORS)
		goto qerr;
	{
		size_t n = qpdf_get_buffer_length(q);
		const unsigned char *b = qpdf_get_buffer(q);
		if (!b || n == 0) {
			set_err(err, errlen, "pdf_encrypt: qpdf wrote nothing", NULL);
			goto done;
		}
		*out = xmalloc(n);
		memcpy(*out, b, n);
		*outlen = n;
		rc = 0;
	}
	goto done;

qerr : {
	qpdf_error e = qpdf_get_error(q);
	set_err(err, errlen, "qpdf", e ? qpdf_get_error_full_text(q, e) : "unknown error");
}
done:
	while (q && qpdf_more_warnings(q))
		(void)qpdf_next_warning(q); /* consumed: warnings are not failures */
	if (q)
		qpdf_cleanup(&q);
	OPENSSL_cleanse(owner_buf, sizeof(owner_buf));
	cleanse_free(owner_given);
	cleanse_free(user);
	return rc;
}
