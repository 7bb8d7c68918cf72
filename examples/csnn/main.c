/*
 * main.c - csnn, the command-line tool of libcsnn: train, evaluate and run
 * convolutional spiking neural networks.
 *
 *     csnn synth --out faces
 *     csnn train --data faces --out model.csnn --epochs 20 --log train.csv
 *     csnn eval --model model.csnn --data test_faces --json
 *     csnn predict --model model.csnn face.png
 *     csnn profile --model model.csnn --data test_faces
 *     csnn bench --preset fer-csnn --mode train --batch 16
 *
 * Exit status: 0 success, 1 runtime failure, 2 usage error, 130 training
 * interrupted by Ctrl-C.
 */
#include <string.h>

#include "tool.h"

static const struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} subcommands[] = {
    {"train", cmd_train, "train a model on an image folder or a FER2013 CSV"},
    {"eval", cmd_eval, "accuracy, loss, confusion matrix and per-class figures of a model"},
    {"predict", cmd_predict, "the predicted class and per-class firing rates of images"},
    {"summary", cmd_summary, "the layer table of a preset, spec file or model"},
    {"synth", cmd_synth, "write the built-in synthetic face dataset"},
    {"profile", cmd_profile, "firing rates, operations and energy estimate per layer"},
    {"bench", cmd_bench, "speed and memory of training steps or inference"},
};

static void print_usage(FILE *f)
{
    fprintf(f, "Usage: csnn COMMAND [options]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].help);
    fprintf(f, "\n'csnn COMMAND --help' describes a command's options.\n"
               "'csnn --version' prints the versions of the tool and of libcsnn.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "csnn: a command is missing\n");
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0 && argc > 2) {
            char *help_argv[] = {argv[2], (char *)"--help", NULL};
            for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
                if (strcmp(subcommands[i].name, argv[2]) == 0)
                    return subcommands[i].fn(2, help_argv);
            fprintf(stderr, "csnn: unknown command '%s'\n", argv[2]);
            return EXIT_USAGE;
        }
        print_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("csnn %s (libcsnn %s, ABI %d)\n", CSNN_VERSION_STRING, csnn_version_string(),
               csnn_abi_version());
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(subcommands[i].name, name) == 0) return subcommands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "csnn: unknown command '%s'\n", name);
    print_usage(stderr);
    return EXIT_USAGE;
}
