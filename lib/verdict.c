/*
 * verdict.c — everything about a verdict once it is decided: names,
 * reference ids, freeing, the one-line log summary (never clinical text)
 * and the JSON form printed by `clinimail check --json`.
 */
#include "autoconfig.h"

#include "policy.h"
#include "secure_mail.h"
#include "util.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const action_names[] = {
    [VERDICT_ACCEPT] = "accept",
    [VERDICT_REJECT] = "reject",
    [VERDICT_HOLD] = "hold",
    [VERDICT_TEMPFAIL] = "tempfail",
};

const char *verdict_action_name(enum verdict_action a)
{
	return (unsigned)a <= VERDICT_TEMPFAIL ? action_names[a] : "?";
}

void content_class_names(unsigned mask, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
	    {CC_CLINICAL, "clinical"},           {CC_MED_ORDER, "med-order"},
	    {CC_IMAGING_ORDER, "imaging-order"}, {CC_LAB_ORDER, "lab-order"},
	    {CC_DOCUMENT, "document"},           {CC_SENSITIVE, "sensitive"},
	};
	size_t off = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (mask == 0) {
		snprintf(buf, len, "non-clinical");
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(mask & names[i].bit))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? "," : "", names[i].name);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}

void policy_new_ref(char *buf, size_t len)
{
	static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char rnd[8];
	char tail[9];
	time_t now = time(NULL);
	struct tm tm;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		/* Not secret, only unique: fall back on time and address entropy. */
		unsigned long x =
		    (unsigned long)now ^ (unsigned long)(uintptr_t)buf ^ (unsigned long)clock();
		for (size_t i = 0; i < sizeof(rnd); i++, x = x * 6364136223846793005UL + 1)
			rnd[i] = (unsigned char)(x >> 33);
	}
	for (size_t i = 0; i < 8; i++)
		tail[i] = alphabet[rnd[i] & 31];
	tail[8] = '\0';
	if (gmtime_r(&now, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(buf, len, "CM-%04d%02d%02d-%s", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tail);
}

void verdict_free(struct verdict *v)
{
	for (size_t i = 0; i < v->nrcpts; i++)
		free(v->rcpts[i].addr);
	free(v->rcpts);
	for (size_t i = 0; i < v->nhits; i++) {
		free(v->hits[i].detail_fr);
		free(v->hits[i].detail_en);
		free(v->hits[i].fix_fr);
		free(v->hits[i].fix_en);
		free(v->hits[i].rcpts);
	}
	free(v->hits);
	for (size_t i = 0; i < v->nadded; i++)
		free(v->added_rcpts[i]);
	free(v->added_rcpts);
	for (size_t i = 0; i < v->nheaders; i++) {
		free(v->headers[i].name);
		free(v->headers[i].value);
	}
	free(v->headers);
	for (size_t i = 0; i < v->nreply; i++)
		free(v->reply[i]);
	free(v->reply);
	free(v->exception_reason);
	free(v->message_id);
	free(v->explain);
	free(v->error);
	if (v->edit) {
		msg_edit_free(v->edit);
		free(v->edit);
	}
	memset(v, 0, sizeof(*v));
}

void verdict_log_line(const struct verdict *v, const struct envelope *env, char *buf, size_t len)
{
	struct strbuf sb;
	char classes[160];

	content_class_names(v->content, classes, sizeof(classes));
	sb_init(&sb);
	sb_printf(&sb, "ref=%s action=%s content=%s", v->ref, verdict_action_name(v->action),
	          classes);
	sb_puts(&sb, " rules=");
	if (v->nhits == 0)
		sb_puts(&sb, "-");
	for (size_t i = 0; i < v->nhits; i++)
		sb_printf(&sb, "%s%s:%s", i ? "," : "", rule_name(v->hits[i].rule),
		          rule_action_name(v->hits[i].action));
	sb_printf(&sb, " auth=%s", env->auth_login && *env->auth_login ? env->auth_login : "-");
	sb_puts(&sb, " rcpts=");
	for (size_t i = 0; i < v->nrcpts; i++)
		sb_printf(&sb, "%s%s:%s", i ? "," : "", v->rcpts[i].addr,
		          rcpt_class_name(v->rcpts[i].cls));
	for (size_t i = 0; i < v->nadded; i++)
		sb_printf(&sb, "%s%s", i ? "," : " added=", v->added_rcpts[i]);
	if (v->exception_reason)
		sb_puts(&sb, " exception=sensitive-topic");
	if (v->oversize)
		sb_puts(&sb, " oversize=yes");
	if (v->error)
		sb_printf(&sb, " error=\"%s\"", v->error);
	snprintf(buf, len, "%s", sb.data ? sb.data : "");
	sb_free(&sb);
}

static void json_str(struct strbuf *sb, const char *s)
{
	sb_putc(sb, '"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"':
			sb_puts(sb, "\\\"");
			break;
		case '\\':
			sb_puts(sb, "\\\\");
			break;
		case '\n':
			sb_puts(sb, "\\n");
			break;
		case '\r':
			sb_puts(sb, "\\r");
			break;
		case '\t':
			sb_puts(sb, "\\t");
			break;
		default:
			if (*p < 0x20)
				sb_printf(sb, "\\u%04x", *p);
			else
				sb_putc(sb, (char)*p);
		}
	}
	sb_putc(sb, '"');
}

