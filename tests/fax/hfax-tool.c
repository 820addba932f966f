/*
 * hfax-tool.c — a command-line driver of lib/fax_hylafax.c for the tests,
 * and a maker of simple TIFF Class F documents that do not depend on the
 * render module.
 *
 *   hfax-tool [-h host] [-p port] [-u user] [-t timeout] [-a adminpw] submit NUMBER FILE.tif
 *             [--key K] [--normal] [--a4] [--maxdials N] [--maxtries N]
 *             [--kill MINUTES] [--tagline FMT] [--notify ADDR]   prints the job id
 *   hfax-tool ... poll JOB            prints state=… status="…" npages=… totpages=…
 *                                     ndials=… ntries=… maxdials=… maxtries=… csi="…"
 *   hfax-tool ... wait JOB [SECONDS]  polls until DONE, FAILED or GONE; prints the line
 *   hfax-tool ... delete JOB
 *   hfax-tool ... find KEY            prints the job id (exit 1 when none)
 *   hfax-tool mktiff OUT.tif PAGES [--normal] [--a4]
 *
 * -a gives the connection HylaFAX admin rights (ADMIN), which hfax_delete
 * needs to remove documents from docq/.
 *
 * Exit status: 0 success, 1 refused (HFAX_PERM) or not found, 75 try later
 * (HFAX_TEMP, EX_TEMPFAIL), 2 usage.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tiffio.h>

#include "fax_hylafax.h"

#define EX_TEMP 75

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: hfax-tool [-h host] [-p port] [-u user] [-t timeout] [-a adminpw] COMMAND ...\n"
	    "  submit NUMBER FILE.tif [--key K] [--normal] [--a4] [--maxdials N] [--maxtries N]\n"
	    "         [--kill MINUTES] [--tagline FMT] [--notify ADDR]\n"
	    "  poll JOB | wait JOB [SECONDS] | delete JOB | find KEY\n"
	    "  mktiff OUT.tif PAGES [--normal] [--a4]\n");
	exit(2);
}

static int exit_of(int rc)
{
	return rc == HFAX_OK ? 0 : rc == HFAX_TEMP ? EX_TEMP : 1;
}

static int int_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 0 || v > 100000)
		usage();
	return (int)v;
}

/* ---- mktiff: a page of marks that differ from page to page ---- */

struct page {
	uint8_t *bits; /* 1 = black (MINISWHITE) */
	int w, h, stride;
};

static void dot(struct page *p, int x, int y)
{
	if (x >= 0 && x < p->w && y >= 0 && y < p->h)
		p->bits[y * p->stride + x / 8] |= (uint8_t)(0x80 >> (x % 8));
}

static void box(struct page *p, int x, int y, int w, int h)
{
	for (int j = y; j < y + h; j++)
		for (int i = x; i < x + w; i++)
			dot(p, i, j);
}

/* A seven-segment digit, cell w x h, stroke t. */
static void digit(struct page *p, int x, int y, int w, int h, int t, int d)
{
	static const uint8_t seg[10] = {0x3f, 0x06, 0x5b, 0x4f, 0x66, 0x6d, 0x7d, 0x07, 0x7f, 0x6f};
	uint8_t s = seg[d % 10];
	int hh = h / 2;
	if (s & 0x01)
		box(p, x, y, w, t);
	if (s & 0x02)
		box(p, x + w - t, y, t, hh);
	if (s & 0x04)
		box(p, x + w - t, y + hh, t, h - hh);
	if (s & 0x08)
		box(p, x, y + h - t, w, t);
	if (s & 0x10)
		box(p, x, y + hh, t, h - hh);
	if (s & 0x20)
		box(p, x, y, t, hh);
	if (s & 0x40)
		box(p, x, y + hh - t / 2, w, t);
}

static void draw_page(struct page *p, int pageno, int fine)
{
	int vs = fine ? 1 : 2; /* vertical scale: 196 or 98 lines per inch */
	memset(p->bits, 0, (size_t)p->stride * (size_t)p->h);
	/* frame */
	box(p, 40, 40 / vs, p->w - 80, 2);
	box(p, 40, p->h - 40 / vs - 2, p->w - 80, 2);
	box(p, 40, 40 / vs, 2, p->h - 80 / vs);
	box(p, p->w - 42, 40 / vs, 2, p->h - 80 / vs);
	/* the page number, large */
	char num[12];
	snprintf(num, sizeof num, "%d", pageno);
	for (int i = 0; num[i]; i++)
		digit(p, 100 + i * 140, 100 / vs, 110, 200 / vs, 18, num[i] - '0');
	/* lines of "words": a deterministic pseudo-random text layout per page */
	uint32_t seed = 0x9e3779b9u * (uint32_t)pageno + 12345u;
	for (int y = 360 / vs; y + 16 / vs < p->h - 120 / vs; y += 30 / vs) {
		int x = 100;
		for (;;) {
			seed = seed * 1103515245u + 12345u;
			int ww = 12 + (int)((seed >> 16) % 90);
			if (x + ww > p->w - 100)
				break;
			box(p, x, y, ww, 16 / vs > 0 ? 16 / vs : 1);
			x += ww + 14;
		}
	}
	/* a diagonal whose slope depends on the page */
	for (int y = 0; y < p->h; y++)
		dot(p, (y * (pageno + 1) * vs) % p->w, y);
}

