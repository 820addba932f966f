/*
 * test_sender_auth.c — rule 12: SMTP AUTH login map, trusted relays, SPF
 * (pass, fail, softfail, none, include:, mx, IPv6, temperror, permerror)
 * and From alignment, all against zone files written here: no test touches
 * the network.
 */
#include "autoconfig.h"
#include "directory.h"
#include "sender_auth.h"
#include "util.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test_sender_auth.XXXXXX";
static char err[1024];

static char *write_file(const char *name, const char *data)
{
	struct strbuf sb;
	FILE *fp;
	char *p;

	sb_init(&sb);
	sb_printf(&sb, "%s/%s", tmpdir, name);
	p = sb_steal(&sb);
	fp = fopen(p, "w");
	if (fp == NULL || fputs(data, fp) < 0 || fclose(fp) != 0) {
		perror(p);
		exit(2);
	}
	return p;
}

static const char zone_text[] =
    "# test zone\n"
    "hopital.example  TXT  \"v=spf1 ip4:192.0.2.10 ip6:2001:db8:10::/48 -all\"\n"
    "clsc.hopital.example  TXT  \"v=spf1 include:hopital.example -all\"\n"
    "soft.hopital.example  TXT  \"v=spf1 ip4:192.0.2.99 ~all\"\n"
    "neutral.hopital.example TXT \"v=spf1 ?all\"\n"
    "split.hopital.example TXT \"v=spf1 ip4:192.0.2.20\" \" -all\"\n"
    "mx.hopital.example TXT \"v=spf1 mx -all\"\n"
    "mx.hopital.example MX 10 mail.hopital.example\n"
    "mail.hopital.example A 192.0.2.30\n"
    "perm.hopital.example TXT \"v=spf1 ip4:192.0.2.10 frobnicate -all\"\n"
    "tmp.hopital.example TEMPFAIL\n"
    "external.example TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n"
    "tmp.external.example TEMPFAIL\n"
    "; a zone-style comment\n";

static struct directories *dirs;
static struct sender_auth *sa;

struct check_case {
	const char *name;
	const char *ip, *helo, *login, *mail_from, *from;
	enum auth_verdict want;
	enum spf_outcome want_spf;
	int want_trusted;
};

static void run_case(const struct check_case *c)
{
	struct auth_request rq = {c->ip, c->helo, c->login, c->mail_from, c->from};
	struct auth_result res;
	int rc = sender_auth_check(sa, dirs, &rq, &res);
	int good = rc == 0 && res.verdict == c->want && res.spf == c->want_spf &&
	           res.trusted_relay == c->want_trusted;

	ok(good, "%s", c->name);
	if (!good)
		diag("got %s/spf %s/trusted %d, want %s/spf %s/trusted %d",
		     auth_verdict_name(res.verdict), spf_outcome_name(res.spf), res.trusted_relay,
		     auth_verdict_name(c->want), spf_outcome_name(c->want_spf), c->want_trusted);
}

