/*
 * test_mime.c — msg_content_extract() on the fixtures in tests/fixtures/mime
 * (one per shape a real client produces), on hostile messages built here
 * (10,000 parts, 2,000-deep nesting, a 1 MB header line, NUL bytes, 8-bit
 * headers, truncation), from several threads at once, plus timing figures.
 */
#include "autoconfig.h"
#include "mime_text.h"
#include "util.h"
#include "tap.h"

#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char *srcdir;
static struct pdf_cache *cache;

static char *slurp(const char *name, size_t *len)
{
	char path[4096];
	FILE *fp;
	struct strbuf sb;
	char buf[8192];
	size_t n;

	snprintf(path, sizeof(path), "%s/tests/fixtures/mime/%s", srcdir, name);
	fp = fopen(path, "rb");
	if (!fp) {
		ok(0, "open fixture %s", path);
		*len = 0;
		return NULL;
	}
	sb_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sb_append(&sb, buf, n);
	fclose(fp);
	*len = sb.len;
	return sb.data ? sb_steal(&sb) : xstrdup("");
}

static struct msg_content *extract_buf(const char *msg, size_t len,
                                       const struct extract_limits *lim)
{
	struct msg_content *mc = NULL;
	char err[256] = "";

	if (msg_content_extract(msg, len, lim, cache, &mc, err, sizeof(err)) != 0 || !mc) {
		ok(0, "extract failed: %s", err);
		return NULL;
	}
	return mc;
}

static struct msg_content *fixture(const char *name)
{
	size_t len;
	char *msg = slurp(name, &len);
	struct msg_content *mc;

	if (!msg)
		return NULL;
	mc = extract_buf(msg, len, NULL);
	free(msg);
	return mc;
}

/* The first segment containing needle (with origin, or any when origin < 0). */
static const struct text_seg *find_seg(const struct msg_content *mc, int origin, const char *needle)
{
	for (size_t i = 0; mc && i < mc->nsegs; i++)
		if ((origin < 0 || (int)mc->segs[i].origin == origin) &&
		    strstr(mc->segs[i].text, needle))
			return &mc->segs[i];
	return NULL;
}

static int has_text(const struct msg_content *mc, int origin, const char *needle)
{
	return find_seg(mc, origin, needle) != NULL;
}

static const struct attachment *find_att(const struct msg_content *mc, const char *ctype)
{
	for (size_t i = 0; mc && i < mc->natts; i++)
		if (strcmp(mc->atts[i].content_type, ctype) == 0)
			return &mc->atts[i];
	return NULL;
}

static int has_addr(const struct msg_content *mc, const char *addr)
{
	for (size_t i = 0; mc && i < mc->nto_cc; i++)
		if (strcmp(mc->to_cc[i], addr) == 0)
			return 1;
	return 0;
}

static void dump(const struct msg_content *mc)
{
	for (size_t i = 0; mc && i < mc->nsegs; i++)
		diag("  seg %zu origin %d depth %d: %.200s", i, (int)mc->segs[i].origin,
		     mc->segs[i].depth, mc->segs[i].text);
	for (size_t i = 0; mc && i < mc->natts; i++)
		diag("  att %zu %s flags 0x%x depth %d size %zu", i, mc->atts[i].content_type,
		     mc->atts[i].flags, mc->atts[i].depth, mc->atts[i].size);
	if (mc)
		diag("  flags 0x%x", mc->flags);
}

static void test_outlook(void)
{
	struct msg_content *mc = fixture("outlook-alternative.eml");
	const struct text_seg *s;

	if (!mc)
		return;
	is_str(mc->subject, "Requete d'imagerie - suivi", "outlook: RFC 2047 windows-1252 subject");
	ok(mc->nsegs >= 3 && mc->segs[0].origin == TXT_SUBJECT &&
	       strcmp(mc->segs[0].text, mc->subject) == 0,
	   "outlook: subject is the first segment");
	s = find_seg(mc, TXT_BODY, "teleconsultation du 12 mars");
	ok(s != NULL, "outlook: QP windows-1252 plain part decoded and folded");
	ok(has_text(mc, TXT_BODY, "la requete d'imagerie"), "outlook: cp1252 apostrophe folded");
	ok(has_text(mc, TXT_BODY, "\" Examen demande \""), "outlook: guillemets folded");
	ok(has_text(mc, TXT_BODY, "Radiographie pulmonaire PA-laterale"),
	   "outlook: word only in the HTML part is found");
	ok(has_text(mc, TXT_BODY, "CIUSSS fictif"), "outlook: &nbsp; entity decoded to a space");
	ok(!has_text(mc, -1, "MsoNormal"), "outlook: style sheet not read as text");
	ok(has_text(mc, TXT_BODY, "Dre Julie Tremblay CIUSSS"), "outlook: <br> gives a space");
	is_str(mc->from_addr, "dr.tremblay@hopital.example", "outlook: From lower-cased");
	is_str(mc->from_display, "Tremblay, Julie (Dre)", "outlook: From display name");
	is_int((long)mc->nfrom, 1, "outlook: one From address");
	is_int((long)mc->nto_cc, 3, "outlook: To + Cc count");
	ok(has_addr(mc, "rendezvous@radio-estrie.example") &&
	       has_addr(mc, "archives@hopital.example") &&
	       has_addr(mc, "radiologie@hopital.example"),
	   "outlook: To/Cc addresses lower-cased");
	is_str(mc->message_id, "0A1B2C3D4E5F@EXCH01.hopital.example",
	       "outlook: Message-ID without <>");
	is_int((long)mc->natts, 0, "outlook: no attachments");
	is_int((long)mc->flags, 0, "outlook: no flags");
	msg_content_free(mc);
}

