/*
 * directory.h — the directories the policy classifies recipients with, read
 * from admin-friendly text files (formats at the top of each file in
 * policies/directories/ and in clinimail.conf(5)): internal/RSSS domains,
 * public webmail domains, pharmacies and imaging services (e-mail addresses
 * and fax numbers), the patient registry with consent, the archives address
 * per sender domain, and the login → sender addresses map.  Immutable once
 * loaded; lookups are hash lookups, safe from many threads.
 */
#ifndef CLINIMAIL_DIRECTORY_H
#define CLINIMAIL_DIRECTORY_H

#include <stddef.h>
#include <time.h>

/* A pharmacy or an imaging service. */
struct org_entry {
	char *id;
	char *name;
	char **emails; /* lower case */
	size_t nemails;
	char **faxes; /* 10 digits */
	size_t nfaxes;
	char *phone; /* digits, may be NULL */
};

enum consent_scope {
	SCOPE_GENERAL = 1 << 0,   /* non-clinical mail (appointments, closures) */
	SCOPE_CLINICAL = 1 << 1,  /* clinical information, results, follow-up */
	SCOPE_LAB_ORDER = 1 << 2, /* medical-biology orders */
	SCOPE_DOCUMENTS = 1 << 3, /* insurance forms, medical notes, referrals */
	SCOPE_ALL = 0xf,
};

enum third_party {
	TP_NONE = 0, /* the patient's own address */
	TP_EMPLOYER,
	TP_SCHOOL,
	TP_FAMILY,
	TP_OTHER,
};

struct patient_entry {
	char *address;    /* lower case */
	int consent_date; /* YYYYMMDD, 0 = no consent recorded (or withdrawn) */
	unsigned scope;   /* enum consent_scope */
	enum third_party third_party;
	int third_party_consented; /* the patient consented to this third-party address */
	char *cert_path;           /* S/MIME certificate (PEM), may be NULL (option cert=PATH,
	                              relative to the patients file's folder, readable at load) */
	char *password_mode;  /* "registered" | "generated" | NULL (issue 3, option password=) */
	char *passphrase_ref; /* where the registered passphrase lives, may be NULL
	                         (issue 3, option passphrase=REF, not interpreted here) */
};

struct directories;

struct dir_paths {
	const char *internal_domains; /* required */
	const char *webmail_domains;  /* required */
	const char *pharmacies;       /* may be NULL */
	const char *imaging;          /* may be NULL */
	const char *patients;         /* may be NULL */
	const char *archives;         /* may be NULL */
	const char *sender_logins;    /* may be NULL */
};

/* Load all directories.  On error NULL, with "file:line: reason" in err. */
struct directories *directories_load(const struct dir_paths *p, char *err, size_t errlen);
void directories_free(struct directories *d);

/* domain is lower case; matches exact names and "*.suffix" / ".suffix" entries. */
int dir_is_internal_domain(const struct directories *d, const char *domain);
/* Also matches "yahoo.*" style entries (any TLD). */
int dir_is_webmail_domain(const struct directories *d, const char *domain);

const struct org_entry *dir_pharmacy_by_email(const struct directories *d, const char *addr);
const struct org_entry *dir_pharmacy_by_fax(const struct directories *d, const char *digits10);
const struct org_entry *dir_imaging_by_email(const struct directories *d, const char *addr);
const struct org_entry *dir_imaging_by_fax(const struct directories *d, const char *digits10);
/*
 * Case-insensitive, accent-insensitive name lookup ("Pharmacie Auxbonsoins"),
 * keyed by text_fold_key(name).  NULL when unknown, and also when several
 * pharmacies of the directory share that name (ambiguous).
 */
const struct org_entry *dir_pharmacy_by_name(const struct directories *d, const char *name);

const struct patient_entry *dir_patient(const struct directories *d, const char *addr);

/* Archives addresses for a sender domain (falls back to the "*" entry); n set. */
char *const *dir_archives_for(const struct directories *d, const char *sender_domain, size_t *n);
/* Is addr one of the archives addresses of any establishment? */
int dir_is_archives(const struct directories *d, const char *addr);

/*
 * Sender login map (like Postfix's smtpd_sender_login_maps): may login send
 * as addr?  Entries map a login to addresses and "@domain" wildcards.  With
 * no entry for login, a login that is itself an address may send as itself.
 */
int dir_login_may_send_as(const struct directories *d, const char *login, const char *addr);

/*
 * A phone or fax number written any way ("819-555-0101", "(819) 555-0101",
 * "+1 819 555 0101") as 10 digits in out: digits and " -.()+" only, 10
 * digits, or 11 with a leading 1.  Returns 0, or -1 (out = "").
 */
int dir_normalize_phone(const char *in, char out[11]);

/* Counts, for logs and tests. */
size_t dir_count_pharmacies(const struct directories *d);
size_t dir_count_imaging(const struct directories *d);
size_t dir_count_patients(const struct directories *d);

#endif
