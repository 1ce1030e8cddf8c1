/* reconcile.c: sessions this node logged in that the fleet lacks. */
#pragma once

#include "fleet.h"

struct fleet;

/* s (copied) is this node's session now, and the fleet lacks it: logged in
 * alone while the store was down, or not published. ft->lock not held. */
void fleet_alone_note(struct auth_target *t, const struct auth_session *s);
/* rm token, rmdir (ft->lock held): the engine ends that session itself. */
void fleet_alone_drop(struct fleet *f, struct fleet_target *ft);
