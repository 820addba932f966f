/*
 * callbacks.c — the libmilter callbacks of clinimail-milter.  A connection
 * context (client address, HELO, negotiated protocol flags) lives from
 * negotiate to close; inside it a message context is reset at every MAIL
 * FROM (one SMTP connection carries several messages) and at abort.  The
 * message is rebuilt byte for byte (header as sent, CRLF, body) up to
 * MaximumMessageSize, then only counted; at end of message the policy engine
 * judges it and the verdict is applied.  Any failure tempfails: a message is
 * never let through because something went wrong.
 */
#include "autoconfig.h"
#include "milter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmilter/mfdef.h>

#include "audit.h"
#include "config.h"
#include "policy.h"
#include "secure_mail.h"
#include "util.h"

struct msg_state {
	int active;            /* between MAIL FROM and end of message / abort */
	int error;             /* an internal error seen: tempfail at end of message */
	struct cm_config *cfg; /* reference taken at MAIL FROM, kept to the end */
	char *queue_id;        /* {i} when known */
	char *auth;            /* {auth_authen}, NULL when not authenticated */
	char *mail_from;
	char **rcpts;
	size_t nrcpts, rcap;
	struct strbuf buf; /* header + CRLF + body, while size <= limit */
	size_t size;       /* every byte seen, buffered or not */
	size_t limit;      /* MaximumMessageSize */
	int oversize;      /* size went past limit: buf freed, only counting */
};

struct conn_state {
	char *client_ip; /* text form, NULL for a local (non-IP) client */
	char *helo;
	unsigned long pflags; /* protocol flags agreed in negotiate */
	struct msg_state msg;
};

static struct pdf_cache *pdf_cache_shared;

void milter_set_pdf_cache(struct pdf_cache *cache)
{
	pdf_cache_shared = cache;
}

/* Atomic: main() clears it at shutdown while sessions may still end. */
static _Atomic(struct audit *) audit_shared;

void milter_set_audit(struct audit *audit)
{
	atomic_store(&audit_shared, audit);
}

static struct conn_state *conn_get(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

/* The reply for a step that never rejects: none at all when the MTA agreed. */
static sfsistat go_on(const struct conn_state *c, unsigned long nr_flag)
{
	return (c != NULL && (c->pflags & nr_flag) != 0) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static void msg_reset(struct msg_state *m)
{
	if (m->cfg != NULL)
		config_unref(m->cfg);
	free(m->queue_id);
	free(m->auth);
	free(m->mail_from);
	for (size_t i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	sb_free(&m->buf);
	memset(m, 0, sizeof(*m));
	sb_init(&m->buf);
}

/* Append message bytes, or only count them once past MaximumMessageSize. */
static void msg_add(struct msg_state *m, const char *data, size_t len)
{
	if (len > SIZE_MAX - m->size)
		m->size = SIZE_MAX;
	else
		m->size += len;
	if (m->oversize)
		return;
	if (m->size > m->limit) {
		m->oversize = 1;
		sb_free(&m->buf);
		return;
	}
	sb_append(&m->buf, data, len);
}

static void set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL ? xstrdup(src) : NULL;
}

static sfsistat mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                               unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                               unsigned long *pf2, unsigned long *pf3)
{
	/* Without these the verdicts cannot be applied. */
	const unsigned long need = SMFIF_ADDHDRS | SMFIF_ADDRCPT | SMFIF_QUARANTINE;
	/* For the message rewriting (encryption) that comes later. */
	const unsigned long nice = SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_SETSYMLIST;
	/*
	 * Steps we do not need, and steps whose reply we never use: every step
	 * but end of message only records data, so the MTA need not wait for an
	 * answer (fewer round trips per header and body chunk).  DATA is kept,
	 * with a reply: Postfix sends the DATA macros even when told to skip
	 * the step, and over TCP that lone unanswered packet holds Postfix's
	 * next write for our delayed ACK (Nagle on its side): ~40 ms a message.
	 */
	const unsigned long steps = SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC | SMFIP_NR_CONN |
	                            SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR |
	                            SMFIP_NR_EOH | SMFIP_NR_BODY;
	struct conn_state *c;

	(void)f2;
	(void)f3;
	if ((f0 & need) != need) {
		msg_error("the MTA does not offer the needed milter actions (offered 0x%lx, "
		          "need 0x%lx)",
		          f0, need);
		return SMFIS_REJECT;
	}
	c = xcalloc(1, sizeof(*c));
	sb_init(&c->msg.buf);
	c->pflags = steps & f1;
	*pf0 = need | (nice & f0);
	*pf1 = c->pflags;
	*pf2 = 0;
	*pf3 = 0;
	if ((f0 & SMFIF_SETSYMLIST) != 0) {
		if (smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen} {i}") != MI_SUCCESS ||
		    smfi_setsymlist(ctx, SMFIM_EOH, "{i}") != MI_SUCCESS ||
		    smfi_setsymlist(ctx, SMFIM_EOM, "{i}") != MI_SUCCESS)
			msg_warn("smfi_setsymlist failed: using the MTA's default macros");
	}
	if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
		msg_error("smfi_setpriv failed");
		free(c);
		return SMFIS_REJECT;
	}
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	struct conn_state *c = conn_get(ctx);
	char buf[INET6_ADDRSTRLEN];
	const char *ip = NULL;

	(void)hostname;
	if (c == NULL)
		return SMFIS_CONTINUE;
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		ip = inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		ip = inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
	}
	set_str(&c->client_ip, ip);
	return go_on(c, SMFIP_NR_CONN);
}

