/*
 * normalize.h — fold decoded UTF-8 text into the form every detector reads:
 * accents removed (NFD, combining marks dropped), typographic quotes, dashes
 * and non-breaking spaces mapped to ASCII, every run of white space
 * (including CR/LF from line folding) collapsed to one space, invalid UTF-8
 * repaired.  Case is preserved; matchers are case-insensitive where they need
 * to be, so that detectors can still see capitals (NAM letters, names).
 */
#ifndef CLINIMAIL_NORMALIZE_H
#define CLINIMAIL_NORMALIZE_H

#include <stddef.h>

/* Returns a newly allocated NUL-terminated string; *outlen gets its length. */
char *text_normalize(const char *utf8, size_t len, size_t *outlen);

/* Same folding, then ASCII lower case: used for lexicon terms and keys. */
char *text_fold_key(const char *utf8);

#endif
