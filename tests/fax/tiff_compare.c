/*
 * tiff_compare.c — decode bilevel multi-page TIFF files with libtiff and
 * compare them page by page (see tiff_compare.h).  libtiff does the
 * decompression and the bit order; we only normalise the photometric
 * interpretation so that 1 is black in both.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#include "tiff_compare.h"

#define MAX_WIDTH 20000
#define MAX_HEIGHT 200000

struct tc_err {
	char *buf;
	size_t len;
	int set;
};

static void seterr(struct tc_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct tc_err *e, const char *fmt, ...)
{
	va_list ap;

	if (e->set || !e->buf || e->len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	e->set = 1;
}

/* libtiff's per-file handlers: keep the first error, drop warnings (unknown tags…). */
static int on_error(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
	struct tc_err *e = user;
	char msg[256];

	(void)t;
	if (e && !e->set && e->buf && e->len) {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		snprintf(e->buf, e->len, "libtiff: %s: %s", module ? module : "", msg);
		e->set = 1;
	}
	return 1;
}

static int on_warning(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
	(void)t, (void)user, (void)module, (void)fmt, (void)ap;
	return 1;
}

static TIFF *open_tiff(const char *path, struct tc_err *e)
{
	TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
	TIFF *t;

	if (!o) {
		seterr(e, "out of memory");
		return NULL;
	}
	TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, e);
	TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, NULL);
	t = TIFFOpenExt(path, "r", o);
	TIFFOpenOptionsFree(o);
	if (!t)
		seterr(e, "%s: cannot open as TIFF", path);
	return t;
}

/* Decode the current directory of t: 1 bit per pixel, 1 = black. */
static int decode_page(TIFF *t, const char *path, int page, unsigned char **bits, int *width,
                       int *height, struct tc_err *e)
{
	uint32_t w = 0, h = 0;
	uint16_t bps = 1, spp = 1, photo = PHOTOMETRIC_MINISWHITE;
	tmsize_t sl;
	size_t stride;
	unsigned char *buf, *line;
	unsigned char lastmask;

	*bits = NULL;
	if (!TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h)) {
		seterr(e, "%s: page %d: no ImageWidth/ImageLength", path, page);
		return -1;
	}
	TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
	TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
	if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo))
		photo = PHOTOMETRIC_MINISWHITE; /* the TIFF-F default */
	if (bps != 1 || spp != 1) {
		seterr(e, "%s: page %d: not bilevel (%u bits x %u samples)", path, page, bps, spp);
		return -1;
	}
	if (photo != PHOTOMETRIC_MINISWHITE && photo != PHOTOMETRIC_MINISBLACK) {
		seterr(e, "%s: page %d: photometric %u not supported", path, page, photo);
		return -1;
	}
	if (TIFFIsTiled(t)) {
		seterr(e, "%s: page %d: tiled images not supported", path, page);
		return -1;
	}
	if (w == 0 || h == 0 || w > MAX_WIDTH || h > MAX_HEIGHT) {
		seterr(e, "%s: page %d: unreasonable size %ux%u", path, page, w, h);
		return -1;
	}
	stride = (w + 7) / 8;
	sl = TIFFScanlineSize(t);
	if (sl <= 0 || (size_t)sl < stride) {
		seterr(e, "%s: page %d: bad scanline size", path, page);
		return -1;
	}
	buf = calloc(h, stride);
	line = malloc((size_t)sl);
	if (!buf || !line) {
		free(buf);
		free(line);
		seterr(e, "out of memory");
		return -1;
	}
	lastmask = (unsigned char)(w % 8 ? 0xff << (8 - w % 8) : 0xff);
	for (uint32_t r = 0; r < h; r++) {
		unsigned char *dst = buf + (size_t)r * stride;

		if (TIFFReadScanline(t, line, r, 0) < 0) {
			seterr(e, "%s: page %d: cannot decode row %u", path, page, r);
			free(buf);
			free(line);
			return -1;
		}
		for (size_t i = 0; i < stride; i++)
			dst[i] =
			    photo == PHOTOMETRIC_MINISBLACK ? (unsigned char)~line[i] : line[i];
		dst[stride - 1] &= lastmask;
	}
	free(line);
	*bits = buf;
	*width = (int)w;
	*height = (int)h;
	return 0;
}

