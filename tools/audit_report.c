/*
 * audit_report.c — counting audit records for `clinimail audit stats` and
 * writing `clinimail audit report --html`: one self-contained page (inline
 * CSS and SVG charts, no script, no external resource) that a security
 * officer opens in any browser: totals, blocks per day, per rule and per
 * recipient class, top senders.
 */
#include "autoconfig.h"

#include "audit.h"
#include "audit_cmd.h"
#include "util.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { A_ACCEPTED, A_MODIFIED, A_REJECTED, A_HELD, A_TEMPFAILED, A_OTHER, A_COUNT };
static const char *const action_names[A_COUNT] = {"accepted", "modified",   "rejected",
                                                  "held",     "tempfailed", "other"};

struct counter {
	unsigned long total;
	unsigned long blocked; /* rejected or held */
};

struct audit_tally {
	unsigned long decisions;
	unsigned long actions[A_COUNT];
	unsigned long exceptions;
	unsigned long blocked;
	GHashTable *rules;   /* rule name -> counter (total fired, fired with reject/hold) */
	GHashTable *days;    /* YYYY-MM-DD -> counter */
	GHashTable *senders; /* address -> counter */
	GHashTable *classes; /* recipient class -> counter (recipients) */
	GHashTable *fax;     /* fax event kind -> counter (fax bridge, issue 4) */
	char first[32], last[32];
};

struct audit_tally *audit_tally_new(void)
{
	struct audit_tally *t = xcalloc(1, sizeof(*t));
	t->rules = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	t->days = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	t->senders = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	t->classes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	t->fax = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	return t;
}

void audit_tally_free(struct audit_tally *t)
{
	if (t == NULL)
		return;
	g_hash_table_destroy(t->rules);
	g_hash_table_destroy(t->days);
	g_hash_table_destroy(t->senders);
	g_hash_table_destroy(t->classes);
	g_hash_table_destroy(t->fax);
	free(t);
}

static struct counter *bump(GHashTable *h, const char *key, size_t keylen, int blocked)
{
	char *k = g_strndup(key, keylen);
	struct counter *c = g_hash_table_lookup(h, k);

	if (c == NULL) {
		c = g_new0(struct counter, 1);
		g_hash_table_insert(h, k, c);
	} else {
		g_free(k);
	}
	c->total++;
	if (blocked)
		c->blocked++;
	return c;
}

void audit_tally_add(struct audit_tally *t, const struct audit_record *r)
{
	int a = A_OTHER, blocked;

	if (strncmp(r->kind, "fax-", 4) == 0) {
		bump(t->fax, r->kind, strlen(r->kind), strcmp(r->kind, "fax-failed") == 0);
		return;
	}
	if (strcmp(r->kind, "decision") != 0)
		return;
	for (int i = 0; i < A_OTHER; i++)
		if (strcmp(r->action, action_names[i]) == 0)
			a = i;
	blocked = a == A_REJECTED || a == A_HELD;
	t->decisions++;
	t->actions[a]++;
	t->blocked += (unsigned long)blocked;
	t->exceptions += r->exception ? 1 : 0;
	if (t->first[0] == '\0' || strcmp(r->time, t->first) < 0)
		snprintf(t->first, sizeof(t->first), "%s", r->time);
	if (strcmp(r->time, t->last) > 0)
		snprintf(t->last, sizeof(t->last), "%s", r->time);
	bump(t->days, r->time, strlen(r->time) >= 10 ? 10 : strlen(r->time), blocked);
	bump(t->senders, r->sender, strlen(r->sender), blocked);
	/* rules: "rule:action,rule:action" */
	for (const char *p = r->rules; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *colon = memchr(p, ':', len);
		size_t namelen = colon ? (size_t)(colon - p) : len;
		int rb =
		    colon && ((len - namelen - 1 == 6 && strncmp(colon + 1, "reject", 6) == 0) ||
		              (len - namelen - 1 == 4 && strncmp(colon + 1, "hold", 4) == 0));
		if (namelen > 0)
			bump(t->rules, p, namelen, rb);
		p += len;
		if (*p == ',')
			p++;
	}
	/* recipients: lines "class[,fax][,added] address" */
	for (const char *p = r->recipients; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		size_t cl = 0;
		while (cl < len && p[cl] != ',' && p[cl] != ' ')
			cl++;
		if (cl > 0)
			bump(t->classes, p, cl, blocked);
		p += len;
		if (*p == '\n')
			p++;
	}
}

