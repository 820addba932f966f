/*
 * test_policy.c — every rule of the rulebook, both ways (fires / does not
 * fire), through policy_eval() with the shipped policy
 * (policies/clinimail.conf and its example directories), plus the shape of
 * the SMTP reply: French before English, reference, no CR/LF, ASCII only,
 * never the patient's identifiers.
 */
#include "autoconfig.h"

#include "config.h"
#include "mime_text.h"
#include "policy.h"
#include "util.h"

#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cm_config *cfg;

/* The seed's example order (001), with a structure-valid NAM. */
#define ORDER_BODY                                                                         \
	"Bonjour,\r\n\r\nVoici une ordonnance pour une de vos patientes\r\n\r\n"           \
	"Pharmacie Auxbonsoins\r\nT\xc3\xa9l : 999-333-5555\r\nT\xc3\xa9l\xc3\xa9"        \
	"copieur : 999-333-5554\r\n\r\n"                                                   \
	"Ordonnance pour Mme Test Covid, D.D.N. 3 mars 1946, NAM : COVT 4653 0312. "       \
	"Num\xc3\xa9ro de dossier : 012345. Aucune allergie connue.\r\n\r\n"               \
	"Aspirine 80 mg 1 co po DIE 30 cos Ren 24 mois\r\n\r\n"                            \
	"Dr Jean Tremblay, #Lic 12345, t\xc3\xa9l\xc3\xa9phone o\xc3\xb9 vous pouvez me "  \
	"rejoindre : 819 555-7899\r\n"

#define ORDER_NO_LICENCE_NO_NAM                                                            \
	"Bonjour,\r\n\r\nPharmacie Auxbonsoins\r\nT\xc3\xa9l : 999-333-5555\r\n"           \
	"T\xc3\xa9l\xc3\xa9" "copieur : 999-333-5554\r\n\r\n"                              \
	"Ordonnance pour Mme Test Covid, D.D.N. 3 mars 1946. "                             \
	"Num\xc3\xa9ro de dossier : 012345.\r\n\r\n"                                       \
	"Aspirine 80 mg 1 co po DIE 30 cos Ren 24 mois\r\n\r\n"                            \
	"Dr Jean Tremblay, t\xc3\xa9l\xc3\xa9phone o\xc3\xb9 vous pouvez me rejoindre : "  \
	"819 555-7899\r\n"

#define CLINICAL_NOTE                                                                      \
	"Bonjour,\r\n\r\nSuivi de Mme Test Covid (NAM COVT 4653 0312, DDN 1946-03-03), "   \
	"72 ans, vue ce matin pour douleur thoracique. ECG normal, troponine "             \
	"n\xc3\xa9gative. Hypertension et diab\xc3\xa8te de type 2 connus.\r\n\r\nJean\r\n"

#define ONCOLOGY_NOTE                                                                      \
	"Bonjour Madame Lapointe,\r\n\r\nLes r\xc3\xa9sultats de votre biopsie confirment " \
	"un cancer du sein. Nous discuterons de la chimioth\xc3\xa9rapie et du plan de "   \
	"traitement au prochain rendez-vous.\r\n\r\nDr Jean Tremblay\r\n"

#define NON_CLINICAL                                                                       \
	"Bonjour \xc3\xa0 tous,\r\n\r\nLa r\xc3\xa9union du comit\xc3\xa9 de "             \
	"l'informatique est d\xc3\xa9plac\xc3\xa9" "e \xc3\xa0 jeudi 10 h, salle 2.\r\n"   \
	"Merci,\r\nJean\r\n"

#define CLOSURE_NOTICE                                                                     \
	"Bonjour,\r\n\r\nLa clinique sera ferm\xc3\xa9" "e le lundi 28 d\xc3\xa9" "cembre. " \
	"Pour prendre rendez-vous, appelez le secr\xc3\xa9tariat.\r\n"

#define IMAGING_ORDER                                                                      \
	"Ordonnance d'imagerie m\xc3\xa9" "dicale\r\n\r\nPatient : M. Paul Gagnon, "       \
	"DDN 1975-12-20, NAM GAGP 7512 2099.\r\n"                                          \
	"Examen demand\xc3\xa9 : \xc3\xa9" "chographie abdominale.\r\n"                    \
	"Renseignements cliniques : douleur au quadrant sup\xc3\xa9rieur droit.\r\n\r\n"    \
	"Dr Jean Tremblay, permis 12345, t\xc3\xa9l. 819 555-7899\r\n"

