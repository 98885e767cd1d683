/* The loratrain subcommands. Each parses its own options and returns a
 * status with the error filled in; only main() prints it and exits. */
#ifndef LT_LAUNCH_COMMANDS_H
#define LT_LAUNCH_COMMANDS_H

#include "core/status.h"

lt_status lt_cmd_generate(int argc, char **argv, lt_error *err);
lt_status lt_cmd_info(int argc, char **argv, lt_error *err);

#endif