static int mktiff(const char *out, int pages, int fine, int a4)
{
	int rows = a4 ? 2291 : 2156; /* A4 / Letter at 196 lines per inch */
	if (!fine)
		rows = a4 ? 1145 : 1078;
	TIFF *t = TIFFOpen(out, "w");
	if (!t) {
		fprintf(stderr, "hfax-tool: cannot create %s\n", out);
		return 1;
	}
	struct page pg = {.w = 1728, .h = rows, .stride = 1728 / 8};
	pg.bits = calloc((size_t)pg.stride, (size_t)pg.h);
	if (!pg.bits) {
		TIFFClose(t);
		return 1;
	}
	int bad = 0;
	for (int p = 1; p <= pages && !bad; p++) {
		draw_page(&pg, p, fine);
		TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
		TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)pg.w);
		TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)pg.h);
		TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 1);
		TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
		TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX4);
		TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);
		TIFFSetField(t, TIFFTAG_FILLORDER, FILLORDER_LSB2MSB);
		TIFFSetField(t, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
		TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
		TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, (uint32_t)pg.h);
		TIFFSetField(t, TIFFTAG_XRESOLUTION, 204.0);
		TIFFSetField(t, TIFFTAG_YRESOLUTION, fine ? 196.0 : 98.0);
		TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH);
		TIFFSetField(t, TIFFTAG_GROUP4OPTIONS, 0);
		TIFFSetField(t, TIFFTAG_PAGENUMBER, (uint16_t)(p - 1), (uint16_t)pages);
		TIFFSetField(t, TIFFTAG_SOFTWARE, "clinimail hfax-tool");
		for (int y = 0; y < pg.h && !bad; y++)
			if (TIFFWriteScanline(t, pg.bits + (size_t)y * (size_t)pg.stride,
			                      (uint32_t)y, 0) < 0)
				bad = 1;
		if (!bad && !TIFFWriteDirectory(t))
			bad = 1;
	}
	TIFFClose(t);
	free(pg.bits);
	if (bad) {
		fprintf(stderr, "hfax-tool: writing %s failed\n", out);
		remove(out);
		return 1;
	}
	return 0;
}

/* ---- protocol commands ---- */

static const char *state_word(const struct hfax_status *st)
{
	return st->state == HFAX_STATE_GONE ? "GONE"
	       : st->state_text[0]          ? st->state_text
	                                    : "UNKNOWN";
}

static void print_status(const struct hfax_status *st)
{
	char status[sizeof st->status], csi[sizeof st->csi];
	snprintf(status, sizeof status, "%s", st->status);
	snprintf(csi, sizeof csi, "%s", st->csi);
	for (char *q = status; *q; q++)
		if (*q == '"')
			*q = '\'';
	for (char *q = csi; *q; q++)
		if (*q == '"')
			*q = '\'';
	printf("state=%s status=\"%s\" npages=%d totpages=%d ndials=%d ntries=%d maxdials=%d "
	       "maxtries=%d csi=\"%s\"\n",
	       state_word(st), status, st->npages, st->totpages, st->ndials, st->ntries,
	       st->maxdials, st->maxtries, csi);
	fflush(stdout);
}

