/*
 * clinimail.c — the command-line tool.  `clinimail check` runs the policy
 * engine offline on one message, exactly as clinimail-milter would at end of
 * message, and prints the verdict (text or --json).  Exit status: 0 accept,
 * 1 reject, 2 hold, 3 tempfail or error (see clinimail(1)).
 */
#include "autoconfig.h"

#include "config.h"
#include "mime_text.h"
#include "policy.h"
#include "secure_mail.h"
#include "util.h"
#include "audit_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_TOOL_ERROR 3

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/clinimail/clinimail.conf"

static void usage(FILE *fp)
{
	fprintf(fp,
	        "usage: clinimail check [-c CONF] --from ADDR [--auth LOGIN] [--client-ip IP]\n"
	        "                       [--helo NAME] --rcpt ADDR [--rcpt ADDR ...] [--json] "
	        "[--explain]\n"
	        "                       [--output FILE] [--notice FILE]\n"
	        "                       [FILE|-]\n"
	        "       clinimail audit list|show|stats|export|report|verify|purge ... (see "
	        "clinimail(1))\n"
	        "       clinimail version\n"
	        "Runs the clinimail policy on one message as the milter would.\n"
	        "Exit status: 0 accept, 1 reject, 2 hold, 3 tempfail or error.\n"
	        "Default configuration: %s\n",
	        DEFAULT_CONF);
}

/* Read all of fp; returns the bytes (NUL-terminated for safety) and their length. */
static char *slurp(FILE *fp, size_t *len)
{
	struct strbuf sb;
	char buf[65536];
	size_t n;

	sb_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sb_append(&sb, buf, n);
	if (ferror(fp)) {
		sb_free(&sb);
		return NULL;
	}
	*len = sb.len;
	return sb_steal(&sb);
}

static void print_text(const struct verdict *v)
{
	char classes[160];
	char *reply;

	content_class_names(v->content, classes, sizeof(classes));
	printf("action: %s\n", verdict_action_name(v->action));
	printf("reference: %s\n", v->ref);
	printf("content: %s\n", classes);
	for (size_t i = 0; i < v->nrcpts; i++) {
		const struct rcpt_info *r = &v->rcpts[i];
		printf("recipient: %s %s%s%s%s%s\n", r->addr, rcpt_class_name(r->cls),
		       r->via_fax ? " (fax)" : "", r->org_name ? " [" : "",
		       r->org_name ? r->org_name : "", r->org_name ? "]" : "");
	}
	for (size_t i = 0; i < v->nhits; i++) {
		const struct rule_hit *h = &v->hits[i];
		printf("rule: %s %s", rule_name(h->rule), rule_action_name(h->action));
		for (size_t j = 0; j < h->nrcpts; j++)
			printf("%s%s", j ? ", " : " ", v->rcpts[h->rcpts[j]].addr);
		printf("\n");
	}
	if (v->exception_reason)
		printf("exception: sensitive-topic (justification recorded)\n");
	for (size_t i = 0; i < v->nadded; i++)
		printf("added recipient: %s\n", v->added_rcpts[i]);
	for (size_t i = 0; i < v->nheaders; i++)
		printf("added header: %s: %s\n", v->headers[i].name, v->headers[i].value);
	if (v->edit != NULL) {
		printf("changed: %s%s%s\n", v->edit->change ? v->edit->change : "changed",
		       v->secure ? " " : "", v->secure ? secure_method_name(v->secure) : "");
		if (v->edit->notice_rcpt)
			printf("password notice: to %s%s%s (sent by the milter; see --notice)\n",
			       v->edit->notice_rcpt, v->edit->notice_cc ? ", copy to " : "",
			       v->edit->notice_cc ? v->edit->notice_cc : "");
	}
	if (v->error)
		printf("error: %s\n", v->error);
	reply = verdict_reply_text(v);
	if (*reply)
		printf("reply:\n%s\n", reply);
	free(reply);
}

