/*
 * test_config.c — clinimail.conf: defaults, value syntax, relative paths,
 * every error naming file:line (fixtures in tests/fixtures/config), the
 * dump/reload round trip, the shipped policy, and the reference counting
 * of config_install()/config_current() (meant to run under ASan too).
 */
#include "autoconfig.h"
#include "config.h"
#include "directory.h"
#include "rules.h"
#include "sender_auth.h"
#include "util.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char err[2048];
static const char *src;

static char *cat(const char *a, const char *b)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, a);
	sb_puts(&sb, b);
	return sb_steal(&sb);
}

static char *write_file(const char *rel, const char *data)
{
	char *p = cat(tmpdir, rel);
	FILE *fp = fopen(p, "w");
	if (fp == NULL || fputs(data, fp) < 0 || fclose(fp) != 0) {
		perror(p);
		exit(2);
	}
	return p;
}

/* The required keys, absolute, to the shipped policy files. */
static char *required_keys(void)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb,
	          "InternalDomains %s/policies/directories/internal-domains.txt\n"
	          "WebmailDomains %s/policies/directories/webmail-domains.txt\n"
	          "LexiconDirectory %s/policies/lexicons\n"
	          "BounceTexts %s/policies/bounces.txt\n",
	          src, src, src, src);
	return sb_steal(&sb);
}

static struct cm_config *load_text(const char *name, const char *extra)
{
	char *req = required_keys(), *text = cat(req, extra), *path = write_file(name, text);
	struct cm_config *c = config_load(path, err, sizeof(err));
	free(req);
	free(text);
	free(path);
	return c;
}

static void test_defaults(void)
{
	struct cm_config *c = load_text("/defaults.conf", "");
	int all_default = 1;

	if (!ok(c != NULL, "required keys only: loads")) {
		diag("%s", err);
		return;
	}
	is_str(c->socket, "local:/run/clinimail/clinimail.sock", "default Socket");
	ok(c->pid_file == NULL && c->user == NULL, "no PidFile, no UserID by default");
	ok(c->background == 1 && c->syslog == 1 && c->add_headers == 1,
	   "Background, Syslog, AddHeaders default yes");
	is_str(c->syslog_facility, "mail", "default SyslogFacility");
	is_int(c->verbose, 0, "default LogLevel");
	is_str(c->establishment, "Établissement", "default EstablishmentName");
	ok(c->fax_domain == NULL, "no FaxDomain by default");
	is_int((long)c->max_message_size, 50L * 1024 * 1024, "default MaximumMessageSize 50M");
	is_int((long)c->max_mime_parts, 1000, "default MaximumMimeParts");
	is_int(c->clinical_threshold, 4, "default ClinicalThreshold");
	is_str(c->spf_resolver, "dns", "default SPFResolver");
	ok(c->ntrusted_relays == 0 && c->trusted_relays == NULL, "no trusted relays by default");
	ok(c->pharmacies_file == NULL && c->patients_file == NULL, "optional files unset");
	for (int r = 0; r < RULE_COUNT; r++)
		all_default &= c->actions[r] == rule_default_action((enum rule_id)r);
	ok(all_default, "every Rule-<id> defaults to rule_default_action()");
	is_int(c->actions[RULE_ARCHIVES_COPY], ACT_ADD, "archives-copy defaults to add");
	ok(c->dirs && c->lex && c->det && c->sauth && c->bounces, "modules built");
	is_int(c->refs, 1, "a new configuration has one reference");
	config_unref(c);
}

