#include "launch/stop_signal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_signal;
static volatile sig_atomic_t g_deferred; /* 0: loading, a signal ends the process */
static int g_speak;
static const int k_signals[] = {SIGUSR1, SIGTERM, SIGINT};
#define NSIG_HANDLED (int)(sizeof k_signals / sizeof k_signals[0])
static struct sigaction g_old[NSIG_HANDLED];
static int g_installed;

static void say(const char *msg, size_t n) {
    ssize_t w = write(STDERR_FILENO, msg, n);
    (void)w;
}

static void on_signal(int sig) {
    if (!g_deferred) {
        /* Only async-signal-safe calls here: write and _exit. */
        if (g_speak) {
            static const char head[] = "loratrain: stopped by ";
            static const char tail[] = " while loading: nothing to save yet (exit status 75)\n";
            const char *name = sig == SIGUSR1 ? "SIGUSR1" : sig == SIGTERM ? "SIGTERM" : "SIGINT";
            say(head, sizeof head - 1);
            say(name, strlen(name));
            say(tail, sizeof tail - 1);
        }
        _exit(LT_EXIT_STOPPED);
    }
    if (sig == SIGINT && g_signal) {
        /* Asked twice: the user wants out now. */
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
        return;
    }
    if (!g_signal) g_signal = sig;
    if (sig == SIGINT) {
        static const char msg[] = "\nloratrain: stopping after this step with a checkpoint "
                                  "(Ctrl-C again to quit at once)\n";
        say(msg, sizeof msg - 1);
    }
}

void lt_stop_install(int speak) {
    if (g_installed) return;
    g_signal = 0;
    g_deferred = 0;
    g_speak = speak;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* Interrupted reads and writes resume: the step in progress finishes. */
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < NSIG_HANDLED; i++) {
        sigaction(k_signals[i], NULL, &g_old[i]);
        /* An ignored signal stays ignored: a shell's background job or
         * nohup asked not to be interrupted by it. */
        if (g_old[i].sa_handler != SIG_IGN) sigaction(k_signals[i], &sa, NULL);
    }
    g_installed = 1;
}

void lt_stop_defer(void) { g_deferred = 1; }

void lt_stop_restore(void) {
    if (!g_installed) return;
    for (int i = 0; i < NSIG_HANDLED; i++) sigaction(k_signals[i], &g_old[i], NULL);
    g_installed = 0;
}

int lt_stop_requested(void) { return g_signal; }

const char *lt_stop_signal_name(int sig) {
    static char buf[32];
    switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: snprintf(buf, sizeof buf, "signal %d", sig); return buf;
    }
}
