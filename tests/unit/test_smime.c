/*
 * test_smime.c — S/MIME enveloping (lib/smime.c): throwaway RSA-2048 and EC
 * P-256 keys and self-signed certificates are made at test time in a
 * mkdtemp folder (no key is ever committed); a realistic multipart entity is
 * enveloped, then decrypted with CMS_decrypt and with the openssl command
 * line and compared byte for byte; the content cipher is checked to be
 * AES-256-CBC in the DER; every refused certificate gives a clear error; a
 * 2 MB entity, concurrent threads and injected allocation failures
 * (tempfail, never a crash or a clear message) are exercised.
 */
#include "autoconfig.h"
#include "smime.h"
#include "util.h"
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DAY (24L * 3600L)

static char tmpdir[] = "/tmp/test_smime.XXXXXX";
static char err[1024];

/* ---- allocation failure injection (armed only around one call) ---- */
static volatile long alloc_countdown = -1; /* -1: off; 0: fail the next allocation */
static volatile long alloc_failed;

static void *t_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (alloc_countdown >= 0 && alloc_countdown-- == 0) {
		alloc_failed++;
		return NULL;
	}
	return malloc(n);
}

static void *t_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (alloc_countdown >= 0 && alloc_countdown-- == 0) {
		alloc_failed++;
		return NULL;
	}
	return realloc(p, n);
}

static void t_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

/* ---- helpers ---- */
static char *path_in(const char *name)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb, "%s/%s", tmpdir, name);
	return sb_steal(&sb);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0) {
		perror(path);
		exit(2);
	}
}

static char *read_all(const char *path, size_t *len)
{
	struct strbuf sb;
	char buf[65536];
	size_t n;
	FILE *fp = fopen(path, "rb");

	sb_init(&sb);
	if (fp == NULL)
		return NULL;
	while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
		sb_append(&sb, buf, n);
	fclose(fp);
	*len = sb.len;
	if (sb.data == NULL)
		sb_append(&sb, "", 0);
	return sb_steal(&sb);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int contains(const char *hay, size_t haylen, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; n <= haylen && i <= haylen - n; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

struct keycert {
	EVP_PKEY *key;
	X509 *cert;
	char *cert_path;
	char *key_path;
};

static void add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || !X509_add_ext(x, ext, -1)) {
		printf("Bail out! extension %s\n", value);
		exit(2);
	}
	X509_EXTENSION_free(ext);
}

/*
 * A self-signed certificate for a fresh key ("rsa2048", "rsa1024", "ec",
 * "ed25519"), valid from now+nb to now+na seconds, with the given key usage
 * and extended key usage (NULL: extension absent), written as name.crt and
 * name.key in tmpdir.
 */
static struct keycert make_cert(const char *name, const char *kind, long nb, long na,
                                const char *ku, const char *eku)
{
	struct keycert kc;
	X509_NAME *subj;
	FILE *fp;
	char file[256];

	if (strcmp(kind, "rsa2048") == 0)
		kc.key = EVP_RSA_gen(2048);
	else if (strcmp(kind, "rsa1024") == 0)
		kc.key = EVP_RSA_gen(1024);
	else if (strcmp(kind, "ec") == 0)
		kc.key = EVP_EC_gen("P-256");
	else
		kc.key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	kc.cert = X509_new();
	if (kc.key == NULL || kc.cert == NULL) {
		printf("Bail out! keygen %s\n", kind);
		exit(2);
	}
	X509_set_version(kc.cert, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(kc.cert), (long)(rand() & 0x7fffffff));
	X509_gmtime_adj(X509_getm_notBefore(kc.cert), nb);
	X509_gmtime_adj(X509_getm_notAfter(kc.cert), na);
	X509_set_pubkey(kc.cert, kc.key);
	subj = X509_get_subject_name(kc.cert);
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
	                           (const unsigned char *)"Marie Lapointe", -1, -1, 0);
	X509_NAME_add_entry_by_txt(subj, "emailAddress", MBSTRING_ASC,
	                           (const unsigned char *)"marie.lapointe@videotron.ca", -1, -1, 0);
	X509_set_issuer_name(kc.cert, subj);
	if (ku)
		add_ext(kc.cert, NID_key_usage, ku);
	if (eku)
		add_ext(kc.cert, NID_ext_key_usage, eku);
	if (X509_sign(kc.cert, kc.key, strcmp(kind, "ed25519") == 0 ? NULL : EVP_sha256()) <= 0) {
		printf("Bail out! sign %s\n", kind);
		exit(2);
	}
	snprintf(file, sizeof file, "%s.crt", name);
	kc.cert_path = path_in(file);
	snprintf(file, sizeof file, "%s.key", name);
	kc.key_path = path_in(file);
	fp = fopen(kc.cert_path, "w");
	if (fp == NULL || !PEM_write_X509(fp, kc.cert) || fclose(fp) != 0) {
		printf("Bail out! write %s\n", kc.cert_path);
		exit(2);
	}
	fp = fopen(kc.key_path, "w");
	if (fp == NULL || !PEM_write_PrivateKey(fp, kc.key, NULL, NULL, 0, NULL, NULL) ||
	    fclose(fp) != 0) {
		printf("Bail out! write %s\n", kc.key_path);
		exit(2);
	}
	return kc;
}

