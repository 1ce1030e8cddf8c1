/* Reading the AWS shared files. In the config file profiles are
 * [profile NAME] (and [default]); in the credentials file they are [NAME]. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "awsfiles.h"
#include "providers/provider.h"

#define AWS_FILE_MAX (1024 * 1024)

static char *trim(char *s)
{
	char *end;

	s += strspn(s, " \t");
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) {
		*--end = 0;
	}
	return s;
}

/* One line: a comment, [section], key = value (or key: value), or an
 * indented continuation of the last key (nested settings). 0, or -EINVAL. */
static int parse_line(char *line, char **section, char **key, aws_ini_handler handler, void *userdata, bool *stop)
{
	bool indented = *line == ' ' || *line == '\t';
	char *s = trim(line), *sep;

	if (!*s || *s == '#' || *s == ';') {
		return 0;
	}
	if (*s == '[' && !indented) {
		char *end = strrchr(s, ']');
		if (!end) {
			return -EINVAL;
		}
		*end = 0;
		free(*section);
		free(TAKE_PTR(*key));
		*section = strdup(trim(s + 1));
		return *section ? 0 : -ENOMEM;
	}
	if (indented && *key) {
		*stop = !handler(userdata, *section ? *section : "", *key, s);
		return 0;
	}
	sep = s + strcspn(s, "=:");
	if (!*sep || sep == s) {
		return -EINVAL;
	}
	*sep = 0;
	free(*key);
	if (!(*key = strdup(trim(s)))) {
		return -ENOMEM;
	}
	*stop = !handler(userdata, *section ? *section : "", *key, trim(sep + 1));
	return 0;
}

int aws_ini_parse_string(const char *text, aws_ini_handler handler, void *userdata)
{
	_cleanup_free_ char *section = NULL, *key = NULL;
	bool stop = false;
	int r = 0;

	while (*text && !stop) {
		size_t len = strcspn(text, "\n");
		char *line = strndup(text, len);
		int k;
		if (!line) {
			return -ENOMEM;
		}
		k = parse_line(line, &section, &key, handler, userdata, &stop);
		erase_and_free(line, len);
		if (k == -ENOMEM) {
			return k;
		}
		r = r < 0 ? r : k;
		text += len + (text[len] == '\n');
	}
	return stop ? -EINVAL : r;
}

int aws_ini_parse_file(const char *path, aws_ini_handler handler, void *userdata)
{
	_cleanup_erase_ char *text = NULL;
	struct stat st;
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		return -errno;
	}
	if (fstat(fileno(f), &st) < 0 || st.st_size > AWS_FILE_MAX || !(text = calloc(1, (size_t)st.st_size + 1))) {
		fclose(f);
		return -EFBIG;
	}
	n = fread(text, 1, (size_t)st.st_size, f);
	fclose(f);
	text[n] = 0;
	return aws_ini_parse_string(text, handler, userdata);
}

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

/* The next word of s as POSIX shlex (Python's shlex.split) reads it: blanks
 * separate words, '...' is literal, "..." takes \\ and \" as escapes, a
 * backslash outside quotes escapes any character. The word goes to out
 * (room for strlen(s) + 1); NULL when s has no more words, or a quote or an
 * escape is not closed. */
static const char *shlex_word(const char *s, char *out)
{
	char quote = 0;

	s += strspn(s, " \t\r\n");
	if (!*s) {
		return NULL;
	}
	for (; *s && (quote || !strchr(" \t\r\n", *s)); s++) {
		if (quote == '\'' && *s != '\'') {
			*out++ = *s;
		} else if (quote == '"' && *s == '\\' && (s[1] == '\\' || s[1] == '"')) {
			*out++ = *++s;
		} else if (quote && *s == quote) {
			quote = 0;
		} else if (quote) {
			*out++ = *s;
		} else if (*s == '\'' || *s == '"') {
			quote = *s;
		} else if (*s == '\\' && !s[1]) {
			return NULL; /* shlex: "No escaped character" */
		} else if (*s == '\\') {
			*out++ = *++s;
		} else {
			*out++ = *s;
		}
	}
	*out = 0;
	return quote ? NULL : s;
}

/* The profile a section header names (a new string), or NULL for other
 * sections. In the credentials file every section is a profile; in the
 * config file [default] is, and a header that starts with "profile" and
 * splits into exactly two shlex words, as botocore's configloader reads it:
 * [profile "my prof"] is the profile "my prof", while [profile my prof] (three
 * words) is no profile at all. */
