/*
 * faxmodem.c — a software Class 1 fax modem for the tests.  It opens a pty,
 * keeps the slave side in raw mode and runs spandsp's T.31 engine on the
 * master side, so HylaFAX's faxgetty/faxsend see a Class 1 modem on the
 * slave (/dev/pts/N).  The modem's line audio is looped in process to a
 * spandsp fax terminal that answers and writes what it receives into
 * OUTDIR/<dialled number>-<seq>.tif, with a one-line OUTDIR/<number>-<seq>.result
 * (and the same line appended to OUTDIR/calls.log).  The audio clock runs
 * --speed times faster than real time.
 *
 * The last four digits of the dialled number choose what the far end does,
 * so that tests reach the failure paths:
 *   0001 busy, 0002 rings and is never answered, 0003 answers with silence
 *   (no fax tones), 0004 takes page 1 then drops the line, anything else a
 *   normal receiving fax machine.
 *
 * Usage: faxmodem [--speed N] [--outdir DIR] [--pty-file FILE] [--ident ID]
 *                 [--no-ecm] [--ring-ms MS] [--dial-ms MS] [--verbose]
 * Prints the slave's path on stdout (and into --pty-file, atomically); stops
 * cleanly on SIGTERM or SIGINT.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES
#include <spandsp.h>

#define CHUNK 160 /* samples per audio tick: 20 ms at 8 kHz */
#define XON 0x11
#define XOFF 0x13

enum scenario { SC_NORMAL, SC_BUSY, SC_NOANSWER, SC_SILENCE, SC_DROP };
static const char *const scenario_names[] = {"normal", "busy", "no-answer", "silence", "drop"};

enum line_state { ONHOOK, DIALING, RINGING, CONNECTED };

struct modem {
	int master, slave;
	t31_state_t *t31;
	fax_state_t *fax; /* the far end's fax terminal during a call, NULL otherwise */
	enum line_state state;
	enum scenario sc;
	int speed, ecm, verbose, ring_ms, dial_ms;
	const char *outdir, *ident;
	struct timespec event_at;  /* DIALING/RINGING: when the outcome happens */
	struct timespec next_tick; /* CONNECTED: when the next audio chunk is due */
	unsigned seq;
	/* the current call */
	char number[64];
	char tif[PATH_MAX];
	int64_t call_samples;
	int64_t drop_at; /* SC_DROP: audio sample count at which the line drops, 0: not yet */
	int pages_confirmed;
	int phase_e_code; /* -1: no phase E */
	int pages_rx, bit_rate, ecm_used;
	char remote_id[64];
	const char *outcome;
};

static void usage(void)
{
	fprintf(stderr,
	        "usage: faxmodem [--speed N] [--outdir DIR] [--pty-file FILE] [--ident ID]\n"
	        "                [--no-ecm] [--ring-ms MS] [--dial-ms MS] [--verbose]\n");
	exit(2);
}

