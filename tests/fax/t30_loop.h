/*
 * t30_loop.h — an in-process fax call for tests: two spandsp 0.0.6 fax
 * terminals (one calling and sending a TIFF file, one answering and writing
 * what it receives to another TIFF file) exchange their audio in memory,
 * about 2000 times faster than real time.  It proves that a rendered TIFF
 * goes through a real T.30 negotiation and T.4/T.6 coding as it is.
 */
#ifndef CM_T30_LOOP_H
#define CM_T30_LOOP_H

#include <stddef.h>

/* image modems, as spandsp's T30_SUPPORT_* bits */
#define T30_LOOP_V27TER 0x01
#define T30_LOOP_V29 0x02
#define T30_LOOP_V17 0x04

struct t30_loop_opts {
	int ecm;         /* error correction mode (allows T.6 on the line) */
	int modems;      /* T30_LOOP_* offered by both ends; 0: all three */
	int max_seconds; /* of simulated audio before giving up; 0: 15 minutes */
	int verbose;     /* spandsp's protocol log on stderr */
};

struct t30_loop_result {
	int pages_in_file;                /* pages the sender found in tx_tiff */
	int pages_tx;                     /* pages the sender got confirmed */
	int pages_rx;                     /* pages the receiver wrote */
	int bit_rate;                     /* of the last page */
	int ecm;                          /* ECM actually used */
	int encoding;                     /* T4_COMPRESSION_* used on the line */
	int completion_tx, completion_rx; /* phase E codes (T30_ERR_*) */
	double audio_seconds;             /* simulated call duration */
};

/*
 * Send tx_tiff to rx_tiff.  Returns 0 when the call ended normally on both
 * sides and every page of the file was received; -1 otherwise, with err
 * saying why (spandsp's completion code text).  res may be NULL; opts NULL
 * means no ECM, all modems.
 */
int t30_loop_run(const char *tx_tiff, const char *rx_tiff, const struct t30_loop_opts *opts,
                 struct t30_loop_result *res, char *err, size_t errlen);

/* The simple form: ECM on or off, every modem; *pages_rx (may be NULL) gets the pages received. */
int t30_loop_transmit(const char *tx_tiff, const char *rx_tiff, int ecm, int *pages_rx, char *err,
                      size_t errlen);

#endif
