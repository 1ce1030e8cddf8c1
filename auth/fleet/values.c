/* A target's keys in etcd and their values: sealed JSON (crypt.c) holding a
 * saved session, or the record of a refused login (reject.c). */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "reject.h"

/* 32 hex digits of SHA-256 over the user and the settings the provider
 * says make a different credential (STS: role, duration, MFA device). */
static int user_hash(const struct auth_target *t, const char *user, char out[33])
{
	const char *const *settings = target_provider(t)->identity_settings;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, user ?: "", strlen(user ?: ""));

	for (size_t i = 0; ok && settings && settings[i]; i++) {
		const char *v = target_setting(target_info(t), settings[i]) ?: "";
		ok = EVP_DigestUpdate(c, "\n", 1) && EVP_DigestUpdate(c, v, strlen(v));
	}
	ok = ok && EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	for (size_t i = 0; ok && i < 16; i++) {
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	}
	return ok ? 0 : -ENOMEM;
}

/* <root>t/<provider>/<host:port>@<hash of the user> */
static int target_key(struct auth_target *t, const char *user, char **ret)
{
	const struct target_info *info = target_info(t);
	char hash[33];
	int r = user_hash(t, user, hash);

	if (r < 0) {
		return r;
	}
	if (asprintf(ret, "%st/%s/%s:%u@%s", fleet_of(t)->root, target_provider(t)->name, info->host, info->port,
		     hash) < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ft's keys become key and its lock's (ft->lock held); key taken over. */
static int set_keys(struct fleet_target *ft, char *key)
{
	char *lock_key = NULL;

	if (asprintf(&lock_key, "%s/lock", key) < 0) {
		free(key);
		return -ENOMEM;
	}
	free(ft->key);
	free(ft->lock_key);
	ft->key = key;
	ft->lock_key = lock_key;
	ft->mod_rev = 0;
	return 0;
}

int fleet_target_new(struct auth_target *t, const char *user, struct fleet_target **ret)
{
	struct fleet_target *ft;
	char *key = NULL;
	int r;

	*ret = NULL;
	if (!fleet_of(t)) {
		return 0;
	}
	ft = calloc(1, sizeof(*ft));
	if (!ft) {
		return -ENOMEM;
	}
	pthread_mutex_init(&ft->lock, NULL);
	r = target_key(t, user, &key);
	if (r == 0) {
		r = set_keys(ft, key);
	}
	if (r < 0) {
		fleet_target_free(ft);
		return r;
	}
	*ret = ft;
	return 0;
}

int fleet_target_keys(struct auth_target *t, const char *user, char **ret_key, char **ret_lock_key)
{
	struct fleet_target *ft = target_fleet(t);
	char *key = NULL;
	int r = target_key(t, user, &key);

	if (r < 0) {
		return r;
	}
	pthread_mutex_lock(&ft->lock);
	if (strcmp(ft->key, key) != 0) {
		r = set_keys(ft, TAKE_PTR(key)); /* other credentials: another key */
	}
	if (r == 0) {
		*ret_key = strdup(ft->key);
		*ret_lock_key = strdup(ft->lock_key);
	}
	pthread_mutex_unlock(&ft->lock);
	free(key);
	if (r == 0 && (!*ret_key || !*ret_lock_key)) {
		free(TAKE_PTR(*ret_key));
		free(TAKE_PTR(*ret_lock_key));
		r = -ENOMEM;
	}
	return r;
}

void fleet_target_seen(struct fleet_target *ft, int64_t rev)
{
	pthread_mutex_lock(&ft->lock);
	if (rev > ft->mod_rev) {
		ft->mod_rev = rev;
	}
	pthread_mutex_unlock(&ft->lock);
}

int fleet_seal_value(struct fleet *f, const char *key, json_t *j, char **ret_b64)
{
	_cleanup_secret_ struct secret *plain = NULL;
	_cleanup_free_ unsigned char *sealed = NULL;
	size_t len = 0;
	int r;

	r = auth_json_secret(j, JSON_COMPACT, &plain);
	if (r == 0) {
		r = fleet_seal(f->keys, key, plain->data, plain->len, &sealed, &len);
	}
	if (r == 0 && !(*ret_b64 = etcd_b64(sealed, len))) {
		r = -ENOMEM;
	}
	return r;
}

int fleet_open_value(struct fleet *f, const char *key, const char *b64, json_t **ret)
{
	_cleanup_free_ unsigned char *sealed = NULL;
	_cleanup_secret_ struct secret *plain = NULL;
	size_t len;
	int r;

	r = etcd_unb64(b64, &sealed, &len);
	if (r == 0) {
		r = fleet_open(f->keys, key, sealed, len, &plain);
	}
	if (r == 0 && !(*ret = json_loadb(plain->data, plain->len, 0, NULL))) {
		r = -EBADMSG;
	}
	return r < 0 ? -EBADMSG : 0;
}

/* 0 (no expiry) stays 0. */
static time_t to_fleet_clock(struct auth_target *t, time_t local)
{
	return local ? local + etcd_clock_skew(fleet_of(t)->etcd) : 0;
}

static time_t from_fleet_clock(struct auth_target *t, time_t fleet)
{
	return fleet ? fleet - etcd_clock_skew(fleet_of(t)->etcd) : 0;
}

int fleet_seal_session(struct auth_target *t, const char *key, const struct auth_session *s, char **ret_b64)
{
	_cleanup_secret_ struct secret *saved = NULL;
	int r;

	r = target_provider(t)->session_save(target_info(t), s, &saved);
	if (r < 0) {
		return r;
	}
	/* Times on etcd's clock, which every node reads from its replies: a
	 * node whose clock is off converts them to its own. */
	return fleet_seal_value(fleet_of(t), key,
				json_pack("{s:s, s:I, s:I}", "s", saved->data, "e", (json_int_t)to_fleet_clock(t, s->expires_at),
					  "o", (json_int_t)to_fleet_clock(t, s->obtained_at)),
				ret_b64);
}

/* The session an opened value holds; -EKEYREJECTED when it is a refused
 * login's record (reject.c). */
static int session_of(struct auth_target *t, const json_t *j, struct auth_session **ret)
{
	json_t *saved = json_object_get(j, "s");
	struct auth_session *s = NULL;

	if (!json_is_string(saved)) {
		return json_object_get(j, "x") ? -EKEYREJECTED : -EBADMSG;
	}
	if (target_provider(t)->session_load(target_info(t), json_string_value(saved), json_string_length(saved), &s) < 0) {
		return -EBADMSG;
	}
	s->expires_at = from_fleet_clock(t, (time_t)json_integer_value(json_object_get(j, "e")));
	s->obtained_at = from_fleet_clock(t, (time_t)json_integer_value(json_object_get(j, "o")));
	*ret = s;
	return 0;
}

int fleet_open_session(struct auth_target *t, const char *key, const char *b64, struct auth_session **ret)
{
	json_auto_t *j = NULL;
	int r = fleet_open_value(fleet_of(t), key, b64, &j);

	if (r == 0) {
		r = session_of(t, j, ret);
	}
	return r;
}

int fleet_open_for(struct auth_target *t, struct auth_ctx *ctx, const char *key, const char *b64,
		   struct auth_session **ret)
{
	json_auto_t *j = NULL;
	int r = fleet_open_value(fleet_of(t), key, b64, &j);

	if (r == 0) {
		r = session_of(t, j, ret);
	}
	if (r == -EKEYREJECTED) {
		r = fleet_rejection_check(j, ctx) ?: -ENOENT;
	}
	return r;
}

json_t *fleet_first_kv(json_t *range_reply)
{
	return json_array_get(json_object_get(range_reply, "kvs"), 0);
}

json_t *fleet_compare(const char *key, const char *target, const char *field, int64_t value)
{
	_cleanup_free_ char *k = etcd_b64(key, strlen(key));
	char v[24];

	snprintf(v, sizeof(v), "%lld", (long long)value);
	return k ? json_pack("{s:s, s:s, s:s, s:s}", "key", k, "target", target, "result", "EQUAL", field, v) : NULL;
}