static void free_cert(struct keycert *kc)
{
	EVP_PKEY_free(kc->key);
	X509_free(kc->cert);
	free(kc->cert_path);
	free(kc->key_path);
}

/* A realistic message entity: multipart/mixed, QP French text, a base64 attachment. */
static char *make_entity(size_t attach_bytes, size_t *len)
{
	struct strbuf sb;
	unsigned char *raw = xmalloc(attach_bytes + 1);
	unsigned char line[80];

	if (RAND_bytes(raw, (int)attach_bytes + 1) != 1) {
		printf("Bail out! RAND_bytes\n");
		exit(2);
	}
	sb_init(&sb);
	sb_puts(&sb, "Content-Type: multipart/mixed;\r\n"
	             "\tboundary=\"=_clinimail_test_boundary\"\r\n"
	             "\r\n"
	             "This is a multi-part message in MIME format.\r\n"
	             "--=_clinimail_test_boundary\r\n"
	             "Content-Type: text/plain; charset=utf-8\r\n"
	             "Content-Transfer-Encoding: quoted-printable\r\n"
	             "\r\n"
	             "Bonjour Mme Lapointe,\r\n"
	             "\r\n"
	             "Voici les r=C3=A9sultats de votre bilan sanguin du 3 mars. Votre =\r\n"
	             "h=C3=A9moglobine glyqu=C3=A9e est =C3=A0 6,1 %. Continuez la metformine =\r\n"
	             "500 mg deux fois par jour.\r\n"
	             "NAM : LAPM 5612 1234  Dossier : 0012345\r\n"
	             "\r\n"
	             "Dr Jean Tremblay\r\n"
	             "--=_clinimail_test_boundary\r\n"
	             "Content-Type: application/pdf; name=\"resultats-lapointe.pdf\"\r\n"
	             "Content-Transfer-Encoding: base64\r\n"
	             "Content-Disposition: attachment; filename=\"resultats-lapointe.pdf\"\r\n"
	             "\r\n");
	for (size_t off = 0; off < attach_bytes; off += 57) {
		size_t c = attach_bytes - off < 57 ? attach_bytes - off : 57;
		int w = EVP_EncodeBlock(line, raw + off, (int)c);
		sb_append(&sb, (const char *)line, (size_t)w);
		sb_puts(&sb, "\r\n");
	}
	sb_puts(&sb, "--=_clinimail_test_boundary--\r\n");
	free(raw);
	*len = sb.len;
	return sb_steal(&sb);
}

/* headers + empty line + body, as a delivered message's MIME part. */
static char *smime_message(const struct strbuf *hdr, const struct strbuf *body, size_t *len)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "From: <dr.tremblay@hopital.example>\r\n"
	             "To: <marie.lapointe@videotron.ca>\r\n"
	             "Subject: Message securise\r\n"
	             "MIME-Version: 1.0\r\n");
	sb_append(&sb, hdr->data, hdr->len);
	sb_puts(&sb, "\r\n");
	sb_append(&sb, body->data, body->len);
	*len = sb.len;
	return sb_steal(&sb);
}

/* Parse the message as a mail client would (SMIME_read_CMS). */
static CMS_ContentInfo *parse_message(const struct strbuf *hdr, const struct strbuf *body)
{
	size_t len;
	char *msg = smime_message(hdr, body, &len);
	BIO *b = BIO_new_mem_buf(msg, (int)len);
	CMS_ContentInfo *cms = b ? SMIME_read_CMS(b, NULL) : NULL;
	BIO_free(b);
	free(msg);
	ERR_clear_error();
	return cms;
}

/* Decrypt with CMS_decrypt; 1 when the result is exactly want[0..wantlen). */
static int decrypts_to(CMS_ContentInfo *cms, const struct keycert *kc, const char *want,
                       size_t wantlen)
{
	BIO *out = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int r = 0;

	if (out == NULL)
		return 0;
	if (CMS_decrypt(cms, kc->key, kc->cert, NULL, out, CMS_BINARY) == 1) {
		n = BIO_get_mem_data(out, &data);
		r = n >= 0 && (size_t)n == wantlen &&
		    (wantlen == 0 || memcmp(data, want, wantlen) == 0);
	}
	BIO_free(out);
	ERR_clear_error();
	return r;
}

/*
 * Walk the DER ContentInfo down to EncryptedContentInfo: content type
 * envelopedData, then contentType id-data and contentEncryptionAlgorithm
 * aes-256-cbc with a 16-byte IV.  Returns the cipher's NID (NID_undef when
 * the structure is not as expected), *ivlen set.
 */
static int der_next(const unsigned char **p, long max, long *len, int *tag, int *cls)
{
	int r = ASN1_get_object(p, len, tag, cls, max);
	return (r & 0x80) ? -1 : r;
}

