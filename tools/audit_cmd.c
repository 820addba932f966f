/*
 * audit_cmd.c — `clinimail audit`: what a security officer does with the
 * audit trail.  list / show / stats / export (CSV, JSON) / report (one
 * self-contained HTML page) / verify (the hash chain) / purge (retention).
 * The store comes from --store SPEC, or from AuditStore in clinimail.conf
 * (-c CONF, default the installed one); the HMAC key from --key or AuditKey.
 * Everything printed comes from the store and is treated as hostile: control
 * characters are replaced, CSV cells cannot start a formula, HTML is escaped.
 */
#include "autoconfig.h"

#include "audit.h"
#include "audit_cmd.h"
#include "config.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/clinimail/clinimail.conf"

#define EXIT_BROKEN 1
#define EXIT_ERR 2

static void usage(FILE *fp)
{
	fprintf(
	    fp,
	    "usage: clinimail audit COMMAND [-c CONF | --store SPEC] [--key FILE] [options]\n"
	    "commands:\n"
	    "  list   [FILTERS]                 one line per record\n"
	    "  show   REF                       every field of the record(s) with that reference\n"
	    "  stats  [FILTERS] [--top N]       per action, rule, day, recipient class; top "
	    "senders\n"
	    "  export --csv|--json [FILTERS] [-o FILE]\n"
	    "  report --html FILE [FILTERS] [--title TEXT]\n"
	    "  verify                           check the hash chain (exit 1 when broken)\n"
	    "  purge  --before DATE             delete older records, keep the chain verifiable\n"
	    "filters: --since DATE --until DATE (inclusive day) --sender ADDR --rcpt ADDR\n"
	    "         --domain DOMAIN --rule RULE --action "
	    "accepted|modified|rejected|held|tempfailed\n"
	    "         --ref REF --kind decision|anchor|fax-submitted|fax-delivered|fax-failed|\n"
	    "         fax-destroyed\n"
	    "DATE: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC).  Store SPEC: sqlite:/path or\n"
	    "pgsql:conninfo; default: AuditStore of %s.\n"
	    "Exit status: 0 ok, 1 verify found the chain broken, 2 error.\n",
	    DEFAULT_CONF);
}

struct opts {
	const char *conf, *store, *key;
	char since[40], until[40], before[40];
	const char *sender, *rcpt, *domain, *rule, *action, *ref, *kind;
	int csv, json;
	const char *out, *html, *title;
	long top;
	int have_since, have_until, have_before;
};

/* ---- output hygiene ---- */

/* Print s with control characters replaced (a tampered store must not drive the terminal). */
static void put_safe(FILE *fp, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, fp);
}

/* ---- filters ---- */

