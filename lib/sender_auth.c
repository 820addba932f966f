/*
 * sender_auth.c — rule 12 (sender-authenticity), see sender_auth.h: SMTP AUTH
 * login against the sender login map, trusted relays (IPv4/IPv6 CIDRs), and
 * otherwise SPF (libspf2) for the envelope sender's domain plus alignment of
 * the From domain with it.
 *
 * libspf2 and threads (read in libspf2 1.2.10/1.2.11 sources and checked on
 * the Debian build's symbols): one SPF_server_t is shared by every thread and
 * each check makes its own SPF_request_t / SPF_response_t.  Evaluating a
 * request never writes to the server (its explanation and local policy are
 * compiled once, in SPF_server_new).  The DNS layers: the resolver layer
 * keeps one res_ninit() state per thread (pthread key; Debian's libspf2
 * imports __res_ninit and res_nquery, not res_query), the cache layer takes
 * its own mutex around every access and hands out copies of cached records,
 * and the zone layer is only read after sender_auth_new() filled it (lookups
 * return copies).  So no lock is needed around queries here, and DNS lookups
 * of different messages proceed in parallel.  The library's only global
 * state is its log handler pointers, which we leave alone; its error handler
 * aborts, so every argument we pass is checked first (no NULL, valid IP).
 */
#include "autoconfig.h"
#include "sender_auth.h"
#include "directory.h"
#include "util.h"

#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>

#define MAX_ZONE_LINE 8192

struct relay {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix; /* bits */
};

struct sender_auth {
	SPF_server_t *spf;
	struct relay *relays;
	size_t nrelays;
};

const char *spf_outcome_name(enum spf_outcome o)
{
	static const char *const names[] = {
	    [SPF_OUT_NONE] = "none",           [SPF_OUT_PASS] = "pass",
	    [SPF_OUT_FAIL] = "fail",           [SPF_OUT_SOFTFAIL] = "softfail",
	    [SPF_OUT_NEUTRAL] = "neutral",     [SPF_OUT_TEMPERROR] = "temperror",
	    [SPF_OUT_PERMERROR] = "permerror",
	};
	return (unsigned)o <= SPF_OUT_PERMERROR ? names[o] : "?";
}

const char *auth_verdict_name(enum auth_verdict v)
{
	static const char *const names[] = {
	    [AUTH_OK] = "ok",
	    [AUTH_NOT_APPLICABLE] = "not-applicable",
	    [AUTH_MISMATCH] = "mismatch",
	    [AUTH_SPF_FAILED] = "spf-failed",
	    [AUTH_NOT_ALIGNED] = "not-aligned",
	    [AUTH_NO_FROM] = "no-from",
	    [AUTH_TEMPERROR] = "temperror",
	};
	return (unsigned)v <= AUTH_TEMPERROR ? names[v] : "?";
}

/* ---- addresses and CIDRs ---- */

/*
 * Parse an IP address as MTAs write it ("192.0.2.1", "2001:db8::1",
 * "IPv6:2001:db8::1" from Sendmail, "[192.0.2.1]").  IPv4-mapped IPv6
 * addresses become IPv4.  Returns the family, or 0.
 */
static int parse_ip(const char *s, unsigned char out[16])
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len;

	if (s == NULL)
		return 0;
	if (strncasecmp(s, "IPv6:", 5) == 0)
		s += 5;
	if (*s == '[')
		s++;
	len = strlen(s);
	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len + 1);
	if (len > 0 && buf[len - 1] == ']')
		buf[len - 1] = '\0';
	memset(out, 0, 16);
	if (inet_pton(AF_INET, buf, out) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, buf, out) == 1) {
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(out, mapped, 12) == 0) {
			memmove(out, out + 12, 4);
			memset(out + 4, 0, 12);
			return AF_INET;
		}
		return AF_INET6;
	}
	return 0;
}

static int parse_relay(const char *s, struct relay *r)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(r, 0, sizeof(*r));
	/* Only plain notation here: no brackets, no "IPv6:" tag in a configuration. */
	if (inet_pton(AF_INET, buf, r->addr) == 1)
		r->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, r->addr) == 1)
		r->family = AF_INET6;
	else
		return -1;
	max = r->family == AF_INET ? 32 : 128;
	r->prefix = max;
	if (slash) {
		const char *p = slash + 1;
		unsigned v = 0;
		if (*p == '\0' || strlen(p) > 3)
			return -1;
		for (; *p; p++) {
			if (!isdigit((unsigned char)*p))
				return -1;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (v > max)
			return -1;
		r->prefix = v;
	}
	if (r->family == AF_INET6) {
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(r->addr, mapped, 12) == 0 && r->prefix >= 96) {
			memmove(r->addr, r->addr + 12, 4);
			memset(r->addr + 4, 0, 12);
			r->family = AF_INET;
			r->prefix -= 96;
		}
	}
	return 0;
}