static int content_cipher_nid(const unsigned char *der, long derlen, int *ivlen)
{
	const unsigned char *p = der, *end = der + derlen, *q;
	long len;
	int tag, cls, nid;
	ASN1_OBJECT *obj;

	*ivlen = -1;
	if (der_next(&p, end - p, &len, &tag, &cls) < 0 || tag != V_ASN1_SEQUENCE)
		return NID_undef;
	q = p;
	obj = d2i_ASN1_OBJECT(NULL, &q, end - p);
	nid = obj ? OBJ_obj2nid(obj) : NID_undef;
	ASN1_OBJECT_free(obj);
	if (nid != NID_pkcs7_enveloped)
		return NID_undef;
	p = q;
	/* [0] EXPLICIT, then EnvelopedData SEQUENCE */
	if (der_next(&p, end - p, &len, &tag, &cls) < 0 || cls != V_ASN1_CONTEXT_SPECIFIC ||
	    tag != 0)
		return NID_undef;
	if (der_next(&p, end - p, &len, &tag, &cls) < 0 || tag != V_ASN1_SEQUENCE)
		return NID_undef;
	/* version INTEGER */
	if (der_next(&p, end - p, &len, &tag, &cls) < 0 || tag != V_ASN1_INTEGER)
		return NID_undef;
	p += len;
	/* [0] originatorInfo OPTIONAL, then recipientInfos SET */
	if (der_next(&p, end - p, &len, &tag, &cls) < 0)
		return NID_undef;
	if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0) {
		p += len;
		if (der_next(&p, end - p, &len, &tag, &cls) < 0)
			return NID_undef;
	}
	if (tag != V_ASN1_SET)
		return NID_undef;
	p += len;
	/* encryptedContentInfo SEQUENCE { contentType, contentEncryptionAlgorithm, ... } */
	if (der_next(&p, end - p, &len, &tag, &cls) < 0 || tag != V_ASN1_SEQUENCE)
		return NID_undef;
	q = p;
	obj = d2i_ASN1_OBJECT(NULL, &q, end - p);
	nid = obj ? OBJ_obj2nid(obj) : NID_undef;
	ASN1_OBJECT_free(obj);
	if (nid != NID_pkcs7_data)
		return NID_undef;
	p = q;
	if (der_next(&p, end - p, &len, &tag, &cls) < 0 || tag != V_ASN1_SEQUENCE)
		return NID_undef;
	q = p;
	obj = d2i_ASN1_OBJECT(NULL, &q, end - p);
	nid = obj ? OBJ_obj2nid(obj) : NID_undef;
	ASN1_OBJECT_free(obj);
	p = q;
	if (der_next(&p, end - p, &len, &tag, &cls) >= 0 && tag == V_ASN1_OCTET_STRING)
		*ivlen = (int)len;
	return nid;
}