/* ---- sorted views ---- */

struct item {
	const char *key;
	const struct counter *c;
};

static int by_total_desc(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	if (a->c->total != b->c->total)
		return a->c->total > b->c->total ? -1 : 1;
	return strcmp(a->key, b->key);
}

static int by_blocked_desc(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	if (a->c->blocked != b->c->blocked)
		return a->c->blocked > b->c->blocked ? -1 : 1;
	return by_total_desc(x, y);
}

static int by_key(const void *x, const void *y)
{
	return strcmp(((const struct item *)x)->key, ((const struct item *)y)->key);
}

static struct item *items(GHashTable *h, size_t *n, int (*cmp)(const void *, const void *))
{
	GHashTableIter it;
	gpointer k, v;
	struct item *arr = xcalloc(g_hash_table_size(h) + 1, sizeof(*arr));

	*n = 0;
	g_hash_table_iter_init(&it, h);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		arr[*n].key = k;
		arr[*n].c = v;
		(*n)++;
	}
	qsort(arr, *n, sizeof(*arr), cmp);
	return arr;
}

void audit_tally_print(const struct audit_tally *t, FILE *fp, size_t top)
{
	struct item *it;
	size_t n;

	fprintf(fp, "decisions: %lu", t->decisions);
	if (t->decisions)
		fprintf(fp, " (%s .. %s)", t->first, t->last);
	fprintf(fp, "\n\nper action:\n");
	for (int i = 0; i < A_COUNT; i++)
		if (i != A_OTHER || t->actions[i])
			fprintf(fp, "  %-12s %lu\n", action_names[i], t->actions[i]);
	fprintf(fp, "  %-12s %lu\n", "exceptions", t->exceptions);

	fprintf(fp, "\nper rule (fired / blocked):\n");
	it = items(t->rules, &n, by_total_desc);
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "  %-26s %lu / %lu\n", it[i].key, it[i].c->total, it[i].c->blocked);
	if (n == 0)
		fprintf(fp, "  (none)\n");
	free(it);

	fprintf(fp, "\nper day (decisions / blocked):\n");
	it = items(t->days, &n, by_key);
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "  %-12s %lu / %lu\n", it[i].key, it[i].c->total, it[i].c->blocked);
	free(it);

	it = items(t->fax, &n, by_key);
	if (n > 0) {
		fprintf(fp, "\nfax bridge events:\n");
		for (size_t i = 0; i < n; i++)
			fprintf(fp, "  %-14s %lu\n", it[i].key, it[i].c->total);
	}
	free(it);

	fprintf(fp, "\nper recipient class (recipients / in blocked mail):\n");
	it = items(t->classes, &n, by_total_desc);
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "  %-12s %lu / %lu\n", it[i].key, it[i].c->total, it[i].c->blocked);
	free(it);

	fprintf(fp, "\ntop senders (decisions / blocked):\n");
	it = items(t->senders, &n, by_total_desc);
	for (size_t i = 0; i < n && i < top; i++)
		fprintf(fp, "  %-40s %lu / %lu\n", it[i].key, it[i].c->total, it[i].c->blocked);
	free(it);
}

/* ---- HTML ---- */

static void html_esc(FILE *fp, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '&':
			fputs("&amp;", fp);
			break;
		case '"':
			fputs("&quot;", fp);
			break;
		case '\'':
			fputs("&#39;", fp);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fputc('?', fp);
			else
				fputc(*p, fp);
		}
	}
}

/* Horizontal bars: one row per item, value = blocked or total. */
static void svg_hbars(FILE *fp, const char *id, const struct item *it, size_t n, int blocked,
                      const char *color)
{
	const int w = 1000, label_w = 260, row = 26;
	unsigned long max = 1;
	int h = (int)(n > 0 ? n : 1) * row + 10;

	for (size_t i = 0; i < n; i++) {
		unsigned long v = blocked ? it[i].c->blocked : it[i].c->total;
		if (v > max)
			max = v;
	}
	fprintf(fp,
	        "<svg id=\"%s\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	        "height=\"%d\" viewBox=\"0 0 %d %d\">\n",
	        id, w, h, w, h);
	if (n == 0)
		fprintf(fp, "<text x=\"10\" y=\"20\" class=\"none\">none</text>\n");
	for (size_t i = 0; i < n; i++) {
		unsigned long v = blocked ? it[i].c->blocked : it[i].c->total;
		int y = (int)i * row + 5;
		int bw = (int)((double)(w - label_w - 80) * (double)v / (double)max);
		fprintf(fp, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label_w - 8, y + 17);
		html_esc(fp, it[i].key);
		fprintf(fp,
		        "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>"
		        "<text x=\"%d\" y=\"%d\">%lu</text>\n",
		        label_w, y + 3, bw > 0 ? bw : 1, row - 8, color, label_w + bw + 6, y + 17,
		        v);
	}
	fprintf(fp, "</svg>\n");
}

