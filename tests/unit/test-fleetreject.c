/* Fleet mode's record of a refused login: it matches the credentials that
 * were refused (user, password and one-time code), and nothing else. */
#include <errno.h>
#include <string.h>

#include "fleet/reject.h"
#include "tap.h"

static struct auth_ctx ctx_of(const char *user, struct secret *password, struct secret *code)
{
	return (struct auth_ctx){ .user = user, .password = password, .one_time = code };
}

int main(void)
{
	struct secret *pw, *other_pw, *code, *other_code;
	struct auth_ctx refused, probe;
	json_t *record = NULL, *again = NULL;
	char *text;

	plan(-1);
	secret_init(1 << 16);
	pw = secret_new_str("hunter2");
	other_pw = secret_new_str("hunter3");
	code = secret_new_str("123456");
	other_code = secret_new_str("654321");

	refused = ctx_of("root", pw, code);
	snprintf(refused.error, sizeof(refused.error), "https://bmc rejected the login (HTTP 401)");
	is_int(fleet_rejection_record(&refused, "node0", -EKEYREJECTED, &record), 0, "a record is made");
	text = json_dumps(record, JSON_COMPACT);
	ok(text && !strstr(text, "hunter2") && !strstr(text, "123456"), "it holds neither the password nor the code");
	free(text);

	probe = ctx_of("root", pw, code);
	is_int(fleet_rejection_check(record, &probe), -EKEYREJECTED, "the refused credentials match");
	ok(strstr(probe.error, "HTTP 401") && strstr(probe.error, "node0"), "the message says why and whose login: %s",
	   probe.error);
	probe = ctx_of("root", other_pw, code);
	is_int(fleet_rejection_check(record, &probe), 0, "another password does not");
	probe = ctx_of("admin", pw, code);
	is_int(fleet_rejection_check(record, &probe), 0, "another user does not");
	probe = ctx_of("root", pw, other_code);
	is_int(fleet_rejection_check(record, &probe), 0, "a new one-time code does not");
	probe = ctx_of("root", pw, NULL);
	is_int(fleet_rejection_check(record, &probe), 0, "no code where one was refused does not");
	probe = ctx_of("root", NULL, NULL);
	is_int(fleet_rejection_check(record, &probe), 0, "no password: not this record's business");

	/* Salted: two records of the same credentials differ. */
	is_int(fleet_rejection_record(&refused, "node0", -EKEYREJECTED, &again), 0, "a second record");
	ok(strcmp(json_string_value(json_object_get(record, "c")), json_string_value(json_object_get(again, "c"))) != 0,
	   "salted: the digests of two records differ");
	json_object_set_new(again, "c", json_string("AAAA"));
	probe = ctx_of("root", pw, code);
	is_int(fleet_rejection_check(again, &probe), 0, "a damaged digest matches nothing");
	json_object_del(record, "salt");
	is_int(fleet_rejection_check(record, &probe), 0, "nor does a record without its salt");

	json_decref(record);
	json_decref(again);
	secret_free(pw);
	secret_free(other_pw);
	secret_free(code);
	secret_free(other_code);
	return done();
}
