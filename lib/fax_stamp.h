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
 * (CRLF) and what pipe(8) hands the bridge (LF) hash the same.  A body
 * made only of empty lines (or none) is the empty string.
 *
 * Header syntax (fax_stamp_verify() is strict): tags "name=value" separated
 * by ';' (one trailing ';' allowed), white space (after unfolding) allowed
 * around ';', '=' and ',' and inside the base64 values; every tag exactly
 * once, no other tag; to= sorted ascending without duplicates (as
 * fax_stamp_make() writes it); bh= and mac= standard base64 of 32 bytes.
 * The MAC input is "clinimail-fax-approval", "v=1", "ref=…", "t=…",
 * "mid=…", "to=N,N…" and "bh=" + the 32 raw bytes, each followed by a NUL.
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
 * any order, duplicates removed).  Caller frees.  NULL when a number is not
 * 10 digits, there are none or more than FAX_STAMP_MAX_NUMBERS, or ref is
 * not 1-63 characters of [A-Za-z0-9._-].
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

/* ---- helpers shared by the milter and the bridge (added with fax_stamp.c) ---- */

/* Longest header value fax_stamp_verify() reads (a stamp for 32 numbers is ~600 bytes). */
#define FAX_STAMP_MAX_VALUE 2048

/*
 * The Message-ID as both sides feed it to the MAC: the raw header value
 * (folded or not) unfolded, white space around it removed, then one pair
 * of surrounding <> removed.  0, or -1 when empty, longer than outlen - 1,
 * or holding a control character.
 */
int fax_message_id_canon(const char *raw, char *out, size_t outlen);

/*
 * The local part of NUMBER@<FaxDomain> as a North American (NANP) number:
 * digits with optional '-' or '.' separators and an optional leading '+';
 * 10 digits, or 11 starting with 1 (the 1 is dropped); the area code and
 * the exchange do not start with 0 or 1.  0 and out = 10 digits, or -1.
 */
int fax_number_nanp(const char *in, char out[11]);

/* Lower-case hex of a body hash (the ledger's key). */
void fax_body_hash_hex(const unsigned char bh[32], char hex[65]);

#endif
