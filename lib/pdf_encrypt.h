/*
 * pdf_encrypt.h — password-protect a PDF held in memory with qpdf's C API
 * (issue 3, RULES.md rule 7): AES-256 (security handler R6, the PDF 2.0
 * one) by default, AES-128 (R4) as a per-policy fallback for old readers;
 * RC4 never.  The user password opens the document; so does the owner
 * password, which is either a fresh random one that nobody keeps, or the
 * establishment's own (ArchivesPdfPassword) so that the medical records
 * service can open the copy it receives.
 */
#ifndef CLINIMAIL_PDF_ENCRYPT_H
#define CLINIMAIL_PDF_ENCRYPT_H

#include <stddef.h>

enum pdf_enc_mode {
	PDF_ENC_AES256_R6 = 0, /* V=5 R=6 AESV3 */
	PDF_ENC_AES128_R4,     /* V=4 R=4 AESV2, for readers older than Acrobat 9 */
};

/*
 * Encrypt in[inlen] (a PDF) with user_password (UTF-8, non-empty; NFKC
 * normalized as SASLprep asks for R6; R4 needs a password in Latin-1's
 * range, which covers French accents).  On success returns 0 with a new
 * buffer in *out (free() it) of *outlen bytes.  On failure returns -1 with
 * qpdf's error text (or ours) in err.
 */
int pdf_encrypt(const unsigned char *in, size_t inlen, const char *user_password,
                enum pdf_enc_mode mode, unsigned char **out, size_t *outlen, char *err,
                size_t errlen);

/* The same with a given owner password (NULL: random). */
int pdf_encrypt_owner(const unsigned char *in, size_t inlen, const char *user_password,
                      const char *owner_password, enum pdf_enc_mode mode, unsigned char **out,
                      size_t *outlen, char *err, size_t errlen);

#endif
