/*
 * content_class.c — decide what a message is about (content classes) and,
 * for a medication order, which mandatory fields it carries, from the
 * normalized text segments, the lexicon hits and the detector findings.
 * The semantics are written down in doc/policy-semantics.md; keep both in
 * step.  Pure computation: no I/O, nothing logged.
 */
#include "autoconfig.h"

#include "content_class.h"
#include "config.h"
#include "directory.h"
#include "mime_text.h"
#include "normalize.h"
#include "policy.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Inline images above this size are photos, not signature logos. */
#define INLINE_LOGO_MAX 50000
/* How far (bytes of normalized text) a phone number is tied to the block before it. */
#define ANCHOR_SPAN 250

static const char *const field_fr[OF_COUNT] = {
    [OF_RCPT_NAME] = "nom du destinataire (pharmacie)",
    [OF_RCPT_FAX] = "télécopieur du destinataire",
    [OF_RCPT_PHONE] = "téléphone du destinataire",
    [OF_SENDER_NAME] = "nom et prénom du prescripteur",
    [OF_SENDER_LICENCE] = "numéro de permis ou de prescripteur",
    [OF_SENDER_PHONE] = "téléphone où joindre le prescripteur",
    [OF_PATIENT_NAME] = "nom et prénom de l'usager",
    [OF_PATIENT_DOB] = "date de naissance de l'usager",
    [OF_PATIENT_NAM_OR_ALT] = "NAM de l'usager (ou nom de la mère ou du père, adresse, téléphone)",
    [OF_PATIENT_FILE_NO] = "numéro de dossier de l'usager",
    [OF_TELECONSULT] = "mention TÉLÉCONSULTATION",
};

static const char *const field_en[OF_COUNT] = {
    [OF_RCPT_NAME] = "recipient name (pharmacy)",
    [OF_RCPT_FAX] = "recipient fax number",
    [OF_RCPT_PHONE] = "recipient phone number",
    [OF_SENDER_NAME] = "prescriber's last and first name",
    [OF_SENDER_LICENCE] = "licence or prescriber number",
    [OF_SENDER_PHONE] = "phone number where the prescriber can be reached",
    [OF_PATIENT_NAME] = "patient's last and first name",
    [OF_PATIENT_DOB] = "patient's date of birth",
    [OF_PATIENT_NAM_OR_ALT] =
        "patient's health insurance number (NAM) (or mother's or father's name, address, phone)",
    [OF_PATIENT_FILE_NO] = "patient's file number",
    [OF_TELECONSULT] = "the mention TELECONSULTATION",
};

const char *order_field_fr(enum order_field f)
{
	return (unsigned)f < OF_COUNT ? field_fr[f] : "?";
}

const char *order_field_en(enum order_field f)
{
	return (unsigned)f < OF_COUNT ? field_en[f] : "?";
}

/* Everything found in one segment. */
struct seg_scan {
	const struct text_seg *seg;
	struct lexicon_hits hits;
	struct findings finds;
};

static int seg_has_kind(const struct seg_scan *s, enum finding_kind k)
{
	for (size_t i = 0; i < s->finds.n; i++)
		if (s->finds.v[i].kind == k)
			return 1;
	return 0;
}

static int seg_has_lex(const struct seg_scan *s, enum lexicon_id lex)
{
	for (size_t i = 0; i < s->hits.n; i++)
		if (s->hits.v[i].lex == lex)
			return 1;
	return 0;
}

static int in_body(const struct seg_scan *s)
{
	return s->seg->origin == TXT_SUBJECT || s->seg->origin == TXT_BODY;
}

/*
 * Binary junk decoded as text (a mislabelled attachment, random bytes) is
 * letter soup in which short abbreviations and number patterns turn up by
 * chance.  Windows of a segment where fewer than 40% of the tokens of three
 * bytes or more look like words or numbers are "junk": what is found there
 * is ignored.  Natural text, tables of results and signatures stay well above.
 */
#define QUALITY_WINDOW 400
#define QUALITY_MIN_TOKENS 6