static int write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0) {
		fprintf(stderr, "clinimail: %s: %s\n", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	return 0;
}

/* The message as the milter would have it delivered: edit applied, headers added. */
static int write_delivered(const char *path, const char *msg, size_t len, const struct verdict *v)
{
	struct msg_edit add;
	struct strbuf sb;
	int rc;

	memset(&add, 0, sizeof(add));
	sb_init(&sb);
	msg_edit_apply(msg, len, v->edit, &sb);
	add.hdrs = xcalloc(v->nheaders ? v->nheaders : 1, sizeof(*add.hdrs));
	for (size_t i = 0; i < v->nheaders; i++) {
		add.hdrs[i].name = xstrdup(v->headers[i].name);
		add.hdrs[i].value = xstrdup(v->headers[i].value);
	}
	add.nhdrs = v->nheaders;
	struct strbuf out;
	sb_init(&out);
	msg_edit_apply(sb.data ? sb.data : "", sb.len, &add, &out);
	rc = write_file(path, out.data ? out.data : "", out.len);
	msg_edit_free(&add);
	sb_free(&sb);
	sb_free(&out);
	return rc;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"from", required_argument, NULL, 'f'},
	    {"auth", required_argument, NULL, 'a'},   {"client-ip", required_argument, NULL, 'i'},
	    {"helo", required_argument, NULL, 'H'},   {"rcpt", required_argument, NULL, 'r'},
	    {"json", no_argument, NULL, 'j'},         {"explain", no_argument, NULL, 'x'},
	    {"output", required_argument, NULL, 'o'}, {"notice", required_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *conf = DEFAULT_CONF, *from = NULL, *auth = NULL, *ip = NULL, *helo = NULL;
	const char *output = NULL, *notice = NULL;
	char **rcpts = NULL;
	size_t nrcpts = 0, len = 0;
	int json = 0, explain = 0, c, rc = EXIT_TOOL_ERROR;
	char err[512];
	char *msg;
	FILE *fp;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:f:a:i:H:r:jxo:N:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 'a':
			auth = optarg;
			break;
		case 'i':
			ip = optarg;
			break;
		case 'H':
			helo = optarg;
			break;
		case 'r':
			rcpts = xrealloc(rcpts, (nrcpts + 1) * sizeof(*rcpts));
			rcpts[nrcpts++] = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'x':
			explain = 1;
			break;
		case 'o':
			output = optarg;
			break;
		case 'N':
			notice = optarg;
			break;
		case 'h':
			usage(stdout);
			free(rcpts);
			return 0;
		default:
			usage(stderr);
			free(rcpts);
			return EXIT_TOOL_ERROR;
		}
	}
	if (from == NULL || nrcpts == 0 || argc - optind > 1) {
		usage(stderr);
		free(rcpts);
		return EXIT_TOOL_ERROR;
	}
	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		fp = fopen(argv[optind], "rb");
		if (fp == NULL) {
			fprintf(stderr, "clinimail: %s: %s\n", argv[optind], strerror(errno));
			free(rcpts);
			return EXIT_TOOL_ERROR;
		}
	} else {
		fp = stdin;
	}
	msg = slurp(fp, &len);
	if (fp != stdin)
		fclose(fp);
	if (msg == NULL) {
		fprintf(stderr, "clinimail: read error\n");
		free(rcpts);
		return EXIT_TOOL_ERROR;
	}

	mime_text_global_init();
	struct cm_config *cfg = config_load(conf, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "clinimail: %s\n", err);
		free(msg);
		free(rcpts);
		return EXIT_TOOL_ERROR;
	}
	struct envelope env = {
	    .queue_id = NULL,
	    .client_ip = ip,
	    .helo = helo,
	    .auth_login = auth,
	    .mail_from = from,
	    .rcpts = rcpts,
	    .nrcpts = nrcpts,
	    .explain = explain,
	};
	struct verdict v;
	int big = len > cfg->max_message_size;
	policy_eval(cfg, &env, big ? NULL : msg, big ? 0 : len, len, NULL, &v);
	if (json) {
		char *j = verdict_to_json(&v);
		printf("%s\n", j);
		free(j);
	} else {
		print_text(&v);
	}
	if (explain && v.explain)
		printf("explain:\n%s", v.explain);
	if (output != NULL && !big && (v.action == VERDICT_ACCEPT || v.action == VERDICT_HOLD) &&
	    write_delivered(output, msg, len, &v) != 0) {
		verdict_free(&v);
		config_unref(cfg);
		free(msg);
		free(rcpts);
		return EXIT_TOOL_ERROR;
	}
	if (notice != NULL && v.edit != NULL && v.edit->notice != NULL &&
	    write_file(notice, v.edit->notice, strlen(v.edit->notice)) != 0) {
		verdict_free(&v);
		config_unref(cfg);
		free(msg);
		free(rcpts);
		return EXIT_TOOL_ERROR;
	}
	switch (v.action) {
	case VERDICT_ACCEPT:
		rc = 0;
		break;
	case VERDICT_REJECT:
		rc = 1;
		break;
	case VERDICT_HOLD:
		rc = 2;
		break;
	default:
		rc = EXIT_TOOL_ERROR;
	}
	verdict_free(&v);
	config_unref(cfg);
	free(msg);
	free(rcpts);
	return rc;
}

int main(int argc, char **argv)
{
	log_init("clinimail", 0, 0);
	if (argc < 2) {
		usage(stderr);
		return EXIT_TOOL_ERROR;
	}
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "audit") == 0)
		return cmd_audit(argc - 1, argv + 1);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("clinimail %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "clinimail: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return EXIT_TOOL_ERROR;
}
