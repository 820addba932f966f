/*
 * rules.c — rule identifiers, action names and each rule's safe default
 * action (see rules.h and RULES.md).
 */
#include "rules.h"

#include <string.h>

static const char *const names[RULE_COUNT] = {
    [RULE_WEBMAIL] = "webmail",
    [RULE_MED_ORDER_RECIPIENT] = "med-order-recipient",
    [RULE_ORDER_SINGLE_RECIPIENT] = "order-single-recipient",
    [RULE_ORDER_FIELDS] = "order-fields",
    [RULE_ORDER_ATTACHMENTS] = "order-attachments",
    [RULE_IMAGING_ORDER_RECIPIENT] = "imaging-order-recipient",
    [RULE_PATIENT_CONSENT] = "patient-consent",
    [RULE_PATIENT_ENCRYPTION] = "patient-encryption",
    [RULE_LAB_ORDER] = "lab-order",
    [RULE_ARCHIVES_COPY] = "archives-copy",
    [RULE_SENSITIVE_TOPIC] = "sensitive-topic",
    [RULE_PATIENTS_VISIBLE] = "patients-visible",
    [RULE_SENDER_AUTHENTICITY] = "sender-authenticity",
    [RULE_SUBJECT] = "subject",
    [RULE_OVERSIZE] = "oversize",
    [RULE_ORDER_SIGNATURE] = "order-signature",
};

static const char *const action_names[] = {
    [ACT_OFF] = "off",       [ACT_WARN] = "warn",       [ACT_ADD] = "add",   [ACT_HOLD] = "hold",
    [ACT_REJECT] = "reject", [ACT_ENCRYPT] = "encrypt", [ACT_SIGN] = "sign",
};

const char *rule_name(enum rule_id r)
{
	return (unsigned)r < RULE_COUNT ? names[r] : "?";
}

int rule_from_name(const char *name)
{
	for (int i = 0; i < RULE_COUNT; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

const char *rule_action_name(enum rule_action a)
{
	return (unsigned)a < ACT_COUNT ? action_names[a] : "?";
}

int rule_action_from_name(const char *name)
{
	for (int i = 0; i < ACT_COUNT; i++)
		if (strcmp(action_names[i], name) == 0)
			return i;
	return -1;
}

enum rule_action rule_default_action(enum rule_id r)
{
	switch (r) {
	case RULE_ARCHIVES_COPY:
		return ACT_ADD;
	case RULE_SUBJECT:
		return ACT_WARN;
	case RULE_PATIENT_ENCRYPTION:
		return ACT_ENCRYPT;
	case RULE_ORDER_SIGNATURE:
		return ACT_OFF;
	default:
		return ACT_REJECT;
	}
}

int rule_action_allowed(enum rule_id r, enum rule_action a)
{
	if (a == ACT_ADD)
		return r == RULE_ARCHIVES_COPY;
	if (a == ACT_ENCRYPT)
		return r == RULE_PATIENT_ENCRYPTION;
	if (a == ACT_SIGN)
		return r == RULE_ORDER_SIGNATURE;
	/* signing is an addition, never a reason to refuse or hold an order */
	if (r == RULE_ORDER_SIGNATURE)
		return a == ACT_OFF;
	return 1;
}
