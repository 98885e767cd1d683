/* Graceful stop on SIGUSR1, SIGTERM and SIGINT, for preemption and time
 * limits (Slurm's `--signal=B:USR1@120`, scancel, a requeue, Ctrl-C).
 *
 * While the run loads (model, data, a checkpoint to resume) there is
 * nothing to save, and loading a large model can take longer than a
 * scheduler waits between its signal and SIGKILL: the handler itself ends
 * the process at once with LT_EXIT_STOPPED (rank 0 says so on stderr; a
 * launcher ends the other ranks, which exit the same way). From
 * lt_stop_defer on, the handler only records the signal; the trainer polls
 * it between optimizer steps and between evaluation batches, every rank
 * agrees on it (any rank signalled stops all of them at the same point), a
 * checkpoint is written if there are steps since the last one, and the
 * command exits with LT_EXIT_STOPPED so a job script knows to requeue and
 * resume with `--resume_from_checkpoint latest`. A second SIGINT ends the
 * process at once (the usual "press Ctrl-C again"); repeated SIGTERM or
 * SIGUSR1 does not, because Slurm and srun may each deliver one. */
#ifndef LT_LAUNCH_STOP_SIGNAL_H
#define LT_LAUNCH_STOP_SIGNAL_H

/* EX_TEMPFAIL of sysexits.h: "try again later" -- the run is not finished
 * and its latest checkpoint is complete. */
#define LT_EXIT_STOPPED 75

/* Installs the handlers (the previous ones are kept for lt_stop_restore)
 * in the loading mode: a stop signal ends the process at once. speak: this
 * process prints the line that says so (rank 0). A signal the process
 * inherited as ignored stays ignored. */
void lt_stop_install(int speak);

/* Loading is over: from now on a stop signal is only recorded, for
 * lt_stop_requested. */
void lt_stop_defer(void);

/* Puts the previous handlers back. */
void lt_stop_restore(void);

/* The first stop signal received since lt_stop_defer, or 0. */
int lt_stop_requested(void);

/* "SIGUSR1", "SIGTERM", "SIGINT" or "signal N". */
const char *lt_stop_signal_name(int sig);

#endif