static void test_related(void)
{
	struct msg_content *mc = fixture("outlook-related-logo.eml");
	const struct attachment *a;

	if (!mc)
		return;
	a = find_att(mc, "image/png");
	ok(a && (a->flags & ATT_IMAGE) && (a->flags & ATT_INLINE_RELATED),
	   "related: signature logo is ATT_IMAGE|ATT_INLINE_RELATED");
	ok(a && a->filename && strcmp(a->filename, "image001.png") == 0, "related: filename");
	ok(a && a->size == 69, "related: decoded size (%zu)", a ? a->size : 0);
	ok(has_text(mc, TXT_BODY, "Rendez-vous confirme pour l'echographie"),
	   "related: base64 UTF-8 plain part");
	is_int((long)mc->flags, 0, "related: no flags");
	msg_content_free(mc);
}

static void test_flowed(void)
{
	struct msg_content *mc = fixture("thunderbird-flowed-delsp.eml");

	if (mc) {
		ok(has_text(mc, TXT_BODY, "Suite a la teleconsultation d'hier"),
		   "flowed delsp=yes: split word rejoined");
		ok(has_text(mc, TXT_BODY, "antihypertenseur"),
		   "flowed delsp=yes: second split word");
		ok(!has_text(mc, TXT_BODY, "telecon sultation"),
		   "flowed delsp=yes: no stray space");
		ok(has_text(mc, TXT_BODY, "> Message cite : merci de me rappeler au poste 1234"),
		   "flowed delsp=yes: quoted flowed lines joined");
		ok(has_text(mc, TXT_BODY, "-- Marie"), "flowed: signature separator kept");
		msg_content_free(mc);
	}
	mc = fixture("thunderbird-flowed.eml");
	if (mc) {
		ok(has_text(mc, TXT_BODY,
		            "presente une fibrillation auriculaire depuis trois jours"),
		   "flowed delsp=no: soft breaks give one space");
		ok(has_text(mc, TXT_BODY, "> Ancien message : resultats normaux"),
		   "flowed delsp=no: quoted lines");
		msg_content_free(mc);
	}
}

static void test_charsets(void)
{
	static const char *const subj[] = {"subj-q-utf8.eml",   "subj-b-utf8.eml",
	                                   "subj-q-latin1.eml", "subj-b-latin1.eml",
	                                   "subj-raw-utf8.eml", "subj-raw-latin1.eml"};
	struct msg_content *mc;

	mc = fixture("qp-latin1.eml");
	if (mc) {
		ok(has_text(mc, TXT_BODY, "Objet : Teleconsultation de suivi, hopital fictif."),
		   "QP latin1: Teleconsultation with a soft break inside the word");
		ok(has_text(mc, TXT_BODY, "Douleur thoracique a l'effort."),
		   "QP latin1: CRLF folded");
		msg_content_free(mc);
	}
	mc = fixture("base64-utf8.eml");
	if (mc) {
		ok(has_text(mc, TXT_BODY, "Resultats de laboratoire : hemoglobine 135 g/L"),
		   "base64 UTF-8 body");
		msg_content_free(mc);
	}
	mc = fixture("unknown-charset.eml");
	if (mc) {
		ok(has_text(mc, TXT_BODY, "Prelevement sanguin a jeun."),
		   "unknown charset read as windows-1252, not dropped");
		msg_content_free(mc);
	}
	for (size_t i = 0; i < sizeof(subj) / sizeof(subj[0]); i++) {
		mc = fixture(subj[i]);
		if (!mc)
			continue;
		is_str(mc->subject, "Teleconsultation de suivi", subj[i]);
		ok(!(mc->flags & MC_NO_SUBJECT), "%s: has a subject", subj[i]);
		msg_content_free(mc);
	}
}

static void test_subject_flags(void)
{
	struct msg_content *mc = fixture("no-subject.eml");

	if (mc) {
		ok(mc->flags & MC_NO_SUBJECT, "no Subject header: MC_NO_SUBJECT");
		is_str(mc->subject, "", "no Subject: empty string");
		ok(mc->nsegs == 1 && mc->segs[0].origin == TXT_BODY,
		   "no Subject: no subject segment");
		msg_content_free(mc);
	}
	mc = fixture("blank-subject.eml");
	if (mc) {
		ok(mc->flags & MC_NO_SUBJECT, "blank Subject: MC_NO_SUBJECT");
		msg_content_free(mc);
	}
	mc = fixture("empty-body.eml");
	if (mc) {
		is_int((long)mc->nsegs, 1, "empty body: only the subject segment");
		is_int((long)mc->flags, 0, "empty body: no flags");
		is_int((long)mc->natts, 0, "empty body: no attachments");
		msg_content_free(mc);
	}
}

static void test_html(void)
{
	struct msg_content *mc = fixture("html-only.eml");

	if (!mc)
		return;
	ok(has_text(mc, TXT_BODY, "Imagerie medicale : Teleconsultation"),
	   "html: <br> is a space, <b> joins, accents folded");
	ok(has_text(mc, TXT_BODY, "Examen Scintigraphie osseuse"), "html: table cells separated");
	ok(has_text(mc, TXT_BODY, "Cafe & the <ok>"), "html: entities decoded");
	ok(has_text(mc, TXT_BODY, "un deux"), "html: list items separated");
	ok(!has_text(mc, -1, "MotDeScript") && !has_text(mc, -1, "MotDeStyle") &&
	       !has_text(mc, -1, "TitreCache") && !has_text(mc, -1, "CommentaireCache"),
	   "html: script, style, head and comments skipped");
	msg_content_free(mc);
}