static int finished(const struct hfax_status *st)
{
	return st->state == HFAX_STATE_DONE || st->state == HFAX_STATE_FAILED ||
	       st->state == HFAX_STATE_GONE;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *port = "4559", *user = "clinimail", *adminpw = NULL;
	int timeout = 30;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "-h") == 0)
			host = argv[++i];
		else if (strcmp(argv[i], "-p") == 0)
			port = argv[++i];
		else if (strcmp(argv[i], "-u") == 0)
			user = argv[++i];
		else if (strcmp(argv[i], "-t") == 0)
			timeout = int_arg(argv[++i]);
		else if (strcmp(argv[i], "-a") == 0)
			adminpw = argv[++i];
		else
			usage();
	}
	if (i >= argc)
		usage();
	const char *verb = argv[i++];
	char err[512] = "";

	if (strcmp(verb, "mktiff") == 0) {
		if (argc - i < 2)
			usage();
		const char *out = argv[i];
		int pages = int_arg(argv[i + 1]);
		int fine = 1, a4 = 0;
		for (int k = i + 2; k < argc; k++) {
			if (strcmp(argv[k], "--normal") == 0)
				fine = 0;
			else if (strcmp(argv[k], "--a4") == 0)
				a4 = 1;
			else
				usage();
		}
		if (pages < 1 || pages > 999)
			usage();
		return mktiff(out, pages, fine, a4);
	}

	struct hfax_job_opts o = {.fine = 1, .letter = 1};
	const char *arg1 = NULL, *arg2 = NULL;
	if (strcmp(verb, "submit") == 0) {
		if (argc - i < 2)
			usage();
		o.number = argv[i++];
		o.tiff_path = argv[i++];
		for (; i < argc; i++) {
			if (strcmp(argv[i], "--normal") == 0)
				o.fine = 0;
			else if (strcmp(argv[i], "--a4") == 0)
				o.letter = 0;
			else if (i + 1 < argc && strcmp(argv[i], "--key") == 0)
				o.user_key = argv[++i];
			else if (i + 1 < argc && strcmp(argv[i], "--maxdials") == 0)
				o.max_dials = int_arg(argv[++i]);
			else if (i + 1 < argc && strcmp(argv[i], "--maxtries") == 0)
				o.max_tries = int_arg(argv[++i]);
			else if (i + 1 < argc && strcmp(argv[i], "--kill") == 0)
				o.kill_minutes = int_arg(argv[++i]);
			else if (i + 1 < argc && strcmp(argv[i], "--tagline") == 0)
				o.tag_line = argv[++i];
			else if (i + 1 < argc && strcmp(argv[i], "--notify") == 0)
				o.notify_addr = argv[++i];
			else
				usage();
		}
	} else if (strcmp(verb, "poll") == 0 || strcmp(verb, "delete") == 0 ||
	           strcmp(verb, "find") == 0) {
		if (argc - i != 1)
			usage();
		arg1 = argv[i];
	} else if (strcmp(verb, "wait") == 0) {
		if (argc - i < 1 || argc - i > 2)
			usage();
		arg1 = argv[i];
		arg2 = argc - i == 2 ? argv[i + 1] : NULL;
	} else {
		usage();
	}

	struct hfax_conn *c;
	int rc = hfax_connect(host, port, user, timeout, &c, err, sizeof err);
	if (rc != HFAX_OK) {
		fprintf(stderr, "hfax-tool: %s\n", err);
		return exit_of(rc);
	}
	int status = 0;
	if (adminpw && (rc = hfax_admin(c, adminpw, err, sizeof err)) != HFAX_OK) {
		fprintf(stderr, "hfax-tool: %s\n", err);
		hfax_close(c);
		return exit_of(rc);
	}
	if (strcmp(verb, "submit") == 0) {
		char jobid[32];
		rc = hfax_submit(c, &o, jobid, sizeof jobid, err, sizeof err);
		if (rc == HFAX_OK)
			printf("%s\n", jobid);
	} else if (strcmp(verb, "poll") == 0) {
		struct hfax_status st;
		rc = hfax_poll(c, arg1, &st, err, sizeof err);
		if (rc == HFAX_OK)
			print_status(&st);
	} else if (strcmp(verb, "wait") == 0) {
		int limit = arg2 ? int_arg(arg2) : 300;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		struct hfax_status st;
		for (;;) {
			rc = hfax_poll(c, arg1, &st, err, sizeof err);
			if (rc != HFAX_OK)
				break;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if (finished(&st) || t1.tv_sec - t0.tv_sec >= limit) {
				print_status(&st);
				if (!finished(&st)) {
					fprintf(stderr,
					        "hfax-tool: job %s not finished after %d s\n", arg1,
					        limit);
					status = 1;
				}
				break;
			}
			struct timespec nap = {0, 250 * 1000000L};
			nanosleep(&nap, NULL);
		}
	} else if (strcmp(verb, "delete") == 0) {
		rc = hfax_delete(c, arg1, err, sizeof err);
	} else if (strcmp(verb, "find") == 0) {
		char jobid[32];
		rc = hfax_find_by_key(c, arg1, jobid, sizeof jobid, err, sizeof err);
		if (rc == HFAX_OK && jobid[0])
			printf("%s\n", jobid);
		else if (rc == HFAX_OK)
			status = 1;
	}
	hfax_close(c);
	if (rc != HFAX_OK) {
		fprintf(stderr, "hfax-tool: %s\n", err);
		return exit_of(rc);
	}
	return status;
}
