/* A monotonic clock in seconds, for step times, waits and benchmarks. */
#ifndef LT_CORE_CLOCK_H
#define LT_CORE_CLOCK_H

double lt_now_s(void);

#endif
