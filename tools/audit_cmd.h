/*
 * audit_cmd.h — `clinimail audit`: the security officers' side of the audit
 * trail (list, show, stats, export, report, verify, purge), and the HTML
 * report it writes (audit_report.c).
 */
#ifndef CLINIMAIL_AUDIT_CMD_H
#define CLINIMAIL_AUDIT_CMD_H

#include <stdio.h>

struct audit_record;

/* argv[0] is "audit".  Exit status: 0 ok, 1 verify found a broken chain, 2 error. */
int cmd_audit(int argc, char **argv);

/* ---- audit_report.c ---- */

/* Counters over a set of records, for stats and the HTML report. */
struct audit_tally;
struct audit_tally *audit_tally_new(void);
void audit_tally_add(struct audit_tally *t, const struct audit_record *r);
void audit_tally_free(struct audit_tally *t);
/* Plain-text statistics (per action, per rule, per day, top senders). */
void audit_tally_print(const struct audit_tally *t, FILE *fp, size_t top);
/* One self-contained HTML page (inline SVG charts, no external resource). */
int audit_tally_html(const struct audit_tally *t, FILE *fp, const char *title, const char *period);

#endif
