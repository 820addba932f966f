/*
 * fax_track.h — the job tracker (clinimail-fax track): polls every
 * submitted fax, sends the notice once the job is final (delivered only
 * when every page went), the "still retrying" notice once, then destroys
 * the backend's copies and our spool file; also resolves claims left by
 * dead delivery processes.  And the audit events both modes write.
 */
#ifndef CLINIMAIL_FAX_TRACK_H
#define CLINIMAIL_FAX_TRACK_H

#include <stddef.h>

struct fax_config;
struct fax_ledger_row;
struct audit;

/*
 * Run passes every PollInterval seconds until SIGTERM/SIGINT (once: one
 * pass, then return).  The caller blocks nothing: the signals are handled
 * here (sigtimedwait).  Returns an exit status (0, or EX_TEMPFAIL when the
 * ledger cannot be opened, EX_SOFTWARE …).
 */
int fax_track_run(const struct fax_config *c, int once);

/* AuditStore / AuditKey of the configuration; NULL (log only) when none.
 *failed set when the store is configured but cannot be opened. */
struct audit *fax_audit_open(const struct fax_config *c, int *failed, char *err, size_t errlen);

/*
 * One audit record of kind "fax-submitted", "fax-delivered", "fax-failed"
 * or "fax-destroyed" for a ledger row: ref, Message-ID, sender, recipients
 * "fax NUMBER", action, detail "job=… pages=S/T backend=…" plus extra.
 * a may be NULL (nothing recorded).
 */
void fax_audit_event(struct audit *a, const char *kind, const char *action,
                     const struct fax_ledger_row *r, const char *queue_id, const char *extra);

/* 1 when a claim is stale: its process is gone, or it is older than timeout seconds. */
int fax_claim_is_stale(int pid, long long claimed_at, int timeout);

#endif
