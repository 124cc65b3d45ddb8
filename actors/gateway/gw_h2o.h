/* gw_h2o — the one way the gateway includes h2o. Debian's libh2o-evloop is built
 * for h2o's own event loop, but its pkg-config flags do not say so, and h2o.h
 * otherwise assumes libuv and lays out h2o_loop_t for it. */
#ifndef DOSSIER_GW_H2O_H
#define DOSSIER_GW_H2O_H

#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <h2o.h>

#endif
