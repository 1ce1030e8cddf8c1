/* What fleet mode shows: a target's "fleet" member in status, and the
 * fleet's lines in .metrics. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

void fleet_status(struct auth_target *t, json_t *status)
{
	struct fleet *f = fleet_of(t);
	struct fleet_target *ft = target_fleet(t);
	char holder[sizeof(ft->holder)];
	const char *endpoint;
	double age;
	int64_t rev;
	bool down, alone;

	if (!f) {
		return;
	}
	pthread_mutex_lock(&f->lock);
	rev = f->revision;
	age = now_mono() - f->watch_seen;
	/* A watch that is being set up again, or silent for twice its deadline
	 * (a probe still on its way is no news), is as good as the store down. */
	down = f->down || !f->watch_streaming || !f->watch_created || age > 2 * WATCH_IDLE;
	endpoint = f->watch_created ? etcd_endpoint_url(f->etcd, f->watch_endpoint) : NULL;
	pthread_mutex_unlock(&f->lock);
	pthread_mutex_lock(&ft->lock);
	memcpy(holder, ft->holder, sizeof(holder));
	alone = ft->alone != NULL;
	pthread_mutex_unlock(&ft->lock);
	json_object_set_new(status, "fleet",
			    json_pack("{s:s, s:s, s:s?, s:I, s:s?, s:f, s:I}", "state",
				      down ? (f->on_down == DOWN_LOCAL ? "down_local" : "down") : alone ? "reconciling" : "connected",
				      "node", f->node, "lock_holder", holder[0] ? holder : NULL, "revision", (json_int_t)rev,
				      "endpoint", endpoint, "progress_age", (double)(long)(age * 10) / 10, "clock_skew",
				      (json_int_t)etcd_clock_skew(f->etcd)));
}

void fleet_metrics(struct fleet *f, FILE *out)
{
	uint64_t waits, reconnects;
	double wait_s;

	if (!f) {
		return;
	}
	pthread_mutex_lock(&f->lock);
	waits = f->lock_waits;
	wait_s = f->lock_wait_seconds;
	reconnects = f->watch_reconnects;
	pthread_mutex_unlock(&f->lock);
	fprintf(out, "# HELP sessionfs_fleet_store_requests_total Requests made to the fleet store (etcd).\n"
		     "# TYPE sessionfs_fleet_store_requests_total counter\nsessionfs_fleet_store_requests_total %llu\n"
		     "# HELP sessionfs_fleet_store_errors_total Requests to the fleet store that failed.\n"
		     "# TYPE sessionfs_fleet_store_errors_total counter\nsessionfs_fleet_store_errors_total %llu\n"
		     "# HELP sessionfs_fleet_lock_waits_total Flights that waited for another node's login.\n"
		     "# TYPE sessionfs_fleet_lock_waits_total counter\nsessionfs_fleet_lock_waits_total %llu\n"
		     "# HELP sessionfs_fleet_lock_wait_seconds_total Seconds spent waiting for other nodes' logins.\n"
		     "# TYPE sessionfs_fleet_lock_wait_seconds_total counter\nsessionfs_fleet_lock_wait_seconds_total %.3f\n"
		     "# HELP sessionfs_fleet_watch_reconnects_total Times the watch on the fleet prefix was set up again.\n"
		     "# TYPE sessionfs_fleet_watch_reconnects_total counter\nsessionfs_fleet_watch_reconnects_total %llu\n"
		     "# HELP sessionfs_fleet_lease_keepalives_total Keep-alives of the node lease (part of the requests).\n"
		     "# TYPE sessionfs_fleet_lease_keepalives_total counter\nsessionfs_fleet_lease_keepalives_total %llu\n"
		     "# HELP sessionfs_fleet_watch_probes_total Reads asking the watch's member whether it is alive (part of the requests).\n"
		     "# TYPE sessionfs_fleet_watch_probes_total counter\nsessionfs_fleet_watch_probes_total %llu\n",
		(unsigned long long)etcd_requests(f->etcd), (unsigned long long)etcd_errors(f->etcd),
		(unsigned long long)waits, wait_s, (unsigned long long)reconnects,
		(unsigned long long)__atomic_load_n(&f->keepalives, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&f->probes, __ATOMIC_RELAXED));
}
