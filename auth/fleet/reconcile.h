/* reconcile.c: sessions this node logged in that the fleet lacks. */
#pragma once

#include "fleet.h"

struct fleet;

/* s (copied) is this node's session now, and the fleet lacks it: logged in
 * alone while the store was down, or not published. ft->lock not held. */
void fleet_alone_note(struct auth_target *t, const struct auth_session *s);
/* rm token, rmdir (ft->lock held): set aside while the engine ends the
 * session, which it does unless etcd cannot be told; then the session is
 * kept (unpark: to reconcile again) or gone (the parked copy is freed). */
void fleet_alone_park(struct fleet_target *ft);
void fleet_alone_unpark(struct fleet *f, struct fleet_target *ft);
