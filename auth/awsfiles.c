/* Reading the AWS shared files with libinih. In the config file profiles are
 * [profile NAME] (and [default]); in the credentials file they are [NAME]. */
#include <errno.h>
#include <ini.h>
#include <stdio.h>

#include "auth.h"
#include "awsfiles.h"

static char *file_path(const char *env, const char *name)
{
	const char *v = getenv(env), *home = getenv("HOME");
	char *path = NULL;

	if (v && *v) {
		return strdup(v);
	}
	if (home && asprintf(&path, "%s/.aws/%s", home, name) < 0) {
		path = NULL;
	}
	return path;
}

/* The profile a section header names, or NULL for other sections. */
static const char *section_profile(const char *section, bool config_file)
{
	if (!config_file || strcmp(section, "default") == 0) {
		return section;
	}
	if (strncmp(section, "profile ", 8) == 0) {
		section += 8;
		while (*section == ' ') {
			section++;
		}
		return section;
	}
	return NULL; /* [sso-session x], [services x], ... */
}

struct load {
	const char *profile;
	struct aws_profile *p;
	bool config_file;
	bool found;
	int r;
};

static int set(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int on_profile_line(void *userdata, const char *section, const char *key, const char *value)
{
	struct load *l = userdata;
	const char *name = section_profile(section, l->config_file);

	if (!name || strcmp(name, l->profile) != 0) {
		return 1;
	}
	l->found = true;
	if (strcmp(key, "aws_access_key_id") == 0) {
		l->r = set(&l->p->access_key_id, value);
	} else if (strcmp(key, "aws_secret_access_key") == 0) {
		secret_free(l->p->secret_access_key);
		l->p->secret_access_key = secret_new_str(value);
		l->r = l->p->secret_access_key ? 0 : -ENOMEM;
	} else if (strcmp(key, "region") == 0) {
		l->r = set(&l->p->region, value);
	} else if (strcmp(key, "mfa_serial") == 0) {
		l->r = set(&l->p->mfa_serial, value);
	} else if (strcmp(key, "duration_seconds") == 0) {
		l->r = set(&l->p->duration_seconds, value);
	}
	return l->r == 0;
}

int aws_profile_load(const char *profile, struct aws_profile *ret)
{
	static const struct { const char *env, *name; bool config; } files[] = {
		{ "AWS_CONFIG_FILE", "config", true },
		{ "AWS_SHARED_CREDENTIALS_FILE", "credentials", false }, /* keys win */
	};
	struct aws_profile p = { 0 };
	bool found = false;

	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *path = file_path(files[i].env, files[i].name);
		struct load l = { .profile = profile, .p = &p, .config_file = files[i].config };
		if (path) {
			ini_parse(path, on_profile_line, &l); /* a missing file is no profile */
		}
		if (l.r < 0) {
			aws_profile_done(&p);
			return l.r;
		}
		found = found || l.found;
	}
	if (!found) {
		aws_profile_done(&p);
		return -ENOENT;
	}
	*ret = p;
	return 0;
}

void aws_profile_done(struct aws_profile *p)
{
	free(p->access_key_id);
	secret_free(p->secret_access_key);
	free(p->region);
	free(p->mfa_serial);
	free(p->duration_seconds);
	*p = (struct aws_profile){ 0 };
}

struct names {
	char **v;
	size_t n;
	bool config_file;
	int r;
};

static int on_section(void *userdata, const char *section, const char *key, const char *value)
{
	struct names *n = userdata;
	const char *name = section_profile(section, n->config_file);
	char **v;

	(void)key;
	(void)value;
	if (!name || auth_name_valid(name) < 0) {
		return 1;
	}
	for (size_t i = 0; i < n->n; i++) {
		if (strcmp(n->v[i], name) == 0) {
			return 1;
		}
	}
	v = realloc(n->v, (n->n + 1) * sizeof(*v));
	if (!v || !(v[n->n] = strdup(name))) {
		n->v = v ? v : n->v;
		n->r = -ENOMEM;
		return 0;
	}
	n->v = v;
	n->n++;
	return 1;
}

static int compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int aws_profiles_list(char ***ret_names, size_t *ret_n)
{
	struct names n = { 0 };
	_cleanup_free_ char *config = file_path("AWS_CONFIG_FILE", "config");
	_cleanup_free_ char *creds = file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials");

	if (creds) {
		ini_parse(creds, on_section, &n);
	}
	n.config_file = true;
	if (config && n.r == 0) {
		ini_parse(config, on_section, &n);
	}
	if (n.r < 0) {
		auth_strv_free(n.v, n.n);
		return n.r;
	}
	if (n.n) {
		qsort(n.v, n.n, sizeof(*n.v), compare);
	}
	*ret_names = n.v;
	*ret_n = n.n;
	return 0;
}
