/*
 * tiff_compare.h — compare two multi-page bilevel TIFF files pixel by pixel,
 * page by page, whatever their compression (G3 1-D/2-D, G4, none, packbits),
 * fill order or photometric interpretation: what a fax test needs to say
 * "the pages received are the pages sent".
 */
#ifndef CM_TIFF_COMPARE_H
#define CM_TIFF_COMPARE_H

#include <stddef.h>

/*
 * Returns 0 when both files hold the same number of pages with the same
 * dimensions and the same black pixels, 1 when they differ (err says how:
 * page counts, "page N: 1728x2156 vs 1728x1078", "page N: K pixels differ
 * in rows R1-R2"), -1 when a file cannot be read (err says why).
 * *pages_a / *pages_b get the page counts (0 on error), *first_diff_page
 * the first page (1-based) that differs, 0 when none does.  Any of the int
 * pointers may be NULL.
 */
int tiff_compare(const char *a, const char *b, int *pages_a, int *pages_b, int *first_diff_page,
                 char *err, size_t errlen);

/*
 * Black pixels (ink) of one page, 1 bit per pixel, MSB first, 1 = black,
 * rows padded to whole bytes: on success 0, *bits (free()) holds
 * *height rows of (*width + 7) / 8 bytes.  page is 1-based.  For tests
 * that look at where ink is.
 */
int tiff_read_page(const char *path, int page, unsigned char **bits, int *width, int *height,
                   char *err, size_t errlen);

#endif
