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
	AUTH_OK = 0,         /* authentic */
	AUTH_NOT_APPLICABLE, /* unauthenticated mail not claiming an establishment sender */
	AUTH_MISMATCH,       /* authenticated login may not send as the From address */
	AUTH_SPF_FAILED,     /* establishment From, not authenticated, SPF not pass */
	AUTH_NOT_ALIGNED,    /* establishment From, not authenticated, envelope (or HELO)
	                        domain not aligned with it: SPF is not evaluated */
	AUTH_NO_FROM,        /* no usable From address */
	AUTH_TEMPERROR,      /* SPF temporary error: the caller tempfails */
};
const char *auth_verdict_name(enum auth_verdict v);

struct sender_auth;

/*
 * resolver: "dns" (the system resolver) or "zone:/path" (an offline zone file
 * of "name TXT \"v=spf1 …\"" and "name A 1.2.3.4" lines, for tests and
 * air-gapped sites).  trusted: IPs and CIDRs (IPv4 and IPv6).
 * Zone file lines: "name TYPE data", TYPE one of TXT (or SPF; one or more
 * "quoted strings", concatenated), A, AAAA, MX ("[priority] host"), PTR;
 * "name TEMPFAIL" (no data) makes every query for name fail temporarily (a
 * test aid); '#' or ';' starts a comment line.  Errors: "path:line: reason".
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

/*
 * Thread-safe.  Order of the checks: no usable From → AUTH_NO_FROM; an AUTH
 * login decides alone (AUTH_OK / AUTH_MISMATCH); no client address (local
 * submission, client_ip NULL: the host vouches for it) or a trusted relay →
 * AUTH_OK; a From outside the establishment domains (dir_is_internal_domain)
 * → AUTH_NOT_APPLICABLE; otherwise the envelope sender's domain (the HELO
 * name for a null sender; none usable → AUTH_SPF_FAILED with spf none) must
 * be aligned with the From domain (equal, or one a subdomain of the other),
 * else AUTH_NOT_ALIGNED without any SPF lookup (no DNS for domains an
 * outsider chose); then SPF: pass → AUTH_OK, temperror → AUTH_TEMPERROR,
 * anything else → AUTH_SPF_FAILED.  Returns 0, or -1 when sa or req is NULL.
 */
int sender_auth_check(struct sender_auth *sa, const struct directories *dirs,
                      const struct auth_request *req, struct auth_result *res);

/* Is ip inside one of the trusted relays? */
int sender_auth_is_trusted(const struct sender_auth *sa, const char *ip);

/* Is s a valid TrustedRelays item ("192.0.2.1", "192.0.2.0/24", "2001:db8::/32")? */
int sender_auth_valid_relay(const char *s);

#endif
