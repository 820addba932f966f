/*
 * clinimail-fax.c — the fax bridge (issue 4, RULES.md rule 14;
 * clinimail-fax(8)):
 *
 *   deliver   the delivery agent for Postfix pipe(8) / Sendmail's prog
 *             mailer: one message on stdin, its envelope recipients
 *             NUMBER@<FaxDomain> as arguments; the milter's approval stamp
 *             verified, the number checked against it, the fax claimed in
 *             the ledger (exactly once), rendered, submitted.  Exit status
 *             per sysexits.h and ONE line of output (enhanced status code,
 *             French then English, ASCII) that the MTA puts in the bounce;
 *   track     the job tracker (fax_track.c);
 *   stamp     make an approval stamp for a message (tests, administrators);
 *   config    print the configuration as read;
 *   notice    print a notice as the tracker would send it (preview, tests).
 *
 * The message is read before anything is trusted: the header is scanned by
 * hand for the stamp and the Message-ID, and GMime only parses a message
 * whose stamp verified.  Logs carry ids, numbers, counts and outcomes,
 * never the Subject, names or text.
 */
#include "autoconfig.h"
#include "fax_backend.h"
#include "fax_config.h"
#include "fax_ledger.h"
#include "fax_notice.h"
#include "fax_render.h"
#include "fax_stamp.h"
#include "fax_track.h"
#include "audit.h"
#include "mime_text.h"
#include "msg_render.h"
#include "pdf_render.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>

#define PROG "clinimail-fax"
#define MAX_STAMPS 16 /* stamp fields looked at */
#define MAX_RCPTS 64  /* envelope recipients per delivery */

static void usage(FILE *fp)
{
	fprintf(fp, "usage: " PROG " deliver [-c conf] [-q queue-id] -f SENDER -- RECIPIENT...\n"
	            "       " PROG " track [-c conf] [-1]\n"
	            "       " PROG " stamp -k KEYFILE -r REF [-t TIME] NUMBER... < message\n"
	            "       " PROG " config [-c conf]\n"
	            "       " PROG
	            " notice [-c conf] delivered|spooled|failed|retrying NUMBER SENT/TOTAL "
	            "[STATUS]\n");
}

/* ---- the one line of output ---- */

struct outcome {
	int code;       /* sysexits */
	char line[400]; /* "X.Y.Z texte / text" */
	int severity;   /* 0 ok, 1 temp, 2 perm: the worst one is kept */
};

CM_PRINTF(3, 4)
static int set_outcome(struct outcome *o, int code, const char *fmt, ...)
{
	int sev = code == EX_OK ? 0 : (code == EX_TEMPFAIL || code == EX_CONFIG) ? 1 : 2;
	va_list ap;

	if (o->line[0] && sev <= o->severity) /* the first of the worst outcomes is kept */
		return code;
	o->severity = sev;
	o->code = code;
	va_start(ap, fmt);
	vsnprintf(o->line, sizeof(o->line), fmt, ap);
	va_end(ap);
	/* ASCII only: it ends up in DSNs and logs of any MTA. */
	for (char *p = o->line; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return code;
}

/* A value from outside shown in the output line: printable ASCII, short. */
static void shown(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = in ? in : ""; *p && o + 1 < outlen && o < 40; p++)
		out[o++] = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f ? *p : '?';
	out[o] = '\0';
}

/* ---- reading the message ---- */

/* stdin up to max bytes; 0, 1 when larger than max, -1 on a read error. */
static int read_message(size_t max, struct strbuf *sb)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (sb->len + (size_t)n > max)
			return 1;
		sb_append(sb, buf, (size_t)n);
	}
}

/* One header field: name and raw value (folds kept), pointers into the message. */
struct field {
	const char *name, *value;
	size_t nlen, vlen;
};

/*
 * Walk the header: calls cb for every field.  Returns the offset of the
 * body (after the empty line), or len when there is none.
 */
static size_t scan_header(const char *m, size_t len, void (*cb)(const struct field *f, void *arg),
                          void *arg)
{
	size_t i = 0;

	while (i < len) {
		const char *line = m + i, *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) + 1 : len - i;

		if (line[0] == '\n')
			return i + 1;
		if (line[0] == '\r' && ll >= 2 && line[1] == '\n')
			return i + 2;
		if (line[0] == ' ' || line[0] == '\t') { /* stray continuation */
			i += ll;
			continue;
		}
		/* the field runs over its continuation lines */
		size_t end = i + ll;
		while (end < len && (m[end] == ' ' || m[end] == '\t')) {
			const char *n2 = memchr(m + end, '\n', len - end);
			end = n2 ? (size_t)(n2 - m) + 1 : len;
		}
		const char *colon = memchr(line, ':', end - i);
		if (colon && colon > line) {
			struct field f;
			size_t vend = end;
			while (vend > (size_t)(colon + 1 - m) &&
			       (m[vend - 1] == '\n' || m[vend - 1] == '\r'))
				vend--;
			f.name = line;
			f.nlen = (size_t)(colon - line);
			while (f.nlen > 0 && (line[f.nlen - 1] == ' ' || line[f.nlen - 1] == '\t'))
				f.nlen--;
			f.value = colon + 1;
			f.vlen = vend - (size_t)(colon + 1 - m);
			cb(&f, arg);
		}
		i = end;
	}
	return len;
}