/* Vertical bars per day: total decisions (light) and blocked (dark). */
static void svg_days(FILE *fp, const struct item *it, size_t n)
{
	const int w = 1000, h = 300, left = 50, bottom = 60, top = 20;
	unsigned long max = 1;
	double slot;

	for (size_t i = 0; i < n; i++)
		if (it[i].c->total > max)
			max = it[i].c->total;
	slot = n > 0 ? (double)(w - left - 10) / (double)n : 1;
	fprintf(fp,
	        "<svg id=\"chart-days\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" "
	        "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n",
	        w, h, w, h);
	fprintf(fp,
	        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>"
	        "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%lu</text>"
	        "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n",
	        left, h - bottom, w - 10, h - bottom, left - 6, top + 5, max, left - 6, h - bottom);
	if (n == 0)
		fprintf(fp, "<text x=\"%d\" y=\"%d\" class=\"none\">none</text>\n", left + 10,
		        h / 2);
	for (size_t i = 0; i < n; i++) {
		double x = left + slot * (double)i + slot * 0.1, bw = slot * 0.8;
		double ht = (double)(h - bottom - top) * (double)it[i].c->total / (double)max;
		double hb = (double)(h - bottom - top) * (double)it[i].c->blocked / (double)max;
		fprintf(
		    fp,
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#b8cfe6\">"
		    "<title>",
		    x, (double)(h - bottom) - ht, bw, ht);
		html_esc(fp, it[i].key);
		fprintf(
		    fp,
		    ": %lu decisions</title></rect>"
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#b3261e\">"
		    "<title>",
		    it[i].c->total, x, (double)(h - bottom) - hb, bw, hb);
		html_esc(fp, it[i].key);
		fprintf(fp, ": %lu blocked</title></rect>\n", it[i].c->blocked);
		if (n <= 31 || i % (n / 31 + 1) == 0) {
			fprintf(fp,
			        "<text x=\"%.1f\" y=\"%d\" transform=\"rotate(-45 %.1f %d)\" "
			        "text-anchor=\"end\" class=\"small\">",
			        x + bw / 2, h - bottom + 14, x + bw / 2, h - bottom + 14);
			html_esc(fp, it[i].key);
			fprintf(fp, "</text>\n");
		}
	}
	fprintf(fp, "</svg>\n");
}

