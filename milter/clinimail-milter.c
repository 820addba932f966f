/*
 * clinimail-milter.c — the daemon: options, configuration, socket, privilege
 * drop, daemonizing, the SIGUSR1 reload thread, then libmilter's main loop.
 * The per-message work is in callbacks.c.
 *
 * Startup order matters: the configuration is read (and refused with
 * file:line) before anything else; the socket is opened as the starting user
 * (it may live in a root-owned directory) and handed to the run-time user;
 * privileges are dropped before any message is read; SIGUSR1 is blocked in
 * every thread so that only the reload thread receives it.  libmilter's own
 * signal thread turns SIGHUP, SIGINT and SIGTERM into an orderly shutdown.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "milter.h"
#include "mime_text.h"
#include "util.h"

#define PROG "clinimail-milter"
#define DEFAULT_CONF SYSCONFDIR "/clinimail/clinimail.conf"
/*
 * How long libmilter waits for the MTA's next command.  Postfix keeps an
 * SMTP session (and so the milter connection) idle for up to smtpd_timeout
 * (300 s): wait longer than that, so that we never drop a session the MTA
 * still holds.
 */
#define MILTER_TIMEOUT 600
#define MILTER_BACKLOG 128
#define PDF_CACHE_ENTRIES 256

struct options {
	const char *conf;
	const char *socket;
	const char *user;
	const char *pid_file;
	int foreground;
	int check_only;
	int verbose;
};

static _Noreturn void usage(int status)
{
	fprintf(status ? stderr : stdout,
	        "usage: " PROG " [-fnvV] [-c conf] [-p socket] [-u user[:group]] [-P pidfile]\n"
	        "  -c conf     configuration file (default " DEFAULT_CONF ")\n"
	        "  -p socket   unix:/path | local:/path | inet:port@host | inet6:port@host\n"
	        "  -f          stay in the foreground\n"
	        "  -n          check the configuration and exit\n"
	        "  -u user[:group]  run as this user after opening the socket\n"
	        "  -P pidfile  write the process id there\n"
	        "  -v          more verbose (repeat for more)\n"
	        "  -V          print the version and exit\n");
	exit(status);
}

/* An absolute form of path, so that chdir("/") does not change its meaning. */
static char *abs_path(const char *path)
{
	char cwd[PATH_MAX];
	struct strbuf sb;

	if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(path);
	sb_init(&sb);
	sb_printf(&sb, "%s/%s", cwd, path);
	return sb_steal(&sb);
}

/* The file of a unix-domain socket specification, or NULL for inet ones. */
static const char *unix_socket_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	if (spec[0] == '/')
		return spec;
	return NULL;
}

/* Syntax check, so that -n and startup refuse what libmilter would. */
static int socket_spec_valid(const char *spec, char *err, size_t errlen)
{
	const char *path = unix_socket_path(spec);

	if (path != NULL) {
		if (path[0] != '/') {
			snprintf(err, errlen, "socket %s: the path must be absolute", spec);
			return 0;
		}
		if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			snprintf(err, errlen, "socket %s: path too long", spec);
			return 0;
		}
		return 1;
	}
	if (strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0) {
		const char *port = strchr(spec, ':') + 1;
		char *end;
		long n = strtol(port, &end, 10);
		if (end != port && n > 0 && n < 65536 && (*end == '\0' || *end == '@'))
			return 1;
		snprintf(err, errlen, "socket %s: expected inet:PORT@HOST or inet6:PORT@HOST",
		         spec);
		return 0;
	}
	snprintf(err, errlen,
	         "socket %s: expected unix:/path, local:/path, inet:PORT@HOST "
	         "or inet6:PORT@HOST",
	         spec);
	return 0;
}

/*
 * Whether something answers on a unix socket: a second daemon must not steal
 * the socket of a running one (smfi_opensocket(true) would unlink it).
 */
static int unix_socket_in_use(const char *path)
{
	struct sockaddr_un sun;
	int fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return r == 0;
}

