/* dataplane/dp_control.h - managed mode: the proxy's stream to the control plane.
 *
 * One thread keeps one PolicyDiscovery.StreamPolicies stream open (reconnecting with
 * exponential backoff and full jitter), applies each snapshot atomically through the
 * snapshot holder, ACKs it, or NACKs it with the reason and keeps the old one. Every
 * applied snapshot is persisted to --state-dir, so a restarted proxy serves its last good
 * policy even when the control plane is unreachable. The proxy never needs the control
 * plane to serve. Stream callbacks run on the gRPC thread; start/stop on the main thread.
 */
#ifndef DP_CONTROL_H
#define DP_CONTROL_H

struct dp_proxy;
struct dp_control;

/* Loads the persisted snapshot from the state dir, if any, and publishes it. Main
 * thread, before the workers start. Returns 0 (also when there is none) or -errno. */
int dp_control_load_state(struct dp_proxy *px);

/* Starts the control-plane thread. NULL on failure. */
struct dp_control *dp_control_start(struct dp_proxy *px);

/* Closes the stream, joins the thread, frees. Accepts NULL. */
void dp_control_stop(struct dp_control *ctl);

#endif
