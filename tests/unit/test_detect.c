/*
 * test_detect.c — detectors (detect.h): every finding kind, found in the
 * clinical form and not found in look-alike ordinary text, the example order
 * of the CIUSSS guide end to end, NAM structure checks, and speed.
 */
#include "detect.h"
#include "normalize.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct detectors *D;

/* Scan a text that is already normalized (ASCII, single spaces). */
static struct findings scan(const char *text)
{
	struct findings f = {0};
	if (detect_scan(D, text, strlen(text), &f) != 0)
		printf("# detect_scan failed\n");
	return f;
}

/* The first finding of kind k (with that value when value != NULL), or NULL. */
static const struct finding *get(const struct findings *f, enum finding_kind k, const char *value)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].kind == k && (!value || strcmp(f->v[i].value, value) == 0))
			return &f->v[i];
	return NULL;
}

static size_t count(const struct findings *f, enum finding_kind k)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n; i++)
		n += f->v[i].kind == k;
	return n;
}

/* The text a finding covers, for name checks. */
static const char *span(const char *text, const struct finding *x)
{
	static char buf[128];
	size_t n = x ? x->end - x->start : 0;
	if (!x)
		return "(none)";
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, text + x->start, n);
	buf[n] = '\0';
	return buf;
}

static void dump(const char *text, const struct findings *f)
{
	for (size_t i = 0; i < f->n; i++)
		printf("#   %s [%zu,%zu) flags=%u value=\"%s\" text=\"%s\"\n",
		       finding_kind_name(f->v[i].kind), f->v[i].start, f->v[i].end, f->v[i].flags,
		       f->v[i].value, span(text, &f->v[i]));
}

/* Found: kind k with that value (or any when NULL) in text. */
static int has(const char *text, enum finding_kind k, const char *value, const char *what)
{
	struct findings f = scan(text);
	int r = ok(get(&f, k, value) != NULL, "%s: %s", finding_kind_name(k), what);
	if (!r)
		dump(text, &f);
	findings_free(&f);
	return r;
}

static int hasnt(const char *text, enum finding_kind k, const char *what)
{
	struct findings f = scan(text);
	int r = ok(get(&f, k, NULL) == NULL, "no %s: %s", finding_kind_name(k), what);
	if (!r)
		dump(text, &f);
	findings_free(&f);
	return r;
}

/* kind k found, and the text it covers is exactly want. */
static void has_span(const char *text, enum finding_kind k, const char *want, const char *what)
{
	struct findings f = scan(text);
	const struct finding *x = get(&f, k, NULL);
	if (!is_str(span(text, x), want, what))
		dump(text, &f);
	findings_free(&f);
}

