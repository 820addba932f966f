/*
 * passthrough-milter.c — the benchmark's ceiling: a libmilter milter that
 * asks Postfix for everything clinimail-milter asks for (connect, MAIL,
 * RCPT, each header, end of header, every body chunk, end of message) and
 * accepts every message without looking at it.  Whatever Postfix + this
 * milter achieve is the best any milter can do on the machine.
 *
 *   passthrough-milter -p unix:/path | inet:port@127.0.0.1 [-T timeout]
 *
 * Runs in the foreground; SIGTERM / SIGINT stop it (libmilter).
 */
#include <errno.h>
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sfsistat pt_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	(void)ctx;
	(void)host;
	(void)addr;
	return SMFIS_CONTINUE;
}

static sfsistat pt_envfrom(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat pt_envrcpt(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat pt_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx;
	(void)name;
	(void)value;
	return SMFIS_CONTINUE;
}

static sfsistat pt_eoh(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat pt_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)ctx;
	(void)chunk;
	(void)len;
	return SMFIS_CONTINUE;
}

static sfsistat pt_eom(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_ACCEPT;
}

static sfsistat pt_abort(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat pt_close(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "passthrough",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = 0,
    .xxfi_connect = pt_connect,
    .xxfi_envfrom = pt_envfrom,
    .xxfi_envrcpt = pt_envrcpt,
    .xxfi_header = pt_header,
    .xxfi_eoh = pt_eoh,
    .xxfi_body = pt_body,
    .xxfi_eom = pt_eom,
    .xxfi_abort = pt_abort,
    .xxfi_close = pt_close,
};

int main(int argc, char **argv)
{
	const char *sock = NULL;
	int timeout = 600, ch;

	while ((ch = getopt(argc, argv, "p:T:")) != -1) {
		switch (ch) {
		case 'p':
			sock = optarg;
			break;
		case 'T':
			timeout = atoi(optarg);
			break;
		default:
			sock = NULL;
			optind = argc + 1;
			break;
		}
	}
	if (!sock || optind != argc || timeout <= 0) {
		fprintf(stderr, "usage: passthrough-milter -p SOCKET [-T timeout]\n");
		return 2;
	}
	if (strncmp(sock, "unix:", 5) == 0 || strncmp(sock, "local:", 6) == 0) {
		const char *path = strchr(sock, ':') + 1;
		if (unlink(path) < 0 && errno != ENOENT) {
			fprintf(stderr, "passthrough-milter: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	if (smfi_setconn((char *)sock) == MI_FAILURE || smfi_settimeout(timeout) == MI_FAILURE ||
	    smfi_register(desc) == MI_FAILURE) {
		fprintf(stderr, "passthrough-milter: cannot set up %s\n", sock);
		return 1;
	}
	if (smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "passthrough-milter: cannot open %s\n", sock);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
