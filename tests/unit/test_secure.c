/*
 * test_secure.c — what the policy prepares for the milter after it accepted
 * a message (lib/secure_mail.h): the fax approval stamp verifies against
 * the message as it will be delivered (and a stamp the sender wrote is
 * removed), the outer message of an encrypted mail keeps no identifying
 * header, msg_edit_apply() follows the milter's header-index rules, and the
 * configuration problems that must tempfail do.  The end-to-end checks
 * (decrypting what Postfix delivered) are tests/integration/encrypt.sh.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fax_stamp.h"
#include "mime_text.h"
#include "pdf_render.h"
#include "policy.h"
#include "secure_mail.h"
#include "tap.h"
#include "util.h"

static char tmpdir[256];

static const char ORDER[] =
    "From: Dr Jean Tremblay <dr.tremblay@hopital.example>\r\n"
    "To: 9993335554@fax.hopital.example\r\n"
    "Subject: Ordonnance\r\n"
    "Message-ID: <order-1@hopital.example>\r\n"
    "X-Clinimail-Fax-Approval: v=1; ref=FORGED; t=1; to=9993335554; bh=x; mac=y\r\n"
    "X-FAX-Dial: 5145550000\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Bonjour,\r\n\r\nVoici une ordonnance pour une de vos patientes\r\n\r\n"
    "Pharmacie Auxbonsoins\r\nT\xc3\xa9l : 999-333-5555\r\nT\xc3\xa9l\xc3\xa9"
    "copieur : 999-333-5554\r\n\r\n"
    "Ordonnance pour Mme Test Covid, D D.N. 3 janvier 1946, NAM : COVT465303XX. Num\xc3\xa9ro "
    "de\r\ndossier : 012345. Aucune allergie connue.\r\n\r\n"
    "Aspirine 80 mg 1 co po ID 30 cos Ren 24 mois\r\n\r\n"
    "Dr Test Untel , #Lic 00000, t\xc3\xa9l\xc3\xa9phone o\xc3\xb9 vous pouvez me rejoindre : "
    "123 456-7899\r\n";

static const char NOTE[] = "From: Dr Jean Tremblay <dr.tremblay@hopital.example>\r\n"
                           "To: Marie Lapointe <marie.lapointe@videotron.ca>\r\n"
                           "Subject: Suivi de Mme Marie Lapointe, dossier 0123456\r\n"
                           "Thread-Topic: Suivi de Mme Marie Lapointe\r\n"
                           "Keywords: LAPM50531218\r\n"
                           "Message-ID: <note-1@hopital.example>\r\n"
                           "MIME-Version: 1.0\r\n"
                           "Content-Type: text/plain; charset=UTF-8\r\n"
                           "\r\n"
                           "Voici le suivi de Mme Marie Lapointe, NAM LAPM50531218, dossier "
                           "0123456.\r\nDiagnostic : diabete de type 2 et insuffisance "
                           "cardiaque.\r\nVos resultats de laboratoire sont stables.\r\n";

static struct cm_config *load_with(const char *extra)
{
	char conf[512], cmd[2048], err[512];
	const char *src = getenv("top_srcdir");
	FILE *fp;

	snprintf(cmd, sizeof(cmd),
	         "rm -rf %s/p && cp -R %s/policies %s/p && cp -p %s/fax.key %s/p/", tmpdir,
	         src ? src : "..", tmpdir, tmpdir, tmpdir);
	if (system(cmd) != 0)
		return NULL;
	snprintf(conf, sizeof(conf), "%s/p/clinimail.conf", tmpdir);
	if ((fp = fopen(conf, "a")) == NULL)
		return NULL;
	fprintf(fp, "AuditStore none\n%s", extra);
	fclose(fp);
	struct cm_config *c = config_load(conf, err, sizeof(err));
	if (c == NULL)
		diag("config: %s", err);
	return c;
}

static void eval(struct cm_config *cfg, const char *msg, const char *rcpt, struct verdict *v)
{
	char *rcpts[] = {(char *)rcpt};
	struct envelope env = {.mail_from = "dr.tremblay@hopital.example",
	                       .auth_login = "jtremblay",
	                       .rcpts = rcpts,
	                       .nrcpts = 1};
	policy_eval(cfg, &env, msg, strlen(msg), strlen(msg), NULL, v);
}

/* The message as delivered: the edit, then the added headers. */
static char *delivered(const char *msg, const struct verdict *v)
{
	struct strbuf a, b;
	struct msg_edit add;

	sb_init(&a);
	sb_init(&b);
	msg_edit_apply(msg, strlen(msg), v->edit, &a);
	memset(&add, 0, sizeof(add));
	for (size_t i = 0; i < v->nheaders; i++)
		secure_edit_header(&add, v->headers[i].name, 0, v->headers[i].value);
	msg_edit_apply(a.data, a.len, &add, &b);
	msg_edit_free(&add);
	sb_free(&a);
	return sb_steal(&b);
}