static void test_nam(void)
{
	struct findings f;
	const struct finding *x;

	ok(nam_is_plausible("COVT46530312"), "plausible: woman born 1946-03-03");
	ok(nam_is_plausible("TREJ80011512"), "plausible: man born 1980-01-15");
	ok(!nam_is_plausible("ABCD12999999"), "implausible: month 99");
	ok(!nam_is_plausible("ABCD46133012"), "implausible: month 13");
	ok(!nam_is_plausible("ABCD46023012"), "implausible: 30 February");
	ok(!nam_is_plausible("ABCD46043112"), "implausible: 31 April");
	ok(!nam_is_plausible("ABCD46540012"), "implausible: day 00");
	ok(!nam_is_plausible("AB1D46530312"), "implausible: digit among the letters");
	ok(!nam_is_plausible("COVT4653031"), "implausible: too short");
	ok(!nam_is_plausible(NULL), "implausible: NULL");

	has("NAM COVT 4653 0312 merci", F_NAM, "COVT46530312", "spaced");
	has("le no COVT46530312.", F_NAM, "COVT46530312", "compact, capitals, no label");
	has("RAMQ: covt-4653-0312", F_NAM, "COVT46530312", "lower case after RAMQ label");
	has("no d'assurance maladie : covt 4653 0312", F_NAM, "COVT46530312", "long label");
	has("health insurance number: TREJ 8001 1512", F_NAM, "TREJ80011512", "English label");
	hasnt("voir covt46530312 ici", F_NAM, "lower case without label");
	hasnt("Code 9012 3456 pour la porte", F_NAM, "door code (invalid month/day)");
	hasnt("Colis ABCD 1299 9999 en route", F_NAM, "tracking number");
	hasnt("Patient COVT465303XX", F_NAM, "placeholder without label");
	has("NAM : COVT465303XX.", F_NAM, "COVT465303XX", "placeholder after label");

	f = scan("NAM : COVT465303XX.");
	x = get(&f, F_NAM, NULL);
	ok(x && (x->flags & FF_CONFIDENT) && (x->flags & FF_LABELLED), "labelled NAM is confident");
	ok(x && x->label_start == 0, "label_start points at NAM");
	findings_free(&f);

	f = scan("Client COVT46530312 vu hier.");
	x = get(&f, F_NAM, NULL);
	ok(x && !(x->flags & FF_CONFIDENT), "bare NAM, no date or name: not confident");
	findings_free(&f);

	f = scan("Suivi de Mme Test Covid. Dossier mis a jour, code COVT46530312.");
	x = get(&f, F_NAM, NULL);
	ok(x && (x->flags & FF_CONFIDENT), "bare NAM matching Mme Test Covid: confident");
	findings_free(&f);

	f = scan("Suivi de M. Jean Roy, code ROYJ80011512.");
	x = get(&f, F_NAM, NULL);
	ok(x && (x->flags & FF_CONFIDENT), "bare NAM matching M. Jean Roy: confident");
	findings_free(&f);

	f = scan("Suivi de Mme Marie Lapointe, code COVT46530312.");
	x = get(&f, F_NAM, NULL);
	ok(x && !(x->flags & FF_CONFIDENT), "bare NAM, other name nearby: not confident");
	findings_free(&f);

	f = scan("Nee le 1946-03-03. Code COVT46530312.");
	x = get(&f, F_NAM, NULL);
	ok(x && (x->flags & FF_CONFIDENT), "bare NAM matching the date of birth (woman)");
	findings_free(&f);

	f = scan("Rendez-vous le 3 mars 1946. Code COVT46030312.");
	x = get(&f, F_NAM, NULL);
	ok(x && (x->flags & FF_CONFIDENT), "bare NAM matching a date (man)");
	findings_free(&f);
}

static void test_dates(void)
{
	has("DDN : 1946-01-03", F_DOB, "19460103", "DDN ISO");
	has("D.D.N. 03/01/1946", F_DOB, "19460103", "D.D.N. dd/mm/yyyy");
	has("D D.N. 3 janvier 1946", F_DOB, "19460103", "D D.N. (seed spelling) day month year");
	has("date de naissance : 3 janv. 1946", F_DOB, "19460103", "abbreviated month");
	has("nee le 1er fevrier 1950", F_DOB, "19500201", "nee le 1er");
	has("ne(e) le 29/02/1952", F_DOB, "19520229", "ne(e) le, leap day");
	has("DOB: January 3, 1946", F_DOB, "19460103", "English month first");
	has("Date of birth 3 January 1946", F_DOB, "19460103", "English day first");
	has("born on 12/25/1946", F_DOB, "19461225", "US month/day order");
	has("Birth date: 1946-01-03", F_DOB, "19460103", "birth date");
	has("Date de naissance (AAAA-MM-JJ) : 1946-01-03", F_DOB, "19460103", "format hint");
	has("La rencontre du 3 janvier 2024 est annulee", F_DATE, "20240103", "unlabelled date");
	hasnt("La rencontre du 3 janvier 2024 est annulee", F_DOB, "unlabelled date is no DOB");
	has("reunion le 2024-05-17 a 10 h", F_DATE, "20240517", "ISO date");
	hasnt("version 2024-13-45 du logiciel", F_DATE, "invalid month and day");
	hasnt("le 31/04/2024", F_DATE, "31 April");
	hasnt("le 29/02/2023", F_DATE, "29 February of a common year");
	hasnt("je ne le 3 fois", F_DOB, "French 'ne le' without a date");
	hasnt("DDN : 1946-01-03", F_DATE, "a DOB is not also a plain date");
}

