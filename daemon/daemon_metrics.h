#ifndef SPLITD_DAEMON_DAEMON_METRICS_H_
#define SPLITD_DAEMON_DAEMON_METRICS_H_

#include "common/metrics.h"
#include "daemon/coordinator.h"
#include "daemon/rendezvous_spaces.h"

namespace splitd::daemon {

// Adds the gauges read from the daemon's state at each scrape, so they always agree with it:
//   splitd_clusters{state}: clusters per phase, every phase listed (0 when none);
//   splitd_members{state="alive"|"lost"|"excluded"}: members of every cluster by liveness;
//   splitd_rendezvous_keys: keys held in the rendezvous spaces;
//   splitd_build_info{version}: always 1.
// `coordinator` and `spaces` must outlive every Render of `registry`.
void AddDaemonMetrics(metrics::Registry* registry, const Coordinator* coordinator,
                      const RendezvousSpaces* spaces);

}  // namespace splitd::daemon

#endif  // SPLITD_DAEMON_DAEMON_METRICS_H_