static int token_wordlike(const char *t, size_t n)
{
	size_t i = 0, letters = 0, upper_inner = 0, digits = 0, other = 0;

	while (i < n && strchr("(\"'[", t[i]))
		i++;
	while (n > i && strchr(".,;:!?)\"']", t[n - 1]))
		n--;
	if (i >= n)
		return 1;
	for (size_t j = i; j < n; j++) {
		unsigned char c = (unsigned char)t[j];
		if (isalpha(c)) {
			letters++;
			if (j > i && isupper(c) && !isupper((unsigned char)t[j - 1]))
				upper_inner++;
		} else if (isdigit(c)) {
			digits++;
		} else if (!strchr("-'./():", c)) {
			other++;
		}
	}
	if (other)
		return 0;
	if (letters && !digits)
		return upper_inner == 0;
	if (digits && !letters)
		return 1;
	return 0; /* mixed letters and digits: identifiers are rare, junk is common */
}

/* Mark the junk windows of a segment: junk[k] for window k. */
static unsigned char *junk_windows(const char *text, size_t len, size_t *nwin)
{
	size_t n = len / QUALITY_WINDOW + 1;
	unsigned char *junk = xcalloc(n, 1);
	size_t tokens[2] = {0, 0}; /* counted, wordlike */
	size_t win = 0, i = 0;

	while (i <= len) {
		size_t k = i / QUALITY_WINDOW;
		if (k != win || i == len) {
			if (tokens[0] >= QUALITY_MIN_TOKENS && tokens[1] * 10 < tokens[0] * 4)
				junk[win] = 1;
			tokens[0] = tokens[1] = 0;
			win = k;
			if (i == len)
				break;
		}
		if (text[i] == ' ') {
			i++;
			continue;
		}
		size_t start = i;
		while (i < len && text[i] != ' ')
			i++;
		if (i - start >= 3) {
			tokens[0]++;
			tokens[1] += token_wordlike(text + start, i - start) != 0;
		}
	}
	*nwin = n;
	return junk;
}

static void drop_junk(struct seg_scan *s)
{
	size_t nwin, k = 0;
	unsigned char *junk = junk_windows(s->seg->text, s->seg->len, &nwin);
	int any = 0;

	for (size_t w = 0; w < nwin; w++)
		any |= junk[w];
	if (any) {
		for (size_t j = 0; j < s->hits.n; j++)
			if (!junk[s->hits.v[j].start / QUALITY_WINDOW])
				s->hits.v[k++] = s->hits.v[j];
		s->hits.n = k;
		k = 0;
		for (size_t j = 0; j < s->finds.n; j++)
			if (!junk[s->finds.v[j].start / QUALITY_WINDOW])
				s->finds.v[k++] = s->finds.v[j];
		s->finds.n = k;
	}
	free(junk);
}

enum anchor { ANCHOR_NONE, ANCHOR_RCPT, ANCHOR_SENDER, ANCHOR_PATIENT };

/* Which block a phone number belongs to: the nearest block marker before it. */
static enum anchor phone_anchor(const struct seg_scan *s, const struct finding *ph)
{
	enum anchor best = ANCHOR_NONE;
	size_t best_pos = 0;
	int found = 0;

	for (size_t i = 0; i < s->finds.n; i++) {
		const struct finding *f = &s->finds.v[i];
		enum anchor a;
		switch (f->kind) {
		case F_PHARMACY:
			a = ANCHOR_RCPT;
			break;
		case F_PRESCRIBER:
		case F_LICENCE:
		case F_CONTACT_CUE:
		case F_PROFESSION:
			a = ANCHOR_SENDER;
			break;
		case F_PATIENT_NAME:
		case F_NAM:
		case F_DOB:
		case F_FILE_NO:
		case F_PARENT_NAME:
			a = ANCHOR_PATIENT;
			break;
		default:
			continue;
		}
		size_t pos = f->kind == F_CONTACT_CUE ? f->end : f->start;
		if (pos > ph->start || ph->start - pos > ANCHOR_SPAN)
			continue;
		if (!found || pos >= best_pos) {
			best = a;
			best_pos = pos;
			found = 1;
		}
	}
	return best;
}

/* Does the From display name (two words or more) appear in the segment? */
static int display_name_in(const char *display, const struct seg_scan *s)
{
	if (display == NULL || strchr(display, ' ') == NULL || strlen(display) < 5)
		return 0;
	return strcasestr(s->seg->text, display) != NULL;
}

