/*
 * smime.c — S/MIME enveloping with OpenSSL 3's CMS API, see smime.h: load
 * and check recipients' PEM certificates, encrypt a MIME entity to them with
 * AES-256-CBC and produce the base64 body and the replacement headers.
 *
 * Telling transient from permanent failures.  A certificate that loads is
 * proven usable by a trial encryption to it alone, so once the certificates
 * come from smime_load_cert() a failing encryption is a resource failure
 * (tempfail), whatever OpenSSL's error queue says: under allocation failure
 * OpenSSL 3.0 often reports "cms lib" or an ASN.1 error rather than
 * ERR_R_MALLOC_FAILURE (measured by the unit test's failure injection).
 *
 * Not trusting a "success" from OpenSSL.  Under allocation failure OpenSSL
 * 3.0 can return success with a broken result (measured): CMS_final()
 * ignores a failed BIO_write and leaves the encrypted content out, and
 * i2d_*() ignores a failed SET OF encoding and leaves a short, partly
 * uninitialised buffer.  So every result is verified before use: the
 * ciphertext has exactly the padded length of the entity, there is one
 * RecipientInfo per certificate, the DER encoding filled the whole
 * (zeroed) buffer, and it parses back to exactly that many bytes.
 */
#include "autoconfig.h"
#include "smime.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define B64_LINE_IN 57 /* 57 bytes -> 76 base64 characters */

CM_PRINTF(3, 4) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Drain the thread's OpenSSL error queue into reason (the last error's
 * text).  *oom: an allocation failure was reported; *key_reason: a CMS error
 * saying the key cannot be used for this.  Returns the number of errors.
 */
static int drain_errors(char *reason, size_t reasonlen, int *oom, int *key_reason)
{
	unsigned long e, last = 0;
	int n = 0;

	*oom = *key_reason = 0;
	while ((e = ERR_get_error()) != 0) {
		n++;
		last = e;
		if (ERR_SYSTEM_ERROR(e))
			continue;
		if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
			*oom = 1;
		if (ERR_GET_LIB(e) == ERR_LIB_CMS &&
		    (ERR_GET_REASON(e) == CMS_R_NOT_SUPPORTED_FOR_THIS_KEY_TYPE ||
		     ERR_GET_REASON(e) == CMS_R_UNSUPPORTED_RECIPIENT_TYPE ||
		     ERR_GET_REASON(e) == CMS_R_UNSUPPORTED_KEY_ENCRYPTION_ALGORITHM))
			*key_reason = 1;
	}
	if (last == 0)
		snprintf(reason, reasonlen, "no reason given by OpenSSL");
	else
		ERR_error_string_n(last, reason, reasonlen);
	return n;
}

static int errno_is_transient(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOMEM || e == EINTR || e == EAGAIN || e == EIO ||
	       e == ENOBUFS;
}

/* Never prompt for a passphrase (an "encrypted" PEM block is refused). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Read the whole file (at most SMIME_MAX_CERT_FILE bytes) into *data. */
static int read_cert_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t n = 0;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		e = errno;
		set_err(err, errlen, "%s: cannot open certificate: %s", path, strerror(e));
		return errno_is_transient(e) ? SMIME_TEMP : SMIME_PERM;
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		close(fd);
		set_err(err, errlen, "%s: cannot stat certificate: %s", path, strerror(e));
		return errno_is_transient(e) ? SMIME_TEMP : SMIME_PERM;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		set_err(err, errlen, "%s: certificate is not a regular file", path);
		return SMIME_PERM;
	}
	if (st.st_size > SMIME_MAX_CERT_FILE) {
		close(fd);
		set_err(err, errlen, "%s: certificate file larger than %d bytes", path,
		        SMIME_MAX_CERT_FILE);
		return SMIME_PERM;
	}
	/* One byte more than the limit, to notice a file that grew meanwhile. */
	buf = xmalloc(SMIME_MAX_CERT_FILE + 1);
	for (;;) {
		ssize_t r = read(fd, buf + n, SMIME_MAX_CERT_FILE + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			free(buf);
			close(fd);
			set_err(err, errlen, "%s: cannot read certificate: %s", path, strerror(e));
			return errno_is_transient(e) ? SMIME_TEMP : SMIME_PERM;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > SMIME_MAX_CERT_FILE) {
			free(buf);
			close(fd);
			set_err(err, errlen, "%s: certificate file larger than %d bytes", path,
			        SMIME_MAX_CERT_FILE);
			return SMIME_PERM;
		}
	}
	close(fd);
	*data = buf;
	*len = n;
	return SMIME_OK;
}