static void test_forwarded(void)
{
	struct msg_content *mc = fixture("forwarded-rfc822.eml");
	const struct text_seg *s;
	const struct attachment *a;

	if (!mc)
		return;
	ok(has_text(mc, TXT_BODY, "Voir le message transfere."), "fwd: outer body");
	s = find_seg(mc, TXT_FORWARDED, "Ordonnance a transmettre");
	ok(s && s->depth == 1, "fwd: inner Subject is a TXT_FORWARDED segment at depth 1");
	s = find_seg(mc, TXT_FORWARDED, "Prednisone 20 mg");
	ok(s && s->depth == 1, "fwd: inner body at depth 1");
	a = find_att(mc, "application/pdf");
	ok(a && (a->flags & ATT_PDF) && !(a->flags & ATT_PDF_NO_TEXT) && a->depth == 1,
	   "fwd: inner PDF listed at depth 1 with a text layer");
	s = find_seg(mc, TXT_FORWARDED, "Teleconsultation du 2024-03-12");
	ok(s && s->depth == 1, "fwd: inner PDF text found");
	is_int((long)mc->flags, 0, "fwd: no flags");
	ok(mc->nto_cc == 1 && has_addr(mc, "dr.tremblay@hopital.example"),
	   "fwd: inner To not mixed into the top-level To");
	msg_content_free(mc);
}

static void test_pdf(void)
{
	struct msg_content *mc;
	const struct attachment *a;
	unsigned long h0, h1, m0, m1;

	pdf_cache_stats(cache, &h0, &m0, NULL);
	mc = fixture("pdf-text.eml");
	if (mc) {
		a = find_att(mc, "application/pdf");
		ok(a && a->flags == ATT_PDF, "pdf: ATT_PDF only (flags 0x%x)", a ? a->flags : 0);
		ok(a && a->filename && strcmp(a->filename, "ordonnance.pdf") == 0, "pdf: filename");
		ok(has_text(mc, TXT_ATTACHMENT, "Teleconsultation du 2024-03-12"),
		   "pdf: text layer found, WinAnsi e-acute folded");
		ok(has_text(mc, TXT_ATTACHMENT, "Amoxicilline 500 mg"), "pdf: drug line found");
		msg_content_free(mc);
	}
	pdf_cache_stats(cache, &h1, &m1, NULL);
	mc = fixture("pdf-text.eml");
	if (mc) {
		ok(has_text(mc, TXT_ATTACHMENT, "Amoxicilline 500 mg"),
		   "pdf: text again from cache");
		msg_content_free(mc);
	}
	{
		unsigned long h2, m2;
		pdf_cache_stats(cache, &h2, &m2, NULL);
		ok(h2 == h1 + 1 && m2 == m1, "pdf cache: second extraction is a hit (%lu/%lu)", h2,
		   m2);
	}
	(void)h0;
	(void)m0;

	mc = fixture("pdf-scan.eml");
	if (mc) {
		a = find_att(mc, "application/pdf");
		ok(a && (a->flags & ATT_PDF) && (a->flags & ATT_PDF_NO_TEXT),
		   "scan: ATT_PDF|ATT_PDF_NO_TEXT");
		ok(!has_text(mc, TXT_ATTACHMENT, ""), "scan: no attachment text");
		msg_content_free(mc);
	}
	mc = fixture("pdf-encrypted.eml");
	if (mc) {
		a = find_att(mc, "application/pdf");
		ok(a && (a->flags & ATT_ENCRYPTED), "encrypted pdf: ATT_ENCRYPTED");
		ok(!(mc->flags & MC_ENCRYPTED), "encrypted pdf: the message itself is not");
		msg_content_free(mc);
	}
	mc = fixture("octet-pdf.eml");
	if (mc) {
		a = find_att(mc, "application/octet-stream");
		ok(a && (a->flags & ATT_PDF), "octet-stream .pdf: ATT_PDF");
		ok(a && a->filename && strcmp(a->filename, "Ordonnance 2024-03-12.pdf") == 0,
		   "octet-stream .pdf: RFC 2231 filename decoded");
		ok(has_text(mc, TXT_ATTACHMENT, "Amoxicilline"), "octet-stream .pdf: text found");
		msg_content_free(mc);
	}
	{
		struct extract_limits lim;
		size_t len;
		char *msg = slurp("pdf-three-pages.eml", &len);
		extract_limits_default(&lim);
		lim.max_pdf_pages = 2;
		mc = msg ? extract_buf(msg, len, &lim) : NULL;
		if (mc) {
			ok(has_text(mc, TXT_ATTACHMENT, "Page deux"), "pdf pages: page 2 read");
			ok(!has_text(mc, -1, "Zyxwvutsrq"), "pdf pages: page 3 beyond the limit");
			ok(mc->flags & MC_TEXT_TRUNCATED, "pdf pages: MC_TEXT_TRUNCATED");
			msg_content_free(mc);
		}
		extract_limits_default(&lim);
		mc = msg ? extract_buf(msg, len, &lim) : NULL;
		if (mc) {
			ok(has_text(mc, TXT_ATTACHMENT, "Zyxwvutsrq"),
			   "pdf pages: other limit, not served from the cache");
			msg_content_free(mc);
		}
		free(msg);
	}
}

