/*
 * smime.h — S/MIME enveloping (RFC 8551 enveloped-data, OpenSSL CMS) of a
 * message's MIME entity for a patient who registered a certificate (issue 3,
 * RULES.md rule 7).  Not wired yet: the policy engine decides, the milter
 * replaces the Content-* headers and the body with what smime_envelope()
 * returns.
 *
 * Recipients.  The entity is encrypted to the patient's certificate AND to
 * the sending establishment's own certificate (EstablishmentCertificate):
 * the archives copy (rule 9) travels in the same message as the patient's,
 * so it is the same ciphertext, and the medical records service must be able
 * to open it with the establishment's key.  Delivering a separate clear copy
 * to the archives would mean a second message path to get right; one
 * ciphertext with two RecipientInfos keeps the archives copy identical to
 * what the patient received.
 *
 * Algorithms.  Content: AES-256-CBC (RFC 8551 SHOULD+, read by every current
 * mail client; AES-GCM AuthEnvelopedData is not yet read by all of them).
 * Key transport: RSA (PKCS #1 v1.5, OpenSSL's default, the form all clients
 * read) for RSA certificates, ECDH (KeyAgreeRecipientInfo) for EC ones.
 *
 * Errors: every function returns 0, SMIME_PERM (-1: the certificate or the
 * input is unusable, a clear reject) or SMIME_TEMP (-2: out of memory or
 * out of file descriptors, a tempfail), with a one-line reason in err that
 * names the file but never the certificate's subject (a patient's name) nor
 * any of the message.
 *
 * Threads: no global state; OpenSSL 3 is thread-safe and its error queue is
 * per thread.  Everything here may run in many milter threads at once.
 */
#ifndef CLINIMAIL_SMIME_H
#define CLINIMAIL_SMIME_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "util.h"

#define SMIME_OK 0
#define SMIME_PERM (-1)
#define SMIME_TEMP (-2)

/* A certificate file larger than this is refused (hostile input). */
#define SMIME_MAX_CERT_FILE (256 * 1024)
/* RSA keys shorter than this are refused. */
#define SMIME_MIN_RSA_BITS 2048

/* The replacement headers, for smfi_chgheader() (name, value). */
#define SMIME_HDR_CT "Content-Type"
#define SMIME_HDR_CT_VALUE "application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\""
#define SMIME_HDR_CTE "Content-Transfer-Encoding"
#define SMIME_HDR_CTE_VALUE "base64"
#define SMIME_HDR_CD "Content-Disposition"
#define SMIME_HDR_CD_VALUE "attachment; filename=\"smime.p7m\""

/* Certificates to encrypt to; build one per message (or re-check cached ones). */
struct smime_recipients {
	X509 **certs;
	size_t ncerts;
};

/*
 * Is the PEM file a certificate we can encrypt to at time now?  A regular
 * readable file of at most SMIME_MAX_CERT_FILE bytes holding a PEM
 * "CERTIFICATE" (the first one is used); valid at now (not expired, not yet
 * valid are each named); an RSA key of at least SMIME_MIN_RSA_BITS or an EC
 * key; a key usage, when present, allowing keyEncipherment (RSA) or
 * keyAgreement (EC); an extended key usage, when present, including
 * emailProtection or anyExtendedKeyUsage; and a trial encryption to it
 * succeeds (the proof that OpenSSL's CMS can use the key: parameters, curve).
 * About 0.1 ms (RSA-2048) to 0.3 ms (EC P-256).
 */
int smime_check_cert(const char *pem_path, time_t now, char *err, size_t errlen);

/* The same checks, and on success *out holds the certificate (X509_free it). */
int smime_load_cert(const char *pem_path, time_t now, X509 **out, char *err, size_t errlen);

void smime_recipients_init(struct smime_recipients *r);
/* smime_load_cert() and append.  On error r is unchanged. */
int smime_recipients_add(struct smime_recipients *r, const char *pem_path, time_t now, char *err,
                         size_t errlen);
void smime_recipients_free(struct smime_recipients *r);

/*
 * Envelope a MIME entity: entity[0..len) is the original message's Content-*
 * header lines, an empty line and the body, exactly as they should come out
 * of decryption (CRLF line ends; it is encrypted as binary, byte for byte).
 * On success out_body holds the base64 of the DER CMS ContentInfo
 * (enveloped-data, AES-256-CBC, one RecipientInfo per certificate), lines of
 * 76 characters ending in CRLF; out_headers holds the three replacement
 * header lines (SMIME_HDR_* above), each ending in CRLF.  Both are reset
 * first.  certs must be RSA or EC certificates (checked again here); ncerts
 * at least 1.  len at most INT_MAX.  With certificates from smime_load_cert(),
 * a failure of the encryption itself is SMIME_TEMP (resources); SMIME_PERM
 * is for bad arguments and for keys OpenSSL says it cannot encrypt to.  The
 * result is verified before it is returned, never a partial ciphertext.
 */
int smime_envelope(const char *entity, size_t len, X509 *const *certs, size_t ncerts,
                   struct strbuf *out_headers, struct strbuf *out_body, char *err, size_t errlen);

#endif
