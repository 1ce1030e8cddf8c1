/* Every provider's file table: what each file is (name, mode, role, flags),
 * the rules every table keeps, and the checks of the writes a provider
 * validates itself (STS's six-digit MFA code). */
#include <errno.h>
#include <sys/stat.h>

#include "tap.h"
#include "engine/target.h"

struct expected {
	const char *provider;
	const char *name;
	mode_t mode;
	enum auth_file_role role;
	unsigned flags;
};

static const struct expected tables[] = {
	{ "aos", "token", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT },
	{ "aos", "session.json", S_IFREG | 0600, AUTH_FILE_SESSION, AUTH_FILE_RESUME },
	{ "aos", "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, 0 },
	{ "aos", "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0 },
	{ "idrac", "token", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT },
	{ "idrac", "session.json", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_RESUME },
	{ "idrac", "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, 0 },
	{ "idrac", "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0 },
	{ "idrac", "sessions", S_IFDIR | 0700, AUTH_FILE_SESSIONS, 0 },
	{ "sts", "creds.json", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT },
	{ "sts", "env", S_IFREG | 0400, AUTH_FILE_SESSION, 0 },
	{ "sts", "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, AUTH_FILE_LINES },
	{ "sts", "mfa", S_IFREG | 0200, AUTH_FILE_ONE_TIME, 0 },
	{ "sts", "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0 },
	{ "oauth2", "token", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT },
	{ "oauth2", "header", S_IFREG | 0400, AUTH_FILE_SESSION, 0 },
	{ "oauth2", "session.json", S_IFREG | 0400, AUTH_FILE_SESSION, 0 },
	{ "oauth2", "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, 0 },
	{ "oauth2", "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0 },
};

/* Each provider's table is exactly the lines above, in that order. */
static void test_tables(void)
{
	for (size_t p = 0; p < auth_provider_count(); p++) {
		const char *name = auth_provider_name(p);
		size_t n, at = 0;
		const struct auth_file_info *files = auth_provider_files(p, &n);

		for (size_t e = 0; e < ELEMENTSOF(tables); e++) {
			const struct expected *x = &tables[e];
			if (strcmp(x->provider, name) != 0) {
				continue;
			}
			if (!ok(at < n, "%s has %s", name, x->name)) {
				at++;
				continue;
			}
			is_str(files[at].name, x->name, "%s file %zu is %s", name, at, x->name);
			is_int((int)files[at].mode, (int)x->mode, "%s/%s: mode %o", name, x->name, (unsigned)x->mode);
			is_int(files[at].role, x->role, "%s/%s: role %d", name, x->name, x->role);
			is_int((int)files[at].flags, (int)x->flags, "%s/%s: flags %#x", name, x->name, x->flags);
			at++;
		}
		ok(at > 0, "provider %s's table is listed in this test", name);
		is_int((int)n, (int)at, "%s: %zu files, no more", name, at);
	}
}

static size_t count_role(const struct auth_file_info *files, size_t n, enum auth_file_role role)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++) {
		c += files[i].role == role;
	}
	return c;
}

/* What the engine and fs/ rely on, for every provider, present or future. */
static void test_rules(void)
{
	for (size_t p = 0; p < auth_provider_count(); p++) {
		const struct auth_provider *prov = auth_providers[p];
		const char *name = prov->name;
		size_t n;
		const struct auth_file_info *files = auth_provider_files(p, &n);
		bool logout = false;

		ok(n <= AUTH_FILES_MAX, "%s: at most %d files", name, AUTH_FILES_MAX);
		is_int(auth_provider_index(name), (int)p, "%s is found by its name", name);
		ok(auth_name_valid(name) == 0, "%s: a valid directory name", name);
		is_int((int)count_role(files, n, AUTH_FILE_STATUS), 1, "%s: one status file", name);
		is_int((int)count_role(files, n, AUTH_FILE_CREDENTIALS), 1, "%s: one credentials file", name);
		ok(count_role(files, n, AUTH_FILE_SESSION) >= 1, "%s: a session file", name);
		ok(prov->login && prov->validate && prov->logout && prov->render && prov->session_save &&
		   prov->session_load, "%s: every required hook", name);
		ok(prov->credentials_hint && *prov->credentials_hint, "%s: says how to provide credentials", name);
		ok(!(prov->features & AUTH_PROVIDER_RENEWS_IN_PLACE) || (prov->features & AUTH_PROVIDER_CHECKS_REGULARLY),
		   "%s: renews in place only what it checks regularly", name);
		for (size_t i = 0; i < n; i++) {
			const struct auth_file_info *f = &files[i];
			unsigned index = ~0u;
			ok(auth_name_valid(f->name) == 0, "%s/%s: a valid file name", name, f->name);
			ok(auth_provider_file(p, f->name, &index) == f && index == i, "%s/%s: unique, found at %zu",
			   name, f->name, i);
			switch (f->role) {
			case AUTH_FILE_SESSION:
			case AUTH_FILE_STATUS:
				ok(S_ISREG(f->mode) && (f->mode & 0400), "%s/%s: a readable file", name, f->name);
				break;
			case AUTH_FILE_CREDENTIALS:
			case AUTH_FILE_ONE_TIME:
				ok(S_ISREG(f->mode) && (f->mode & 0200) && !(f->mode & 0444), "%s/%s: write-only", name,
				   f->name);
				break;
			case AUTH_FILE_SESSIONS:
				ok(S_ISDIR(f->mode) && prov->sessions && prov->sessions->list && prov->sessions->get &&
				   prov->sessions->delete,
				   "%s/%s: a directory the provider lists", name, f->name);
				break;
			}
			if (f->role == AUTH_FILE_ONE_TIME) {
				ok(prov->needs_one_time && prov->one_time_hint, "%s/%s: the provider asks for it", name,
				   f->name);
			}
			ok(!(f->flags & (AUTH_FILE_RESUME | AUTH_FILE_LOGOUT)) || f->role == AUTH_FILE_SESSION,
			   "%s/%s: resume and logout only on session files", name, f->name);
			logout |= (f->flags & AUTH_FILE_LOGOUT) != 0;
		}
		ok(logout, "%s: rm of a session file logs out", name);
	}
}

/* STS's mfa: six digits, and the newline echo adds; fewer digits may follow. */
static void test_mfa_check(void)
{
	int p = auth_provider_index("sts");
	unsigned index;
	const struct auth_file_info *mfa = p < 0 ? NULL : auth_provider_file((size_t)p, "mfa", &index);

	if (!ok(mfa && mfa->check, "sts/mfa checks its writes")) {
		return;
	}
	is_int(mfa->check("123456", 6), 0, "six digits");
	is_int(mfa->check("123456\n", 7), 0, "six digits and a newline");
	is_int(mfa->check("123", 3), -ENODATA, "three digits: more may follow");
	is_int(mfa->check("", 0), -ENODATA, "nothing yet");
	is_int(mfa->check("12a", 3), -EINVAL, "a letter");
	is_int(mfa->check("1234567", 7), -EINVAL, "seven digits");
	is_int(mfa->check("123456\n\n", 8), -EINVAL, "two newlines");
	is_int(mfa->check("12345\n", 6), -EINVAL, "five digits and a newline");
}

/* Where a value ends (file_value_end): never before it is complete, so no
 * prefix of a value is ever applied. */
struct value_case {
	const char *file; /* provider/file */
	const char *data;
	bool final;
	int want;         /* 0: complete, with want_len bytes */
	size_t want_len;
};

static const struct value_case value_cases[] = {
	{ "idrac/credentials", "admin:s", false, -ENODATA, 0 },
	{ "idrac/credentials", "admin:s", true, 0, 7 },
	{ "idrac/credentials", "admin:s3cret\n", false, 0, 13 },
	{ "idrac/credentials", "admin:s3cret\nmore", false, -EINVAL, 0 },
	{ "idrac/credentials", "admin:s3cret\n\n", false, -EINVAL, 0 },
	{ "idrac/credentials", "admin:s3c\tret", false, -EINVAL, 0 },
	{ "idrac/credentials", "admin:s3cret\r", false, -ENODATA, 0 },
	{ "idrac/credentials", "", true, -EINVAL, 0 },
	{ "idrac/credentials", "\n", true, -EINVAL, 0 },
	{ "idrac/credentials", "{\"username\": \"a\"", false, -ENODATA, 0 },
	{ "idrac/credentials", "{\"username\": \"a\"", true, -EINVAL, 0 },
	{ "idrac/credentials", "{\"username\": \"a\", \"password\": \"b\"}", false, 0, 34 },
	{ "idrac/credentials", "{\"username\": \"a\"} x", false, -EINVAL, 0 },
	{ "idrac/credentials", "{not json", false, -EINVAL, 0 },
	{ "idrac/credentials", "[1, 2]", false, -ENODATA, 0 }, /* a user name may start so */
	{ "sts/credentials", "aws_access_key_id = AKIA\naws_secret_access_key = x\n", false, -ENODATA, 0 },
	{ "sts/credentials", "aws_access_key_id = AKIA\naws_secret_access_key = x\n", true, 0, 51 },
	{ "sts/credentials", "aws_access_key_id = AKIA\nnot a key line\n", false, -EINVAL, 0 },
	{ "sts/mfa", "12345", false, -ENODATA, 0 },
	{ "sts/mfa", "123456", false, -ENODATA, 0 },
	{ "sts/mfa", "123456", true, 0, 6 },
	{ "sts/mfa", "1234567", false, -EINVAL, 0 },
	{ "sts/mfa", "123456\n", false, 0, 7 },
	{ "aos/session.json", "{\"token\": ", false, -ENODATA, 0 },
	{ "aos/session.json", "token", false, -EINVAL, 0 },
};

static void test_value_end(void)
{
	for (size_t i = 0; i < ELEMENTSOF(value_cases); i++) {
		const struct value_case *c = &value_cases[i];
		char provider[16];
		const char *slash = strchr(c->file, '/');
		const struct auth_file_info *fi;
		unsigned index;
		size_t len = 0;
		int p, r;

		snprintf(provider, sizeof(provider), "%.*s", (int)(slash - c->file), c->file);
		p = auth_provider_index(provider);
		fi = p < 0 ? NULL : auth_provider_file((size_t)p, slash + 1, &index);
		if (!ok(fi != NULL, "%s exists", c->file)) {
			continue;
		}
		r = file_value_end(fi, c->data, strlen(c->data), c->final, &len);
		is_int(r, c->want, "%s: %s%s", c->file, c->data, c->final ? " (close)" : "");
		if (r == 0) {
			is_int((int)len, (int)c->want_len, "%s: %s: a value of %zu bytes", c->file, c->data, c->want_len);
		}
	}
}

/* A provider's numeric settings are checked by the config parser, with its
 * ranges: STS's duration_seconds is 900..129600. */
static void test_settings(void)
{
	struct config *c = NULL;

	is_int(config_parse_string("[sts \"ci\"]\nduration_seconds = 900\n", auth_config_ranges, &c), 0,
	       "sts duration_seconds 900");
	config_free(c);
	c = NULL;
	is_int(config_parse_string("[sts \"ci\"]\nduration_seconds = 129601\n", auth_config_ranges, &c), -EINVAL,
	       "sts duration_seconds 129601 refused");
	is_int(config_parse_string("[sts]\nduration_seconds = abc\n", auth_config_ranges, &c), -EINVAL,
	       "sts defaults: duration_seconds abc refused");
	is_int(config_parse_string("[aos \"x\"]\nduration_seconds = 1\n", auth_config_ranges, &c), 0,
	       "another provider's key of that name is not STS's");
	config_free(c);
	ok(auth_config_ranges("nosuch") == NULL, "no ranges for an unknown provider");
}

int main(void)
{
	plan(-1);
	test_tables();
	test_rules();
	test_mfa_check();
	test_value_end();
	test_settings();
	return done();
}