static void test_images_and_text_attachments(void)
{
	struct msg_content *mc = fixture("jpeg-attachment.eml");
	const struct attachment *a;

	if (mc) {
		a = find_att(mc, "image/jpeg");
		ok(a && a->flags == ATT_IMAGE, "jpeg: ATT_IMAGE, not inline-related");
		ok(a && a->size == 1046, "jpeg: size %zu", a ? a->size : 0);
		msg_content_free(mc);
	}
	mc = fixture("octet-jpeg-magic.eml");
	if (mc) {
		a = find_att(mc, "application/octet-stream");
		ok(a && (a->flags & ATT_IMAGE), "octet-stream JPEG found by magic");
		msg_content_free(mc);
	}
	mc = fixture("pdf-as-image.eml");
	if (mc) {
		a = find_att(mc, "image/png");
		ok(a && a->flags == ATT_PDF && has_text(mc, TXT_ATTACHMENT, "Amoxicilline"),
		   "PDF labelled image/png: read as a PDF, not an image");
		msg_content_free(mc);
	}
	mc = fixture("octet-txt.eml");
	if (mc) {
		a = find_att(mc, "application/octet-stream");
		ok(a && a->flags == ATT_TEXT && has_text(mc, TXT_ATTACHMENT, "lisinopril 10 mg"),
		   "octet-stream notes.txt: read as text");
		msg_content_free(mc);
	}
	mc = fixture("txt-attachment.eml");
	if (mc) {
		a = find_att(mc, "text/plain");
		ok(a && a->flags == ATT_TEXT, "txt attachment: ATT_TEXT");
		ok(has_text(mc, TXT_ATTACHMENT, "Bilan lipidique et TSH a prevoir."),
		   "txt attachment: latin1 text as TXT_ATTACHMENT");
		a = find_att(mc, "text/csv");
		ok(a && a->flags == ATT_TEXT, "csv attachment: ATT_TEXT");
		ok(has_text(mc, TXT_ATTACHMENT, "glycemie;2024-03-20"), "csv attachment: text");
		ok(has_text(mc, TXT_BODY, "Notes en piece jointe."), "txt attachment: body kept");
		msg_content_free(mc);
	}
}

static void test_encrypted(void)
{
	struct msg_content *mc = fixture("smime-encrypted.eml");
	const struct attachment *a;

	if (mc) {
		ok(mc->flags & MC_ENCRYPTED, "S/MIME enveloped: MC_ENCRYPTED");
		a = find_att(mc, "application/pkcs7-mime");
		ok(a && (a->flags & ATT_ENCRYPTED), "S/MIME enveloped: ATT_ENCRYPTED");
		msg_content_free(mc);
	}
	mc = fixture("pgp-encrypted.eml");
	if (mc) {
		ok(mc->flags & MC_ENCRYPTED, "PGP/MIME: MC_ENCRYPTED");
		a = find_att(mc, "multipart/encrypted");
		ok(a && (a->flags & ATT_ENCRYPTED), "PGP/MIME: ATT_ENCRYPTED");
		msg_content_free(mc);
	}
	mc = fixture("smime-opaque-signed.eml");
	if (mc) {
		ok(!(mc->flags & MC_ENCRYPTED), "S/MIME opaque signed: not encrypted");
		ok(has_text(mc, TXT_BODY, "Requete de scintigraphie osseuse, priorite P3."),
		   "S/MIME opaque signed: signed text read");
		msg_content_free(mc);
	}
}

static void test_broken(void)
{
	struct msg_content *mc = fixture("broken-no-boundary.eml");
	const struct attachment *a;

	if (mc) {
		ok(mc->flags & MC_MALFORMED, "no boundary: MC_MALFORMED");
		ok(has_text(mc, TXT_BODY, "Premiere partie lisible."), "no boundary: first part");
		ok(has_text(mc, TXT_BODY, "Deuxieme partie : warfarine 5 mg."),
		   "no boundary: base64 part recovered and decoded");
		msg_content_free(mc);
	}
	{
		/* A preamble before the first delimiter; lines that a guessed boundary
		 * would turn into part headers are still read as text. */
		static const char m[] = "Subject: nb\nContent-Type: multipart/mixed\n\n"
		                        "This is a multi-part message in MIME format.\n"
		                        "--------\nNom: Exemple-Cache\n\ntexte visible\n";
		mc = extract_buf(m, sizeof(m) - 1, NULL);
		if (mc) {
			ok((mc->flags & MC_MALFORMED) && has_text(mc, TXT_BODY, "Exemple-Cache") &&
			       has_text(mc, TXT_BODY, "texte visible"),
			   "no boundary, preamble: every line read as text");
			msg_content_free(mc);
		}
	}
	mc = fixture("broken-bad-base64.eml");
	if (mc) {
		ok(mc->flags & MC_MALFORMED, "bad base64: MC_MALFORMED");
		ok(has_text(mc, TXT_BODY, "methotrexate 2,5 mg"), "bad base64: text read as it is");
		msg_content_free(mc);
	}
	mc = fixture("broken-bad-base64-image.eml");
	if (mc) {
		a = find_att(mc, "image/jpeg");
		ok(a && (a->flags & ATT_IMAGE) && (a->flags & ATT_UNREADABLE),
		   "bad base64 image: ATT_IMAGE|ATT_UNREADABLE");
		msg_content_free(mc);
	}
	mc = fixture("truncated.eml");
	if (mc) {
		ok(mc->flags & MC_MALFORMED, "truncated: MC_MALFORMED");
		ok(has_text(mc, TXT_BODY, "Requete d'echographie abdominale"),
		   "truncated: text read");
		a = find_att(mc, "application/pdf");
		ok(a && (a->flags & ATT_PDF) && (a->flags & ATT_UNREADABLE),
		   "truncated: cut PDF is ATT_UNREADABLE");
		msg_content_free(mc);
	}
}