/* Body lines: 76 base64 characters each but the last, CRLF ends. */
static int body_well_formed(const struct strbuf *b)
{
	size_t i = 0, nlines = 0;

	if (b->len == 0)
		return 0;
	while (i < b->len) {
		const char *eol = memchr(b->data + i, '\r', b->len - i);
		size_t n;
		if (eol == NULL || (size_t)(eol - b->data) + 1 >= b->len || eol[1] != '\n')
			return 0;
		n = (size_t)(eol - (b->data + i));
		for (size_t k = 0; k < n; k++) {
			char c = b->data[i + k];
			if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			      (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
				return 0;
		}
		i += n + 2;
		nlines++;
		if (n > 76 || n == 0 || (i < b->len && n != 76))
			return 0;
	}
	return nlines > 0;
}

static int have_openssl_cli(void)
{
	return system("command -v openssl >/dev/null 2>&1") == 0;
}

/* ---- threads ---- */
struct job {
	X509 *const *certs;
	size_t ncerts;
	const char *entity;
	size_t len;
	struct strbuf hdr[5], body[5];
	int rc[5];
};

static void *envelope_thread(void *arg)
{
	struct job *j = arg;
	char e[256];
	for (int i = 0; i < 5; i++) {
		sb_init(&j->hdr[i]);
		sb_init(&j->body[i]);
		j->rc[i] = smime_envelope(j->entity, j->len, j->certs, j->ncerts, &j->hdr[i],
		                          &j->body[i], e, sizeof e);
	}
	return NULL;
}

/* ---- the tests ---- */
static void test_check_cert(const struct keycert *rsa, const struct keycert *ec, time_t now)
{
	struct keycert kc;
	char *p;
	X509 *x = NULL;
	int rc;

	is_int(smime_check_cert(rsa->cert_path, now, err, sizeof err), 0,
	       "RSA-2048 certificate ok");
	is_int(smime_check_cert(ec->cert_path, now, err, sizeof err), 0, "EC P-256 certificate ok");
	rc = smime_load_cert(rsa->cert_path, now, &x, err, sizeof err);
	ok(rc == 0 && x != NULL && X509_cmp(x, rsa->cert) == 0, "smime_load_cert returns the cert");
	X509_free(x);

	kc = make_cert("expired", "rsa2048", -400 * DAY, -1 * DAY, "keyEncipherment", NULL);
	rc = smime_check_cert(kc.cert_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "expired on") && strstr(err, kc.cert_path),
	   "expired certificate: %s", err);
	ok(strstr(err, "Lapointe") == NULL && strstr(err, "videotron") == NULL,
	   "error names the file, not the certificate's subject");
	is_int(smime_check_cert(kc.cert_path, now - 30 * DAY, err, sizeof err), 0,
	       "the same certificate is valid at an earlier now (now is honoured)");
	free_cert(&kc);

	kc = make_cert("future", "rsa2048", 2 * DAY, 400 * DAY, NULL, NULL);
	rc = smime_check_cert(kc.cert_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "not yet valid"), "not-yet-valid certificate: %s", err);
	free_cert(&kc);

	p = path_in("garbage.pem");
	write_bytes(p, "hello, this is not a certificate\n", 33);
	rc = smime_check_cert(p, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "no PEM certificate"), "garbage file: %s", err);
	free(p);

	p = path_in("badpem.pem");
	write_bytes(
	    p, "-----BEGIN CERTIFICATE-----\nMIIBkz!!notbase64\n-----END CERTIFICATE-----\n", 72);
	rc = smime_check_cert(p, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "unparseable certificate"), "garbage PEM block: %s",
	   err);
	free(p);

	p = path_in("nul.pem");
	write_bytes(p, "\0\0\0-----BEGIN CERTIFICATE-----\n\0\n", 34);
	rc = smime_check_cert(p, now, err, sizeof err);
	ok(rc == SMIME_PERM, "NUL bytes refused: %s", err);
	free(p);

	p = path_in("empty.pem");
	write_bytes(p, "", 0);
	rc = smime_check_cert(p, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "no PEM certificate"), "empty file: %s", err);
	free(p);

	rc = smime_check_cert(rsa->key_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "no PEM certificate"), "a private key file: %s", err);

	p = path_in("missing.pem");
	rc = smime_check_cert(p, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "cannot open") && strstr(err, "No such file"),
	   "missing file: %s", err);
	free(p);

	rc = smime_check_cert(tmpdir, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "not a regular file"), "a directory: %s", err);

	rc = smime_check_cert("", now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "no certificate file"), "empty path: %s", err);

	{
		size_t big = SMIME_MAX_CERT_FILE + 10;
		char *junk = xmalloc(big);
		memset(junk, 'A', big);
		p = path_in("big.pem");
		write_bytes(p, junk, big);
		rc = smime_check_cert(p, now, err, sizeof err);
		ok(rc == SMIME_PERM && strstr(err, "larger than"), "oversized file: %s", err);
		free(p);
		free(junk);
	}

	kc = make_cert("rsa1024", "rsa1024", -DAY, 400 * DAY, NULL, NULL);
	rc = smime_check_cert(kc.cert_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "1024 bits"), "RSA-1024 refused: %s", err);
	free_cert(&kc);

	kc = make_cert("signonly", "rsa2048", -DAY, 400 * DAY, "digitalSignature", NULL);
	rc = smime_check_cert(kc.cert_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "keyEncipherment"),
	   "RSA key usage without keyEncipherment: %s", err);
	free_cert(&kc);

	kc = make_cert("ecsign", "ec", -DAY, 400 * DAY, "digitalSignature", NULL);
	rc = smime_check_cert(kc.cert_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "keyAgreement"), "EC key usage without keyAgreement: %s",
	   err);
	free_cert(&kc);

	kc = make_cert("server", "rsa2048", -DAY, 400 * DAY, "keyEncipherment", "serverAuth");
	rc = smime_check_cert(kc.cert_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "emailProtection"), "EKU serverAuth only: %s", err);
	free_cert(&kc);

	kc = make_cert("ed", "ed25519", -DAY, 400 * DAY, NULL, NULL);
	rc = smime_check_cert(kc.cert_path, now, err, sizeof err);
	ok(rc == SMIME_PERM && strstr(err, "ED25519"), "Ed25519 key refused: %s", err);
	{
		const char *e = "Content-Type: text/plain\r\n\r\nx\r\n";
		struct strbuf h, b;
		X509 *one[1] = {kc.cert};
		sb_init(&h);
		sb_init(&b);
		rc = smime_envelope(e, strlen(e), one, 1, &h, &b, err, sizeof err);
		ok(rc == SMIME_PERM && b.len == 0 && strstr(err, "RSA or EC"),
		   "smime_envelope refuses an Ed25519 certificate: %s", err);
		sb_free(&h);
		sb_free(&b);
	}
	free_cert(&kc);

	/* Out of file descriptors: transient. */
	{
		struct rlimit old, low;
		int fds[64], nfd = 0;
		getrlimit(RLIMIT_NOFILE, &old);
		low = old;
		low.rlim_cur = 64;
		if (setrlimit(RLIMIT_NOFILE, &low) == 0) {
			int fd;
			while (nfd < 64 && (fd = dup(0)) >= 0)
				fds[nfd++] = fd;
			rc = smime_check_cert(rsa->cert_path, now, err, sizeof err);
			while (nfd > 0)
				close(fds[--nfd]);
			setrlimit(RLIMIT_NOFILE, &old);
			ok(rc == SMIME_TEMP && strstr(err, "Too many open files"),
			   "out of file descriptors is transient: %s", err);
		} else {
			ok(1, "# SKIP setrlimit not permitted");
		}
	}
}

