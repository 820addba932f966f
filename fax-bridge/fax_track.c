/*
 * fax_track.c — the job tracker (fax_track.h).  One pass:
 *   1. claims left by dead delivery processes: take the claim over, ask the
 *      backend whether the job was submitted (USRKEY) — adopt it, or
 *      release the claim and remove its spool file;
 *   2. SUBMITTED rows: poll; final → notice (kept for the next pass when
 *      sendmail fails), state DONE or FAILED, then destruction; still
 *      retrying past RetryNoticeAfter tries → one notice;
 *   3. DONE / FAILED rows whose destruction failed earlier: destroy again.
 * Destruction = the backend's job and document, then our spool file, then
 * state DESTROYED.  Nothing here reads message content.
 */
#include "autoconfig.h"
#include "fax_track.h"
#include "audit.h"
#include "fax_backend.h"
#include "fax_config.h"
#include "fax_ledger.h"
#include "fax_notice.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

struct tracker {
	const struct fax_config *c;
	struct fax_ledger *l;
	struct fax_backend *b;
	struct audit *a;
	int errors; /* this pass */
};

/* ---- shared helpers ---- */

int fax_claim_is_stale(int pid, long long claimed_at, int timeout)
{
	if (pid <= 0)
		return 1;
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return 1;
	return timeout > 0 && (long long)time(NULL) - claimed_at > timeout;
}

struct audit *fax_audit_open(const struct fax_config *c, int *failed, char *err, size_t errlen)
{
	struct audit_options o;
	struct audit *a;

	*failed = 0;
	if (c->audit_store == NULL || strcmp(c->audit_store, "none") == 0)
		return NULL;
	memset(&o, 0, sizeof(o));
	o.store = c->audit_store;
	o.key_file = c->audit_key_file;
	o.failure = NULL; /* tempfail */
	o.queue_size = 1000;
	o.create = 1;
	if ((a = audit_open(&o, err, errlen)) == NULL)
		*failed = 1;
	return a;
}

void fax_audit_event(struct audit *a, const char *kind, const char *action,
                     const struct fax_ledger_row *r, const char *queue_id, const char *extra)
{
	struct audit_record *rec;
	char buf[512], host[256];

	if (a == NULL)
		return;
	rec = audit_record_new();
	audit_set(&rec->kind, kind, 64);
	audit_now(buf, sizeof(buf));
	audit_set(&rec->time, buf, 64);
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	audit_set(&rec->host, host, 255);
	audit_set(&rec->ref, r->ref, 63);
	audit_set(&rec->queue_id, queue_id ? queue_id : "", 63);
	audit_set(&rec->message_id, r->message_id, 255);
	audit_set(&rec->sender, r->sender[0] ? r->sender : "<>", 255);
	snprintf(buf, sizeof(buf), "fax %s", r->number);
	audit_set(&rec->recipients, buf, 255);
	audit_set(&rec->action, action, 32);
	snprintf(buf, sizeof(buf), "job=%s pages=%d/%d backend=%s ledger=%lld%s%s",
	         r->job_id[0] ? r->job_id : "-", r->pages_sent, r->pages,
	         r->backend[0] ? r->backend : "-", r->id, extra && *extra ? " " : "",
	         extra ? extra : "");
	audit_set(&rec->detail, buf, 500);
	if (audit_submit_record(a, rec) != 0)
		msg_error("ledger %lld ref=%s: audit record %s not kept", r->id, r->ref, kind);
}

/* ---- destruction ---- */

