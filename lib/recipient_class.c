/*
 * recipient_class.c — give every recipient exactly one class (RULES.md
 * "Recipient classes"), in the order documented in doc/policy-semantics.md:
 * archives, patient registry, pharmacy / imaging by e-mail, fax number,
 * internal / RSSS domain, public webmail, other external.
 */
#include "autoconfig.h"

#include "config.h"
#include "directory.h"
#include "policy.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const class_names[RC_COUNT] = {
	[RC_INTERNAL] = "internal", [RC_PHARMACY] = "pharmacy", [RC_IMAGING] = "imaging",
	[RC_PATIENT] = "patient",   [RC_ARCHIVES] = "archives", [RC_FAX] = "fax",
	[RC_WEBMAIL] = "webmail",   [RC_EXTERNAL] = "external",
};

const char *rcpt_class_name(enum rcpt_class c)
{
	return (unsigned)c < RC_COUNT ? class_names[c] : "?";
}

/* The 10-digit North-American number of a fax local part, or "" when it is not one. */
static void fax_digits(const char *local, size_t len, char *out, size_t outlen)
{
	char d[24];
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)local[i];
		if (isdigit(c)) {
			if (n + 1 >= sizeof(d))
				return;
			d[n++] = (char)c;
		} else if (!(c == '-' || c == '.' || c == '+' || c == '(' || c == ')')) {
			return;
		}
	}
	d[n] = '\0';
	if (n == 11 && d[0] == '1')
		memmove(d, d + 1, n--);
	if (n == 10 && outlen > 10)
		memcpy(out, d, 11);
}

enum rcpt_class recipient_class(const struct cm_config *cfg, const char *addr, int *via_fax,
                                char *fax_number, size_t fax_len, const char **org_name)
{
	const struct directories *d = cfg->dirs;
	const struct org_entry *org;
	const char *domain = addr_domain(addr);

	*via_fax = 0;
	if (fax_len)
		fax_number[0] = '\0';
	*org_name = NULL;
	if (domain == NULL)
		return RC_EXTERNAL;

	if (dir_is_archives(d, addr))
		return RC_ARCHIVES;
	if (dir_patient(d, addr) != NULL)
		return RC_PATIENT;
	if ((org = dir_pharmacy_by_email(d, addr)) != NULL) {
		*org_name = org->name;
		return RC_PHARMACY;
	}
	if ((org = dir_imaging_by_email(d, addr)) != NULL) {
		*org_name = org->name;
		return RC_IMAGING;
	}
	if (cfg->fax_domain && *cfg->fax_domain && strcmp(domain, cfg->fax_domain) == 0) {
		char num[16];
		*via_fax = 1;
		fax_digits(addr, (size_t)(domain - 1 - addr), num, sizeof(num));
		if (fax_len)
			snprintf(fax_number, fax_len, "%s", num);
		if (num[0] && (org = dir_pharmacy_by_fax(d, num)) != NULL) {
			*org_name = org->name;
			return RC_PHARMACY;
		}
		if (num[0] && (org = dir_imaging_by_fax(d, num)) != NULL) {
			*org_name = org->name;
			return RC_IMAGING;
		}
		return RC_FAX;
	}
	if (dir_is_internal_domain(d, domain))
		return RC_INTERNAL;
	if (dir_is_webmail_domain(d, domain))
		return RC_WEBMAIL;
	return RC_EXTERNAL;
}
