/*
 * bench_audit.c — the audit trail alone, without an MTA: what audit_submit()
 * costs the milter thread that calls it (build the record, log line, queue)
 * and how many records per second the writer thread stores.
 *
 *   bench_audit STORE [N]      STORE: sqlite:/path | pgsql:conninfo | none
 *
 * Prints submit_us_p50= submit_us_p99= submit_us_mean= stored_per_s=.
 * The log lines go to /dev/null (stderr is redirected by the caller).
 */
#include "autoconfig.h"

#include "audit.h"
#include "policy.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct audit_options o;
	struct audit *a;
	char err[512];
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
	double *lat, t0, t1, sum = 0;
	char *rcpts[] = {"commandes@auxbonsoins.example"};
	struct envelope env = {.queue_id = "4XYZBENCH",
	                       .auth_login = "jtremblay",
	                       .mail_from = "dr.tremblay@hopital.example",
	                       .rcpts = rcpts,
	                       .nrcpts = 1};
	struct verdict v;

	if (argc < 2 || n < 1 || n > 10000000) {
		fprintf(stderr, "usage: bench_audit STORE [N]\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.store = argv[1];
	o.create = 1;
	o.queue_size = (size_t)n + 10;
	a = audit_open(&o, err, sizeof(err));
	if (a == NULL) {
		fprintf(stderr, "bench_audit: %s\n", err);
		return 1;
	}
	/* The shape of an accepted order to a pharmacy with archives added. */
	memset(&v, 0, sizeof(v));
	v.action = VERDICT_ACCEPT;
	v.content = CC_CLINICAL | CC_MED_ORDER;
	v.nrcpts = 1;
	v.rcpts = xcalloc(1, sizeof(*v.rcpts));
	v.rcpts[0].addr = xstrdup("commandes@auxbonsoins.example");
	v.rcpts[0].cls = RC_PHARMACY;
	v.nhits = 1;
	v.hits = xcalloc(1, sizeof(*v.hits));
	v.hits[0].rule = RULE_ARCHIVES_COPY;
	v.hits[0].action = ACT_ADD;
	v.nadded = 1;
	v.added_rcpts = xcalloc(1, sizeof(char *));
	v.added_rcpts[0] = xstrdup("archives@hopital.example");
	v.message_id = xstrdup("bench@hopital.example");
	v.have_body_hash = 1;
	lat = xcalloc((size_t)n, sizeof(double));
	t0 = now_us();
	for (long i = 0; i < n; i++) {
		double s = now_us();
		policy_new_ref(v.ref, sizeof(v.ref));
		if (audit_submit(a, &env, &v) != 0) {
			fprintf(stderr, "bench_audit: submit refused at %ld\n", i);
			return 1;
		}
		lat[i] = now_us() - s;
		sum += lat[i];
	}
	if (audit_flush(a, 600000) != 0) {
		fprintf(stderr, "bench_audit: the writer did not drain the queue\n");
		return 1;
	}
	t1 = now_us();
	audit_close(a);
	qsort(lat, (size_t)n, sizeof(double), cmp_double);
	printf("records=%ld submit_us_p50=%.1f submit_us_p99=%.1f submit_us_mean=%.1f "
	       "stored_per_s=%.0f\n",
	       n, lat[n / 2], lat[(size_t)((double)n * 0.99)], sum / (double)n,
	       (double)n / ((t1 - t0) / 1e6));
	free(lat);
	verdict_free(&v);
	return 0;
}