static void destroy(struct tracker *t, const struct fax_ledger_row *in)
{
	struct fax_ledger_row r = *in;
	char err[512];
	int rc, server_kept = 0;

	rc = fax_backend_delete(t->b, &r, err, sizeof(err));
	if (rc == HFAX_TEMP) {
		msg_warn("ledger %lld ref=%s job=%s: cannot remove the fax server's copies yet: %s",
		         r.id, r.ref, r.job_id, err);
		t->errors++;
		return;
	}
	if (rc == HFAX_PERM) {
		/* The server refused (no ADMIN privilege: HylafaxAdminPassword): asking
		   again would not help.  Our own copy still goes. */
		msg_error("ledger %lld ref=%s job=%s: the fax server kept its copy of the document "
		          "(set HylafaxAdminPassword, or let faxqclean remove it): %s",
		          r.id, r.ref, r.job_id, err);
		size_t l = strlen(r.outcome);
		snprintf(r.outcome + l, sizeof(r.outcome) - l, "%s", "; server copy not removed");
		server_kept = 1;
	}
	if (r.spool_path[0] && unlink(r.spool_path) != 0 && errno != ENOENT) {
		msg_warn("ledger %lld ref=%s: cannot remove %s: %s", r.id, r.ref, r.spool_path,
		         strerror(errno));
		t->errors++;
		return;
	}
	r.spool_path[0] = '\0';
	r.state = FAXL_DESTROYED;
	if (fax_ledger_update(t->l, &r, err, sizeof(err)) < 0) {
		msg_error("ledger %lld: %s", r.id, err);
		t->errors++;
		return;
	}
	msg_info("ledger=%lld ref=%s job=%s number=%s: copies destroyed", r.id, r.ref, r.job_id,
	         r.number);
	fax_audit_event(t->a, "fax-destroyed", "destroyed", &r, NULL,
	                server_kept ? "server-copy=kept" : NULL);
}

/* ---- notices ---- */

static int notify(struct tracker *t, const struct fax_ledger_row *r, enum fax_notice_kind kind,
                  const struct hfax_status *st, int pages_sent, int pages_total, int tries)
{
	struct fax_notice n;
	char err[512];

	memset(&n, 0, sizeof(n));
	n.kind = kind;
	n.sender = r->sender;
	n.number = r->number;
	n.recipient_name = fax_config_recipient_name(t->c, r->number);
	n.ref = r->ref;
	n.message_id = r->message_id;
	n.job_id = r->job_id;
	n.ledger_id = r->id;
	n.pages_sent = pages_sent;
	n.pages_total = pages_total;
	n.tries = tries;
	n.max_tries = t->c->max_tries;
	n.when = time(NULL);
	n.csi = st ? st->csi : NULL;
	n.status = st ? st->status : NULL;
	if (fax_notice_send(t->c, &n, err, sizeof(err)) < 0) {
		msg_error("ledger %lld ref=%s job=%s: notice not sent (kept for the next pass): %s",
		          r->id, r->ref, r->job_id, err);
		t->errors++;
		return -1;
	}
	return 0;
}

/* ---- one SUBMITTED row ---- */

static void final(struct tracker *t, const struct fax_ledger_row *in, struct hfax_status *st)
{
	struct fax_ledger_row r = *in;
	int spool = strcmp(r.backend, "spool") == 0;
	int total = st->totpages > 0 ? st->totpages : r.pages;
	int delivered = st->state == HFAX_STATE_DONE && total > 0 && st->npages >= total;
	int tries = st->ndials > st->ntries ? st->ndials : st->ntries;
	enum fax_notice_kind kind;
	const char *fr, *en;
	char err[512];

	if (st->state == HFAX_STATE_GONE && st->status[0] == '\0')
		snprintf(st->status, sizeof(st->status), "unknown job");
	kind = delivered ? (spool ? FAXN_SPOOLED : FAXN_DELIVERED) : FAXN_FAILED;
	if (notify(t, &r, kind, st, st->npages, total, tries) < 0)
		return;
	r.state = delivered ? FAXL_DONE : FAXL_FAILED;
	r.pages_sent = st->npages;
	if (r.pages == 0)
		r.pages = total;
	if (tries > r.tries)
		r.tries = tries;
	r.finished_at = (long long)time(NULL);
	fax_reason_words(st->status, &fr, &en);
	if (delivered)
		snprintf(r.outcome, sizeof(r.outcome), "%s",
		         spool ? "written to the outbox" : "delivered");
	else if (st->npages > 0)
		snprintf(r.outcome, sizeof(r.outcome), "partial, %d of %d pages: %s", st->npages,
		         total, en);
	else
		snprintf(r.outcome, sizeof(r.outcome), "failed: %s", en);
	if (fax_ledger_update(t->l, &r, err, sizeof(err)) < 0) {
		/* The notice went; the next pass may send it again rather than lose the state. */
		msg_error("ledger %lld: %s", r.id, err);
		t->errors++;
		return;
	}
	msg_info("ledger=%lld ref=%s job=%s number=%s pages=%d/%d tries=%d outcome=%s%s%s", r.id,
	         r.ref, r.job_id, r.number, r.pages_sent, total, r.tries,
	         delivered ? (spool ? "spooled" : "delivered") : "failed",
	         st->csi[0] ? " csi=" : "", st->csi);
	{
		char extra[320];
		snprintf(extra, sizeof(extra), "outcome=\"%s\"", r.outcome);
		fax_audit_event(t->a, delivered ? "fax-delivered" : "fax-failed",
		                delivered ? "delivered" : "failed", &r, NULL, extra);
	}
	destroy(t, &r);
}