static void test_values(void)
{
	struct cm_config *c =
	    load_text("/values.conf", "socket inet:8891@127.0.0.1   # trailing comment\n"
	                              "BACKGROUND no\n"
	                              "Syslog false\n"
	                              "AddHeaders 0\n"
	                              "SyslogFacility LOCAL3\n"
	                              "LogLevel 3\n"
	                              "EstablishmentName CIUSSS de l'Estrie#CHUS\n"
	                              "FaxDomain Fax.Hopital.Example\n"
	                              "UserID clinimail:clinimail\n"
	                              "TrustedRelays 10.0.0.0/8, 192.0.2.1 2001:db8::/32,::1\n"
	                              "MaximumMessageSize 10k\n"
	                              "MaximumMimeParts 2K\n"
	                              "ClinicalThreshold 7\n"
	                              "RULE-WEBMAIL Hold\n"
	                              "Rule-archives-copy warn\n"
	                              "Rule-subject off\n");

	if (!ok(c != NULL, "every value syntax loads")) {
		diag("%s", err);
		return;
	}
	is_str(c->socket, "inet:8891@127.0.0.1", "case-insensitive key, comment stripped");
	ok(c->background == 0 && c->syslog == 0 && c->add_headers == 0, "bool no/false/0");
	is_str(c->syslog_facility, "local3", "facility lower-cased");
	is_int(c->verbose, 3, "LogLevel 3");
	is_str(c->establishment, "CIUSSS de l'Estrie#CHUS", "'#' inside a word is not a comment");
	is_str(c->fax_domain, "fax.hopital.example", "FaxDomain lower-cased");
	is_str(c->user, "clinimail:clinimail", "UserID user:group");
	ok(c->ntrusted_relays == 4 && strcmp(c->trusted_relays[1], "192.0.2.1") == 0 &&
	       strcmp(c->trusted_relays[3], "::1") == 0,
	   "list separated by commas and spaces");
	is_int((long)c->max_message_size, 10240, "size with k suffix");
	is_int((long)c->max_mime_parts, 2048, "size with K suffix");
	is_int(c->clinical_threshold, 7, "ClinicalThreshold");
	is_int(c->actions[RULE_WEBMAIL], ACT_HOLD, "Rule key and action case-insensitive");
	is_int(c->actions[RULE_ARCHIVES_COPY], ACT_WARN, "Rule-archives-copy warn");
	is_int(c->actions[RULE_SUBJECT], ACT_OFF, "Rule-subject off");
	is_int(c->actions[RULE_PATIENT_CONSENT], ACT_REJECT, "unset rule keeps its default");
	ok(sender_auth_is_trusted(c->sauth, "10.9.8.7"), "TrustedRelays reach sender_auth");
	config_unref(c);
}

static void test_relative_paths(void)
{
	char *sub = cat(tmpdir, "/etc"), *dirs = cat(tmpdir, "/etc/dirs");
	char *conf_path, *text, *cwd_rel;
	struct strbuf sb;
	struct cm_config *c;
	char cwd[4096];

	mkdir(sub, 0700);
	mkdir(dirs, 0700);
	free(write_file("/etc/dirs/internal.txt", "hopital.example\n"));
	free(write_file("/etc/dirs/webmail.txt", "gmail.com\n"));
	free(write_file("/etc/dirs/zone.txt", "hopital.example TXT \"v=spf1 -all\"\n"));
	free(write_file("/etc/dirs/pharmacies.txt", "p1 | Pharmacie X | a@x.example | | \n"));
	sb_init(&sb);
	sb_printf(&sb,
	          "InternalDomains dirs/internal.txt\n"
	          "WebmailDomains ./dirs/webmail.txt\n"
	          "Pharmacies dirs/../dirs/pharmacies.txt\n"
	          "LexiconDirectory %s/policies/lexicons\n"
	          "BounceTexts %s/policies/bounces.txt\n"
	          "SPFResolver zone:dirs/zone.txt\n"
	          "PidFile run/clinimail.pid\n",
	          src, src);
	text = sb_steal(&sb);
	conf_path = write_file("/etc/clinimail.conf", text);
	c = config_load(conf_path, err, sizeof(err));
	if (ok(c != NULL, "relative paths: loads")) {
		char *want = cat(sub, "/dirs/internal.txt");
		is_str(c->internal_domains_file, want,
		       "relative path taken from the file's folder");
		free(want);
		ok(c->pid_file && c->pid_file[0] == '/' && strstr(c->pid_file, "/etc/run/"),
		   "PidFile made absolute (need not exist)");
		ok(c->spf_resolver && strncmp(c->spf_resolver, "zone:/", 6) == 0 &&
		       strstr(c->spf_resolver, "/etc/dirs/zone.txt"),
		   "zone: path made absolute");
		is_int((long)dir_count_pharmacies(c->dirs), 1, "pharmacies file read");
		is_str(c->path, conf_path, "path kept as given");
	} else {
		diag("%s", err);
	}
	config_unref(c);

	/* A relative configuration path: relative to the current folder. */
	if (getcwd(cwd, sizeof(cwd)) != NULL && chdir(tmpdir) == 0) {
		cwd_rel = "etc/clinimail.conf";
		c = config_load(cwd_rel, err, sizeof(err));
		ok(c != NULL && c->internal_domains_file[0] == '/' &&
		       strstr(c->internal_domains_file, "/etc/dirs/internal.txt") != NULL,
		   "relative configuration path resolved from the current folder");
		config_unref(c);
		if (chdir(cwd) != 0)
			diag("chdir back failed");
	}
	free(text);
	free(conf_path);
	free(sub);
	free(dirs);
}