static void format_time(const ASN1_TIME *t, char *out, size_t outlen)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, outlen, "(unreadable date)");
}

/* Key type and size: RSA of at least SMIME_MIN_RSA_BITS, or EC.  0 or -1. */
static int check_key(X509 *x, const char *what, int *is_rsa, char *err, size_t errlen)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	int id;

	if (pk == NULL) {
		set_err(err, errlen, "%s: certificate public key unreadable", what);
		return -1;
	}
	id = EVP_PKEY_get_base_id(pk);
	if (id == EVP_PKEY_RSA) {
		if (EVP_PKEY_get_bits(pk) < SMIME_MIN_RSA_BITS) {
			set_err(err, errlen, "%s: RSA key of %d bits, at least %d required", what,
			        EVP_PKEY_get_bits(pk), SMIME_MIN_RSA_BITS);
			return -1;
		}
		*is_rsa = 1;
		return 0;
	}
	if (id == EVP_PKEY_EC) {
		*is_rsa = 0;
		return 0;
	}
	set_err(err, errlen, "%s: key type %s cannot receive S/MIME encryption (RSA or EC needed)",
	        what, OBJ_nid2sn(id));
	return -1;
}

/*
 * Encrypt data[0..len) to the certificates and DER-encode the ContentInfo
 * into *der (xcalloc'd, caller frees), verifying the result (see the top of
 * this file).  0, or -1 with the reason in OpenSSL's error queue or, for a
 * failed verification, in *why.
 */
static int cms_encrypt_der(const char *data, size_t len, X509 *const *certs, size_t ncerts,
                           unsigned char **der, size_t *derlen, const char **why)
{
	STACK_OF(X509) *sk = NULL;
	STACK_OF(CMS_RecipientInfo) * ris;
	BIO *in = NULL;
	CMS_ContentInfo *cms = NULL, *back = NULL;
	ASN1_OCTET_STRING **content;
	unsigned char *buf = NULL, *p;
	const unsigned char *q;
	int n, m, rc = -1;

	*der = NULL;
	*derlen = 0;
	*why = NULL;
	sk = sk_X509_new_null();
	if (sk == NULL)
		goto done;
	for (size_t i = 0; i < ncerts; i++)
		if (sk_X509_push(sk, certs[i]) <= 0) /* no reference taken: sk_X509_free */
			goto done;
	in = BIO_new_mem_buf(data, (int)len);
	if (in == NULL)
		goto done;
	/* CMS_BINARY: the entity is already canonical (CRLF), encrypt it byte for byte. */
	cms = CMS_encrypt(sk, in, EVP_aes_256_cbc(), CMS_BINARY);
	if (cms == NULL)
		goto done;

	content = CMS_get0_content(cms);
	if (content == NULL || *content == NULL ||
	    (size_t)ASN1_STRING_length(*content) != (len / 16 + 1) * 16) {
		*why = "encrypted content missing or of the wrong length";
		goto done;
	}
	ris = CMS_get0_RecipientInfos(cms);
	if (ris == NULL || (size_t)sk_CMS_RecipientInfo_num(ris) != ncerts) {
		*why = "RecipientInfo missing";
		goto done;
	}
	n = i2d_CMS_ContentInfo(cms, NULL);
	if (n <= 0)
		goto done;
	buf = xcalloc(1, (size_t)n);
	p = buf;
	m = i2d_CMS_ContentInfo(cms, &p);
	if (m != n || p != buf + n) {
		*why = "DER encoding incomplete";
		goto done;
	}
	q = buf;
	back = d2i_CMS_ContentInfo(NULL, &q, n);
	if (back == NULL || q != buf + n) {
		if (back != NULL)
			*why = "DER encoding does not parse back";
		goto done;
	}
	*der = buf;
	*derlen = (size_t)n;
	buf = NULL;
	rc = 0;
done:
	free(buf);
	CMS_ContentInfo_free(back);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	sk_X509_free(sk);
	return rc;
}