static void test_fax_stamp(void)
{
	struct cm_config *cfg = load_with("FaxApprovalKey fax.key\n");
	struct verdict v;
	struct fax_key k;
	struct fax_stamp st;
	char err[256], path[512];

	if (!ok(cfg != NULL, "a configuration with FaxApprovalKey loads"))
		return;
	eval(cfg, ORDER, "9993335554@fax.hopital.example", &v);
	is_int(v.action, VERDICT_ACCEPT, "an order to the pharmacy's fax number is accepted");
	ok(v.fax_approved, "it is approved for the fax bridge");
	char *out = delivered(ORDER, &v);
	ok(strstr(out, "ref=FORGED") == NULL, "the stamp the sender wrote is removed");
	char *stamp = secure_header_value(out, strlen(out), FAX_STAMP_HEADER, NULL, NULL);
	int count = 0;
	size_t body_off = 0;
	free(secure_header_value(out, strlen(out), FAX_STAMP_HEADER, &count, &body_off));
	is_int(count, 1, "one stamp in the delivered message");
	snprintf(path, sizeof(path), "%s/p/fax.key", tmpdir);
	ok(fax_key_load(path, &k, err, sizeof(err)) == 0, "the bridge's key loads");
	/* the bridge receives LF line ends from pipe(8) */
	struct strbuf lf;
	sb_init(&lf);
	for (const char *p = out + body_off; *p; p++)
		if (*p != '\r')
			sb_putc(&lf, *p);
	struct fax_body_hash *h = fax_body_hash_new();
	unsigned char bh[32];
	fax_body_hash_update(h, lf.data, lf.len);
	fax_body_hash_final(h, bh);
	ok(stamp && fax_stamp_verify(&k, stamp, "order-1@hopital.example", bh, &st, err,
	                             sizeof(err)) == 0,
	   "the bridge verifies the stamp on the body as pipe(8) hands it over");
	ok(fax_stamp_allows(&st, "9993335554") && !fax_stamp_allows(&st, "5145550000"),
	   "the stamp allows the envelope's number, not the X-FAX-Dial one");
	is_str(st.ref, v.ref, "the stamp names the decision's reference");
	bh[0] ^= 1;
	ok(stamp && fax_stamp_verify(&k, stamp, "order-1@hopital.example", bh, &st, err,
	                             sizeof(err)) != 0,
	   "a changed body fails");
	sb_free(&lf);
	free(stamp);
	free(out);
	verdict_free(&v);

	/* without a Message-ID the milter gives the message one */
	const char *nomid = strstr(ORDER, "Message-ID:");
	struct strbuf m;
	sb_init(&m);
	sb_append(&m, ORDER, (size_t)(nomid - ORDER));
	sb_puts(&m, strstr(nomid, "\r\n") + 2);
	eval(cfg, m.data, "9993335554@fax.hopital.example", &v);
	out = delivered(m.data, &v);
	char *mid = secure_header_value(out, strlen(out), "Message-ID", NULL, NULL);
	ok(mid != NULL && strstr(mid, v.ref) != NULL, "a message without Message-ID gets one");
	free(mid);
	free(out);
	verdict_free(&v);
	sb_free(&m);
	config_unref(cfg);
}