#define LAB_ORDER_NO_PHONE                                                                 \
	"Bonjour M. Roy,\r\n\r\nVoici votre requ\xc3\xaate de laboratoire : FSC, "         \
	"glyc\xc3\xa9mie \xc3\xa0 jeun, HbA1c, bilan lipidique. Ordonnance \xc3\xa0 "      \
	"pr\xc3\xa9senter au centre de pr\xc3\xa9l\xc3\xa8vement.\r\n\r\nDr Jean Tremblay\r\n"

#define LAB_ORDER_PHONE LAB_ORDER_NO_PHONE "Pour valeurs critiques : 819 555-7899\r\n"

/* A message with the given header lines (To/Cc/Subject…) and body. */
static char *mail(const char *from, const char *headers, const char *body)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb,
	          "From: %s\r\n%sDate: Sun, 22 Nov 2026 10:00:00 -0500\r\n"
	          "Message-ID: <t%p@hopital.example>\r\nMIME-Version: 1.0\r\n"
	          "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s",
	          from, headers, (void *)headers, body);
	return sb_steal(&sb);
}

struct run {
	struct verdict v;
};

static void eval(struct verdict *v, const char *auth, const char *ip, const char *from_env,
                 const char *msg, const char *r1, const char *r2, const char *r3)
{
	char *rcpts[3];
	size_t n = 0;
	if (r1)
		rcpts[n++] = (char *)r1;
	if (r2)
		rcpts[n++] = (char *)r2;
	if (r3)
		rcpts[n++] = (char *)r3;
	struct envelope env = {
		.queue_id = "TEST", .client_ip = ip, .helo = "ws1.hopital.example",
		.auth_login = auth, .mail_from = from_env, .rcpts = rcpts, .nrcpts = n,
	};
	policy_eval(cfg, &env, msg, msg ? strlen(msg) : 0, msg ? strlen(msg) : 50u * 1024 * 1024 * 1024,
	            NULL, v);
}

static int fired(const struct verdict *v, enum rule_id r)
{
	for (size_t i = 0; i < v->nhits; i++)
		if (v->hits[i].rule == r)
			return 1;
	return 0;
}

static const char *header(const struct verdict *v, const char *name)
{
	for (size_t i = 0; i < v->nheaders; i++)
		if (strcmp(v->headers[i].name, name) == 0)
			return v->headers[i].value;
	return NULL;
}

#define DR "Dr Jean Tremblay <dr.tremblay@hopital.example>"
#define DR_ENV "dr.tremblay@hopital.example"

/* Check one case: expected action and whether rule r fires. */
static void expect(const char *name, const char *auth, const char *hdrs, const char *body,
                   const char *r1, const char *r2, const char *r3, enum verdict_action want,
                   enum rule_id r, int want_fired)
{
	struct verdict v;
	char *m = mail(DR, hdrs, body);
	eval(&v, auth, "127.0.0.1", DR_ENV, m, r1, r2, r3);
	int good_action = v.action == want;
	int good_rule = fired(&v, r) == want_fired;
	ok(good_action && good_rule, "%s: %s, %s %s", name, verdict_action_name(want), rule_name(r),
	   want_fired ? "fires" : "does not fire");
	if (!good_action || !good_rule) {
		char *j = verdict_to_json(&v);
		diag("got %s", j);
		free(j);
	}
	verdict_free(&v);
	free(m);
}

static void test_reply_shape(void)
{
	struct verdict v;
	char *m = mail(DR, "To: x@gmail.com\r\nSubject: suivi\r\n", CLINICAL_NOTE);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "x@gmail.com", NULL, NULL);
	char *reply = verdict_reply_text(&v);
	is_str(v.rcode, "550", "reject code 550");
	is_str(v.xcode, "5.7.1", "enhanced code 5.7.1");
	ok(strncmp(reply, "550-5.7.1 ", 10) == 0, "multi-line reply starts 550-5.7.1");
	const char *fr = strstr(reply, "refus"), *en = strstr(reply, "rejected");
	ok(fr && en && fr < en, "French before English");
	ok(strstr(reply, v.ref) != NULL && strncmp(v.ref, "CM-", 3) == 0, "reference in the reply");
	ok(strstr(reply, "[webmail]") != NULL, "rule id named");
	ok(strstr(reply, "x@gmail.com") != NULL, "recipient named");
	ok(strstr(reply, "COVT") == NULL && strstr(reply, "4653") == NULL && strstr(reply, "Covid") == NULL,
	   "no patient identifier in the reply");
	int ascii = 1, crlf = 0;
	for (size_t i = 0; i < v.nreply; i++) {
		for (const unsigned char *p = (const unsigned char *)v.reply[i]; *p; p++) {
			if (*p > 0x7e)
				ascii = 0;
			if (*p == '\r' || *p == '\n')
				crlf = 1;
		}
		if (strlen(v.reply[i]) > 400)
			ascii = 0;
	}
	ok(ascii && !crlf, "reply lines are printable ASCII, no CR/LF, <= 400 chars");
	ok(strstr(reply, "fax.hopital.example") != NULL, "fix names the fax service");
	free(reply);
	verdict_free(&v);
	free(m);
}

