/* AssumeRole profiles as botocore and aws-vault read them: role_arn with
 * source_profile (chains of them) or credential_source, external_id,
 * role_session_name, duration_seconds, mfa_serial. And aws-vault's MFA trick:
 * one GetSessionToken per source key and MFA serial, kept in memory and reused
 * to assume every role behind them, with no new code, until it expires. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "lib/log.h"
#include "sts.h"

#define MAX_CHAIN 16
#define DURATION_MIN 900
#define DURATION_MAX 43200
#define ROLE_CHAINING_MAX 3600 /* STS's limit for a role assumed with role credentials */
#define MFA_SESSION_MIN_LEFT 60 /* an MFA session closer to its end is not used for a new role */

/* A role to assume; hops[0] is the target's, each next one its source. */
struct hop {
	char *profile;
	struct aws_profile p;
};

struct chain {
	struct hop hops[MAX_CHAIN];
	size_t n;
	struct sts_creds root;  /* what the last hop is assumed with */
	char *root_profile;     /* the profile whose keys root are, else NULL */
};

static void chain_done(struct chain *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->hops[i].profile);
		aws_profile_done(&c->hops[i].p);
	}
	sts_creds_done(&c->root);
	free(c->root_profile);
	*c = (struct chain){ 0 };
}

/* --- MFA sessions: GetSessionToken credentials per source key and serial --- */

struct mfa_session {
	char *source; /* the profile whose keys made it (for its status) */
	char *key_id; /* those keys */
	char *serial;
	struct sts_creds creds;
	struct mfa_session *next;
};

static pthread_mutex_t mfa_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mfa_session *mfa_sessions; /* guarded by mfa_lock */

static struct mfa_session **mfa_find(const char *key_id, const char *serial)
{
	struct mfa_session **m = &mfa_sessions;

	while (*m && (strcmp((*m)->key_id, key_id) != 0 || strcmp((*m)->serial, serial) != 0)) {
		m = &(*m)->next;
	}
	return m;
}

static void mfa_session_free(struct mfa_session *m)
{
	if (m) {
		free(m->source);
		free(m->key_id);
		free(m->serial);
		sts_creds_done(&m->creds);
		free(m);
	}
}

/* A copy of the MFA session of key_id and serial with time left, else -ENOENT. */
static int mfa_session_get(const char *key_id, const char *serial, const char *origin, struct sts_creds *ret)
{
	struct mfa_session *m;
	int r = -ENOENT;

	pthread_mutex_lock(&mfa_lock);
	m = *mfa_find(key_id, serial);
	if (m && m->creds.expires_at - now_real() > MFA_SESSION_MIN_LEFT) {
		r = sts_creds_copy(&m->creds, origin, ret);
	}
	pthread_mutex_unlock(&mfa_lock);
	return r;
}

/* Keeps creds (taken over) as the MFA session of key_id and serial. */
static int mfa_session_put(const char *source, const char *key_id, const char *serial, struct sts_creds *creds)
{
	struct mfa_session *m = calloc(1, sizeof(*m)), **slot;

	if (!m || !(m->source = strdup(source)) || !(m->serial = strdup(serial)) || !(m->key_id = strdup(key_id))) {
		mfa_session_free(m);
		return -ENOMEM;
	}
	m->creds = *creds;
	*creds = (struct sts_creds){ 0 };
	pthread_mutex_lock(&mfa_lock);
	slot = mfa_find(key_id, serial);
	if (*slot) {
		m->next = (*slot)->next;
		mfa_session_free(*slot);
	}
	*slot = m;
	pthread_mutex_unlock(&mfa_lock);
	return 0;
}

static void mfa_session_drop(const char *key_id, const char *serial)
{
	struct mfa_session **slot, *m;

	pthread_mutex_lock(&mfa_lock);
	slot = mfa_find(key_id, serial);
	if ((m = *slot)) {
		*slot = m->next;
		mfa_session_free(m);
	}
	pthread_mutex_unlock(&mfa_lock);
}

