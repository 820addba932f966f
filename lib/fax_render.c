/* fax_render.c — stub, being written (returns FAX_RENDER_ERROR). */
#include "autoconfig.h"

#include <stdio.h>

#include "fax_render.h"

void fax_render_opts_default(struct fax_render_opts *o)
{
	o->fine = 1;
	o->paper = PDF_PAPER_LETTER;
	o->compression = FAX_G4;
	o->max_pages = 50;
}

int fax_render(const struct pdf_message *content, const struct fax_cover *cover,
               const struct fax_render_opts *opts, const char *tiff_path, int *pages, char *err,
               size_t errlen)
{
	(void)content, (void)cover, (void)opts, (void)tiff_path;
	*pages = 0;
	snprintf(err, errlen, "fax rendering not written yet");
	return FAX_RENDER_ERROR;
}
