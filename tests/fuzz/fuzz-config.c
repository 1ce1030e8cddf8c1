/* config_parse_string(): any text is a config or an error, and a config that
 * parsed holds what config.h promises. */
#include <errno.h>

#include "lib/config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void check_sections(const struct target_config *t, size_t n, bool named)
{
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(t[i].provider, "section %zu has no provider", i);
		FUZZ_CHECK(!t[i].name == !named, "section [%s] in the wrong list", t[i].provider);
		for (size_t k = 0; k < t[i].n_kv; k++) {
			FUZZ_CHECK(t[i].kv[k].key && t[i].kv[k].value, "[%s] line %zu incomplete", t[i].provider, k);
			FUZZ_CHECK(target_config_get(&t[i], t[i].kv[k].key), "[%s] %s not found", t[i].provider,
				   t[i].kv[k].key);
		}
	}
}

static void check_config(const struct config *c)
{
	FUZZ_CHECK(c->state_dir, "no state_dir");
	FUZZ_CHECK(c->timeout >= 1 && c->timeout <= 3600, "timeout %d", c->timeout);
	FUZZ_CHECK(c->refresh_margin >= 0 && c->refresh_margin <= 86400, "refresh_margin %d", c->refresh_margin);
	FUZZ_CHECK(c->check_interval >= 1 && c->check_interval <= 86400, "check_interval %d", c->check_interval);
	check_sections(c->targets, c->n_targets, true);
	check_sections(c->defaults, c->n_defaults, false);
	for (size_t i = 0; i < c->n_defaults; i++) {
		FUZZ_CHECK(config_find_defaults(c, c->defaults[i].provider), "[%s] defaults not found",
			   c->defaults[i].provider);
	}
	for (size_t i = 0; i < c->n_access; i++) {
		const struct access_rule *a = &c->access[i];
		FUZZ_CHECK(a->path, "access rule %zu has no path", i);
		FUZZ_CHECK(!a->has_mode || a->mode <= 07777, "access %s: mode %o", a->path, (unsigned)a->mode);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = fuzz_strndup(data, size);
	struct config *c = NULL;
	int r;

	r = config_parse_string(text, NULL, &c);
	if (r == 0) {
		FUZZ_CHECK(c, "success without a config");
		check_config(c);
	} else {
		FUZZ_CHECK(r < 0 && !c, "r=%d, config %p", r, (void *)c);
	}
	config_free(c);
	fuzz_check_secret_heap();
	return 0;
}
