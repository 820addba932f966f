/*
 * bench_directory.c — how long directories_load() takes on a large
 * establishment: generates 100,000 patients and 5,000 pharmacies (default;
 * "bench_directory PATIENTS PHARMACIES" to change) in a temporary folder,
 * loads them, and prints the load time, the lookup rate and the memory the
 * directories take (RSS growth).  Not built by default:
 *   make tests/bench/bench_directory && ./tests/bench/bench_directory
 */
#include "autoconfig.h"
#include "directory.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size in KiB, from /proc/self/status. */
static long rss_kib(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(fp);
	return kib;
}

static FILE *create(const char *dir, const char *name, char **path)
{
	struct strbuf sb;
	FILE *fp;

	sb_init(&sb);
	sb_printf(&sb, "%s/%s", dir, name);
	*path = sb_steal(&sb);
	if ((fp = fopen(*path, "w")) == NULL)
		msg_fatal("%s: cannot create", *path);
	return fp;
}

static void done(FILE *fp, const char *path)
{
	if (fclose(fp) != 0)
		msg_fatal("%s: write error", path);
}

int main(int argc, char **argv)
{
	static const char *const scopes[] = {"all", "general,lab-order", "clinical, documents",
	                                     "general"};
	static const char *const isps[] = {"videotron.ca", "gmail.com", "outlook.com", "bell.net"};
	long npatients = argc > 1 ? atol(argv[1]) : 100000;
	long npharm = argc > 2 ? atol(argv[2]) : 5000;
	char dir[] = "/tmp/bench_directory.XXXXXX";
	struct dir_paths p;
	char *fin, *fweb, *fpat, *fph;
	FILE *fp;
	struct directories *d;
	char err[1024], addr[128], fax[16];
	long rss0, rss1, hits = 0;
	double t0, t1, t2;
	const long nlookups = 1000000;

	if (npatients < 1 || npharm < 1 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "usage: bench_directory [PATIENTS [PHARMACIES]]\n");
		return 1;
	}
	fp = create(dir, "internal-domains.txt", &fin);
	fputs("hopital.example\n*.ssss.gouv.qc.ca\n*.gouv.qc.ca\n", fp);
	done(fp, fin);
	fp = create(dir, "webmail-domains.txt", &fweb);
	fputs("gmail.com\nyahoo.*\nvideotron.ca\n", fp);
	done(fp, fweb);
	fp = create(dir, "patients.txt", &fpat);
	for (long i = 0; i < npatients; i++) {
		if (i % 10 == 9)
			fprintf(fp, "patient%ld@%s | none | all |\n", i, isps[i % 4]);
		else if (i % 10 == 8)
			fprintf(fp,
			        "patient%ld@employeur%ld.example | 2024-%02ld-%02ld | all | "
			        "third-party=employer\n",
			        i, i % 97, i % 12 + 1, i % 28 + 1);
		else
			fprintf(fp,
			        "patient%ld@%s | 20%02ld-%02ld-%02ld | %s | password=generated\n",
			        i, isps[i % 4], 20 + i % 6, i % 12 + 1, i % 28 + 1, scopes[i % 4]);
	}
	done(fp, fpat);
	fp = create(dir, "pharmacies.txt", &fph);
	for (long i = 0; i < npharm; i++)
		fprintf(
		    fp,
		    "ph-%05ld | Pharmacie Numéro %ld de l'Estrie | commandes%ld@pharma%ld.example "
		    "| 1 (819) 5%02ld-%04ld | 819-6%02ld-%04ld\n",
		    i, i, i, i, i / 10000, i % 10000, i / 10000, i % 10000);
	done(fp, fph);

	memset(&p, 0, sizeof(p));
	p.internal_domains = fin;
	p.webmail_domains = fweb;
	p.patients = fpat;
	p.pharmacies = fph;

	rss0 = rss_kib();
	t0 = now();
	d = directories_load(&p, err, sizeof(err));
	t1 = now();
	rss1 = rss_kib();
	if (d == NULL) {
		fprintf(stderr, "load failed: %s\n", err);
		return 1;
	}
	for (long i = 0; i < nlookups; i++) {
		long k = (i * 7919) % npatients;
		snprintf(addr, sizeof(addr), "patient%ld@%s", k, isps[k % 4]);
		hits += dir_patient(d, addr) != NULL;
		snprintf(fax, sizeof(fax), "8195%02ld%04ld", (i % npharm) / 10000,
		         (i % npharm) % 10000);
		hits += dir_pharmacy_by_fax(d, fax) != NULL;
		hits += dir_is_internal_domain(d, "ciusss.ssss.gouv.qc.ca");
	}
	t2 = now();

	printf("patients:   %zu\n", dir_count_patients(d));
	printf("pharmacies: %zu\n", dir_count_pharmacies(d));
	printf("load:       %.1f ms\n", (t1 - t0) * 1e3);
	printf("memory:     %.1f MiB (RSS growth during the load)\n", (double)(rss1 - rss0) / 1024);
	printf("lookups:    %.0f ns per (patient + fax + domain) triple, %ld hits of %ld\n",
	       (t2 - t1) * 1e9 / (double)nlookups, hits, 3 * nlookups);
	directories_free(d);

	unlink(fin);
	unlink(fweb);
	unlink(fpat);
	unlink(fph);
	rmdir(dir);
	free(fin);
	free(fweb);
	free(fpat);
	free(fph);
	return 0;
}
