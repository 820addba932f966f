/*
 * fax_notice.c — build and send the fax notices (fax_notice.h).  Every
 * value that goes into the notice is one the bridge owns (number, pages,
 * reference, job, times) or is cleaned first (directory name, remote
 * station id, the fax server's status text); the original message's
 * Subject and body never appear.
 */
#include "autoconfig.h"
#include "fax_notice.h"
#include "fax_config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <gmime/gmime.h>

extern char **environ;

#define SENDMAIL_TIMEOUT_MS 60000

/* ---- reasons ---- */

static const struct {
	const char *needle; /* lower case, found anywhere in HylaFAX's STATUS */
	const char *fr, *en;
} reasons[] = {
    {"busy", "ligne occupée", "line busy"},
    {"no answer", "pas de réponse", "no answer"},
    {"no carrier", "aucun télécopieur n'a répondu (voix ou silence)",
     "no fax machine answered (voice or silence)"},
    {"dialtone", "pas de tonalité sur la ligne du service de télécopie",
     "no dial tone on the fax service's line"},
    {"dial tone", "pas de tonalité sur la ligne du service de télécopie",
     "no dial tone on the fax service's line"},
    {"kill time", "délai d'envoi dépassé", "time limit for sending reached"},
    {"time limit", "délai d'envoi dépassé", "time limit for sending reached"},
    {"too many attempts", "nombre maximal de tentatives atteint",
     "maximum number of attempts reached"},
    {"aborted", "envoi annulé", "sending cancelled"},
    {"killed", "envoi annulé", "sending cancelled"},
    {"removed", "envoi annulé", "sending cancelled"},
    {"disconnect", "communication coupée pendant l'envoi", "line dropped during transmission"},
    {"hangup", "communication coupée pendant l'envoi", "line dropped during transmission"},
    {"hung up", "communication coupée pendant l'envoi", "line dropped during transmission"},
    {"carrier lost", "communication coupée pendant l'envoi", "line dropped during transmission"},
    {"dropped", "communication coupée pendant l'envoi", "line dropped during transmission"},
    {"premature", "communication coupée pendant l'envoi", "line dropped during transmission"},
    {"train", "échec du dialogue avec le télécopieur distant",
     "handshake with the remote fax machine failed"},
    {"protocol", "échec du dialogue avec le télécopieur distant",
     "handshake with the remote fax machine failed"},
    {"response", "échec du dialogue avec le télécopieur distant",
     "handshake with the remote fax machine failed"},
    {"unknown job", "le serveur de télécopie ne connaît plus ce travail : résultat inconnu",
     "the fax server no longer knows the job: outcome unknown"},
    {"phase", "erreur de transmission (ligne ou télécopieur distant)",
     "transmission error (line or remote fax machine)"},
    {"written to the outbox", "déposée dans la boîte d'envoi", "written to the outbox"},
};

/*
 * HylaFAX joins causes with "; " ("Busy signal detected; too many attempts
 * to dial"): the first one says why, so it is looked at first.
 */
void fax_reason_words(const char *status, const char **fr, const char **en)
{
	char low[256];

	*fr = "échec de l'envoi";
	*en = "sending failed";
	if (status == NULL || *status == '\0')
		return;
	snprintf(low, sizeof(low), "%s", status);
	str_lower(low);
	for (int pass = 0; pass < 2; pass++) {
		char *semi = strchr(low, ';');
		if (pass == 0 && semi)
			*semi = '\0';
		for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
			if (strstr(low, reasons[i].needle) != NULL) {
				*fr = reasons[i].fr;
				*en = reasons[i].en;
				return;
			}
		if (semi == NULL)
			break;
		*semi = ';';
	}
}

/* ---- building ---- */

/* Printable ASCII only, bounded (fax server texts, remote station ids). */
static void clean_ascii(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return;
	for (const char *p = in ? in : ""; *p && o + 1 < outlen; p++)
		out[o++] = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : ' ';
	out[o] = '\0';
	str_trim(out);
}

/* Valid UTF-8 without control characters, bounded (directory names). */
static char *clean_utf8(const char *in, size_t max)
{
	char *s = g_utf8_make_valid(in ? in : "", -1), *r;
	struct strbuf sb;

	sb_init(&sb);
	for (const char *p = s; *p && sb.len < max; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
			sb_putc(&sb, ' ');
		else
			sb_append(&sb, p, (size_t)(g_utf8_next_char(p) - p));
	}
	g_free(s);
	r = sb_steal(&sb);
	return r ? r : xstrdup("");
}