static void test_order_fields_listed(void)
{
	struct verdict v;
	char *m = mail(DR, "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_NO_LICENCE_NO_NAM);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "commandes@auxbonsoins.example", NULL, NULL);
	char *reply = verdict_reply_text(&v);
	ok(fired(&v, RULE_ORDER_FIELDS), "incomplete order: order-fields fires");
	ok(strstr(reply, "permis") != NULL && strstr(reply, "licence") != NULL, "missing licence listed (fr, en)");
	ok(strstr(reply, "NAM") != NULL, "missing NAM listed");
	ok(strstr(reply, "date de naissance") == NULL, "date of birth, present, not listed");
	ok(strstr(reply, "dossier") == NULL, "file number, present, not listed");
	ok(strstr(reply, "telecopieur du destinataire") == NULL, "recipient fax, present, not listed");
	if (!fired(&v, RULE_ORDER_FIELDS) || strstr(reply, "permis") == NULL)
		diag("reply: %s", reply);
	free(reply);
	verdict_free(&v);
	free(m);
}

static void test_archives(void)
{
	struct verdict v;
	char *m = mail(DR, "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_BODY);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "commandes@auxbonsoins.example", NULL, NULL);
	ok(v.action == VERDICT_ACCEPT && v.nhits == 1 && fired(&v, RULE_ARCHIVES_COPY),
	   "complete order to the pharmacy: accepted, only archives-copy");
	ok(v.nadded == 1 && strcmp(v.added_rcpts[0], "archives@hopital.example") == 0, "archives added");
	ok(header(&v, "X-Clinimail-Verdict") != NULL, "verdict header added");
	ok(v.rcpts[0].cls == RC_PHARMACY, "pharmacy class");
	if (v.nhits != 1 || v.action != VERDICT_ACCEPT) {
		char *j = verdict_to_json(&v);
		diag("got %s", j);
		free(j);
	}
	verdict_free(&v);
	free(m);

	m = mail(DR, "To: commandes@auxbonsoins.example\r\nCc: archives@hopital.example\r\nSubject: ordonnance\r\n", ORDER_BODY);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "commandes@auxbonsoins.example", "archives@hopital.example", NULL);
	ok(v.action == VERDICT_ACCEPT && !fired(&v, RULE_ARCHIVES_COPY) && v.nadded == 0,
	   "archives already in copy: nothing added");
	verdict_free(&v);
	free(m);

	m = mail(DR, "To: 9993335554@fax.hopital.example\r\nSubject: ordonnance\r\n", ORDER_BODY);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "9993335554@fax.hopital.example", NULL, NULL);
	ok(v.action == VERDICT_ACCEPT && v.rcpts[0].cls == RC_PHARMACY && v.rcpts[0].via_fax,
	   "order to the pharmacy's fax number: pharmacy via fax, accepted");
	verdict_free(&v);
	free(m);
}

/* The date-of-birth label written "D.N." (seen in real orders) is read too. */
static void test_dob_label_dn(void)
{
	struct verdict v;
	char *m = mail(DR, "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_BODY);
	char *p = strstr(m, "D.D.N.");
	memmove(p, p + 2, strlen(p + 2) + 1); /* "D.D.N." -> "D.N." */
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "commandes@auxbonsoins.example", NULL, NULL);
	ok(v.action == VERDICT_ACCEPT && !fired(&v, RULE_ORDER_FIELDS), "order with \"D.N.\" as date-of-birth label: complete");
	verdict_free(&v);
	free(m);
}