struct header_info {
	char *message_id_raw; /* first Message-ID */
	char *from_raw;       /* first From */
	char *stamps[MAX_STAMPS];
	size_t nstamps, stamps_seen;
};

static int name_is(const struct field *f, const char *name)
{
	return f->nlen == strlen(name) && g_ascii_strncasecmp(f->name, name, f->nlen) == 0;
}

static void header_cb(const struct field *f, void *arg)
{
	struct header_info *h = arg;

	if (name_is(f, "Message-ID")) {
		if (h->message_id_raw == NULL)
			h->message_id_raw = xstrndup(f->value, f->vlen);
	} else if (name_is(f, "From")) {
		if (h->from_raw == NULL)
			h->from_raw = xstrndup(f->value, f->vlen > 4096 ? 4096 : f->vlen);
	} else if (name_is(f, FAX_STAMP_HEADER)) {
		h->stamps_seen++;
		if (h->nstamps < MAX_STAMPS)
			h->stamps[h->nstamps++] = xstrndup(
			    f->value,
			    f->vlen > FAX_STAMP_MAX_VALUE + 1 ? FAX_STAMP_MAX_VALUE + 1 : f->vlen);
	}
}

static void header_info_free(struct header_info *h)
{
	free(h->message_id_raw);
	free(h->from_raw);
	for (size_t i = 0; i < h->nstamps; i++)
		free(h->stamps[i]);
}

static void body_hash(const char *body, size_t len, unsigned char bh[32])
{
	struct fax_body_hash *h = fax_body_hash_new();
	fax_body_hash_update(h, body, len);
	fax_body_hash_final(h, bh);
}

/* Skip an mbox "From " envelope line (a prog mailer with the F flag). */
static size_t skip_envelope_line(const char *m, size_t len)
{
	const char *nl;

	if (len >= 5 && memcmp(m, "From ", 5) == 0 && (nl = memchr(m, '\n', len)) != NULL)
		return (size_t)(nl - m) + 1;
	return 0;
}

/* ---- deliver ---- */

struct rcpt {
	char number[11];
	const struct fax_stamp *stamp; /* the valid stamp that lists it */
};

struct delivery {
	const struct fax_config *c;
	const char *sender;
	const char *queue_id;
	const char *msg; /* the message (envelope line skipped) */
	size_t len;
	char message_id[512]; /* canonical, "" when none (the milter reads up to 511) */
	char ledger_mid[600]; /* the ledger key's message part */
	char bh_hex[65];
	struct printable_msg pm;
	char *from_name, *from_addr;
	struct fax_ledger *ledger;
	struct fax_backend *backend;
	struct audit *audit;
};

static void spool_path_of(const struct fax_config *c, long long id, char *out, size_t len)
{
	snprintf(out, len, "%s/%lld.tif", c->spool_dir, id);
}

static void release(struct delivery *d, struct fax_ledger_row *row)
{
	char err[512], path[1024];

	spool_path_of(d->c, row->id, path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT)
		msg_warn("ledger %lld: cannot remove %s: %s", row->id, path, strerror(errno));
	if (fax_ledger_release(d->ledger, row->id, err, sizeof(err)) < 0)
		msg_error("ledger %lld: claim not released: %s", row->id, err);
}

/* From display name and address of the message (GMime: encoded words decoded). */
static void parse_from(struct delivery *d, const char *raw)
{
	InternetAddressList *l;

	if (raw == NULL)
		return;
	l = internet_address_list_parse(NULL, raw);
	if (l == NULL)
		return;
	for (int i = 0; i < internet_address_list_length(l); i++) {
		InternetAddress *ia = internet_address_list_get_address(l, i);
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		const char *name = internet_address_get_name(ia);
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		if (name && *name)
			d->from_name = xstrdup(name);
		if (addr && *addr)
			d->from_addr = addr_normalize(addr);
		break;
	}
	g_object_unref(l);
}