/* ---- hostile messages built here ---- */

static void test_many_parts(void)
{
	struct strbuf sb;
	struct msg_content *mc;

	sb_init(&sb);
	sb_puts(&sb,
	        "From: a@b.example\nSubject: parts\nContent-Type: multipart/mixed; boundary=p\n\n");
	for (int i = 0; i < 10000; i++)
		sb_printf(&sb, "--p\nContent-Type: text/plain\n\npart %d\n", i);
	sb_puts(&sb, "--p--\n");
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(mc->flags & MC_TOO_MANY_PARTS, "10,000 parts: MC_TOO_MANY_PARTS");
		ok(mc->nsegs > 900 && mc->nsegs <= 1001,
		   "10,000 parts: stopped near max_parts (%zu)", mc->nsegs);
		ok(has_text(mc, TXT_BODY, "part 0"), "10,000 parts: first part read");
		msg_content_free(mc);
	}
	sb_free(&sb);
}

static void test_deep(void)
{
	struct strbuf sb;
	struct msg_content *mc;
	const int depth = 2000;

	sb_init(&sb);
	sb_puts(&sb,
	        "From: a@b.example\nSubject: deep\nContent-Type: multipart/mixed; boundary=b0\n\n");
	for (int i = 1; i < depth; i++)
		sb_printf(&sb, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i - 1, i);
	sb_printf(&sb, "--b%d\nContent-Type: text/plain\n\ndeepest text\n", depth - 1);
	for (int i = depth - 1; i >= 0; i--)
		sb_printf(&sb, "--b%d--\n", i);
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(mc->flags & MC_TOO_DEEP, "2,000-deep multiparts: MC_TOO_DEEP");
		msg_content_free(mc);
	}
	sb_reset(&sb);

	/* The same with message/rfc822 nesting. */
	for (int i = 0; i < depth; i++)
		sb_printf(&sb, "Subject: level %d\nContent-Type: message/rfc822\n\n", i);
	sb_puts(&sb, "Subject: bottom\n\ninnermost\n");
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(mc->flags & MC_TOO_DEEP, "2,000-deep message/rfc822: MC_TOO_DEEP");
		ok(has_text(mc, TXT_FORWARDED, "level 3"), "deep rfc822: outer levels read");
		msg_content_free(mc);
	}

	/* 20 levels is within the default limit. */
	sb_reset(&sb);
	sb_puts(&sb, "Subject: ok\nContent-Type: multipart/mixed; boundary=b0\n\n");
	for (int i = 1; i < 15; i++)
		sb_printf(&sb, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i - 1, i);
	sb_puts(&sb, "--b14\nContent-Type: text/plain\n\nreachable text\n");
	for (int i = 14; i >= 0; i--)
		sb_printf(&sb, "--b%d--\n", i);
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(!(mc->flags & MC_TOO_DEEP) && has_text(mc, TXT_BODY, "reachable text"),
		   "15-deep multiparts: read, no flag");
		msg_content_free(mc);
	}
	sb_free(&sb);
}

