/*
 * content_class.h — what a message is about: from the text segments
 * (mime_text.h), the lexicon hits (lexicon.h) and the findings (detect.h),
 * decide its content classes (policy.h enum content_class) and, for orders,
 * which mandatory fields are present.  Pure computation, no I/O.
 */
#ifndef CLINIMAIL_CONTENT_CLASS_H
#define CLINIMAIL_CONTENT_CLASS_H

#include <stddef.h>

#include "detect.h"
#include "lexicon.h"
#include "util.h"

struct cm_config;
struct msg_content;

/* Mandatory elements of a medication order (rule order-fields). */
enum order_field {
	OF_RCPT_NAME = 0,
	OF_RCPT_FAX,
	OF_RCPT_PHONE,
	OF_SENDER_NAME,
	OF_SENDER_LICENCE,
	OF_SENDER_PHONE,
	OF_PATIENT_NAME,
	OF_PATIENT_DOB,
	OF_PATIENT_NAM_OR_ALT,
	OF_PATIENT_FILE_NO,
	OF_TELECONSULT, /* only when an AH-251 / AH-253 form is referenced */
	OF_COUNT
};
const char *order_field_fr(enum order_field f);
const char *order_field_en(enum order_field f);

struct content_analysis {
	unsigned classes;   /* enum content_class */
	int clinical_score; /* vocabulary + identifiers score */
	int nam_count;
	int identifiers;          /* NAM, DOB, file numbers found */
	unsigned sensitive_cats;  /* bit per lexicon category index (1..31) */
	unsigned missing_fields;  /* bit per enum order_field, for medication orders */
	int lab_contact_missing;  /* lab order without a contact for critical values */
	int has_image_attachment; /* photo / scan (rule order-attachments) */
	int has_scanned_pdf;
	char fax_hint[16];      /* a fax number written in the body (for the fix text) */
	char *exception_reason; /* "[EXCEPTION: …]" in the Subject, or NULL */
	struct strbuf *explain; /* when set by the caller: which terms and findings matched */
	/* NAM, date of birth and file numbers found (never logged): a patient's
	   registered passphrase must not contain them (password.h) */
	struct {
		int kind; /* F_NAM, F_DOB or F_FILE_NO (detect.h) */
		char value[32];
	} ids[8];
	size_t nids;
};

int content_analyse(const struct cm_config *cfg, const struct msg_content *mc,
                    const char *from_display, struct content_analysis *out);
void content_analysis_free(struct content_analysis *ca);

#endif
