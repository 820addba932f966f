/*
 * gen-order-pdf.c — writes the benchmark's PDF attachment: a one-page
 * medication order (fictitious) as an establishment's clinical software would
 * print it, with a real text layer (poppler / pdftotext read it), embedded
 * font subsets, a letterhead logo and a scanned signature, about 70 KB.
 *
 *   gen-order-pdf OUT.pdf [VARIANT]
 *
 * VARIANT (default 0) changes the order number and the date, so that the
 * benchmark can send distinct PDFs (an attachment never seen before must be
 * extracted; one seen before comes from clinimail's PDF cache).  The output
 * is deterministic for a given variant.  Not built by `make`: run.sh builds
 * it (EXTRA_PROGRAMS) when it needs variants.
 */
#include <cairo-pdf.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MM (72.0 / 25.4)

/* A small deterministic PRNG (xorshift32): the same variant gives the same file. */
static uint32_t rnd(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

static void text(cairo_t *cr, const char *face, int bold, double size, double x, double y,
                 const char *s)
{
	cairo_select_font_face(cr, face, CAIRO_FONT_SLANT_NORMAL,
	                       bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, size);
	cairo_move_to(cr, x, y);
	cairo_show_text(cr, s);
}

/* The establishment's logo, as a raster image (scanned artwork, slightly noisy). */
static cairo_surface_t *make_logo(uint32_t *seed)
{
	const int w = 360, h = 120;
	cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
	cairo_t *cr = cairo_create(img);
	unsigned char *px;
	int stride;

	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_paint(cr);
	cairo_set_source_rgb(cr, 0.05, 0.30, 0.55);
	cairo_arc(cr, 60, 60, 48, 0, 6.283185307179586);
	cairo_fill(cr);
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_rectangle(cr, 52, 25, 16, 70);
	cairo_rectangle(cr, 25, 52, 70, 16);
	cairo_fill(cr);
	cairo_set_source_rgb(cr, 0.05, 0.30, 0.55);
	text(cr, "DejaVu Sans", 1, 30, 122, 55, "Hôpital");
	text(cr, "DejaVu Sans", 0, 22, 122, 88, "Exemple");
	cairo_destroy(cr);

	cairo_surface_flush(img);
	px = cairo_image_surface_get_data(img);
	stride = cairo_image_surface_get_stride(img);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			uint32_t *p = (uint32_t *)(px + y * stride + 4 * x);
			int n = (int)(rnd(seed) % 3) - 1;
			int r = (int)((*p >> 16) & 0xff) + n, g = (int)((*p >> 8) & 0xff) + n,
			    b = (int)(*p & 0xff) + n;
			r = r < 0 ? 0 : r > 255 ? 255 : r;
			g = g < 0 ? 0 : g > 255 ? 255 : g;
			b = b < 0 ? 0 : b > 255 ? 255 : b;
			*p = (uint32_t)r << 16 | (uint32_t)g << 8 | (uint32_t)b;
		}
	cairo_surface_mark_dirty(img);
	return img;
}

/* A handwritten signature, scanned in grey levels. */
static cairo_surface_t *make_signature(uint32_t *seed)
{
	const int w = 300, h = 90;
	cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
	cairo_t *cr = cairo_create(img);
	unsigned char *px;
	int stride;

	cairo_set_source_rgb(cr, 0.97, 0.97, 0.96);
	cairo_paint(cr);
	cairo_set_source_rgb(cr, 0.08, 0.10, 0.25);
	cairo_set_line_width(cr, 2.2);
	cairo_move_to(cr, 15, 60);
	for (int i = 0; i < 12; i++)
		cairo_curve_to(cr, 20 + i * 22, 10 + (i % 3) * 8, 30 + i * 22, 80 - (i % 4) * 6,
		               38 + i * 22, 45 + (i % 2) * 12);
	cairo_stroke(cr);
	cairo_move_to(cr, 40, 75);
	cairo_curve_to(cr, 120, 68, 200, 82, 285, 70);
	cairo_stroke(cr);
	cairo_destroy(cr);

	cairo_surface_flush(img);
	px = cairo_image_surface_get_data(img);
	stride = cairo_image_surface_get_stride(img);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			uint32_t *p = (uint32_t *)(px + y * stride + 4 * x);
			int v = (int)(*p & 0xff) + (int)(rnd(seed) % 7) - 3;
			v = v < 0 ? 0 : v > 255 ? 255 : v;
			*p = (uint32_t)v << 16 | (uint32_t)v << 8 | (uint32_t)v;
		}
	cairo_surface_mark_dirty(img);
	return img;
}

