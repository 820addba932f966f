/*
 * tiff-compare-main.c — `tiff-compare A.tif B.tif`: are two fax TIFF files
 * the same pages, pixel for pixel, whatever their compression?
 * Exit 0 and "identical: N pages" when they are; 1 and what differs (page
 * counts, first differing page) when not; 2 on a usage or read error.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "tiff_compare.h"

int main(int argc, char **argv)
{
	char err[512];
	int pa, pb, first, rc;

	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
		fprintf(stderr, "usage: tiff-compare A.tif B.tif\n"
		                "exit 0: identical, 1: different, 2: error\n");
		return 2;
	}
	rc = tiff_compare(argv[1], argv[2], &pa, &pb, &first, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "tiff-compare: %s\n", err);
		return 2;
	}
	if (rc == 0) {
		printf("identical: %d pages\n", pa);
		return 0;
	}
	printf("different: %s (first differing page %d of %d/%d)\n", err, first, pa, pb);
	return 1;
}