static int recipient_matches(const char *recipients, const char *addr, const char *domain)
{
	for (const char *p = recipients; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *sp = memchr(p, ' ', len);
		if (sp != NULL) {
			const char *a = sp + 1;
			size_t alen = len - (size_t)(a - p);
			if (addr != NULL && alen == strlen(addr) && strncasecmp(a, addr, alen) == 0)
				return 1;
			if (domain != NULL) {
				const char *at = memchr(a, '@', alen);
				size_t dl = strlen(domain);
				if (at != NULL) {
					const char *d = at + 1;
					size_t dlen = alen - (size_t)(d - a);
					if ((dlen == dl && strncasecmp(d, domain, dl) == 0) ||
					    (dlen > dl && d[dlen - dl - 1] == '.' &&
					     strncasecmp(d + dlen - dl, domain, dl) == 0))
						return 1;
				}
			}
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	return 0;
}

static int rule_matches(const char *rules, const char *rule)
{
	size_t rl = strlen(rule);
	for (const char *p = rules; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *colon = memchr(p, ':', len);
		size_t nl = colon ? (size_t)(colon - p) : len;
		if (nl == rl && strncmp(p, rule, rl) == 0)
			return 1;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int matches(const struct opts *o, const struct audit_record *r)
{
	if (o->sender && strcasecmp(r->sender, o->sender) != 0)
		return 0;
	if (o->rcpt && !recipient_matches(r->recipients, o->rcpt, NULL))
		return 0;
	if (o->domain && !recipient_matches(r->recipients, NULL, o->domain))
		return 0;
	if (o->rule && !rule_matches(r->rules, o->rule))
		return 0;
	if (o->action && strcmp(r->action, o->action) != 0)
		return 0;
	return 1;
}

static void query_of(const struct opts *o, struct audit_query *q)
{
	memset(q, 0, sizeof(*q));
	q->since = o->have_since ? o->since : NULL;
	q->until = o->have_until ? o->until : NULL;
	q->ref = o->ref;
	q->kind = o->kind;
}

/* ---- list / show ---- */

struct out_ctx {
	const struct opts *o;
	FILE *fp;
	unsigned long n;
	struct audit_tally *tally;
};

static void print_recipients_inline(FILE *fp, const char *recipients)
{
	int first = 1;
	for (const char *p = recipients; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *sp = memchr(p, ' ', len);
		char *cls = xstrndup(p, sp ? (size_t)(sp - p) : len);
		char *addr = sp ? xstrndup(sp + 1, len - (size_t)(sp + 1 - p)) : xstrdup("?");
		fputs(first ? "" : ",", fp);
		put_safe(fp, addr);
		fputc('(', fp);
		put_safe(fp, cls);
		fputc(')', fp);
		free(cls);
		free(addr);
		first = 0;
		p += len;
		if (*p == '\n')
			p++;
	}
	if (first)
		fputc('-', fp);
}

static int list_cb(const struct audit_record *r, void *arg)
{
	struct out_ctx *c = arg;

	if (!matches(c->o, r))
		return 0;
	c->n++;
	put_safe(c->fp, r->time);
	fputc(' ', c->fp);
	if (strncmp(r->kind, "fax-", 4) == 0) {
		/* a fax bridge event: the decision's reference, what happened, to which number */
		put_safe(c->fp, r->ref[0] ? r->ref : "-");
		fputs(" (", c->fp);
		put_safe(c->fp, r->kind);
		fputs(") ", c->fp);
		put_safe(c->fp, r->detail);
		fputc(' ', c->fp);
		put_safe(c->fp, r->sender);
		fputs(" -> ", c->fp);
		print_recipients_inline(c->fp, r->recipients);
		fputc('\n', c->fp);
		return 0;
	}
	if (strcmp(r->kind, "decision") != 0) {
		fputc('(', c->fp);
		put_safe(c->fp, r->kind);
		fputs(") ", c->fp);
		put_safe(c->fp, r->detail);
		fputc('\n', c->fp);
		return 0;
	}
	put_safe(c->fp, r->ref[0] ? r->ref : "-");
	fputc(' ', c->fp);
	put_safe(c->fp, r->action);
	fputc(' ', c->fp);
	put_safe(c->fp, r->rules[0] ? r->rules : "-");
	if (r->exception)
		fputs(" exception", c->fp);
	fputc(' ', c->fp);
	put_safe(c->fp, r->sender);
	fputs(" -> ", c->fp);
	print_recipients_inline(c->fp, r->recipients);
	fputc('\n', c->fp);
	return 0;
}

static void show_field(FILE *fp, const char *name, const char *value)
{
	fprintf(fp, "%-14s ", name);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p == '\n')
			fprintf(fp, "\n%-14s ", "");
		else
			fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, fp);
	}
	fputc('\n', fp);
}

static int show_cb(const struct audit_record *r, void *arg)
{
	struct out_ctx *c = arg;
	char id[32];

	if (c->n++ > 0)
		fputc('\n', c->fp);
	snprintf(id, sizeof(id), "%lld", r->id);
	show_field(c->fp, "id:", id);
	show_field(c->fp, "kind:", r->kind);
	show_field(c->fp, "time:", r->time);
	show_field(c->fp, "host:", r->host);
	show_field(c->fp, "ref:", r->ref);
	show_field(c->fp, "queue-id:", r->queue_id);
	show_field(c->fp, "message-id:", r->message_id);
	show_field(c->fp, "sender:", r->sender);
	show_field(c->fp, "auth-login:", r->auth_login);
	show_field(c->fp, "recipients:", r->recipients);
	show_field(c->fp, "rules:", r->rules);
	show_field(c->fp, "action:", r->action);
	show_field(c->fp, "changes:", r->changes);
	show_field(c->fp, "content:", r->content);
	show_field(c->fp, "body-sha256:", r->body_sha256);
	show_field(c->fp, "exception:", r->exception ? "yes" : "no");
	if (r->exception)
		show_field(c->fp, "justification:", r->justification);
	if (r->exception)
		show_field(c->fp, "", "(text written by the sender, not verified)");
	show_field(c->fp, "detail:", r->detail);
	show_field(c->fp, "prev-hash:", r->prev_hash);
	show_field(c->fp, "hash:", r->hash);
	return 0;
}

/* ---- export ---- */

static void csv_cell(FILE *fp, const char *s, int last)
{
	/* A cell a spreadsheet would take for a formula gets a leading quote. */
	fputc('"', fp);
	if (strchr("=+-@", s[0]) != NULL && s[0] != '\0')
		fputc('\'', fp);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"')
			fputs("\"\"", fp);
		else if (*p == '\n')
			fputs("; ", fp);
		else
			fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, fp);
	}
	fputc('"', fp);
	fputs(last ? "\r\n" : ",", fp);
}

