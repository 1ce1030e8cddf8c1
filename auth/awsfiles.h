/* The AWS shared files: ~/.aws/credentials (keys) and ~/.aws/config (settings),
 * or the files AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name. */
#pragma once

#include <stddef.h>

#include "secret.h"

struct aws_profile {
	char *access_key_id;
	struct secret *secret_access_key;
	char *region;
	char *mfa_serial;
	char *duration_seconds;
};

/* -ENOENT when neither file mentions the profile. */
int aws_profile_load(const char *profile, struct aws_profile *ret);
void aws_profile_done(struct aws_profile *p);

/* Every profile named in either file, sorted and without duplicates. */
int aws_profiles_list(char ***ret_names, size_t *ret_n);