int audit_tally_html(const struct audit_tally *t, FILE *fp, const char *title, const char *period)
{
	struct item *it;
	size_t n;
	char now[40];

	audit_now(now, sizeof(now));
	fputs("<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'; img-src data:\">\n<title>",
	      fp);
	html_esc(fp, title);
	fputs("</title>\n<style>\n"
	      "body{font-family:DejaVu Sans,Liberation Sans,Arial,sans-serif;margin:24px;"
	      "color:#1d1d1d;background:#fff}\n"
	      "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;"
	      "border-bottom:1px solid #ccc}\n"
	      ".meta{color:#555;font-size:13px}\n"
	      "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;"
	      "padding:4px 10px;text-align:left}td.n{text-align:right}\n"
	      "svg text{font-size:13px;fill:#1d1d1d}svg text.small{font-size:11px}"
	      "svg text.none{fill:#777}\n"
	      ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px}\n"
	      "</style>\n</head>\n<body>\n<h1>",
	      fp);
	html_esc(fp, title);
	fputs("</h1>\n<p class=\"meta\">P&eacute;riode / period: ", fp);
	html_esc(fp, period);
	fputs(" &mdash; g&eacute;n&eacute;r&eacute; le / generated ", fp);
	html_esc(fp, now);
	fputs(". Aucun contenu clinique n'est enregistr&eacute; dans la piste d'audit / "
	      "no clinical content is kept in the audit trail.</p>\n",
	      fp);

	fputs("<h2>Totaux / totals</h2>\n<table id=\"totals\">\n", fp);
	fprintf(fp,
	        "<tr><th>D&eacute;cisions / decisions</th><td class=\"n\" "
	        "id=\"total-decisions\">%lu</td></tr>\n",
	        t->decisions);
	fprintf(fp,
	        "<tr><th>Bloqu&eacute;s / blocked (rejected + held)</th><td class=\"n\" "
	        "id=\"total-blocked\">%lu</td></tr>\n",
	        t->blocked);
	for (int i = 0; i < A_COUNT; i++)
		if (i != A_OTHER || t->actions[i])
			fprintf(fp,
			        "<tr><th>%s</th><td class=\"n\" id=\"total-%s\">%lu</td></tr>\n",
			        action_names[i], action_names[i], t->actions[i]);
	fprintf(fp,
	        "<tr><th>Exceptions (sensitive-topic)</th><td class=\"n\" "
	        "id=\"total-exceptions\">%lu</td></tr>\n</table>\n",
	        t->exceptions);

	fputs("<h2>Blocages par jour / blocks per day</h2>\n<p class=\"legend\">"
	      "<span style=\"background:#b8cfe6\"></span>d&eacute;cisions / decisions"
	      "<span style=\"background:#b3261e\"></span>bloqu&eacute;s / blocked</p>\n",
	      fp);
	it = items(t->days, &n, by_key);
	svg_days(fp, it, n);
	free(it);

	fputs("<h2>Blocages par r&egrave;gle / blocks per rule</h2>\n", fp);
	it = items(t->rules, &n, by_blocked_desc);
	{
		size_t nb = 0;
		while (nb < n && it[nb].c->blocked > 0)
			nb++;
		svg_hbars(fp, "chart-rules", it, nb, 1, "#b3261e");
	}
	fputs("<table id=\"rules\"><tr><th>R&egrave;gle / rule</th><th>d&eacute;clench&eacute;e / "
	      "fired</th><th>bloquante / blocking</th></tr>\n",
	      fp);
	for (size_t i = 0; i < n; i++) {
		fputs("<tr><td>", fp);
		html_esc(fp, it[i].key);
		fprintf(fp, "</td><td class=\"n\">%lu</td><td class=\"n\">%lu</td></tr>\n",
		        it[i].c->total, it[i].c->blocked);
	}
	fputs("</table>\n", fp);
	free(it);

	fputs("<h2>Blocages par classe de destinataire / blocks per recipient class</h2>\n", fp);
	it = items(t->classes, &n, by_blocked_desc);
	{
		size_t nb = 0;
		while (nb < n && it[nb].c->blocked > 0)
			nb++;
		svg_hbars(fp, "chart-classes", it, nb, 1, "#7b4fa0");
	}
	free(it);

	fputs("<h2>Principaux exp&eacute;diteurs / top senders</h2>\n<table id=\"senders\">"
	      "<tr><th>Exp&eacute;diteur / sender</th><th>d&eacute;cisions</th>"
	      "<th>bloqu&eacute;s / blocked</th></tr>\n",
	      fp);
	it = items(t->senders, &n, by_blocked_desc);
	for (size_t i = 0; i < n && i < 20; i++) {
		fputs("<tr><td>", fp);
		html_esc(fp, it[i].key);
		fprintf(fp, "</td><td class=\"n\">%lu</td><td class=\"n\">%lu</td></tr>\n",
		        it[i].c->total, it[i].c->blocked);
	}
	fputs("</table>\n", fp);
	free(it);

	it = items(t->fax, &n, by_key);
	if (n > 0) {
		fputs("<h2>T&eacute;l&eacute;copies / faxes</h2>\n<table id=\"fax\">"
		      "<tr><th>&Eacute;v&eacute;nement / event</th><th>nombre / count</th></tr>\n",
		      fp);
		for (size_t i = 0; i < n; i++) {
			fputs("<tr><td>", fp);
			html_esc(fp, it[i].key);
			fprintf(fp, "</td><td class=\"n\">%lu</td></tr>\n", it[i].c->total);
		}
		fputs("</table>\n", fp);
	}
	free(it);
	fputs("</body>\n</html>\n", fp);
	return ferror(fp) ? -1 : 0;
}
