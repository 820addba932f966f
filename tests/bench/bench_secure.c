/*
 * bench_secure.c — the cost of encrypting a clinical message for a patient
 * (issue 3): the message rendered into a PDF (cairo/pango) and protected
 * with AES-256 R6 (qpdf), as clinimail-milter does at end of message, for a
 * 1-page and a 10-page message; and S/MIME enveloping of the same messages
 * when -s PATIENT names a patient with a certificate.
 *
 *   bench_secure [-c CONF] [-n N] [-p PATIENT] [-s SMIME_PATIENT]
 *
 * Prints, per message, the pages of the PDF, the size of the encrypted
 * message and the milliseconds per message (p50, mean, max) of
 * secure_mail_encrypt() alone.  Defaults: the shipped policy, N = 20,
 * PATIENT sophie.gagnon@outlook.com (generated password).
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "mime_text.h"
#include "pdf_render.h"
#include "policy.h"
#include "secure_mail.h"
#include "util.h"

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* A clinical follow-up of about `pages` Letter pages of text. */
static char *make_message(const char *to, int pages)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb,
	          "From: Dr Jean Tremblay <dr.tremblay@hopital.example>\r\nTo: %s\r\n"
	          "Subject: Suivi clinique\r\nMIME-Version: 1.0\r\n"
	          "Content-Type: text/plain; charset=UTF-8\r\n"
	          "Content-Transfer-Encoding: 8bit\r\n\r\nBonjour,\r\n\r\n",
	          to);
	for (int i = 0; i < pages * 52; i++)
		sb_printf(&sb,
		          "Ligne %d du suivi : diagnostic d'hypertension, tension artérielle "
		          "stable, poursuivre le traitement et revoir en clinique.\r\n",
		          i + 1);
	sb_puts(&sb, "\r\nDr Jean Tremblay\r\n");
	return sb_steal(&sb);
}

static int run(struct cm_config *cfg, const char *patient, int pages, int n)
{
	char *msg = make_message(patient, pages);
	char *rcpts[] = {(char *)patient};
	struct envelope env = {.mail_from = "dr.tremblay@hopital.example",
	                       .auth_login = "jtremblay",
	                       .rcpts = rcpts,
	                       .nrcpts = 1};
	struct verdict v;
	double *t = xcalloc((size_t)n, sizeof(*t)), sum = 0;
	char err[512];
	size_t outlen = 0;

	policy_eval(cfg, &env, msg, strlen(msg), strlen(msg), NULL, &v);
	if (v.secure == SECURE_NONE || v.edit == NULL) {
		fprintf(stderr, "bench_secure: %s: the policy does not encrypt (action %s%s%s)\n",
		        patient, verdict_action_name(v.action), v.error ? ": " : "",
		        v.error ? v.error : "");
		verdict_free(&v);
		free(msg);
		free(t);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct msg_edit e;
		double t0 = now_ms();
		if (secure_mail_encrypt(cfg, &v, msg, strlen(msg), "dr.tremblay@hopital.example",
		                        &e, err, sizeof(err)) != SECURE_OK) {
			fprintf(stderr, "bench_secure: %s\n", err);
			verdict_free(&v);
			free(msg);
			free(t);
			return -1;
		}
		t[i] = now_ms() - t0;
		sum += t[i];
		outlen = e.body_len;
		msg_edit_free(&e);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	printf("%-30s %-15s %3d page(s) %7zu -> %7zu bytes  p50 %7.2f ms  mean %7.2f ms  max %7.2f "
	       "ms\n",
	       patient, secure_method_name(v.secure), pages, strlen(msg), outlen, t[n / 2], sum / n,
	       t[n - 1]);
	verdict_free(&v);
	free(msg);
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf = "policies/clinimail.conf", *patient = "sophie.gagnon@outlook.com";
	const char *smime = NULL;
	char err[512];
	int n = 20, c, rc = 0;

	while ((c = getopt(argc, argv, "c:n:p:s:")) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 'p':
			patient = optarg;
			break;
		case 's':
			smime = optarg;
			break;
		default:
			fprintf(stderr, "usage: bench_secure [-c CONF] [-n N] [-p PATIENT] [-s "
			                "SMIME_PATIENT]\n");
			return 2;
		}
	}
	if (n < 1)
		n = 1;
	log_init("bench_secure", 0, 0);
	mime_text_global_init();
	pdf_render_global_init();
	struct cm_config *cfg = config_load(conf, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "bench_secure: %s\n", err);
		return 2;
	}
	printf("encryption for a patient, %d calls each (secure_mail_encrypt alone)\n", n);
	rc |= run(cfg, patient, 1, n);
	rc |= run(cfg, patient, 10, n);
	if (smime) {
		rc |= run(cfg, smime, 1, n);
		rc |= run(cfg, smime, 10, n);
	}
	config_unref(cfg);
	return rc ? 1 : 0;
}