/* An address that can go on sendmail's command line and in To: as is. */
static int plain_address(const char *a)
{
	const char *at;

	if (a == NULL || a[0] == '\0' || a[0] == '-' || strcmp(a, "<>") == 0)
		return 0;
	for (const char *p = a; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == '"' ||
		    *p == '(' || *p == ')' || *p == ';' || *p == '\\' || (unsigned char)*p == 0x7f)
			return 0;
	at = strrchr(a, '@');
	return at != NULL && at != a && at[1] != '\0';
}

static void fmt_number(const char *n, char *out, size_t outlen)
{
	if (n && strlen(n) == 10)
		snprintf(out, outlen, "%.3s-%.3s-%.4s", n, n + 3, n + 6);
	else
		snprintf(out, outlen, "%s", n ? n : "?");
}

static void fmt_time(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%d %H:%M:%S (%z)", &tm);
}

static void header_encoded(struct strbuf *sb, const char *name, const char *utf8)
{
	char *e = g_mime_utils_header_encode_text(NULL, utf8, "UTF-8");

	sb_printf(sb, "%s: %s\n", name, e ? e : "");
	g_free(e);
}

char *fax_notice_message(const struct fax_config *c, const struct fax_notice *n)
{
	char num[32], when[64], csi[64], status[256], pages_fr[64], pages_en[64];
	const char *rfr, *ren, *title_fr, *title_en;
	char *name = n->recipient_name ? clean_utf8(n->recipient_name, 120) : NULL;
	char *subject, *msgid, *date, *from_name;
	struct strbuf sb, subj;
	int to_sender = plain_address(n->sender);
	int partial = n->kind == FAXN_FAILED && n->pages_sent > 0;
	GDateTime *now;

	fmt_number(n->number, num, sizeof(num));
	fmt_time(n->when, when, sizeof(when));
	clean_ascii(n->csi, csi, sizeof(csi));
	clean_ascii(n->status, status, sizeof(status));
	fax_reason_words(n->status, &rfr, &ren);
	snprintf(pages_fr, sizeof(pages_fr), "%d sur %d", n->pages_sent, n->pages_total);
	snprintf(pages_en, sizeof(pages_en), "%d of %d", n->pages_sent, n->pages_total);

	switch (n->kind) {
	case FAXN_DELIVERED:
		title_fr = "Télécopie transmise";
		title_en = "Fax delivered";
		break;
	case FAXN_SPOOLED:
		title_fr = "Télécopie déposée dans la boîte d'envoi (non transmise)";
		title_en = "Fax written to the outbox (not transmitted)";
		break;
	case FAXN_RETRYING:
		title_fr = "Télécopie pas encore transmise, nouvel essai en cours";
		title_en = "Fax not sent yet, still retrying";
		break;
	default:
		title_fr = partial ? "Télécopie transmise en partie seulement : ÉCHEC"
		                   : "Télécopie NON transmise";
		title_en = partial ? "Fax only partly sent: FAILED" : "Fax NOT sent";
		break;
	}

	sb_init(&sb);
	sb_init(&subj);
	/* ---- header ---- */
	from_name =
	    g_mime_utils_header_encode_phrase(NULL, "Service de télécopie / Fax service", "UTF-8");
	sb_printf(&sb, "From: %s <%s>\n", from_name ? from_name : "", c->notify_from);
	g_free(from_name);
	if (to_sender)
		sb_printf(&sb, "To: <%s>\n", n->sender);
	if (c->archives && (!to_sender || strcmp(c->archives, n->sender) != 0))
		sb_printf(&sb, "%s: <%s>\n", to_sender ? "Cc" : "To", c->archives);
	sb_printf(&subj, "%s / %s : %s [%s]", title_fr, title_en, num, n->ref ? n->ref : "");
	header_encoded(&sb, "Subject", subj.data);
	now = g_date_time_new_now_local();
	date = g_mime_utils_header_format_date(now);
	g_date_time_unref(now);
	sb_printf(&sb, "Date: %s\n", date ? date : "");
	g_free(date);
	msgid = g_mime_utils_generate_message_id(c->fax_domain);
	sb_printf(&sb, "Message-ID: <%s>\n", msgid ? msgid : "fax-notice@localhost");
	g_free(msgid);
	if (n->message_id && *n->message_id && strpbrk(n->message_id, "<> \t\r\n") == NULL &&
	    strlen(n->message_id) < 900)
		sb_printf(&sb, "In-Reply-To: <%s>\nReferences: <%s>\n", n->message_id,
		          n->message_id);
	sb_puts(&sb, "Auto-Submitted: auto-generated\n");
	sb_printf(&sb, "X-Clinimail-Fax-Notice: %s; ref=%s; ledger=%lld\n",
	          n->kind == FAXN_DELIVERED  ? "delivered"
	          : n->kind == FAXN_SPOOLED  ? "spooled"
	          : n->kind == FAXN_RETRYING ? "retrying"
	                                     : "failed",
	          n->ref ? n->ref : "", n->ledger_id);
	sb_puts(&sb, "MIME-Version: 1.0\n"
	             "Content-Type: text/plain; charset=UTF-8\n"
	             "Content-Transfer-Encoding: 8bit\n\n");

	/* ---- French ---- */
	sb_printf(&sb, "%s.\n\n", title_fr);
	switch (n->kind) {
	case FAXN_DELIVERED:
		sb_puts(&sb, "Votre télécopie a été reçue par le télécopieur du destinataire, "
		             "toutes les pages.\n");
		break;
	case FAXN_SPOOLED:
		sb_puts(&sb, "Votre télécopie a été écrite dans la boîte d'envoi du service de "
		             "télécopie.\nElle n'a PAS été transmise par une ligne téléphonique : "
		             "ce service est en mode\nd'essai ou confié à un autre système "
		             "d'envoi.\n");
		break;
	case FAXN_RETRYING:
		sb_printf(&sb,
		          "Votre télécopie n'est pas encore transmise après %d tentative%s ; le "
		          "service réessaie%s.\nVous recevrez un avis final.\n",
		          n->tries, n->tries > 1 ? "s" : "",
		          n->max_tries > 0 ? " jusqu'au nombre maximal de tentatives" : "");
		break;
	default:
		if (partial)
			sb_printf(&sb,
			          "Seulement %d page%s sur %d %s été transmise%s : le destinataire "
			          "n'a PAS reçu\nle document complet.\n",
			          n->pages_sent, n->pages_sent > 1 ? "s" : "", n->pages_total,
			          n->pages_sent > 1 ? "ont" : "a", n->pages_sent > 1 ? "s" : "");
		else
			sb_puts(&sb, "Le destinataire n'a PAS reçu votre télécopie.\n");
		sb_puts(&sb, "Vérifiez le numéro, puis envoyez le message de nouveau (un nouvel "
		             "envoi) ou\njoignez le destinataire autrement.\n");
		break;
	}
	sb_putc(&sb, '\n');
	sb_printf(&sb, "  Destinataire : %s\n", name && *name ? name : "(hors répertoire)");
	sb_printf(&sb, "  Numéro       : %s\n", num);
	sb_printf(&sb, "  Pages        : %s\n", pages_fr);
	sb_printf(&sb, "  Heure        : %s\n", when);
	if (csi[0])
		sb_printf(&sb, "  Poste distant: %s\n", csi);
	if (n->kind == FAXN_FAILED || (n->kind == FAXN_RETRYING && status[0]))
		sb_printf(&sb, "  Raison       : %s\n", rfr);
	sb_printf(&sb, "  Référence    : %s\n", n->ref ? n->ref : "");
	if (n->message_id && *n->message_id)
		sb_printf(&sb, "  Message      : <%s>\n", n->message_id);
	sb_printf(&sb, "  Travail      : %s\n", n->job_id ? n->job_id : "");
	if (n->kind != FAXN_RETRYING)
		sb_puts(&sb,
		        "\nLes copies locales de la télécopie sont détruites après cet avis.\n");

	/* ---- English ---- */
	sb_printf(&sb, "\n----\n\n%s.\n\n", title_en);
	switch (n->kind) {
	case FAXN_DELIVERED:
		sb_puts(&sb, "Your fax was received by the recipient's fax machine, every page.\n");
		break;
	case FAXN_SPOOLED:
		sb_puts(&sb, "Your fax was written to the fax service's outbox.\nIt was NOT "
		             "transmitted over a telephone line: the service is in trial mode\nor "
		             "handed to another sending system.\n");
		break;
	case FAXN_RETRYING:
		sb_printf(&sb,
		          "Your fax is not sent yet after %d attempt%s; the service keeps "
		          "trying.\nYou will receive a final notice.\n",
		          n->tries, n->tries > 1 ? "s" : "");
		break;
	default:
		if (partial)
			sb_printf(&sb,
			          "Only %d of %d pages %s sent: the recipient did NOT receive the "
			          "whole\ndocument.\n",
			          n->pages_sent, n->pages_total,
			          n->pages_sent > 1 ? "were" : "was");
		else
			sb_puts(&sb, "The recipient did NOT receive your fax.\n");
		sb_puts(&sb, "Check the number, then send the message again (a new message) or "
		             "reach the\nrecipient another way.\n");
		break;
	}
	sb_putc(&sb, '\n');
	sb_printf(&sb, "  Recipient    : %s\n", name && *name ? name : "(not in the directory)");
	sb_printf(&sb, "  Number       : %s\n", num);
	sb_printf(&sb, "  Pages        : %s\n", pages_en);
	sb_printf(&sb, "  Time         : %s\n", when);
	if (csi[0])
		sb_printf(&sb, "  Remote id    : %s\n", csi);
	if (n->kind == FAXN_FAILED || (n->kind == FAXN_RETRYING && status[0])) {
		if (status[0])
			sb_printf(&sb, "  Reason       : %s (fax server: %s)\n", ren, status);
		else
			sb_printf(&sb, "  Reason       : %s\n", ren);
	}
	sb_printf(&sb, "  Reference    : %s\n", n->ref ? n->ref : "");
	if (n->message_id && *n->message_id)
		sb_printf(&sb, "  Message      : <%s>\n", n->message_id);
	sb_printf(&sb, "  Job          : %s\n", n->job_id ? n->job_id : "");
	if (n->kind != FAXN_RETRYING)
		sb_puts(&sb, "\nThe local copies of the fax are destroyed after this notice.\n");
	sb_printf(&sb, "\n-- \n%s\n", c->establishment);

	free(name);
	sb_free(&subj);
	subject = sb_steal(&sb);
	return subject;
}