static void test_numbers(void)
{
	has("Numero de dossier : 012345.", F_FILE_NO, "012345", "numero de dossier");
	has("no de dossier H012345", F_FILE_NO, "H012345", "letter prefix");
	has("N\xc2\xb0 dossier: 778899", F_FILE_NO, "778899", "n-degree sign");
	has("# dossier 4455667", F_FILE_NO, "4455667", "# dossier");
	has("Dossier : 2021", F_FILE_NO, "2021", "Dossier with colon");
	has("MRN 00123456", F_FILE_NO, "00123456", "MRN");
	has("chart no. 556677", F_FILE_NO, "556677", "chart no.");
	has("File number: 12-3456", F_FILE_NO, "123456", "file number");
	has("no. dossier 123456", F_FILE_NO, "123456", "no. dossier");
	has("file no 778899", F_FILE_NO, "778899", "file no");
	hasnt("le dossier 2021 est clos", F_FILE_NO, "a year after a bare 'dossier'");
	hasnt("dossier 2020-2021 du comite", F_FILE_NO, "a year range");
	hasnt("le dossier de presse 12", F_FILE_NO, "too few digits");
	hasnt("hashtag #12345 ici", F_FILE_NO, "a bare # number");

	has("#Lic 00000", F_LICENCE, "00000", "#Lic (seed)");
	has("lic. 12345", F_LICENCE, "12345", "lic.");
	has("no de permis : 1-23456", F_LICENCE, "1-23456", "no de permis 1-23456");
	has("numero de pratique 123456", F_LICENCE, "123456", "numero de pratique");
	has("numero de prescripteur 55555", F_LICENCE, "55555", "numero de prescripteur");
	has("CMQ 12345", F_LICENCE, "12345", "CMQ");
	has("no prescripteur 54321", F_LICENCE, "54321", "no prescripteur");
	has("no de pratique: 1234567", F_LICENCE, "1234567", "no de pratique");
	has("OIIQ : 2101234", F_LICENCE, "2101234", "OIIQ");
	has("license # 98765", F_LICENCE, "98765", "license #");
	has("Practice number 12345", F_LICENCE, "12345", "practice number");
	hasnt("permis de conduire 12345678", F_LICENCE, "driving licence");
	hasnt("la licence du logiciel 2024 est payee", F_LICENCE, "licence followed by words");
	hasnt("les 12345 participants", F_LICENCE, "a number without label");
}

static void test_phones(void)
{
	static const char *forms[] = {"819-555-0101",  "(819) 555-0101",  "819.555.0101",
	                              "8195550101",    "+1 819 555 0101", "1-819-555-0101",
	                              "(819)555-0101", "819 555 0101",    "+1 (819) 555-0101"};
	char buf[128];
	struct findings f;
	const struct finding *x;

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(buf, sizeof(buf), "appelez au %s merci", forms[i]);
		has(buf, F_PHONE, "8195550101", forms[i]);
	}
	has("tel 123 456-7899", F_PHONE, "1234567899", "any area code (seed)");
	has("Tel. : 819-555-0101 poste 123", F_PHONE, "8195550101", "extension");
	has("Telecopieur : 999-333-5554", F_FAX, "9993335554", "telecopieur");
	has("Telec. 819 555 0102", F_FAX, "8195550102", "telec.");
	has("FAX: (819) 555-0102", F_FAX, "8195550102", "FAX");
	has("facsimile 819-555-0102", F_FAX, "8195550102", "facsimile");
	has("F: 819-555-0102", F_FAX, "8195550102", "F:");
	hasnt("Tel : 819-555-0101", F_FAX, "phone label is not fax");
	hasnt("reference 1234-5678-90", F_PHONE, "other grouping");
	hasnt("numero 12345678901234", F_PHONE, "long digit run");
	hasnt("le 1946-01-03", F_PHONE, "a date");

	f = scan("Tel : 999-333-5555 Telecopieur : 999-333-5554");
	x = get(&f, F_PHONE, "9993335555");
	ok(x && (x->flags & FF_LABELLED) && x->label_start == 0, "phone labelled by Tel");
	x = get(&f, F_FAX, "9993335554");
	ok(x && (x->flags & FF_LABELLED), "fax: nearest label is Telecopieur");
	ok(!get(&f, F_FAX, "9993335555") && !get(&f, F_PHONE, "9993335554"), "no cross-up");
	findings_free(&f);

	f = scan("Fax : 819-555-0102. Pour toute question, le secretariat repond au 819-555-0101.");
	ok(get(&f, F_FAX, "8195550102") && get(&f, F_PHONE, "8195550101"),
	   "a fax label does not reach a number 60 characters further");
	x = get(&f, F_PHONE, "8195550101");
	ok(x && !(x->flags & FF_LABELLED), "unlabelled phone");
	findings_free(&f);

	f = scan("Dossier : 8195550101");
	ok(get(&f, F_FILE_NO, "8195550101") && !get(&f, F_PHONE, NULL),
	   "a file number is not a phone number");
	findings_free(&f);
}

