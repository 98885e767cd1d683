/* Graceful stop on SIGUSR1, SIGTERM and SIGINT, for preemption and time
 * limits (Slurm's `--signal=B:USR1@120`, scancel, a requeue, Ctrl-C).
 *
 * The handler only records the signal; the training loop polls it between
 * optimizer steps, every rank agrees on it (any rank signalled stops all of
 * them at the same step), a checkpoint is written, and the command exits
 * with LT_EXIT_STOPPED so a job script knows to requeue and resume with
 * `--resume_from_checkpoint latest`. A second SIGINT ends the process at
 * once (the usual "press Ctrl-C again"); repeated SIGTERM or SIGUSR1 does
 * not, because Slurm and srun may each deliver one. */
#ifndef LT_LAUNCH_STOP_SIGNAL_H
#define LT_LAUNCH_STOP_SIGNAL_H

/* EX_TEMPFAIL of sysexits.h: "try again later" -- the run is not finished
 * and its latest checkpoint is complete. */
#define LT_EXIT_STOPPED 75

/* Installs the handlers (the previous ones are kept for lt_stop_restore);
 * a signal the process inherited as ignored stays ignored. */
void lt_stop_install(void);

/* Puts the previous handlers back. */
void lt_stop_restore(void);

/* The first stop signal received since lt_stop_install, or 0. */
int lt_stop_requested(void);

/* "SIGUSR1", "SIGTERM", "SIGINT" or "signal N". */
const char *lt_stop_signal_name(int sig);

#endif