static void test_hostile_headers(void)
{
	struct strbuf sb;
	struct msg_content *mc;

	/* A 1 MB Subject line. */
	sb_init(&sb);
	sb_puts(&sb, "From: a@b.example\nSubject: ");
	for (int i = 0; i < (1 << 20) / 8; i++)
		sb_puts(&sb, "abcdefg ");
	sb_puts(&sb, "\nTo: x@y.example\n\nbody text\n");
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(strlen(mc->subject) > 1000000, "1 MB header line: subject read (%zu)",
		   strlen(mc->subject));
		ok(has_text(mc, TXT_BODY, "body text") && has_addr(mc, "x@y.example"),
		   "1 MB header line: rest of message read");
		msg_content_free(mc);
	}
	sb_free(&sb);

	/* 1 MB of tiny header fields: GMime would need ~600 bytes per field. */
	sb_init(&sb);
	sb_puts(&sb, "Subject: fields\nTo: a@b.example\n");
	while (sb.len < (1u << 20))
		sb_puts(&sb, "X-A: b\n");
	sb_puts(&sb, "\nbody after many fields\n");
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(mc->flags & MC_MALFORMED, "1 MB of tiny header fields: MC_MALFORMED");
		ok(strcmp(mc->subject, "fields") == 0 && has_text(mc, TXT_BODY, "body after many"),
		   "1 MB of tiny header fields: subject and body read");
		msg_content_free(mc);
	}
	sb_free(&sb);

	/* A To field with 30,000 addresses is cut after its last whole address. */
	sb_init(&sb);
	sb_puts(&sb, "Subject: many\nTo: ");
	for (int i = 0; i < 30000; i++)
		sb_printf(&sb, "%su%d@x.example", i ? ", " : "", i);
	sb_puts(&sb, "\nCc: last@x.example\n\nbody\n");
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok((mc->flags & MC_MALFORMED) && mc->nto_cc > 1000 && mc->nto_cc < 30000 &&
		       has_addr(mc, "u0@x.example") && has_addr(mc, "last@x.example"),
		   "30,000 To addresses: cut (%zu kept), Cc still read", mc->nto_cc);
		msg_content_free(mc);
	}
	sb_free(&sb);

	/* 300 addresses on folded lines: an ordinary big mailing, not flagged. */
	sb_init(&sb);
	sb_puts(&sb, "Subject: ok\nTo: ");
	for (int i = 0; i < 300; i++)
		sb_printf(&sb, "%s\"Personne %d\" <p%d@x.example>", i ? ",\n " : "", i, i);
	sb_puts(&sb, "\n\nbody\n");
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(mc->flags == 0 && mc->nto_cc == 300,
		   "300 folded To addresses: all read, no flag");
		msg_content_free(mc);
	}
	sb_free(&sb);

	/* 100,000 nested HTML elements. */
	sb_init(&sb);
	sb_puts(&sb, "Subject: html\nContent-Type: text/html\n\n<p>avant</p>");
	for (int i = 0; i < 100000; i++)
		sb_puts(&sb, "<div><span>");
	sb_puts(&sb, "profond");
	mc = extract_buf(sb.data, sb.len, NULL);
	if (mc) {
		ok(has_text(mc, TXT_BODY, "avant") && has_text(mc, TXT_BODY, "profond"),
		   "100,000 nested HTML elements: text read");
		msg_content_free(mc);
	}
	sb_free(&sb);

	/* NUL bytes in header and body. */
	{
		static const char m[] = "From: a@b.example\nSubject: T\xC3\xA9l\xC3\xA9\0x\n"
		                        "Content-Type: text/plain; charset=utf-8\n\n"
		                        "T\xC3\xA9l\xC3\xA9\0consultation\0\0 urgente\n";
		mc = extract_buf(m, sizeof(m) - 1, NULL);
		if (mc) {
			ok(has_text(mc, TXT_BODY, "urgente"), "NUL bytes: text after NUL read");
			ok(has_text(mc, TXT_BODY, "Tele consultation"),
			   "NUL bytes: NUL is a space");
			msg_content_free(mc);
		}
	}

	/* 8-bit headers: raw latin1 display name and subject, UTF-8 To. */
	{
		static const char m[] = "From: J\xE9r\xF4me C\xF4t\xE9 <JC@Example.ORG>\n"
		                        "To: \"Ren\xC3\xA9\" <rene@exemple.example>\n"
		                        "Subject: R\xE9sultats \xE0 revoir\n\nok\n";
		mc = extract_buf(m, sizeof(m) - 1, NULL);
		if (mc) {
			is_str(mc->subject, "Resultats a revoir", "8-bit latin1 subject");
			is_str(mc->from_display, "Jerome Cote", "8-bit latin1 display name");
			is_str(mc->from_addr, "jc@example.org", "From address lower-cased");
			ok(has_addr(mc, "rene@exemple.example"), "8-bit UTF-8 To");
			msg_content_free(mc);
		}
	}

	/* Groups, several From mailboxes, duplicates. */
	{
		static const char m[] =
		    "From: a@b.example, c@d.example\n"
		    "To: Equipe: X@Y.example, z@y.example;, w@y.example\n"
		    "Cc: undisclosed-recipients:;, x@y.example\nSubject: g\n\nok\n";
		mc = extract_buf(m, sizeof(m) - 1, NULL);
		if (mc) {
			is_int((long)mc->nfrom, 2, "two From mailboxes");
			is_int((long)mc->nto_cc, 3, "groups flattened, duplicates removed");
			ok(has_addr(mc, "x@y.example") && has_addr(mc, "z@y.example") &&
			       has_addr(mc, "w@y.example"),
			   "group members listed");
			msg_content_free(mc);
		}
	}
}

static void test_truncation_and_junk(void)
{
	size_t len;
	char *msg = slurp("forwarded-rfc822.eml", &len);
	size_t crashes = 0, results = 0;

	/* Every prefix of a real message gives a result. */
	for (size_t cut = 0; msg && cut <= len; cut += 7) {
		struct msg_content *mc = NULL;
		char err[128];
		if (msg_content_extract(msg, cut, NULL, NULL, &mc, err, sizeof(err)) == 0 && mc)
			results++;
		else
			crashes++;
		msg_content_free(mc);
	}
	ok(results > 0 && crashes == 0, "every prefix of a message gives a result (%zu)", results);
	free(msg);

	/* Empty input, header only, no header. */
	{
		struct msg_content *mc = extract_buf("", 0, NULL);
		ok(mc && mc->nsegs == 0 && (mc->flags & MC_NO_SUBJECT), "empty input");
		msg_content_free(mc);
		mc = extract_buf("\nJust a body, no header.\n", 25, NULL);
		ok(mc && has_text(mc, TXT_BODY, "Just a body"), "no header: body read");
		msg_content_free(mc);
		mc = extract_buf("Subject: only\n", 14, NULL);
		ok(mc && strcmp(mc->subject, "only") == 0, "header without body");
		msg_content_free(mc);
	}

	/* Random bytes. */
	{
		unsigned seed = 42;
		size_t n = 1 << 16;
		char *junk = xmalloc(n);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			junk[i] = (char)(seed >> 16);
		}
		struct msg_content *mc = extract_buf(junk, n, NULL);
		ok(mc != NULL, "random bytes give a result");
		msg_content_free(mc);
		free(junk);
	}

	/* max_text bound. */
	{
		struct extract_limits lim;
		struct strbuf sb;
		extract_limits_default(&lim);
		lim.max_text = 1000;
		sb_init(&sb);
		sb_puts(&sb, "Subject: long\n\n");
		for (int i = 0; i < 1000; i++)
			sb_puts(&sb, "t\xC3\xA9l\xC3\xA9 ");
		struct msg_content *mc = extract_buf(sb.data, sb.len, &lim);
		if (mc) {
			size_t total = 0;
			for (size_t i = 0; i < mc->nsegs; i++)
				total += mc->segs[i].len;
			ok((mc->flags & MC_TEXT_TRUNCATED) && total <= 1000,
			   "max_text: MC_TEXT_TRUNCATED, %zu bytes kept", total);
			msg_content_free(mc);
		}
		sb_free(&sb);
	}
	{
		/* Body hash: over the bytes after the first empty line, CRLF or LF. */
		static const char a[] = "Subject: x\r\n\r\nbody\r\n";
		static const char b[] = "Subject: y\n\nbody\r\n";
		struct msg_content *ma = extract_buf(a, sizeof(a) - 1, NULL);
		struct msg_content *mb = extract_buf(b, sizeof(b) - 1, NULL);
		ok(ma && mb && memcmp(ma->body_sha256, mb->body_sha256, 32) == 0 &&
		       ma->body_sha256[0] == 0x0a && ma->body_sha256[1] == 0x4e,
		   "body_sha256 covers only the body");
		msg_content_free(ma);
		msg_content_free(mb);
	}
}