/*
 * libmilter never sets TCP_NODELAY.  At end of message a milter that adds
 * recipients or headers answers in several small writes, and with Nagle the
 * last one waits for the MTA's delayed ACK (~40 ms per message).  Linux
 * passes the option from a listening socket to every socket it accepts, and
 * libmilter does not tell us its descriptor: find it.  Returns how many
 * listening TCP sockets were changed, -1 on error.
 */
static int listen_sockets_nodelay(void)
{
	long max = sysconf(_SC_OPEN_MAX);
	int changed = 0;

	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 0; fd < max; fd++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(int);
		int acc = 0, one = 1;

		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc)
			continue;
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
			continue;
		if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
			continue;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
			msg_error("setsockopt(TCP_NODELAY) on the milter socket: %s",
			          strerror(errno));
			return -1;
		}
		changed++;
	}
	return changed;
}

struct run_as {
	uid_t uid;
	gid_t gid;
	char *name;
};

/* Resolve "user[:group]" (names or numbers).  0 on success. */
static int run_as_lookup(const char *spec, struct run_as *ra, char *err, size_t errlen)
{
	char *user = xstrdup(spec), *group = strchr(user, ':');
	struct passwd *pw;
	int rc = -1;

	if (group != NULL)
		*group++ = '\0';
	pw = getpwnam(user);
	if (pw == NULL) {
		char *end;
		unsigned long n = strtoul(user, &end, 10);
		if (*user != '\0' && *end == '\0')
			pw = getpwuid((uid_t)n);
	}
	if (pw == NULL) {
		snprintf(err, errlen, "unknown user \"%s\"", user);
		goto out;
	}
	ra->uid = pw->pw_uid;
	ra->gid = pw->pw_gid;
	ra->name = xstrdup(pw->pw_name);
	if (group != NULL && *group != '\0') {
		struct group *gr = getgrnam(group);
		if (gr == NULL) {
			char *end;
			unsigned long n = strtoul(group, &end, 10);
			if (*end == '\0')
				gr = getgrgid((gid_t)n);
		}
		if (gr == NULL) {
			snprintf(err, errlen, "unknown group \"%s\"", group);
			free(ra->name);
			ra->name = NULL;
			goto out;
		}
		ra->gid = gr->gr_gid;
	}
	rc = 0;
out:
	free(user);
	return rc;
}

static int drop_privileges(const struct run_as *ra)
{
	if (getuid() == ra->uid && geteuid() == ra->uid && getgid() == ra->gid)
		return 0;
	if (initgroups(ra->name, ra->gid) != 0) {
		msg_error("initgroups(%s): %s", ra->name, strerror(errno));
		return -1;
	}
	if (setgid(ra->gid) != 0) {
		msg_error("setgid(%ld): %s", (long)ra->gid, strerror(errno));
		return -1;
	}
	if (setuid(ra->uid) != 0) {
		msg_error("setuid(%ld): %s", (long)ra->uid, strerror(errno));
		return -1;
	}
	if (ra->uid != 0 && setuid(0) == 0) {
		msg_error("privileges could not be dropped for good");
		return -1;
	}
	return 0;
}

/*
 * Fork into the background.  The parent waits until the child says it is
 * ready (after the pid file), so that an init script sees the daemon's
 * startup errors in the exit status.  Returns the write end of that pipe.
 */
