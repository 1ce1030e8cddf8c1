/* The provider table, and lookups in it. Adding a provider is one new file
 * in auth/providers/ and one line in PROVIDERS below. */
#include <errno.h>

#include "target.h"

/* Every provider: one line each. */
#define PROVIDERS(X)  \
	X(aos)        \
	X(redfish)    \
	X(sts)        \
	X(oauth2)     \
	/* end of the list */

#define DECLARE(p) extern const struct auth_provider p##_provider;
#define ENTRY(p) &p##_provider,
PROVIDERS(DECLARE)
const struct auth_provider *const auth_providers[] = { PROVIDERS(ENTRY) };

size_t auth_provider_count(void)
{
	return ELEMENTSOF(auth_providers);
}

const char *auth_provider_name(size_t provider)
{
	return auth_providers[provider]->name;
}

int auth_provider_index(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(auth_providers); i++) {
		if (strcmp(auth_providers[i]->name, name) == 0) {
			return (int)i;
		}
	}
	return -ENOENT;
}

const struct config_range *auth_config_ranges(const char *provider)
{
	int i = auth_provider_index(provider);

	return i < 0 ? NULL : auth_providers[i]->settings;
}

const struct auth_file_info *auth_provider_files(size_t provider, size_t *ret_n)
{
	*ret_n = auth_providers[provider]->n_files;
	return auth_providers[provider]->files;
}

const struct auth_file_info *auth_provider_file(size_t provider, const char *name, unsigned *ret_index)
{
	const struct auth_provider *p = auth_providers[provider];

	for (size_t i = 0; i < p->n_files; i++) {
		if (strcmp(p->files[i].name, name) == 0) {
			*ret_index = (unsigned)i;
			return &p->files[i];
		}
	}
	return NULL;
}