static int csv_cb(const struct audit_record *r, void *arg)
{
	struct out_ctx *c = arg;
	char id[32];
	const char *cells[20];

	if (!matches(c->o, r))
		return 0;
	c->n++;
	snprintf(id, sizeof(id), "%lld", r->id);
	cells[0] = id;
	cells[1] = r->kind;
	cells[2] = r->time;
	cells[3] = r->host;
	cells[4] = r->ref;
	cells[5] = r->queue_id;
	cells[6] = r->message_id;
	cells[7] = r->sender;
	cells[8] = r->auth_login;
	cells[9] = r->recipients;
	cells[10] = r->rules;
	cells[11] = r->action;
	cells[12] = r->changes;
	cells[13] = r->content;
	cells[14] = r->body_sha256;
	cells[15] = r->exception ? "yes" : "no";
	cells[16] = r->justification;
	cells[17] = r->detail;
	cells[18] = r->prev_hash;
	cells[19] = r->hash;
	for (int i = 0; i < 20; i++)
		csv_cell(c->fp, cells[i], i == 19);
	return 0;
}

static void json_str(FILE *fp, const char *s, size_t n)
{
	fputc('"', fp);
	for (size_t i = 0; i < n && s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			fprintf(fp, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(fp, "\\u%04x", ch);
		else
			fputc(ch, fp);
	}
	fputc('"', fp);
}

static void json_field(FILE *fp, const char *name, const char *value)
{
	fprintf(fp, ",\"%s\":", name);
	json_str(fp, value, strlen(value));
}

static int json_cb(const struct audit_record *r, void *arg)
{
	struct out_ctx *c = arg;
	FILE *fp = c->fp;
	int first;

	if (!matches(c->o, r))
		return 0;
	fputs(c->n++ ? ",\n" : "\n", fp);
	fprintf(fp, "{\"id\":%lld", r->id);
	json_field(fp, "kind", r->kind);
	json_field(fp, "time", r->time);
	json_field(fp, "host", r->host);
	json_field(fp, "ref", r->ref);
	json_field(fp, "queue_id", r->queue_id);
	json_field(fp, "message_id", r->message_id);
	json_field(fp, "sender", r->sender);
	json_field(fp, "auth_login", r->auth_login);
	fputs(",\"recipients\":[", fp);
	first = 1;
	for (const char *p = r->recipients; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *sp = memchr(p, ' ', len);
		size_t head = sp ? (size_t)(sp - p) : len;
		const char *comma = memchr(p, ',', head);
		size_t cl = comma ? (size_t)(comma - p) : head;
		char *flags = xstrndup(p, head);
		fputs(first ? "{\"class\":" : ",{\"class\":", fp);
		json_str(fp, p, cl);
		fprintf(fp, ",\"fax\":%s,\"added\":%s,\"address\":",
		        strstr(flags, ",fax") ? "true" : "false",
		        strstr(flags, ",added") ? "true" : "false");
		if (sp)
			json_str(fp, sp + 1, len - head - 1);
		else
			fputs("\"\"", fp);
		fputc('}', fp);
		free(flags);
		first = 0;
		p += len;
		if (*p == '\n')
			p++;
	}
	fputs("],\"rules\":[", fp);
	first = 1;
	for (const char *p = r->rules; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *colon = memchr(p, ':', len);
		size_t nl = colon ? (size_t)(colon - p) : len;
		fputs(first ? "{\"rule\":" : ",{\"rule\":", fp);
		json_str(fp, p, nl);
		fputs(",\"action\":", fp);
		if (colon)
			json_str(fp, colon + 1, len - nl - 1);
		else
			fputs("\"\"", fp);
		fputc('}', fp);
		first = 0;
		p += len;
		if (*p == ',')
			p++;
	}
	fputc(']', fp);
	json_field(fp, "action", r->action);
	json_field(fp, "changes", r->changes);
	json_field(fp, "content", r->content);
	json_field(fp, "body_sha256", r->body_sha256);
	fprintf(fp, ",\"exception\":%s", r->exception ? "true" : "false");
	json_field(fp, "justification_sender_provided", r->justification);
	json_field(fp, "detail", r->detail);
	json_field(fp, "prev_hash", r->prev_hash);
	json_field(fp, "hash", r->hash);
	fputc('}', fp);
	return 0;
}

static int tally_cb(const struct audit_record *r, void *arg)
{
	struct out_ctx *c = arg;
	if (matches(c->o, r)) {
		c->n++;
		audit_tally_add(c->tally, r);
	}
	return 0;
}

/* ---- store and key from the options or clinimail.conf ---- */

static int resolve_store(const struct opts *o, char **spec, char **keyfile)
{
	char err[1024];
	struct cm_config *cfg;
	const char *conf = o->conf ? o->conf : DEFAULT_CONF;

	*spec = o->store ? xstrdup(o->store) : NULL;
	*keyfile = o->key ? xstrdup(o->key) : NULL;
	if (*spec != NULL && (*keyfile != NULL || o->conf == NULL))
		return 0;
	cfg = config_load(conf, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "clinimail audit: %s\n", err);
		if (o->conf == NULL && *spec == NULL)
			fprintf(stderr,
			        "clinimail audit: give the store with --store SPEC or -c CONF\n");
		return -1;
	}
	if (*spec == NULL) {
		if (cfg->audit_store == NULL || strcmp(cfg->audit_store, "none") == 0) {
			fprintf(stderr,
			        "clinimail audit: %s: AuditStore is none (log lines only)\n", conf);
			config_unref(cfg);
			return -1;
		}
		*spec = xstrdup(cfg->audit_store);
	}
	if (*keyfile == NULL && cfg->audit_key_file != NULL)
		*keyfile = xstrdup(cfg->audit_key_file);
	config_unref(cfg);
	return 0;
}

