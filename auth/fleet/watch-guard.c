/* Fleet mode: the watch's idle deadline. A paused or cut-off member keeps
 * its TCP connections (its kernel still acknowledges), so a watch on it
 * would wait for ever while the rest of the fleet moves on. When the watch
 * has been silent for WATCH_PROBE_AFTER s, its member is asked a
 * linearizable read; one that cannot answer within WATCH_PROBE_TIMEOUT_MS
 * ends the stream, and the watch resumes on the next member from its last
 * revision. */
#include <errno.h>

#include "internal.h"
#include "lib/log.h"

#define GUARD_TICK 0.25 /* seconds */

/* Sleeps a tick; false when the fleet stops. */
static bool tick(struct fleet *f)
{
	bool go_on;

	pthread_mutex_lock(&f->lock);
	go_on = fleet_pause(f, now_mono() + GUARD_TICK);
	pthread_mutex_unlock(&f->lock);
	return go_on;
}

void *fleet_watch_guard(void *userdata)
{
	struct fleet *f = userdata;

	while (tick(f)) {
		char err[256] = "";
		uint64_t gen;
		size_t ep;
		double sent = now_mono(), silent;
		bool probe;
		int r = 0;

		pthread_mutex_lock(&f->lock);
		gen = f->watch_gen;
		ep = f->watch_endpoint;
		silent = sent - f->watch_progress;
		/* A new stream is probed at once: its first answer says nothing of quorum. */
		probe = f->watch_streaming && f->watch_created && (!f->watch_confirmed || silent >= WATCH_PROBE_AFTER);
		pthread_mutex_unlock(&f->lock);
		if (probe) {
			__atomic_add_fetch(&f->probes, 1, __ATOMIC_RELAXED);
			r = etcd_probe(f->etcd, ep, WATCH_PROBE_TIMEOUT_MS, err, sizeof(err));
			if (r == 0) {
				fleet_set_down(f, false);
			}
		}
		pthread_mutex_lock(&f->lock);
		if (gen == f->watch_gen && f->watch_streaming && !f->stopping) {
			if (probe && r == 0) {
				f->watch_confirmed = true;
				if (sent > f->watch_progress) {
					f->watch_progress = f->watch_seen = sent;
				}
			} else if (r < 0 || now_mono() - f->watch_progress > WATCH_IDLE) {
				log_warning("Fleet: the watch on %s was silent for %.1f s and its member did not answer (%s); "
					    "moving to the next member", etcd_endpoint_url(f->etcd, ep),
					    now_mono() - f->watch_progress, err[0] ? err : "no reply to the watch");
				f->watch_streaming = false;
				http_cancel(&f->watch_cancel);
			}
		}
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}