static const struct check_case cases[] = {
    {"SPF pass, From = envelope", "192.0.2.10", "mta.hopital.example", NULL,
     "dr.tremblay@hopital.example", "dr.tremblay@hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"SPF fail", "203.0.113.5", "evil.example", NULL, "dr.tremblay@hopital.example",
     "dr.tremblay@hopital.example", AUTH_SPF_FAILED, SPF_OUT_FAIL, 0},
    {"SPF softfail", "203.0.113.5", NULL, NULL, "x@soft.hopital.example", "x@soft.hopital.example",
     AUTH_SPF_FAILED, SPF_OUT_SOFTFAIL, 0},
    {"SPF neutral", "203.0.113.5", NULL, NULL, "x@neutral.hopital.example",
     "x@neutral.hopital.example", AUTH_SPF_FAILED, SPF_OUT_NEUTRAL, 0},
    {"no SPF record", "192.0.2.10", NULL, NULL, "x@norecord.hopital.example",
     "x@norecord.hopital.example", AUTH_SPF_FAILED, SPF_OUT_NONE, 0},
    {"include: passes", "192.0.2.10", NULL, NULL, "inf.gagnon@clsc.hopital.example",
     "inf.gagnon@clsc.hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"include: fails for another client", "192.0.2.11", NULL, NULL, "a@clsc.hopital.example",
     "a@clsc.hopital.example", AUTH_SPF_FAILED, SPF_OUT_FAIL, 0},
    {"record of two strings", "192.0.2.20", NULL, NULL, "a@split.hopital.example",
     "a@split.hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"mx mechanism", "192.0.2.30", NULL, NULL, "a@mx.hopital.example", "a@mx.hopital.example",
     AUTH_OK, SPF_OUT_PASS, 0},
    {"IPv6 client passes", "2001:db8:10::25", NULL, NULL, "a@hopital.example", "a@hopital.example",
     AUTH_OK, SPF_OUT_PASS, 0},
    {"IPv6 client, Sendmail notation", "IPv6:2001:db8:10::25", NULL, NULL, "a@hopital.example",
     "a@hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"IPv6 client outside the record", "2001:db8:99::1", NULL, NULL, "a@hopital.example",
     "a@hopital.example", AUTH_SPF_FAILED, SPF_OUT_FAIL, 0},
    {"IPv4-mapped IPv6 client", "::ffff:192.0.2.10", NULL, NULL, "a@hopital.example",
     "a@hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"permerror", "192.0.2.10", NULL, NULL, "a@perm.hopital.example", "a@perm.hopital.example",
     AUTH_SPF_FAILED, SPF_OUT_PERMERROR, 0},
    {"temperror", "192.0.2.10", NULL, NULL, "a@tmp.hopital.example", "a@tmp.hopital.example",
     AUTH_TEMPERROR, SPF_OUT_TEMPERROR, 0},
    {"aligned: envelope in a subdomain", "192.0.2.10", NULL, NULL, "bounce@clsc.hopital.example",
     "dr.tremblay@hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"aligned: From in a subdomain", "192.0.2.10", NULL, NULL, "bounce@hopital.example",
     "a@clsc.hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"unaligned envelope domain (its SPF would pass): not aligned, no lookup", "198.51.100.7", NULL,
     NULL, "bounce@external.example", "dr.tremblay@hopital.example", AUTH_NOT_ALIGNED, SPF_OUT_NONE,
     0},
    {"unaligned look-alike suffix", "198.51.100.7", NULL, NULL, "bounce@external.example",
     "x@evilexternal.example.hopital.example", AUTH_NOT_ALIGNED, SPF_OUT_NONE, 0},
    {"unaligned domain whose DNS fails: not aligned, no temperror", "198.51.100.7", NULL, NULL,
     "bounce@tmp.external.example", "dr.tremblay@hopital.example", AUTH_NOT_ALIGNED, SPF_OUT_NONE,
     0},
    {"look-alike: hopital.example.evil is not aligned", "192.0.2.10", NULL, NULL,
     "x@hopital.example.evil", "a@hopital.example", AUTH_NOT_ALIGNED, SPF_OUT_NONE, 0},
    {"null sender: unaligned HELO name", "192.0.2.10", "mx.external.example", NULL, "",
     "postmaster@hopital.example", AUTH_NOT_ALIGNED, SPF_OUT_NONE, 0},
    {"null sender: HELO name checked", "192.0.2.10", "hopital.example", NULL, "",
     "postmaster@hopital.example", AUTH_OK, SPF_OUT_PASS, 0},
    {"null sender: HELO name fails", "203.0.113.5", "hopital.example", NULL, "",
     "postmaster@hopital.example", AUTH_SPF_FAILED, SPF_OUT_FAIL, 0},
    {"null sender, no HELO", "192.0.2.10", NULL, NULL, "", "postmaster@hopital.example",
     AUTH_SPF_FAILED, SPF_OUT_NONE, 0},
    {"null sender, address-literal HELO", "192.0.2.10", "[192.0.2.10]", NULL, "",
     "postmaster@hopital.example", AUTH_SPF_FAILED, SPF_OUT_NONE, 0},
    {"trusted relay, IPv4 CIDR", "10.20.30.40", NULL, NULL, "x@elsewhere.example",
     "dr.tremblay@hopital.example", AUTH_OK, SPF_OUT_NONE, 1},
    {"trusted relay, single IPv4", "192.0.2.200", NULL, NULL, "", "a@hopital.example", AUTH_OK,
     SPF_OUT_NONE, 1},
    {"trusted relay, IPv6 CIDR", "2001:db8:ff:1::2", NULL, NULL, "", "a@hopital.example", AUTH_OK,
     SPF_OUT_NONE, 1},
    {"trusted relay, IPv4-mapped client", "::ffff:10.0.0.1", NULL, NULL, "", "a@hopital.example",
     AUTH_OK, SPF_OUT_NONE, 1},
    {"just outside the relay CIDR", "11.0.0.1", NULL, NULL, "a@hopital.example",
     "a@hopital.example", AUTH_SPF_FAILED, SPF_OUT_FAIL, 0},
    {"AUTH login may send as From", "203.0.113.5", NULL, "jtremblay", "x@elsewhere.example",
     "dr.tremblay@hopital.example", AUTH_OK, SPF_OUT_NONE, 0},
    {"AUTH login mismatch", "192.0.2.10", NULL, "jtremblay", "dr.tremblay@hopital.example",
     "inf.gagnon@hopital.example", AUTH_MISMATCH, SPF_OUT_NONE, 0},
    {"AUTH login mismatch even from a trusted relay", "10.0.0.5", NULL, "mgagnon", "",
     "dr.tremblay@hopital.example", AUTH_MISMATCH, SPF_OUT_NONE, 1},
    {"AUTH login mismatch for an outside From", "203.0.113.5", NULL, "jtremblay", "",
     "someone@gmail.com", AUTH_MISMATCH, SPF_OUT_NONE, 0},
    {"AUTH \"@domain\" entry", "203.0.113.5", NULL, "commis", "", "anyone@hopital.example", AUTH_OK,
     SPF_OUT_NONE, 0},
    {"AUTH \"@domain\" entry, other domain", "203.0.113.5", NULL, "commis", "",
     "anyone@clsc.hopital.example", AUTH_MISMATCH, SPF_OUT_NONE, 0},
    {"AUTH login that is the address", "203.0.113.5", NULL, "Dr.Tremblay@hopital.example", "",
     "dr.tremblay@hopital.example", AUTH_OK, SPF_OUT_NONE, 0},
    {"From outside establishment domains", "203.0.113.5", NULL, NULL, "x@gmail.com", "x@gmail.com",
     AUTH_NOT_APPLICABLE, SPF_OUT_NONE, 0},
    {"RSSS-looking From is still checked", "203.0.113.5", NULL, NULL, "x@ciusss.hopital.example",
     "x@ciusss.hopital.example", AUTH_SPF_FAILED, SPF_OUT_NONE, 0},
    {"local submission (no client address)", NULL, NULL, NULL, "dr.tremblay@hopital.example",
     "dr.tremblay@hopital.example", AUTH_OK, SPF_OUT_NONE, 0},
    {"unparsable client address", "not-an-ip", NULL, NULL, "a@hopital.example", "a@hopital.example",
     AUTH_SPF_FAILED, SPF_OUT_NONE, 0},
    {"no From", "192.0.2.10", NULL, NULL, "a@hopital.example", NULL, AUTH_NO_FROM, SPF_OUT_NONE, 0},
    {"From without domain", "192.0.2.10", NULL, NULL, "a@hopital.example", "a@", AUTH_NO_FROM,
     SPF_OUT_NONE, 0},
};