static void test_posology(void)
{
	has("Aspirine 80 mg 1 co po ID 30 cos Ren 24 mois", F_POSOLOGY, NULL, "seed line");
	has_span("Aspirine 80 mg 1 co po ID 30 cos Ren 24 mois. Merci", F_POSOLOGY,
	         "80 mg 1 co po ID 30 cos Ren 24 mois", "seed line span");
	has("amoxicilline 500 mg TID x 10 jours", F_POSOLOGY, NULL, "TID x 10 jours");
	has("Ren. 24 mois", F_POSOLOGY, NULL, "renewal alone");
	has("Mitte 30", F_POSOLOGY, NULL, "mitte");
	has("metformine 500 mg 2 fois par jour", F_POSOLOGY, NULL, "2 fois par jour");
	has("ramipril 5 mg une fois par jour pendant 7 jours", F_POSOLOGY, NULL,
	    "une fois par jour");
	has("salbutamol 2 bouffees qid prn", F_POSOLOGY, NULL, "bouffees prn");
	has("insuline 10 unites sc hs", F_POSOLOGY, NULL, "units sc hs");
	has("vitamine D 1000 UI die", F_POSOLOGY, NULL, "UI die");
	has("B12 1000 mcg IM q1 mois", F_POSOLOGY, NULL, "mcg IM");
	has("fentanyl 25 ug/h q72h", F_POSOLOGY, NULL, "ug/h (micro sign folded)");
	has("fentanyl 25 \xce\xbcg/h q72h", F_POSOLOGY, NULL,
	    "Greek mu (text_normalize of the micro sign)");
	has("amoxicillin 500 mg three times a day for 10 days", F_POSOLOGY, NULL, "English");
	has("Lipitor 20 mg once daily, refills: 3", F_POSOLOGY, NULL, "English refills");
	has("acetaminophene 500 mg 2 co q4-6h prn", F_POSOLOGY, NULL, "q4-6h");
	has("prednisone 50 mg po", F_POSOLOGY, NULL, "po");
	has("gouttes 2 gouttes OU bid", F_POSOLOGY, NULL, "gouttes bid");
	hasnt("la reunion de 10 h a 11 h", F_POSOLOGY, "meeting hours");
	hasnt("un budget de 500 $ a ete approuve", F_POSOLOGY, "budget");
	hasnt("Salle 2, 3e etage", F_POSOLOGY, "room and floor");
	hasnt("ajouter 25 g de farine et bien melanger", F_POSOLOGY, "flour");
	hasnt("une augmentation de 3 % par annee", F_POSOLOGY, "a percentage");
	hasnt("brossez vos dents 2 fois par jour", F_POSOLOGY, "frequency without a dose");
	hasnt("le renouvellement 2024 de votre abonnement", F_POSOLOGY, "subscription renewal");
}

