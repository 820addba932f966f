/*
 * bench_engine.c — the policy engine's own cost per message, without any
 * MTA: policy_eval() called N times on each message given, as
 * clinimail-milter calls it at end of message.
 *
 *   bench_engine [-c CONF] [-n N] [-f FROM] [-a LOGIN] [-r RCPT]... [-P FILE.pdf]
 *                FILE.eml...
 *
 * For each file it prints the verdict once (so that a figure for a message
 * that silently took another path is noticed), then:
 *   first   the first call in the process, PDF cache empty;
 *   nocache N calls without a PDF cache: every PDF's text layer is extracted
 *           each time (a new attachment every time);
 *   cached  N calls sharing one PDF cache: an attachment seen before is not
 *           extracted again (a re-sent or forwarded order).
 * -P also times poppler-glib alone on a PDF (open it from memory, get every
 * page's text, as the engine does): the floor for the "nocache" figure of a
 * message carrying that PDF.
 * Times are wall-clock microseconds per message (p50, mean, p99), one thread.
 * Defaults: dr.tremblay@hopital.example authenticated as jtremblay, to
 * commandes@auxbonsoins.example, N = 1000.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <poppler.h>

#include "config.h"
#include "mime_text.h"
#include "policy.h"
#include "util.h"

#define MAX_RCPTS 16

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static char *slurp(const char *path, size_t *len)
{
	struct strbuf sb;
	char buf[65536];
	size_t n;
	FILE *fp = fopen(path, "rb");

	if (!fp)
		return NULL;
	sb_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sb_append(&sb, buf, n);
	if (ferror(fp)) {
		fclose(fp);
		sb_free(&sb);
		return NULL;
	}
	fclose(fp);
	*len = sb.len;
	return sb_steal(&sb);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct stats {
	double p50, mean, p99;
};

static struct stats summarize(double *t, size_t n)
{
	struct stats s = {0, 0, 0};
	double sum = 0;
	size_t r99;

	qsort(t, n, sizeof(double), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += t[i];
	s.mean = sum / (double)n;
	s.p50 = t[(n - 1) / 2];
	r99 = (size_t)(0.99 * (double)n + 0.999999);
	s.p99 = t[(r99 ? r99 : 1) - 1];
	return s;
}

/* One timed call of policy_eval; returns microseconds, the action in *action. */
static double timed_eval(const struct cm_config *cfg, const struct envelope *env, const char *msg,
                         size_t len, struct pdf_cache *cache, enum verdict_action *action)
{
	struct verdict v;
	double t0 = now_us(), t;

	policy_eval(cfg, env, msg, len, len, cache, &v);
	t = now_us() - t0;
	*action = v.action;
	verdict_free(&v);
	return t;
}

