/*
 * password.h — passwords for the password-protected PDF sent to patients
 * (issue 3, RULES.md rule 7): a strong password generated per message from
 * OpenSSL's CSPRNG, never derived from patient data, and the check applied
 * to a passphrase a patient registers at consent time (long enough, and not
 * containing the patient's NAM, date of birth or file number, which anyone
 * holding the file, or the NAM's derivation rules, would guess).
 */
#ifndef CLINIMAIL_PASSWORD_H
#define CLINIMAIL_PASSWORD_H

#include <stddef.h>

/*
 * The alphabet of generated passwords: letters and digits that cannot be
 * confused when read aloud or copied from a phone (no 0/O/o, 1/l/I, 5/S,
 * 2/Z, 8/B, u/v), 48 symbols: 16 characters carry ~89 bits.
 */
#define PASSWORD_ALPHABET "abcdefghijkmnpqrstwxyzACDEFGHJKLMNPQRTUVWXY34679"
#define PASSWORD_GEN_LEN 16     /* length used for per-message passwords */
#define PASSPHRASE_MIN_CHARS 12 /* shortest registered passphrase accepted */

/*
 * Write a random password of len characters from PASSWORD_ALPHABET (uniform:
 * rejection sampling over RAND_bytes) and a NUL into out[outsize].
 * Returns 0, or -1 when outsize <= len, len == 0 or the CSPRNG fails.
 */
int password_generate(char *out, size_t outsize, size_t len);

enum patient_ident_kind {
	IDENT_NAM = 0, /* RAMQ health insurance number, e.g. "LAPM 8503 1215" */
	IDENT_DOB,     /* date of birth, as found: 1985-03-12, 12/03/1985, 19850312 … */
	IDENT_FILE_NO, /* file (dossier) number */
};

struct patient_ident {
	enum patient_ident_kind kind;
	const char *value;
};

/*
 * Accept or refuse a passphrase a patient registers: refused when it has
 * fewer than PASSPHRASE_MIN_CHARS characters (code points), is not valid
 * UTF-8, or contains (ignoring case, spaces and punctuation) one of the
 * identifiers: the NAM or its digits, the date of birth in any usual order
 * (YYYYMMDD, DDMMYYYY, MMDDYYYY, YYMMDD, DDMMYY, MMDDYY), the file number.
 * Returns 0 when acceptable, -1 with a reason in err (the reason names the
 * kind of identifier, never its value).
 */
int password_check_passphrase(const char *pass, const struct patient_ident *ids, size_t nids,
                              char *err, size_t errlen);

#endif