static void test_untouched(void)
{
	struct verdict v;
	char *m = mail(DR, "To: x@gmail.com\r\nSubject: comite\r\n", NON_CLINICAL);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "x@gmail.com", NULL, NULL);
	ok(v.action == VERDICT_ACCEPT && v.nhits == 0 && v.nheaders == 0 && v.nadded == 0,
	   "non-clinical mail to gmail passes untouched");
	ok(v.content == 0, "non-clinical content");
	verdict_free(&v);
	free(m);
}

static void test_exception(void)
{
	struct verdict v;
	char *m = mail(DR, "To: marie.lapointe@videotron.ca\r\nSubject: Resultats [EXCEPTION: patiente a demande ses resultats par courriel]\r\n", ONCOLOGY_NOTE);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, m, "marie.lapointe@videotron.ca", NULL, NULL);
	ok(!fired(&v, RULE_SENSITIVE_TOPIC) && v.exception_reason != NULL,
	   "sensitive topic with an explicit exception: rule does not fire, exception recorded");
	ok(fired(&v, RULE_PATIENT_ENCRYPTION), "... but the mail still needs encryption");
	verdict_free(&v);
	free(m);
}

static void test_sender_spf(void)
{
	struct verdict v;
	char *m = mail(DR, "To: inf.gagnon@hopital.example\r\nSubject: ordonnance\r\n", ORDER_BODY);
	eval(&v, NULL, "203.0.113.5", DR_ENV, m, "commandes@auxbonsoins.example", NULL, NULL);
	ok(fired(&v, RULE_SENDER_AUTHENTICITY), "unauthenticated establishment From from an outside IP: SPF fails");
	verdict_free(&v);
	eval(&v, NULL, "127.0.0.1", DR_ENV, m, "commandes@auxbonsoins.example", NULL, NULL);
	ok(!fired(&v, RULE_SENDER_AUTHENTICITY), "unauthenticated establishment From from an SPF-listed IP: passes");
	verdict_free(&v);
	free(m);
}

static void test_oversize(void)
{
	struct verdict v;
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, NULL, "x@gmail.com", NULL, NULL);
	ok(v.action == VERDICT_REJECT && fired(&v, RULE_OVERSIZE) && strcmp(v.rcode, "552") == 0 &&
	       strcmp(v.xcode, "5.3.4") == 0,
	   "oversize to gmail: 552 5.3.4");
	verdict_free(&v);
	eval(&v, "jtremblay", "127.0.0.1", DR_ENV, NULL, "inf.gagnon@hopital.example", NULL, NULL);
	const char *h = header(&v, "X-Clinimail-Verdict");
	ok(v.action == VERDICT_ACCEPT && h && strncmp(h, "unscanned", 9) == 0,
	   "oversize to a colleague: accepted, marked unscanned");
	verdict_free(&v);
}

