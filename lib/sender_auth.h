/*
 * sender_auth.h — rule 12 (sender-authenticity): is the From header the
 * authenticated sender's own address?  Three ways to be authentic:
 *   1. SMTP AUTH: the login may send as the From address (directory.h
 *      sender login map);
 *   2. the client is a configured trusted internal relay (the
 *      establishment's Exchange), which authenticated the sender itself;
 *   3. otherwise, a From in an establishment domain needs SPF pass (libspf2)
 *      for the envelope sender's domain and a From domain aligned with it.
 * Mail whose From is not in an establishment domain and that is not
 * authenticated is "not applicable" (it does not claim to be ours).
 */
#ifndef CLINIMAIL_SENDER_AUTH_H
#define CLINIMAIL_SENDER_AUTH_H

#include <stddef.h>

struct directories;

enum spf_outcome {
	SPF_OUT_NONE = 0,
	SPF_OUT_PASS,
	SPF_OUT_FAIL,
	SPF_OUT_SOFTFAIL,
	SPF_OUT_NEUTRAL,
	SPF_OUT_TEMPERROR,
	SPF_OUT_PERMERROR,
};
const char *spf_outcome_name(enum spf_outcome o);

enum auth_verdict {
	AUTH_OK = 0,          /* authentic */
	AUTH_NOT_APPLICABLE,  /* unauthenticated mail not claiming an establishment sender */
	AUTH_MISMATCH,        /* authenticated login may not send as the From address */
	AUTH_SPF_FAILED,      /* establishment From, not authenticated, SPF not pass */
	AUTH_NOT_ALIGNED,     /* SPF passed for a domain the From is not aligned with */
	AUTH_NO_FROM,         /* no usable From address */
	AUTH_TEMPERROR,       /* SPF temporary error: the caller tempfails */
};
const char *auth_verdict_name(enum auth_verdict v);

struct sender_auth;

/*
 * resolver: "dns" (the system resolver) or "zone:/path" (an offline zone file
 * of "name TXT \"v=spf1 …\"" and "name A 1.2.3.4" lines, for tests and
 * air-gapped sites).  trusted: IPs and CIDRs (IPv4 and IPv6).
 */
struct sender_auth *sender_auth_new(const char *resolver, char *const *trusted, size_t ntrusted,
                                    char *err, size_t errlen);
void sender_auth_free(struct sender_auth *sa);

struct auth_request {
	const char *client_ip;  /* "192.0.2.1", "::1", or NULL (local submission) */
	const char *helo;       /* may be NULL */
	const char *auth_login; /* {auth_authen}, NULL when not authenticated */
	const char *mail_from;  /* envelope sender, normalized, "" for <> */
	const char *from_addr;  /* From header address, normalized, NULL if none */
};

struct auth_result {
	enum auth_verdict verdict;
	enum spf_outcome spf; /* when SPF was evaluated, else SPF_OUT_NONE */
	int trusted_relay;    /* the client was a trusted relay */
};

/* Thread-safe. */
int sender_auth_check(struct sender_auth *sa, const struct directories *dirs,
                      const struct auth_request *req, struct auth_result *res);

/* Is ip inside one of the trusted relays? */
int sender_auth_is_trusted(const struct sender_auth *sa, const char *ip);

#endif