int tiff_read_page(const char *path, int page, unsigned char **bits, int *width, int *height,
                   char *err, size_t errlen)
{
	struct tc_err e = {err, errlen, 0};
	TIFF *t;
	int rc;

	*bits = NULL;
	if (page < 1) {
		seterr(&e, "page %d: pages count from 1", page);
		return -1;
	}
	t = open_tiff(path, &e);
	if (!t)
		return -1;
	if (!TIFFSetDirectory(t, (tdir_t)(page - 1))) {
		seterr(&e, "%s: no page %d", path, page);
		TIFFClose(t);
		return -1;
	}
	rc = decode_page(t, path, page, bits, width, height, &e);
	TIFFClose(t);
	return rc;
}

static int popcount8(unsigned char c)
{
	return __builtin_popcount(c);
}

int tiff_compare(const char *a, const char *b, int *pages_a, int *pages_b, int *first_diff_page,
                 char *err, size_t errlen)
{
	struct tc_err e = {err, errlen, 0};
	TIFF *ta = NULL, *tb = NULL;
	int na, nb, rc = 0, diff_page = 0;
	char first[256] = "";

	if (pages_a)
		*pages_a = 0;
	if (pages_b)
		*pages_b = 0;
	if (first_diff_page)
		*first_diff_page = 0;
	if (err && errlen)
		err[0] = '\0';
	ta = open_tiff(a, &e);
	if (ta)
		tb = open_tiff(b, &e);
	if (!ta || !tb) {
		if (ta)
			TIFFClose(ta);
		return -1;
	}
	na = (int)TIFFNumberOfDirectories(ta);
	nb = (int)TIFFNumberOfDirectories(tb);

	for (int p = 1; p <= na && p <= nb; p++) {
		unsigned char *ba = NULL, *bb = NULL;
		int wa, ha, wb, hb;

		if (!TIFFSetDirectory(ta, (tdir_t)(p - 1)) ||
		    !TIFFSetDirectory(tb, (tdir_t)(p - 1))) {
			seterr(&e, "page %d: cannot read directory", p);
			rc = -1;
			break;
		}
		if (decode_page(ta, a, p, &ba, &wa, &ha, &e) < 0 ||
		    decode_page(tb, b, p, &bb, &wb, &hb, &e) < 0) {
			free(ba);
			rc = -1;
			break;
		}
		if (wa != wb || ha != hb) {
			if (!diff_page) {
				diff_page = p;
				snprintf(first, sizeof(first), "page %d: %dx%d vs %dx%d", p, wa, ha,
				         wb, hb);
			}
		} else {
			size_t stride = ((size_t)wa + 7) / 8;
			long ndiff = 0;
			int r0 = -1, r1 = -1;

			for (int r = 0; r < ha; r++) {
				const unsigned char *ra = ba + (size_t)r * stride;
				const unsigned char *rb = bb + (size_t)r * stride;

				if (memcmp(ra, rb, stride) == 0)
					continue;
				for (size_t i = 0; i < stride; i++)
					ndiff += popcount8(ra[i] ^ rb[i]);
				if (r0 < 0)
					r0 = r;
				r1 = r;
			}
			if (ndiff && !diff_page) {
				diff_page = p;
				snprintf(first, sizeof(first),
				         "page %d: %ld pixels differ in rows %d-%d", p, ndiff, r0,
				         r1);
			}
		}
		free(ba);
		free(bb);
	}
	TIFFClose(ta);
	TIFFClose(tb);
	if (pages_a)
		*pages_a = na;
	if (pages_b)
		*pages_b = nb;
	if (rc < 0)
		return -1;
	if (na != nb) {
		if (!diff_page)
			diff_page = (na < nb ? na : nb) + 1;
		if (first[0])
			seterr(&e, "%d pages vs %d pages; %s", na, nb, first);
		else
			seterr(&e, "%d pages vs %d pages", na, nb);
		rc = 1;
	} else if (diff_page) {
		seterr(&e, "%s", first);
		rc = 1;
	}
	if (first_diff_page)
		*first_diff_page = diff_page;
	return rc;
}
