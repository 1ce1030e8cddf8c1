/* The state dir (store.c), in a fresh temporary directory. umask is 0 so that
 * every mode checked here is the one the store asked for. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/secret.h"
#include "lib/store.h"
#include "tap.h"

static char base[] = "/tmp/sessionfs-test-store.XXXXXX";

static char *path_of(const char *rel)
{
	char *p;

	if (asprintf(&p, "%s/%s", base, rel) < 0) {
		abort();
	}
	return p;
}

/* Permission bits of base/rel (lstat), or -errno. */
static int mode_of(const char *rel)
{
	_cleanup_free_ char *p = path_of(rel);
	struct stat st;

	if (lstat(p, &st) < 0) {
		return -errno;
	}
	return (int)(st.st_mode & 07777);
}

static bool is_reg(const char *rel)
{
	_cleanup_free_ char *p = path_of(rel);
	struct stat st;

	return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Entries of base/rel other than . and .., joined by ',' in sorted order. */
static char *listing(const char *rel)
{
	_cleanup_free_ char *p = path_of(rel);
	struct dirent **names = NULL;
	char *out = calloc(1, 1);
	int n = scandir(p, &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		const char *d = names[i]->d_name;
		if (strcmp(d, ".") && strcmp(d, "..")) {
			char *joined;
			if (asprintf(&joined, "%s%s%s", out, *out ? "," : "", d) < 0) {
				abort();
			}
			free(out);
			out = joined;
		}
		free(names[i]);
	}
	free(names);
	return out;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d) {
		return -1;
	}
	while (readdir(d)) {
		n++;
	}
	closedir(d);
	return n;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct names {
	char *v[8];
	int calls;
};

static void collect(const char *name, void *userdata)
{
	struct names *n = userdata;

	if (n->calls < (int)ELEMENTSOF(n->v)) {
		n->v[n->calls] = strdup(name);
	}
	n->calls++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* store_list does not promise an order: compare the sorted names. */
static void check_list(struct store *s, const char *provider, const char *item, const char *want, int want_calls)
{
	struct names n = { 0 };
	char buf[256] = "";
	int kept;

	is_int(store_list(s, provider, item, collect, &n), 0, "store_list(%s, %s) succeeds", provider, item);
	kept = n.calls < (int)ELEMENTSOF(n.v) ? n.calls : (int)ELEMENTSOF(n.v);
	qsort(n.v, (size_t)kept, sizeof(n.v[0]), cmp_str);
	for (int i = 0; i < kept; i++) {
		size_t len = strlen(buf);
		snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "," : "", n.v[i]);
		free(n.v[i]);
	}
	is_str(buf, want, "store_list(%s, %s) names", provider, item);
	is_int(n.calls, want_calls, "store_list(%s, %s) calls", provider, item);
}

static void check_load(struct store *s, const char *provider, const char *name, const char *item, const char *want,
		       size_t want_len)
{
	struct secret *sec = NULL;

	is_int(store_load(s, provider, name, item, &sec), 0, "load %s/%s/%s", provider, name, item);
	is_int(sec ? sec->len : 0, want_len, "load %s/%s/%s: length", provider, name, item);
	ok(sec && memcmp(sec->data, want, want_len) == 0 && sec->data[want_len] == 0, "load %s/%s/%s: content",
	   provider, name, item);
	secret_free(sec);
}

static void check_load_fails(struct store *s, const char *provider, const char *name, const char *item, int want,
			     const char *what)
{
	struct secret *sec = (struct secret *)0x1;

	is_int(store_load(s, provider, name, item, &sec), want, "load %s: %d", what, want);
	ok(sec == (struct secret *)0x1, "load %s: output untouched", what);
}

static void test_open(void)
{
	_cleanup_free_ char *fresh = path_of("fresh"), *open_dir = path_of("open"), *file = path_of("file"),
			    *link = path_of("link"), *deep = path_of("no/such/parent");
	struct store *s = NULL, *sentinel = (struct store *)0x1;
	int fd;

	is_int(store_open(fresh, &s), 0, "store_open creates a missing dir");
	is_int(mode_of("fresh"), 0700, "created dir is 0700");
	store_free(s);
	s = NULL;
	is_int(store_open(fresh, &s), 0, "store_open accepts an existing 0700 dir");
	store_free(s);
	store_free(NULL);

	mkdir(open_dir, 0755);
	s = sentinel;
	is_int(store_open(open_dir, &s), -EPERM, "store_open refuses an existing 0755 dir");
	ok(s == sentinel, "refused: output untouched");
	is_int(mode_of("open"), 0755, "refused dir left as it was");
	chmod(open_dir, 0750);
	is_int(store_open(open_dir, &s), -EPERM, "store_open refuses a 0750 dir");
	chmod(open_dir, 0701);
	is_int(store_open(open_dir, &s), -EPERM, "store_open refuses a 0701 dir");

	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	is_int(store_open(file, &s), -EPERM, "store_open refuses a regular file");
	if (symlink(fresh, link) < 0) {
		abort();
	}
	is_int(store_open(link, &s), -EPERM, "store_open refuses a symlink to a good dir");
	is_int(store_open(deep, &s), -ENOENT, "store_open does not create parents");
	ok(s == sentinel, "failures leave the output untouched");
}

static void test_save_load(struct store *s)
{
	static const char binary[] = "a\0b\nc\xff";
	_cleanup_free_ char *tmp_listing = NULL, *big = NULL;
	struct stat st;

	is_int(store_save(s, "aos", "lab", "session", "{\"token\":\"abc\"}", 15), 0, "save aos/lab/session");
	is_int(mode_of("state/aos"), 0700, "provider dir is 0700");
	is_int(mode_of("state/aos/lab"), 0700, "target dir is 0700");
	ok(is_reg("state/aos/lab/session"), "saved item is a regular file");
	is_int(mode_of("state/aos/lab/session"), 0600, "saved item is 0600");
	tmp_listing = listing("state/aos/lab");
	is_str(tmp_listing, "session", "no temp file left behind");
	check_load(s, "aos", "lab", "session", "{\"token\":\"abc\"}", 15);

	/* Overwrite with something shorter: nothing of the old content survives. */
	is_int(store_save(s, "aos", "lab", "session", "xy", 2), 0, "overwrite with shorter content");
	check_load(s, "aos", "lab", "session", "xy", 2);
	is_int(mode_of("state/aos/lab/session"), 0600, "overwritten item still 0600");

	is_int(store_save(s, "aos", "lab", "blob", binary, sizeof(binary) - 1), 0, "save binary content");
	check_load(s, "aos", "lab", "blob", binary, sizeof(binary) - 1);
	is_int(store_save(s, "aos", "lab", "empty", "", 0), 0, "save empty content");
	check_load(s, "aos", "lab", "empty", "", 0);
	free(tmp_listing);
	tmp_listing = listing("state/aos/lab");
	is_str(tmp_listing, "blob,empty,session", "still no temp files after several saves");

	/* The store caps what it reads back at 64 KiB. */
	big = malloc(64 * 1024 + 1);
	memset(big, 'x', 64 * 1024 + 1);
	is_int(store_save(s, "aos", "big", "session", big, 64 * 1024), 0, "save 64 KiB");
	check_load(s, "aos", "big", "session", big, 64 * 1024);
	is_int(store_save(s, "aos", "big", "session", big, 64 * 1024 + 1), 0, "save 64 KiB + 1");
	check_load_fails(s, "aos", "big", "session", -EBADMSG, "64 KiB + 1");
	is_int(store_remove_target(s, "aos", "big"), 0, "remove aos/big");

	check_load_fails(s, "aos", "lab", "credentials", -ENOENT, "missing item");
	check_load_fails(s, "aos", "nobody", "session", -ENOENT, "missing target");
	check_load_fails(s, "idrac", "lab", "session", -ENOENT, "missing provider");

	/* An item that is a symlink is not followed. */
	{
		_cleanup_free_ char *target = path_of("state/aos/lab/session"), *l = path_of("state/aos/lab/linked");
		if (symlink(target, l) < 0) {
			abort();
		}
		check_load_fails(s, "aos", "lab", "linked", -EBADMSG, "symlinked item");
		unlink(l);
	}

	/* A provider dir that became readable by others is refused for writing. */
	{
		_cleanup_free_ char *p = path_of("state/idrac");
		mkdir(p, 0755);
		is_int(store_save(s, "idrac", "bmc", "session", "x", 1), -EPERM, "save under a 0755 provider dir");
		ok(lstat(p, &st) == 0 && mode_of("state/idrac/bmc") == -ENOENT, "nothing created under it");
		rmdir(p);
	}
}

static void test_remove(struct store *s)
{
	is_int(store_remove(s, "aos", "lab", "blob"), 0, "remove aos/lab/blob");
	is_int(mode_of("state/aos/lab/blob"), -ENOENT, "blob is gone");
	check_load_fails(s, "aos", "lab", "blob", -ENOENT, "removed item");
	check_load(s, "aos", "lab", "session", "xy", 2);
	is_int(store_remove(s, "aos", "lab", "blob"), 0, "removing it again succeeds");
	is_int(store_remove(s, "aos", "nobody", "blob"), 0, "removing from a missing target succeeds");
	is_int(store_remove(s, "sts", "nobody", "blob"), 0, "removing under a missing provider succeeds");
}

static void test_list(struct store *s)
{
	_cleanup_free_ char *hidden = path_of("state/aos/.hidden");

	is_int(store_save(s, "aos", "lab", "credentials", "u:p", 3), 0, "save aos/lab/credentials");
	is_int(store_save(s, "aos", "prod", "credentials", "u:q", 3), 0, "save aos/prod/credentials");
	is_int(store_save(s, "aos", "10.0.0.1:8443", "target", "{}", 2), 0, "save aos/10.0.0.1:8443/target");
	is_int(store_save(s, "idrac", "bmc", "credentials", "r:s", 3), 0, "save idrac/bmc/credentials");
	mkdir(hidden, 0700);

	check_list(s, "aos", "credentials", "lab,prod", 2);
	check_list(s, "aos", "session", "lab", 1);
	check_list(s, "aos", "target", "10.0.0.1:8443", 1);
	check_list(s, "aos", "nothing", "", 0);
	check_list(s, "idrac", "credentials", "bmc", 1);
	check_list(s, "sts", "credentials", "", 0);

	is_int(store_remove_target(s, "aos", "lab"), 0, "remove target aos/lab");
	is_int(mode_of("state/aos/lab"), -ENOENT, "aos/lab dir is gone");
	check_load_fails(s, "aos", "lab", "session", -ENOENT, "item of a removed target");
	check_list(s, "aos", "credentials", "prod", 1);
	check_load(s, "aos", "prod", "credentials", "u:q", 3);
	is_int(store_remove_target(s, "aos", "lab"), 0, "removing it again succeeds");
	is_int(store_remove_target(s, "sts", "nobody"), 0, "removing under a missing provider succeeds");

	/* A stale temp file of a crashed save goes with its target. */
	{
		_cleanup_free_ char *stale = path_of("state/aos/prod/.credentials.1.tmp");
		int fd = open(stale, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		close(fd);
	}
	is_int(store_remove_target(s, "aos", "prod"), 0, "remove target aos/prod with a stale temp file");
	is_int(mode_of("state/aos/prod"), -ENOENT, "aos/prod dir is gone");
	rmdir(hidden);
}

#define OTHER_UID 1001

static void make_file(const char *rel, mode_t mode, uid_t uid)
{
	_cleanup_free_ char *p = path_of(rel);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, "u:p", 3) != 3 || fchmod(fd, mode) < 0 || fchown(fd, uid, (gid_t)-1) < 0) {
		abort();
	}
	close(fd);
}

