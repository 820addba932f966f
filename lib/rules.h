/*
 * rules.h — the rulebook's identifiers (RULES.md) and the actions an admin
 * may give each rule.  Identifiers are stable: bounce texts, the audit log,
 * X-Clinimail-* headers and clinimail.conf all name them.
 */
#ifndef CLINIMAIL_RULES_H
#define CLINIMAIL_RULES_H

enum rule_id {
	RULE_WEBMAIL = 0,             /* 1 */
	RULE_MED_ORDER_RECIPIENT,     /* 2 */
	RULE_ORDER_SINGLE_RECIPIENT,  /* 3 */
	RULE_ORDER_FIELDS,            /* 4 */
	RULE_ORDER_ATTACHMENTS,       /* 5 */
	RULE_IMAGING_ORDER_RECIPIENT, /* 6 */
	RULE_PATIENT_CONSENT,         /* 7 */
	RULE_PATIENT_ENCRYPTION,      /* 7 */
	RULE_LAB_ORDER,               /* 8 */
	RULE_ARCHIVES_COPY,           /* 9 */
	RULE_SENSITIVE_TOPIC,         /* 10 */
	RULE_PATIENTS_VISIBLE,        /* 11 */
	RULE_SENDER_AUTHENTICITY,     /* 12 */
	RULE_SUBJECT,                 /* 13 */
	RULE_OVERSIZE,                /* not in RULES.md: content too large to inspect */
	RULE_ORDER_SIGNATURE,         /* seed 004: orders S/MIME-signed for authenticity */
	RULE_COUNT
};

enum rule_action {
	ACT_OFF = 0, /* rule not evaluated */
	ACT_WARN,    /* recorded and an X-Clinimail-Warning header added; mail goes on */
	ACT_ADD,     /* archives-copy only: add the missing recipient */
	ACT_HOLD,    /* quarantined in the MTA's hold queue for review */
	ACT_REJECT,  /* 5xx with an explanation */
	ACT_ENCRYPT, /* patient-encryption only: encrypt (S/MIME or password PDF) and deliver */
	ACT_SIGN,    /* order-signature only: S/MIME-sign with the establishment's key */
	ACT_COUNT
};

const char *rule_name(enum rule_id r);              /* "webmail", … */
int rule_from_name(const char *name);               /* -1 if unknown */
const char *rule_action_name(enum rule_action a);   /* "off", "warn", "add", "hold", "reject",
                                                       "encrypt", "sign" */
int rule_action_from_name(const char *name);        /* -1 if unknown */
enum rule_action rule_default_action(enum rule_id r);
/* Whether an action is allowed for a rule (add, encrypt and sign belong to one rule each). */
int rule_action_allowed(enum rule_id r, enum rule_action a);

#endif