static int track_submitted(const struct fax_ledger_row *in, void *arg)
{
	struct tracker *t = arg;
	struct fax_ledger_row r = *in;
	struct hfax_status st;
	char err[512];
	int rc, tries, changed = 0;

	rc = fax_backend_poll(t->b, &r, &st, err, sizeof(err));
	if (rc == HFAX_TEMP) {
		msg_warn("ledger %lld ref=%s job=%s: cannot poll: %s", r.id, r.ref, r.job_id, err);
		t->errors++;
		return 0;
	}
	if (rc == HFAX_PERM) {
		memset(&st, 0, sizeof(st));
		st.state = HFAX_STATE_GONE;
		snprintf(st.status, sizeof(st.status), "unknown job (%.200s)", err);
	}
	switch (st.state) {
	case HFAX_STATE_DONE:
	case HFAX_STATE_FAILED:
	case HFAX_STATE_GONE:
		final(t, &r, &st);
		return 0;
	default:
		break;
	}
	tries = st.ndials > st.ntries ? st.ndials : st.ntries;
	if (tries != r.tries) {
		r.tries = tries;
		changed = 1;
	}
	/* "Still retrying": the job waits for its next attempt (not while a call is
	   under way, when the dial count already includes the current one). */
	if (t->c->retry_notice_after > 0 && !r.retry_notified &&
	    tries >= t->c->retry_notice_after && st.state == HFAX_STATE_PENDING) {
		if (notify(t, &r, FAXN_RETRYING, &st, st.npages,
		           st.totpages > 0 ? st.totpages : r.pages, tries) == 0) {
			r.retry_notified = 1;
			changed = 1;
			msg_info(
			    "ledger=%lld ref=%s job=%s number=%s tries=%d: still-retrying notice "
			    "sent",
			    r.id, r.ref, r.job_id, r.number, tries);
		}
	}
	if (changed && fax_ledger_update(t->l, &r, err, sizeof(err)) < 0) {
		msg_error("ledger %lld: %s", r.id, err);
		t->errors++;
	}
	return 0;
}

/* ---- claims left by dead processes ---- */