int main(void)
{
	char path[4096], err[512];
	const char *src = getenv("top_srcdir");

	snprintf(path, sizeof(path), "%s/policies/clinimail.conf", src ? src : "..");
	mime_text_global_init();
	cfg = config_load(path, err, sizeof(err));
	if (!ok(cfg != NULL, "shipped policy loads")) {
		diag("%s", err);
		return done_testing();
	}

	const char *PH = "commandes@auxbonsoins.example", *PH2 = "ordonnances@pharmaciedulac.example";
	const char *IMG = "rendezvous@radio-estrie.example", *IMG2 = "radiologie@hopital.example";
	const char *COL = "inf.gagnon@hopital.example";

	/* 1 webmail */
	expect("clinical to gmail", "jtremblay", "To: x@gmail.com\r\nSubject: suivi\r\n", CLINICAL_NOTE, "x@gmail.com", NULL, NULL, VERDICT_REJECT, RULE_WEBMAIL, 1);
	expect("clinical to an external professional", "jtremblay", "To: dr@clinique-privee.example\r\nSubject: suivi\r\n", CLINICAL_NOTE, "dr@clinique-privee.example", NULL, NULL, VERDICT_REJECT, RULE_WEBMAIL, 1);
	expect("clinical to a colleague", "jtremblay", "To: inf.gagnon@hopital.example\r\nSubject: suivi\r\n", CLINICAL_NOTE, COL, NULL, NULL, VERDICT_ACCEPT, RULE_WEBMAIL, 0);
	expect("clinical to the RSSS", "jtremblay", "To: x@ciusss.ssss.gouv.qc.ca\r\nSubject: suivi\r\n", CLINICAL_NOTE, "x@ciusss.ssss.gouv.qc.ca", NULL, NULL, VERDICT_ACCEPT, RULE_WEBMAIL, 0);
	test_untouched();
	test_reply_shape();
	/* 2 med-order-recipient */
	expect("order to the patient", "jtremblay", "To: marie.lapointe@videotron.ca\r\nSubject: ordonnance\r\n", ORDER_BODY, "marie.lapointe@videotron.ca", NULL, NULL, VERDICT_REJECT, RULE_MED_ORDER_RECIPIENT, 1);
	expect("order to a colleague", "jtremblay", "To: inf.gagnon@hopital.example\r\nSubject: ordonnance\r\n", ORDER_BODY, COL, NULL, NULL, VERDICT_REJECT, RULE_MED_ORDER_RECIPIENT, 1);
	expect("order to the pharmacy", "jtremblay", "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_BODY, PH, NULL, NULL, VERDICT_ACCEPT, RULE_MED_ORDER_RECIPIENT, 0);
	/* 3 order-single-recipient */
	expect("order to two pharmacies", "jtremblay", "To: commandes@auxbonsoins.example, ordonnances@pharmaciedulac.example\r\nSubject: ordonnance\r\n", ORDER_BODY, PH, PH2, NULL, VERDICT_REJECT, RULE_ORDER_SINGLE_RECIPIENT, 1);
	expect("order to one pharmacy + archives", "jtremblay", "To: commandes@auxbonsoins.example\r\nCc: archives@hopital.example\r\nSubject: ordonnance\r\n", ORDER_BODY, PH, "archives@hopital.example", NULL, VERDICT_ACCEPT, RULE_ORDER_SINGLE_RECIPIENT, 0);
	expect("imaging order to two imaging services", "jtremblay", "To: rendezvous@radio-estrie.example, radiologie@hopital.example\r\nSubject: imagerie\r\n", IMAGING_ORDER, IMG, IMG2, NULL, VERDICT_REJECT, RULE_ORDER_SINGLE_RECIPIENT, 1);
	/* 4 order-fields */
	expect("complete order", "jtremblay", "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_BODY, PH, NULL, NULL, VERDICT_ACCEPT, RULE_ORDER_FIELDS, 0);
	test_order_fields_listed();
	test_dob_label_dn();
	/* 6 imaging-order-recipient */
	expect("imaging order to the patient", "jtremblay", "To: marie.lapointe@videotron.ca\r\nSubject: imagerie\r\n", IMAGING_ORDER, "marie.lapointe@videotron.ca", NULL, NULL, VERDICT_REJECT, RULE_IMAGING_ORDER_RECIPIENT, 1);
	expect("imaging order to the imaging clinic", "jtremblay", "To: rendezvous@radio-estrie.example\r\nSubject: imagerie\r\n", IMAGING_ORDER, IMG, NULL, NULL, VERDICT_ACCEPT, RULE_IMAGING_ORDER_RECIPIENT, 0);
	/* 7 patient-consent / patient-encryption */
	expect("mail to a patient whose consent was withdrawn", "jtremblay", "To: luc.bergeron@bell.net\r\nSubject: rendez-vous\r\n", CLOSURE_NOTICE, "luc.bergeron@bell.net", NULL, NULL, VERDICT_REJECT, RULE_PATIENT_CONSENT, 1);
	expect("mail to an employer address without third-party consent", "jtremblay", "To: paul.cote@employeur.example\r\nSubject: rendez-vous\r\n", CLOSURE_NOTICE, "paul.cote@employeur.example", NULL, NULL, VERDICT_REJECT, RULE_PATIENT_CONSENT, 1);
	expect("clinical mail outside the consent scope", "jtremblay", "To: jean.roy@gmail.com\r\nSubject: suivi\r\n", CLINICAL_NOTE, "jean.roy@gmail.com", NULL, NULL, VERDICT_REJECT, RULE_PATIENT_CONSENT, 1);
	expect("non-clinical mail to a consenting patient", "jtremblay", "To: marie.lapointe@videotron.ca\r\nSubject: fermeture\r\n", CLOSURE_NOTICE, "marie.lapointe@videotron.ca", NULL, NULL, VERDICT_ACCEPT, RULE_PATIENT_CONSENT, 0);
	expect("family address with third-party consent", "jtremblay", "To: anne.morin@famille.example\r\nSubject: fermeture\r\n", CLOSURE_NOTICE, "anne.morin@famille.example", NULL, NULL, VERDICT_ACCEPT, RULE_PATIENT_CONSENT, 0);
	expect("clinical mail to a consenting patient", "jtremblay", "To: marie.lapointe@videotron.ca\r\nSubject: suivi\r\n", CLINICAL_NOTE, "marie.lapointe@videotron.ca", NULL, NULL, VERDICT_ACCEPT, RULE_PATIENT_ENCRYPTION, 1);
	expect("non-clinical mail to a consenting patient needs no encryption", "jtremblay", "To: marie.lapointe@videotron.ca\r\nSubject: fermeture\r\n", CLOSURE_NOTICE, "marie.lapointe@videotron.ca", NULL, NULL, VERDICT_ACCEPT, RULE_PATIENT_ENCRYPTION, 0);
	/* 8 lab-order */
	expect("lab order without the prescriber's phone", "jtremblay", "To: jean.roy@gmail.com\r\nSubject: laboratoire\r\n", LAB_ORDER_NO_PHONE, "jean.roy@gmail.com", NULL, NULL, VERDICT_REJECT, RULE_LAB_ORDER, 1);
	expect("lab order with the prescriber's phone", "jtremblay", "To: jean.roy@gmail.com\r\nSubject: laboratoire\r\n", LAB_ORDER_PHONE, "jean.roy@gmail.com", NULL, NULL, VERDICT_ACCEPT, RULE_LAB_ORDER, 0);
	expect("lab order to a consenting patient (scope lab-order): consent ok", "jtremblay", "To: jean.roy@gmail.com\r\nSubject: laboratoire\r\n", LAB_ORDER_PHONE, "jean.roy@gmail.com", NULL, NULL, VERDICT_ACCEPT, RULE_PATIENT_CONSENT, 0);
	/* 9 archives-copy */
	test_archives();
	/* 10 sensitive-topic */
	expect("oncology results to a patient", "jtremblay", "To: marie.lapointe@videotron.ca\r\nSubject: resultats\r\n", ONCOLOGY_NOTE, "marie.lapointe@videotron.ca", NULL, NULL, VERDICT_REJECT, RULE_SENSITIVE_TOPIC, 1);
	expect("oncology results to a colleague", "jtremblay", "To: inf.gagnon@hopital.example\r\nSubject: resultats\r\n", ONCOLOGY_NOTE, COL, NULL, NULL, VERDICT_ACCEPT, RULE_SENSITIVE_TOPIC, 0);
	test_exception();
	/* 11 patients-visible */
	expect("closure notice with two patients in To", "jtremblay", "To: marie.lapointe@videotron.ca, sophie.gagnon@outlook.com\r\nSubject: fermeture\r\n", CLOSURE_NOTICE, "marie.lapointe@videotron.ca", "sophie.gagnon@outlook.com", NULL, VERDICT_REJECT, RULE_PATIENTS_VISIBLE, 1);
	expect("closure notice with the patients in Bcc", "jtremblay", "To: dr.tremblay@hopital.example\r\nSubject: fermeture\r\n", CLOSURE_NOTICE, "marie.lapointe@videotron.ca", "sophie.gagnon@outlook.com", NULL, VERDICT_ACCEPT, RULE_PATIENTS_VISIBLE, 0);
	/* 12 sender-authenticity */
	expect("login mgagnon sending as dr.tremblay", "mgagnon", "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_BODY, PH, NULL, NULL, VERDICT_REJECT, RULE_SENDER_AUTHENTICITY, 1);
	expect("login jtremblay sending as dr.tremblay", "jtremblay", "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_BODY, PH, NULL, NULL, VERDICT_ACCEPT, RULE_SENDER_AUTHENTICITY, 0);
	expect("delegated login secretariat sending as dr.tremblay", "secretariat", "To: commandes@auxbonsoins.example\r\nSubject: ordonnance\r\n", ORDER_BODY, PH, NULL, NULL, VERDICT_ACCEPT, RULE_SENDER_AUTHENTICITY, 0);
	test_sender_spf();
	/* 13 subject */
	expect("clinical mail without a subject", "jtremblay", "To: inf.gagnon@hopital.example\r\n", CLINICAL_NOTE, COL, NULL, NULL, VERDICT_ACCEPT, RULE_SUBJECT, 1);
	expect("clinical mail with a subject", "jtremblay", "To: inf.gagnon@hopital.example\r\nSubject: suivi\r\n", CLINICAL_NOTE, COL, NULL, NULL, VERDICT_ACCEPT, RULE_SUBJECT, 0);
	/* oversize */
	test_oversize();

	config_unref(cfg);
	return done_testing();
}
