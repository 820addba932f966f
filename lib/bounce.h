/*
 * bounce.h — the texts every rejection is made of, read from
 * policies/bounces.txt so that an establishment can reword them: for each
 * rule, what happened and the fix, in French and in English, with
 * placeholders ({recipients}, {missing}, {fax_address}, {establishment} …)
 * filled by the policy.  Immutable once loaded.
 *
 * File format: "key = text" lines; keys are "<rule>.fr", "<rule>.en",
 * "<rule>.fix.fr", "<rule>.fix.en" and a few general ones ("header.fr",
 * "header.en", "footer.fr", "footer.en"); '#' comments; a line starting with
 * white space continues the previous text.
 */
#ifndef CLINIMAIL_BOUNCE_H
#define CLINIMAIL_BOUNCE_H

#include <stddef.h>

struct bounce_texts;

struct bounce_texts *bounce_texts_load(const char *path, char *err, size_t errlen);
void bounce_texts_free(struct bounce_texts *b);

/* The text for key, or NULL. */
const char *bounce_text(const struct bounce_texts *b, const char *key);

/*
 * Expand {name} placeholders from parallel arrays names/values; unknown
 * placeholders are left empty.  Returns a new string.
 */
char *bounce_expand(const char *tmpl, const char *const *names, const char *const *values,
                    size_t n);

#endif