static FILE *open_out(const char *path)
{
	FILE *fp;
	if (path == NULL || strcmp(path, "-") == 0)
		return stdout;
	fp = fopen(path, "w");
	if (fp == NULL)
		fprintf(stderr, "clinimail audit: %s: cannot write: %m\n", path);
	return fp;
}

static int close_out(FILE *fp, const char *path)
{
	int bad = ferror(fp);
	if (fp != stdout)
		bad |= fclose(fp) != 0;
	else
		bad |= fflush(fp) != 0;
	if (bad) {
		fprintf(stderr, "clinimail audit: %s: write error\n", path ? path : "stdout");
		return -1;
	}
	return 0;
}

static void period_text(const struct opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s .. %s%s", o->have_since ? o->since : "(start)",
	         o->have_until ? o->until : "(now)", o->have_until ? " (exclusive)" : "");
}

int cmd_audit(int argc, char **argv)
{
	enum {
		O_STORE = 256,
		O_KEY,
		O_SINCE,
		O_UNTIL,
		O_SENDER,
		O_RCPT,
		O_DOMAIN,
		O_RULE,
		O_ACTION,
		O_REF,
		O_KIND,
		O_CSV,
		O_JSON,
		O_HTML,
		O_TITLE,
		O_BEFORE,
		O_TOP
	};
	static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
	                                         {"store", required_argument, NULL, O_STORE},
	                                         {"key", required_argument, NULL, O_KEY},
	                                         {"since", required_argument, NULL, O_SINCE},
	                                         {"until", required_argument, NULL, O_UNTIL},
	                                         {"sender", required_argument, NULL, O_SENDER},
	                                         {"rcpt", required_argument, NULL, O_RCPT},
	                                         {"domain", required_argument, NULL, O_DOMAIN},
	                                         {"rule", required_argument, NULL, O_RULE},
	                                         {"action", required_argument, NULL, O_ACTION},
	                                         {"ref", required_argument, NULL, O_REF},
	                                         {"kind", required_argument, NULL, O_KIND},
	                                         {"csv", no_argument, NULL, O_CSV},
	                                         {"json", no_argument, NULL, O_JSON},
	                                         {"html", required_argument, NULL, O_HTML},
	                                         {"title", required_argument, NULL, O_TITLE},
	                                         {"before", required_argument, NULL, O_BEFORE},
	                                         {"top", required_argument, NULL, O_TOP},
	                                         {"output", required_argument, NULL, 'o'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	struct opts o;
	const char *cmd;
	char *spec = NULL, *keyfile = NULL, err[1024];
	struct audit_store *s = NULL;
	struct audit_key key;
	struct audit_query q;
	struct out_ctx c;
	int ch, rc = EXIT_ERR;

	memset(&o, 0, sizeof(o));
	memset(&key, 0, sizeof(key));
	o.top = 10;
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_ERR : 0;
	}
	cmd = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.conf = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case O_STORE:
			o.store = optarg;
			break;
		case O_KEY:
			o.key = optarg;
			break;
		case O_SINCE:
		case O_UNTIL:
		case O_BEFORE: {
			char *dst = ch == O_SINCE ? o.since : ch == O_UNTIL ? o.until : o.before;
			if (audit_parse_date(optarg, ch == O_UNTIL, dst, sizeof(o.since)) != 0) {
				fprintf(stderr, "clinimail audit: bad date \"%s\" (YYYY-MM-DD)\n",
				        optarg);
				return EXIT_ERR;
			}
			if (ch == O_SINCE)
				o.have_since = 1;
			else if (ch == O_UNTIL)
				o.have_until = 1;
			else
				o.have_before = 1;
			break;
		}
		case O_SENDER:
			o.sender = optarg;
			break;
		case O_RCPT:
			o.rcpt = optarg;
			break;
		case O_DOMAIN:
			o.domain = optarg;
			break;
		case O_RULE:
			if (rule_from_name(optarg) < 0) {
				fprintf(stderr, "clinimail audit: unknown rule \"%s\"\n", optarg);
				return EXIT_ERR;
			}
			o.rule = optarg;
			break;
		case O_ACTION:
			if (strcmp(optarg, "accepted") && strcmp(optarg, "modified") &&
			    strcmp(optarg, "rejected") && strcmp(optarg, "held") &&
			    strcmp(optarg, "tempfailed") && strcmp(optarg, "purged")) {
				fprintf(stderr, "clinimail audit: unknown action \"%s\"\n", optarg);
				return EXIT_ERR;
			}
			o.action = optarg;
			break;
		case O_REF:
			o.ref = optarg;
			break;
		case O_KIND:
			o.kind = optarg;
			break;
		case O_CSV:
			o.csv = 1;
			break;
		case O_JSON:
			o.json = 1;
			break;
		case O_HTML:
			o.html = optarg;
			break;
		case O_TITLE:
			o.title = optarg;
			break;
		case O_TOP:
			o.top = strtol(optarg, NULL, 10);
			if (o.top <= 0)
				o.top = 10;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_ERR;
		}
	}
	if (strcmp(cmd, "show") == 0) {
		if (optind != argc - 1) {
			fprintf(stderr, "clinimail audit show: give one reference\n");
			return EXIT_ERR;
		}
		o.ref = argv[optind];
	} else if (optind != argc) {
		fprintf(stderr, "clinimail audit %s: unexpected argument \"%s\"\n", cmd,
		        argv[optind]);
		return EXIT_ERR;
	}
	if (strcmp(cmd, "list") && strcmp(cmd, "show") && strcmp(cmd, "stats") &&
	    strcmp(cmd, "export") && strcmp(cmd, "report") && strcmp(cmd, "verify") &&
	    strcmp(cmd, "purge")) {
		fprintf(stderr, "clinimail audit: unknown command \"%s\"\n", cmd);
		usage(stderr);
		return EXIT_ERR;
	}
	if (strcmp(cmd, "export") == 0 && o.csv + o.json != 1) {
		fprintf(stderr, "clinimail audit export: give --csv or --json\n");
		return EXIT_ERR;
	}
	if (strcmp(cmd, "report") == 0 && o.html == NULL) {
		fprintf(stderr, "clinimail audit report: give --html FILE\n");
		return EXIT_ERR;
	}
	if (strcmp(cmd, "purge") == 0 && !o.have_before) {
		fprintf(stderr, "clinimail audit purge: give --before DATE\n");
		return EXIT_ERR;
	}

	if (resolve_store(&o, &spec, &keyfile) != 0)
		goto out;
	if (keyfile != NULL && (strcmp(cmd, "verify") == 0 || strcmp(cmd, "purge") == 0) &&
	    audit_key_load(keyfile, &key, err, sizeof(err)) != 0) {
		fprintf(stderr, "clinimail audit: %s\n", err);
		goto out;
	}
	s = audit_store_open(spec, 0, NULL, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "clinimail audit: %s\n", err);
		goto out;
	}
	query_of(&o, &q);
	memset(&c, 0, sizeof(c));
	c.o = &o;

	if (strcmp(cmd, "list") == 0 || strcmp(cmd, "show") == 0) {
		c.fp = stdout;
		if (audit_store_scan(s, &q, cmd[0] == 'l' ? list_cb : show_cb, &c, err,
		                     sizeof(err)) != 0) {
			fprintf(stderr, "clinimail audit: %s\n", err);
			goto out;
		}
		if (cmd[0] == 's' && c.n == 0) {
			fprintf(stderr, "clinimail audit show: no record with reference %s\n",
			        o.ref);
			goto out;
		}
		rc = close_out(stdout, NULL) == 0 ? 0 : EXIT_ERR;
	} else if (strcmp(cmd, "export") == 0) {
		c.fp = open_out(o.out);
		if (c.fp == NULL)
			goto out;
		if (o.csv)
			fputs(
			    "\"id\",\"kind\",\"time\",\"host\",\"ref\",\"queue_id\",\"message_id\","
			    "\"sender\",\"auth_login\",\"recipients\",\"rules\",\"action\","
			    "\"changes\","
			    "\"content\",\"body_sha256\",\"exception\","
			    "\"justification_sender_provided\",\"detail\",\"prev_hash\","
			    "\"hash\"\r\n",
			    c.fp);
		else
			fputc('[', c.fp);
		int src = audit_store_scan(s, &q, o.csv ? csv_cb : json_cb, &c, err, sizeof(err));
		if (o.json)
			fputs("\n]\n", c.fp);
		if (close_out(c.fp, o.out) != 0 || src != 0) {
			if (src != 0)
				fprintf(stderr, "clinimail audit: %s\n", err);
			goto out;
		}
		fprintf(stderr, "clinimail audit: exported %lu record(s)\n", c.n);
		rc = 0;
	} else if (strcmp(cmd, "stats") == 0 || strcmp(cmd, "report") == 0) {
		char period[128];
		c.tally = audit_tally_new();
		if (audit_store_scan(s, &q, tally_cb, &c, err, sizeof(err)) != 0) {
			fprintf(stderr, "clinimail audit: %s\n", err);
			audit_tally_free(c.tally);
			goto out;
		}
		period_text(&o, period, sizeof(period));
		if (cmd[1] == 't') {
			printf("period: %s\n", period);
			audit_tally_print(c.tally, stdout, (size_t)o.top);
			rc = close_out(stdout, NULL) == 0 ? 0 : EXIT_ERR;
		} else {
			FILE *fp = open_out(o.html);
			if (fp != NULL) {
				int hr = audit_tally_html(
				    c.tally, fp,
				    o.title ? o.title
				            : "clinimail \xe2\x80\x94 piste d'audit / audit trail",
				    period);
				if (close_out(fp, o.html) == 0 && hr == 0) {
					fprintf(stderr,
					        "clinimail audit: report of %lu record(s) written "
					        "to %s\n",
					        c.n, o.html);
					rc = 0;
				}
			}
		}
		audit_tally_free(c.tally);
	} else if (strcmp(cmd, "verify") == 0) {
		struct audit_verify_result res;
		char mode[96];
		int vr = audit_verify(s, &key, &res, err, sizeof(err));
		audit_key_mode(&key, mode, sizeof(mode));
		if (vr < 0) {
			fprintf(stderr, "clinimail audit verify: %s\n", err);
		} else if (vr > 0) {
			printf("audit chain BROKEN at record id %lld (ref ", res.bad_id);
			put_safe(stdout, res.bad_ref[0] ? res.bad_ref : "-");
			printf("): %s\n", res.reason);
			printf("%lld record(s) checked before the break\n",
			       res.records > 0 ? res.records - 1 : 0);
			rc = EXIT_BROKEN;
		} else {
			printf("audit chain intact: %lld record(s), %s\n", res.records, mode);
			rc = 0;
		}
	} else if (strcmp(cmd, "purge") == 0) {
		long long purged = 0;
		char host[256];
		if (gethostname(host, sizeof(host) - 1) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		char mode[96], smode[96];
		audit_key_mode(&key, mode, sizeof(mode));
		if (audit_store_mode(s, smode, sizeof(smode), err, sizeof(err)) != 0) {
			fprintf(stderr, "clinimail audit purge: %s\n", err);
			goto out;
		}
		if (strcmp(mode, smode) != 0) {
			fprintf(stderr,
			        "clinimail audit purge: the store's chain mode is %s; the anchor "
			        "record needs %s\n",
			        smode,
			        strncmp(smode, "hmac", 4) == 0 ? "its key (--key FILE)" : "no key");
			goto out;
		}
		if (audit_store_purge(s, o.before, &key, host, &purged, err, sizeof(err)) != 0) {
			fprintf(stderr, "clinimail audit purge: %s\n", err);
			goto out;
		}
		if (purged > 0)
			printf("purged %lld record(s) before %s; anchor record added\n", purged,
			       o.before);
		else
			printf("nothing to purge before %s\n", o.before);
		rc = 0;
	}
out:
	audit_store_close(s);
	free(spec);
	free(keyfile);
	return rc;
}