/*
 * One number: claim, connect, render, submit.  Returns a sysexits code
 * and sets the outcome.
 */
static int deliver_one(struct delivery *d, const struct rcpt *rc, struct outcome *out)
{
	const struct fax_config *c = d->c;
	struct fax_ledger_row row;
	struct fax_cover cover;
	struct fax_render_opts ro;
	struct fax_submission sub;
	const struct fax_sender *fs;
	char err[512], path[512], jobid[32], key[128], date[64];
	int r, pages = 0, me = (int)getpid();
	time_t now = time(NULL);
	struct tm tm;

	r = fax_ledger_claim(d->ledger, d->ledger_mid, rc->number, d->bh_hex, rc->stamp->ref,
	                     d->sender, me, &row, err, sizeof(err));
	if (r < 0) {
		msg_error("ref=%s number=%s: %s", rc->stamp->ref, rc->number, err);
		return set_outcome(out, EX_TEMPFAIL,
		                   "4.3.0 telecopie en attente: registre occupe ou indisponible, "
		                   "nouvel essai plus tard / fax deferred: ledger busy or "
		                   "unavailable, will retry");
	}
	if (r == 0 && row.state != FAXL_CLAIMED) {
		msg_info("ref=%s ledger=%lld job=%s number=%s: duplicate, already faxed as job %s "
		         "(%s)",
		         row.ref, row.id, row.job_id, row.number, row.job_id,
		         fax_ledger_state_name(row.state));
		return set_outcome(
		    out, EX_OK,
		    "2.0.0 doublon: deja telecopie (travail %s) / duplicate, already "
		    "faxed as job %s",
		    row.job_id, row.job_id);
	}
	if (r == 0) {
		/* A claim: live (another delivery is at work) or left by a dead one. */
		if (!fax_claim_is_stale(row.claim_pid, row.claimed_at, c->claim_timeout) ||
		    fax_ledger_takeover(d->ledger, row.id, row.claim_pid, me, err, sizeof(err)) !=
		        1) {
			msg_info("ref=%s ledger=%lld number=%s: being faxed by process %d", row.ref,
			         row.id, row.number, row.claim_pid);
			return set_outcome(out, EX_TEMPFAIL,
			                   "4.3.0 telecopie en attente: deja en cours par un autre "
			                   "processus / fax deferred: being processed by another "
			                   "delivery");
		}
		row.claim_pid = me;
		fax_backend_user_key(&row, key, sizeof(key));
		r = fax_backend_find(d->backend, &row, key, jobid, sizeof(jobid), err, sizeof(err));
		if (r != HFAX_OK) {
			/* Unknown whether the dead process submitted it: keep the claim. */
			fax_ledger_takeover(d->ledger, row.id, me, 0, NULL, 0);
			msg_warn(
			    "ref=%s ledger=%lld number=%s: claim of a dead process, fax server "
			    "not reachable to check it: %s",
			    row.ref, row.id, row.number, err);
			return set_outcome(
			    out, EX_TEMPFAIL,
			    "4.4.1 telecopie en attente: serveur de telecopie "
			    "injoignable / fax deferred: fax server unreachable, will "
			    "retry");
		}
		if (jobid[0]) {
			row.state = FAXL_SUBMITTED;
			snprintf(row.job_id, sizeof(row.job_id), "%s", jobid);
			snprintf(row.backend, sizeof(row.backend), "%s",
			         fax_backend_name(d->backend));
			row.submitted_at = (long long)now;
			row.claim_pid = 0;
			if (fax_ledger_update(d->ledger, &row, err, sizeof(err)) < 0) {
				fax_ledger_takeover(d->ledger, row.id, me, 0, NULL, 0);
				msg_error("ledger %lld: %s", row.id, err);
				return set_outcome(
				    out, EX_TEMPFAIL,
				    "4.3.0 telecopie en attente: registre indisponible / "
				    "fax deferred: ledger unavailable");
			}
			msg_info("ref=%s ledger=%lld job=%s number=%s: job of a dead delivery "
			         "adopted",
			         row.ref, row.id, row.job_id, row.number);
			fax_audit_event(d->audit, "fax-submitted", "submitted", &row, d->queue_id,
			                "adopted=yes");
			return set_outcome(out, EX_OK,
			                   "2.0.0 telecopie soumise (travail %s) / fax submitted "
			                   "(job %s)",
			                   row.job_id, row.job_id);
		}
		msg_info(
		    "ref=%s ledger=%lld number=%s: claim of a dead process taken over, nothing "
		    "was submitted",
		    row.ref, row.id, row.number);
	}

	/* We own the claim.  Reach the fax server before spending time rendering. */
	if (fax_backend_connect(d->backend, err, sizeof(err)) != HFAX_OK) {
		release(d, &row);
		msg_warn("ref=%s ledger=%lld number=%s: fax server unreachable: %s", row.ref,
		         row.id, row.number, err);
		return set_outcome(out, EX_TEMPFAIL,
		                   "4.4.1 telecopie en attente: serveur de telecopie injoignable, "
		                   "nouvel essai plus tard / fax deferred: fax server unreachable, "
		                   "will retry");
	}
	if (mkdir(c->spool_dir, 0700) != 0 && errno != EEXIST) {
		msg_error("spool %s: %s", c->spool_dir, strerror(errno));
		release(d, &row);
		return set_outcome(out, EX_TEMPFAIL,
		                   "4.3.0 telecopie en attente: dossier de travail indisponible / "
		                   "fax deferred: spool directory unavailable");
	}
	spool_path_of(c, row.id, path, sizeof(path));
	snprintf(row.spool_path, sizeof(row.spool_path), "%s", path);
	if (fax_ledger_update(d->ledger, &row, err, sizeof(err)) < 0) {
		msg_error("ledger %lld: %s", row.id, err);
		release(d, &row);
		return set_outcome(out, EX_TEMPFAIL,
		                   "4.3.0 telecopie en attente: registre indisponible / fax "
		                   "deferred: ledger unavailable");
	}

	/* the cover page */
	fs = fax_config_sender(c, d->from_addr);
	if (fs == NULL)
		fs = fax_config_sender(c, d->sender);
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M", &tm);
	memset(&cover, 0, sizeof(cover));
	cover.establishment = c->establishment;
	cover.sender_name = d->from_name ? d->from_name : fs ? fs->name : NULL;
	cover.sender_address = d->from_addr ? d->from_addr : d->sender;
	cover.sender_phone = fs && fs->phone[0] ? fs->phone : NULL;
	cover.sender_licence = fs && fs->licence[0] ? fs->licence : NULL;
	cover.recipient_name = fax_config_recipient_name(c, rc->number);
	cover.recipient_number = rc->number;
	cover.date = date;
	cover.order_number = rc->stamp->ref;
	fax_config_render_opts(c, &ro);

	r = fax_render(&d->pm.m, &cover, &ro, path, &pages, err, sizeof(err));
	if (r != FAX_RENDER_OK) {
		/* The reason may name an attachment: not logged, not in the bounce. */
		release(d, &row);
		msg_warn("ref=%s ledger=%lld number=%s: rendering failed (%s)", row.ref, row.id,
		         row.number,
		         r == FAX_RENDER_TOO_LARGE   ? "too many pages"
		         : r == FAX_RENDER_BAD_INPUT ? "unrenderable content"
		                                     : "transient error");
		if (r == FAX_RENDER_TOO_LARGE)
			return set_outcome(
			    out, EX_DATAERR,
			    "5.3.4 telecopie refusee: plus de %d pages / fax refused: "
			    "more than %d pages",
			    ro.max_pages, ro.max_pages);
		if (r == FAX_RENDER_BAD_INPUT)
			return set_outcome(
			    out, EX_DATAERR,
			    "5.6.0 telecopie refusee: rien a envoyer ou piece jointe impossible a "
			    "rendre (type non pris en charge ou fichier endommage) / fax refused: "
			    "nothing to send or an attachment cannot be rendered (unsupported type "
			    "or "
			    "damaged file)");
		return set_outcome(
		    out, EX_TEMPFAIL,
		    "4.3.0 telecopie en attente: erreur temporaire de mise en page / "
		    "fax deferred: temporary rendering error, will retry");
	}
	row.pages = pages;

	memset(&sub, 0, sizeof(sub));
	fax_backend_user_key(&row, key, sizeof(key));
	sub.number = rc->number;
	sub.tiff_path = path;
	sub.pages = pages;
	sub.ref = row.ref;
	sub.sender = d->sender;
	sub.user_key = key;
	sub.ledger_id = row.id;
	sub.when = now;
	r = fax_backend_submit(d->backend, &sub, jobid, sizeof(jobid), err, sizeof(err));
	if (r == HFAX_PERM) {
		release(d, &row);
		msg_warn("ref=%s ledger=%lld number=%s: fax server refused the job: %s", row.ref,
		         row.id, row.number, err);
		return set_outcome(out, EX_DATAERR,
		                   "5.6.0 telecopie refusee par le serveur de telecopie / fax "
		                   "refused by the fax server");
	}
	if (r != HFAX_OK) {
		if (c->backend_kind == FAX_BACKEND_HYLAFAX) {
			/* The server may have queued it before the connection broke: keep
			   the claim; the next attempt asks the server (USRKEY). */
			fax_ledger_takeover(d->ledger, row.id, me, 0, NULL, 0);
			msg_warn("ref=%s ledger=%lld number=%s: submission interrupted, checked at "
			         "the next attempt: %s",
			         row.ref, row.id, row.number, err);
		} else {
			release(d, &row);
			msg_warn("ref=%s ledger=%lld number=%s: outbox: %s", row.ref, row.id,
			         row.number, err);
		}
		return set_outcome(out, EX_TEMPFAIL,
		                   "4.4.1 telecopie en attente: envoi au serveur de telecopie "
		                   "interrompu / fax deferred: submission interrupted, will retry");
	}
	row.state = FAXL_SUBMITTED;
	snprintf(row.job_id, sizeof(row.job_id), "%s", jobid);
	snprintf(row.backend, sizeof(row.backend), "%s", fax_backend_name(d->backend));
	row.submitted_at = (long long)time(NULL);
	row.claim_pid = 0;
	if (fax_ledger_update(d->ledger, &row, err, sizeof(err)) < 0) {
		/* Submitted but not recorded: the claim (now of nobody) lets the next
		   attempt or the tracker find the job by its USRKEY. */
		fax_ledger_takeover(d->ledger, row.id, me, 0, NULL, 0);
		msg_error("ref=%s ledger=%lld job=%s number=%s: submitted but not recorded: %s",
		          row.ref, row.id, jobid, row.number, err);
		return set_outcome(out, EX_TEMPFAIL,
		                   "4.3.0 telecopie en attente: registre indisponible / fax "
		                   "deferred: ledger unavailable");
	}
	msg_info("ref=%s ledger=%lld job=%s number=%s pages=%d backend=%s%s%s: submitted", row.ref,
	         row.id, row.job_id, row.number, pages, row.backend,
	         d->queue_id ? " queue_id=" : "", d->queue_id ? d->queue_id : "");
	fax_audit_event(d->audit, "fax-submitted", "submitted", &row, d->queue_id, NULL);
	return set_outcome(out, EX_OK,
	                   "2.0.0 telecopie soumise (travail %s, %d pages) / fax submitted (job "
	                   "%s, %d pages)",
	                   row.job_id, pages, row.job_id, pages);
}

