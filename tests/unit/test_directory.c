/*
 * test_directory.c — the directory files: the shipped examples load and
 * answer every lookup kind, and each malformed line is refused with
 * path:line (without echoing patient addresses).
 */
#include "autoconfig.h"
#include "directory.h"
#include "util.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test_directory.XXXXXX";
static void expect_error_nul(void);
static char err[1024];

static char *path_in(const char *dir, const char *name)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb, "%s/%s", dir, name);
	return sb_steal(&sb);
}

/* Write len bytes (so that NUL bytes can be written) to tmpdir/name. */
static char *write_file_n(const char *name, const char *data, size_t len)
{
	char *p = path_in(tmpdir, name);
	FILE *fp = fopen(p, "w");
	if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0) {
		perror(p);
		exit(2);
	}
	return p;
}

static char *write_file(const char *name, const char *data)
{
	return write_file_n(name, data, strlen(data));
}

static const char *src;
static char *shipped(const char *name)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb, "%s/policies/directories/%s", src, name);
	return sb_steal(&sb);
}

static struct dir_paths minimal_paths(void)
{
	static char *internal, *webmail;
	struct dir_paths p;
	if (internal == NULL) {
		internal = write_file("min-internal.txt", "hopital.example\n");
		webmail = write_file("min-webmail.txt", "gmail.com\n");
	}
	memset(&p, 0, sizeof(p));
	p.internal_domains = internal;
	p.webmail_domains = webmail;
	return p;
}