static void test_names(void)
{
	has_span("Bonjour Mme Test Covid, merci", F_PERSON, "Test Covid", "Mme");
	has_span("Monsieur Jean-Paul St-Onge est venu", F_PERSON, "Jean-Paul St-Onge", "Monsieur");
	has_span("vu M. Roy hier", F_PERSON, "Roy", "M.");
	has_span("Mrs O'Brien called", F_PERSON, "O'Brien", "Mrs");
	has_span("Madame Marie de la Fontaine, tel", F_PERSON, "Marie de la Fontaine", "particle");
	has_span("Mme Tremblay Tel : 819", F_PERSON, "Tremblay", "stop at Tel");
	hasnt("Madame, Monsieur, veuillez noter", F_PERSON, "letter opening");
	hasnt("Monsieur le maire a parle", F_PERSON, "lower case after honorific");
	hasnt("M. Le Directeur", F_PERSON, "stop words only");
	hasnt("mme tremblay", F_PERSON, "no capital");

	has_span("Dr Test Untel , #Lic 00000", F_PRESCRIBER, "Test Untel", "Dr (seed)");
	has_span("Dre Marie Gagnon", F_PRESCRIBER, "Marie Gagnon", "Dre");
	has_span("Docteure Isabelle Roy, MD", F_PRESCRIBER, "Isabelle Roy", "Docteure");
	has_span("Prescripteur : Jean Tremblay", F_PRESCRIBER, "Jean Tremblay",
	         "prescripteur label");
	has_span("Medecin traitant : Dr Luc Cote", F_PRESCRIBER, "Luc Cote", "medecin traitant");
	hasnt("le prescripteur doit se referer au chef", F_PRESCRIBER, "prescripteur in prose");
	hasnt("dr. who", F_PRESCRIBER, "no capital");

	has_span("Nom du patient : Sophie Gagnon", F_PATIENT_NAME, "Sophie Gagnon",
	         "nom du patient");
	has_span("Nom de l'usager: Luc Bergeron", F_PATIENT_NAME, "Luc Bergeron",
	         "nom de l'usager");
	has_span("Patiente : Mme Anne Morin", F_PATIENT_NAME, "Anne Morin", "Patiente :");
	has_span("Usager : Paul Cote", F_PATIENT_NAME, "Paul Cote", "Usager :");
	has_span("Nom : Lapointe Prenom : Marie", F_PATIENT_NAME, "Lapointe", "Nom :");
	has_span("Ordonnance pour Mme Test Covid, D D.N.", F_PATIENT_NAME, "Test Covid",
	         "ordonnance pour");
	has_span("Patient name: John Smith", F_PATIENT_NAME, "John Smith", "patient name");
	hasnt("le patient doit consentir", F_PATIENT_NAME, "le patient in prose");
	hasnt("Nom : inconnu", F_PATIENT_NAME, "no capitalised name");

	has_span("Pharmacie Auxbonsoins Tel : 999-333-5555", F_PHARMACY, "Pharmacie Auxbonsoins",
	         "Pharmacie X");
	has_span("Pharmacie du Lac", F_PHARMACY, "Pharmacie du Lac", "Pharmacie du X");
	has_span("send it to Corner Drug Pharmacy today", F_PHARMACY, "Corner Drug Pharmacy",
	         "X Pharmacy");
	has("chez Jean Coutu", F_PHARMACY, NULL, "brand");
	has_span("Destinataire : Pharmacie Fleurimont", F_PHARMACY, "Pharmacie Fleurimont",
	         "destinataire");
	has_span("A l'attention de Mme Roy", F_PHARMACY, "Mme Roy", "a l'attention de");
	has("Att. : Service de radiologie", F_PHARMACY, NULL, "Att. :");
	hasnt("le chef du departement de pharmacie pour connaitre", F_PHARMACY,
	      "pharmacie in prose");
	hasnt("la pharmacie de votre choix", F_PHARMACY, "lower case follow-up");

	has_span("Nom de la mere : Louise Roy", F_PARENT_NAME, "Louise Roy", "nom de la mere");
	has_span("nom du pere: Marc Roy", F_PARENT_NAME, "Marc Roy", "nom du pere");
	has_span("Mere : Louise Roy", F_PARENT_NAME, "Louise Roy", "Mere :");
	has_span("Mother's name: Jane Doe", F_PARENT_NAME, "Jane Doe", "mother's name");
	hasnt("sa mere Louise est venue", F_PARENT_NAME, "mother in prose");
	hasnt("la fete des peres", F_PARENT_NAME, "fete des peres");
}