static int cmd_deliver(int argc, char **argv)
{
	const char *conf = FAX_DEFAULT_CONFIG, *sender = NULL, *queue_id = NULL;
	struct outcome out;
	struct fax_config *c = NULL;
	struct header_info h;
	struct strbuf msg;
	struct delivery d;
	struct rcpt rcpts[MAX_RCPTS];
	struct fax_stamp stamps[MAX_STAMPS];
	size_t nrcpts = 0, nvalid = 0, boff, skip;
	unsigned char bh[32];
	char err[1024], stamp_err[256] = "", shownbuf[64];
	int ch, rr, audit_failed;

	memset(&out, 0, sizeof(out));
	memset(&h, 0, sizeof(h));
	memset(&d, 0, sizeof(d));
	sb_init(&msg);
	optind = 1;
	while ((ch = getopt(argc, argv, "+c:f:q:")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'f':
			sender = optarg;
			break;
		case 'q':
			queue_id = optarg;
			break;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (sender == NULL || optind >= argc) {
		set_outcome(&out, EX_USAGE,
		            "5.3.0 " PROG ": usage: deliver [-c conf] -f SENDER -- RECIPIENT...");
		goto done;
	}
	if (argc - optind > MAX_RCPTS) {
		set_outcome(&out, EX_TEMPFAIL,
		            "4.5.3 trop de destinataires a la fois / too many recipients at once");
		goto done;
	}
	log_init(PROG, 1, LOG_MAIL); /* until the configuration says otherwise */
	if ((c = fax_config_load(conf, err, sizeof(err))) == NULL) {
		msg_error("%s", err);
		set_outcome(&out, EX_CONFIG,
		            "4.3.5 telecopie en attente: erreur de configuration du service de "
		            "telecopie / fax deferred: fax bridge configuration error");
		goto done;
	}
	if (fax_config_logging(c, PROG, err, sizeof(err)) < 0) {
		msg_error("%s", err);
		set_outcome(&out, EX_CONFIG,
		            "4.3.5 telecopie en attente: erreur de configuration du service de "
		            "telecopie / fax deferred: fax bridge configuration error");
		goto done;
	}
	d.c = c;
	d.sender = sender;
	d.queue_id = queue_id;

	/* ---- the message ---- */
	rr = read_message(c->max_message_size, &msg);
	if (rr < 0) {
		msg_error("reading the message: %s", strerror(errno));
		set_outcome(&out, EX_TEMPFAIL,
		            "4.3.0 telecopie en attente: lecture du message impossible / fax "
		            "deferred: cannot read the message");
		goto done;
	}
	if (rr > 0) {
		msg_info("message larger than MaxMessageSize (%zu): refused", c->max_message_size);
		set_outcome(&out, EX_DATAERR,
		            "5.3.4 telecopie refusee: message trop gros (plus de %zu octets) / fax "
		            "refused: message too large (over %zu bytes)",
		            c->max_message_size, c->max_message_size);
		goto done;
	}
	skip = skip_envelope_line(msg.data ? msg.data : "", msg.len);
	d.msg = (msg.data ? msg.data : "") + skip;
	d.len = msg.len - skip;
	boff = scan_header(d.msg, d.len, header_cb, &h);
	body_hash(d.msg + boff, d.len - boff, bh);
	fax_body_hash_hex(bh, d.bh_hex);
	/* SHA-256 of the empty canonical body: nothing after the header. */
	if (d.len == 0 ||
	    strcmp(d.bh_hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") ==
	        0) {
		msg_info("empty message (%zu bytes): refused", d.len);
		set_outcome(&out, EX_DATAERR,
		            "5.6.0 telecopie refusee: message vide / fax refused: empty message");
		goto done;
	}

	/* ---- the recipients: numbers only from the envelope ---- */
	for (int i = optind; i < argc; i++) {
		const char *a = argv[i], *at = strrchr(a, '@');
		char local[128];
		size_t ll = at ? (size_t)(at - a) : strlen(a);
		if (at && !str_iequal(at + 1, c->fax_domain)) {
			shown(a, shownbuf, sizeof(shownbuf));
			set_outcome(
			    &out, EX_DATAERR,
			    "5.1.1 telecopie refusee: %s n'est pas une adresse du domaine de "
			    "telecopie / fax refused: %s is not a fax address",
			    shownbuf, shownbuf);
			goto done;
		}
		if (ll >= sizeof(local) || ll == 0) {
			set_outcome(
			    &out, EX_DATAERR,
			    "5.1.3 telecopie refusee: numero invalide / fax refused: invalid "
			    "number");
			goto done;
		}
		memcpy(local, a, ll);
		local[ll] = '\0';
		if (fax_number_nanp(local, rcpts[nrcpts].number) < 0) {
			shown(local, shownbuf, sizeof(shownbuf));
			msg_info("invalid number \"%s\": refused", shownbuf);
			set_outcome(
			    &out, EX_DATAERR,
			    "5.1.3 telecopie refusee: numero invalide ou hors Amerique du Nord "
			    "(%s) / fax refused: invalid or non-North-American number (%s)",
			    shownbuf, shownbuf);
			goto done;
		}
		rcpts[nrcpts].stamp = NULL;
		nrcpts++;
	}

	/* ---- the approval ---- */
	if (h.message_id_raw &&
	    fax_message_id_canon(h.message_id_raw, d.message_id, sizeof(d.message_id)) < 0)
		d.message_id[0] = '\0';
	for (size_t i = 0; i < h.nstamps; i++) {
		char why[256];
		if (fax_stamp_verify(&c->key, h.stamps[i], d.message_id, bh, &stamps[nvalid], why,
		                     sizeof(why)) == 0)
			nvalid++;
		else if (stamp_err[0] == '\0')
			snprintf(stamp_err, sizeof(stamp_err), "%s", why);
	}
	if (nvalid == 0) {
		msg_info("sender=%s message_id=%s: %s: refused", sender[0] ? sender : "<>",
		         d.message_id[0] ? d.message_id : "-",
		         h.stamps_seen ? stamp_err : "no approval stamp");
		if (h.stamps_seen)
			set_outcome(
			    &out, EX_NOPERM,
			    "5.7.1 telecopie refusee: approbation de clinimail-milter invalide "
			    "/ fax refused: not approved by clinimail-milter (%s)",
			    stamp_err);
		else
			set_outcome(
			    &out, EX_NOPERM,
			    "5.7.1 telecopie refusee: message non approuve par clinimail-milter "
			    "/ fax refused: not approved by clinimail-milter");
		goto done;
	}
	for (size_t i = 0; i < nrcpts; i++) {
		for (size_t j = 0; j < nvalid && rcpts[i].stamp == NULL; j++)
			if (fax_stamp_allows(&stamps[j], rcpts[i].number))
				rcpts[i].stamp = &stamps[j];
		if (rcpts[i].stamp == NULL) {
			msg_info("ref=%s number=%s: number not in the approval: refused",
			         stamps[0].ref, rcpts[i].number);
			set_outcome(
			    &out, EX_NOPERM,
			    "5.7.1 telecopie refusee: le numero %s n'est pas approuve pour ce "
			    "message / fax refused: number %s not approved for this message",
			    rcpts[i].number, rcpts[i].number);
			goto done;
		}
	}
	/* The ledger's message key: the Message-ID, or the (unique) decision reference. */
	if (d.message_id[0])
		snprintf(d.ledger_mid, sizeof(d.ledger_mid), "%s", d.message_id);
	else
		snprintf(d.ledger_mid, sizeof(d.ledger_mid), "ref:%s", rcpts[0].stamp->ref);

	/* ---- approved: parse it for rendering ---- */
	mime_text_global_init();
	pdf_render_global_init();
	if (printable_msg_from_raw(d.msg, d.len, 1000, 2 * c->max_message_size, &d.pm, err,
	                           sizeof(err)) < 0) {
		msg_info("ref=%s: message cannot be read for rendering (%s)", rcpts[0].stamp->ref,
		         err);
		set_outcome(&out, EX_DATAERR,
		            "5.6.0 telecopie refusee: message illisible ou trop complexe / fax "
		            "refused: message cannot be read or is too complex");
		goto done;
	}
	parse_from(&d, h.from_raw);

	umask(077);
	if ((d.ledger = fax_ledger_open(c->ledger, err, sizeof(err))) == NULL) {
		msg_error("%s", err);
		set_outcome(&out, EX_TEMPFAIL,
		            "4.3.0 telecopie en attente: registre indisponible / fax deferred: "
		            "ledger unavailable");
		goto done;
	}
	d.audit = fax_audit_open(c, &audit_failed, err, sizeof(err));
	if (audit_failed) {
		msg_error("audit: %s", err);
		set_outcome(&out, EX_TEMPFAIL,
		            "4.3.0 telecopie en attente: journal d'audit indisponible / fax "
		            "deferred: audit trail unavailable");
		goto done;
	}
	d.backend = fax_backend_new(c);
	for (size_t i = 0; i < nrcpts; i++) {
		int dup = 0;
		for (size_t j = 0; j < i; j++)
			dup |= strcmp(rcpts[j].number, rcpts[i].number) == 0;
		if (!dup)
			deliver_one(&d, &rcpts[i], &out);
	}

done:
	if (out.line[0] == '\0')
		set_outcome(&out, EX_SOFTWARE, "4.3.0 " PROG ": no outcome");
	printf("%s\n", out.line);
	fflush(stdout);
	fax_backend_free(d.backend);
	audit_close(d.audit);
	fax_ledger_close(d.ledger);
	printable_msg_free(&d.pm);
	free(d.from_name);
	free(d.from_addr);
	header_info_free(&h);
	sb_free(&msg);
	fax_config_free(c);
	return out.code;
}

/* ---- stamp ---- */

static int cmd_stamp(int argc, char **argv)
{
	const char *keyfile = NULL, *ref = NULL;
	long long t = (long long)time(NULL);
	struct fax_key key;
	struct header_info h;
	struct strbuf msg;
	char numbers[FAX_STAMP_MAX_NUMBERS][11], mid[512] = "", err[512];
	const char *np[FAX_STAMP_MAX_NUMBERS];
	unsigned char bh[32];
	size_t n = 0, boff, skip;
	char *v;
	int ch;

	optind = 1;
	while ((ch = getopt(argc, argv, "+k:r:t:")) != -1) {
		switch (ch) {
		case 'k':
			keyfile = optarg;
			break;
		case 'r':
			ref = optarg;
			break;
		case 't':
			t = strtoll(optarg, NULL, 10);
			break;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (keyfile == NULL || ref == NULL || optind >= argc ||
	    argc - optind > FAX_STAMP_MAX_NUMBERS) {
		usage(stderr);
		return EX_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		if (fax_number_nanp(argv[i], numbers[n]) < 0) {
			/* any 10 digits (tests forge stamps for odd numbers) */
			if (strlen(argv[i]) != 10 || strspn(argv[i], "0123456789") != 10) {
				fprintf(stderr, PROG ": %s: not a 10-digit number\n", argv[i]);
				return EX_USAGE;
			}
			memcpy(numbers[n], argv[i], 11);
		}
		np[n] = numbers[n];
		n++;
	}
	if (fax_key_load(keyfile, &key, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return EX_CONFIG;
	}
	sb_init(&msg);
	if (read_message((size_t)1 << 30, &msg) != 0) {
		fprintf(stderr, PROG ": cannot read the message\n");
		sb_free(&msg);
		return EX_IOERR;
	}
	memset(&h, 0, sizeof(h));
	skip = skip_envelope_line(msg.data ? msg.data : "", msg.len);
	boff = scan_header((msg.data ? msg.data : "") + skip, msg.len - skip, header_cb, &h);
	body_hash((msg.data ? msg.data : "") + skip + boff, msg.len - skip - boff, bh);
	if (h.message_id_raw)
		fax_message_id_canon(h.message_id_raw, mid, sizeof(mid));
	v = fax_stamp_make(&key, ref, (time_t)t, mid, np, n, bh);
	header_info_free(&h);
	sb_free(&msg);
	if (v == NULL) {
		fprintf(stderr, PROG ": cannot make the stamp (bad ref or numbers)\n");
		return EX_USAGE;
	}
	printf("%s: %s\n", FAX_STAMP_HEADER, v);
	free(v);
	return 0;
}

/* ---- track, config ---- */

static int cmd_track(int argc, char **argv)
{
	const char *conf = FAX_DEFAULT_CONFIG;
	struct fax_config *c;
	char err[1024];
	int ch, once = 0, rc;

	optind = 1;
	while ((ch = getopt(argc, argv, "+c:1")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case '1':
			once = 1;
			break;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if ((c = fax_config_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, PROG ": %s\n", err);
		return EX_CONFIG;
	}
	if (fax_config_logging(c, PROG, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		fax_config_free(c);
		return EX_CONFIG;
	}
	umask(077);
	g_mime_init();
	rc = fax_track_run(c, once);
	fax_config_free(c);
	return rc;
}

static int cmd_config(int argc, char **argv)
{
	const char *conf = FAX_DEFAULT_CONFIG;
	struct fax_config *c;
	char err[1024];
	int ch;

	optind = 1;
	while ((ch = getopt(argc, argv, "+c:")) != -1) {
		if (ch != 'c') {
			usage(stderr);
			return EX_USAGE;
		}
		conf = optarg;
	}
	if ((c = fax_config_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, PROG ": %s\n", err);
		return EX_CONFIG;
	}
	fax_config_dump(c, stdout);
	fax_config_free(c);
	return 0;
}

/* Preview of a notice: what the tracker sends, for the administrator (and the tests). */
static int cmd_notice(int argc, char **argv)
{
	const char *conf = FAX_DEFAULT_CONFIG;
	static const char *const kinds[] = {"delivered", "spooled", "failed", "retrying"};
	struct fax_config *c;
	struct fax_notice n;
	char err[1024], number[11];
	int ch, k = -1;

	optind = 1;
	while ((ch = getopt(argc, argv, "+c:")) != -1) {
		if (ch != 'c') {
			usage(stderr);
			return EX_USAGE;
		}
		conf = optarg;
	}
	memset(&n, 0, sizeof(n));
	if (argc - optind < 3 || argc - optind > 4 ||
	    fax_number_nanp(argv[optind + 1], number) < 0 ||
	    sscanf(argv[optind + 2], "%d/%d", &n.pages_sent, &n.pages_total) != 2) {
		usage(stderr);
		return EX_USAGE;
	}
	for (int i = 0; i < 4; i++)
		if (strcmp(argv[optind], kinds[i]) == 0)
			k = i;
	if (k < 0) {
		usage(stderr);
		return EX_USAGE;
	}
	if ((c = fax_config_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, PROG ": %s\n", err);
		return EX_CONFIG;
	}
	g_mime_init();
	n.kind = (enum fax_notice_kind)k;
	n.sender = "sender@example.invalid";
	n.number = number;
	n.recipient_name = fax_config_recipient_name(c, number);
	n.ref = "CM-00000000-PREVIEW0";
	n.message_id = "preview@example.invalid";
	n.job_id = "0";
	n.tries = n.max_tries = c->max_tries;
	n.when = time(NULL);
	n.status = argc - optind == 4 ? argv[optind + 3] : NULL;
	{
		char *m = fax_notice_message(c, &n);
		fputs(m, stdout);
		free(m);
	}
	fax_config_free(c);
	return 0;
}

int main(int argc, char **argv)
{
	/* A notice's sendmail that dies must give EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "deliver") == 0)
		return cmd_deliver(argc - 1, argv + 1);
	if (strcmp(argv[1], "track") == 0)
		return cmd_track(argc - 1, argv + 1);
	if (strcmp(argv[1], "stamp") == 0)
		return cmd_stamp(argc - 1, argv + 1);
	if (strcmp(argv[1], "config") == 0)
		return cmd_config(argc - 1, argv + 1);
	if (strcmp(argv[1], "notice") == 0)
		return cmd_notice(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return EX_USAGE;
}