/* The whole SMTP reply as the client sees it, lines joined by "\n". */
static void reply_text(struct strbuf *sb, const struct verdict *v)
{
	for (size_t i = 0; i < v->nreply; i++)
		sb_printf(sb, "%s%s%c%s %s", i ? "\n" : "", v->rcode, i + 1 < v->nreply ? '-' : ' ',
		          v->xcode, v->reply[i]);
}

char *verdict_reply_text(const struct verdict *v)
{
	struct strbuf sb;
	sb_init(&sb);
	reply_text(&sb, v);
	return sb_steal(&sb);
}

char *verdict_to_json(const struct verdict *v)
{
	struct strbuf sb, reply;
	char classes[160];

	sb_init(&sb);
	sb_puts(&sb, "{\"action\":");
	json_str(&sb, verdict_action_name(v->action));
	sb_puts(&sb, ",\"ref\":");
	json_str(&sb, v->ref);
	sb_puts(&sb, ",\"rules\":[");
	for (size_t i = 0; i < v->nhits; i++) {
		if (i)
			sb_putc(&sb, ',');
		json_str(&sb, rule_name(v->hits[i].rule));
	}
	sb_puts(&sb, "],\"hits\":[");
	for (size_t i = 0; i < v->nhits; i++) {
		const struct rule_hit *h = &v->hits[i];
		sb_puts(&sb, i ? ",{\"rule\":" : "{\"rule\":");
		json_str(&sb, rule_name(h->rule));
		sb_puts(&sb, ",\"action\":");
		json_str(&sb, rule_action_name(h->action));
		sb_puts(&sb, ",\"recipients\":[");
		for (size_t j = 0; j < h->nrcpts; j++) {
			if (j)
				sb_putc(&sb, ',');
			json_str(&sb, v->rcpts[h->rcpts[j]].addr);
		}
		sb_puts(&sb, "]}");
	}
	content_class_names(v->content, classes, sizeof(classes));
	sb_puts(&sb, "],\"content\":");
	json_str(&sb, classes);
	sb_puts(&sb, ",\"recipients\":{");
	for (size_t i = 0; i < v->nrcpts; i++) {
		if (i)
			sb_putc(&sb, ',');
		json_str(&sb, v->rcpts[i].addr);
		sb_putc(&sb, ':');
		json_str(&sb, rcpt_class_name(v->rcpts[i].cls));
	}
	sb_puts(&sb, "},\"added_recipients\":[");
	for (size_t i = 0; i < v->nadded; i++) {
		if (i)
			sb_putc(&sb, ',');
		json_str(&sb, v->added_rcpts[i]);
	}
	sb_puts(&sb, "],\"headers\":[");
	for (size_t i = 0; i < v->nheaders; i++) {
		sb_puts(&sb, i ? ",{\"name\":" : "{\"name\":");
		json_str(&sb, v->headers[i].name);
		sb_puts(&sb, ",\"value\":");
		json_str(&sb, v->headers[i].value);
		sb_putc(&sb, '}');
	}
	sb_init(&reply);
	reply_text(&reply, v);
	sb_puts(&sb, "],\"reply\":");
	json_str(&sb, reply.data ? reply.data : "");
	sb_free(&reply);
	sb_puts(&sb, ",\"exception\":");
	if (v->exception_reason)
		json_str(&sb, "sensitive-topic");
	else
		sb_puts(&sb, "null");
	sb_puts(&sb, ",\"encryption\":");
	if (v->secure != SECURE_NONE)
		json_str(&sb, secure_method_name(v->secure));
	else
		sb_puts(&sb, "null");
	sb_puts(&sb, ",\"changes\":");
	json_str(&sb, v->edit && v->edit->change ? v->edit->change : "");
	sb_puts(&sb, "}");
	return sb_steal(&sb);
}