static char *section_profile(const char *section, bool config_file)
{
	_cleanup_free_ char *word = NULL, *name = NULL;
	const char *rest;

	if (!config_file || strcmp(section, "default") == 0) {
		return strdup(section);
	}
	if (strncmp(section, "profile", 7) != 0) {
		return NULL; /* [sso-session x], [services x], ... */
	}
	word = malloc(strlen(section) + 1);
	name = malloc(strlen(section) + 1);
	if (!word || !name || !(rest = shlex_word(section, word)) || !(rest = shlex_word(rest, name)) ||
	    shlex_word(rest, word)) {
		return NULL;
	}
	return TAKE_PTR(name);
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

char **aws_profile_field(struct aws_profile *p, const char *key)
{
	static const struct { const char *key; size_t offset; } fields[] = {
		{ "aws_access_key_id", offsetof(struct aws_profile, access_key_id) },
		{ "region", offsetof(struct aws_profile, region) },
		{ "mfa_serial", offsetof(struct aws_profile, mfa_serial) },
		{ "duration_seconds", offsetof(struct aws_profile, duration_seconds) },
		{ "role_arn", offsetof(struct aws_profile, role_arn) },
		{ "source_profile", offsetof(struct aws_profile, source_profile) },
		{ "credential_source", offsetof(struct aws_profile, credential_source) },
		{ "external_id", offsetof(struct aws_profile, external_id) },
		{ "role_session_name", offsetof(struct aws_profile, role_session_name) },
		{ "source_identity", offsetof(struct aws_profile, source_identity) },
		{ "tags", offsetof(struct aws_profile, tags) },
		{ "endpoint_url", offsetof(struct aws_profile, endpoint_url) },
		{ "services", offsetof(struct aws_profile, services) },
	};

	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		if (strcmp(key, fields[i].key) == 0) {
			return (char **)((char *)p + fields[i].offset);
		}
	}
	return NULL;
}

const char *aws_profile_string(const struct aws_profile *p, const char *key)
{
	char **field = aws_profile_field((struct aws_profile *)p, key);

	return field ? *field : NULL;
}

static int set_secret(struct secret **dst, const char *v)
{
	secret_free(*dst);
	*dst = secret_new_str(v);
	return *dst ? 0 : -ENOMEM;
}

static int on_profile_line(void *userdata, const char *section, const char *key, const char *value)
{
	struct load *l = userdata;
	_cleanup_free_ char *name = section_profile(section, l->config_file);
	char **field;

	if (!name || strcmp(name, l->profile) != 0) {
		return 1;
	}
	l->found = true;
	if ((field = aws_profile_field(l->p, key))) {
		l->r = set(field, value);
	} else if (strcmp(key, "aws_secret_access_key") == 0) {
		l->r = set_secret(&l->p->secret_access_key, value);
	} else if (strcmp(key, "aws_session_token") == 0) {
		l->r = set_secret(&l->p->session_token, value);
	} else if (strcmp(key, "credential_process") == 0) {
		l->p->credential_process = true;
	} else if (strncmp(key, "sso_", 4) == 0) {
		l->p->sso = true;
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
			aws_ini_parse_file(path, on_profile_line, &l); /* a missing file is no profile */
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
	char *strings[] = { p->access_key_id, p->region, p->mfa_serial, p->duration_seconds, p->role_arn,
			    p->source_profile, p->credential_source, p->external_id, p->role_session_name,
			    p->source_identity, p->tags, p->endpoint_url, p->services };

	for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
		free(strings[i]);
	}
	secret_free(p->secret_access_key);
	secret_free(p->session_token);
	*p = (struct aws_profile){ 0 };
}

struct services {
	const char *name, *service;
	char *endpoint;
	int r;
};

/* [services NAME] holds "sts =" followed by indented "endpoint_url = URL"
 * lines, which come as further values of "sts". */
static int on_services_line(void *userdata, const char *section, const char *key, const char *value)
{
	struct services *s = userdata;
	size_t klen = strcspn(value, " \t=");
	const char *v = value + klen;

	if (strncmp(section, "services ", 9) != 0 || strcmp(section + 9 + strspn(section + 9, " "), s->name) != 0 ||
	    strcmp(key, s->service) != 0 || klen != strlen("endpoint_url") || strncmp(value, "endpoint_url", klen) != 0) {
		return 1;
	}
	v += strspn(v, " \t");
	if (*v != '=') {
		return 1;
	}
	v++;
	v += strspn(v, " \t");
	s->r = set(&s->endpoint, v);
	return s->r == 0;
}

int aws_services_endpoint(const char *name, const char *service, char **ret)
{
	_cleanup_free_ char *path = file_path("AWS_CONFIG_FILE", "config");
	struct services s = { .name = name, .service = service };

	if (path) {
		aws_ini_parse_file(path, on_services_line, &s);
	}
	if (s.r < 0 || !s.endpoint || !*s.endpoint) {
		free(s.endpoint);
		return s.r < 0 ? s.r : -ENOENT;
	}
	*ret = s.endpoint;
	return 0;
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
	_cleanup_free_ char *name = section_profile(section, n->config_file);
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
	if (!v) {
		n->r = -ENOMEM;
		return 0;
	}
	v[n->n] = TAKE_PTR(name);
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
		aws_ini_parse_file(creds, on_section, &n);
	}
	n.config_file = true;
	if (config && n.r == 0) {
		aws_ini_parse_file(config, on_section, &n);
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