static void logf_(const struct modem *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(const struct modem *m, const char *fmt, ...)
{
	(void)m;
	va_list ap;
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	struct tm tm;
	localtime_r(&t.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld faxmodem: ", tm.tm_hour, tm.tm_min, tm.tm_sec,
	        t.tv_nsec / 1000000);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static struct timespec ts_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static struct timespec ts_add_us(struct timespec t, long us)
{
	t.tv_sec += us / 1000000;
	t.tv_nsec += (us % 1000000) * 1000;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* a - b in microseconds */
static long long ts_diff_us(struct timespec a, struct timespec b)
{
	return (long long)(a.tv_sec - b.tv_sec) * 1000000LL + (a.tv_nsec - b.tv_nsec) / 1000;
}

/* Write everything to the pty master; if nobody drains the slave for a
 * second, discard the slave's unread input (nobody is listening anyway). */
static int put_master(struct modem *m, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	int flushed = 0;
	while (done < len) {
		ssize_t n = write(m->master, buf + done, len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			logf_(m, "write to pty: %s", strerror(errno));
			return -1;
		}
		struct pollfd p = {.fd = m->master, .events = POLLOUT};
		if (poll(&p, 1, 1000) <= 0) {
			if (flushed) {
				logf_(m, "pty full, %zu bytes dropped", len - done);
				return -1;
			}
			tcflush(m->slave, TCIFLUSH);
			flushed = 1;
		}
	}
	return 0;
}

/* --verbose: the AT dialogue, short chunks shown, long ones (data) counted */
static void trace_bytes(const struct modem *m, const char *dir, const uint8_t *buf, size_t len)
{
	if (!m->verbose)
		return;
	char out[200];
	size_t k = 0;
	if (len > 48) {
		logf_(m, "%s <%zu bytes>", dir, len);
		return;
	}
	for (size_t i = 0; i < len && k + 5 < sizeof out; i++) {
		if (buf[i] >= 0x20 && buf[i] < 0x7f)
			out[k++] = (char)buf[i];
		else
			k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", buf[i]);
	}
	out[k] = '\0';
	logf_(m, "%s [%s]", dir, out);
}

static int at_tx_handler(at_state_t *s, void *user_data, const uint8_t *buf, size_t len)
{
	(void)s;
	trace_bytes(user_data, "DCE", buf, len);
	put_master(user_data, buf, len);
	return (int)len;
}

static enum scenario scenario_of(const char *number)
{
	size_t n = strlen(number);
	if (n < 4)
		return SC_NORMAL;
	const char *t = number + n - 4;
	if (strcmp(t, "0001") == 0)
		return SC_BUSY;
	if (strcmp(t, "0002") == 0)
		return SC_NOANSWER;
	if (strcmp(t, "0003") == 0)
		return SC_SILENCE;
	if (strcmp(t, "0004") == 0)
		return SC_DROP;
	return SC_NORMAL;
}

/* ---- the far end's fax terminal ---- */

static int phase_d_handler(t30_state_t *s, void *user_data, int result)
{
	struct modem *m = user_data;
	t30_stats_t st;
	t30_get_transfer_statistics(s, &st);
	if (m->verbose)
		logf_(m, "call %u: page %d received (%s)", m->seq, st.pages_rx,
		      t30_frametype((uint8_t)result));
	return T30_ERR_OK;
}

static void phase_e_handler(t30_state_t *s, void *user_data, int code)
{
	struct modem *m = user_data;
	t30_stats_t st;
	t30_get_transfer_statistics(s, &st);
	m->phase_e_code = code;
	m->pages_rx = st.pages_rx;
	m->bit_rate = st.bit_rate;
	m->ecm_used = st.error_correcting_mode;
	const char *id = t30_get_rx_ident(s);
	snprintf(m->remote_id, sizeof m->remote_id, "%s", id ? id : "");
}

/* Watch the frames the far end sends: in the drop scenario the line drops
 * four seconds (of line audio) after page 1 is confirmed with MCF: the MCF
 * has reached the sender (V.21 preamble and frame take about 1.3 s) and the
 * sender is in the middle of page 2. */
static void frame_handler(t30_state_t *s, void *user_data, int incoming, const uint8_t msg[],
                          int len)
{
	(void)s;
	struct modem *m = user_data;
	if (incoming || len < 3)
		return;
	if ((msg[2] & 0xFE) == T30_MCF) {
		m->pages_confirmed++;
		if (m->sc == SC_DROP && m->pages_confirmed == 1 && m->drop_at == 0)
			m->drop_at = m->call_samples + 4 * 8000;
	}
}

static int receiver_start(struct modem *m)
{
	m->fax = fax_init(NULL, 0);
	if (!m->fax)
		return -1;
	t30_state_t *t30 = fax_get_t30_state(m->fax);
	fax_set_transmit_on_idle(m->fax, 1);
	t30_set_tx_ident(t30, m->ident);
	t30_set_rx_file(t30, m->tif, -1);
	t30_set_ecm_capability(t30, m->ecm);
	t30_set_supported_compressions(t30, T30_SUPPORT_T4_1D_COMPRESSION |
	                                        T30_SUPPORT_T4_2D_COMPRESSION |
	                                        T30_SUPPORT_T6_COMPRESSION);
	t30_set_rx_encoding(t30, T4_COMPRESSION_ITU_T6);
	t30_set_phase_d_handler(t30, phase_d_handler, m);
	t30_set_phase_e_handler(t30, phase_e_handler, m);
	t30_set_real_time_frame_handler(t30, frame_handler, m);
	if (m->verbose) {
		int lvl = SPAN_LOG_SHOW_SEVERITY | SPAN_LOG_SHOW_PROTOCOL | SPAN_LOG_FLOW;
		span_log_set_level(t30_get_logging_state(t30), lvl);
		span_log_set_tag(t30_get_logging_state(t30), "far-end");
	}
	return 0;
}

/* ---- calls ---- */

static void write_result(struct modem *m)
{
	char line[512];
	snprintf(line, sizeof line,
	         "number=%s seq=%u scenario=%s outcome=%s pages=%d result=%d result_text=\"%s\" "
	         "remote_id=\"%s\" bit_rate=%d ecm=%d\n",
	         m->number, m->seq, scenario_names[m->sc], m->outcome, m->pages_rx, m->phase_e_code,
	         m->phase_e_code >= 0 ? t30_completion_code_to_str(m->phase_e_code) : "",
	         m->remote_id, m->bit_rate, m->ecm_used);
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int pn = snprintf(path, sizeof path, "%s/%s-%u.result", m->outdir, m->number, m->seq);
	if (pn < 0 || (size_t)pn >= sizeof path) {
		logf_(m, "output path too long");
		return;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fputs(line, f) == EOF || fclose(f) != 0 || rename(tmp, path) != 0)
		logf_(m, "cannot write %s: %s", path, strerror(errno));
	snprintf(path, sizeof path, "%s/calls.log", m->outdir);
	f = fopen(path, "a");
	if (!f || fputs(line, f) == EOF || fclose(f) != 0)
		logf_(m, "cannot write %s: %s", path, strerror(errno));
	fputs(line, stderr);
}

/* The call is over (hung up by either side): close the far end's document
 * and record the outcome. */
static void end_call(struct modem *m, const char *outcome)
{
	if (m->state == ONHOOK && !m->fax)
		return;
	if (m->fax) {
		t30_terminate(fax_get_t30_state(m->fax));
		fax_free(m->fax);
		m->fax = NULL;
	}
	if (!m->outcome)
		m->outcome = outcome;
	m->state = ONHOOK;
	write_result(m);
}

static void start_call(struct modem *m, const char *num)
{
	size_t k = 0;
	for (const char *p = num; *p && k + 1 < sizeof m->number; p++)
		if (*p >= '0' && *p <= '9')
			m->number[k++] = *p;
	m->number[k] = '\0';
	if (k == 0)
		snprintf(m->number, sizeof m->number, "none");
	m->seq++;
	m->sc = scenario_of(m->number);
	snprintf(m->tif, sizeof m->tif, "%s/%s-%u.tif", m->outdir, m->number, m->seq);
	m->call_samples = 0;
	m->drop_at = 0;
	m->pages_confirmed = 0;
	m->phase_e_code = -1;
	m->pages_rx = m->bit_rate = m->ecm_used = 0;
	m->remote_id[0] = '\0';
	m->outcome = NULL;
	m->state = DIALING;
	m->event_at = ts_add_us(ts_now(), (long)m->dial_ms * 1000);
	logf_(m, "call %u: dialling %s (%s)", m->seq, m->number, scenario_names[m->sc]);
}

/* The dial delay is over: the far end is busy, rings, or answers. */
static void dial_outcome(struct modem *m)
{
	switch (m->sc) {
	case SC_BUSY:
		m->state = ONHOOK;
		m->outcome = "busy";
		t31_call_event(m->t31, AT_CALL_EVENT_BUSY);
		write_result(m);
		return;
	case SC_NOANSWER:
		m->state = RINGING;
		m->event_at = ts_add_us(ts_now(), (long)m->ring_ms * 1000);
		return;
	case SC_SILENCE:
		break;
	case SC_NORMAL:
	case SC_DROP:
		if (receiver_start(m) != 0) {
			logf_(m, "cannot start the fax terminal");
			m->state = ONHOOK;
			m->outcome = "error";
			t31_call_event(m->t31, AT_CALL_EVENT_NO_DIALTONE);
			write_result(m);
			return;
		}
		break;
	}
	m->state = CONNECTED;
	m->next_tick = ts_now();
	t31_call_event(m->t31, AT_CALL_EVENT_CONNECTED);
}

static int modem_control(t31_state_t *s, void *user_data, int op, const char *num)
{
	(void)s;
	struct modem *m = user_data;
	switch (op) {
	case AT_MODEM_CONTROL_CALL:
		if (m->state != ONHOOK)
			return -1;
		start_call(m, num ? num : "");
		break;
	case AT_MODEM_CONTROL_ANSWER:
		return -1; /* nobody ever calls this modem */
	case AT_MODEM_CONTROL_HANGUP:
		if (m->state == DIALING || m->state == RINGING)
			m->outcome = "abandoned";
		/* in the silence scenario the modem itself gives up (S7 elapsed) */
		end_call(m, m->sc == SC_SILENCE ? "no-fax-tones" : "hangup");
		break;
	case AT_MODEM_CONTROL_CTS: {
		uint8_t c = num ? XON : XOFF;
		if (m->verbose)
			logf_(m, "flow control: %s", num ? "XON" : "XOFF");
		put_master(m, &c, 1);
		break;
	}
	default:
		break;
	}
	return 0;
}

/* One chunk of line audio each way. */
static void audio_tick(struct modem *m)
{
	int16_t out[CHUNK], in[CHUNK];
	int n = t31_tx(m->t31, out, CHUNK);
	if (n < CHUNK)
		memset(out + n, 0, (size_t)(CHUNK - n) * sizeof out[0]);
	if (m->fax) {
		fax_rx(m->fax, out, CHUNK);
		n = fax_tx(m->fax, in, CHUNK);
		if (n < CHUNK)
			memset(in + n, 0, (size_t)(CHUNK - n) * sizeof in[0]);
	} else {
		memset(in, 0, sizeof in);
	}
	m->call_samples += CHUNK;
	t31_rx(m->t31, in, CHUNK); /* may end the call (modem_control) */
	if (m->state == CONNECTED && m->drop_at && m->call_samples >= m->drop_at) {
		logf_(m, "call %u: dropping the line after page %d", m->seq, m->pages_confirmed);
		m->outcome = "dropped";
		end_call(m, "dropped");
		t31_call_event(m->t31, AT_CALL_EVENT_HANGUP);
	}
}

/* Feed what the DTE wrote, but never more than T.31's transmit buffer can
 * take: XON/XOFF (sent by modem_control on CTS) stops the DTE meanwhile. */
static void read_dte(struct modem *m)
{
	uint8_t buf[T31_TX_BUF_LEN];
	for (;;) {
		int avail = T31_TX_BUF_LEN - m->t31->tx.in_bytes + m->t31->tx.out_bytes - 1;
		if (avail > (int)sizeof buf)
			avail = (int)sizeof buf;
		if (avail <= 0 || m->t31->tx.holding)
			return;
		ssize_t n = read(m->master, buf, (size_t)avail);
		if (n <= 0)
			return;
		trace_bytes(m, "DTE", buf, (size_t)n);
		t31_at_rx(m->t31, (const char *)buf, (int)n);
	}
}

static int write_pty_file(const char *file, const char *path)
{
	char tmp[PATH_MAX + 8];
	int n = snprintf(tmp, sizeof tmp, "%s.tmp", file);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -1;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	int bad = fprintf(f, "%s\n", path) < 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, file) != 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct modem m = {.master = -1,
	                  .slave = -1,
	                  .speed = 1,
	                  .ecm = 1,
	                  .ring_ms = 3000,
	                  .dial_ms = 300,
	                  .outdir = ".",
	                  .ident = "+1 819 555 0000"};
	const char *pty_file = NULL;
	static const struct option opts[] = {{"speed", required_argument, NULL, 's'},
	                                     {"outdir", required_argument, NULL, 'o'},
	                                     {"pty-file", required_argument, NULL, 'p'},
	                                     {"ident", required_argument, NULL, 'i'},
	                                     {"no-ecm", no_argument, NULL, 'E'},
	                                     {"ring-ms", required_argument, NULL, 'r'},
	                                     {"dial-ms", required_argument, NULL, 'd'},
	                                     {"verbose", no_argument, NULL, 'v'},
	                                     {NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "s:o:p:i:Er:d:v", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			m.speed = atoi(optarg);
			if (m.speed < 1 || m.speed > 64)
				usage();
			break;
		case 'o':
			m.outdir = optarg;
			break;
		case 'p':
			pty_file = optarg;
			break;
		case 'i':
			m.ident = optarg;
			break;
		case 'E':
			m.ecm = 0;
			break;
		case 'r':
			m.ring_ms = atoi(optarg);
			break;
		case 'd':
			m.dial_ms = atoi(optarg);
			break;
		case 'v':
			m.verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || strlen(m.ident) > 20)
		usage();

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0) {
		perror("sigprocmask");
		return 1;
	}
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("signalfd");
		return 1;
	}

	m.master = posix_openpt(O_RDWR | O_NOCTTY);
	if (m.master < 0 || grantpt(m.master) != 0 || unlockpt(m.master) != 0) {
		perror("posix_openpt");
		return 1;
	}
	const char *sname = ptsname(m.master);
	if (!sname) {
		perror("ptsname");
		return 1;
	}
	char slave_path[PATH_MAX];
	snprintf(slave_path, sizeof slave_path, "%s", sname);
	/* Our own slave descriptor keeps the line discipline's settings alive
	 * between HylaFAX's opens; raw, or the modem's replies echo back. */
	m.slave = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios tio;
	if (m.slave < 0 || tcgetattr(m.slave, &tio) != 0) {
		perror(slave_path);
		return 1;
	}
	cfmakeraw(&tio);
	if (tcsetattr(m.slave, TCSANOW, &tio) != 0) {
		perror("tcsetattr");
		return 1;
	}
	int fl = fcntl(m.master, F_GETFL);
	if (fl < 0 || fcntl(m.master, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    fcntl(m.master, F_SETFD, FD_CLOEXEC) != 0) {
		perror("fcntl");
		return 1;
	}

	m.t31 = t31_init(NULL, at_tx_handler, &m, modem_control, &m, NULL, NULL);
	if (!m.t31) {
		fprintf(stderr, "faxmodem: t31_init failed\n");
		return 1;
	}
	t31_set_transmit_on_idle(m.t31, 1);
	if (m.verbose) {
		int lvl = SPAN_LOG_SHOW_SEVERITY | SPAN_LOG_SHOW_PROTOCOL | SPAN_LOG_FLOW;
		span_log_set_level(t31_get_logging_state(m.t31), lvl);
		span_log_set_tag(t31_get_logging_state(m.t31), "t31");
	}

	printf("%s\n", slave_path);
	fflush(stdout);
	if (pty_file && write_pty_file(pty_file, slave_path) != 0) {
		fprintf(stderr, "faxmodem: cannot write %s: %s\n", pty_file, strerror(errno));
		return 1;
	}
	logf_(&m, "Class 1 modem on %s, audio clock x%d, ECM %s", slave_path, m.speed,
	      m.ecm ? "on" : "off");

	long tick_us = 20000 / m.speed;
	int running = 1;
	while (running) {
		struct timespec now = ts_now();
		long long wait_us = -1;
		if (m.state == CONNECTED)
			wait_us = ts_diff_us(m.next_tick, now);
		else if (m.state == DIALING || m.state == RINGING)
			wait_us = ts_diff_us(m.event_at, now);
		if (wait_us != -1 && wait_us < 0)
			wait_us = 0;
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
		                      {.fd = m.master, .events = POLLIN}};
		nfds_t np = m.state == CONNECTED ? 1 : 2;
		struct timespec to = {.tv_sec = wait_us / 1000000,
		                      .tv_nsec = (wait_us % 1000000) * 1000};
		int r = ppoll(p, np, wait_us < 0 ? NULL : &to, NULL);
		if (r < 0 && errno != EINTR) {
			perror("ppoll");
			break;
		}
		if (r > 0 && (p[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
				logf_(&m, "signal %u: stopping", si.ssi_signo);
			running = 0;
			break;
		}
		now = ts_now();
		if (m.state == DIALING && ts_diff_us(now, m.event_at) >= 0)
			dial_outcome(&m);
		if (m.state == RINGING && ts_diff_us(now, m.event_at) >= 0) {
			m.state = ONHOOK;
			m.outcome = "no-answer";
			t31_call_event(m.t31, AT_CALL_EVENT_NO_ANSWER);
			write_result(&m);
		}
		if (m.state == CONNECTED) {
			int chunks = 0;
			while (m.state == CONNECTED && ts_diff_us(now, m.next_tick) >= 0 &&
			       chunks < 16) {
				audio_tick(&m);
				m.next_tick = ts_add_us(m.next_tick, tick_us);
				chunks++;
				read_dte(&m);
			}
			if (ts_diff_us(now, m.next_tick) >
			    200000) /* far behind: do not race to catch up */
				m.next_tick = now;
		}
		if (m.state != CONNECTED &&
		    (np < 2 || (p[1].revents & (POLLIN | POLLHUP)) || r == 0))
			read_dte(&m);
	}
	if (m.state != ONHOOK || m.fax)
		end_call(&m, "stopped");
	/* t31_free leaves the receive queue t31_init allocated (spandsp 0.0.6) */
	if (m.t31->rx_queue)
		queue_free(m.t31->rx_queue);
	t31_free(m.t31);
	close(m.slave);
	close(m.master);
	close(sfd);
	return 0;
}