/* ---- threads ---- */

static const char *const thread_fixtures[] = {"outlook-alternative.eml",
                                              "forwarded-rfc822.eml",
                                              "pdf-text.eml",
                                              "pdf-scan.eml",
                                              "html-only.eml",
                                              "octet-pdf.eml",
                                              "broken-no-boundary.eml",
                                              "truncated.eml",
                                              "smime-opaque-signed.eml",
                                              "thunderbird-flowed-delsp.eml"};
#define NFIX (sizeof(thread_fixtures) / sizeof(thread_fixtures[0]))
static char *fix_data[NFIX];
static size_t fix_len[NFIX], fix_nsegs[NFIX], fix_textlen[NFIX];

static size_t total_text(const struct msg_content *mc)
{
	size_t t = 0;
	for (size_t i = 0; i < mc->nsegs; i++)
		t += mc->segs[i].len;
	return t;
}

static void *thread_main(void *arg)
{
	long bad = 0;
	(void)arg;
	for (int r = 0; r < 30; r++)
		for (size_t i = 0; i < NFIX; i++) {
			struct msg_content *mc = NULL;
			char err[64];
			if (msg_content_extract(fix_data[i], fix_len[i], NULL, cache, &mc, err,
			                        sizeof(err)) != 0 ||
			    mc->nsegs != fix_nsegs[i] || total_text(mc) != fix_textlen[i])
				bad++;
			msg_content_free(mc);
		}
	return (void *)bad;
}

static void test_threads(void)
{
	pthread_t th[4];
	long bad = 0;

	for (size_t i = 0; i < NFIX; i++) {
		fix_data[i] = slurp(thread_fixtures[i], &fix_len[i]);
		struct msg_content *mc = extract_buf(fix_data[i], fix_len[i], NULL);
		fix_nsegs[i] = mc ? mc->nsegs : 0;
		fix_textlen[i] = mc ? total_text(mc) : 0;
		msg_content_free(mc);
	}
	for (int t = 0; t < 4; t++)
		if (pthread_create(&th[t], NULL, thread_main, NULL) != 0)
			msg_fatal("pthread_create");
	for (int t = 0; t < 4; t++) {
		void *r;
		pthread_join(th[t], &r);
		bad += (long)r;
	}
	is_int(bad, 0, "4 threads x 30 rounds: same results as serial");
	for (size_t i = 0; i < NFIX; i++)
		free(fix_data[i]);
}

/* ---- timing ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust on a busy machine */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void build_mail(struct strbuf *sb, size_t target)
{
	static const char para[] =
	    "Bonjour Dre Tremblay, suite \xC3\xA0 la t\xC3\xA9l\xC3\xA9\x63onsultation de ce "
	    "matin, "
	    "la patiente pr\xC3\xA9sente une toux persistante depuis trois semaines. "
	    "Je vous transmets les r\xC3\xA9sultats de la radiographie pulmonaire et je "
	    "propose un suivi dans deux semaines. Merci de votre collaboration.\n";
	struct strbuf body;
	size_t half = target / 2;

	sb_init(&body);
	while (body.len < half - 600)
		sb_puts(&body, para);
	sb_puts(sb, "From: \"Gagnon, Marie\" <inf.gagnon@hopital.example>\r\n"
	            "To: dr.tremblay@hopital.example\r\nCc: archives@hopital.example\r\n"
	            "Subject: =?UTF-8?Q?Suivi_t=C3=A9l=C3=A9consultation?=\r\n"
	            "Message-ID: <bench@hopital.example>\r\nMIME-Version: 1.0\r\n"
	            "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
	            "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n"
	            "Content-Transfer-Encoding: 8bit\r\n\r\n");
	sb_append(sb, body.data, body.len);
	sb_puts(sb, "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>");
	for (size_t off = 0; off < body.len && sb->len < target - 40;) {
		const char *nl = memchr(body.data + off, '\n', body.len - off);
		size_t l = nl ? (size_t)(nl - (body.data + off)) : body.len - off;
		sb_puts(sb, "<p>");
		sb_append(sb, body.data + off, l);
		sb_puts(sb, "</p>\r\n");
		off += l + 1;
	}
	sb_puts(sb, "</body></html>\r\n--alt--\r\n");
	sb_free(&body);
}

static void bench(size_t target, int iters)
{
	struct strbuf sb;
	double t0, best = 1e9;

	sb_init(&sb);
	build_mail(&sb, target);
	for (int round = 0; round < 3; round++) {
		t0 = now();
		for (int i = 0; i < iters; i++) {
			struct msg_content *mc = NULL;
			char err[64];
			if (msg_content_extract(sb.data, sb.len, NULL, cache, &mc, err,
			                        sizeof(err)))
				break;
			msg_content_free(mc);
		}
		double dt = (now() - t0) / iters;
		if (dt < best)
			best = dt;
	}
	ok(best > 0, "timing %zu bytes", sb.len);
	diag("parse+extract of a %zu-byte text+HTML mail: %.3f ms (best of 3 x %d)", sb.len,
	     best * 1e3, iters);
	sb_free(&sb);
}