/* poppler-glib alone: the PDF's text, every page, n times. */
static int bench_poppler(const char *path, long n, double *t)
{
	size_t len;
	char *data = slurp(path, &len);
	struct stats st;
	size_t chars = 0;

	if (!data) {
		fprintf(stderr, "bench_engine: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (long i = 0; i < n; i++) {
		double t0 = now_us();
		GBytes *bytes = g_bytes_new_static(data, len);
		PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, NULL);

		g_bytes_unref(bytes);
		if (!doc) {
			fprintf(stderr, "bench_engine: %s: poppler cannot open it\n", path);
			free(data);
			return -1;
		}
		chars = 0;
		for (int p = 0; p < poppler_document_get_n_pages(doc); p++) {
			PopplerPage *page = poppler_document_get_page(doc, p);
			char *text;

			if (!page)
				continue;
			text = poppler_page_get_text(page);
			if (text)
				chars += strlen(text);
			g_free(text);
			g_object_unref(page);
		}
		g_object_unref(doc);
		t[i] = now_us() - t0;
	}
	st = summarize(t, (size_t)n);
	printf(
	    "%-28.28s %8zu %-8s %10s %6.0f/%6.0f/%6.0f   (poppler-glib alone, %zu bytes of text)\n",
	    strrchr(path, '/') ? strrchr(path, '/') + 1 : path, len, "-", "-", st.p50, st.mean,
	    st.p99, chars);
	free(data);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_engine [-c CONF] [-n N] [-f FROM] [-a LOGIN] [-r RCPT]... "
	                "[-P FILE.pdf] FILE.eml...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *src = getenv("top_srcdir");
	char conf_default[4096];
	const char *conf = NULL, *pdf = NULL, *from = "dr.tremblay@hopital.example",
	           *login = "jtremblay";
	static char default_rcpt[] = "commandes@auxbonsoins.example";
	char *rcpts[MAX_RCPTS];
	size_t nrcpts = 0;
	long n = 1000;
	char err[1024];
	struct cm_config *cfg;
	double *t;
	int ch, status = 0;

	while ((ch = getopt(argc, argv, "c:n:f:a:r:P:")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'n': {
			char *end;
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || n < 1 || n > 1000000)
				usage();
			break;
		}
		case 'f':
			from = optarg;
			break;
		case 'a':
			login = strcmp(optarg, "-") == 0 ? NULL : optarg;
			break;
		case 'P':
			pdf = optarg;
			break;
		case 'r':
			if (nrcpts == MAX_RCPTS)
				usage();
			rcpts[nrcpts++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	if (nrcpts == 0)
		rcpts[nrcpts++] = default_rcpt;
	if (!conf) {
		snprintf(conf_default, sizeof(conf_default), "%s/policies/clinimail.conf",
		         src ? src : ".");
		conf = conf_default;
	}

	mime_text_global_init();
	cfg = config_load(conf, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "bench_engine: %s\n", err);
		return 1;
	}
	t = xmalloc((size_t)n * sizeof(double));

	printf("%-28s %8s %-8s %10s %22s %22s\n", "message", "bytes", "verdict", "first_us",
	       "nocache p50/mean/p99", "cached p50/mean/p99");
	for (int f = optind; f < argc; f++) {
		struct envelope env = {
		    .queue_id = NULL,
		    .client_ip = "127.0.0.1",
		    .helo = "bench.test",
		    .auth_login = login,
		    .mail_from = from,
		    .rcpts = rcpts,
		    .nrcpts = nrcpts,
		};
		struct pdf_cache *cache = pdf_cache_new(256);
		enum verdict_action a, first_action;
		struct stats nc, wc;
		const char *base = strrchr(argv[f], '/');
		size_t len;
		char *msg = slurp(argv[f], &len);
		double first;

		if (!msg) {
			fprintf(stderr, "bench_engine: %s: %s\n", argv[f], strerror(errno));
			status = 1;
			pdf_cache_free(cache);
			continue;
		}
		{
			struct verdict v;
			char line[1024];
			double t0 = now_us();

			policy_eval(cfg, &env, msg, len, len, cache, &v);
			first = now_us() - t0;
			first_action = v.action;
			verdict_log_line(&v, &env, line, sizeof(line));
			fprintf(stderr, "%s: %s\n", base ? base + 1 : argv[f], line);
			verdict_free(&v);
		}
		for (long i = 0; i < n; i++) {
			t[i] = timed_eval(cfg, &env, msg, len, NULL, &a);
			if (a != first_action)
				status = 1;
		}
		nc = summarize(t, (size_t)n);
		for (long i = 0; i < n; i++) {
			t[i] = timed_eval(cfg, &env, msg, len, cache, &a);
			if (a != first_action)
				status = 1;
		}
		wc = summarize(t, (size_t)n);
		printf("%-28.28s %8zu %-8s %10.0f %6.0f/%6.0f/%6.0f %8.0f/%6.0f/%6.0f\n",
		       base ? base + 1 : argv[f], len, verdict_action_name(first_action), first,
		       nc.p50, nc.mean, nc.p99, wc.p50, wc.mean, wc.p99);
		if (first_action == VERDICT_TEMPFAIL)
			status = 1;
		free(msg);
		pdf_cache_free(cache);
	}
	if (pdf && bench_poppler(pdf, n, t) != 0)
		status = 1;
	if (status)
		fprintf(stderr, "bench_engine: a verdict was tempfail or changed between calls, or "
		                "a file failed\n");
	free(t);
	config_unref(cfg);
	return status;
}
