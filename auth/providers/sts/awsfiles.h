/* The AWS shared files: ~/.aws/credentials (keys) and ~/.aws/config (settings),
 * or the files AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "providers/provider.h"

/* As libinih's handler: nonzero to go on. */
typedef int (*aws_ini_handler)(void *userdata, const char *section, const char *key, const char *value);
/* INI as botocore reads it: no limit on line length (session tokens are
 * long), key = value or key: value, # and ; comment lines, indented lines
 * continuing the last key (handed over as more values of it). -EINVAL when
 * a line is malformed (the others are still handed over) or the handler
 * stopped. */
int aws_ini_parse_string(const char *text, aws_ini_handler handler, void *userdata);
/* The same for a file (at most 1 MiB); -errno when it cannot be read. */
int aws_ini_parse_file(const char *path, aws_ini_handler handler, void *userdata);

struct aws_profile {
	char *access_key_id;
	struct secret *secret_access_key;
	struct secret *session_token;  /* aws_session_token: the keys are temporary */
	char *region;
	char *mfa_serial;
	char *duration_seconds;
	/* AssumeRole profiles */
	char *role_arn;
	char *source_profile;
	char *credential_source;       /* Environment, Ec2InstanceMetadata, EcsContainer */
	char *external_id;
	char *role_session_name;
	char *source_identity;
	char *tags;                    /* sessionfs: "Key=Value,Key=Value" session tags */
	/* where STS is */
	char *endpoint_url;
	char *services;                /* the [services NAME] section it uses */
	/* sources the daemon does not run */
	bool credential_process;
	bool sso;                      /* sso_session, sso_start_url, sso_account_id, ... */
};

/* -ENOENT when neither file mentions the profile. */
int aws_profile_load(const char *profile, struct aws_profile *ret);
void aws_profile_done(struct aws_profile *p);
/* A string setting of p by its name in the files ("region", "role_arn", ...),
 * NULL when unset or not a string setting. */
const char *aws_profile_string(const struct aws_profile *p, const char *key);
char **aws_profile_field(struct aws_profile *p, const char *key);

/* The endpoint_url of service (e.g. "sts") in the config file's
 * [services name] section: -ENOENT when there is none. */
int aws_services_endpoint(const char *name, const char *service, char **ret);

/* Every profile named in either file, sorted and without duplicates. */
int aws_profiles_list(char ***ret_names, size_t *ret_n);