static void test_envelope(const struct keycert *rsa, const struct keycert *ec,
                          const struct keycert *estab, const struct keycert *other, time_t now)
{
	struct smime_recipients r;
	struct strbuf hdr, body;
	size_t elen;
	char *entity = make_entity(3000, &elen);
	CMS_ContentInfo *cms;
	unsigned char *der = NULL;
	int derlen, ivlen, rc;
	X509 *just_rsa[1] = {rsa->cert};
	X509 *just_ec[1] = {ec->cert};

	sb_init(&hdr);
	sb_init(&body);

	/* RSA patient + establishment, through smime_recipients. */
	smime_recipients_init(&r);
	rc = smime_recipients_add(&r, rsa->cert_path, now, err, sizeof err);
	is_int(rc, 0, "recipients: patient certificate added");
	rc = smime_recipients_add(&r, estab->cert_path, now, err, sizeof err);
	is_int(rc, 0, "recipients: establishment certificate added");
	rc = smime_recipients_add(&r, "/nonexistent/cert.pem", now, err, sizeof err);
	ok(rc == SMIME_PERM && r.ncerts == 2, "recipients: a failed add leaves the list unchanged");

	rc = smime_envelope(entity, elen, r.certs, r.ncerts, &hdr, &body, err, sizeof err);
	is_int(rc, 0, "envelope a multipart entity to patient + establishment");
	is_str(hdr.data,
	       "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; "
	       "name=\"smime.p7m\"\r\n"
	       "Content-Transfer-Encoding: base64\r\n"
	       "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n",
	       "replacement headers");
	ok(body_well_formed(&body), "body: base64 lines of 76 characters, CRLF");
	ok(!contains(body.data, body.len, "Lapointe") &&
	       !contains(body.data, body.len, "metformine") &&
	       !contains(body.data, body.len, "0012345") &&
	       !contains(body.data, body.len, "LAPM") && !contains(hdr.data, hdr.len, "Lapointe") &&
	       !contains(hdr.data, hdr.len, "resultats"),
	   "no plaintext word of the original in the output");

	cms = parse_message(&hdr, &body);
	ok(cms != NULL, "the message parses as S/MIME (SMIME_read_CMS)");
	if (cms) {
		STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
		ok(OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_enveloped, "type enveloped-data");
		is_int(ris ? sk_CMS_RecipientInfo_num(ris) : -1, 2, "two RecipientInfos");
		ok(ris && CMS_RecipientInfo_type(sk_CMS_RecipientInfo_value(ris, 0)) ==
		              CMS_RECIPINFO_TRANS,
		   "RSA recipient: key transport (ktri)");
		derlen = i2d_CMS_ContentInfo(cms, &der);
		is_int(content_cipher_nid(der, derlen, &ivlen), NID_aes_256_cbc,
		       "content encryption algorithm is aes-256-cbc");
		is_int(ivlen, 16, "16-byte IV");
		OPENSSL_free(der);
		der = NULL;
		ok(decrypts_to(cms, rsa, entity, elen), "patient key decrypts byte for byte");
		ok(decrypts_to(cms, estab, entity, elen),
		   "establishment key decrypts byte for byte (archives copy)");
		ok(!decrypts_to(cms, other, entity, elen), "an unrelated key cannot decrypt");
		CMS_ContentInfo_free(cms);
	}

	/* The openssl command line, as a patient's tooling would. */
	if (have_openssl_cli()) {
		size_t mlen, outlen;
		char *msg = smime_message(&hdr, &body, &mlen);
		char *msgp = path_in("msg.eml"), *outp = path_in("out.bin"), *cmd;
		char *out;
		struct strbuf sbc;

		write_bytes(msgp, msg, mlen);
		sb_init(&sbc);
		sb_printf(&sbc,
		          "openssl cms -decrypt -in %s -inkey %s -recip %s -binary -out %s "
		          "2>/dev/null",
		          msgp, rsa->key_path, rsa->cert_path, outp);
		cmd = sb_steal(&sbc);
		rc = system(cmd);
		free(cmd);
		out = read_all(outp, &outlen);
		ok(rc == 0 && out && outlen == elen && memcmp(out, entity, elen) == 0,
		   "openssl cms -decrypt (patient key) gives back the entity byte for byte");
		free(out);
		unlink(outp);

		sb_printf(&sbc,
		          "openssl cms -decrypt -in %s -inkey %s -recip %s -binary -out %s "
		          "2>/dev/null",
		          msgp, estab->key_path, estab->cert_path, outp);
		cmd = sb_steal(&sbc);
		rc = system(cmd);
		free(cmd);
		out = read_all(outp, &outlen);
		ok(rc == 0 && out && outlen == elen && memcmp(out, entity, elen) == 0,
		   "openssl cms -decrypt (establishment key) gives back the entity");
		free(out);
		unlink(outp);

		sb_printf(&sbc, "openssl cms -decrypt -in %s -inkey %s -binary -out %s 2>/dev/null",
		          msgp, other->key_path, outp);
		cmd = sb_steal(&sbc);
		rc = system(cmd);
		free(cmd);
		ok(rc != 0, "openssl cms -decrypt with an unrelated key fails");
		unlink(outp);

		sb_printf(&sbc, "openssl cms -cmsout -print -in %s > %s 2>/dev/null", msgp, outp);
		cmd = sb_steal(&sbc);
		rc = system(cmd);
		free(cmd);
		out = read_all(outp, &outlen);
		ok(rc == 0 && out && contains(out, outlen, "contentEncryptionAlgorithm") &&
		       contains(out, outlen, "aes-256-cbc"),
		   "openssl cms -cmsout -print shows aes-256-cbc");
		free(out);
		unlink(outp);
		free(msg);
		free(msgp);
		free(outp);
	} else {
		diag("openssl command not found: command-line decryption not tested");
		ok(1, "# SKIP no openssl command");
	}

	/* EC P-256 alone (ECDH key agreement). */
	rc = smime_envelope(entity, elen, just_ec, 1, &hdr, &body, err, sizeof err);
	is_int(rc, 0, "envelope to an EC P-256 certificate");
	cms = parse_message(&hdr, &body);
	if (cms) {
		STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
		ok(ris && sk_CMS_RecipientInfo_num(ris) == 1 &&
		       CMS_RecipientInfo_type(sk_CMS_RecipientInfo_value(ris, 0)) ==
		           CMS_RECIPINFO_AGREE,
		   "EC recipient: key agreement (kari)");
		ok(decrypts_to(cms, ec, entity, elen), "EC key decrypts byte for byte");
		ok(!decrypts_to(cms, rsa, entity, elen), "the RSA key (not a recipient) cannot");
		CMS_ContentInfo_free(cms);
	} else {
		ok(0, "EC message parses");
	}
	if (have_openssl_cli()) {
		size_t mlen, outlen;
		char *msg = smime_message(&hdr, &body, &mlen);
		char *msgp = path_in("msg-ec.eml"), *outp = path_in("out-ec.bin"), *out;
		struct strbuf sbc;
		write_bytes(msgp, msg, mlen);
		sb_init(&sbc);
		sb_printf(&sbc,
		          "openssl cms -decrypt -in %s -inkey %s -recip %s -binary -out %s "
		          "2>/dev/null",
		          msgp, ec->key_path, ec->cert_path, outp);
		rc = system(sbc.data);
		sb_free(&sbc);
		out = read_all(outp, &outlen);
		ok(rc == 0 && out && outlen == elen && memcmp(out, entity, elen) == 0,
		   "openssl cms -decrypt (EC key) gives back the entity");
		free(out);
		unlink(outp);
		free(msg);
		free(msgp);
		free(outp);
	}

	/* Mixed RSA + EC recipients. */
	{
		X509 *both[2] = {rsa->cert, ec->cert};
		rc = smime_envelope(entity, elen, both, 2, &hdr, &body, err, sizeof err);
		cms = rc == 0 ? parse_message(&hdr, &body) : NULL;
		ok(cms && decrypts_to(cms, rsa, entity, elen) && decrypts_to(cms, ec, entity, elen),
		   "RSA + EC recipients both decrypt");
		CMS_ContentInfo_free(cms);
	}

	/* Two envelopings of the same entity differ (fresh content key and IV). */
	{
		struct strbuf b2;
		sb_init(&b2);
		smime_envelope(entity, elen, just_rsa, 1, &hdr, &body, err, sizeof err);
		smime_envelope(entity, elen, just_rsa, 1, &hdr, &b2, err, sizeof err);
		ok(body.len > 0 &&
		       (body.len != b2.len || memcmp(body.data, b2.data, body.len) != 0),
		   "two envelopings of one entity differ");
		sb_free(&b2);
	}

	/* Argument errors. */
	rc = smime_envelope(entity, elen, just_rsa, 0, &hdr, &body, err, sizeof err);
	ok(rc == SMIME_PERM && body.len == 0 && hdr.len == 0 && strstr(err, "no recipient"),
	   "no certificate: refused, outputs empty: %s", err);
	{
		X509 *nul[1] = {NULL};
		rc = smime_envelope(entity, elen, nul, 1, &hdr, &body, err, sizeof err);
		ok(rc == SMIME_PERM && strstr(err, "missing"), "NULL certificate refused: %s", err);
	}
	rc = smime_envelope(NULL, 0, just_rsa, 1, &hdr, &body, err, sizeof err);
	ok(rc == SMIME_PERM, "NULL entity refused: %s", err);
	rc = smime_envelope("", 0, just_rsa, 1, &hdr, &body, err, sizeof err);
	cms = rc == 0 ? parse_message(&hdr, &body) : NULL;
	ok(cms && decrypts_to(cms, rsa, "", 0), "an empty entity round-trips");
	CMS_ContentInfo_free(cms);
	{
		const char bin[] =
		    "Content-Type: application/octet-stream\r\n\r\n\0\x01\xff\n\r\n\0";
		rc = smime_envelope(bin, sizeof bin, just_rsa, 1, &hdr, &body, err, sizeof err);
		cms = rc == 0 ? parse_message(&hdr, &body) : NULL;
		ok(cms && decrypts_to(cms, rsa, bin, sizeof bin),
		   "NUL bytes, bare LF and 8-bit bytes round-trip unchanged (binary)");
		CMS_ContentInfo_free(cms);
	}

	smime_recipients_free(&r);
	ok(r.ncerts == 0 && r.certs == NULL, "smime_recipients_free empties");
	sb_free(&hdr);
	sb_free(&body);
	free(entity);
}