static void unlink_rel(const char *rel)
{
	_cleanup_free_ char *p = path_of(rel);

	unlink(p);
}

static void chown_rel(const char *rel, uid_t uid)
{
	_cleanup_free_ char *p = path_of(rel);

	if (chown(p, uid, uid) < 0) {
		abort();
	}
}

static void symlink_rel(const char *to, const char *rel)
{
	_cleanup_free_ char *p = path_of(rel), *t = path_of(to);

	if (symlink(t, p) < 0) {
		abort();
	}
}

/* Trust (issue 12): the state dir and the way to it. */
static void test_trust_open(void)
{
	_cleanup_free_ char *theirs = path_of("theirs"), *real = path_of("real"), *link = path_of("reallink"),
			    *link_slash = NULL, *slash = NULL, *open_parent = path_of("open-parent"),
			    *under_open = path_of("open-parent/state"), *sticky = path_of("sticky"),
			    *under_sticky = path_of("sticky/state");
	struct store *s = NULL;

	if (asprintf(&link_slash, "%s/", link) < 0 || asprintf(&slash, "%s//", real) < 0) {
		abort();
	}
	mkdir(theirs, 0700);
	if (chown(theirs, OTHER_UID, OTHER_UID) < 0) {
		abort();
	}
	is_int(store_open(theirs, &s), -EPERM, "store_open refuses a 0700 dir owned by uid %d", OTHER_UID);

	mkdir(real, 0700);
	if (symlink(real, link) < 0) {
		abort();
	}
	is_int(store_open(link_slash, &s), -EPERM, "store_open refuses a symlink given as link/");
	is_int(store_open(slash, &s), 0, "store_open accepts a good dir given as dir//");
	ok(s && strcmp(store_path(s), real) == 0, "store_path() is normalized");
	store_free(TAKE_PTR(s));

	mkdir(open_parent, 0777);
	is_int(store_open(under_open, &s), -EPERM, "store_open refuses a dir under a world-writable parent");
	is_int(mode_of("open-parent/state"), -ENOENT, "nothing created under it");
	mkdir(sticky, 01777);
	is_int(store_open(under_sticky, &s), 0, "store_open accepts a dir under a sticky parent (like /tmp)");
	store_free(TAKE_PTR(s));
}