static void test_names(void)
{
	is_str(spf_outcome_name(SPF_OUT_SOFTFAIL), "softfail", "spf_outcome_name");
	is_str(auth_verdict_name(AUTH_NOT_ALIGNED), "not-aligned", "auth_verdict_name");
	is_str(auth_verdict_name((enum auth_verdict)99), "?", "auth_verdict_name out of range");
}

static void test_relays(void)
{
	static const char *const good[] = {"10.0.0.0/8", "192.0.2.1", "2001:db8::/32",
	                                   "::1",        "0.0.0.0/0", "::ffff:10.0.0.0/104"};
	static const char *const bad[] = {"10.0.0.0/33", "2001:db8::/129", "banana",
	                                  "10.0.0.1/",   "10.0.0.1/8x",    "",
	                                  "[::1]",       "10.0.0.256"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(sender_auth_valid_relay(good[i]), "valid relay %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!sender_auth_valid_relay(bad[i]), "invalid relay \"%s\"", bad[i]);
	ok(sender_auth_is_trusted(sa, "10.255.255.255"), "is_trusted: CIDR end");
	ok(!sender_auth_is_trusted(sa, "9.255.255.255"), "is_trusted: before CIDR");
	ok(sender_auth_is_trusted(sa, "[192.0.2.200]"), "is_trusted: bracketed address");
	ok(!sender_auth_is_trusted(sa, "192.0.2.201"), "is_trusted: /32 exact");
	ok(!sender_auth_is_trusted(sa, NULL), "is_trusted: NULL");
}

static void test_new_errors(void)
{
	char *zone_bad_a = write_file("bad-a.zone", "# c\nx.example A 999.1.1.1\n");
	char *zone_bad_q = write_file("bad-q.zone", "x.example TXT \"v=spf1 -all\n");
	char *zone_bad_t = write_file("bad-t.zone", "\n\nx.example CNAME y.example\n");
	char *zone_bad_n = write_file("bad-n.zone", "bad..name TXT \"v=spf1 -all\"\n");
	char *zres;
	char *bad_relay[] = {"10.0.0.0/8", "10.0.0.0/40"};
	struct sender_auth *s;
	struct strbuf sb;

	s = sender_auth_new("zone:/nonexistent/zone.txt", NULL, 0, err, sizeof(err));
	ok(s == NULL && strstr(err, "/nonexistent/zone.txt: cannot open") != NULL,
	   "missing zone file refused");
	sb_init(&sb);
	sb_printf(&sb, "zone:%s", zone_bad_a);
	zres = sb_steal(&sb);
	s = sender_auth_new(zres, NULL, 0, err, sizeof(err));
	ok(s == NULL && strstr(err, ":2: invalid IPv4") != NULL, "bad A record: file:line");
	free(zres);
	sb_printf(&sb, "zone:%s", zone_bad_q);
	zres = sb_steal(&sb);
	s = sender_auth_new(zres, NULL, 0, err, sizeof(err));
	ok(s == NULL && strstr(err, ":1: TXT data") != NULL, "unterminated quote: file:line");
	free(zres);
	sb_printf(&sb, "zone:%s", zone_bad_t);
	zres = sb_steal(&sb);
	s = sender_auth_new(zres, NULL, 0, err, sizeof(err));
	ok(s == NULL && strstr(err, ":3: record type") != NULL, "unknown record type: file:line");
	free(zres);
	sb_printf(&sb, "zone:%s", zone_bad_n);
	zres = sb_steal(&sb);
	s = sender_auth_new(zres, NULL, 0, err, sizeof(err));
	ok(s == NULL && strstr(err, ":1: invalid name") != NULL, "bad name: file:line");
	free(zres);
	s = sender_auth_new("ldap:x", NULL, 0, err, sizeof(err));
	ok(s == NULL && strstr(err, "dns") != NULL, "unknown resolver refused");
	s = sender_auth_new("zone:", NULL, 0, err, sizeof(err));
	ok(s == NULL, "empty zone path refused");
	s = sender_auth_new("dns", bad_relay, 2, err, sizeof(err));
	ok(s == NULL && strstr(err, "10.0.0.0/40") != NULL, "bad trusted relay refused");
	/* The system resolver: built and freed, never queried (no network in tests). */
	s = sender_auth_new("dns", bad_relay, 1, err, sizeof(err));
	ok(s != NULL, "\"dns\" resolver builds");
	sender_auth_free(s);
	free(zone_bad_a);
	free(zone_bad_q);
	free(zone_bad_t);
	free(zone_bad_n);
}

static void *thread_checks(void *arg)
{
	int *failures = arg;
	for (int i = 0; i < 300; i++) {
		const struct check_case *c = &cases[(size_t)i % (sizeof(cases) / sizeof(cases[0]))];
		struct auth_request rq = {c->ip, c->helo, c->login, c->mail_from, c->from};
		struct auth_result res;
		if (sender_auth_check(sa, dirs, &rq, &res) != 0 || res.verdict != c->want ||
		    res.spf != c->want_spf)
			(*failures)++;
	}
	return NULL;
}

int main(void)
{
	struct dir_paths p;
	char *zone, *internal, *webmail, *logins, *zres;
	char *relays[] = {"10.0.0.0/8", "192.0.2.200", "2001:db8:ff::/48"};
	struct strbuf sb;
	pthread_t t[4];
	int failures[4] = {0, 0, 0, 0}, all = 0;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	zone = write_file("spf-zone.txt", zone_text);
	internal = write_file("internal.txt", "hopital.example\n*.hopital.example\n");
	webmail = write_file("webmail.txt", "gmail.com\n");
	logins = write_file("logins.txt", "jtremblay | dr.tremblay@hopital.example\n"
	                                  "mgagnon | inf.gagnon@hopital.example\n"
	                                  "commis | @hopital.example\n");
	memset(&p, 0, sizeof(p));
	p.internal_domains = internal;
	p.webmail_domains = webmail;
	p.sender_logins = logins;
	dirs = directories_load(&p, err, sizeof(err));
	if (!ok(dirs != NULL, "test directories load")) {
		diag("%s", err);
		return done_testing();
	}
	sb_init(&sb);
	sb_printf(&sb, "zone:%s", zone);
	zres = sb_steal(&sb);
	sa = sender_auth_new(zres, relays, 3, err, sizeof(err));
	if (!ok(sa != NULL, "sender_auth_new with a zone file and 3 relays")) {
		diag("%s", err);
		return done_testing();
	}

	test_names();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_relays();
	test_new_errors();

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_checks, &failures[i]);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		all += failures[i];
	}
	is_int(all, 0, "1200 checks from 4 threads, all as expected");

	{
		struct auth_result res;
		ok(sender_auth_check(NULL, dirs, NULL, &res) == -1, "NULL arguments refused");
	}

	sender_auth_free(sa);
	directories_free(dirs);
	free(zres);
	free(zone);
	free(internal);
	free(webmail);
	free(logins);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
	}
	return done_testing();
}