static void test_large_and_timing(const struct keycert *rsa, const struct keycert *estab)
{
	struct strbuf hdr, body;
	X509 *certs[2] = {rsa->cert, estab->cert};
	size_t elen;
	char *entity = make_entity(2 * 1024 * 1024 * 3 / 4, &elen); /* ~2 MB once base64 */
	CMS_ContentInfo *cms;
	double t0, t1;
	int rc;

	sb_init(&hdr);
	sb_init(&body);
	t0 = now_ms();
	rc = smime_envelope(entity, elen, certs, 2, &hdr, &body, err, sizeof err);
	t1 = now_ms();
	is_int(rc, 0, "2 MB entity enveloped");
	diag("2 MB entity (%zu bytes) enveloped in %.1f ms, output %zu bytes", elen, t1 - t0,
	     body.len);
	ok(body_well_formed(&body), "2 MB: body well formed");
	cms = parse_message(&hdr, &body);
	ok(cms && decrypts_to(cms, rsa, entity, elen), "2 MB: decrypts byte for byte");
	CMS_ContentInfo_free(cms);
	free(entity);

	/* Timings, patient + establishment (two RSA-2048 recipients). */
	if (!getenv("CLINIMAIL_NO_BENCH")) {
		static const size_t sizes[2] = {5 * 1024, 1024 * 1024};
		for (int s = 0; s < 2; s++) {
			size_t attach = sizes[s] * 3 / 4 > 800 ? sizes[s] * 3 / 4 - 800 : 0;
			int reps = s == 0 ? 200 : 20, fails = 0;
			double best = 1e9, total = 0;
			entity = make_entity(attach, &elen);
			for (int i = 0; i < reps; i++) {
				t0 = now_ms();
				if (smime_envelope(entity, elen, certs, 2, &hdr, &body, err,
				                   sizeof err) != 0)
					fails++;
				t1 = now_ms();
				total += t1 - t0;
				if (t1 - t0 < best)
					best = t1 - t0;
			}
			is_int(fails, 0, "timing loop without failure");
			diag("envelope %zu-byte entity to 2 RSA-2048 recipients: %.3f ms mean, "
			     "%.3f ms best (%d runs)",
			     elen, total / reps, best, reps);
			free(entity);
		}
		{
			double best = 1e9, total = 0;
			int fails = 0;
			for (int i = 0; i < 100; i++) {
				X509 *x = NULL;
				t0 = now_ms();
				if (smime_load_cert(rsa->cert_path, time(NULL), &x, err,
				                    sizeof err) != 0)
					fails++;
				t1 = now_ms();
				X509_free(x);
				total += t1 - t0;
				if (t1 - t0 < best)
					best = t1 - t0;
			}
			is_int(fails, 0, "load timing loop without failure");
			diag("smime_load_cert (RSA-2048, with trial encryption): %.3f ms mean, "
			     "%.3f ms best",
			     total / 100, best);
		}
	}
	sb_free(&hdr);
	sb_free(&body);
}