static void order_fields(const struct cm_config *cfg, struct seg_scan *scans, size_t n,
                         const char *from_display, struct content_analysis *ca)
{
	unsigned have = 0;
	char *display =
	    from_display ? text_normalize(from_display, strlen(from_display), NULL) : NULL;
	int ah_form = 0;

	(void)cfg;
	for (size_t i = 0; i < n; i++) {
		struct seg_scan *s = &scans[i];
		int body = in_body(s);
		for (size_t j = 0; j < s->finds.n; j++) {
			const struct finding *f = &s->finds.v[j];
			switch (f->kind) {
			case F_PHARMACY:
				if (body)
					have |= 1u << OF_RCPT_NAME;
				break;
			case F_FAX:
				if (body)
					have |= 1u << OF_RCPT_FAX;
				break;
			case F_PRESCRIBER:
				if (body)
					have |= 1u << OF_SENDER_NAME;
				break;
			case F_LICENCE:
				if (body)
					have |= 1u << OF_SENDER_LICENCE;
				break;
			case F_PATIENT_NAME:
			case F_PERSON:
				have |= 1u << OF_PATIENT_NAME;
				break;
			case F_DOB:
				have |= 1u << OF_PATIENT_DOB;
				break;
			case F_NAM:
			case F_PARENT_NAME:
			case F_ADDRESS:
				have |= 1u << OF_PATIENT_NAM_OR_ALT;
				break;
			case F_FILE_NO:
				have |= 1u << OF_PATIENT_FILE_NO;
				break;
			case F_TELECONSULT:
				have |= 1u << OF_TELECONSULT;
				break;
			case F_FORM_AH:
				ah_form = 1;
				break;
			case F_PHONE: {
				enum anchor a = phone_anchor(s, f);
				if (a == ANCHOR_RCPT && body)
					have |= 1u << OF_RCPT_PHONE;
				else if (a == ANCHOR_SENDER && body)
					have |= 1u << OF_SENDER_PHONE;
				else if (a == ANCHOR_PATIENT)
					have |= 1u << OF_PATIENT_NAM_OR_ALT;
				break;
			}
			default:
				break;
			}
		}
		if (body && display_name_in(display, s))
			have |= 1u << OF_SENDER_NAME;
	}
	/* Phones with no block before them fill what is still missing, recipient first. */
	for (size_t i = 0; i < n; i++) {
		struct seg_scan *s = &scans[i];
		if (!in_body(s))
			continue;
		for (size_t j = 0; j < s->finds.n; j++) {
			const struct finding *f = &s->finds.v[j];
			if (f->kind != F_PHONE || phone_anchor(s, f) != ANCHOR_NONE)
				continue;
			if (!(have & (1u << OF_RCPT_PHONE)))
				have |= 1u << OF_RCPT_PHONE;
			else if (!(have & (1u << OF_SENDER_PHONE)))
				have |= 1u << OF_SENDER_PHONE;
		}
	}
	if (!ah_form)
		have |= 1u << OF_TELECONSULT;
	ca->missing_fields = ~have & ((1u << OF_COUNT) - 1);
	free(display);
}

/* A fax number to suggest in the fix: a directory pharmacy named in the text, else a fax written
 * there. */
static void find_fax_hint(const struct cm_config *cfg, struct seg_scan *scans, size_t n,
                          struct content_analysis *ca)
{
	for (size_t i = 0; i < n && !ca->fax_hint[0]; i++) {
		struct seg_scan *s = &scans[i];
		for (size_t j = 0; j < s->finds.n; j++) {
			const struct finding *f = &s->finds.v[j];
			if (f->kind != F_PHARMACY || f->end <= f->start || f->end - f->start > 120)
				continue;
			char *name = xstrndup(s->seg->text + f->start, f->end - f->start);
			const struct org_entry *org = dir_pharmacy_by_name(cfg->dirs, name);
			free(name);
			if (org && org->nfaxes) {
				snprintf(ca->fax_hint, sizeof(ca->fax_hint), "%.15s",
				         org->faxes[0]);
				break;
			}
		}
	}
	for (size_t i = 0; i < n && !ca->fax_hint[0]; i++)
		for (size_t j = 0; j < scans[i].finds.n; j++)
			if (scans[i].finds.v[j].kind == F_FAX) {
				snprintf(ca->fax_hint, sizeof(ca->fax_hint), "%.15s",
				         scans[i].finds.v[j].value);
				break;
			}
}

