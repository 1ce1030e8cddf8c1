/* Which targets may get a provider's default credentials (its unnamed config
 * section, or environment variables such as IDRAC_PASSWORD): those named in
 * the config, and those whose host matches the defaults' `hosts` patterns.
 * A mkdir'd name is anyone's choice; the fleet's password must not follow it. */
#include <fnmatch.h>
#include <string.h>

#include "provider.h"

bool target_defaults_allowed(const struct target_info *info)
{
	const char *hosts = target_config_get(info->defaults, "hosts");
	_cleanup_free_ char *copy = hosts ? strdup(hosts) : NULL;
	char *save = NULL;

	if (info->section) {
		return true;
	}
	for (char *p = copy ? strtok_r(copy, " \t,", &save) : NULL; p; p = strtok_r(NULL, " \t,", &save)) {
		if (fnmatch(p, info->host, FNM_CASEFOLD) == 0) {
			return true;
		}
	}
	return false;
}
