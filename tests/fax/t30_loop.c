/*
 * t30_loop.c — two spandsp fax terminals talking to each other in memory
 * (see t30_loop.h).  Modelled on spandsp's own tests/fax_tests.c: each
 * 20 ms step, each terminal produces 160 samples of audio (silence when it
 * has nothing to say: transmit-on-idle) which the other one consumes.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <spandsp.h>

#include "t30_loop.h"

#define CHUNK 160 /* samples: 20 ms at 8 kHz */

struct side {
	int done;
	int code;
};

static void phase_e(t30_state_t *t, void *user, int completion_code)
{
	struct side *s = user;

	(void)t;
	s->done = 1;
	s->code = completion_code;
}

static void setup(fax_state_t *f, struct side *side, int ecm, int modems, int verbose,
                  const char *tag)
{
	t30_state_t *t = fax_get_t30_state(f);

	fax_set_transmit_on_idle(f, 1);
	t30_set_tx_ident(t, tag[0] == 'T' ? "5145550100" : "8195550102");
	t30_set_ecm_capability(t, ecm);
	t30_set_supported_modems(t, modems);
	/* T.6 needs ECM on the line; spandsp then chooses the best common coding */
	t30_set_supported_compressions(t, T30_SUPPORT_T4_1D_COMPRESSION |
	                                      T30_SUPPORT_T4_2D_COMPRESSION |
	                                      (ecm ? T30_SUPPORT_T6_COMPRESSION : 0));
	t30_set_supported_resolutions(
	    t, T30_SUPPORT_STANDARD_RESOLUTION | T30_SUPPORT_FINE_RESOLUTION |
	           T30_SUPPORT_SUPERFINE_RESOLUTION | T30_SUPPORT_R8_RESOLUTION);
	t30_set_supported_image_sizes(
	    t, T30_SUPPORT_US_LETTER_LENGTH | T30_SUPPORT_A4_LENGTH | T30_SUPPORT_US_LEGAL_LENGTH |
	           T30_SUPPORT_UNLIMITED_LENGTH | T30_SUPPORT_215MM_WIDTH);
	t30_set_phase_e_handler(t, phase_e, side);
	if (verbose) {
		int level = SPAN_LOG_SHOW_SEVERITY | SPAN_LOG_SHOW_PROTOCOL | SPAN_LOG_SHOW_TAG |
		            SPAN_LOG_SHOW_SAMPLE_TIME | SPAN_LOG_FLOW;
		logging_state_t *l = t30_get_logging_state(t);

		span_log_set_level(l, level);
		span_log_set_tag(l, tag);
		l = fax_get_logging_state(f);
		span_log_set_level(l, level);
		span_log_set_tag(l, tag);
	}
}

int t30_loop_run(const char *tx_tiff, const char *rx_tiff, const struct t30_loop_opts *opts,
                 struct t30_loop_result *res, char *err, size_t errlen)
{
	struct t30_loop_opts def = {0, 0, 0, 0};
	struct t30_loop_result r;
	struct side stx = {0, -1}, srx = {0, -1};
	fax_state_t *ftx, *frx;
	int16_t atx[CHUNK], arx[CHUNK];
	long samples = 0, max_samples;
	int modems, rc = 0;
	t30_stats_t st_tx, st_rx;

	if (!opts)
		opts = &def;
	memset(&r, 0, sizeof(r));
	if (err && errlen)
		err[0] = '\0';
	modems =
	    opts->modems ? opts->modems : T30_SUPPORT_V27TER | T30_SUPPORT_V29 | T30_SUPPORT_V17;
	max_samples = 8000L * (opts->max_seconds > 0 ? opts->max_seconds : 15 * 60);

	ftx = fax_init(NULL, 1);
	frx = fax_init(NULL, 0);
	if (!ftx || !frx) {
		if (ftx)
			fax_free(ftx);
		if (frx)
			fax_free(frx);
		snprintf(err, errlen, "fax_init failed");
		return -1;
	}
	setup(ftx, &stx, opts->ecm, modems, opts->verbose, "TX");
	setup(frx, &srx, opts->ecm, modems, opts->verbose, "RX");
	t30_set_tx_file(fax_get_t30_state(ftx), tx_tiff, -1, -1);
	t30_set_rx_file(fax_get_t30_state(frx), rx_tiff, -1);
	t30_set_rx_encoding(fax_get_t30_state(frx), T4_COMPRESSION_ITU_T6);

	while (!(stx.done && srx.done) && samples < max_samples) {
		int n;

		n = fax_tx(ftx, atx, CHUNK);
		if (n < CHUNK)
			memset(atx + n, 0, sizeof(int16_t) * (size_t)(CHUNK - n));
		n = fax_tx(frx, arx, CHUNK);
		if (n < CHUNK)
			memset(arx + n, 0, sizeof(int16_t) * (size_t)(CHUNK - n));
		fax_rx(frx, atx, CHUNK);
		fax_rx(ftx, arx, CHUNK);
		samples += CHUNK;
	}

	t30_get_transfer_statistics(fax_get_t30_state(ftx), &st_tx);
	t30_get_transfer_statistics(fax_get_t30_state(frx), &st_rx);
	r.pages_in_file = st_tx.pages_in_file;
	r.pages_tx = st_tx.pages_tx;
	r.pages_rx = st_rx.pages_rx;
	r.bit_rate = st_tx.bit_rate;
	r.ecm = st_tx.error_correcting_mode;
	r.encoding = st_tx.encoding;
	r.completion_tx = stx.code;
	r.completion_rx = srx.code;
	r.audio_seconds = (double)samples / 8000.0;
	/* releasing the receiver closes (finishes writing) its TIFF file */
	fax_free(ftx);
	fax_free(frx);

	if (!(stx.done && srx.done)) {
		snprintf(err, errlen, "call did not end after %.0f s of audio (tx %s, rx %s)",
		         r.audio_seconds, stx.done ? "done" : "running",
		         srx.done ? "done" : "running");
		rc = -1;
	} else if (stx.code != T30_ERR_OK || srx.code != T30_ERR_OK) {
		snprintf(err, errlen, "call failed: sender: %s; receiver: %s",
		         t30_completion_code_to_str(stx.code),
		         t30_completion_code_to_str(srx.code));
		rc = -1;
	} else if (r.pages_rx != r.pages_tx ||
	           (r.pages_in_file > 0 && r.pages_rx != r.pages_in_file)) {
		snprintf(err, errlen, "%d pages in file, %d sent, %d received", r.pages_in_file,
		         r.pages_tx, r.pages_rx);
		rc = -1;
	} else if (r.pages_rx == 0) {
		snprintf(err, errlen, "no page received");
		rc = -1;
	}
	if (res)
		*res = r;
	return rc;
}

int t30_loop_transmit(const char *tx_tiff, const char *rx_tiff, int ecm, int *pages_rx, char *err,
                      size_t errlen)
{
	struct t30_loop_opts o = {ecm, 0, 0, 0};
	struct t30_loop_result r;
	int rc = t30_loop_run(tx_tiff, rx_tiff, &o, &r, err, errlen);

	if (pages_rx)
		*pages_rx = r.pages_rx;
	return rc;
}
