/*
 * test_lexicon.c — lexicons (lexicon.h): the shipped files load and hold
 * what they should, terms match as whole words whatever the case, accents,
 * spaces and hyphens, with exact offsets; categories, prefixes, duplicates,
 * NAME.local.txt, the errors a bad file gives; scans from several threads;
 * and a throughput figure with 5,000 extra terms.
 */
#include "lexicon.h"
#include "normalize.h"
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct lexicon_set *L;
static char shipped[1024];

/* The hit of lexicon lex whose folded term is term, or NULL. */
static const struct lexicon_hit *find(const struct lexicon_set *ls, const struct lexicon_hits *h,
                                      enum lexicon_id lex, const char *term)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].lex == lex && strcmp(lexicon_term(ls, lex, h->v[i].term), term) == 0)
			return &h->v[i];
	return NULL;
}

/* Scan text; check that term of lex is found and covers exactly want. */
static void hit(const char *text, enum lexicon_id lex, const char *term, const char *want)
{
	struct lexicon_hits h = {0};
	const struct lexicon_hit *x;
	int r;

	r = lexicon_scan(L, text, strlen(text), &h);
	x = find(L, &h, lex, term);
	if (!ok(r == 0 && x != NULL, "%s: \"%s\" found in \"%s\"", lexicon_name(lex), term, text)) {
		for (size_t i = 0; i < h.n; i++)
			printf("#   hit %s \"%s\"\n", lexicon_name(h.v[i].lex),
			       lexicon_term(L, h.v[i].lex, h.v[i].term));
	} else {
		char got[128];
		size_t n = x->end - x->start;
		if (n >= sizeof(got))
			n = sizeof(got) - 1;
		memcpy(got, text + x->start, n);
		got[n] = '\0';
		is_str(got, want, "  offsets cover the match");
	}
	lexicon_hits_free(&h);
}

static void miss(const char *text, enum lexicon_id lex, const char *term)
{
	struct lexicon_hits h = {0};
	int r = lexicon_scan(L, text, strlen(text), &h);
	ok(r == 0 && find(L, &h, lex, term) == NULL, "%s: no \"%s\" in \"%s\"", lexicon_name(lex),
	   term, text);
	lexicon_hits_free(&h);
}

static size_t count_lex(const char *text, enum lexicon_id lex)
{
	struct lexicon_hits h = {0};
	size_t n = 0;
	if (lexicon_scan(L, text, strlen(text), &h) == 0)
		for (size_t i = 0; i < h.n; i++)
			n += h.v[i].lex == lex;
	lexicon_hits_free(&h);
	return n;
}

static int term_exists(const struct lexicon_set *ls, enum lexicon_id lex, const char *term)
{
	for (unsigned i = 0; i < lexicon_size(ls, lex); i++)
		if (strcmp(lexicon_term(ls, lex, i), term) == 0)
			return 1;
	return 0;
}

/* ---- a scratch directory of lexicon files ---- */

static char tmpdir[256];