static void test_threads(const struct keycert *rsa, const struct keycert *ec)
{
	X509 *certs[2] = {rsa->cert, ec->cert};
	struct job jobs[4];
	pthread_t th[4];
	size_t elen;
	char *entity = make_entity(20000, &elen);
	int good = 0, total = 0;

	for (int t = 0; t < 4; t++) {
		jobs[t].certs = certs;
		jobs[t].ncerts = 2;
		jobs[t].entity = entity;
		jobs[t].len = elen;
		if (pthread_create(&th[t], NULL, envelope_thread, &jobs[t]) != 0) {
			printf("Bail out! pthread_create\n");
			exit(2);
		}
	}
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < 4; t++)
		for (int i = 0; i < 5; i++) {
			CMS_ContentInfo *cms = NULL;
			total++;
			if (jobs[t].rc[i] == 0)
				cms = parse_message(&jobs[t].hdr[i], &jobs[t].body[i]);
			if (cms && decrypts_to(cms, rsa, entity, elen) &&
			    decrypts_to(cms, ec, entity, elen))
				good++;
			CMS_ContentInfo_free(cms);
			sb_free(&jobs[t].hdr[i]);
			sb_free(&jobs[t].body[i]);
		}
	is_int(good, total, "4 threads x 5 envelopings sharing the certificates all decrypt");
	free(entity);
}

