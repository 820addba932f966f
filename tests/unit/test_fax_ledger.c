/*
 * test_fax_ledger.c — the exactly-once ledger (lib/fax_ledger.h): claim,
 * duplicate, release, update, scan, takeover of a dead claim, the file's
 * mode and schema version, reopening, and two processes claiming the same
 * key at the same moment (exactly one wins).
 */
#include "autoconfig.h"
#include "fax_ledger.h"
#include "tap.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

static const char *H1 = "1111111111111111111111111111111111111111111111111111111111111111";
static const char *H2 = "2222222222222222222222222222222222222222222222222222222222222222";

struct scan_ctx {
	int n;
	long long ids[16];
	struct fax_ledger *l;
	int stop_after;
};

static int scan_cb(const struct fax_ledger_row *r, void *arg)
{
	struct scan_ctx *c = arg;
	if (c->n < 16)
		c->ids[c->n] = r->id;
	c->n++;
	if (c->l) { /* write during the scan */
		struct fax_ledger_row u = *r;
		u.tries++;
		fax_ledger_update(c->l, &u, NULL, 0);
	}
	return c->stop_after && c->n >= c->stop_after;
}

/* Child: open the ledger, wait for the go signal (a file), claim, exit 1 if it won. */
static int racer(const char *db, const char *go)
{
	struct fax_ledger_row row;
	char err[256];
	struct fax_ledger *l = fax_ledger_open(db, err, sizeof(err));
	int rc;

	if (l == NULL)
		_exit(3);
	while (access(go, F_OK) != 0)
		usleep(200);
	rc = fax_ledger_claim(l, "race@hopital.example", "8195550102", H1, "CM-RACE", "a@b",
	                      (int)getpid(), &row, err, sizeof(err));
	fax_ledger_close(l);
	_exit(rc == 1 ? 1 : rc == 0 ? 0 : 2);
}

