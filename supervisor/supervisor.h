/* supervisor — the OTP-style process tree of Dossier (binary dossier-supervisor):
 * starts every configured process in order behind a readiness handshake, restarts
 * the dead with backoff, and stops all of them in reverse order. */
#ifndef DOSSIER_SUPERVISOR_H
#define DOSSIER_SUPERVISOR_H

/* The whole process: parses argv ([--config PATH] [--help]), supervises until a
 * signal or ctl.stop, and returns the exit code (0 after a graceful stop, 1 on a
 * start-up failure or a hard stop by a second SIGINT). Installs its own SIGINT,
 * SIGTERM and SIGCHLD handlers (czmq's are disabled).
 *
 * Settings, section "supervisor" (environment DOSSIER_SUPERVISOR_<KEY> wins):
 * backoff_ms, backoff_max_ms, intensity, period_s as in restart_policy.h;
 * grace_ms (5000): one budget for the whole ordered stop, after which whatever is
 * left gets SIGKILL; ready_timeout_ms (10000): a child silent that long is killed
 * (and restarted by the policy), and start-up moves on to the next group.
 * Section "processes": name = count in start order; DOSSIER_PROCESSES_<NAME> wins.
 * Once every group is up (or given up on) it calls ready_signal() itself. */
int supervisor_run (int argc, char **argv);

#endif