/*
 * Fail the n-th OpenSSL allocation of smime_envelope for every n until one
 * run succeeds: each failure must be a tempfail (-2) with empty outputs.
 * RSA recipients only: with an EC recipient, OpenSSL 3.0's EVP_KDF_CTX_new()
 * dereferences NULL when its own allocation fails (the KDF's freectx is
 * called on a NULL context), a crash inside libcrypto we cannot guard.
 */
static void test_alloc_failures(const struct keycert *rsa, const struct keycert *estab,
                                int hooks_ok)
{
	struct strbuf hdr, body;
	X509 *certs[2] = {rsa->cert, estab->cert};
	const char *e = "Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour\r\n";
	long n;
	int rc, temp = 0, perm = 0, nonempty = 0;

	if (!hooks_ok) {
		ok(1, "# SKIP allocation hooks not installed");
		return;
	}
	sb_init(&hdr);
	sb_init(&body);
	for (n = 0; n < 20000; n++) {
		alloc_failed = 0;
		alloc_countdown = n;
		rc = smime_envelope(e, strlen(e), certs, 2, &hdr, &body, err, sizeof err);
		alloc_countdown = -1;
		if (alloc_failed == 0) { /* n beyond the last allocation: done */
			is_int(rc, 0, "after the last allocation point, enveloping succeeds");
			break;
		}
		if (rc == SMIME_TEMP)
			temp++;
		else if (rc == SMIME_PERM) {
			perm++;
			diag("allocation %ld failing gave a permanent error: %s", n, err);
		} else if (rc == 0) {
			/* OpenSSL tolerated this one; the result must still be right. */
			CMS_ContentInfo *cms = parse_message(&hdr, &body);
			if (!(cms && decrypts_to(cms, rsa, e, strlen(e)))) {
				nonempty++;
				diag("allocation %ld failing: a success that does not decrypt", n);
			}
			CMS_ContentInfo_free(cms);
		}
		if (rc != 0 && (hdr.len != 0 || body.len != 0))
			nonempty++;
	}
	diag("%ld allocation points in one enveloping: %d tempfail, %d permanent", n, temp, perm);
	ok(n > 10 && temp > 0, "allocation failures injected (%ld points)", n);
	is_int(perm, 0, "every allocation failure is a tempfail (-2)");
	is_int(nonempty, 0, "no failure leaves output behind; tolerated failures still decrypt");
	ERR_clear_error();
	sb_free(&hdr);
	sb_free(&body);

	/* The same for loading a certificate (parse, checks, trial encryption). */
	temp = perm = nonempty = 0;
	for (n = 0; n < 20000; n++) {
		X509 *x = NULL;
		alloc_failed = 0;
		alloc_countdown = n;
		rc = smime_load_cert(rsa->cert_path, time(NULL), &x, err, sizeof err);
		alloc_countdown = -1;
		if (alloc_failed == 0) {
			ok(rc == 0 && x != NULL, "load: after the last allocation point, it loads");
			X509_free(x);
			break;
		}
		if (rc == SMIME_TEMP)
			temp++;
		else if (rc == SMIME_PERM) {
			/* OpenSSL 3.0 often reports nothing (X509_get0_pubkey() just
			 * returns NULL): such failures read as permanent.  Safe (no
			 * certificate), only the class of the failure is lost. */
			if (perm++ < 3)
				diag("load: allocation %ld failing gave a permanent error: %s", n,
				     err);
		} else if (x == NULL || X509_cmp(x, rsa->cert) != 0)
			nonempty++;
		if (rc != 0 && x != NULL)
			nonempty++;
		X509_free(x);
	}
	diag("%ld allocation points in one load: %d tempfail, %d permanent", n, temp, perm);
	ok(n > 10 && temp > 0, "load: allocation failures injected (%ld points)", n);
	is_int(nonempty, 0, "load: a failure returns no certificate, a success the right one");
	ERR_clear_error();
}

static void rm_tmpdir(void)
{
	char cmd[256];
	if (getenv("KEEP")) {
		diag("kept %s", tmpdir);
		return;
	}
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		diag("could not remove %s", tmpdir);
}

int main(void)
{
	struct keycert rsa, ec, estab, other;
	time_t now = time(NULL);
	/* Must come before OpenSSL's first allocation. */
	int hooks_ok = CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free);

	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 2;
	}
	srand((unsigned)now);
	rsa = make_cert("patient-rsa", "rsa2048", -DAY, 365 * DAY,
	                "digitalSignature, keyEncipherment", "emailProtection");
	ec = make_cert("patient-ec", "ec", -DAY, 365 * DAY, "digitalSignature, keyAgreement", NULL);
	estab = make_cert("establishment", "rsa2048", -DAY, 365 * DAY, NULL, NULL);
	other = make_cert("other", "rsa2048", -DAY, 365 * DAY, NULL, NULL);

	test_check_cert(&rsa, &ec, now);
	test_envelope(&rsa, &ec, &estab, &other, now);
	test_threads(&rsa, &ec);
	test_alloc_failures(&rsa, &estab, hooks_ok);
	test_large_and_timing(&rsa, &estab);

	free_cert(&rsa);
	free_cert(&ec);
	free_cert(&estab);
	free_cert(&other);
	rm_tmpdir();
	return done_testing();
}