/* --- the chain --- */

/* The target's own [sts "x"] settings win over its profile's. */
static int apply_section(const struct target_info *info, struct aws_profile *p)
{
	static const struct { const char *key, *aws_key; } keys[] = {
		{ "role_arn", "role_arn" }, { "source_profile", "source_profile" },
		{ "credential_source", "credential_source" }, { "external_id", "external_id" },
		{ "role_session_name", "role_session_name" }, { "duration_seconds", "duration_seconds" },
		{ "mfa_serial_number", "mfa_serial" }, { "source_identity", "source_identity" }, { "tags", "tags" },
	};

	/* The section's source replaces the profile's, whichever kind it is. */
	if (target_setting(info, "source_profile") || target_setting(info, "credential_source")) {
		free(TAKE_PTR(p->source_profile));
		free(TAKE_PTR(p->credential_source));
	}
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		const char *v = target_setting(info, keys[i].key);
		char **field = aws_profile_field(p, keys[i].aws_key);
		if (v && field) {
			free(*field);
			if (!(*field = strdup(v))) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static int chain_loop(struct auth_ctx *ctx, const struct chain *c, const char *again)
{
	char path[512] = "";
	size_t len = 0;

	for (size_t i = 0; i < c->n && len < sizeof(path); i++) {
		len += (size_t)snprintf(path + len, sizeof(path) - len, "%s -> ", c->hops[i].profile);
	}
	return auth_ctx_fail(ctx, -EINVAL, "source_profile loop: %s%s", path, again);
}

/* The root credentials from credential_source (of botocore's three, only
 * Environment: the daemon's own AWS_* variables). */
static int from_credential_source(struct auth_ctx *ctx, const struct hop *h, struct chain *c)
{
	const char *source = h->p.credential_source;
	int r;

	if (strcmp(source, "Environment") == 0) {
		r = sts_creds_from_env(&c->root);
		if (r == -ENOENT) {
			return auth_ctx_fail(ctx, -ENOKEY,
					     "no credentials: profile %s has credential_source = Environment, but the daemon's environment has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
					     h->profile);
		}
		return r;
	}
	if (strcmp(source, "Ec2InstanceMetadata") == 0 || strcmp(source, "EcsContainer") == 0) {
		return auth_ctx_fail(ctx, -EOPNOTSUPP,
				     "profile %s has credential_source = %s, which sessionfs does not support (only Environment)",
				     h->profile, source);
	}
	return auth_ctx_fail(ctx, -EINVAL, "profile %s: unknown credential_source %s", h->profile, source);
}

/* The root credentials from a source profile with keys, or without role_arn: its keys. */
static int from_source_profile(struct auth_ctx *ctx, const char *name, const struct aws_profile *p, struct chain *c)
{
	_cleanup_free_ char *origin = NULL;
	int r;

	if (asprintf(&origin, "profile %s", name) < 0) {
		return -ENOMEM;
	}
	r = sts_creds_from_profile(p, origin, &c->root);
	if (r == -ENOENT) {
		return sts_unsupported_source(ctx, name, p);
	}
	if (r == 0 && !(c->root_profile = strdup(name))) {
		return -ENOMEM;
	}
	return r;
}

/* Follows source_profile from the target's profile to credentials: the roles
 * to assume, and what the last of them is assumed with. own: the target's
 * written or configured credentials, which stand for its source. */
static int chain_resolve(struct auth_ctx *ctx, const struct sts_creds *own, struct chain *c)
{
	struct aws_profile next = { 0 };
	const char *name = sts_profile_name(ctx->info);
	int r;

	r = aws_profile_load(name, &next);
	if (r < 0 && r != -ENOENT) {
		return r;
	}
	r = apply_section(ctx->info, &next);
	for (;;) {
		struct hop *h = &c->hops[c->n];
		const char *source;

		if (r < 0) {
			aws_profile_done(&next);
			return r;
		}
		if (c->n == MAX_CHAIN) {
			aws_profile_done(&next);
			return auth_ctx_fail(ctx, -EINVAL, "profile %s: a chain of more than %d roles", c->hops[0].profile,
					     MAX_CHAIN);
		}
		h->p = next;
		next = (struct aws_profile){ 0 };
		if (!(h->profile = strdup(name))) {
			aws_profile_done(&h->p);
			return -ENOMEM;
		}
		c->n++;
		if (c->n == 1 && own) {
			return sts_creds_copy(own, NULL, &c->root);
		}
		if (h->p.credential_source && h->p.source_profile) {
			return auth_ctx_fail(ctx, -EINVAL,
					     "profile %s has both source_profile and credential_source (botocore refuses it too): keep one",
					     h->profile);
		}
		if (h->p.credential_source) {
			return from_credential_source(ctx, h, c);
		}
		source = h->p.source_profile;
		if (!source) {
			return auth_ctx_fail(ctx, -EINVAL, "profile %s has role_arn but neither source_profile nor credential_source",
					     h->profile);
		}
		if (strcmp(source, h->profile) == 0 && h->p.access_key_id) {
			return from_source_profile(ctx, source, &h->p, c); /* its own keys, as botocore allows */
		}
		for (size_t i = 0; i < c->n; i++) {
			if (strcmp(c->hops[i].profile, source) == 0) {
				return chain_loop(ctx, c, source);
			}
		}
		r = aws_profile_load(source, &next);
		if (r == -ENOENT) {
			return auth_ctx_fail(ctx, -EINVAL, "profile %s: its source_profile %s does not exist", h->profile,
					     source);
		}
		/* A source with keys of its own is used with them, even with a
		 * role_arn of its own: botocore assumes a source's role only when
		 * it has no aws_access_key_id or aws_secret_access_key. */
		if (r == 0 && (!next.role_arn || next.access_key_id || next.secret_access_key)) {
			r = from_source_profile(ctx, source, &next, c);
			aws_profile_done(&next);
			return r;
		}
		name = source; /* a role in turn: assumed first */
	}
}

/* --- AssumeRole --- */

/* false when out of memory */
static bool form_add(FILE *f, const char *name, const char *value)
{
	_cleanup_free_ char *escaped = http_escape(value);

	if (escaped) {
		fprintf(f, "&%s=%s", name, escaped);
	}
	return escaped != NULL;
}

static bool session_name_valid(const char *s)
{
	size_t len = strlen(s);

	return len >= 2 && len <= 64 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+=,.@-") == len;
}

/* "Key=Value,Key=Value" as Tags.member.N.Key / .Value. */
static int form_add_tags(FILE *f, const char *tags, bool *ok)
{
	_cleanup_free_ char *copy = strdup(tags);
	char *save = NULL, name[64];
	unsigned n = 0;

	if (!copy) {
		return -ENOMEM;
	}
	for (char *tag = strtok_r(copy, ",", &save); tag; tag = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tag, '=');
		if (!eq || eq == tag || ++n > 50) {
			return -EINVAL;
		}
		*eq = 0;
		snprintf(name, sizeof(name), "Tags.member.%u.Key", n);
		*ok = form_add(f, name, tag) && *ok;
		snprintf(name, sizeof(name), "Tags.member.%u.Value", n);
		*ok = form_add(f, name, eq + 1) && *ok;
	}
	return 0;
}

/* The AssumeRole form of hop h; chained: assumed with role credentials. */
static int assume_role_body(struct auth_ctx *ctx, const struct hop *h, bool chained, const char *mfa_serial,
			    char **ret)
{
	_cleanup_free_ char *default_name = NULL;
	const char *name = h->p.role_session_name;
	char *body = NULL;
	size_t len = 0;
	long duration = 0;
	bool ok;
	FILE *f;
	int r = 0;

	if (!name && asprintf(&default_name, "sessionfs-%lld", (long long)now_real()) < 0) {
		return -ENOMEM;
	}
	name = name ? name : default_name;
	if (!session_name_valid(name)) {
		return auth_ctx_fail(ctx, -EINVAL, "profile %s: role_session_name must be 2 to 64 of A-Z a-z 0-9 _+=,.@-",
				     h->profile);
	}
	if (h->p.duration_seconds && parse_int(h->p.duration_seconds, DURATION_MIN, DURATION_MAX, &duration) < 0) {
		return auth_ctx_fail(ctx, -EINVAL, "profile %s: duration_seconds must be %d to %d", h->profile,
				     DURATION_MIN, DURATION_MAX);
	}
	if (chained && duration > ROLE_CHAINING_MAX) {
		duration = ROLE_CHAINING_MAX; /* as STS allows no more for role chaining */
	}
	f = open_memstream(&body, &len);
	if (!f) {
		return -ENOMEM;
	}
	fputs("Action=AssumeRole&Version=2011-06-15", f);
	ok = form_add(f, "RoleArn", h->p.role_arn) && form_add(f, "RoleSessionName", name);
	if (duration) {
		fprintf(f, "&DurationSeconds=%ld", duration);
	}
	if (h->p.external_id) {
		ok = form_add(f, "ExternalId", h->p.external_id) && ok;
	}
	if (mfa_serial) {
		ok = form_add(f, "SerialNumber", mfa_serial) && form_add(f, "TokenCode", secret_str(ctx->one_time)) && ok;
	}
	if (h->p.source_identity) {
		ok = form_add(f, "SourceIdentity", h->p.source_identity) && ok;
	}
	if (h->p.tags) {
		r = form_add_tags(f, h->p.tags, &ok);
	}
	if (fclose(f) != 0 || !body || !ok) {
		erase_and_free_str(body);
		return -ENOMEM;
	}
	if (r < 0) {
		erase_and_free_str(body);
		return auth_ctx_fail(ctx, r, "profile %s: tags must be Key=Value pairs separated by commas", h->profile);
	}
	*ret = body;
	return 0;
}

static int need_code(struct auth_ctx *ctx, const char *serial)
{
	return auth_ctx_fail(ctx, -ENOKEY, "MFA required: write the current code of %s to sts/%s/mfa", serial,
			     ctx->info->name);
}

/* The MFA session of the chain's root key, reused or made with the code
 * written to mfa: the credentials every role behind them is assumed with. */
static int mfa_session(struct auth_ctx *ctx, const struct chain *c, const char *serial, struct sts_creds *ret)
{
	const char *source = c->root_profile ? c->root_profile : ctx->info->name;
	_cleanup_free_ char *origin = NULL, *serial_escaped = http_escape(serial);
	_cleanup_session_ struct auth_session *s = NULL;
	_cleanup_erase_ char *body = NULL;
	struct sts_creds creds = { 0 }, copy = { 0 };
	int r;

	if (asprintf(&origin, "the MFA session of %s", source) < 0 || !serial_escaped) {
		return -ENOMEM;
	}
	if (mfa_session_get(c->root.id, serial, origin, ret) == 0) {
		log_debug("sts/%s: reusing the MFA session of %s", ctx->info->name, source);
		return 0;
	}
	if (!ctx->one_time) {
		return need_code(ctx, serial);
	}
	if (asprintf(&body, "Action=GetSessionToken&Version=2011-06-15&SerialNumber=%s&TokenCode=%s", serial_escaped,
		     secret_str(ctx->one_time)) < 0) {
		body = NULL;
		return -ENOMEM;
	}
	r = sts_request(ctx, "GetSessionToken", body, &c->root, &s);
	if (r == 0) {
		r = sts_creds_from_session(s, origin, &creds);
	}
	if (r == 0) {
		r = sts_creds_copy(&creds, NULL, &copy);
	}
	if (r == 0) {
		char until[21];
		log_info("sts/%s: MFA session of %s until %s, for every role behind it", ctx->info->name, source,
			 format_iso8601(creds.expires_at, until));
		r = mfa_session_put(source, c->root.id, serial, &creds);
	}
	sts_creds_done(&creds);
	if (r < 0) {
		sts_creds_done(&copy);
		return r;
	}
	*ret = copy;
	return 0;
}

/* The deepest role with mfa_serial: where MFA comes in. */
static size_t mfa_hop(const struct chain *c)
{
	for (size_t i = c->n; i-- > 0;) {
		if (c->hops[i].p.mfa_serial) {
			return i;
		}
	}
	return SIZE_MAX;
}

int sts_role_login(struct auth_ctx *ctx, const struct sts_creds *own, struct auth_session **ret)
{
	struct chain c = { 0 };
	struct sts_creds creds = { 0 };
	size_t mfa_at;
	const char *code_serial = NULL, *session_serial = NULL;
	int r;

	r = chain_resolve(ctx, own, &c);
	mfa_at = r == 0 ? mfa_hop(&c) : SIZE_MAX;
	if (mfa_at != SIZE_MAX) {
		/* Long-term keys: one MFA session for all roles. Temporary ones
		 * cannot call GetSessionToken: the code goes with AssumeRole. */
		if (c.root.token) {
			code_serial = c.hops[mfa_at].p.mfa_serial;
		} else {
			session_serial = c.hops[mfa_at].p.mfa_serial;
		}
	}
	if (r == 0 && code_serial && !ctx->one_time) {
		r = need_code(ctx, code_serial);
	}
	if (r == 0) {
		r = session_serial ? mfa_session(ctx, &c, session_serial, &creds) : sts_creds_copy(&c.root, NULL, &creds);
	}
	for (size_t i = c.n; r == 0 && i-- > 0;) {
		_cleanup_session_ struct auth_session *s = NULL;
		_cleanup_free_ char *origin = NULL;
		_cleanup_erase_ char *body = NULL;

		r = assume_role_body(ctx, &c.hops[i], i + 1 < c.n, i == mfa_at ? code_serial : NULL, &body);
		if (r == 0) {
			r = sts_request(ctx, "AssumeRole", body, &creds, &s);
		}
		if (r < 0 && session_serial && i + 1 == c.n && (r == -EKEYEXPIRED || r == -EKEYREJECTED)) {
			mfa_session_drop(c.root.id, session_serial); /* a new code makes a new one */
		}
		if (r == 0 && i == 0) {
			log_info("sts/%s: assumed %s as %s", ctx->info->name, c.hops[0].p.role_arn, s->location);
			*ret = TAKE_PTR(s);
		} else if (r == 0) {
			sts_creds_done(&creds);
			if (asprintf(&origin, "the role credentials of profile %s", c.hops[i].profile) < 0) {
				r = -ENOMEM;
			} else {
				r = sts_creds_from_session(s, origin, &creds);
			}
		}
	}
	sts_creds_done(&creds);
	chain_done(&c);
	return r;
}

/* --- status --- */

void sts_role_status(const struct target_info *info, const struct auth_session *s, json_t *status)
{
	_cleanup_free_ char *role = sts_setting(info, "role_arn", "role_arn", NULL);
	const char *profile = sts_profile_name(info);
	json_t *sessions = json_array();
	time_t now = now_real();
	char until[21];

	if (role) {
		json_object_set_new(status, "role_arn", json_string(role));
	}
	if (s && s->location) {
		json_object_set_new(status, "assumed_role_arn", json_string(s->location));
	}
	pthread_mutex_lock(&mfa_lock);
	for (struct mfa_session *m = mfa_sessions; m && sessions; m = m->next) {
		if (strcmp(m->source, profile) == 0 && m->creds.expires_at > now) {
			json_array_append_new(sessions, json_pack("{s:s, s:s, s:I}", "mfa_serial", m->serial, "expires_at",
								  format_iso8601(m->creds.expires_at, until),
								  "seconds_left", (json_int_t)(m->creds.expires_at - now)));
		}
	}
	pthread_mutex_unlock(&mfa_lock);
	if (json_array_size(sessions) > 0) {
		json_object_set_new(status, "mfa_sessions", sessions);
	} else {
		json_decref(sessions);
	}
}