static void test_outer_message(void)
{
	struct cm_config *cfg = load_with("");
	struct verdict v;

	if (!ok(cfg != NULL, "the shipped configuration loads"))
		return;
	eval(cfg, NOTE, "marie.lapointe@videotron.ca", &v);
	is_int(v.action, VERDICT_ACCEPT, "clinical mail to a consenting patient is accepted");
	is_int(v.secure, SECURE_PDF_GENERATED, "encrypted as a PDF with a generated password");
	ok(v.edit && v.edit->notice && strstr(v.edit->notice, "To: dr.tremblay@hopital.example"),
	   "the password notice goes to the clinician");
	ok(v.edit && v.edit->notice_cc &&
	       strcmp(v.edit->notice_cc, "archives@hopital.example") == 0,
	   "without ArchivesPdfPassword the notice's copy goes to the archives");
	char *out = delivered(NOTE, &v);
	char *hdr_end = strstr(out, "\r\n\r\n");
	if (hdr_end)
		*hdr_end = '\0';
	ok(strstr(out, "Lapointe, dossier") == NULL && strstr(out, "Thread-Topic") == NULL &&
	       strstr(out, "LAPM50531218") == NULL && strstr(out, "Marie Lapointe") == NULL,
	   "the outer header keeps no subject, name, NAM nor file number");
	ok(strstr(out, "To: marie.lapointe@videotron.ca\r\n") != NULL, "To is the bare address");
	ok(strstr(out, "Message-ID: <note-1@hopital.example>") != NULL, "the Message-ID stays");
	ok(strstr(out, "Content-Type: multipart/mixed") != NULL, "the outer message is multipart");
	free(out);
	verdict_free(&v);

	/* two patients in one clinical message: refused */
	char *rcpts[] = {"marie.lapointe@videotron.ca", "sophie.gagnon@outlook.com"};
	struct envelope env = {.mail_from = "dr.tremblay@hopital.example",
	                       .auth_login = "jtremblay",
	                       .rcpts = rcpts,
	                       .nrcpts = 2};
	policy_eval(cfg, &env, NOTE, strlen(NOTE), strlen(NOTE), NULL, &v);
	is_int(v.action, VERDICT_REJECT, "clinical mail to two patients is refused");
	ok(v.edit == NULL, "nothing is prepared for a refused message");
	verdict_free(&v);
	config_unref(cfg);
}

static void test_missing_keys(void)
{
	/* a registered passphrase needs ArchivesPdfPassword: tempfail, never clear */
	char pp[512];
	snprintf(pp, sizeof(pp), "%s/pp", tmpdir);
	FILE *fp = fopen(pp, "w");
	if (fp == NULL)
		return;
	fprintf(fp, "P-1 trois chats gris sur le toit\n");
	fclose(fp);
	chmod(pp, 0600);
	char extra[600];
	snprintf(extra, sizeof(extra), "PatientPassphrases %s\n", pp);
	struct cm_config *cfg = load_with(extra);
	if (!ok(cfg != NULL, "a configuration with PatientPassphrases loads"))
		return;
	/* Anne registered a passphrase in this test's registry */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
	         "sed -i 's/^anne.morin@famille.example .*/& password=registered passphrase=P-1/' "
	         "%s/p/directories/patients.txt",
	         tmpdir);
	config_unref(cfg);
	if (system(cmd) != 0)
		return;
	char conf[512], err[512];
	snprintf(conf, sizeof(conf), "%s/p/clinimail.conf", tmpdir);
	cfg = config_load(conf, err, sizeof(err));
	if (!ok(cfg != NULL, "the registry with a registered passphrase loads"))
		return;
	struct verdict v;
	eval(cfg, NOTE, "anne.morin@famille.example", &v);
	is_int(v.action, VERDICT_TEMPFAIL,
	       "registered passphrase without ArchivesPdfPassword: tempfail");
	ok(v.edit == NULL, "and nothing is prepared");
	verdict_free(&v);
	config_unref(cfg);

	/* a secret file others may read is refused at startup */
	chmod(pp, 0644);
	cfg = load_with(extra);
	ok(cfg == NULL, "PatientPassphrases readable by others stops startup");
	config_unref(cfg);
}

static void test_edit_apply(void)
{
	const char *msg = "A: 1\r\nB: x\r\nA: 2\r\n folded\r\nC: 3\r\n\r\nbody\r\n";
	struct msg_edit e;
	struct strbuf out;

	memset(&e, 0, sizeof(e));
	secure_edit_header(&e, "A", 2, NULL);
	secure_edit_header(&e, "B", 1, "y");
	secure_edit_header(&e, "D", 0, "4");
	sb_init(&out);
	msg_edit_apply(msg, strlen(msg), &e, &out);
	is_str(out.data, "A: 1\r\nB: y\r\nC: 3\r\nD: 4\r\n\r\nbody\r\n",
	       "msg_edit_apply: delete the 2nd A (folded), change B, add D");
	sb_free(&out);
	msg_edit_free(&e);
}

int main(void)
{
	char tmpl[] = "/tmp/clinimail-test-secure.XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return 1;
	snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
	mime_text_global_init();
	pdf_render_global_init();
	/* a fax key for the stamp tests */
	char path[512], cmd[600];

	snprintf(path, sizeof(path), "%s/fax.key", tmpdir);
	FILE *fp = fopen(path, "w");
	if (fp == NULL)
		return 1;
	fputs("0123456789abcdef0123456789abcdef\n", fp);
	fclose(fp);
	chmod(path, 0600);
	test_edit_apply();
	test_outer_message();
	test_missing_keys();
	test_fax_stamp();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		diag("could not remove %s", tmpdir);
	return done_testing();
}