static sfsistat mlfi_helo(SMFICTX *ctx, char *helo)
{
	struct conn_state *c = conn_get(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	set_str(&c->helo, helo);
	return go_on(c, SMFIP_NR_HELO);
}

static sfsistat mlfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn_state *c = conn_get(ctx);
	struct msg_state *m;

	if (c == NULL)
		return SMFIS_CONTINUE;
	m = &c->msg;
	msg_reset(m);
	m->active = 1;
	m->cfg = config_current();
	if (m->cfg == NULL) {
		msg_error("no configuration installed");
		m->error = 1;
	} else {
		m->limit = m->cfg->max_message_size ? m->cfg->max_message_size : SIZE_MAX;
	}
	m->mail_from = xstrdup(argv != NULL && argv[0] != NULL ? argv[0] : "");
	set_str(&m->auth, smfi_getsymval(ctx, "{auth_authen}"));
	set_str(&m->queue_id, smfi_getsymval(ctx, "i"));
	return go_on(c, SMFIP_NR_MAIL);
}

static sfsistat mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn_state *c = conn_get(ctx);
	struct msg_state *m;

	if (c == NULL)
		return SMFIS_CONTINUE;
	m = &c->msg;
	if (!m->active || argv == NULL || argv[0] == NULL) {
		m->error = 1;
		return go_on(c, SMFIP_NR_RCPT);
	}
	if (m->nrcpts == m->rcap) {
		m->rcap = m->rcap ? 2 * m->rcap : 8;
		m->rcpts = xrealloc(m->rcpts, m->rcap * sizeof(*m->rcpts));
	}
	m->rcpts[m->nrcpts++] = xstrdup(argv[0]);
	return go_on(c, SMFIP_NR_RCPT);
}

