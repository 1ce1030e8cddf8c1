/* One target: its references, its facts, the context an operation gets,
 * and its error state. Called by the registry (registry.c), the single flight
 * (flight.c, server-sessions.c) and the files (files.c); calls none of them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"

#include "target.h"

static void access_free(struct target_access *a)
{
	if (a) {
		pthread_mutex_destroy(&a->lock);
		free(a);
	}
}

static void slots_free(struct target_slots *sl)
{
	if (sl) {
		auth_strv_free(sl->slot_ids, sl->n_slots);
		auth_strv_free(sl->listed, sl->n_listed);
		free(sl->slot_used);
		pthread_mutex_destroy(&sl->lock);
		free(sl);
	}
}

void target_free(struct auth_target *t)
{
	if (!t) {
		return;
	}
	auth_session_free(t->session);
	auth_session_free(t->pending);
	secret_free(t->save_text);
	secret_free(t->password);
	secret_free(t->one_time);
	free(t->user);
	slots_free(t->slots);
	fleet_target_free(t->fleet);
	free(t->last_error);
	free(t->warning);
	access_free(t->access);
	free(t->info.host);
	free(t->info.base_url);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

struct auth_target *target_ref(struct auth_target *t)
{
	__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void auth_target_unref(struct auth_target *t)
{
	if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		target_free(t);
	}
}

uint32_t auth_target_id(const struct auth_target *t)
{
	return t->id;
}

const char *auth_target_name(const struct auth_target *t)
{
	return t->name;
}

size_t auth_target_provider(const struct auth_target *t)
{
	return t->key.provider;
}

void target_notify(struct auth_target *t)
{
	if (t->core->notify) {
		t->core->notify(t->core->notify_userdata, t->id, t->gen);
	}
}

void target_set_error(struct auth_target *t, int r, const char *msg)
{
	t->last_errno = r;
	t->last_error_at = now_real();
	free(t->last_error);
	t->last_error = strndup(msg && *msg ? msg : strerror(-r), TARGET_ERROR_MAX - 1); /* NULL: none to show */
}

#define SKEW_WARN 30 /* seconds */

void target_note_skew(struct auth_target *t, struct auth_ctx *ctx, int r)
{
	time_t skew = ctx->skew, size = skew < 0 ? -skew : skew;

	if (!ctx->skew_known) {
		return;
	}
	t->skew = skew;
	t->skew_known = true;
	if (size > SKEW_WARN && !t->skew_warned) {
		t->skew_warned = true;
		log_warning("%s/%s: this machine's clock is %lld s %s the server's; lifetimes are measured on the "
			    "server's clock, but fix the clock (NTP)", t->provider->name, t->name, (long long)size,
			    skew < 0 ? "ahead of" : "behind");
	}
	if (r < 0 && size > SKEW_WARN) {
		size_t len = strlen(ctx->error);
		snprintf(ctx->error + len, sizeof(ctx->error) - len, " (this machine's clock is %lld s %s the server's)",
			 (long long)size, skew < 0 ? "ahead of" : "behind");
	}
}

void target_set_credentials(struct auth_target *t, char *user, struct secret *password)
{
	free(t->user);
	secret_free(t->password);
	t->user = user;
	t->password = password;
	t->rejected = false; /* new credentials are a new user action */
	t->failed_at = 0;
	if (t->last_errno == -ENOKEY || t->last_errno == -EKEYREJECTED || t->last_errno == -EBADMSG) {
		t->last_errno = 0;
	}
}

int ctx_init(struct auth_target *t, struct auth_ctx *ctx)
{
	*ctx = (struct auth_ctx){ .info = &t->info };
	ctx->user = t->user ? strdup(t->user) : NULL;
	ctx->password = secret_dup(t->password);
	ctx->one_time = secret_dup(t->one_time);
	if ((t->user && !ctx->user) || (t->password && !ctx->password) || (t->one_time && !ctx->one_time)) {
		ctx_done(ctx);
		return -ENOMEM;
	}
	return 0;
}

void ctx_done(struct auth_ctx *ctx)
{
	free((char *)ctx->user);
	secret_free((struct secret *)ctx->password);
	secret_free((struct secret *)ctx->one_time);
	ctx->user = NULL;
	ctx->password = ctx->one_time = NULL;
}


const struct auth_file_info *target_file(const struct auth_target *t, unsigned f)
{
	return f < t->provider->n_files ? &t->provider->files[f] : NULL;
}

bool target_renewal_due(struct auth_target *t)
{
	bool due;

	pthread_mutex_lock(&t->lock);
	due = t->expiry_due && now_real() >= t->expiry_due;
	pthread_mutex_unlock(&t->lock);
	return due;
}

const struct auth_provider *target_provider(const struct auth_target *t)
{
	return t->provider;
}

const struct target_info *target_info(const struct auth_target *t)
{
	return &t->info;
}

struct fleet *target_fleet_of(const struct auth_target *t)
{
	return t->core->fleet;
}

struct fleet_target *target_fleet(const struct auth_target *t)
{
	return t->fleet;
}