static void write_file(const char *name, const char *content)
{
	char path[512];
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (!f) {
		printf("# cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	fwrite(content, 1, strlen(content), f);
	fclose(f);
}

static void remove_file(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
}

/* A minimal valid set: every file present. */
static void minimal_set(void)
{
	for (int l = 0; l < LEX_COUNT; l++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.txt", lexicon_name((enum lexicon_id)l));
		write_file(name, "# minimal\nplaceholder\n");
		snprintf(name, sizeof(name), "%s.local.txt", lexicon_name((enum lexicon_id)l));
		remove_file(name);
	}
}

/* Load tmpdir, expect failure with an error starting with want (after the dir). */
static void load_fails(const char *what, const char *want)
{
	char err[512] = "", expect[512];
	struct lexicon_set *ls = lexicon_load(tmpdir, err, sizeof(err));

	snprintf(expect, sizeof(expect), "%s/%s", tmpdir, want);
	if (!ok(ls == NULL && strncmp(err, expect, strlen(expect)) == 0, "error: %s", what))
		printf("#   got \"%s\", want \"%s…\"\n", err, expect);
	lexicon_free(ls);
}

static void test_files(void)
{
	char err[512] = "";
	struct lexicon_set *ls;
	struct lexicon_hits h = {0};
	const char *text;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_lexicon.%d", (int)getpid());
	if (mkdir(tmpdir, 0700) != 0 && errno != EEXIST) {
		ok(0, "mkdir %s", tmpdir);
		return;
	}

	/* duplicates (after folding), categories, prefixes, the .local file */
	minimal_set();
	write_file("drugs.txt", "# drugs\nAspirine\naspirine   # same term\nASPIRINE\n"
	                        "Acétaminophène\n\n  acetaminophene  \nchimioth*\nchimioth*\n");
	write_file("drugs.local.txt", "Médicament-Maison\naspirine\n");
	write_file("sensitive.txt",
	           "cancer\n[oncology]\ncancer\ntumeur maligne\n[ mental-health ]\n"
	           "dépression\n");
	ls = lexicon_load(tmpdir, err, sizeof(err));
	if (!ok(ls != NULL, "small set loads %s", err))
		return;
	is_int((long)lexicon_size(ls, LEX_DRUG), 4, "duplicates dropped (4 distinct drug terms)");
	ok(term_exists(ls, LEX_DRUG, "acetaminophene"), "terms are folded");
	ok(term_exists(ls, LEX_DRUG, "medicament-maison"), "drugs.local.txt is loaded");
	is_int((long)lexicon_size(ls, LEX_SENSITIVE), 4, "same term in another category kept");
	is_str(lexicon_category_name(ls, 0), "", "category 0 is none");
	text = "Une chimiotherapie et un CANCER, une depression; medicament maison.";
	ok(lexicon_scan(ls, text, strlen(text), &h) == 0, "scan small set");
	{
		int prefix = 0, cancer_cats = 0, dep = 0, maison = 0;
		for (size_t i = 0; i < h.n; i++) {
			const struct lexicon_hit *x = &h.v[i];
			const char *t = lexicon_term(ls, x->lex, x->term);
			const char *cat = lexicon_category_name(ls, x->category);
			if (!strcmp(t, "chimioth") && x->end - x->start == strlen("chimiotherapie"))
				prefix = 1;
			if (!strcmp(t, "cancer"))
				cancer_cats |= 1 << (strcmp(cat, "oncology") == 0);
			if (!strcmp(t, "depression") && !strcmp(cat, "mental-health"))
				dep = 1;
			if (!strcmp(t, "medicament-maison"))
				maison = 1;
		}
		ok(prefix, "prefix term chimioth* covers the whole word");
		is_int(cancer_cats, 3, "cancer found with and without its category");
		ok(dep, "category name trimmed: mental-health");
		ok(maison, "hyphen in a term matches a space in the text");
	}
	lexicon_hits_free(&h);
	lexicon_free(ls);

	/* errors */
	minimal_set();
	write_file("lab.txt", "glycemie\n\n[  ]\n");
	load_fails("empty category", "lab.txt:3: empty category name");
	minimal_set();
	write_file("lab.txt", "[oncology\n");
	load_fails("unterminated category", "lab.txt:1: category: missing ']'");
	minimal_set();
	write_file("lab.txt", "[bad name!]\n");
	load_fails("category name characters", "lab.txt:1: category name");
	minimal_set();
	write_file("imaging.txt", "ok\ntomo*graphie\n");
	load_fails("'*' inside a term", "imaging.txt:2: '*' is only allowed at the end");
	minimal_set();
	write_file("imaging.txt", "*\n");
	load_fails("'*' alone", "imaging.txt:1: '*' alone is not a term");
	minimal_set();
	write_file("order.txt", "ok\n---\n");
	load_fails("no letter", "order.txt:2: term without a letter or digit");
	minimal_set();
	write_file("context.txt", "ok\nx'*\n");
	load_fails("prefix after punctuation", "context.txt:2: '*' must follow a letter or digit");
	minimal_set();
	{
		char path[512];
		FILE *f;
		snprintf(path, sizeof(path), "%s/clinical.txt", tmpdir);
		f = fopen(path, "w");
		if (f) {
			fwrite("ok\nbad\0term\n", 1, 12, f);
			fclose(f);
		}
	}
	load_fails("NUL byte", "clinical.txt:2: NUL byte");
	minimal_set();
	remove_file("documents.txt");
	load_fails("missing file", "documents.txt: No such file");
	minimal_set();
	{
		char big[40 * 16 + 1];
		big[0] = '\0';
		for (int i = 0; i < 32; i++) {
			char line[16];
			snprintf(line, sizeof(line), "[c%d]\n", i);
			strcat(big, line);
		}
		write_file("sensitive.txt", big);
	}
	load_fails("too many categories", "sensitive.txt:32: too many categories");

	/* clean up */
	for (int l = 0; l < LEX_COUNT; l++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.txt", lexicon_name((enum lexicon_id)l));
		remove_file(name);
		snprintf(name, sizeof(name), "%s.local.txt", lexicon_name((enum lexicon_id)l));
		remove_file(name);
	}
	rmdir(tmpdir);
}

static void test_shipped(void)
{
	char err[512] = "";
	struct lexicon_hits h = {0};
	const char *text;

	L = lexicon_load(shipped, err, sizeof(err));
	if (!ok(L != NULL, "shipped lexicons load from %s %s", shipped, err))
		exit(done_testing());
	for (int l = 0; l < LEX_COUNT; l++)
		diag("%-10s %5zu terms", lexicon_name((enum lexicon_id)l),
		     lexicon_size(L, (enum lexicon_id)l));
	ok(lexicon_size(L, LEX_DRUG) >= 600, "at least 600 drug names (%zu)",
	   lexicon_size(L, LEX_DRUG));
	for (int l = 0; l < LEX_COUNT; l++)
		ok(lexicon_size(L, (enum lexicon_id)l) >= 40, "%s is not empty",
		   lexicon_name((enum lexicon_id)l));
	is_str(lexicon_name(LEX_DOCUMENT), "documents", "lexicon_name");
	ok(lexicon_name(LEX_COUNT) == NULL, "lexicon_name out of range");
	ok(lexicon_term(L, LEX_DRUG, 1u << 30) == NULL, "lexicon_term out of range");
	ok(lexicon_category_name(L, 99) == NULL, "category out of range");

	/* drugs, French and English, brands, any case */
	hit("Aspirine 80 mg 1 co po ID", LEX_DRUG, "aspirine", "Aspirine");
	hit("prendre de l'ACETAMINOPHENE au besoin", LEX_DRUG, "acetaminophene", "ACETAMINOPHENE");
	hit("acetaminophen 500 mg", LEX_DRUG, "acetaminophen", "acetaminophen");
	hit("Tylenol extra fort", LEX_DRUG, "tylenol", "Tylenol");
	hit("amoxicilline-clavulanate 875 mg", LEX_DRUG, "amoxicilline-clavulanate",
	    "amoxicilline-clavulanate");
	hit("amoxicilline clavulanate 875 mg", LEX_DRUG, "amoxicilline-clavulanate",
	    "amoxicilline clavulanate");
	hit("debuter Ozempic 0,25 mg", LEX_DRUG, "ozempic", "Ozempic");
	hit("Eliquis 5 mg bid", LEX_DRUG, "eliquis", "Eliquis");
	hit("insuline glargine 10 unites", LEX_DRUG, "insuline glargine", "insuline glargine");
	hit("vaccin Shingrix recu", LEX_DRUG, "shingrix", "Shingrix");
	miss("aspirines", LEX_DRUG, "aspirine");
	miss("l'aspirateur est brise", LEX_DRUG, "aspirine");

	/* imaging, lab */
	hit("RX pulmonaire demandee", LEX_IMAGING, "rx pulmonaire", "RX pulmonaire");
	hit("une echographie abdominale", LEX_IMAGING, "echographie abdominale",
	    "echographie abdominale");
	hit("TDM cerebrale", LEX_IMAGING, "tdm", "TDM");
	hit("IRM du genou gauche", LEX_IMAGING, "irm du genou", "IRM du genou");
	hit("PET-scan", LEX_IMAGING, "pet scan", "PET-scan");
	hit("FSC, glycemie a jeun, HbA1c", LEX_LAB, "glycemie a jeun", "glycemie a jeun");
	hit("FSC, glycemie a jeun, HbA1c", LEX_LAB, "hba1c", "HbA1c");
	hit("doser la beta HCG", LEX_LAB, "beta-hcg", "beta HCG");
	hit("insuline-glargine", LEX_DRUG, "insuline glargine", "insuline-glargine");
	hit("formule sanguine complete", LEX_LAB, "formule sanguine complete",
	    "formule sanguine complete");

	/* sensitive categories */
	text = "Suivi en oncologie pour metastases hepatiques; idees suicidaires; VIH; deuil.";
	ok(lexicon_scan(L, text, strlen(text), &h) == 0, "scan sensitive text");
	{
		unsigned seen = 0;
		const char *want[] = {"oncology", "mental-health", "sti", "emotional"};
		for (size_t i = 0; i < h.n; i++)
			for (int k = 0; k < 4; k++)
				if (h.v[i].lex == LEX_SENSITIVE &&
				    !strcmp(lexicon_category_name(L, h.v[i].category), want[k]))
					seen |= 1u << k;
		is_int(seen, 15, "oncology, mental-health, sti and emotional categories found");
	}
	lexicon_hits_free(&h);
	hit("Suivi en oncologie", LEX_SENSITIVE, "oncolog", "oncologie");
	hit("des metastases", LEX_SENSITIVE, "metastase", "metastases");

	/* order, documents, context, clinical */
	hit("Ordonnance pour Mme Test", LEX_ORDER, "ordonnance", "Ordonnance");
	hit("Ren. 24 mois", LEX_ORDER, "ren.", "Ren.");
	hit("formulaire d'assurance invalidite", LEX_DOCUMENT, "formulaire d'assurance",
	    "formulaire d'assurance");
	hit("Voici une note pour votre patiente", LEX_CONTEXT, "votre patiente", "votre patiente");
	hit("douleur thoracique depuis hier", LEX_CLINICAL, "douleur thoracique",
	    "douleur thoracique");

	/* ordinary administrative mail: no clinical or order words */
	text = "Bonjour a tous, la reunion du comite aura lieu mardi a 10 h. Les patients "
	       "et visiteurs sont invites a la fete de fin d'annee. Merci de confirmer l'horaire "
	       "et le budget avant vendredi. Il y a beaucoup a faire in order to be ready.";
	is_int((long)count_lex(text, LEX_CLINICAL), 0, "administrative mail: no clinical term");
	is_int((long)count_lex(text, LEX_ORDER), 0, "administrative mail: no order term");
	is_int((long)count_lex(text, LEX_DRUG), 0, "administrative mail: no drug name");

	/* bytes >= 0x80 are not word characters; NUL bytes are just bytes */
	{
		static const char odd[] = "x\xce\xbc"
		                          "aspirine\xc3\0ASPIRINE";
		size_t n = sizeof(odd) - 1, drugs = 0;
		ok(lexicon_scan(L, odd, n, &h) == 0, "scan with NUL and non-ASCII bytes");
		for (size_t i = 0; i < h.n; i++)
			drugs += h.v[i].lex == LEX_DRUG;
		is_int((long)drugs, 2, "both terms next to non-ASCII and NUL bytes found");
		lexicon_hits_free(&h);
	}
	/* short abbreviations need ASCII space or punctuation around them */
	hit("Hb: 120 g/L", LEX_LAB, "hb", "Hb");
	hit("(CK) normale", LEX_LAB, "ck", "CK");
	miss("\xef\xbf\xbdHb\xef\xbf\xbd", LEX_LAB, "hb");
	miss("\x01"
	     "CK\x02",
	     LEX_LAB, "ck");
	hit("\xef\xbf\xbd"
	    "aspirine\xef\xbf\xbd",
	    LEX_DRUG, "aspirine", "aspirine");
	ok(lexicon_scan(L, "", 0, &h) == 0 && h.n == 0, "empty text");
	ok(lexicon_scan(NULL, "x", 1, &h) == -1, "NULL set refused");
}

/* ---- threads: each scan takes its own scratch ---- */

struct job {
	const char *text;
	size_t want;
	int bad;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	for (int r = 0; r < 200; r++) {
		struct lexicon_hits h = {0};
		if (lexicon_scan(L, j->text, strlen(j->text), &h) != 0 || h.n != j->want)
			j->bad++;
		lexicon_hits_free(&h);
	}
	return NULL;
}

static void test_threads(void)
{
	const char *text = "La patiente prend de l'aspirine et du Lipitor; TDM et FSC demandees; "
	                   "suivi en oncologie; ordonnance de laboratoire.";
	struct lexicon_hits h = {0};
	struct job jobs[4];
	pthread_t th[4];
	int bad = 0;

	lexicon_scan(L, text, strlen(text), &h);
	for (int i = 0; i < 4; i++) {
		jobs[i].text = text;
		jobs[i].want = h.n;
		jobs[i].bad = 0;
		pthread_create(&th[i], NULL, worker, &jobs[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += jobs[i].bad;
	}
	ok(h.n >= 6 && bad == 0, "4 threads x 200 scans give the same %zu hits", h.n);
	lexicon_hits_free(&h);
}

/* ---- throughput ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "r"), *out;
	char buf[8192];
	size_t n;

	if (!in)
		return -1;
	out = fopen(to, "w");
	if (!out) {
		fclose(in);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	return fclose(out);
}

static void test_speed(void)
{
	static const char *para[] = {
	    "Le choix d'un outil pour la teleconsultation est important. Celui-ci doit permettre "
	    "au medecin d'obtenir les informations necessaires a sa demarche clinique. ",
	    "La reunion du comite de direction aura lieu le 12 mars de 10 h a 11 h 30 a la salle "
	    "2. Le budget de 500 $ a ete approuve. Merci de confirmer votre presence. ",
	    "Ordonnance pour Mme Test Covid. Aspirine 80 mg 1 co po ID 30 cos Ren 24 mois. "
	    "Glycemie a jeun, FSC et bilan lipidique. Echographie abdominale a prevoir. ",
	    "Nous avons vu votre patiente a l'urgence pour une douleur thoracique; troponine "
	    "negative, ECG normal. Suivi en cardiologie et ajustement du metoprolol. ",
	};
	char dir[256], from[1200], to[1200], err[512] = "";
	size_t n = 1 << 20, len = 0, nterms = 0;
	char *text = malloc(n + 1);
	struct lexicon_set *big;
	struct lexicon_hits h = {0};
	FILE *f;
	unsigned seed = 12345;
	double t0, dt;
	int reps = 20;

	snprintf(dir, sizeof(dir), "/tmp/test_lexicon_big.%d", (int)getpid());
	mkdir(dir, 0700);
	for (int l = 0; l < LEX_COUNT; l++) {
		snprintf(from, sizeof(from), "%s/%s.txt", shipped,
		         lexicon_name((enum lexicon_id)l));
		snprintf(to, sizeof(to), "%s/%s.txt", dir, lexicon_name((enum lexicon_id)l));
		copy_file(from, to);
	}
	/* 5,000 extra drug-like names: syllables from a fixed pseudo-random sequence */
	snprintf(to, sizeof(to), "%s/drugs.local.txt", dir);
	f = fopen(to, "w");
	if (f) {
		static const char *syl[] = {"ba",  "cor", "dex", "fi",  "ga", "lo", "mab", "ne",
		                            "pra", "qui", "ri",  "sol", "ta", "vo", "xa",  "zo"};
		for (int i = 0; i < 5000; i++) {
			int k = 3 + (int)(seed % 3);
			for (int j = 0; j < k; j++) {
				seed = seed * 1103515245u + 12345u;
				fputs(syl[(seed >> 16) % 16], f);
			}
			fprintf(f, "%s\n", i % 10 == 0 ? " forte" : "");
		}
		fclose(f);
	}
	t0 = now();
	big = lexicon_load(dir, err, sizeof(err));
	dt = now() - t0;
	if (!ok(big != NULL, "shipped lexicons + 5,000 terms load %s", err))
		goto out;
	for (int l = 0; l < LEX_COUNT; l++)
		nterms += lexicon_size(big, (enum lexicon_id)l);
	diag("lexicon_load: %zu terms (%zu drugs) compiled in %.2f s", nterms,
	     lexicon_size(big, LEX_DRUG), dt);

	for (size_t i = 0; len < n; i++) {
		size_t k = strlen(para[i % 4]);
		if (len + k > n)
			k = n - len;
		memcpy(text + len, para[i % 4], k);
		len += k;
	}
	text[len] = '\0';
	lexicon_scan(big, text, len, &h);
	ok(h.n > 1000, "1 MiB text: %zu hits", h.n);
	lexicon_hits_free(&h);
	/* best of several runs: the machine may be busy with other work */
	dt = 1e9;
	for (int r = 0; r < reps; r++) {
		double one;
		t0 = now();
		lexicon_scan(big, text, len, &h);
		one = now() - t0;
		lexicon_hits_free(&h);
		if (one < dt)
			dt = one;
	}
	diag("lexicon_scan: 1 MiB French text, %zu terms, in %.2f ms (%.0f MB/s)", nterms, dt * 1e3,
	     len / dt / 1e6);
	lexicon_free(big);
out:
	for (int l = 0; l < LEX_COUNT; l++) {
		snprintf(to, sizeof(to), "%s/%s.txt", dir, lexicon_name((enum lexicon_id)l));
		unlink(to);
	}
	snprintf(to, sizeof(to), "%s/drugs.local.txt", dir);
	unlink(to);
	rmdir(dir);
	free(text);
}

int main(void)
{
	const char *src = getenv("top_srcdir");
	if (!src)
		src = ".";
	snprintf(shipped, sizeof(shipped), "%s/policies/lexicons", src);

	test_files();
	test_shipped();
	test_threads();
	if (!getenv("CLINIMAIL_NO_BENCH"))
		test_speed();
	lexicon_free(L);
	return done_testing();
}