int sender_auth_valid_relay(const char *s)
{
	struct relay r;
	return s != NULL && parse_relay(s, &r) == 0;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

static int is_trusted(const struct sender_auth *sa, int family, const unsigned char *addr)
{
	for (size_t i = 0; i < sa->nrelays; i++)
		if (sa->relays[i].family == family &&
		    prefix_match(sa->relays[i].addr, addr, sa->relays[i].prefix))
			return 1;
	return 0;
}

int sender_auth_is_trusted(const struct sender_auth *sa, const char *ip)
{
	unsigned char addr[16];
	int family;

	if (sa == NULL || (family = parse_ip(ip, addr)) == 0)
		return 0;
	return is_trusted(sa, family, addr);
}

/* ---- the offline zone file ---- */

static int zfail(char *err, size_t errlen, const char *path, unsigned line, const char *why)
{
	snprintf(err, errlen, "%s:%u: %s", path, line, why);
	return -1;
}

/* A DNS name in a zone file or a request: letters, digits, '-', '_', dots. */
static int dns_name_ok(const char *d)
{
	size_t label = 0, len = strlen(d);

	if (len == 0 || len > 253)
		return 0;
	for (; *d; d++) {
		unsigned char c = (unsigned char)*d;
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

/*
 * TXT data: one or more "quoted strings" (concatenated, as DNS does for a
 * record made of several strings; \" and \\ escapes), or one bare word.
 */
static int parse_txt(const char *s, struct strbuf *out)
{
	sb_reset(out);
	sb_append(out, "", 0);
	if (*s != '"') {
		if (*s == '\0' || strpbrk(s, " \t") != NULL)
			return -1;
		sb_puts(out, s);
		return 0;
	}
	while (*s) {
		if (*s != '"')
			return -1;
		for (s++; *s != '"'; s++) {
			if (*s == '\0')
				return -1;
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			sb_putc(out, *s);
		}
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
	}
	return 0;
}

static int zone_add_line(SPF_dns_server_t *zone, char *line, const char *path, unsigned lineno,
                         struct strbuf *txt, char *err, size_t errlen)
{
	char *name = line, *type, *data;
	SPF_errcode_t e;
	size_t len;

	type = name + strcspn(name, " \t");
	if (*type == '\0')
		return zfail(err, errlen, path, lineno, "expected \"name TYPE data\"");
	*type++ = '\0';
	type += strspn(type, " \t");
	data = type + strcspn(type, " \t");
	if (*data != '\0') {
		*data++ = '\0';
		data = str_trim(data);
	}
	str_lower(name);
	len = strlen(name);
	if (len > 1 && name[len - 1] == '.')
		name[len - 1] = '\0';
	if (!dns_name_ok(name[0] == '*' && name[1] == '.' ? name + 2 : name))
		return zfail(err, errlen, path, lineno, "invalid name");

	if (strcasecmp(type, "TEMPFAIL") == 0) {
		/* Test aid: every query for name fails temporarily (DNS TRY_AGAIN). */
		if (*data)
			return zfail(err, errlen, path, lineno, "TEMPFAIL takes no data");
		e = SPF_dns_zone_add_str(zone, name, ns_t_any, TRY_AGAIN, NULL);
	} else if (*data == '\0') {
		return zfail(err, errlen, path, lineno, "missing record data");
	} else if (strcasecmp(type, "TXT") == 0 || strcasecmp(type, "SPF") == 0) {
		if (parse_txt(data, txt) < 0)
			return zfail(err, errlen, path, lineno,
			             "TXT data: \"quoted string\" expected (unterminated quote?)");
		e = SPF_dns_zone_add_str(zone, name, ns_t_txt, NETDB_SUCCESS, txt->data);
	} else if (strcasecmp(type, "A") == 0 || strcasecmp(type, "AAAA") == 0) {
		unsigned char a[16];
		int v6 = strcasecmp(type, "AAAA") == 0;
		if (inet_pton(v6 ? AF_INET6 : AF_INET, data, a) != 1)
			return zfail(err, errlen, path, lineno,
			             v6 ? "invalid IPv6 address" : "invalid IPv4 address");
		e = SPF_dns_zone_add_str(zone, name, v6 ? ns_t_aaaa : ns_t_a, NETDB_SUCCESS, data);
	} else if (strcasecmp(type, "MX") == 0 || strcasecmp(type, "PTR") == 0) {
		int mx = strcasecmp(type, "MX") == 0;
		char *host = data;
		if (mx && isdigit((unsigned char)*host)) {
			host += strspn(host, "0123456789");
			host += strspn(host, " \t");
		}
		str_lower(host);
		if (!dns_name_ok(host))
			return zfail(err, errlen, path, lineno, "invalid host name");
		e = SPF_dns_zone_add_str(zone, name, mx ? ns_t_mx : ns_t_ptr, NETDB_SUCCESS, host);
	} else {
		return zfail(err, errlen, path, lineno,
		             "record type must be TXT, SPF, A, AAAA, MX, PTR or TEMPFAIL");
	}
	if (e != SPF_E_SUCCESS) {
		char why[160];
		snprintf(why, sizeof(why), "libspf2: %s", SPF_strerror(e));
		return zfail(err, errlen, path, lineno, why);
	}
	return 0;
}

static int zone_load(SPF_dns_server_t *zone, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	struct strbuf txt;
	ssize_t n;
	int rc = 0;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	sb_init(&txt);
	while ((n = getline(&buf, &cap, fp)) >= 0) {
		char *s;
		lineno++;
		if (n > MAX_ZONE_LINE) {
			rc = zfail(err, errlen, path, lineno, "line too long");
			break;
		}
		if (memchr(buf, '\0', (size_t)n) != NULL) {
			rc = zfail(err, errlen, path, lineno, "NUL byte in line");
			break;
		}
		s = str_trim(buf);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if ((rc = zone_add_line(zone, s, path, lineno, &txt, err, errlen)) < 0)
			break;
	}
	if (rc == 0 && ferror(fp))
		rc = zfail(err, errlen, path, lineno + 1, "read error");
	sb_free(&txt);
	free(buf);
	fclose(fp);
	return rc;
}

/* ---- construction ---- */

void sender_auth_free(struct sender_auth *sa)
{
	if (sa == NULL)
		return;
	if (sa->spf)
		SPF_server_free(sa->spf);
	free(sa->relays);
	free(sa);
}

struct sender_auth *sender_auth_new(const char *resolver, char *const *trusted, size_t ntrusted,
                                    char *err, size_t errlen)
{
	struct sender_auth *sa = xcalloc(1, sizeof(*sa));

	sa->relays = xcalloc(ntrusted ? ntrusted : 1, sizeof(*sa->relays));
	for (size_t i = 0; i < ntrusted; i++) {
		if (trusted[i] == NULL || parse_relay(trusted[i], &sa->relays[i]) < 0) {
			snprintf(err, errlen, "trusted relay \"%.60s\": not an IP address or CIDR",
			         trusted[i] ? trusted[i] : "");
			goto bad;
		}
	}
	sa->nrelays = ntrusted;

	if (resolver == NULL || strcmp(resolver, "dns") == 0) {
		sa->spf = SPF_server_new(SPF_DNS_CACHE, 0);
	} else if (strncmp(resolver, "zone:", 5) == 0 && resolver[5] != '\0') {
		sa->spf = SPF_server_new(SPF_DNS_ZONE, 0);
		if (sa->spf && zone_load(sa->spf->resolver, resolver + 5, err, errlen) < 0)
			goto bad;
	} else {
		snprintf(err, errlen, "SPF resolver \"%.60s\": \"dns\" or \"zone:/path\" expected",
		         resolver);
		goto bad;
	}
	if (sa->spf == NULL) {
		snprintf(err, errlen, "libspf2: cannot create an SPF server");
		goto bad;
	}
	return sa;
bad:
	sender_auth_free(sa);
	return NULL;
}

/* ---- the check ---- */

/* Equal, or one a subdomain of the other. */
static int aligned(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la == lb)
		return strcasecmp(a, b) == 0;
	if (la > lb)
		return a[la - lb - 1] == '.' && strcasecmp(a + la - lb, b) == 0;
	return b[lb - la - 1] == '.' && strcasecmp(b + lb - la, a) == 0;
}

static enum spf_outcome map_result(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:
		return SPF_OUT_PASS;
	case SPF_RESULT_FAIL:
		return SPF_OUT_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return SPF_OUT_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return SPF_OUT_NEUTRAL;
	case SPF_RESULT_NONE:
		return SPF_OUT_NONE;
	case SPF_RESULT_TEMPERROR:
		return SPF_OUT_TEMPERROR;
	case SPF_RESULT_PERMERROR:
	case SPF_RESULT_INVALID:
	default:
		return SPF_OUT_PERMERROR;
	}
}

/* SPF for env_from (an address, or "" with helo set) from the client. */
static enum spf_outcome spf_query(struct sender_auth *sa, int family, const unsigned char *addr,
                                  const char *helo, const char *env_from)
{
	SPF_request_t *rq = SPF_request_new(sa->spf);
	SPF_response_t *resp = NULL;
	enum spf_outcome out = SPF_OUT_PERMERROR;
	SPF_errcode_t e;

	if (rq == NULL)
		return SPF_OUT_TEMPERROR;
	if (family == AF_INET) {
		struct in_addr in;
		memcpy(&in, addr, 4);
		e = SPF_request_set_ipv4(rq, in);
	} else {
		struct in6_addr in6;
		memcpy(&in6, addr, 16);
		e = SPF_request_set_ipv6(rq, in6);
	}
	if (e == SPF_E_SUCCESS && helo)
		e = SPF_request_set_helo_dom(rq, helo);
	if (e == SPF_E_SUCCESS && SPF_request_set_env_from(rq, env_from) != 0)
		e = SPF_E_NO_MEMORY;
	if (e == SPF_E_SUCCESS) {
		e = SPF_request_query_mailfrom(rq, &resp);
		if (resp == NULL)
			out = SPF_OUT_TEMPERROR;
		else if (SPF_response_result(resp) == SPF_RESULT_INVALID)
			/* Debian's libspf2 1.2.10 leaves the result unset when the
			 * record lookup fails (fixed upstream in 2012, fc02a07): a
			 * DNS error is then only in the error code. */
			out = e == SPF_E_DNS_ERROR ? SPF_OUT_TEMPERROR : SPF_OUT_PERMERROR;
		else
			out = map_result(SPF_response_result(resp));
	}
	if (resp)
		SPF_response_free(resp);
	SPF_request_free(rq);
	return out;
}

int sender_auth_check(struct sender_auth *sa, const struct directories *dirs,
                      const struct auth_request *req, struct auth_result *res)
{
	unsigned char addr[16];
	const char *from_domain, *spf_domain = NULL, *env_from = NULL;
	char helo[256];
	int family = 0;

	memset(res, 0, sizeof(*res));
	res->spf = SPF_OUT_NONE;
	if (sa == NULL || req == NULL)
		return -1;

	from_domain = addr_domain(req->from_addr);
	if (from_domain == NULL || *from_domain == '\0' || from_domain == req->from_addr + 1) {
		res->verdict = AUTH_NO_FROM;
		return 0;
	}
	if (req->client_ip) {
		family = parse_ip(req->client_ip, addr);
		res->trusted_relay = family != 0 && is_trusted(sa, family, addr);
	}

	/* 1. SMTP AUTH: the login map decides, whatever the client. */
	if (req->auth_login && *req->auth_login) {
		res->verdict = dir_login_may_send_as(dirs, req->auth_login, req->from_addr)
		                   ? AUTH_OK
		                   : AUTH_MISMATCH;
		return 0;
	}
	/* 2. Local submission (the host vouches) and trusted relays. */
	if (req->client_ip == NULL || res->trusted_relay) {
		res->verdict = AUTH_OK;
		return 0;
	}
	/* 3. Unauthenticated: only mail claiming an establishment sender is checked. */
	if (!dir_is_internal_domain(dirs, from_domain)) {
		res->verdict = AUTH_NOT_APPLICABLE;
		return 0;
	}

	/* The domain SPF is about: the envelope sender's, or HELO's for <>. */
	helo[0] = '\0';
	if (req->helo && strlen(req->helo) < sizeof(helo)) {
		snprintf(helo, sizeof(helo), "%s", req->helo);
		str_lower(helo);
		if (helo[0] && helo[strlen(helo) - 1] == '.')
			helo[strlen(helo) - 1] = '\0';
		if (!dns_name_ok(helo))
			helo[0] = '\0'; /* an address literal or junk: no SPF identity */
	}
	if (req->mail_from && *req->mail_from) {
		const char *d = addr_domain(req->mail_from);
		if (d && d != req->mail_from + 1 && dns_name_ok(d)) {
			spf_domain = d;
			env_from = req->mail_from;
		}
	} else if (helo[0]) {
		spf_domain = helo;
		env_from = "";
	}
	if (spf_domain == NULL || family == 0) {
		res->spf = SPF_OUT_NONE;
		res->verdict = AUTH_SPF_FAILED;
		return 0;
	}

	/*
	 * Alignment first: SPF for a domain the From is not aligned with could
	 * not make the From authentic anyway, and skipping it means no DNS
	 * lookup, no record parsing and no temporary error for domains an
	 * outsider chose.
	 */
	if (!aligned(spf_domain, from_domain)) {
		res->verdict = AUTH_NOT_ALIGNED;
		return 0;
	}
	res->spf = spf_query(sa, family, addr, helo[0] ? helo : NULL, env_from);
	switch (res->spf) {
	case SPF_OUT_PASS:
		res->verdict = AUTH_OK;
		break;
	case SPF_OUT_TEMPERROR:
		res->verdict = AUTH_TEMPERROR;
		break;
	default:
		res->verdict = AUTH_SPF_FAILED;
		break;
	}
	return 0;
}