int main(int argc, char **argv)
{
	const double W = 210 * MM, H = 297 * MM, L = 20 * MM;
	unsigned long variant = 0;
	char line[256];
	cairo_surface_t *pdf, *logo, *sig;
	cairo_t *cr;
	uint32_t seed;
	double y;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: gen-order-pdf OUT.pdf [VARIANT]\n");
		return 2;
	}
	if (argc == 3) {
		char *end;
		variant = strtoul(argv[2], &end, 10);
		if (*end || variant > 999999) {
			fprintf(stderr, "gen-order-pdf: bad variant %s\n", argv[2]);
			return 2;
		}
	}
	seed = 2463534242u ^ (uint32_t)(variant * 2654435761u);
	if (seed == 0)
		seed = 1;

	pdf = cairo_pdf_surface_create(argv[1], W, H);
	if (cairo_surface_status(pdf) != CAIRO_STATUS_SUCCESS) {
		fprintf(stderr, "gen-order-pdf: %s: %s\n", argv[1],
		        cairo_status_to_string(cairo_surface_status(pdf)));
		return 1;
	}
	cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_TITLE, "Ordonnance");
	cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATOR, "DCI Exemple 4.2");
	cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATE_DATE, "2025-03-14T09:12:00");
	cr = cairo_create(pdf);

	/* letterhead */
	logo = make_logo(&seed);
	cairo_save(cr);
	cairo_translate(cr, L, 12 * MM);
	cairo_scale(cr, 0.25, 0.25);
	cairo_set_source_surface(cr, logo, 0, 0);
	cairo_paint(cr);
	cairo_restore(cr);
	cairo_set_source_rgb(cr, 0, 0, 0);
	text(cr, "DejaVu Sans", 0, 8, 120 * MM, 15 * MM, "Hôpital Exemple — GMF-U du Parc");
	text(cr, "DejaVu Sans", 0, 8, 120 * MM, 19 * MM, "1200, rue de l'Exemple");
	text(cr, "DejaVu Sans", 0, 8, 120 * MM, 23 * MM, "Sherbrooke (Québec)  J1H 0A0");
	text(cr, "DejaVu Sans", 0, 8, 120 * MM, 27 * MM,
	     "Tél. : 819 555-0900   Téléc. : 819 555-0901");
	cairo_set_line_width(cr, 0.8);
	cairo_move_to(cr, L, 44 * MM);
	cairo_line_to(cr, W - L, 44 * MM);
	cairo_stroke(cr);

	text(cr, "DejaVu Sans", 1, 18, L, 56 * MM, "ORDONNANCE — MÉDICAMENTS");
	snprintf(line, sizeof(line), "No d'ordonnance : ORD-2025-%06lu", 31270 + variant);
	text(cr, "DejaVu Sans Mono", 0, 9, 130 * MM, 56 * MM, line);
	snprintf(line, sizeof(line), "Date : 2025-03-%02lu", 1 + variant % 28);
	text(cr, "DejaVu Sans Mono", 0, 9, 130 * MM, 61 * MM, line);

	y = 72 * MM;
	text(cr, "DejaVu Sans", 1, 10, L, y, "Destinataire");
	text(cr, "DejaVu Serif", 0, 10, L, y += 6 * MM, "Pharmacie Auxbonsoins");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM,
	     "Téléphone : 999-333-5555     Télécopieur : 999-333-5554");

	y += 10 * MM;
	text(cr, "DejaVu Sans", 1, 10, L, y, "Usager");
	text(cr, "DejaVu Serif", 0, 10, L, y += 6 * MM, "Nom : BOLDUC    Prénom : Ginette");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM,
	     "Date de naissance : 1946-01-03    NAM : BOLG 4651 0312");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM,
	     "Numéro de dossier : 0123456    Adresse : 45, rue des Érables, Magog");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM,
	     "Allergies : sulfamidés (éruption cutanée). Poids : 68 kg. DFGe : 52 mL/min.");

	y += 10 * MM;
	text(cr, "DejaVu Sans", 1, 10, L, y, "Médicaments");
	{
		static const char *const rx[] = {
		    "1. Metformine 500 mg, 1 co po BID aux repas. Qté : 60 co. Ren. 12 mois",
		    "2. Atorvastatine 20 mg, 1 co po HS. Qté : 30 co. Ren. 12 mois",
		    "3. Ramipril 5 mg, 1 caps po DIE. Qté : 30 caps. Ren. 12 mois",
		    "4. Acétaminophène 500 mg, 1 à 2 co po q6h PRN douleur, max 3 g/jour. Qté : "
		    "100 co",
		    "5. Vitamine D3 1000 UI, 1 co po DIE. Qté : 90 co. Ren. 12 mois",
		};
		for (size_t i = 0; i < sizeof(rx) / sizeof(rx[0]); i++)
			text(cr, "DejaVu Serif", 0, 10, L + 3 * MM, y += 7 * MM, rx[i]);
	}
	y += 10 * MM;
	text(cr, "DejaVu Sans", 1, 10, L, y, "Intention thérapeutique / remarques");
	text(cr, "DejaVu Serif", 0, 10, L, y += 6 * MM,
	     "Diabète de type 2 et HTA stables; renouvellement au suivi annuel. Ramipril :");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM,
	     "contrôle de la kaliémie et de la créatinine dans 2 semaines (requête remise).");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM,
	     "Servir en pilulier hebdomadaire si possible.  Ne pas substituer le ramipril.");

	y += 14 * MM;
	text(cr, "DejaVu Sans", 1, 10, L, y, "Prescripteur");
	text(cr, "DejaVu Serif", 0, 10, L, y += 6 * MM,
	     "Dre Julie Tremblay, médecin de famille — permis no 1-98765");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM,
	     "Téléphone où me joindre : 819 555-0911 poste 2231");
	text(cr, "DejaVu Serif", 0, 10, L, y += 5 * MM, "Courriel : dr.tremblay@hopital.example");
	sig = make_signature(&seed);
	cairo_save(cr);
	cairo_translate(cr, 120 * MM, y - 14 * MM);
	cairo_scale(cr, 0.2, 0.2);
	cairo_set_source_surface(cr, sig, 0, 0);
	cairo_paint(cr);
	cairo_restore(cr);

	y += 14 * MM;
	text(cr, "DejaVu Sans", 0, 7.5, L, y,
	     "Je certifie que ce document est une ordonnance originale et que la pharmacie "
	     "identifiée "
	     "en est le seul");
	text(cr, "DejaVu Sans", 0, 7.5, L, y += 3.5 * MM,
	     "destinataire.  Copie versée au dossier de l'usager (archives médicales).");
	text(cr, "DejaVu Sans", 0, 7, L, H - 15 * MM,
	     "Document confidentiel. Si vous l'avez reçu par erreur, avisez l'expéditeur et "
	     "détruisez-le.  Page 1 de 1");

	cairo_show_page(cr);
	cairo_destroy(cr);
	cairo_surface_finish(pdf);
	if (cairo_surface_status(pdf) != CAIRO_STATUS_SUCCESS) {
		fprintf(stderr, "gen-order-pdf: %s\n",
		        cairo_status_to_string(cairo_surface_status(pdf)));
		return 1;
	}
	cairo_surface_destroy(pdf);
	cairo_surface_destroy(logo);
	cairo_surface_destroy(sig);
	/* Release the font caches, so that leak checkers stay quiet. */
	cairo_debug_reset_static_data();
	FcFini();
	return 0;
}