/* Answered (see negotiate): the reply is what lets the MTA's next write go. */
static sfsistat mlfi_data(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

/*
 * Rebuild "Name:value CRLF" as the client sent it.  With SMFIP_HDR_LEADSPC
 * the value keeps its leading space; folded lines arrive with bare LF.
 */
static sfsistat mlfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn_state *c = conn_get(ctx);
	struct msg_state *m;
	const char *p, *lf;

	if (c == NULL)
		return SMFIS_CONTINUE;
	m = &c->msg;
	if (!m->active || name == NULL || value == NULL) {
		m->error = 1;
		return go_on(c, SMFIP_NR_HDR);
	}
	msg_add(m, name, strlen(name));
	msg_add(m, ":", 1);
	if ((c->pflags & SMFIP_HDR_LEADSPC) == 0)
		msg_add(m, " ", 1);
	for (p = value; (lf = strchr(p, '\n')) != NULL; p = lf + 1) {
		size_t n = (size_t)(lf - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		msg_add(m, p, n);
		msg_add(m, "\r\n", 2);
	}
	msg_add(m, p, strlen(p));
	msg_add(m, "\r\n", 2);
	return go_on(c, SMFIP_NR_HDR);
}

static sfsistat mlfi_eoh(SMFICTX *ctx)
{
	struct conn_state *c = conn_get(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	if (!c->msg.active)
		c->msg.error = 1;
	else
		msg_add(&c->msg, "\r\n", 2);
	return go_on(c, SMFIP_NR_EOH);
}

static sfsistat mlfi_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn_state *c = conn_get(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	if (!c->msg.active || (chunk == NULL && len > 0))
		c->msg.error = 1;
	else
		msg_add(&c->msg, (const char *)chunk, len);
	return go_on(c, SMFIP_NR_BODY);
}

/* Tempfail with a reply naming the reference; never accept on an error. */
static sfsistat tempfail(SMFICTX *ctx, const char *ref)
{
	char text[160];

	snprintf(text, sizeof(text),
	         "Erreur temporaire du filtre clinimail, reessayez / clinimail temporary "
	         "failure, retry later (ref %s)",
	         ref);
	if (smfi_setreply(ctx, "451", "4.7.1", text) != MI_SUCCESS)
		msg_warn("%s: smfi_setreply failed", ref);
	return SMFIS_TEMPFAIL;
}

static int valid_codes(const char *rcode, const char *xcode, char cls)
{
	return rcode[0] == cls && rcode[1] >= '0' && rcode[1] <= '9' && rcode[2] >= '0' &&
	       rcode[2] <= '9' && rcode[3] == '\0' && xcode[0] == cls && xcode[1] == '.' &&
	       strlen(xcode) >= 5;
}

static sfsistat reject(SMFICTX *ctx, const struct verdict *v, const char *qid)
{
	char *lines[REPLY_MAX_LINES + 1];
	const char *rcode = v->rcode, *xcode = v->xcode;
	int changed = 0, rc;
	size_t n;

	if (!valid_codes(rcode, xcode, '5')) {
		rcode = "550";
		xcode = "5.7.1";
	}
	n = reply_lines_build(v->reply, v->nreply, lines, &changed);
	if (n == 0) {
		char text[96];
		snprintf(text, sizeof(text), "Message refuse / message rejected (ref %s)", v->ref);
		lines[0] = xstrdup(text);
		lines[1] = NULL;
		n = 1;
	}
	if (changed)
		msg_warn("%s: reply text had to be cleaned or shortened", qid);
	/* libmilter takes the lines as variadic arguments: pass every slot, NULL-ended. */
	rc = smfi_setmlreply(ctx, rcode, xcode, lines[0], lines[1], lines[2], lines[3], lines[4],
	                     lines[5], lines[6], lines[7], lines[8], lines[9], lines[10], lines[11],
	                     lines[12], lines[13], lines[14], lines[15], lines[16], lines[17],
	                     lines[18], lines[19], lines[20], lines[21], lines[22], lines[23],
	                     lines[24], lines[25], lines[26], lines[27], lines[28], lines[29],
	                     lines[30], lines[31], (char *)NULL);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	if (rc != MI_SUCCESS) {
		msg_error("%s: smfi_setmlreply failed", qid);
		return tempfail(ctx, v->ref);
	}
	return SMFIS_REJECT;
}

/*
 * Recipients and headers to add, for accept and hold.  0 on success.  With
 * SMFIP_HDR_LEADSPC agreed, the MTA takes header values verbatim: give them
 * the space that follows the colon.
 */
static int add_changes(SMFICTX *ctx, const struct conn_state *c, const struct verdict *v,
                       const char *qid)
{
	for (size_t i = 0; i < v->nadded; i++) {
		if (v->added_rcpts[i] == NULL || strpbrk(v->added_rcpts[i], "\r\n") != NULL) {
			msg_error("%s: unsafe recipient to add", qid);
			return -1;
		}
		if (smfi_addrcpt(ctx, v->added_rcpts[i]) != MI_SUCCESS) {
			msg_error("%s: smfi_addrcpt failed", qid);
			return -1;
		}
	}
	for (size_t i = 0; i < v->nheaders; i++) {
		if (!header_is_safe(v->headers[i].name, v->headers[i].value)) {
			msg_error("%s: unsafe header to add", qid);
			return -1;
		}
		const char *value = v->headers[i].value;
		char *spaced = NULL;
		int rc;

		if ((c->pflags & SMFIP_HDR_LEADSPC) != 0 && value[0] != ' ' && value[0] != '\t') {
			spaced = xmalloc(strlen(value) + 2);
			spaced[0] = ' ';
			strcpy(spaced + 1, value);
		}
		rc = smfi_addheader(ctx, v->headers[i].name,
		                    spaced != NULL ? spaced : (char *)value);
		free(spaced);
		if (rc != MI_SUCCESS) {
			msg_error("%s: smfi_addheader failed", qid);
			return -1;
		}
	}
	return 0;
}

/*
 * The encrypted or signed message (secure_mail.h): header edits, the new
 * body, then the password notice to the clinician.  Any failure tempfails:
 * the message never leaves half-changed or in clear.
 */
static int apply_edit(SMFICTX *ctx, const struct conn_state *c, struct verdict *v, const char *qid)
{
	const struct msg_edit *e = v->edit;
	char err[512];

	if (e == NULL)
		return 0;
	for (size_t i = 0; i < e->nhdrs; i++) {
		const struct header_edit *h = &e->hdrs[i];
		const char *value = h->value;
		char *spaced = NULL;
		int rc;

		if (!header_is_safe(h->name, value != NULL ? value : "")) {
			msg_error("%s: unsafe header edit", qid);
			return -1;
		}
		if (value != NULL && (c->pflags & SMFIP_HDR_LEADSPC) != 0) {
			spaced = xmalloc(strlen(value) + 2);
			spaced[0] = ' ';
			strcpy(spaced + 1, value);
		}
		if (h->index == 0)
			rc = smfi_addheader(ctx, h->name, spaced != NULL ? spaced : (char *)value);
		else
			rc = smfi_chgheader(ctx, h->name, h->index,
			                    spaced != NULL ? spaced : (char *)value);
		free(spaced);
		if (rc != MI_SUCCESS) {
			msg_error("%s: changing header %s failed", qid, h->name);
			return -1;
		}
	}
	for (size_t off = 0; off < e->body_len;) {
		size_t n = e->body_len - off > 65536 ? 65536 : e->body_len - off;
		if (smfi_replacebody(ctx, (unsigned char *)e->body + off, (int)n) != MI_SUCCESS) {
			msg_error("%s: smfi_replacebody failed (does the MTA allow body changes?)",
			          qid);
			return -1;
		}
		off += n;
	}
	if (e->notice != NULL && secure_send_notice(c->msg.cfg, e->notice_rcpt, e->notice_cc,
	                                            e->notice, 30, err, sizeof(err)) != 0) {
		msg_error("%s: password notice to the sender not sent: %s", qid, err);
		return -1;
	}
	if (e->change != NULL) {
		snprintf(v->applied, sizeof(v->applied), "%s", e->change);
		msg_info("%s: ref=%s %s%s", qid, v->ref, e->change,
		         e->notice != NULL ? ", password notice sent to the sender" : "");
	}
	return 0;
}

static int hold(SMFICTX *ctx, const struct verdict *v, const char *qid)
{
	struct strbuf sb;
	int rc;

	sb_init(&sb);
	sb_printf(&sb, "clinimail %s", v->ref);
	for (size_t i = 0; i < v->nhits; i++)
		sb_printf(&sb, "%s%s", i == 0 ? " rules: " : ",", rule_name(v->hits[i].rule));
	rc = smfi_quarantine(ctx, sb.data);
	sb_free(&sb);
	if (rc != MI_SUCCESS) {
		msg_error("%s: smfi_quarantine failed", qid);
		return -1;
	}
	return 0;
}

/* Apply a verdict; on any failure v->action becomes VERDICT_TEMPFAIL. */
static sfsistat apply(SMFICTX *ctx, const struct conn_state *c, struct verdict *v, const char *qid)
{
	switch (v->action) {
	case VERDICT_ACCEPT:
		if (add_changes(ctx, c, v, qid) != 0 || apply_edit(ctx, c, v, qid) != 0)
			break;
		return SMFIS_CONTINUE;
	case VERDICT_HOLD:
		if (add_changes(ctx, c, v, qid) != 0 || apply_edit(ctx, c, v, qid) != 0 ||
		    hold(ctx, v, qid) != 0)
			break;
		return SMFIS_CONTINUE;
	case VERDICT_REJECT: {
		sfsistat r = reject(ctx, v, qid);
		if (r == SMFIS_TEMPFAIL)
			v->action = VERDICT_TEMPFAIL;
		return r;
	}
	case VERDICT_TEMPFAIL:
		if (v->error != NULL)
			msg_warn("%s: engine error: %s", qid, v->error);
		return tempfail(ctx, v->ref);
	default:
		msg_error("%s: unknown verdict action %d", qid, (int)v->action);
		break;
	}
	v->action = VERDICT_TEMPFAIL;
	return tempfail(ctx, v->ref);
}

static sfsistat mlfi_eom(SMFICTX *ctx)
{
	struct conn_state *c = conn_get(ctx);
	struct msg_state *m;
	struct envelope env;
	struct verdict v;
	const char *qid;
	char line[2048];
	sfsistat r;

	if (c == NULL || !c->msg.active || c->msg.error || c->msg.cfg == NULL) {
		char ref[32];
		policy_new_ref(ref, sizeof(ref));
		msg_error("%s: internal error (message state lost): tempfail",
		          c != NULL && c->msg.queue_id ? c->msg.queue_id : "NOQUEUE");
		if (c != NULL)
			msg_reset(&c->msg);
		return tempfail(ctx, ref);
	}
	m = &c->msg;
	qid = smfi_getsymval(ctx, "i");
	if (qid != NULL && *qid != '\0')
		set_str(&m->queue_id, qid);
	qid = m->queue_id != NULL ? m->queue_id : "NOQUEUE";

	memset(&env, 0, sizeof(env));
	env.queue_id = m->queue_id;
	env.client_ip = c->client_ip;
	env.helo = c->helo;
	env.auth_login = m->auth;
	env.mail_from = m->mail_from;
	env.rcpts = m->rcpts;
	env.nrcpts = m->nrcpts;

	msg_debug("%s: %zu bytes%s", qid, m->size, m->oversize ? " (over MaximumMessageSize)" : "");
	memset(&v, 0, sizeof(v));
	if (m->oversize)
		policy_eval(m->cfg, &env, NULL, 0, m->size, pdf_cache_shared, &v);
	else
		policy_eval(m->cfg, &env, m->buf.data != NULL ? m->buf.data : "", m->buf.len,
		            m->size, pdf_cache_shared, &v);
	if (v.ref[0] == '\0')
		policy_new_ref(v.ref, sizeof(v.ref));

	r = apply(ctx, c, &v, qid);
	/* The decision is recorded before the MTA gets the answer; a record that
	   cannot be kept (store down in tempfail mode, queue full) tempfails the
	   message: fail closed. */
	struct audit *audit = atomic_load(&audit_shared);
	if (audit != NULL && audit_submit(audit, &env, &v) != 0) {
		v.action = VERDICT_TEMPFAIL;
		r = tempfail(ctx, v.ref);
	}
	verdict_log_line(&v, &env, line, sizeof(line));
	msg_info("%s: %s", qid, line);
	verdict_free(&v);
	msg_reset(m);
	return r;
}

static sfsistat mlfi_abort(SMFICTX *ctx)
{
	struct conn_state *c = conn_get(ctx);

	if (c != NULL)
		msg_reset(&c->msg);
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_close(SMFICTX *ctx)
{
	struct conn_state *c = conn_get(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	msg_reset(&c->msg);
	free(c->client_ip);
	free(c->helo);
	free(c);
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

struct smfiDesc milter_desc = {
    .xxfi_name = "clinimail",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_ADDRCPT | SMFIF_QUARANTINE | SMFIF_CHGHDRS | SMFIF_CHGBODY |
                  SMFIF_SETSYMLIST,
    .xxfi_connect = mlfi_connect,
    .xxfi_helo = mlfi_helo,
    .xxfi_envfrom = mlfi_envfrom,
    .xxfi_envrcpt = mlfi_envrcpt,
    .xxfi_header = mlfi_header,
    .xxfi_eoh = mlfi_eoh,
    .xxfi_body = mlfi_body,
    .xxfi_eom = mlfi_eom,
    .xxfi_abort = mlfi_abort,
    .xxfi_close = mlfi_close,
    .xxfi_unknown = NULL,
    .xxfi_data = mlfi_data,
    .xxfi_negotiate = mlfi_negotiate,
};