int smime_load_cert(const char *pem_path, time_t now, X509 **out, char *err, size_t errlen)
{
	char *data = NULL, when[64], reason[256];
	const char *why = NULL;
	unsigned char *trial = NULL;
	size_t len = 0, triallen = 0;
	BIO *bio;
	X509 *x;
	uint32_t flags;
	int rc, cmp, is_rsa = 0, oom, key_reason;

	*out = NULL;
	if (pem_path == NULL || *pem_path == '\0') {
		set_err(err, errlen, "no certificate file given");
		return SMIME_PERM;
	}
	rc = read_cert_file(pem_path, &data, &len, err, errlen);
	if (rc != SMIME_OK)
		return rc;

	ERR_clear_error();
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL) {
		free(data);
		ERR_clear_error();
		set_err(err, errlen, "%s: out of memory", pem_path);
		return SMIME_TEMP;
	}
	x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	free(data);
	if (x == NULL) {
		unsigned long e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
			ERR_clear_error();
			set_err(err, errlen, "%s: no PEM certificate in file", pem_path);
			return SMIME_PERM;
		}
		/* A failure without any reason is a failed allocation (OpenSSL 3.0). */
		if (drain_errors(reason, sizeof reason, &oom, &key_reason) == 0 || oom) {
			set_err(err, errlen, "%s: cannot parse certificate (transient): %s",
			        pem_path, reason);
			return SMIME_TEMP;
		}
		set_err(err, errlen, "%s: unparseable certificate (%s)", pem_path, reason);
		return SMIME_PERM;
	}

	cmp = X509_cmp_time(X509_get0_notAfter(x), &now);
	if (cmp == 0 || X509_cmp_time(X509_get0_notBefore(x), &now) == 0) {
		set_err(err, errlen, "%s: certificate validity dates unreadable", pem_path);
		goto perm;
	}
	if (cmp < 0) {
		format_time(X509_get0_notAfter(x), when, sizeof when);
		set_err(err, errlen, "%s: certificate expired on %s", pem_path, when);
		goto perm;
	}
	if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0) {
		format_time(X509_get0_notBefore(x), when, sizeof when);
		set_err(err, errlen, "%s: certificate not yet valid (valid from %s)", pem_path,
		        when);
		goto perm;
	}
	if (check_key(x, pem_path, &is_rsa, err, errlen) != 0)
		goto perm;

	flags = X509_get_extension_flags(x);
	if (flags & EXFLAG_INVALID) {
		set_err(err, errlen, "%s: certificate extensions invalid", pem_path);
		goto perm;
	}
	if (flags & EXFLAG_KUSAGE) {
		uint32_t ku = X509_get_key_usage(x);
		uint32_t need = is_rsa ? KU_KEY_ENCIPHERMENT : KU_KEY_AGREEMENT;
		if (!(ku & need)) {
			set_err(err, errlen,
			        "%s: certificate key usage does not allow encryption (%s needed)",
			        pem_path, is_rsa ? "keyEncipherment" : "keyAgreement");
			goto perm;
		}
	}
	if (flags & EXFLAG_XKUSAGE) {
		if (!(X509_get_extended_key_usage(x) & (XKU_SMIME | XKU_ANYEKU))) {
			set_err(err, errlen,
			        "%s: certificate extended key usage lacks emailProtection",
			        pem_path);
			goto perm;
		}
	}
	/* The proof that CMS can encrypt to it (key parameters, curve). */
	ERR_clear_error();
	if (cms_encrypt_der("x", 1, &x, 1, &trial, &triallen, &why) != 0) {
		int nerr = drain_errors(reason, sizeof reason, &oom, &key_reason);
		X509_free(x);
		if (oom || nerr == 0) {
			set_err(err, errlen, "%s: trial encryption failed (transient): %s",
			        pem_path, why ? why : reason);
			return SMIME_TEMP;
		}
		set_err(err, errlen, "%s: certificate cannot be used for encryption: %s", pem_path,
		        reason);
		return SMIME_PERM;
	}
	free(trial);
	*out = x;
	return SMIME_OK;