/* "[EXCEPTION: reason]" in the Subject (already normalized). */
static char *subject_exception(const char *subject)
{
	const char *p = subject ? strcasestr(subject, "[exception") : NULL;
	const char *colon, *close;

	if (p == NULL)
		return NULL;
	colon = strchr(p, ':');
	close = strchr(p, ']');
	if (colon == NULL || close == NULL || colon > close)
		return NULL;
	char *reason = xstrndup(colon + 1, (size_t)(close - colon - 1));
	char *t = str_trim(reason);
	if (strlen(t) < 3) {
		free(reason);
		return NULL;
	}
	memmove(reason, t, strlen(t) + 1);
	return reason;
}

/* For `clinimail check --explain`: the distinct terms and finding kinds, per segment origin. */
static void explain_matches(const struct cm_config *cfg, const struct seg_scan *scans, size_t n,
                            struct strbuf *sb)
{
	static const char *const origin[] = {"subject", "body", "attachment", "forwarded"};
	for (size_t i = 0; i < n; i++) {
		const struct seg_scan *s = &scans[i];
		if (s->hits.n == 0 && s->finds.n == 0)
			continue;
		sb_printf(sb, "segment %zu (%s, %zu bytes):\n", i,
		          (unsigned)s->seg->origin < 4 ? origin[s->seg->origin] : "?", s->seg->len);
		for (size_t j = 0; j < s->hits.n; j++) {
			const struct lexicon_hit *h = &s->hits.v[j];
			sb_printf(sb, "  lexicon %s: %s\n", lexicon_name(h->lex),
			          lexicon_term(cfg->lex, h->lex, h->term));
		}
		for (size_t j = 0; j < s->finds.n; j++)
			sb_printf(sb, "  finding %s%s at %zu\n",
			          finding_kind_name(s->finds.v[j].kind),
			          (s->finds.v[j].flags & FF_CONFIDENT) ? " (confident)" : "",
			          s->finds.v[j].start);
	}
}

