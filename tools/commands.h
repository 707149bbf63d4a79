/* commands.h — the subcommands of the kvserve binary. Each returns the process exit
 * status (0 ok, 1 failure, 2 usage error). */
#ifndef KS_TOOLS_COMMANDS_H
#define KS_TOOLS_COMMANDS_H

int ks_cmd_info(int argc, char **argv);
int ks_cmd_serve(int argc, char **argv);
int ks_cmd_mkmodel(int argc, char **argv);
int ks_cmd_cpu(int argc, char **argv);
int ks_cmd_logits(int argc, char **argv);
int ks_cmd_run(int argc, char **argv);
int ks_cmd_tokenize(int argc, char **argv);
int ks_cmd_render(int argc, char **argv);
int ks_cmd_cache(int argc, char **argv);
int ks_cmd_bench(int argc, char **argv);

#endif