static void test_misc(void)
{
	has("au 1234 rue Principale", F_ADDRESS, NULL, "rue");
	has("12 boul. de l'Universite", F_ADDRESS, NULL, "boul.");
	has("500, avenue du Parc", F_ADDRESS, NULL, "avenue");
	has("3001 12e Avenue Nord", F_ADDRESS, NULL, "numbered avenue");
	has("250 ch. Sainte-Foy", F_ADDRESS, NULL, "ch.");
	has("10 Main Street", F_ADDRESS, NULL, "English street");
	has("221 Baker St. London", F_ADDRESS, NULL, "St.");
	hasnt("Salle 2, 3e etage", F_ADDRESS, "room");
	hasnt("les 3 places disponibles", F_ADDRESS, "places");
	hasnt("en 2 routes differentes", F_ADDRESS, "routes");

	has("une femme de 54 ans", F_AGE, "54", "54 ans");
	has("patiente agee de 54 ans", F_AGE, "54", "agee de 54 ans");
	has("a 54-year-old man", F_AGE, "54", "54-year-old");
	has("54 y.o. male", F_AGE, "54", "54 y.o.");
	has("Age : 7", F_AGE, "7", "Age :");
	hasnt("depuis 10 ans", F_AGE, "depuis");
	hasnt("il y a 10 ans", F_AGE, "il y a");
	hasnt("10 ans d'experience", F_AGE, "experience");
	hasnt("plus de 30 ans", F_AGE, "plus de");
	hasnt("pendant 5 ans", F_AGE, "pendant");

	has("Marie Gagnon, infirmiere praticienne specialisee", F_PROFESSION, NULL, "IPS long");
	has("Dr Roy, MD", F_PROFESSION, NULL, "MD");
	has("J. Roy, M.D.", F_PROFESSION, NULL, "M.D.");
	has("j. roy, m.d.", F_PROFESSION, NULL, "m.d.");
	has("Marie Gagnon, IPS", F_PROFESSION, NULL, "IPS");
	has("Luc Cote, pharmacien", F_PROFESSION, NULL, "pharmacien");
	has("Jane Doe, nurse practitioner", F_PROFESSION, NULL, "nurse practitioner");
	hasnt("la reunion du comite de direction", F_PROFESSION, "administrative text");
	hasnt("\xef\xbf\xbdMD\xef\xbf\xbd", F_PROFESSION, "short title between non-ASCII bytes");

	has("TELECONSULTATION", F_TELECONSULT, NULL, "capitals");
	has("mention teleconsultation", F_TELECONSULT, NULL, "lower case");
	has("Tele-consultation", F_TELECONSULT, NULL, "hyphen");
	hasnt("la consultation a eu lieu au bureau", F_TELECONSULT, "plain consultation");

	has("formulaire AH-251", F_FORM_AH, "AH-251", "AH-251");
	has("formulaire AH 253", F_FORM_AH, "AH-253", "AH 253");
	has("AH251 rempli", F_FORM_AH, "AH-251", "AH251");
	hasnt("AH-252", F_FORM_AH, "other form");
	hasnt("ah bon, 251 personnes", F_FORM_AH, "interjection");

	has("telephone ou vous pouvez me rejoindre : 123 456-7899", F_CONTACT_CUE, NULL, "seed");
	has("Pour les valeurs critiques, appelez", F_CONTACT_CUE, NULL, "valeurs critiques");
	has("je suis joignable au poste 22", F_CONTACT_CUE, NULL, "joignable");
	has("en cas d'urgence", F_CONTACT_CUE, NULL, "en cas d'urgence");
	has("Critical values: call 819-555-0101", F_CONTACT_CUE, NULL, "critical values");
	has("you can reach me at 819-555-0101", F_CONTACT_CUE, NULL, "reach me");
	has("contact me at 819-555-0101", F_CONTACT_CUE, NULL, "contact me at");
	has("urgent contact: 819-555-0101", F_CONTACT_CUE, NULL, "urgent contact");
	has("ou me joindre au besoin", F_CONTACT_CUE, NULL, "me joindre");
	hasnt("la reunion de demain est reportee", F_CONTACT_CUE, "ordinary text");
}

/* The example order of the CIUSSS de l'Estrie-CHUS guide (seed 001), as text_normalize gives it. */
static const char seed_order_utf8[] =
    "Bonjour, \n\nVoici une ordonnance pour une de vos patientes \n\nPharmacie Auxbonsoins \n"
    "T\xc3\xa9l : 999-333-5555 \nT\xc3\xa9l\xc3\xa9"
    "copieur : 999-333-5554 \n\n"
    "Ordonnance pour Mme Test Covid, D D.N. 3 janvier 1946, NAM : COVT465303XX. Num\xc3\xa9ro de \n"
    "dossier : 012345. Aucune allergie connue. \n\nAspirine 80 mg 1 co po ID 30 cos Ren 24 mois "
    "\n\n"
    "Dr Test Untel , #Lic 00000, t\xc3\xa9l\xc3\xa9phone o\xc3\xb9 vous pouvez me rejoindre : "
    "123 456-7899 \nL\xe2\x80\x99"
    "adresse courriel de l\xe2\x80\x99"
    "exp\xc3\xa9"
    "diteur ne doit "
    "pas \xc3\xaatre utilis\xc3\xa9"
    "e pour des situations demandant r\xc3\xa9ponse imm\xc3\xa9"
    "diate.";