static int track_claimed(const struct fax_ledger_row *in, void *arg)
{
	struct tracker *t = arg;
	struct fax_ledger_row r = *in;
	char err[512], key[128], jobid[32];
	int me = (int)getpid(), rc;

	if (!fax_claim_is_stale(r.claim_pid, r.claimed_at, t->c->claim_timeout))
		return 0;
	if (fax_ledger_takeover(t->l, r.id, r.claim_pid, me, err, sizeof(err)) != 1)
		return 0; /* a delivery retry took it first */
	fax_backend_user_key(&r, key, sizeof(key));
	rc = fax_backend_find(t->b, &r, key, jobid, sizeof(jobid), err, sizeof(err));
	if (rc != HFAX_OK) {
		/* Unknown: hand the claim back to "nobody" so that the next pass or the
		   MTA's retry asks again. */
		msg_warn("ledger %lld ref=%s: stale claim, cannot ask the backend yet: %s", r.id,
		         r.ref, err);
		fax_ledger_takeover(t->l, r.id, me, 0, err, sizeof(err));
		t->errors++;
		return 0;
	}
	if (jobid[0]) {
		r.state = FAXL_SUBMITTED;
		snprintf(r.job_id, sizeof(r.job_id), "%s", jobid);
		snprintf(r.backend, sizeof(r.backend), "%s", fax_backend_name(t->b));
		r.submitted_at = (long long)time(NULL);
		r.claim_pid = 0;
		if (fax_ledger_update(t->l, &r, err, sizeof(err)) < 0) {
			msg_error("ledger %lld: %s", r.id, err);
			fax_ledger_takeover(t->l, r.id, me, 0, err, sizeof(err));
			t->errors++;
			return 0;
		}
		msg_info("ledger=%lld ref=%s job=%s number=%s: job of a dead delivery process "
		         "adopted",
		         r.id, r.ref, r.job_id, r.number);
		fax_audit_event(t->a, "fax-submitted", "submitted", &r, NULL, "adopted=yes");
		return 0;
	}
	{
		/* the file a dead process may have been rendering */
		char path[1024];
		if (r.spool_path[0])
			snprintf(path, sizeof(path), "%s", r.spool_path);
		else
			snprintf(path, sizeof(path), "%s/%lld.tif", t->c->spool_dir, r.id);
		if (unlink(path) != 0 && errno != ENOENT)
			msg_warn("ledger %lld: cannot remove %s: %s", r.id, path, strerror(errno));
	}
	if (fax_ledger_release(t->l, r.id, err, sizeof(err)) < 0) {
		msg_error("ledger %lld: %s", r.id, err);
		t->errors++;
		return 0;
	}
	msg_info("ledger=%lld ref=%s number=%s: stale claim released (nothing was submitted; the "
	         "MTA's retry faxes it)",
	         r.id, r.ref, r.number);
	return 0;
}

static int track_final(const struct fax_ledger_row *r, void *arg)
{
	destroy(arg, r);
	return 0;
}

static void pass(struct tracker *t)
{
	char err[512];

	t->errors = 0;
	if (fax_ledger_scan(t->l, FAXL_CLAIMED, track_claimed, t, err, sizeof(err)) < 0 ||
	    fax_ledger_scan(t->l, FAXL_SUBMITTED, track_submitted, t, err, sizeof(err)) < 0 ||
	    fax_ledger_scan(t->l, FAXL_DONE, track_final, t, err, sizeof(err)) < 0 ||
	    fax_ledger_scan(t->l, FAXL_FAILED, track_final, t, err, sizeof(err)) < 0) {
		msg_error("%s", err);
		t->errors++;
	}
	fax_backend_disconnect(t->b);
}

int fax_track_run(const struct fax_config *c, int once)
{
	struct tracker t;
	sigset_t set;
	char err[512];
	int failed, status = 0;

	memset(&t, 0, sizeof(t));
	t.c = c;
	/* Blocked before the audit writer thread starts: only sigtimedwait sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (!once && pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		msg_error("cannot block signals");
		return EX_OSERR;
	}
	if ((t.l = fax_ledger_open(c->ledger, err, sizeof(err))) == NULL) {
		msg_error("%s", err);
		return EX_TEMPFAIL;
	}
	t.a = fax_audit_open(c, &failed, err, sizeof(err));
	if (failed) {
		msg_error("audit: %s", err);
		fax_ledger_close(t.l);
		return EX_TEMPFAIL;
	}
	t.b = fax_backend_new(c);
	msg_info("tracker started: backend %s, ledger %s, every %d s%s", c->backend, c->ledger,
	         c->poll_interval, once ? " (one pass)" : "");
	for (;;) {
		struct timespec ts = {c->poll_interval, 0};
		int sig;

		pass(&t);
		if (once) {
			status = t.errors ? EX_TEMPFAIL : 0;
			break;
		}
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			msg_info("tracker stopping (signal %d)", sig);
			break;
		}
		/* SIGHUP, timeout or EINTR: next pass now. */
	}
	fax_backend_free(t.b);
	audit_close(t.a);
	fax_ledger_close(t.l);
	return status;
}