/* The usual shape of a 100 KB mail: a short text and a photo or document. */
static void bench_attachment(void)
{
	struct strbuf sb, bin;
	char *b64;
	double t0, best = 1e9;
	const int iters = 500;

	sb_init(&sb);
	sb_init(&bin);
	build_mail(&sb, 5 * 1024);
	sb.len -= strlen("--alt--\r\n"); /* reopen: turn it into a mixed message */
	sb.data[sb.len] = '\0';
	for (unsigned i = 0; bin.len < 72 * 1024; i++)
		sb_putc(&bin, (char)(i * 2654435761u >> 24));
	b64 = g_base64_encode((const guchar *)bin.data, bin.len);
	sb_puts(&sb, "--alt--\r\n");
	{
		struct strbuf m;
		sb_init(&m);
		sb_puts(&m, "Subject: photo\r\nContent-Type: multipart/mixed; boundary=mix\r\n\r\n"
		            "--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
		sb_append(&m, sb.data, sb.len > 3000 ? 3000 : sb.len);
		sb_puts(&m, "\r\n--mix\r\nContent-Type: image/jpeg; name=\"photo.jpg\"\r\n"
		            "Content-Transfer-Encoding: base64\r\n\r\n");
		for (size_t off = 0, n = strlen(b64); off < n; off += 76) {
			sb_append(&m, b64 + off, n - off < 76 ? n - off : 76);
			sb_puts(&m, "\r\n");
		}
		sb_puts(&m, "--mix--\r\n");
		for (int round = 0; round < 3; round++) {
			t0 = now();
			for (int i = 0; i < iters; i++) {
				struct msg_content *mc = NULL;
				char err[64];
				if (msg_content_extract(m.data, m.len, NULL, cache, &mc, err,
				                        sizeof(err)))
					break;
				msg_content_free(mc);
			}
			double dt = (now() - t0) / iters;
			if (dt < best)
				best = dt;
		}
		diag("parse+extract of a %zu-byte mail (3 KB text + 72 KB image): %.3f ms", m.len,
		     best * 1e3);
		sb_free(&m);
	}
	g_free(b64);
	sb_free(&bin);
	sb_free(&sb);
}

static void bench_pdf(void)
{
	size_t len;
	char *msg = slurp("pdf-text.eml", &len);
	struct pdf_cache *c = pdf_cache_new(16);
	double t0, cold = 0, warm;
	const int iters = 200;

	if (!msg)
		return;
	for (int i = 0; i < iters; i++) {
		struct msg_content *mc = NULL;
		char err[64];
		t0 = now();
		msg_content_extract(msg, len, NULL, NULL, &mc, err, sizeof(err));
		cold += now() - t0;
		msg_content_free(mc);
	}
	t0 = now();
	for (int i = 0; i < iters; i++) {
		struct msg_content *mc = NULL;
		char err[64];
		msg_content_extract(msg, len, NULL, c, &mc, err, sizeof(err));
		msg_content_free(mc);
	}
	warm = now() - t0;
	diag("1-page PDF mail: %.3f ms without cache, %.3f ms with cache", cold / iters * 1e3,
	     warm / iters * 1e3);
	pdf_cache_free(c);
	free(msg);
}

static void test_cache_lru(void)
{
	struct pdf_cache *c = pdf_cache_new(2);
	const char *names[] = {"pdf-text.eml", "pdf-scan.eml", "pdf-three-pages.eml",
	                       "pdf-text.eml"};
	unsigned long hits, misses;
	size_t entries;

	for (size_t i = 0; i < 4; i++) {
		size_t len;
		char *msg = slurp(names[i], &len);
		struct msg_content *mc = NULL;
		char err[64];
		if (msg)
			msg_content_extract(msg, len, NULL, c, &mc, err, sizeof(err));
		msg_content_free(mc);
		free(msg);
	}
	pdf_cache_stats(c, &hits, &misses, &entries);
	ok(entries == 2 && hits == 0 && misses == 4,
	   "cache LRU bound: 2 entries, oldest evicted (%zu entries, %lu hits, %lu misses)",
	   entries, hits, misses);
	pdf_cache_free(c);
}

int main(void)
{
	srcdir = getenv("top_srcdir");
	if (!srcdir)
		srcdir = ".";
	mime_text_global_init();
	cache = pdf_cache_new(64);

	test_outlook();
	test_related();
	test_flowed();
	test_charsets();
	test_subject_flags();
	test_html();
	test_forwarded();
	test_pdf();
	test_images_and_text_attachments();
	test_encrypted();
	test_broken();
	test_many_parts();
	test_deep();
	test_hostile_headers();
	test_truncation_and_junk();
	test_cache_lru();
	test_threads();
	if (!getenv("MIME_TEST_NO_BENCH")) {
		bench(5 * 1024, 2000);
		bench(100 * 1024, 200);
		bench_attachment();
		bench_pdf();
	}
	pdf_cache_free(cache);
	{
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru) == 0)
			diag("peak RSS after all tests (incl. hostile inputs): %ld MB",
			     ru.ru_maxrss / 1024);
	}
	if (getenv("MIME_TEST_DUMP")) {
		struct msg_content *d = fixture(getenv("MIME_TEST_DUMP"));
		dump(d);
		msg_content_free(d);
	}
	(void)dump;
	return done_testing();
}