static int daemonize(int keep_stderr)
{
	int pfd[2], null;
	pid_t pid;

	if (pipe(pfd) != 0)
		msg_fatal("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		msg_fatal("fork: %s", strerror(errno));
	if (pid > 0) {
		char c = 0;
		close(pfd[1]);
		while (read(pfd[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(c == '1' ? 0 : 1);
	}
	close(pfd[0]);
	if (setsid() < 0)
		msg_fatal("setsid: %s", strerror(errno));
	if (chdir("/") != 0)
		msg_fatal("chdir /: %s", strerror(errno));
	null = open("/dev/null", O_RDWR);
	if (null < 0)
		msg_fatal("/dev/null: %s", strerror(errno));
	if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || (!keep_stderr && dup2(null, 2) < 0))
		msg_fatal("dup2: %s", strerror(errno));
	if (null > 2)
		close(null);
	return pfd[1];
}

static int write_pid_file(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		msg_error("pid file %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n || close(fd) != 0) {
		msg_error("pid file %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int syslog_facility(const char *name)
{
	static const struct {
		const char *name;
		int value;
	} tab[] = {
	    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
	    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
	    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
	    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
	};

	if (name != NULL)
		for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
			if (str_iequal(name, tab[i].name))
				return tab[i].value;
	return LOG_MAIL;
}

struct reloader {
	char *conf;
	int extra_verbose;
};

/*
 * The audit trail, opened once: after the privilege drop (its files belong
 * to the run-time user) and after daemonize (its writer thread must live in
 * the final process).  A reload does not re-open it.  When AuditStore is not
 * given and the default store's folder does not exist, decisions are only
 * logged, with a warning; a store that is configured and cannot be opened
 * stops startup.  NULL on error.
 */
static struct audit *audit_start(const struct audit_key *key)
{
	struct cm_config *c = config_current();
	struct audit_options ao;
	struct audit *a;
	const char *store = c->audit_store;
	char err[1024];

	if (c->audit_store_default && store != NULL && strncmp(store, "sqlite:", 7) == 0) {
		char *dir = xstrdup(store + 7);
		char *slash = strrchr(dir, '/');
		struct stat st;

		if (slash != NULL)
			*slash = '\0';
		if (slash != NULL && dir[0] != '\0' && stat(dir, &st) != 0) {
			msg_warn("audit: %s does not exist: decisions are only logged (create it, "
			         "owned by the milter's user, or set AuditStore)",
			         dir);
			store = "none";
		}
		free(dir);
	}
	memset(&ao, 0, sizeof(ao));
	ao.store = store;
	ao.key_file = c->audit_key_file;
	ao.key = key;
	ao.failure = c->audit_failure;
	ao.queue_size = c->audit_queue_size;
	ao.create = 1;
	a = audit_open(&ao, err, sizeof(err));
	if (a == NULL)
		msg_error("%s: audit trail: %s", c->path, err);
	else if (store != NULL && strcmp(store, "none") != 0)
		msg_info("audit trail: %s store, failure mode %s%s",
		         strncmp(store, "pgsql:", 6) == 0 ? "PostgreSQL" : "SQLite",
		         c->audit_failure ? c->audit_failure : "tempfail",
		         c->audit_key_file ? ", HMAC key" : "");
	config_unref(c);
	return a;
}

/*
 * The AuditKey is read before the privilege drop, so that it may be
 * readable by root only.  0, or -1 when it cannot be loaded.
 */
static int audit_key_early(struct audit_key *key, int *have)
{
	struct cm_config *c = config_current();
	char err[1024];
	int rc = 0;

	*have = 0;
	if (c->audit_key_file != NULL) {
		if (audit_key_load(c->audit_key_file, key, err, sizeof(err)) != 0) {
			msg_error("%s: AuditKey: %s", c->path, err);
			rc = -1;
		} else {
			*have = 1;
		}
	}
	config_unref(c);
	return rc;
}

/* A reload keeps the audit trail the milter started with: say so when it changed. */
static int str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

static void audit_reload_note(const struct cm_config *old, const struct cm_config *c)
{
	if (old == NULL)
		return;
	if (str_differs(old->audit_store, c->audit_store) ||
	    str_differs(old->audit_key_file, c->audit_key_file) ||
	    str_differs(old->audit_failure, c->audit_failure) ||
	    old->audit_queue_size != c->audit_queue_size)
		msg_warn("reload: Audit* settings changed; they apply at the next restart");
}

/*
 * SIGUSR1: build a new configuration aside and swap it in.  Messages in
 * flight keep the one they started with (they hold a reference); a broken
 * file leaves the running configuration untouched.
 */
static void *reload_thread(void *arg)
{
	const struct reloader *rl = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		char err[1024];
		struct cm_config *c;
		int sig;

		if (sigwait(&set, &sig) != 0)
			continue;
		err[0] = '\0';
		c = config_load(rl->conf, err, sizeof(err));
		if (c == NULL) {
			msg_error("reload failed, keeping the running configuration: %s", err);
			continue;
		}
		log_set_verbose(c->verbose + rl->extra_verbose);
		{
			struct cm_config *old = config_current();
			audit_reload_note(old, c);
			if (old != NULL)
				config_unref(old);
		}
		config_install(c);
		msg_info("configuration reloaded from %s", rl->conf);
	}
	return NULL;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	o->conf = DEFAULT_CONF;
	while ((ch = getopt(argc, argv, "c:fhnp:P:u:vV")) != -1) {
		switch (ch) {
		case 'c':
			o->conf = optarg;
			break;
		case 'f':
			o->foreground = 1;
			break;
		case 'n':
			o->check_only = 1;
			break;
		case 'p':
			o->socket = optarg;
			break;
		case 'P':
			o->pid_file = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'V': {
			unsigned int ma = 0, mi = 0, pl = 0;
			smfi_version(&ma, &mi, &pl);
			printf("%s %s (libmilter %u.%u.%u)\n", PROG, PACKAGE_VERSION, ma, mi, pl);
			exit(0);
		}
		case 'h':
			usage(0);
		default:
			usage(1);
		}
	}
	if (optind != argc)
		usage(1);
}

int main(int argc, char **argv)
{
	struct options o;
	struct cm_config *cfg;
	static struct reloader rl; /* read by the reload thread until exit */
	struct run_as ra = {0, 0, NULL};
	struct audit *audit = NULL;
	struct audit_key audit_key;
	int have_audit_key = 0;
	const char *spec, *user, *sock_path;
	char *pid_file = NULL, *sock_file = NULL, *spec_copy = NULL;
	char err[1024];
	sigset_t blocked;
	pthread_t tid;
	int ready_fd = -1, background, use_syslog, opened = 0, rc;

	parse_options(argc, argv, &o);

	/*
	 * Before any thread exists, so that every thread inherits the mask:
	 * SIGUSR1 is for the reload thread's sigwait, SIGHUP, SIGINT and SIGTERM
	 * for libmilter's signal thread (any other thread taking them would
	 * kill the process instead of stopping it cleanly).
	 */
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGUSR1);
	sigaddset(&blocked, SIGHUP);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &blocked, NULL) != 0) {
		fprintf(stderr, PROG ": pthread_sigmask failed\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	rl.conf = abs_path(o.conf);
	rl.extra_verbose = o.verbose;
	err[0] = '\0';
	cfg = config_load(rl.conf, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, PROG ": %s\n", err[0] ? err : rl.conf);
		return 1;
	}
	spec = o.socket != NULL ? o.socket : cfg->socket;
	if (spec == NULL || *spec == '\0') {
		fprintf(stderr, PROG ": %s: no Socket given (and no -p)\n", rl.conf);
		goto fail;
	}
	if (!socket_spec_valid(spec, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s\n", err);
		goto fail;
	}
	user = o.user != NULL ? o.user : cfg->user;
	if (user != NULL && *user != '\0' && run_as_lookup(user, &ra, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto fail;
	}
	if (o.check_only) {
		if (o.verbose)
			config_dump(cfg, stdout);
		config_unref(cfg);
		free(ra.name);
		return 0;
	}

	background = cfg->background && !o.foreground;
	use_syslog = cfg->syslog;
	log_init(PROG, use_syslog, syslog_facility(cfg->syslog_facility));
	log_set_verbose(cfg->verbose + o.verbose);
	if (o.pid_file != NULL || cfg->pid_file != NULL)
		pid_file = abs_path(o.pid_file != NULL ? o.pid_file : cfg->pid_file);
	spec_copy = xstrdup(spec); /* cfg may go away on reload */
	spec = spec_copy;

	mime_text_global_init();
	milter_set_pdf_cache(pdf_cache_new(PDF_CACHE_ENTRIES));
	config_install(cfg); /* the process-wide configuration takes our reference */
	cfg = NULL;

	sock_path = unix_socket_path(spec);
	if (sock_path != NULL) {
		sock_file = xstrdup(sock_path);
		if (unix_socket_in_use(sock_file)) {
			msg_error("%s: another milter is listening there", sock_file);
			goto fail;
		}
	}
	if (smfi_register(milter_desc) == MI_FAILURE) {
		msg_error("smfi_register failed");
		goto fail;
	}
	if (smfi_setconn(spec_copy) == MI_FAILURE ||
	    smfi_settimeout(MILTER_TIMEOUT) == MI_FAILURE ||
	    smfi_setbacklog(MILTER_BACKLOG) == MI_FAILURE) {
		msg_error("%s: smfi_setconn/settimeout/setbacklog failed", spec);
		goto fail;
	}
	/* true: remove a stale socket file left by a previous run (only a socket). */
	if (smfi_opensocket(true) == MI_FAILURE) {
		msg_error("%s: cannot open the milter socket", spec);
		goto fail;
	}
	opened = 1;
	if (sock_file == NULL) {
		int n = listen_sockets_nodelay();
		if (n < 0)
			goto fail;
		msg_debug("TCP_NODELAY set on %d listening socket(s)", n);
	}
	if (audit_key_early(&audit_key, &have_audit_key) != 0)
		goto fail;
	if (ra.name != NULL && getuid() == ra.uid && geteuid() == ra.uid && getgid() == ra.gid) {
		/* Already that user (started by systemd's User=): nothing to hand over. */
	} else if (ra.name != NULL) {
		if (sock_file != NULL && chown(sock_file, ra.uid, ra.gid) != 0) {
			msg_error("chown %s: %s", sock_file, strerror(errno));
			goto fail;
		}
		if (drop_privileges(&ra) != 0)
			goto fail;
	} else if (geteuid() == 0) {
		msg_warn("running as root: use -u or UserID to drop privileges");
	}

	if (background)
		ready_fd = daemonize(!use_syslog);
	if (pid_file != NULL && write_pid_file(pid_file) != 0)
		goto fail;
	audit = audit_start(have_audit_key ? &audit_key : NULL);
	explicit_bzero(&audit_key, sizeof(audit_key)); /* the audit trail has its copy */
	if (audit == NULL)
		goto fail;
	milter_set_audit(audit);

	rc = pthread_create(&tid, NULL, reload_thread, &rl);
	if (rc != 0) {
		msg_error("pthread_create: %s", strerror(rc));
		goto fail;
	}
	pthread_detach(tid);

	msg_info("%s %s starting on %s", PROG, PACKAGE_VERSION, spec);
	if (ready_fd >= 0) {
		if (write(ready_fd, "1", 1) != 1)
			msg_warn("cannot tell the parent process we are ready: %s",
			         strerror(errno));
		close(ready_fd);
	}

	rc = smfi_main();

	msg_info("%s stopping%s", PROG, rc == MI_SUCCESS ? "" : " after an error");
	/* Every queued audit record is written (or spooled, or logged in full). */
	milter_set_audit(NULL);
	audit_close(audit);
	if (pid_file != NULL)
		unlink(pid_file);
	if (sock_file != NULL && unlink(sock_file) != 0 && errno != ENOENT)
		msg_debug("unlink %s: %s", sock_file, strerror(errno));
	free(pid_file);
	free(sock_file);
	free(spec_copy);
	free(ra.name);
	return rc == MI_SUCCESS ? 0 : 1;

fail:
	audit_close(audit);
	/* Best effort: the socket may already belong to the run-time user. */
	if (opened && sock_file != NULL)
		unlink(sock_file);
	if (cfg != NULL)
		config_unref(cfg);
	free(pid_file);
	free(sock_file);
	free(spec_copy);
	free(ra.name);
	return 1;
}