struct bad_case {
	const char *file;
	int line; /* 0: no line number */
	const char *why;
};

static const struct bad_case bad_cases[] = {
    {"unknown-key.conf", 6, "unknown key \"SmtpPort\""},
    {"unknown-rule.conf", 6, "unknown key \"Rule-spam\""},
    {"duplicate-key.conf", 8, "duplicate key Socket (first given on line 6)"},
    {"bad-bool.conf", 6, "Background: expected yes, no"},
    {"bad-size.conf", 6, "MaximumMessageSize: expected a size"},
    {"size-overflow.conf", 6, "MaximumMessageSize: expected a size"},
    {"bad-action.conf", 6, "Rule-webmail: expected off, warn, add, hold or reject"},
    {"add-not-allowed.conf", 7, "action add is not allowed for rule webmail"},
    {"missing-file.conf", 6, "Pharmacies: cannot read"},
    {"missing-required.conf", 0, "missing required key BounceTexts"},
    {"bad-relay.conf", 6, "TrustedRelays: \"10.0.0.0/33\" is not an IP address or CIDR"},
    {"bad-resolver.conf", 6, "SPFResolver: cannot read"},
    {"bad-loglevel.conf", 6, "LogLevel: expected a whole number from 0 to 3"},
    {"lexicon-not-folder.conf", 4, "is not a folder"},
    {"missing-value.conf", 6, "FaxDomain: missing value"},
    {"bad-socket.conf", 6, "Socket: expected unix:/path"},
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *b = &bad_cases[i];
		char *dir = cat(src, "/tests/fixtures/config/");
		char *path = cat(dir, b->file);
		char want[1024];
		struct cm_config *c;

		err[0] = '\0';
		c = config_load(path, err, sizeof(err));
		if (b->line)
			snprintf(want, sizeof(want), "%s:%d: ", path, b->line);
		else
			snprintf(want, sizeof(want), "%s: ", path);
		ok(c == NULL && strncmp(err, want, strlen(want)) == 0 && strstr(err, b->why),
		   "%s: refused with file%s", b->file, b->line ? ":line" : "");
		if (c != NULL || strncmp(err, want, strlen(want)) != 0 || !strstr(err, b->why))
			diag("err = \"%s\"", err);
		config_unref(c);
		free(dir);
		free(path);
	}

	/* An error inside a directory file names that file and its line. */
	{
		char *path = cat(src, "/tests/fixtures/config/bad-directory.conf");
		struct cm_config *c = config_load(path, err, sizeof(err));
		ok(c == NULL &&
		       strstr(err, "tests/fixtures/config/bad-patients.txt:2: consent date"),
		   "directory error names the directory file and line");
		if (c != NULL || !strstr(err, "bad-patients.txt:2:"))
			diag("err = \"%s\"", err);
		config_unref(c);
		free(path);
	}

	err[0] = '\0';
	ok(config_load("/nonexistent/clinimail.conf", err, sizeof(err)) == NULL &&
	       strstr(err, "/nonexistent/clinimail.conf: cannot open") == err,
	   "missing configuration file");
	{
		struct cm_config *c =
		    load_text("/nul.conf", "LogLevel 1\nEstablishmentName \xff\xfe\n");
		ok(c == NULL && strstr(err, "nul.conf:6: invalid UTF-8"), "invalid UTF-8 refused");
		config_unref(c);
	}
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	struct strbuf sb;
	char buf[4096];
	size_t n;

	sb_init(&sb);
	if (fp == NULL)
		return sb_steal(&sb);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sb_append(&sb, buf, n);
	fclose(fp);
	return sb_steal(&sb);
}

static void test_dump_roundtrip(const struct cm_config *c)
{
	char *d1 = cat(tmpdir, "/dump1.conf"), *d2 = cat(tmpdir, "/dump2.conf");
	FILE *fp = fopen(d1, "w");
	struct cm_config *again;
	char *t1, *t2;

	config_dump(c, fp);
	fclose(fp);
	again = config_load(d1, err, sizeof(err));
	if (!ok(again != NULL, "config_dump output loads back")) {
		diag("%s", err);
		goto out;
	}
	fp = fopen(d2, "w");
	config_dump(again, fp);
	fclose(fp);
	t1 = slurp(d1);
	t2 = slurp(d2);
	/* Skip the first line (the file name). */
	ok(strchr(t1, '\n') && strchr(t2, '\n') && strcmp(strchr(t1, '\n'), strchr(t2, '\n')) == 0,
	   "dump → load → dump is stable");
	ok(strstr(t1, "\nRule-archives-copy add\n") &&
	       strstr(t1, "\nMaximumMessageSize 52428800\n"),
	   "dump lists rules and sizes");
	free(t1);
	free(t2);
	config_unref(again);
out:
	free(d1);
	free(d2);
}