int main(void)
{
	char dir[] = "/tmp/test_fax_ledger.XXXXXX";
	char db[300], go[300], err[512];
	struct fax_ledger *l;
	struct fax_ledger_row row, row2;
	struct stat st;
	long long id1, id2, id3;

	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	snprintf(db, sizeof(db), "%s/ledger.db", dir);
	snprintf(go, sizeof(go), "%s/go", dir);

	umask(022);
	l = fax_ledger_open(db, err, sizeof(err));
	ok(l != NULL, "ledger created (%s)", l ? "" : err);
	if (l == NULL)
		return done_testing();
	ok(stat(db, &st) == 0 && (st.st_mode & 0777) == 0600, "ledger file is 0600");

	is_int(fax_ledger_claim(l, "m1@hopital.example", "9993335554", H1, "CM-1",
	                        "dr.tremblay@hopital.example", 4242, &row, err, sizeof(err)),
	       1, "first claim wins");
	id1 = row.id;
	is_int(row.state, FAXL_CLAIMED, "state CLAIMED");
	is_int(row.claim_pid, 4242, "claim pid kept");
	is_str(row.ref, "CM-1", "ref kept");
	is_str(row.sender, "dr.tremblay@hopital.example", "sender kept");
	ok(row.claimed_at > 0, "claimed_at set");

	is_int(fax_ledger_claim(l, "m1@hopital.example", "9993335554", H1, "CM-1bis", "x@y", 1,
	                        &row2, err, sizeof(err)),
	       0, "same key: duplicate");
	is_int((long)row2.id, (long)id1, "duplicate returns the existing row");
	is_str(row2.ref, "CM-1", "existing row's ref");

	is_int(fax_ledger_claim(l, "m1@hopital.example", "8195550102", H1, "CM-1", "s", 1, &row2,
	                        err, sizeof(err)),
	       1, "other number: new claim");
	id2 = row2.id;
	is_int(fax_ledger_claim(l, "m1@hopital.example", "9993335554", H2, "CM-1", "s", 1, &row2,
	                        err, sizeof(err)),
	       1, "other body: new claim");
	id3 = row2.id;

	/* release */
	is_int(fax_ledger_release(l, id3, err, sizeof(err)), 0, "claim released");
	is_int(fax_ledger_get(l, id3, &row2, err, sizeof(err)), 0, "released row is gone");
	is_int(fax_ledger_claim(l, "m1@hopital.example", "9993335554", H2, "CM-1", "s", 1, &row2,
	                        err, sizeof(err)),
	       1, "released key can be claimed again");
	ok(row2.id > id3, "ids are never reused (%lld > %lld)", row2.id, id3);
	id3 = row2.id;

	/* update */
	row.state = FAXL_SUBMITTED;
	snprintf(row.job_id, sizeof(row.job_id), "17");
	snprintf(row.backend, sizeof(row.backend), "hylafax");
	snprintf(row.spool_path, sizeof(row.spool_path), "/var/spool/clinimail-fax/%lld.tif",
	         row.id);
	row.pages = 3;
	row.submitted_at = 1795000000;
	snprintf(row.outcome, sizeof(row.outcome), "queued");
	is_int(fax_ledger_update(l, &row, err, sizeof(err)), 0, "row updated");
	is_int(fax_ledger_get(l, id1, &row2, err, sizeof(err)), 1, "row read back");
	is_int(row2.state, FAXL_SUBMITTED, "state SUBMITTED");
	is_str(row2.job_id, "17", "job id");
	is_str(row2.backend, "hylafax", "backend");
	is_int(row2.pages, 3, "pages");
	is_str(row2.outcome, "queued", "outcome");
	ok(fax_ledger_release(l, id1, err, sizeof(err)) < 0, "a submitted row cannot be released");
	is_int(fax_ledger_get(l, id1, &row2, err, sizeof(err)), 1, "and it is still there");
	{
		struct fax_ledger_row ghost = row;
		ghost.id = 999999;
		ok(fax_ledger_update(l, &ghost, err, sizeof(err)) < 0,
		   "update of a missing row fails");
	}

	/* takeover of a dead claim */
	is_int(fax_ledger_get(l, id2, &row2, err, sizeof(err)), 1, "claim 2 read");
	is_int(fax_ledger_takeover(l, id2, 1, 777, err, sizeof(err)), 1, "takeover from pid 1");
	is_int(fax_ledger_takeover(l, id2, 1, 778, err, sizeof(err)), 0,
	       "second takeover with the old pid fails");
	is_int(fax_ledger_get(l, id2, &row2, err, sizeof(err)), 1, "claim 2 read again");
	is_int(row2.claim_pid, 777, "new owner recorded");
	is_int(fax_ledger_takeover(l, id1, 4242, 1, err, sizeof(err)), 0,
	       "a submitted row cannot be taken over");

	/* scan */
	{
		struct scan_ctx c;
		memset(&c, 0, sizeof(c));
		is_int(fax_ledger_scan(l, FAXL_CLAIMED, scan_cb, &c, err, sizeof(err)), 0,
		       "scan CLAIMED");
		is_int(c.n, 2, "two claims");
		ok(c.n == 2 && c.ids[0] == id2 && c.ids[1] == id3, "oldest first");
		memset(&c, 0, sizeof(c));
		c.stop_after = 1;
		fax_ledger_scan(l, FAXL_CLAIMED, scan_cb, &c, err, sizeof(err));
		is_int(c.n, 1, "callback can stop the scan");
		memset(&c, 0, sizeof(c));
		c.l = l;
		is_int(fax_ledger_scan(l, FAXL_SUBMITTED, scan_cb, &c, err, sizeof(err)), 0,
		       "scan SUBMITTED, updating inside");
		is_int(c.n, 1, "one submitted");
		fax_ledger_get(l, id1, &row2, err, sizeof(err));
		is_int(row2.tries, 1, "update inside the scan was written");
		memset(&c, 0, sizeof(c));
		fax_ledger_scan(l, FAXL_DESTROYED, scan_cb, &c, err, sizeof(err));
		is_int(c.n, 0, "no destroyed rows");
	}
	is_str(fax_ledger_state_name(FAXL_DESTROYED), "destroyed", "state names");
	fax_ledger_close(l);

	/* reopen */
	l = fax_ledger_open(db, err, sizeof(err));
	ok(l != NULL, "ledger reopened");
	if (l) {
		is_int(fax_ledger_claim(l, "m1@hopital.example", "9993335554", H1, "CM-1", "s", 1,
		                        &row2, err, sizeof(err)),
		       0, "duplicate survives reopening");
		is_str(row2.job_id, "17", "with its job id");
		fax_ledger_close(l);
	}

	/* a ledger from a newer version is refused */
	{
		char db2[300];
		sqlite3 *s;
		snprintf(db2, sizeof(db2), "%s/newer.db", dir);
		l = fax_ledger_open(db2, err, sizeof(err));
		fax_ledger_close(l);
		if (sqlite3_open(db2, &s) == SQLITE_OK) {
			sqlite3_exec(s, "UPDATE schema_version SET version = 99", NULL, NULL, NULL);
			sqlite3_close(s);
		}
		l = fax_ledger_open(db2, err, sizeof(err));
		ok(l == NULL && strstr(err, "newer"), "newer schema refused (%s)", err);
		fax_ledger_close(l);
	}
	ok(fax_ledger_open("/nonexistent/dir/ledger.db", err, sizeof(err)) == NULL,
	   "unwritable path fails");

	/* two processes claim the same key at the same moment, several rounds */
	{
		int wins_ok = 1, rounds = 5;
		for (int round = 0; round < rounds; round++) {
			pid_t p[4];
			int wins = 0, dups = 0, errs = 0;
			char dbr[300];
			snprintf(dbr, sizeof(dbr), "%s/race%d.db", dir, round);
			unlink(go);
			for (int i = 0; i < 4; i++) {
				p[i] = fork();
				if (p[i] == 0) {
					snprintf(db, sizeof(db), "%s", dbr);
					racer(db, go);
				}
			}
			usleep(100000); /* all children opened the file (or are about to) */
			FILE *fp = fopen(go, "w");
			if (fp)
				fclose(fp);
			for (int i = 0; i < 4; i++) {
				int status = 0;
				waitpid(p[i], &status, 0);
				int code = WIFEXITED(status) ? WEXITSTATUS(status) : 9;
				wins += code == 1;
				dups += code == 0;
				errs += code > 1;
			}
			if (wins != 1 || dups != 3 || errs != 0) {
				wins_ok = 0;
				diag("round %d: %d wins, %d duplicates, %d errors", round, wins,
				     dups, errs);
			}
		}
		ok(wins_ok, "4 processes x %d rounds: exactly one claim wins each time", rounds);
	}

	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			diag("could not remove %s", dir);
	}
	return done_testing();
}
