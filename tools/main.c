/* main.c — the kvserve binary: dispatches to subcommands (tools/cmd_*.c). */
#include "commands.h"

#include <stdio.h>
#include <string.h>

#define KS_VERSION "0.1.0"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"serve", ks_cmd_serve, "serve the Anthropic Messages and OpenAI Chat Completions APIs"},
    {"info", ks_cmd_info, "print a GGUF file's metadata and tensor table"},
    {"mkmodel", ks_cmd_mkmodel, "write a synthetic GGUF model (random weights, real shapes)"},
    {"tokenize", ks_cmd_tokenize, "print the token ids of a text"},
    {"run", ks_cmd_run, "generate a completion for a prompt"},
    {"logits", ks_cmd_logits, "print the top logits at every position of a token sequence"},
    {"cpu", ks_cmd_cpu, "print CPU features and the kernels chosen for them"},
    {"render", ks_cmd_render, "print the prompt a chat request renders to (Anthropic or OpenAI body)"},
    {"bench", ks_cmd_bench, "prefill and decode throughput, as shares of this machine's limits"},
    {"cache", ks_cmd_cache, "inspect, verify or clear the on-disk KV cache (no model needed)"},
};

static void usage(FILE *f) {
    fprintf(f, "kvserve %s — local LLM inference server\n\nusage: kvserve <command> [options]\n\ncommands:\n",
            KS_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n  %-10s %s\n\n'kvserve <command> --help' describes a command's options.\n",
            "help", "this list", "version", "print the version");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("kvserve %s\n", KS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kvserve: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
