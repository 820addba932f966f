/*
 * policy.c — policy_eval(): classify the recipients, analyse the content,
 * check the sender, apply every rule of RULES.md with its configured action,
 * and compose the verdict (action, rule hits, recipients to add, headers,
 * SMTP reply).  Semantics: doc/policy-semantics.md.  Free of libmilter.
 */
#include "autoconfig.h"

#include "policy.h"
#include "secure_mail.h"
#include "fax_stamp.h"
#include "bounce.h"
#include "config.h"
#include "content_class.h"
#include "detect.h"
#include "directory.h"
#include "lexicon.h"
#include "mime_text.h"
#include "normalize.h"
#include "password.h"
#include "sender_auth.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest SMTP reply line we emit (RFC 5321 allows 512 with the code). */
#define REPLY_LINE_MAX 400
/* Recipients named in one rule line before "(+N)". */
#define RCPTS_NAMED 5

struct eval {
	const struct cm_config *cfg;
	const struct envelope *env;
	struct verdict *v;
	struct msg_content *mc;
	struct content_analysis ca;
	char *sender;   /* envelope sender, normalized, or NULL */
	char *archives; /* archives addresses of the sender's domain, comma-separated */
	int today;      /* YYYYMMDD */
};

static int today_yyyymmdd(void)
{
	time_t now = time(NULL);
	struct tm tm;
	if (localtime_r(&now, &tm) == NULL)
		return 0;
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static int is_self(const struct eval *e, size_t i)
{
	const char *a = e->v->rcpts[i].addr;
	return (e->sender && strcmp(a, e->sender) == 0) ||
	       (e->mc && e->mc->from_addr && strcmp(a, e->mc->from_addr) == 0);
}

static struct rule_hit *add_hit(struct eval *e, enum rule_id r)
{
	struct verdict *v = e->v;
	v->hits = xrealloc(v->hits, (v->nhits + 1) * sizeof(*v->hits));
	struct rule_hit *h = &v->hits[v->nhits++];
	memset(h, 0, sizeof(*h));
	h->rule = r;
	h->action = e->cfg->actions[r];
	return h;
}

static void hit_rcpt(struct verdict *v, struct rule_hit *h, size_t i)
{
	(void)v;
	h->rcpts = xrealloc(h->rcpts, (h->nrcpts + 1) * sizeof(*h->rcpts));
	h->rcpts[h->nrcpts++] = i;
}

static int rule_on(const struct eval *e, enum rule_id r)
{
	return e->cfg->actions[r] != ACT_OFF;
}

/* Add a hit for every recipient matching pred; returns the hit or NULL. */
static struct rule_hit *hit_matching(struct eval *e, enum rule_id r,
                                     int (*pred)(const struct eval *, size_t))
{
	struct rule_hit *h = NULL;
	for (size_t i = 0; i < e->v->nrcpts; i++) {
		if (!pred(e, i))
			continue;
		if (h == NULL)
			h = add_hit(e, r);
		hit_rcpt(e->v, h, i);
	}
	return h;
}

static int pred_insecure(const struct eval *e, size_t i)
{
	enum rcpt_class c = e->v->rcpts[i].cls;
	return (c == RC_WEBMAIL || c == RC_EXTERNAL) && !is_self(e, i);
}

static int pred_not_pharmacy(const struct eval *e, size_t i)
{
	enum rcpt_class c = e->v->rcpts[i].cls;
	return c != RC_PHARMACY && c != RC_ARCHIVES && !is_self(e, i);
}

static int pred_not_imaging(const struct eval *e, size_t i)
{
	enum rcpt_class c = e->v->rcpts[i].cls;
	return c != RC_IMAGING && c != RC_ARCHIVES && !is_self(e, i);
}

static int pred_pharmacy(const struct eval *e, size_t i)
{
	return e->v->rcpts[i].cls == RC_PHARMACY;
}

static int pred_imaging(const struct eval *e, size_t i)
{
	return e->v->rcpts[i].cls == RC_IMAGING;
}

static int pred_outside(const struct eval *e, size_t i)
{
	enum rcpt_class c = e->v->rcpts[i].cls;
	return c != RC_INTERNAL && c != RC_ARCHIVES && !is_self(e, i);
}

static size_t count_matching(const struct eval *e, int (*pred)(const struct eval *, size_t))
{
	size_t n = 0;
	for (size_t i = 0; i < e->v->nrcpts; i++)
		n += pred(e, i) != 0;
	return n;
}

/* The consent scope a message needs from a patient. */
static unsigned scope_needed(unsigned classes)
{
	if (classes & CC_LAB_ORDER)
		return SCOPE_LAB_ORDER;
	if (classes & CC_DOCUMENT)
		return SCOPE_DOCUMENTS;
	if (classes & CC_CLINICAL)
		return SCOPE_CLINICAL;
	return SCOPE_GENERAL;
}

/* Does the raw header block carry "X-Clinimail-Exception: reason"? */
static char *header_exception(const char *msg, size_t len)
{
	static const char name[] = "x-clinimail-exception:";
	const char *p = msg, *end = msg + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol ? (size_t)(eol - p) : (size_t)(end - p);
		if (l == 0 || (l == 1 && p[0] == '\r'))
			break; /* end of header */
		if (l > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
			char *raw = xstrndup(p + sizeof(name) - 1, l - (sizeof(name) - 1));
			char *norm = text_normalize(raw, strlen(raw), NULL);
			free(raw);
			if (strlen(norm) >= 3)
				return norm;
			free(norm);
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return NULL;
}

static void add_header(struct verdict *v, const char *name, const char *value)
{
	v->headers = xrealloc(v->headers, (v->nheaders + 1) * sizeof(*v->headers));
	v->headers[v->nheaders].name = xstrdup(name);
	v->headers[v->nheaders].value = xstrdup(value);
	v->nheaders++;
}

static void add_rcpt(struct verdict *v, const char *addr)
{
	v->added_rcpts = xrealloc(v->added_rcpts, (v->nadded + 1) * sizeof(*v->added_rcpts));
	v->added_rcpts[v->nadded++] = xstrdup(addr);
}

/* ---- rules ---- */

static void rule_sender(struct eval *e)
{
	const struct envelope *env = e->env;
	struct auth_request req;
	struct auth_result res;

	if (!rule_on(e, RULE_SENDER_AUTHENTICITY))
		return;
	/* Local submission (no client address, no login) is authenticated by the host. */
	if (env->client_ip == NULL && (env->auth_login == NULL || !*env->auth_login))
		return;
	memset(&req, 0, sizeof(req));
	req.client_ip = env->client_ip;
	req.helo = env->helo;
	req.auth_login = env->auth_login && *env->auth_login ? env->auth_login : NULL;
	req.mail_from = e->sender ? e->sender : "";
	req.from_addr = e->mc->from_addr;
	if (sender_auth_check(e->cfg->sauth, e->cfg->dirs, &req, &res) != 0 ||
	    res.verdict == AUTH_TEMPERROR) {
		e->v->action = VERDICT_TEMPFAIL;
		e->v->error = xstrdup("sender authentication temporary error");
		return;
	}
	switch (res.verdict) {
	case AUTH_MISMATCH:
	case AUTH_SPF_FAILED:
	case AUTH_NOT_ALIGNED:
	case AUTH_NO_FROM:
		add_hit(e, RULE_SENDER_AUTHENTICITY);
		break;
	default:
		break;
	}
}

/* The patient's registered passphrase contains none of this message's NAM,
   birth date or file number (anyone holding the message could guess it). */
static int passphrase_fits(const struct eval *e, const char *addr)
{
	const struct patient_entry *p = dir_patient(e->cfg->dirs, addr);
	const char *pass = p ? secure_passphrase(e->cfg->secrets, p->passphrase_ref) : NULL;
	struct patient_ident ids[8];
	size_t n = 0;
	char err[128];

	if (pass == NULL)
		return 1;
	for (size_t k = 0; k < e->ca.nids && n < 8; k++) {
		ids[n].kind = e->ca.ids[k].kind == F_NAM   ? IDENT_NAM
		              : e->ca.ids[k].kind == F_DOB ? IDENT_DOB
		                                           : IDENT_FILE_NO;
		ids[n].value = e->ca.ids[k].value;
		n++;
	}
	return password_check_passphrase(pass, ids, n, err, sizeof(err)) == 0;
}

/*
 * Clinical mail to a consenting patient is encrypted (one body for every
 * recipient: one patient per message).  What cannot be encrypted is refused
 * now, with the reason, rather than after the message was accepted.
 */
static void plan_encryption(struct eval *e, struct rule_hit *h, size_t n, size_t i)
{
	const char *why_key = NULL;
	char err[512];
	int method;

	if (n > 1) {
		h->action = ACT_REJECT;
		h->variant = "patient-encryption.several";
		return;
	}
	switch (secure_plan(e->cfg, e->v->rcpts[i].addr, &method, &why_key, err, sizeof(err))) {
	case SECURE_OK:
		if (method == SECURE_PDF_REGISTERED && !passphrase_fits(e, e->v->rcpts[i].addr)) {
			msg_warn(
			    "%s: the registered passphrase contains an identifier of the message",
			    e->v->ref);
			h->action = ACT_REJECT;
			h->variant = "patient-encryption.weak";
			break;
		}
		e->v->secure = method;
		e->v->secure_rcpt = i;
		break;
	case SECURE_PERM:
		msg_warn("%s: patient encryption impossible: %s", e->v->ref, err);
		h->action = ACT_REJECT;
		h->variant = why_key;
		break;
	default:
		msg_error("%s: patient encryption: %s", e->v->ref, err);
		e->v->action = VERDICT_TEMPFAIL;
		free(e->v->error);
		e->v->error = xstrdup(err);
		break;
	}
}

static void rule_patients(struct eval *e)
{
	struct verdict *v = e->v;
	unsigned cls = e->ca.classes;
	unsigned need = scope_needed(cls);
	struct rule_hit *consent = NULL, *crypt = NULL, *sens = NULL;
	size_t patients = 0, visible = 0;

	size_t to_encrypt = 0, first_encrypt = 0;

	for (size_t i = 0; i < v->nrcpts; i++) {
		if (v->rcpts[i].cls != RC_PATIENT)
			continue;
		const struct patient_entry *p = dir_patient(e->cfg->dirs, v->rcpts[i].addr);
		patients++;
		visible += v->rcpts[i].visible != 0;
		int ok = p && p->consent_date != 0 && p->consent_date <= e->today &&
		         (p->third_party == TP_NONE || p->third_party_consented) &&
		         (p->scope & need);
		if (!ok) {
			if (rule_on(e, RULE_PATIENT_CONSENT)) {
				if (consent == NULL)
					consent = add_hit(e, RULE_PATIENT_CONSENT);
				hit_rcpt(v, consent, i);
			}
			continue;
		}
		if ((cls & CC_CLINICAL) && rule_on(e, RULE_PATIENT_ENCRYPTION)) {
			if (crypt == NULL)
				crypt = add_hit(e, RULE_PATIENT_ENCRYPTION);
			hit_rcpt(v, crypt, i);
			if (to_encrypt++ == 0)
				first_encrypt = i;
		}
	}
	if (crypt != NULL && crypt->action == ACT_ENCRYPT)
		plan_encryption(e, crypt, to_encrypt, first_encrypt);
	if (patients && (cls & CC_SENSITIVE) && rule_on(e, RULE_SENSITIVE_TOPIC)) {
		if (e->ca.exception_reason) {
			v->exception_reason = xstrdup(e->ca.exception_reason);
		} else {
			for (size_t i = 0; i < v->nrcpts; i++)
				if (v->rcpts[i].cls == RC_PATIENT) {
					if (sens == NULL)
						sens = add_hit(e, RULE_SENSITIVE_TOPIC);
					hit_rcpt(v, sens, i);
				}
		}
	}
	if (rule_on(e, RULE_PATIENTS_VISIBLE) &&
	    (visible >= 2 || ((cls & CC_CLINICAL) && patients >= 2))) {
		struct rule_hit *h = add_hit(e, RULE_PATIENTS_VISIBLE);
		for (size_t i = 0; i < v->nrcpts; i++)
			if (v->rcpts[i].cls == RC_PATIENT &&
			    (visible >= 2 ? v->rcpts[i].visible : 1))
				hit_rcpt(v, h, i);
	}
}

static void rule_archives(struct eval *e)
{
	const struct cm_config *cfg = e->cfg;
	unsigned cls = e->ca.classes;
	int orders = (cls & (CC_MED_ORDER | CC_IMAGING_ORDER | CC_LAB_ORDER)) != 0;
	int outside = (cls & (CC_CLINICAL | CC_DOCUMENT)) && count_matching(e, pred_outside) > 0;
	size_t n = 0;
	char *const *arch;
	const char *dom;

	if (!rule_on(e, RULE_ARCHIVES_COPY) || !(orders || outside))
		return;
	for (size_t i = 0; i < e->v->nrcpts; i++)
		if (e->v->rcpts[i].cls == RC_ARCHIVES)
			return;
	dom = e->mc->from_addr ? addr_domain(e->mc->from_addr) : NULL;
	if (dom == NULL || !dir_is_internal_domain(cfg->dirs, dom))
		dom = e->sender ? addr_domain(e->sender) : NULL;
	arch = dir_archives_for(cfg->dirs, dom ? dom : "", &n);
	if (n == 0)
		return;
	struct strbuf sb;
	sb_init(&sb);
	for (size_t i = 0; i < n; i++)
		sb_printf(&sb, "%s%s", i ? ", " : "", arch[i]);
	free(e->archives);
	e->archives = sb_steal(&sb);
	struct rule_hit *h = add_hit(e, RULE_ARCHIVES_COPY);
	if (h->action == ACT_ADD)
		for (size_t i = 0; i < n; i++)
			add_rcpt(e->v, arch[i]);
}

static void rule_orders(struct eval *e)
{
	unsigned cls = e->ca.classes;
	struct rule_hit *h;

	if ((cls & CC_CLINICAL) && rule_on(e, RULE_WEBMAIL))
		hit_matching(e, RULE_WEBMAIL, pred_insecure);
	if (cls & CC_MED_ORDER) {
		if (rule_on(e, RULE_MED_ORDER_RECIPIENT))
			hit_matching(e, RULE_MED_ORDER_RECIPIENT, pred_not_pharmacy);
		if (rule_on(e, RULE_ORDER_SINGLE_RECIPIENT) && count_matching(e, pred_pharmacy) > 1)
			hit_matching(e, RULE_ORDER_SINGLE_RECIPIENT, pred_pharmacy);
		if (rule_on(e, RULE_ORDER_FIELDS) && e->ca.missing_fields)
			add_hit(e, RULE_ORDER_FIELDS);
		if (rule_on(e, RULE_ORDER_ATTACHMENTS) &&
		    (e->ca.has_image_attachment || e->ca.has_scanned_pdf) &&
		    count_matching(e, pred_pharmacy) > 0)
			hit_matching(e, RULE_ORDER_ATTACHMENTS, pred_pharmacy);
	}
	if (cls & CC_IMAGING_ORDER) {
		if (rule_on(e, RULE_IMAGING_ORDER_RECIPIENT))
			hit_matching(e, RULE_IMAGING_ORDER_RECIPIENT, pred_not_imaging);
		if (rule_on(e, RULE_ORDER_SINGLE_RECIPIENT) &&
		    count_matching(e, pred_imaging) > 1) {
			int already = 0;
			for (size_t i = 0; i < e->v->nhits; i++)
				already |= e->v->hits[i].rule == RULE_ORDER_SINGLE_RECIPIENT;
			if (!already)
				hit_matching(e, RULE_ORDER_SINGLE_RECIPIENT, pred_imaging);
		}
	}
	if ((cls & CC_LAB_ORDER) && e->ca.lab_contact_missing && rule_on(e, RULE_LAB_ORDER)) {
		h = add_hit(e, RULE_LAB_ORDER);
		(void)h;
	}
}

/* Orders to a pharmacy or imaging service by e-mail, signed with the establishment's key. */
static void rule_signature(struct eval *e)
{
	struct verdict *v = e->v;
	int to_service = 0;

	if (!rule_on(e, RULE_ORDER_SIGNATURE) || v->secure != SECURE_NONE ||
	    !(e->ca.classes & (CC_MED_ORDER | CC_IMAGING_ORDER)))
		return;
	for (size_t i = 0; i < v->nrcpts; i++) {
		if (v->rcpts[i].via_fax)
			return; /* a fax is not a MIME signature's place */
		to_service |= v->rcpts[i].cls == RC_PHARMACY || v->rcpts[i].cls == RC_IMAGING;
	}
	if (!to_service)
		return;
	struct rule_hit *h = add_hit(e, RULE_ORDER_SIGNATURE);
	for (size_t i = 0; i < v->nrcpts; i++)
		if (v->rcpts[i].cls == RC_PHARMACY || v->rcpts[i].cls == RC_IMAGING)
			hit_rcpt(v, h, i);
	v->sign = h->action == ACT_SIGN;
}

static void rule_subject(struct eval *e)
{
	int patient = 0;
	for (size_t i = 0; i < e->v->nrcpts; i++)
		patient |= e->v->rcpts[i].cls == RC_PATIENT;
	if (rule_on(e, RULE_SUBJECT) && (e->mc->flags & MC_NO_SUBJECT) &&
	    ((e->ca.classes & CC_CLINICAL) || patient))
		add_hit(e, RULE_SUBJECT);
}

/* Content that could not be inspected whole, going outside: the oversize rule. */
static void rule_oversize(struct eval *e, int oversize)
{
	if (!rule_on(e, RULE_OVERSIZE))
		return;
	if (!oversize &&
	    !(e->mc && (e->mc->flags & (MC_TOO_MANY_PARTS | MC_TOO_DEEP | MC_TEXT_TRUNCATED))))
		return;
	hit_matching(e, RULE_OVERSIZE, pred_outside);
}

/* ---- reply ---- */

/* Fold to printable ASCII on one line (SMTP replies are ASCII without SMTPUTF8). */
static char *reply_safe(const char *s)
{
	char *n = text_normalize(s, strlen(s), NULL);
	for (char *p = n; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	return n;
}

static void reply_line(struct verdict *v, const char *text)
{
	char *safe = reply_safe(text);
	const char *p = safe;
	size_t len = strlen(p);

	/* Wrap long texts at a space so that every line stays within REPLY_LINE_MAX. */
	while (len > 0) {
		size_t cut = len;
		if (cut > REPLY_LINE_MAX) {
			cut = REPLY_LINE_MAX;
			while (cut > REPLY_LINE_MAX / 2 && p[cut] != ' ')
				cut--;
		}
		v->reply = xrealloc(v->reply, (v->nreply + 1) * sizeof(*v->reply));
		v->reply[v->nreply++] = xstrndup(p, cut);
		p += cut;
		len -= cut;
		while (*p == ' ')
			p++, len--;
	}
	free(safe);
}

static char *rcpt_list(const struct verdict *v, const struct rule_hit *h)
{
	struct strbuf sb;
	sb_init(&sb);
	for (size_t i = 0; i < h->nrcpts && i < RCPTS_NAMED; i++)
		sb_printf(&sb, "%s%s", i ? ", " : "", v->rcpts[h->rcpts[i]].addr);
	if (h->nrcpts > RCPTS_NAMED)
		sb_printf(&sb, " (+%zu)", h->nrcpts - RCPTS_NAMED);
	return sb_steal(&sb);
}

static char *missing_list(unsigned mask, int fr)
{
	struct strbuf sb;
	sb_init(&sb);
	for (int f = 0; f < OF_COUNT; f++)
		if (mask & (1u << f))
			sb_printf(&sb, "%s%s", sb.len ? "; " : "",
			          fr ? order_field_fr(f) : order_field_en(f));
	return sb_steal(&sb);
}

static char *topics_list(const struct eval *e)
{
	struct strbuf sb;
	sb_init(&sb);
	for (unsigned c = 1; c < 32; c++)
		if (e->ca.sensitive_cats & (1u << c)) {
			const char *name = lexicon_category_name(e->cfg->lex, c);
			if (name)
				sb_printf(&sb, "%s%s", sb.len ? ", " : "", name);
		}
	return sb_steal(&sb);
}

static char *expand(const struct eval *e, const struct rule_hit *h, const char *key, int fr)
{
	const char *tmpl = bounce_text(e->cfg->bounces, key);
	char fax_address[96];
	char *rcpts, *missing, *topics, *out;

	if (tmpl == NULL)
		return NULL;
	if (e->ca.fax_hint[0])
		snprintf(fax_address, sizeof(fax_address), "%s@%s", e->ca.fax_hint,
		         e->cfg->fax_domain ? e->cfg->fax_domain : "");
	else
		snprintf(fax_address, sizeof(fax_address), "NUMERO@%s",
		         e->cfg->fax_domain ? e->cfg->fax_domain : "");
	rcpts = h ? rcpt_list(e->v, h) : xstrdup("");
	missing = missing_list(e->ca.missing_fields, fr);
	topics = topics_list(e);
	const char *names[] = {"ref",        "recipients", "missing",       "fax_address",
	                       "fax_domain", "archives",   "establishment", "topics"};
	const char *values[] = {e->v->ref,
	                        rcpts,
	                        missing,
	                        fax_address,
	                        e->cfg->fax_domain ? e->cfg->fax_domain : "",
	                        e->archives ? e->archives : "",
	                        e->cfg->establishment,
	                        topics};
	out = bounce_expand(tmpl, names, values, sizeof(names) / sizeof(names[0]));
	free(rcpts);
	free(missing);
	free(topics);
	return out;
}

static void build_texts(struct eval *e)
{
	char key[64];
	for (size_t i = 0; i < e->v->nhits; i++) {
		struct rule_hit *h = &e->v->hits[i];
		const char *r = h->variant ? h->variant : rule_name(h->rule);
		snprintf(key, sizeof(key), "%s.fr", r);
		h->detail_fr = expand(e, h, key, 1);
		snprintf(key, sizeof(key), "%s.en", r);
		h->detail_en = expand(e, h, key, 0);
		snprintf(key, sizeof(key), "%s.fix.fr", r);
		h->fix_fr = expand(e, h, key, 1);
		snprintf(key, sizeof(key), "%s.fix.en", r);
		h->fix_en = expand(e, h, key, 0);
	}
}

static void build_reply(struct eval *e, enum rule_action level)
{
	struct verdict *v = e->v;
	char *head;
	int only_oversize = 1;

	for (int lang = 0; lang < 2; lang++) {
		const char *hk = level == ACT_HOLD ? (lang ? "hold.header.en" : "hold.header.fr")
		                                   : (lang ? "header.en" : "header.fr");
		head = expand(e, NULL, hk, !lang);
		reply_line(v, head ? head : (lang ? "Message rejected." : "Message refuse."));
		free(head);
		for (size_t i = 0; i < v->nhits; i++) {
			const struct rule_hit *h = &v->hits[i];
			if (h->action != level)
				continue;
			struct strbuf sb;
			sb_init(&sb);
			sb_printf(&sb, "[%s] %s %s %s", rule_name(h->rule),
			          (lang ? h->detail_en : h->detail_fr)
			              ? (lang ? h->detail_en : h->detail_fr)
			              : "",
			          lang ? "Fix:" : "Correctif :",
			          (lang ? h->fix_en : h->fix_fr) ? (lang ? h->fix_en : h->fix_fr)
			                                         : "");
			reply_line(v, sb.data);
			sb_free(&sb);
			if (h->rule != RULE_OVERSIZE)
				only_oversize = 0;
		}
	}
	if (level == ACT_REJECT && only_oversize) {
		snprintf(v->rcode, sizeof(v->rcode), "552");
		snprintf(v->xcode, sizeof(v->xcode), "5.3.4");
	} else if (level == ACT_REJECT) {
		snprintf(v->rcode, sizeof(v->rcode), "550");
		snprintf(v->xcode, sizeof(v->xcode), "5.7.1");
	}
}

static void build_headers(struct eval *e)
{
	struct verdict *v = e->v;
	char classes[160];
	struct strbuf sb;

	if (!e->cfg->add_headers)
		return;
	/* Encrypted mail: nothing about its content on the outside. */
	if (v->secure != SECURE_NONE) {
		char buf[96];
		snprintf(buf, sizeof(buf), "encrypted; ref=%s", v->ref);
		add_header(v, "X-Clinimail-Verdict", buf);
		return;
	}
	/* Non-clinical mail that broke no rule passes untouched. */
	if (!(e->ca.classes & CC_CLINICAL) && v->nhits == 0 && !v->oversize)
		return;
	content_class_names(e->ca.classes, classes, sizeof(classes));
	sb_init(&sb);
	sb_printf(&sb, "%s; ref=%s; content=%s",
	          v->oversize ? "unscanned" : verdict_action_name(v->action), v->ref, classes);
	if (v->nhits) {
		sb_puts(&sb, "; rules=");
		for (size_t i = 0; i < v->nhits; i++)
			sb_printf(&sb, "%s%s", i ? "," : "", rule_name(v->hits[i].rule));
	}
	add_header(v, "X-Clinimail-Verdict", sb.data);
	sb_free(&sb);
	for (size_t i = 0; i < v->nhits; i++) {
		if (v->hits[i].action == ACT_WARN)
			add_header(v, "X-Clinimail-Warning", rule_name(v->hits[i].rule));
		if (v->hits[i].rule == RULE_ARCHIVES_COPY && v->hits[i].action == ACT_ADD &&
		    e->archives)
			add_header(v, "X-Clinimail-Archives", e->archives);
	}
	if (v->exception_reason) {
		char buf[96];
		snprintf(buf, sizeof(buf), "sensitive-topic; ref=%s", v->ref);
		add_header(v, "X-Clinimail-Exception", buf);
	}
}

/*
 * The fax approval stamp (fax_stamp.h): accepted mail to NUMBER@FaxDomain
 * gets an HMAC over its Message-ID, the numbers and the canonical body as it
 * will be delivered; a stamp the sender wrote is removed.  Without
 * FaxApprovalKey nothing is stamped and the bridge will refuse the fax.
 */
static void stamp_fax(struct eval *e, const char *msg, size_t msg_len)
{
	struct verdict *v = e->v;
	const struct fax_key *key = secure_fax_key(e->cfg->secrets);
	const char *numbers[FAX_STAMP_MAX_NUMBERS];
	size_t n = 0, body_off = 0;
	int forged = 0;
	char mid[512];
	unsigned char bh[32];

	for (size_t i = 0; i < v->nrcpts && n < FAX_STAMP_MAX_NUMBERS; i++)
		if (v->rcpts[i].via_fax && v->rcpts[i].fax_number[0])
			numbers[n++] = v->rcpts[i].fax_number;
	if (n == 0 || msg == NULL)
		return;
	if (key == NULL) {
		msg_warn(
		    "%s: mail to a fax number, but FaxApprovalKey is not set: not approved for the "
		    "fax bridge",
		    v->ref);
		return;
	}
	free(secure_header_value(msg, msg_len, FAX_STAMP_HEADER, &forged, NULL));
	char *raw_mid = secure_header_value(msg, msg_len, "Message-ID", NULL, &body_off);
	if (raw_mid == NULL || fax_message_id_canon(raw_mid, mid, sizeof(mid)) != 0) {
		/* no usable Message-ID: give the message one, the stamp names it */
		snprintf(mid, sizeof(mid), "%s@%s", v->ref,
		         e->cfg->fax_domain ? e->cfg->fax_domain : "clinimail.invalid");
		char hv[600];
		snprintf(hv, sizeof(hv), "<%s>", mid);
		if (raw_mid == NULL)
			add_header(v, "Message-ID", hv);
		else {
			if (v->edit == NULL)
				v->edit = xcalloc(1, sizeof(*v->edit));
			secure_edit_header(v->edit, "Message-ID", 1, hv);
		}
	}
	free(raw_mid);
	struct fax_body_hash *h = fax_body_hash_new();
	if (v->edit != NULL && v->edit->body != NULL)
		fax_body_hash_update(h, v->edit->body, v->edit->body_len);
	else
		fax_body_hash_update(h, msg + body_off, msg_len - body_off);
	fax_body_hash_final(h, bh);
	char *value = fax_stamp_make(key, v->ref, time(NULL), mid, numbers, n, bh);
	if (value == NULL) {
		msg_error("%s: the fax approval stamp could not be made", v->ref);
		return;
	}
	if (forged > 0) {
		msg_warn("%s: %d %s header(s) written by the sender removed", v->ref, forged,
		         FAX_STAMP_HEADER);
		if (v->edit == NULL)
			v->edit = xcalloc(1, sizeof(*v->edit));
		for (int k = forged; k >= 1; k--)
			secure_edit_header(v->edit, FAX_STAMP_HEADER, k, NULL);
	}
	add_header(v, FAX_STAMP_HEADER, value);
	free(value);
	v->fax_approved = 1;
}

/* Texts, reply and headers of a first decision, before deciding again. */
static void reset_outputs(struct verdict *v)
{
	for (size_t i = 0; i < v->nhits; i++) {
		free(v->hits[i].detail_fr);
		free(v->hits[i].detail_en);
		free(v->hits[i].fix_fr);
		free(v->hits[i].fix_en);
		v->hits[i].detail_fr = v->hits[i].detail_en = v->hits[i].fix_fr =
		    v->hits[i].fix_en = NULL;
	}
	for (size_t i = 0; i < v->nreply; i++)
		free(v->reply[i]);
	v->nreply = 0;
	for (size_t i = 0; i < v->nheaders; i++) {
		free(v->headers[i].name);
		free(v->headers[i].value);
	}
	v->nheaders = 0;
	v->rcode[0] = v->xcode[0] = '\0';
}

/*
 * Encrypt or sign the accepted message (secure_mail.h): the edit goes in the
 * verdict for the milter.  A permanent failure turns the patient-encryption
 * hit into a refusal (the caller decides again); a transient one is
 * returned for a tempfail.
 */
static int prepare_edit(struct eval *e, const char *msg, size_t msg_len)
{
	struct verdict *v = e->v;
	char err[512];
	int rc;

	v->edit = xcalloc(1, sizeof(*v->edit));
	if (v->secure != SECURE_NONE)
		rc = secure_mail_encrypt(e->cfg, v, msg, msg_len, e->sender, v->edit, err,
		                         sizeof(err));
	else
		rc = secure_mail_sign(e->cfg, msg, msg_len, v->edit, err, sizeof(err));
	if (rc == SECURE_OK)
		return rc;
	free(v->edit);
	v->edit = NULL;
	if (rc == SECURE_PERM && v->secure != SECURE_NONE) {
		msg_warn("%s: encryption for the patient failed: %s", v->ref, err);
		for (size_t i = 0; i < v->nhits; i++)
			if (v->hits[i].rule == RULE_PATIENT_ENCRYPTION) {
				v->hits[i].action = ACT_REJECT;
				v->hits[i].variant = "patient-encryption.failed";
			}
		v->secure = SECURE_NONE;
		return SECURE_PERM;
	}
	msg_error("%s: %s failed: %s", v->ref,
	          v->secure != SECURE_NONE ? "encryption" : "signature", err);
	free(v->error);
	v->error = xstrdup(err);
	return SECURE_TEMP;
}

static void tempfail(struct eval *e, const char *why)
{
	struct verdict *v = e->v;
	char *t;

	v->action = VERDICT_TEMPFAIL;
	if (v->error == NULL)
		v->error = xstrdup(why);
	snprintf(v->rcode, sizeof(v->rcode), "451");
	snprintf(v->xcode, sizeof(v->xcode), "4.7.1");
	for (size_t i = 0; i < v->nreply; i++)
		free(v->reply[i]);
	v->nreply = 0;
	t = e->cfg->bounces ? expand(e, NULL, "tempfail.fr", 1) : NULL;
	reply_line(v, t ? t : "Erreur temporaire du filtre clinique.");
	free(t);
	t = e->cfg->bounces ? expand(e, NULL, "tempfail.en", 0) : NULL;
	reply_line(v, t ? t : "Temporary failure of the clinical mail filter.");
	free(t);
}

static void classify_rcpts(struct eval *e)
{
	const struct envelope *env = e->env;
	struct verdict *v = e->v;

	v->rcpts = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(*v->rcpts));
	for (size_t i = 0; i < env->nrcpts; i++) {
		struct rcpt_info *r = &v->rcpts[v->nrcpts];
		char *a = addr_normalize(env->rcpts[i]);
		if (a == NULL) {
			a = xstrdup(env->rcpts[i] ? env->rcpts[i] : "");
			str_lower(a);
		}
		r->addr = a;
		r->cls = recipient_class(e->cfg, a, &r->via_fax, r->fax_number,
		                         sizeof(r->fax_number), &r->org_name);
		v->nrcpts++;
	}
}

void policy_eval(const struct cm_config *cfg, const struct envelope *env, const char *msg,
                 size_t msg_len, size_t msg_size, struct pdf_cache *cache, struct verdict *v)
{
	struct eval e;
	struct extract_limits lim;
	char err[256];
	enum rule_action level = ACT_OFF;

	memset(v, 0, sizeof(*v));
	memset(&e, 0, sizeof(e));
	e.cfg = cfg;
	e.env = env;
	e.v = v;
	e.today = today_yyyymmdd();
	policy_new_ref(v->ref, sizeof(v->ref));
	v->action = VERDICT_ACCEPT;
	e.sender = env->mail_from ? addr_normalize(env->mail_from) : NULL;
	classify_rcpts(&e);

	if (msg == NULL || msg_size > cfg->max_message_size) {
		v->oversize = 1;
		rule_oversize(&e, 1);
		goto decide;
	}
	extract_limits_default(&lim);
	lim.max_parts = cfg->max_mime_parts;
	if (msg_content_extract(msg, msg_len, &lim, cache, &e.mc, err, sizeof(err)) != 0) {
		tempfail(&e, err);
		goto out;
	}
	for (size_t i = 0; i < v->nrcpts; i++)
		for (size_t j = 0; j < e.mc->nto_cc; j++)
			if (strcmp(v->rcpts[i].addr, e.mc->to_cc[j]) == 0)
				v->rcpts[i].visible = 1;
	struct strbuf explain;
	sb_init(&explain);
	e.ca.explain = env->explain ? &explain : NULL;
	int arc = content_analyse(cfg, e.mc, e.mc->from_display, &e.ca);
	if (env->explain)
		v->explain = sb_steal(&explain);
	if (arc != 0) {
		tempfail(&e, "content analysis failed");
		goto out;
	}
	if (e.ca.exception_reason == NULL)
		e.ca.exception_reason = header_exception(msg, msg_len);
	v->content = e.ca.classes;
	if (e.mc->message_id)
		v->message_id = xstrdup(e.mc->message_id);
	memcpy(v->body_sha256, e.mc->body_sha256, sizeof(v->body_sha256));
	v->have_body_hash = 1;

	rule_sender(&e);
	if (v->action == VERDICT_TEMPFAIL) {
		tempfail(&e, v->error);
		goto out;
	}
	rule_orders(&e);
	rule_patients(&e);
	if (v->action == VERDICT_TEMPFAIL) {
		tempfail(&e, v->error);
		goto out;
	}
	rule_archives(&e);
	rule_signature(&e);
	rule_subject(&e);
	rule_oversize(&e, 0);

decide:
	for (int pass = 0; pass < 2; pass++) {
		level = ACT_OFF;
		for (size_t i = 0; i < v->nhits; i++)
			if (v->hits[i].action == ACT_REJECT ||
			    (v->hits[i].action == ACT_HOLD && level != ACT_REJECT))
				level = v->hits[i].action;
		v->action = level == ACT_REJECT ? VERDICT_REJECT
		            : level == ACT_HOLD ? VERDICT_HOLD
		                                : VERDICT_ACCEPT;
		if (v->action != VERDICT_ACCEPT && v->action != VERDICT_HOLD) {
			v->secure =
			    SECURE_NONE; /* nothing is encrypted or signed for a refused message */
			v->sign = 0;
		}
		if (v->action == VERDICT_REJECT) {
			/* A refused message gets nothing added. */
			for (size_t i = 0; i < v->nadded; i++)
				free(v->added_rcpts[i]);
			v->nadded = 0;
		}
		build_texts(&e);
		if (level != ACT_OFF)
			build_reply(&e, level);
		if (v->action != VERDICT_REJECT)
			build_headers(&e);
		if (v->secure == SECURE_NONE && !v->sign) {
			if (v->action != VERDICT_REJECT)
				stamp_fax(&e, msg, msg_len);
			break;
		}
		int rc = prepare_edit(&e, msg, msg_len);
		if (rc == SECURE_OK) {
			stamp_fax(&e, msg, msg_len);
			break;
		}
		if (rc == SECURE_TEMP) {
			tempfail(&e, v->error ? v->error : "encryption failed");
			break;
		}
		/* the message cannot leave protected: refuse it, saying why */
		reset_outputs(v);
	}
out:
	content_analysis_free(&e.ca);
	msg_content_free(e.mc);
	free(e.sender);
	free(e.archives);
}