/* Trust (issue 12): files and dirs inside the state dir. */
static void test_trust_files(struct store *s)
{
	char why[600];

	is_int(store_save(s, "aos", "good", "credentials", "u:p", 3), 0, "save aos/good/credentials");
	is_int(store_save(s, "aos", "t", "credentials", "u:p", 3), 0, "save aos/t/credentials");
	is_int(store_check_target(s, "aos", "t", why, sizeof(why)), 0, "a target saved by the store is trusted");
	is_int(store_check_target(s, "aos", "none", why, sizeof(why)), -ENOENT, "a target without state: -ENOENT");

	/* A planted file owned by another user. */
	make_file("state/aos/t/access", 0600, OTHER_UID);
	check_load_fails(s, "aos", "t", "access", -EBADMSG, "a file owned by uid 1001");
	is_int(store_check_target(s, "aos", "t", why, sizeof(why)), -EBADMSG, "check_target: a file owned by uid 1001");
	ok(strstr(why, "state/aos/t/access: is owned by uid 1001"), "why names the path and the owner: %s", why);
	unlink_rel("state/aos/t/access");

	/* A 0644 file. */
	make_file("state/aos/t/credentials", 0644, 0);
	check_load_fails(s, "aos", "t", "credentials", -EBADMSG, "a 0644 file");
	is_int(store_check_target(s, "aos", "t", why, sizeof(why)), -EBADMSG, "check_target: a 0644 file");
	ok(strstr(why, "state/aos/t/credentials: has mode 0644"), "why names the path and the mode: %s", why);

	/* A symlinked file, even to a good one. */
	unlink_rel("state/aos/t/credentials");
	symlink_rel("state/aos/good/credentials", "state/aos/t/credentials");
	check_load_fails(s, "aos", "t", "credentials", -EBADMSG, "a symlinked file");
	is_int(store_check_target(s, "aos", "t", why, sizeof(why)), -EBADMSG, "check_target: a symlinked file");
	ok(strstr(why, "state/aos/t/credentials: is a symlink"), "why: %s", why);
	unlink_rel("state/aos/t/credentials");

	/* A target dir owned by another user: neither loaded nor listed. */
	make_file("state/aos/t/target", 0600, 0);
	is_int(store_save(s, "aos", "good", "target", "{}", 2), 0, "save aos/good/target");
	chown_rel("state/aos/t", OTHER_UID);
	check_load_fails(s, "aos", "t", "target", -EBADMSG, "a file in a dir owned by uid 1001");
	is_int(store_check_target(s, "aos", "t", why, sizeof(why)), -EBADMSG, "check_target: a dir owned by uid 1001");
	is_int(store_save(s, "aos", "t", "credentials", "u:p", 3), -EPERM, "no save into a dir owned by uid 1001");
	check_list(s, "aos", "target", "10.0.0.1:8443,good", 2);

	/* The state dir itself changed hands after open: every load refuses. */
	chown_rel("state", OTHER_UID);
	check_load_fails(s, "aos", "good", "credentials", -EBADMSG, "the state dir now owned by uid 1001");
	chown_rel("state", 0);
	check_load(s, "aos", "good", "credentials", "u:p", 3);
	store_remove_target(s, "aos", "good");
	chown_rel("state/aos/t", 0);
	store_remove_target(s, "aos", "t");
}

int main(void)
{
	_cleanup_free_ char *state = NULL;
	struct store *s = NULL;
	int fds;

	umask(0);
	secret_init(1 << 20);
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 99;
	}
	fds = count_fds();
	test_open();
	if (geteuid() == 0) {
		test_trust_open();
	}
	state = path_of("state");
	is_int(store_open(state, &s), 0, "store_open state");
	if (!s) {
		return done();
	}
	test_save_load(s);
	test_remove(s);
	test_list(s);
	if (geteuid() == 0) {
		test_trust_files(s);
	}
	store_free(s);
	is_int(count_fds(), fds, "no file descriptor leaked");
	is_int(CRYPTO_secure_used(), 0, "every secret was freed");
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return done();
}