int content_analyse(const struct cm_config *cfg, const struct msg_content *mc,
                    const char *from_display, struct content_analysis *out)
{
	struct seg_scan *scans = xcalloc(mc->nsegs ? mc->nsegs : 1, sizeof(*scans));
	unsigned char *seen[LEX_COUNT] = {0};
	int score = 0, rc = 0;
	int posology = 0, drug = 0, order_word = 0, imaging = 0, lab = 0, document = 0;
	int dispense = 0, licence = 0;
	int context = 0, age = 0, patient_sig = 0, prescriber_sig = 0;
	int nam = 0, dob = 0, file_no = 0, person = 0;

	struct strbuf *explain = out->explain;
	memset(out, 0, sizeof(*out));
	out->explain = explain;
	for (int l = 0; l < LEX_COUNT; l++)
		seen[l] = xcalloc(lexicon_size(cfg->lex, l) + 1, 1);

	for (size_t i = 0; i < mc->nsegs; i++) {
		struct seg_scan *s = &scans[i];
		s->seg = &mc->segs[i];
		if (lexicon_scan(cfg->lex, s->seg->text, s->seg->len, &s->hits) != 0 ||
		    detect_scan(cfg->det, s->seg->text, s->seg->len, &s->finds) != 0) {
			rc = -1;
			goto done;
		}
		drop_junk(s);
		for (size_t j = 0; j < s->hits.n; j++) {
			const struct lexicon_hit *h = &s->hits.v[j];
			switch (h->lex) {
			case LEX_DRUG:
				drug = 1;
				break;
			case LEX_ORDER:
				order_word = 1;
				break;
			case LEX_IMAGING:
				imaging = 1;
				break;
			case LEX_LAB:
				lab = 1;
				break;
			case LEX_DOCUMENT:
				document = 1;
				break;
			case LEX_CONTEXT:
				context = 1;
				break;
			case LEX_SENSITIVE:
				if (h->category > 0 && h->category < 32)
					out->sensitive_cats |= 1u << h->category;
				break;
			default:
				break;
			}
			if ((h->lex == LEX_CLINICAL || h->lex == LEX_SENSITIVE ||
			     h->lex == LEX_DRUG || h->lex == LEX_IMAGING || h->lex == LEX_LAB) &&
			    h->term < lexicon_size(cfg->lex, h->lex) && !seen[h->lex][h->term]) {
				seen[h->lex][h->term] = 1;
				score++;
			}
		}
		for (size_t j = 0; j < s->finds.n; j++) {
			const struct finding *fd = &s->finds.v[j];
			if ((fd->kind == F_NAM || fd->kind == F_DOB || fd->kind == F_FILE_NO) &&
			    fd->value[0] && out->nids < sizeof(out->ids) / sizeof(out->ids[0])) {
				out->ids[out->nids].kind = fd->kind;
				snprintf(out->ids[out->nids].value, sizeof(out->ids[0].value), "%s",
				         fd->value);
				out->nids++;
			}
			switch (fd->kind) {
			case F_NAM:
				nam++;
				break;
			case F_DOB:
				dob++;
				break;
			case F_FILE_NO:
				file_no++;
				break;
			case F_POSOLOGY:
				posology = 1;
				dispense |= (fd->flags & FF_DISPENSE) != 0;
				break;
			case F_PERSON:
			case F_PATIENT_NAME:
			case F_PARENT_NAME:
				person = 1;
				break;
			case F_AGE:
				age = 1;
				break;
			case F_LICENCE:
				licence = 1;
				prescriber_sig = 1;
				break;
			case F_PRESCRIBER:
				prescriber_sig = 1;
				break;
			default:
				break;
			}
		}
	}
	if (explain)
		explain_matches(cfg, scans, mc->nsegs, explain);
	if (context)
		score += 2;
	if (age)
		score += 1;
	patient_sig = nam || dob || file_no || person || context || age;

	/* Identifiers make a message nominative: a NAM alone; a date of birth or a
	   file number only next to a name or some clinical vocabulary. */
	out->nam_count = nam;
	out->identifiers = nam + ((dob || file_no) && (person || score >= 1) ? dob + file_no : 0);
	out->clinical_score = score;

	/* A dose in a letter ("poursuivez la metformine 500 mg deux fois par jour")
	   is not an order: without an order word or a licence number, only a
	   posology written the way prescriptions are (quantity, renewal, form
	   count, duration, shorthand) next to a patient or prescriber makes one. */
	if (posology && (drug || order_word) &&
	    (order_word || licence || (dispense && (patient_sig || prescriber_sig))))
		out->classes |= CC_MED_ORDER;
	if (imaging && order_word && (patient_sig || prescriber_sig))
		out->classes |= CC_IMAGING_ORDER;
	if (lab && order_word && (patient_sig || prescriber_sig))
		out->classes |= CC_LAB_ORDER;
	if (document && (out->identifiers || person || score >= 2))
		out->classes |= CC_DOCUMENT;
	if (out->classes || out->identifiers || score >= cfg->clinical_threshold)
		out->classes |= CC_CLINICAL;
	if ((out->classes & CC_CLINICAL) && out->sensitive_cats)
		out->classes |= CC_SENSITIVE;

	if (out->classes & CC_MED_ORDER)
		order_fields(cfg, scans, mc->nsegs, from_display, out);
	if (out->classes & CC_LAB_ORDER) {
		int phone = 0;
		for (size_t i = 0; i < mc->nsegs && !phone; i++)
			phone = seg_has_kind(&scans[i], F_PHONE);
		out->lab_contact_missing = !phone;
	}
	for (size_t i = 0; i < mc->natts; i++) {
		const struct attachment *a = &mc->atts[i];
		if ((a->flags & ATT_IMAGE) &&
		    !((a->flags & ATT_INLINE_RELATED) && a->size <= INLINE_LOGO_MAX))
			out->has_image_attachment = 1;
		if (a->flags & ATT_PDF_NO_TEXT)
			out->has_scanned_pdf = 1;
	}
	if (out->classes & CC_CLINICAL)
		find_fax_hint(cfg, scans, mc->nsegs, out);
	out->exception_reason = subject_exception(mc->subject);
	(void)seg_has_lex;
done:
	for (size_t i = 0; i < mc->nsegs; i++) {
		lexicon_hits_free(&scans[i].hits);
		findings_free(&scans[i].finds);
	}
	for (int l = 0; l < LEX_COUNT; l++)
		free(seen[l]);
	free(scans);
	return rc;
}

void content_analysis_free(struct content_analysis *ca)
{
	free(ca->exception_reason);
	ca->exception_reason = NULL;
}
