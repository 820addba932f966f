/*
 * fax_stamp.h — the milter's approval of a fax (issue 4).  When the policy
 * accepts a message addressed to NUMBER@<FaxDomain>, the milter adds
 *
 *   X-Clinimail-Fax-Approval: v=1; ref=CM-…; t=<unix time>; to=NUM[,NUM…];
 *       bh=<base64 SHA-256 of the canonical body>; mac=<base64 HMAC-SHA256>
 *
 * The MAC covers the version, ref, t, the Message-ID (as the milter saw it,
 * without <>), the sorted numbers and bh, under a key shared by the milter
 * (FaxApprovalKey) and the bridge (ApprovalKey).  The bridge faxes only to
 * numbers listed in a stamp whose MAC and body hash verify: nobody reaches a
 * fax line by bypassing the milter, and no sender header (X-FAX-*) is obeyed.
 *
 * Canonical body: every CR immediately before LF removed, trailing empty
 * lines removed, a final LF added when missing — what the milter receives
 * (CRLF) and what pipe(8) hands the bridge (LF) hash the same.
 */
#ifndef CLINIMAIL_FAX_STAMP_H
#define CLINIMAIL_FAX_STAMP_H

#include <stddef.h>
#include <time.h>

#define FAX_STAMP_HEADER "X-Clinimail-Fax-Approval"
#define FAX_STAMP_MAX_NUMBERS 32

struct fax_key {
	unsigned char key[256];
	size_t len;
};

/* Load a key file (>= 16 bytes; refused when group/other may read it or it is
   not a regular file).  0, or -1 with err naming the file. */
int fax_key_load(const char *path, struct fax_key *k, char *err, size_t errlen);

/* Incremental canonical body hash (feed the body in any chunks). */
struct fax_body_hash;
struct fax_body_hash *fax_body_hash_new(void);
void fax_body_hash_update(struct fax_body_hash *h, const void *buf, size_t len);
void fax_body_hash_final(struct fax_body_hash *h, unsigned char out[32]); /* frees h */

/*
 * The header value (without the name) for these numbers (10 digits each,
 * any order, duplicates removed).  Caller frees.
 */
char *fax_stamp_make(const struct fax_key *k, const char *ref, time_t t, const char *message_id,
                     const char *const *numbers, size_t nnumbers, const unsigned char bh[32]);

struct fax_stamp {
	char ref[64];
	time_t t;
	char numbers[FAX_STAMP_MAX_NUMBERS][16];
	size_t nnumbers;
};

/*
 * Verify a header value against the Message-ID and the body hash the bridge
 * computed.  0 and *out filled when valid; -1 with a reason in err otherwise
 * (malformed, bad MAC, body changed, unknown version).
 */
int fax_stamp_verify(const struct fax_key *k, const char *value, const char *message_id,
                     const unsigned char bh[32], struct fax_stamp *out, char *err, size_t errlen);

/* 1 when number (10 digits) is listed in the stamp. */
int fax_stamp_allows(const struct fax_stamp *s, const char *number);

#endif
