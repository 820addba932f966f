/*
 * detect.h — structured identifiers and order elements found in normalized
 * text (normalize.h), French and English: NAM (Quebec health insurance
 * number, structure-checked), dates of birth, file numbers, licence /
 * prescriber numbers, phone and fax numbers, posology, person names after an
 * honorific or a label, pharmacy names, postal addresses, parents' names,
 * the TÉLÉCONSULTATION mention and AH-251/AH-253 forms.
 *
 * Detectors are PCRE2 patterns compiled once (struct detectors is immutable
 * and thread-safe) plus checks in C (NAM structure, date plausibility).
 * Findings carry offsets so the policy can reason about proximity; their
 * values are never logged.
 */
#ifndef CLINIMAIL_DETECT_H
#define CLINIMAIL_DETECT_H

#include <stddef.h>

enum finding_kind {
	F_NAM = 0,      /* NAM: 4 letters + 8 digits, plausible YYMMDD (month+50 for women) */
	F_DOB,          /* a date of birth: a date after a label (DDN, né le, date of birth…) */
	F_DATE,         /* any other full date (used to cross-check a NAM) */
	F_FILE_NO,      /* file / chart number after a label (no dossier, MRN…) */
	F_LICENCE,      /* licence / prescriber number after a label (permis, #lic, licence…) */
	F_PHONE,        /* a North-American phone number not labelled as fax */
	F_FAX,          /* a phone number labelled as fax (télécopieur, téléc., fax) */
	F_POSOLOGY,     /* dose + unit / form / route / frequency / quantity / renewal */
	F_PERSON,       /* a person name after an honorific (Mme, M., Dr, Dre…) or a name label */
	F_PRESCRIBER,   /* a person name after Dr/Dre/Docteur or a prescriber label */
	F_PATIENT_NAME, /* a person name after a patient label (Nom du patient, usager, Mme/M. in an
	                   order) */
	F_PHARMACY,     /* "Pharmacie X" / "X Pharmacy" / a recipient label */
	F_ADDRESS,      /* a street address (number + rue/avenue/boul./street…) */
	F_PARENT_NAME,  /* mother's or father's name after a label (mère, père, mother…) */
	F_AGE,          /* an age ("54 ans", "54-year-old") */
	F_PROFESSION,  /* a profession next to a signature (médecin, infirmière praticienne…) */
	F_TELECONSULT, /* the mention TÉLÉCONSULTATION */
	F_FORM_AH,     /* a reference to form AH-251 or AH-253 */
	F_CONTACT_CUE, /* "où vous pouvez me rejoindre", "valeurs critiques", "reach me at"… */
	F_KIND_COUNT
};

enum finding_flags {
	FF_CONFIDENT = 1 << 0, /* NAM cross-checked with a nearby name or date of birth,
	                          or found after a NAM/RAMQ label */
	FF_LABELLED = 1 << 1,  /* found after an explicit label */
	FF_DISPENSE = 1 << 2,  /* F_POSOLOGY written as a prescription is: a quantity, a renewal,
	                          a form count ("30 co"), a duration ("x 10 jours") or the
	                          pharmacists' shorthand (po, die, bid, prn…), not only words
	                          of advice ("deux fois par jour") */
};

struct finding {
	enum finding_kind kind;
	unsigned flags;     /* enum finding_flags */
	size_t start, end;  /* byte offsets of the value in the scanned text */
	size_t label_start; /* offset of its label when FF_LABELLED, else = start */
	char value[32];     /* normalized value: digits of a phone, NAM letters+digits,
	                       YYYYMMDD of a date; empty for names.  Never logged. */
};
/*
 * Details of the values and flags (detect.c):
 * - F_NAM: 12 characters, letters upper-cased; the last two may be a
 *   placeholder as written ("COVT465303XX") only after a NAM label.
 * - F_PHONE / F_FAX: 10 digits (country code and extension dropped).  A
 *   number after a contact cue ("où vous pouvez me rejoindre :") is
 *   FF_LABELLED too.
 * - F_FILE_NO: letters and digits, upper case ("H012345"); F_LICENCE: digits
 *   and '-' ("1-23456"); F_AGE: the age in years ("54"); F_FORM_AH: "AH-251"
 *   or "AH-253".
 * - Names (F_PERSON, F_PRESCRIBER, F_PATIENT_NAME, F_PARENT_NAME): the
 *   span covers the name only, label_start its honorific or label; a name
 *   after "Dr", a patient label or a parent label is also an F_PERSON.
 * - F_PHARMACY: "Pharmacie du Lac" covers the whole name; after a recipient
 *   label ("Destinataire :") the span is the name that follows.
 */

struct findings {
	struct finding *v;
	size_t n, cap;
};
void findings_free(struct findings *f);

const char *finding_kind_name(enum finding_kind k);

struct detectors;
struct detectors *detectors_new(char *err, size_t errlen);
void detectors_free(struct detectors *d);

/*
 * Append every finding in text to out, sorted by start (overlapping findings
 * of one kind merged).  Thread-safe.  Returns 0, or -1 on internal error
 * (also for a text longer than 4 GiB, which Hyperscan cannot scan at once).
 */
int detect_scan(const struct detectors *d, const char *text, size_t len, struct findings *out);

/* NAM structure check on 12 characters (4 letters + 8 digits, no spaces). */
int nam_is_plausible(const char *nam12);

#endif