perm:
	ERR_clear_error();
	X509_free(x);
	return SMIME_PERM;
}

int smime_check_cert(const char *pem_path, time_t now, char *err, size_t errlen)
{
	X509 *x = NULL;
	int rc = smime_load_cert(pem_path, now, &x, err, errlen);

	X509_free(x);
	return rc;
}

void smime_recipients_init(struct smime_recipients *r)
{
	r->certs = NULL;
	r->ncerts = 0;
}

int smime_recipients_add(struct smime_recipients *r, const char *pem_path, time_t now, char *err,
                         size_t errlen)
{
	X509 *x = NULL;
	int rc = smime_load_cert(pem_path, now, &x, err, errlen);

	if (rc != SMIME_OK)
		return rc;
	r->certs = xrealloc(r->certs, (r->ncerts + 1) * sizeof *r->certs);
	r->certs[r->ncerts++] = x;
	return SMIME_OK;
}

void smime_recipients_free(struct smime_recipients *r)
{
	for (size_t i = 0; i < r->ncerts; i++)
		X509_free(r->certs[i]);
	free(r->certs);
	smime_recipients_init(r);
}

static void base64_lines(struct strbuf *out, const unsigned char *der, size_t n)
{
	unsigned char line[80];

	for (size_t off = 0; off < n; off += B64_LINE_IN) {
		size_t chunk = n - off < B64_LINE_IN ? n - off : B64_LINE_IN;
		int w = EVP_EncodeBlock(line, der + off, (int)chunk);
		sb_append(out, (const char *)line, (size_t)w);
		sb_append(out, "\r\n", 2);
	}
}

int smime_envelope(const char *entity, size_t len, X509 *const *certs, size_t ncerts,
                   struct strbuf *out_headers, struct strbuf *out_body, char *err, size_t errlen)
{
	unsigned char *der = NULL;
	size_t derlen = 0;
	const char *why = NULL;
	char what[64], reason[256];
	int is_rsa, oom, key_reason;

	sb_reset(out_headers);
	sb_reset(out_body);
	if (entity == NULL || len > INT_MAX) {
		set_err(err, errlen, "message entity missing or larger than %d bytes", INT_MAX);
		return SMIME_PERM;
	}
	if (certs == NULL || ncerts == 0) {
		set_err(err, errlen, "no recipient certificate");
		return SMIME_PERM;
	}
	for (size_t i = 0; i < ncerts; i++) {
		snprintf(what, sizeof what, "recipient certificate %zu", i + 1);
		if (certs[i] == NULL) {
			set_err(err, errlen, "%s missing", what);
			return SMIME_PERM;
		}
		if (check_key(certs[i], what, &is_rsa, err, errlen) != 0)
			return SMIME_PERM;
	}

	ERR_clear_error();
	if (cms_encrypt_der(entity, len, certs, ncerts, &der, &derlen, &why) != 0) {
		(void)drain_errors(reason, sizeof reason, &oom, &key_reason);
		if (key_reason && !oom) {
			set_err(err, errlen, "S/MIME encryption failed: %s", reason);
			return SMIME_PERM;
		}
		set_err(err, errlen, "S/MIME encryption failed (transient): %s",
		        why ? why : reason);
		return SMIME_TEMP;
	}
	sb_printf(out_headers, "%s: %s\r\n%s: %s\r\n%s: %s\r\n", SMIME_HDR_CT, SMIME_HDR_CT_VALUE,
	          SMIME_HDR_CTE, SMIME_HDR_CTE_VALUE, SMIME_HDR_CD, SMIME_HDR_CD_VALUE);
	base64_lines(out_body, der, derlen);
	free(der);
	return SMIME_OK;
}