/* ---- sending ---- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* waitpid with a deadline; the child is killed past it.  Exit status or -1. */
static int wait_child(pid_t pid, int timeout_ms, int *timed_out)
{
	int status = 0, waited = 0;

	*timed_out = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (waited >= timeout_ms) {
			*timed_out = 1;
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
		waited += 20;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int fax_notice_send(const struct fax_config *c, const struct fax_notice *n, char *err,
                    size_t errlen)
{
	const char *argv[8];
	int argc = 0, p[2], rc, timed_out;
	posix_spawn_file_actions_t fa;
	char *msg;
	pid_t pid;
	int to_sender = plain_address(n->sender);

	argv[argc++] = c->sendmail;
	argv[argc++] = "-i";
	argv[argc++] = "-f";
	argv[argc++] = c->notify_from;
	argv[argc++] = "--";
	if (to_sender)
		argv[argc++] = n->sender;
	if (c->archives && (!to_sender || strcmp(c->archives, n->sender) != 0))
		argv[argc++] = c->archives;
	argv[argc] = NULL;
	if (argc == 5) {
		msg_warn("ledger %lld ref=%s: no address to notify (sender \"%s\", no Archives)",
		         n->ledger_id, n->ref ? n->ref : "", to_sender ? n->sender : "<>");
		return 0;
	}

	msg = fax_notice_message(c, n);
	if (pipe2(p, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		free(msg);
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawn(&pid, c->sendmail, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	if (rc != 0) {
		close(p[1]);
		free(msg);
		snprintf(err, errlen, "cannot run %s: %s", c->sendmail, strerror(rc));
		return -1;
	}
	/* SIGPIPE is ignored by the program: a dead child gives EPIPE here. */
	int werr = write_all(p[1], msg, strlen(msg)) < 0 ? errno : 0;
	close(p[1]);
	free(msg);
	rc = wait_child(pid, SENDMAIL_TIMEOUT_MS, &timed_out);
	if (timed_out) {
		snprintf(err, errlen, "%s did not finish within %d s", c->sendmail,
		         SENDMAIL_TIMEOUT_MS / 1000);
		return -1;
	}
	if (rc != 0) {
		snprintf(err, errlen, "%s exited with status %d", c->sendmail, rc);
		return -1;
	}
	if (werr != 0) {
		snprintf(err, errlen, "writing to %s: %s", c->sendmail, strerror(werr));
		return -1;
	}
	return 0;
}