static void test_shipped(void)
{
	char *path = cat(src, "/policies/clinimail.conf");
	struct cm_config *c = config_load(path, err, sizeof(err));

	if (!ok(c != NULL, "shipped policies/clinimail.conf loads")) {
		diag("%s", err);
		free(path);
		return;
	}
	is_str(c->fax_domain, "fax.hopital.example", "shipped FaxDomain");
	ok(strncmp(c->spf_resolver, "zone:", 5) == 0 && strstr(c->spf_resolver, "spf-zone.txt"),
	   "shipped SPFResolver is the example zone");
	ok(c->internal_domains_file[0] == '/' &&
	       strstr(c->internal_domains_file, "policies/directories/internal-domains.txt"),
	   "shipped paths resolved beside the file");
	is_int((long)dir_count_pharmacies(c->dirs), 4, "shipped pharmacies loaded");
	is_int((long)dir_count_patients(c->dirs), 6, "shipped patients loaded");
	{
		int all_default = 1;
		for (int r = 0; r < RULE_COUNT; r++)
			all_default &= c->actions[r] == rule_default_action((enum rule_id)r);
		ok(all_default, "shipped Rule-<id> lines carry the defaults");
	}
	test_dump_roundtrip(c);
	config_unref(c);
	free(path);
}

static void test_refcount(void)
{
	struct cm_config *a = load_text("/a.conf", "EstablishmentName A\n");
	struct cm_config *b = load_text("/b.conf", "EstablishmentName B\n");
	struct cm_config *cur, *cur2;

	if (!ok(a && b, "two configurations load")) {
		diag("%s", err);
		return;
	}
	ok(config_current() == NULL, "nothing installed yet");
	config_install(a); /* takes our reference */
	cur = config_current();
	ok(cur == a && a->refs == 2, "config_current returns a new reference");
	config_install(b); /* drops the installed reference to a */
	is_int(a->refs, 1, "old configuration alive while a reference is held");
	is_str(cur->establishment, "A", "in-flight message still reads the old configuration");
	cur2 = config_current();
	ok(cur2 == b, "config_current now returns the new one");
	config_unref(cur2);
	config_unref(cur); /* the last reference: a is freed here (ASan checks) */
	ok(config_ref(NULL) == NULL, "config_ref(NULL) is NULL");
	config_unref(NULL);
	config_install(NULL); /* frees b */
	ok(config_current() == NULL, "uninstalled");
}

struct reader_arg {
	int seen_null, runs;
};

static void *reader_thread(void *arg)
{
	struct reader_arg *r = arg;
	for (int i = 0; i < 20000; i++) {
		struct cm_config *c = config_current();
		if (c == NULL || c->establishment == NULL)
			r->seen_null++;
		else
			r->runs += c->establishment[0] == 'R';
		config_unref(c);
	}
	return NULL;
}

static void test_concurrent_reload(void)
{
	struct cm_config *c = load_text("/r0.conf", "EstablishmentName R0\n");
	pthread_t t[4];
	struct reader_arg ra[4];
	int bad = 0, loaded = 1;

	if (!ok(c != NULL, "concurrent reload: first configuration")) {
		diag("%s", err);
		return;
	}
	config_install(c);
	memset(ra, 0, sizeof(ra));
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, reader_thread, &ra[i]);
	for (int i = 1; i <= 3; i++) {
		char name[32], text[64];
		snprintf(name, sizeof(name), "/r%d.conf", i);
		snprintf(text, sizeof(text), "EstablishmentName R%d\n", i);
		c = load_text(name, text);
		loaded &= c != NULL;
		if (c)
			config_install(c);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		bad += ra[i].seen_null;
	}
	ok(loaded && bad == 0, "4 readers during 3 reloads always saw a whole configuration");
	config_install(NULL);
}

int main(void)
{
	char cmd[128];

	src = getenv("top_srcdir");
	if (src == NULL)
		src = ".";
	if (src[0] != '/') {
		/* Paths in the tests are compared absolute. */
		static char abs_src[4096];
		if (realpath(src, abs_src) != NULL)
			src = abs_src;
	}
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_errors();
	test_defaults();
	test_values();
	test_relative_paths();
	test_refcount();
	test_concurrent_reload();
	/* Last: needs every module (lexicons, detectors, bounces) to be complete. */
	test_shipped();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		diag("could not remove %s", tmpdir);
	return done_testing();
}