static const char seed_order[] =
    "Bonjour, Voici une ordonnance pour une de vos patientes Pharmacie Auxbonsoins Tel : "
    "999-333-5555 Telecopieur : 999-333-5554 Ordonnance pour Mme Test Covid, D D.N. 3 janvier "
    "1946, NAM : COVT465303XX. Numero de dossier : 012345. Aucune allergie connue. Aspirine 80 "
    "mg 1 co po ID 30 cos Ren 24 mois Dr Test Untel , #Lic 00000, telephone ou vous pouvez me "
    "rejoindre : 123 456-7899 L'adresse courriel de l'expediteur ne doit pas etre utilisee pour "
    "des situations demandant reponse immediate.";

static void check_seed(const char *t, const char *what)
{
	struct findings f = scan(t);
	const struct finding *x, *cue, *ph;
	int all = 1;

	all &= ok(get(&f, F_PHARMACY, NULL) != NULL, "%s: pharmacy", what);
	x = get(&f, F_PHONE, "9993335555");
	all &= ok(x && (x->flags & FF_LABELLED), "%s: pharmacy phone, labelled", what);
	all &= ok(get(&f, F_FAX, "9993335554") != NULL, "%s: pharmacy fax", what);
	all &= is_str(span(t, get(&f, F_PATIENT_NAME, NULL)), "Test Covid", "seed: patient name");
	all &= ok(get(&f, F_PERSON, NULL) != NULL, "%s: person", what);
	all &= ok(get(&f, F_DOB, "19460103") != NULL, "%s: DOB 19460103", what);
	x = get(&f, F_NAM, "COVT465303XX");
	all &= ok(x && (x->flags & FF_CONFIDENT), "%s: NAM COVT465303XX confident", what);
	all &= ok(get(&f, F_FILE_NO, "012345") != NULL, "%s: file number", what);
	all &= ok(get(&f, F_POSOLOGY, NULL) != NULL, "%s: posology", what);
	all &= is_str(span(t, get(&f, F_PRESCRIBER, NULL)), "Test Untel", "seed: prescriber");
	all &= ok(get(&f, F_LICENCE, "00000") != NULL, "%s: licence", what);
	ph = get(&f, F_PHONE, "1234567899");
	cue = get(&f, F_CONTACT_CUE, NULL);
	all &= ok(ph && cue && cue->end <= ph->start && ph->start - cue->end < 10,
	          "%s: prescriber phone with a contact cue just before", what);
	all &= ok(count(&f, F_FAX) == 1 && count(&f, F_NAM) == 1 && count(&f, F_DATE) == 0,
	          "%s: nothing spurious", what);
	if (!all)
		dump(t, &f);
	findings_free(&f);
}

static void test_seed(void)
{
	size_t n;
	char *norm;

	check_seed(seed_order, "seed");
	norm = text_normalize(seed_order_utf8, strlen(seed_order_utf8), &n);
	if (norm)
		check_seed(norm, "seed via text_normalize");
	free(norm);
}

static void test_hostile(void)
{
	static const char nul[] = "Tel : 819-555-0101\0NAM COVT 4653 0312\0\xff\xfe Mme Roy";
	struct findings f = {0};
	char *big;
	size_t n = 200000;

	ok(detect_scan(D, nul, sizeof(nul) - 1, &f) == 0, "NUL bytes and invalid UTF-8 scanned");
	ok(get(&f, F_PHONE, "8195550101") && get(&f, F_NAM, "COVT46530312") &&
	       get(&f, F_PERSON, NULL),
	   "findings around NUL bytes");
	findings_free(&f);

	ok(detect_scan(D, "", 0, &f) == 0 && f.n == 0, "empty text");

	/* Pathological repetition: long runs of name-like words and digits. */
	big = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		big[i] = "Mme Aa Bb Cc 1 2 3 mg po "[i % 25];
	big[n] = '\0';
	ok(detect_scan(D, big, n, &f) == 0, "pathological repetition scanned");
	diag("pathological text: %zu findings", f.n);
	findings_free(&f);
	free(big);
}

