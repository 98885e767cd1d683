/* The loratrain subcommands. Each parses its own options and returns a
 * status with the error filled in; only main() prints it and exits. */
#ifndef LT_LAUNCH_COMMANDS_H
#define LT_LAUNCH_COMMANDS_H

#include <stdio.h>

#include "core/status.h"
#include "dist/comm.h"

/* Runs on every rank of world (mpirun -np N, srun). */
lt_status lt_cmd_train(int argc, char **argv, lt_comm *world, lt_error *err);
lt_status lt_cmd_generate(int argc, char **argv, lt_error *err);
lt_status lt_cmd_tokenize(int argc, char **argv, lt_error *err);
lt_status lt_cmd_info(int argc, char **argv, lt_error *err);
lt_status lt_cmd_inspect(int argc, char **argv, lt_error *err);
lt_status lt_cmd_plan(int argc, char **argv, lt_error *err);
lt_status lt_cmd_convert(int argc, char **argv, lt_error *err);
lt_status lt_cmd_export(int argc, char **argv, lt_error *err);
lt_status lt_cmd_logits(int argc, char **argv, lt_error *err);
lt_status lt_cmd_merge(int argc, char **argv, lt_error *err);
lt_status lt_cmd_import(int argc, char **argv, lt_error *err);

/* Each command's --help text. */
void lt_help_train(FILE *f);
void lt_help_generate(FILE *f);
void lt_help_tokenize(FILE *f);
void lt_help_info(FILE *f);
void lt_help_inspect(FILE *f);
void lt_help_plan(FILE *f);
void lt_help_convert(FILE *f);
void lt_help_export(FILE *f);
void lt_help_logits(FILE *f);
void lt_help_merge(FILE *f);
void lt_help_import(FILE *f);

#endif