/* Load with one optional file set to content; expect failure naming file:line. */
static void expect_error(const char *which, const char *content, unsigned line, const char *why,
                         const char *name)
{
	struct dir_paths p = minimal_paths();
	char *f = write_file("bad.txt", content);
	char want[600];
	struct directories *d;

	if (strcmp(which, "pharmacies") == 0)
		p.pharmacies = f;
	else if (strcmp(which, "imaging") == 0)
		p.imaging = f;
	else if (strcmp(which, "patients") == 0)
		p.patients = f;
	else if (strcmp(which, "archives") == 0)
		p.archives = f;
	else if (strcmp(which, "logins") == 0)
		p.sender_logins = f;
	else if (strcmp(which, "internal") == 0)
		p.internal_domains = f;
	else
		p.webmail_domains = f;
	err[0] = '\0';
	d = directories_load(&p, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:%u: ", f, line);
	ok(d == NULL && strncmp(err, want, strlen(want)) == 0 && strstr(err, why) != NULL,
	   "%s: refused with file:line", name);
	if (d != NULL || strstr(err, why) == NULL)
		diag("err = \"%s\" (want \"%s...%s\")", err, want, why);
	directories_free(d);
	unlink(f);
	free(f);
}

static void test_shipped(void)
{
	struct dir_paths p;
	struct directories *d;
	const struct org_entry *o;
	const struct patient_entry *pt;
	char *files[7];
	size_t n;
	char *const *arch;

	files[0] = shipped("internal-domains.txt");
	files[1] = shipped("webmail-domains.txt");
	files[2] = shipped("pharmacies.txt");
	files[3] = shipped("imaging.txt");
	files[4] = shipped("patients.txt");
	files[5] = shipped("archives.txt");
	files[6] = shipped("sender-logins.txt");
	p.internal_domains = files[0];
	p.webmail_domains = files[1];
	p.pharmacies = files[2];
	p.imaging = files[3];
	p.patients = files[4];
	p.archives = files[5];
	p.sender_logins = files[6];
	d = directories_load(&p, err, sizeof(err));
	if (!ok(d != NULL, "shipped directories load")) {
		diag("%s", err);
		return;
	}
	is_int((long)dir_count_pharmacies(d), 4, "4 pharmacies");
	is_int((long)dir_count_imaging(d), 3, "3 imaging services");
	is_int((long)dir_count_patients(d), 6, "6 patients");

	/* internal / RSSS */
	ok(dir_is_internal_domain(d, "hopital.example"), "internal: exact");
	ok(dir_is_internal_domain(d, "clsc.hopital.example"), "internal: listed subdomain");
	ok(dir_is_internal_domain(d, "HOPITAL.Example"), "internal: case-insensitive");
	ok(dir_is_internal_domain(d, "hopital.example."), "internal: trailing dot");
	ok(!dir_is_internal_domain(d, "autre.hopital.example"), "internal: unlisted subdomain no");
	ok(!dir_is_internal_domain(d, "evilhopital.example"), "internal: suffix without dot no");
	ok(!dir_is_internal_domain(d, "hopital.example.evil.com"), "internal: prefix no");
	ok(dir_is_internal_domain(d, "ssss.gouv.qc.ca"), "RSSS: ssss.gouv.qc.ca");
	ok(dir_is_internal_domain(d, "ciusss.ssss.gouv.qc.ca"), "RSSS: *.ssss.gouv.qc.ca");
	ok(dir_is_internal_domain(d, "a.b.rtss.qc.ca"), "RSSS: deep *.rtss.qc.ca");
	ok(!dir_is_internal_domain(d, "gouv.qc.ca"), "*.gouv.qc.ca does not match gouv.qc.ca");
	ok(!dir_is_internal_domain(d, "qc.ca"), "qc.ca no");
	ok(!dir_is_internal_domain(d, ""), "empty domain no");
	ok(!dir_is_internal_domain(d, NULL), "NULL domain no");

	/* webmail */
	ok(dir_is_webmail_domain(d, "gmail.com"), "webmail: gmail.com");
	ok(dir_is_webmail_domain(d, "videotron.ca"), "webmail: ISP videotron.ca");
	ok(dir_is_webmail_domain(d, "yahoo.ca"), "webmail: yahoo.* matches yahoo.ca");
	ok(dir_is_webmail_domain(d, "yahoo.co.uk"), "webmail: yahoo.* matches yahoo.co.uk");
	ok(!dir_is_webmail_domain(d, "yahoo"), "webmail: yahoo.* needs a TLD");
	ok(!dir_is_webmail_domain(d, "notyahoo.com"), "webmail: notyahoo.com no");
	ok(!dir_is_webmail_domain(d, "mail.gmail.com"), "webmail: exact entries are exact");
	ok(!dir_is_webmail_domain(d, "hopital.example"), "webmail: hopital.example no");

	/* pharmacies */
	o = dir_pharmacy_by_email(d, "commandes@auxbonsoins.example");
	ok(o && strcmp(o->id, "ph-0001") == 0, "pharmacy by e-mail");
	ok(o && o->phone && strcmp(o->phone, "9993335555") == 0, "pharmacy phone as 10 digits");
	ok(o && o->nfaxes == 1 && strcmp(o->faxes[0], "9993335554") == 0, "pharmacy fax digits");
	ok(dir_pharmacy_by_email(d, "Commandes@AuxBonSoins.example") == o,
	   "pharmacy by e-mail: case-insensitive");
	o = dir_pharmacy_by_fax(d, "9993335554");
	ok(o && strcmp(o->name, "Pharmacie Auxbonsoins") == 0, "pharmacy by fax");
	o = dir_pharmacy_by_fax(d, "8195550202");
	ok(o && o->nemails == 0 && strcmp(o->id, "ph-0003") == 0, "fax-only pharmacy");
	ok(dir_pharmacy_by_fax(d, "8195550402") == NULL, "imaging fax is not a pharmacy");
	ok(dir_pharmacy_by_email(d, "rendezvous@radio-estrie.example") == NULL,
	   "imaging address is not a pharmacy");
	o = dir_pharmacy_by_name(d, "PHARMACIE  AUXBONSOINS");
	ok(o && strcmp(o->id, "ph-0001") == 0, "pharmacy by name: case and spaces");
	o = dir_pharmacy_by_name(d, "pharmacie de l'hopital (departement de pharmacie)");
	ok(o && strcmp(o->id, "ph-0004") == 0, "pharmacy by name: accents folded");
	o = dir_pharmacy_by_name(d, "Pharmacie de l\u2019Hôpital (Département de pharmacie)");
	ok(o && strcmp(o->id, "ph-0004") == 0, "pharmacy by name: typographic apostrophe");
	ok(dir_pharmacy_by_name(d, "Pharmacie Inconnue") == NULL, "unknown pharmacy name");

	/* imaging */
	o = dir_imaging_by_email(d, "rendezvous@radio-estrie.example");
	ok(o && strcmp(o->id, "im-0001") == 0, "imaging by e-mail");
	o = dir_imaging_by_fax(d, "8195550502");
	ok(o && strcmp(o->id, "im-0002") == 0, "imaging by fax");
	ok(dir_imaging_by_email(d, "medecine.nucleaire@hopital.example") != NULL,
	   "nuclear medicine service");

	/* patients */
	pt = dir_patient(d, "marie.lapointe@videotron.ca");
	ok(pt && pt->consent_date == 20240301 && pt->scope == SCOPE_ALL &&
	       pt->third_party == TP_NONE,
	   "patient with consent, scope all");
	pt = dir_patient(d, "jean.roy@gmail.com");
	ok(pt && pt->scope == (SCOPE_GENERAL | SCOPE_LAB_ORDER), "patient scope general,lab-order");
	pt = dir_patient(d, "luc.bergeron@bell.net");
	ok(pt && pt->consent_date == 0, "withdrawn consent (none) = 0");
	pt = dir_patient(d, "paul.cote@employeur.example");
	ok(pt && pt->third_party == TP_EMPLOYER && !pt->third_party_consented,
	   "employer address without third-party consent");
	pt = dir_patient(d, "anne.morin@famille.example");
	ok(pt && pt->third_party == TP_FAMILY && pt->third_party_consented,
	   "family address with third-party consent");
	pt = dir_patient(d, "sophie.gagnon@outlook.com");
	ok(pt && pt->password_mode && strcmp(pt->password_mode, "generated") == 0,
	   "password=generated");
	ok(dir_patient(d, "MARIE.Lapointe@Videotron.CA") != NULL,
	   "patient lookup case-insensitive");
	ok(dir_patient(d, "inconnu@gmail.com") == NULL, "unknown patient");

	/* archives */
	arch = dir_archives_for(d, "hopital.example", &n);
	ok(n == 1 && arch && strcmp(arch[0], "archives@hopital.example") == 0,
	   "archives for hopital.example");
	arch = dir_archives_for(d, "ailleurs.example", &n);
	ok(n == 1 && arch && strcmp(arch[0], "archives@hopital.example") == 0,
	   "archives default \"*\"");
	ok(dir_is_archives(d, "archives@hopital.example"), "is archives");
	ok(!dir_is_archives(d, "dr.tremblay@hopital.example"), "clinician is not archives");

	/* sender logins */
	ok(dir_login_may_send_as(d, "jtremblay", "dr.tremblay@hopital.example"), "login → address");
	ok(dir_login_may_send_as(d, "JTremblay", "Dr.Tremblay@hopital.example"),
	   "login map case-insensitive");
	ok(!dir_login_may_send_as(d, "jtremblay", "inf.gagnon@hopital.example"),
	   "login may not use a colleague's address");
	ok(dir_login_may_send_as(d, "secretariat", "dr.tremblay@hopital.example") &&
	       dir_login_may_send_as(d, "secretariat", "secretariat.cardio@hopital.example"),
	   "login with two addresses");
	ok(!dir_login_may_send_as(d, "inconnu", "dr.tremblay@hopital.example"), "unknown login");
	ok(dir_login_may_send_as(d, "dr.tremblay@hopital.example", "dr.tremblay@hopital.example"),
	   "an address login may send as itself");
	ok(!dir_login_may_send_as(d, "dr.tremblay@hopital.example", "inf.gagnon@hopital.example"),
	   "an address login may not send as another");
	directories_free(d);
	for (int i = 0; i < 7; i++)
		free(files[i]);
}

static void test_phone(void)
{
	char out[11];
	ok(dir_normalize_phone("819-555-0101", out) == 0 && strcmp(out, "8195550101") == 0,
	   "phone: dashes");
	ok(dir_normalize_phone("(819) 555-0101", out) == 0 && strcmp(out, "8195550101") == 0,
	   "phone: parentheses");
	ok(dir_normalize_phone("+1 819 555 0101", out) == 0 && strcmp(out, "8195550101") == 0,
	   "phone: +1");
	ok(dir_normalize_phone("18195550101", out) == 0 && strcmp(out, "8195550101") == 0,
	   "phone: 11 digits with leading 1");
	ok(dir_normalize_phone("28195550101", out) < 0 && out[0] == '\0',
	   "phone: 11 digits not starting with 1 refused");
	ok(dir_normalize_phone("555-0101", out) < 0, "phone: 7 digits refused");
	ok(dir_normalize_phone("819-555-0101 ext 2", out) < 0, "phone: letters refused");
	ok(dir_normalize_phone("", out) < 0, "phone: empty refused");
}

static void test_optional_and_required(void)
{
	struct dir_paths p = minimal_paths();
	struct directories *d = directories_load(&p, err, sizeof(err));
	size_t n = 99;

	ok(d != NULL, "only the required files: loads");
	ok(d && dir_count_pharmacies(d) == 0 && dir_count_patients(d) == 0 &&
	       dir_count_imaging(d) == 0,
	   "absent optional files are empty directories");
	ok(d && dir_archives_for(d, "hopital.example", &n) == NULL && n == 0,
	   "no archives file: no archives");
	ok(d && !dir_login_may_send_as(d, "jtremblay", "dr.tremblay@hopital.example"),
	   "no logins file: only address logins");
	ok(d && dir_pharmacy_by_name(d, "Pharmacie") == NULL, "no pharmacies: name lookup NULL");
	directories_free(d);

	p.webmail_domains = NULL;
	d = directories_load(&p, err, sizeof(err));
	ok(d == NULL && strstr(err, "webmail") != NULL, "missing required webmail file refused");

	p = minimal_paths();
	p.patients = "/nonexistent/patients.txt";
	d = directories_load(&p, err, sizeof(err));
	ok(d == NULL && strncmp(err, "/nonexistent/patients.txt: cannot open", 38) == 0,
	   "given but unreadable file refused");
}

static void test_formats(void)
{
	struct dir_paths p = minimal_paths();
	struct directories *d;
	const struct org_entry *o;
	const struct patient_entry *pt;
	char *ph, *lg, *pa, *in, *wm, *cert;

	ph = write_file("ph.txt",
	                "# comment\n"
	                "\n"
	                "p1 | Pharmacie Jean | a@ph.example, B@Ph.Example | 1 (819) 555-0001, "
	                "819.555.0002 |\r\n"
	                "p2 | Pharmacie Jean | c@ph.example | | 8195550009\n"
	                "p3 | Pharmacie Unique | | 8195550003 | \n");
	lg = write_file("lg.txt",
	                "Commis | @hopital.example\nadmin | x@autre.example, @clsc.example\n");
	cert = write_file("patient-cert.pem", "-----BEGIN CERTIFICATE-----\n");
	pa = write_file("pa.txt", "x@y.example | 2024-02-29 | clinical, documents | "
	                          "cert=patient-cert.pem password=registered passphrase=vault:42\n"
	                          "z@y.example | none | general\n");
	in = write_file("in.txt", "Example.ORG.\n.sub.example   # trailing comment\n");
	wm = write_file("wm.txt", "gmx.*\n*.free.example\n");
	p.pharmacies = ph;
	p.sender_logins = lg;
	p.patients = pa;
	p.internal_domains = in;
	p.webmail_domains = wm;
	d = directories_load(&p, err, sizeof(err));
	if (!ok(d != NULL, "format variants load")) {
		diag("%s", err);
		return;
	}
	o = dir_pharmacy_by_fax(d, "8195550001");
	ok(o && strcmp(o->id, "p1") == 0 && o->nfaxes == 2 && o->phone == NULL,
	   "list of faxes, 1-prefixed number, empty phone, CRLF line");
	ok(dir_pharmacy_by_email(d, "b@ph.example") == o, "second address, lower-cased");
	ok(dir_pharmacy_by_name(d, "Pharmacie Jean") == NULL, "shared name is ambiguous: NULL");
	ok(dir_pharmacy_by_name(d, "pharmacie unique") != NULL, "unique name found");
	ok(dir_login_may_send_as(d, "commis", "quiconque@hopital.example"), "@domain login entry");
	ok(!dir_login_may_send_as(d, "commis", "quiconque@clsc.hopital.example"),
	   "@domain is that domain only");
	ok(dir_login_may_send_as(d, "admin", "x@autre.example") &&
	       dir_login_may_send_as(d, "admin", "y@clsc.example"),
	   "address and @domain on one line");
	pt = dir_patient(d, "x@y.example");
	ok(pt && pt->consent_date == 20240229 && pt->scope == (SCOPE_CLINICAL | SCOPE_DOCUMENTS),
	   "leap day, scope list with spaces");
	ok(pt && pt->cert_path && strstr(pt->cert_path, tmpdir) == pt->cert_path &&
	       strcmp(pt->password_mode, "registered") == 0 &&
	       strcmp(pt->passphrase_ref, "vault:42") == 0,
	   "cert resolved beside the file, password and passphrase options");
	pt = dir_patient(d, "z@y.example");
	ok(pt && pt->consent_date == 0 && pt->scope == SCOPE_GENERAL && pt->cert_path == NULL,
	   "three fields (no options)");
	ok(dir_is_internal_domain(d, "example.org"), "upper case and trailing dot in file");
	ok(dir_is_internal_domain(d, "a.sub.example") && !dir_is_internal_domain(d, "sub.example"),
	   "\".suffix\" form, comment after entry");
	ok(dir_is_webmail_domain(d, "gmx.de") && dir_is_webmail_domain(d, "x.free.example"),
	   "webmail name.* and *.suffix");
	directories_free(d);
	unlink(ph);
	unlink(lg);
	unlink(pa);
	unlink(in);
	unlink(wm);
	unlink(cert);
	free(ph);
	free(lg);
	free(pa);
	free(in);
	free(wm);
	free(cert);
}

static void test_errors(void)
{
	expect_error("pharmacies", "p1 | A | a@b.example | 819-555-010 | \n", 1, "fax numbers",
	             "fax with 9 digits");
	expect_error("pharmacies", "# c\np1 | A | a@b.example | 28195550101 | \n", 2, "fax numbers",
	             "11-digit fax not starting with 1");
	expect_error("pharmacies", "p1 | A | a@b.example | 8195550101 | 555-0101\n", 1, "phone",
	             "bad phone");
	expect_error("pharmacies", "p1 | A | a@b.example | 8195550101\n", 1, "expected 5 fields",
	             "4 fields for a pharmacy");
	expect_error("pharmacies", "p1 | A | not-an-address | 8195550101 | \n", 1,
	             "e-mail addresses", "bad pharmacy address");
	expect_error("pharmacies", "p1 | A | a@b.example,,c@b.example | | \n", 1, "empty item",
	             "empty list item");
	expect_error("pharmacies", "p1 | A | | | \n", 1, "neither", "no address and no fax");
	expect_error("pharmacies", "p1 | A | a@b.example | | \np1 | B | c@b.example | | \n", 2,
	             "duplicate id", "duplicate id");
	expect_error("pharmacies", "p1 | A | a@b.example | | \np2 | B | A@b.example | | \n", 2,
	             "listed twice", "duplicate address");
	expect_error("imaging",
	             "i1 | A | a@b.example | 8195550101 | \ni2 | B | | 819 555 0101 | \n", 2,
	             "listed twice", "duplicate fax");
	expect_error("patients", "a@b.example | 2024-02-30 | all |\n", 1, "consent date",
	             "impossible date");
	expect_error("patients", "a@b.example | 2024/02/01 | all |\n", 1, "consent date",
	             "date format");
	expect_error("patients", "a@b.example | 2024-02-01 | all, everything |\n", 1, "scope",
	             "unknown scope");
	expect_error("patients", "a@b.example | 2024-02-01 | |\n", 1, "scope", "empty scope");
	expect_error("patients", "a@b.example | 2024-02-01 | all | colour=blue\n", 1,
	             "unknown option", "unknown option");
	expect_error("patients", "a@b.example | 2024-02-01 | all | third-party=neighbour\n", 1,
	             "third-party", "bad third-party value");
	expect_error("patients", "a@b.example | 2024-02-01 | all | third-party-consent=yes\n", 1,
	             "without third-party", "consent for no third party");
	expect_error("patients", "a@b.example | 2024-02-01 | all | password=\n", 1, "key=value",
	             "option without value");
	expect_error("patients", "a@b.example | 2024-02-01 | all | cert=missing.pem\n", 1, "cert",
	             "missing certificate file");
	expect_error("patients", "a@b.example | 2024-02-01 | all |\nA@B.example | none | all |\n",
	             2, "listed twice", "duplicate patient");
	expect_error("patients", "a@b.example | 2024-02-01\n", 1, "expected 4 fields",
	             "two fields for a patient");
	expect_error("archives", "hopital.example | \n", 1, "archives addresses", "no archives");
	expect_error("archives", "* | a@b.example\n* | c@b.example\n", 2, "twice",
	             "duplicate default");
	expect_error("archives", "bad domain | a@b.example\n", 1, "sender domain", "bad domain");
	expect_error("logins", "jdoe | @bad domain\n", 1, "neither", "bad @domain");
	expect_error("logins", "jdoe\n", 1, "expected 2 fields", "login without addresses");
	expect_error("logins", "jdoe | a@b.example\nJDOE | c@b.example\n", 2, "listed twice",
	             "duplicate login");
	expect_error("internal", "hopital.example\nfoo.*.example\n", 2, "wildcard",
	             "wildcard in the middle");
	expect_error("internal", "yahoo.*\n", 1, "wildcard", "name.* only for webmail");
	expect_error("internal", "two domains.example\n", 1, "one domain", "two words");
	expect_error("internal", "hôpital.example\n", 1, "invalid domain", "non-ASCII domain");
	expect_error("webmail", "gmail.com\n*.yahoo.*\n", 2, "wildcard", "double wildcard");
	expect_error_nul();
}

/* Hostile bytes: a NUL in a line, invalid UTF-8, an overlong line. */
static void expect_error_nul(void)
{
	struct dir_paths p = minimal_paths();
	struct directories *d;
	char *f, *big;
	size_t blen = 70000;

	static const char nul[] = "a@b.example | none | all |\nx@y\0z.example | none | all\n";

	f = write_file_n("nul.txt", nul, sizeof(nul) - 1);
	p.patients = f;
	d = directories_load(&p, err, sizeof(err));
	ok(d == NULL && strstr(err, ":2: NUL byte") != NULL, "NUL byte refused with line");
	free(f);

	f = write_file("utf8.txt", "p1 | Pharmacie \xc3\x28 | a@b.example | | \n");
	p = minimal_paths();
	p.pharmacies = f;
	d = directories_load(&p, err, sizeof(err));
	ok(d == NULL && strstr(err, ":1: invalid UTF-8") != NULL, "invalid UTF-8 refused");
	free(f);

	big = xmalloc(blen + 2);
	memset(big, 'a', blen);
	big[blen] = '\n';
	big[blen + 1] = '\0';
	f = write_file("big.txt", big);
	p = minimal_paths();
	p.webmail_domains = f;
	d = directories_load(&p, err, sizeof(err));
	ok(d == NULL && strstr(err, ":1: line longer") != NULL, "overlong line refused");
	free(f);
	free(big);

	/* Errors name the field, never echo a patient's address. */
	f = write_file("pa.txt", "secret.patient@gmail.com | 2024-13-01 | all |\n");
	p = minimal_paths();
	p.patients = f;
	d = directories_load(&p, err, sizeof(err));
	ok(d == NULL && strstr(err, "secret.patient") == NULL, "patient address not in error");
	free(f);
}

struct thread_arg {
	const struct directories *d;
	int hits;
};

static void *lookup_thread(void *arg)
{
	struct thread_arg *a = arg;
	for (int i = 0; i < 20000; i++) {
		a->hits += dir_is_internal_domain(a->d, "x.ssss.gouv.qc.ca");
		a->hits += dir_patient(a->d, "x@y.example") != NULL;
		a->hits += dir_is_webmail_domain(a->d, "gmail.com");
	}
	return NULL;
}

static void test_threads(void)
{
	struct dir_paths p = minimal_paths();
	char *in = write_file("thr-in.txt", "*.ssss.gouv.qc.ca\n");
	char *pa = write_file("thr-pa.txt", "x@y.example | none | all\n");
	struct directories *d;
	pthread_t t[4];
	struct thread_arg a[4];
	int all = 1;

	p.internal_domains = in;
	p.patients = pa;
	d = directories_load(&p, err, sizeof(err));
	ok(d != NULL, "thread test directories load");
	for (int i = 0; i < 4; i++) {
		a[i].d = d;
		a[i].hits = 0;
		pthread_create(&t[i], NULL, lookup_thread, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		all &= a[i].hits == 60000;
	}
	ok(all, "concurrent lookups from 4 threads all answer");
	directories_free(d);
	unlink(in);
	unlink(pa);
	free(in);
	free(pa);
}

int main(void)
{
	src = getenv("top_srcdir");
	if (src == NULL)
		src = ".";
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_shipped();
	test_phone();
	test_optional_and_required();
	test_formats();
	test_errors();
	test_threads();
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
	}
	return done_testing();
}