/* ---- threads: detect_scan shares nothing but the compiled set ---- */

struct job {
	size_t want;
	int bad;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	for (int r = 0; r < 100; r++) {
		struct findings f = {0};
		if (detect_scan(D, seed_order, strlen(seed_order), &f) != 0 || f.n != j->want)
			j->bad++;
		findings_free(&f);
	}
	return NULL;
}

static void test_threads(void)
{
	struct findings f = scan(seed_order);
	struct job jobs[4];
	pthread_t th[4];
	int bad = 0;

	for (int i = 0; i < 4; i++) {
		jobs[i].want = f.n;
		jobs[i].bad = 0;
		pthread_create(&th[i], NULL, worker, &jobs[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += jobs[i].bad;
	}
	ok(f.n > 10 && bad == 0, "4 threads x 100 scans of the seed order: %zu findings each", f.n);
	findings_free(&f);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best of 10 batches of 20 scans: the machine may be busy with other work. */
static double best_time(const char *text, size_t len)
{
	double best = 1e9;
	for (int b = 0; b < 10; b++) {
		double t0 = now(), dt;
		for (int r = 0; r < 20; r++) {
			struct findings f = {0};
			detect_scan(D, text, len, &f);
			findings_free(&f);
		}
		dt = (now() - t0) / 20;
		if (dt < best)
			best = dt;
	}
	return best;
}

static void test_speed(void)
{
	static const char *para[] = {
	    "Le choix d'un outil pour la teleconsultation est important. Celui-ci doit permettre "
	    "au medecin d'obtenir les informations necessaires a sa demarche clinique, notamment "
	    "lorsqu'il doit elaborer un diagnostic differentiel, et preserver la confidentialite. ",
	    "La reunion du comite de direction aura lieu le 12 mars 2024 de 10 h a 11 h 30 a la "
	    "salle 2, 3e etage. Le budget de 500 $ a ete approuve par Mme Tremblay. ",
	    "Veuillez communiquer avec le secretariat au 819-555-0101 poste 2233 pour toute "
	    "question concernant votre dossier ou les heures d'ouverture de la clinique. ",
	    "Ordonnance pour M. Jean Roy, DDN 1950-02-01, NAM ROYJ 5002 0112, dossier 445566. "
	    "Metformine 500 mg po bid x 90 jours Ren. 3. Dr Luc Cote, permis 12345. ",
	};
	size_t n = 100 * 1024, len = 0;
	char *text = malloc(n + 1);
	struct findings f = {0};
	double dt;

	for (size_t i = 0; len < n; i++) {
		size_t k = strlen(para[i % 4]);
		if (len + k > n)
			k = n - len;
		memcpy(text + len, para[i % 4], k);
		len += k;
	}
	text[len] = '\0';
	detect_scan(D, text, len, &f); /* warm up */
	ok(f.n > 100, "speed text has findings (%zu)", f.n);
	findings_free(&f);
	dt = best_time(text, len);
	diag(
	    "detect_scan: 100 KiB mixed text (an order every 4th paragraph) in %.3f ms (%.0f MB/s)",
	    dt * 1e3, len / dt / 1e6);

	/* Plain prose, no identifiers. */
	len = 0;
	for (size_t i = 0; len < n; i++) {
		size_t k = strlen(para[0]);
		if (len + k > n)
			k = n - len;
		memcpy(text + len, para[0], k);
		len += k;
	}
	dt = best_time(text, len);
	diag("detect_scan: 100 KiB prose in %.3f ms (%.0f MB/s)", dt * 1e3, len / dt / 1e6);
	free(text);
}

int main(void)
{
	char err[256] = "";

	D = detectors_new(err, sizeof(err));
	if (!ok(D != NULL, "detectors_new %s", err))
		return done_testing();
	is_str(finding_kind_name(F_NAM), "nam", "kind name");
	is_str(finding_kind_name(F_KIND_COUNT), "unknown", "kind name out of range");

	test_nam();
	test_dates();
	test_numbers();
	test_phones();
	test_posology();
	test_names();
	test_misc();
	test_seed();
	test_hostile();
	test_threads();
	if (!getenv("CLINIMAIL_NO_BENCH"))
		test_speed();
	detectors_free(D);
	return done_testing();
}
