/* cmd_profile.c - csnn profile: the efficiency report of csnn_model_profile
 * (firing rates, MACs and accumulates per layer, the ANN twin's MACs and
 * the energy estimate) for a saved model, or a preset or spec with random
 * weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#define CONVENTIONS                                                                                \
    "Conventions: figures are per image. A conv or linear layer whose input is\n"                  \
    "spikes performs one accumulate (AC) per input spike and target it reaches,\n"                 \
    "summed over the T steps; one whose input is not spikes (the first layer, fed\n"               \
    "the image) performs dense multiply-accumulates (MAC), counted once for the\n"                 \
    "static block and T times otherwise. The ANN twin is the same layers, dense,\n"                \
    "one time step. Neuron updates, batch norm, pooling and memory traffic are not\n"              \
    "counted. Energy = MACs x mac_pj + ACs x ac_pj (45 nm float32 figures by\n"                    \
    "default: MAC 4.6 pJ, AC 0.9 pJ). rate: spikes per neuron per time step (neuron\n"             \
    "layers), or the density of the input spikes (AC layers)."

static const char *op_name(int32_t counted_as)
{
    return counted_as == CSNN_OPS_MAC ? "MAC" : counted_as == CSNN_OPS_AC ? "AC" : NULL;
}

/* "123", "12.3k", "4.56M", "7.89G" */
static void fmt_count(char *buf, size_t cap, double v)
{
    static const char *const suffix[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (fabs(v) >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    if (i == 0)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.3g%s", v, suffix[i]);
}

/* pJ as "12.3 nJ", "4.56 uJ", ... */
static void fmt_energy(char *buf, size_t cap, double pj)
{
    static const char *const unit[] = {"pJ", "nJ", "uJ", "mJ", "J"};
    int i = 0;
    while (fabs(pj) >= 1000 && i < 4) {
        pj /= 1000;
        i++;
    }
    snprintf(buf, cap, "%.3g %s", pj, unit[i]);
}

static void print_row(const csnn_layer_profile *p, bool total)
{
    char rate[16] = "-", macs[16] = "-", acs[16] = "-", ann[16] = "-", e[24] = "-", ae[24] = "-";
    if (p->firing_rate >= 0) snprintf(rate, sizeof rate, "%.4f", p->firing_rate);
    bool counted = total || p->counted_as != CSNN_OPS_NONE;
    if (counted) {
        fmt_count(macs, sizeof macs, p->macs);
        fmt_count(acs, sizeof acs, p->acs);
        fmt_count(ann, sizeof ann, p->ann_macs);
        fmt_energy(e, sizeof e, p->energy_pj);
        fmt_energy(ae, sizeof ae, p->ann_energy_pj);
    }
    const char *as = op_name(p->counted_as);
    printf("%-12s %-8s %-7s %8s %9s %9s %9s %11s %11s\n", p->name, p->kind,
           as ? as : "-", rate, macs, acs, ann, e, ae);
}

static void json_layer(const csnn_layer_profile *p)
{
    printf("{\"name\": ");
    json_string(stdout, p->name);
    printf(", \"kind\": ");
    json_string(stdout, p->kind);
    printf(", \"counted_as\": ");
    const char *as = op_name(p->counted_as);
    if (as)
        json_string(stdout, as);
    else
        printf("null");
    printf(", \"firing_rate\": ");
    json_number(stdout, p->firing_rate >= 0 ? p->firing_rate : NAN);
    printf(", \"macs\": ");
    json_number(stdout, p->macs);
    printf(", \"acs\": ");
    json_number(stdout, p->acs);
    printf(", \"ann_macs\": ");
    json_number(stdout, p->ann_macs);
    printf(", \"energy_pj\": ");
    json_number(stdout, p->energy_pj);
    printf(", \"ann_energy_pj\": ");
    json_number(stdout, p->ann_energy_pj);
    printf("}");
}

/* An in-memory set of synthetic faces at the model's input size. */
static int synth_dataset(const char *cmd, csnn_context *ctx, const csnn_model *model,
                         long long per_class, uint64_t seed, csnn_dataset **out)
{
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    csnn_status st = csnn_model_get_info(model, &mi);
    if (st != CSNN_OK) return lib_error(cmd, st, "model");
    if (mi.in_channels != 1)
        return runtime_error(cmd, "synthetic faces are one channel; the model takes %d (use --data)",
                             mi.in_channels);
    csnn_synth_options so;
    csnn_synth_options_init(&so);
    so.per_class = per_class;
    so.seed = seed;
    so.height = mi.in_height;
    so.width = mi.in_width;
    size_t n = 7 * (size_t)per_class, per = (size_t)mi.in_height * (size_t)mi.in_width;
    uint8_t *px = malloc(n * per);
    int32_t *lb = malloc(n * sizeof *lb);
    const char *names[7];
    for (int32_t c = 0; c < 7; c++)
        names[c] = csnn_synth_class_name(c);
    /* a model with other than 7 classes: labels folded onto its classes */
    size_t k = (size_t)mi.num_classes;
    if (!px || !lb) {
        free(px);
        free(lb);
        return runtime_error(cmd, "out of memory");
    }
    st = csnn_synth_generate(&so, px, n * per, lb, n);
    if (st == CSNN_OK && k != 7)
        for (size_t i = 0; i < n; i++)
            lb[i] %= (int32_t)k;
    if (st == CSNN_OK)
        st = csnn_dataset_create_from_arrays(ctx, px, lb, n, mi.in_height, mi.in_width,
                                             k == 7 ? names : NULL, k, out);
    free(px);
    free(lb);
    if (st != CSNN_OK) return lib_error(cmd, st, "synthetic faces");
    return EXIT_OK;
}

int cmd_profile(int argc, char **argv)
{
    const char *model_path = NULL, *preset = NULL, *spec = NULL, *data = NULL, *usage = NULL;
    const char *device = NULL;
    long long max_samples = 0, threads = 0, time_steps = 0, synth_per_class = 20;
    double mac_pj = 4.6, ac_pj = 0.9;
    uint64_t seed = 0;
    bool json = false, skip_bad = false;
    opt opts[] = {
        OPT_S("model", &model_path, "MODEL", "a saved model"),
        OPT_S("preset", &preset, "NAME", "a built-in model with random weights (--seed)"),
        OPT_S("spec", &spec, "FILE", "a model spec file, random weights (--seed)"),
        OPT_S("data", &data, "PATH",
              "an image-folder root or a FER2013 CSV (required with --model; default with "
              "--preset or --spec: synthetic faces generated in memory)"),
        OPT_S("usage", &usage, "NAME",
              "FER2013 CSV only: rows whose Usage is NAME (e.g. PrivateTest)"),
        OPT_F("skip-bad", &skip_bad, "skip unreadable images or rows (and count them)"),
        OPT_I_IN("max-samples", &max_samples, "N", "profile the first N samples only (default all)",
                 1, 1e15),
        OPT_D_IN("mac-pj", &mac_pj, "X", "energy of a multiply-accumulate in pJ (default 4.6)", 0,
                 1e9),
        OPT_D_IN("ac-pj", &ac_pj, "X", "energy of an accumulate in pJ (default 0.9)", 0, 1e9),
        OPT_I_IN("time-steps", &time_steps, "T", "override the spec's steps (not with --model)", 1,
                 1e6),
        OPT_U("seed", &seed, "N", "random weights and synthetic faces (default 0)"),
        OPT_I_IN("synth-per-class", &synth_per_class, "N",
                 "synthetic faces per class without --data (default 20)", 1, 1e6),
        OPT_F("json", &json, "one JSON object on stdout"),
        OPT_I_IN("threads", &threads, "N", "host threads (default: CSNN_NUM_THREADS or all cores)",
                 0, 65536),
        OPT_S("device", &device, "DEV", "cpu (default), cuda, cuda:N or auto"),
    };
    command cmd = {
        .name = "profile",
        .synopsis = "(--model MODEL --data PATH | --preset NAME | --spec FILE) [--json]\n"
                    "       [--max-samples N] [--mac-pj X] [--ac-pj X]",
        .about = "The efficiency report of a model on a dataset: per layer, the firing rate, the\n"
                 "multiply-accumulates (MACs) and spike-driven accumulates (ACs) per image, the\n"
                 "ANN twin's MACs, and the energy estimate of both; then the totals and the\n"
                 "SNN/ANN energy ratio.",
        .notes = CONVENTIONS "\n\n"
                 "--json prints {model, data, samples, mac_pj, ac_pj, layers: [{name, kind,\n"
                 "counted_as (\"MAC\", \"AC\" or null), firing_rate (null: not a neuron or\n"
                 "spike-fed layer), macs, acs, ann_macs, energy_pj, ann_energy_pj}], total: {...},\n"
                 "energy_ratio, conventions}.",
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0],
    };
    int rc = args_parse(&cmd, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if ((rc = args_exclusive(&cmd, true, (const char *const[]){"model", "preset", "spec", NULL})) !=
        ARGS_CONTINUE)
        return rc;
    if (model_path && !data) return usage_error(&cmd, "--data is required with --model");
    if (model_path && time_steps)
        return usage_error(&cmd, "--time-steps applies to --preset and --spec only");
    if (data && args_seen(&cmd, "synth-per-class"))
        return usage_error(&cmd, "--synth-per-class applies without --data only");

    csnn_context *ctx = NULL;
    csnn_model *model = NULL;
    csnn_dataset *ds = NULL;
    csnn_profile *prof = NULL;
    csnn_status st;
    if ((rc = tool_context(cmd.name, device, threads, &ctx)) != EXIT_OK) goto done;
    if ((rc = tool_model(cmd.name, ctx, preset, spec, model_path, time_steps, seed, &model)) !=
        EXIT_OK)
        goto done;
    if (data)
        rc = tool_load_dataset(cmd.name, ctx, model, data, skip_bad, usage, &ds);
    else
        rc = synth_dataset(cmd.name, ctx, model, synth_per_class, seed, &ds);
    if (rc != EXIT_OK) goto done;
    csnn_profile_options po;
    csnn_profile_options_init(&po);
    po.mac_pj = mac_pj;
    po.ac_pj = ac_pj;
    po.max_samples = max_samples;
    const char *what = model_path ? model_path : preset ? preset : spec;
    if ((st = csnn_model_profile(model, ds, &po, &prof)) != CSNN_OK) {
        rc = lib_error(cmd.name, st, "profile of '%s'", what);
        goto done;
    }
    int32_t n = 0;
    int64_t samples = 0;
    csnn_layer_profile total;
    csnn_layer_profile_init(&total);
    if ((st = csnn_profile_num_layers(prof, &n)) != CSNN_OK ||
        (st = csnn_profile_info(prof, &samples, &mac_pj, &ac_pj)) != CSNN_OK ||
        (st = csnn_profile_layer(prof, -1, &total)) != CSNN_OK) {
        rc = lib_error(cmd.name, st, "profile");
        goto done;
    }
    const double ratio =
        total.ann_energy_pj > 0 ? total.energy_pj / total.ann_energy_pj : NAN;
    char data_desc[64];
    if (!data)
        snprintf(data_desc, sizeof data_desc, "synthetic faces (%lld per class, seed %llu)",
                 synth_per_class, (unsigned long long)seed);

    if (json) {
        printf("{\"model\": ");
        json_string(stdout, what);
        printf(", \"data\": ");
        json_string(stdout, data ? data : data_desc);
        printf(", \"samples\": %lld, \"mac_pj\": ", (long long)samples);
        json_number(stdout, mac_pj);
        printf(", \"ac_pj\": ");
        json_number(stdout, ac_pj);
        printf(", \"layers\": [");
    } else {
        printf("model:   %s%s\n", what, model_path ? "" : " (random weights)");
        printf("data:    %s, %lld samples profiled\n", data ? data : data_desc,
               (long long)samples);
        printf("energy:  MAC %g pJ, AC %g pJ\n\n", mac_pj, ac_pj);
        printf("%-12s %-8s %-7s %8s %9s %9s %9s %11s %11s\n", "layer", "kind", "counted", "rate",
               "MACs", "ACs", "ANN MACs", "energy", "ANN energy");
    }
    for (int32_t i = 0; i < n; i++) {
        csnn_layer_profile lp;
        csnn_layer_profile_init(&lp);
        if ((st = csnn_profile_layer(prof, i, &lp)) != CSNN_OK) {
            rc = lib_error(cmd.name, st, "profile layer %d", i);
            goto done;
        }
        if (json) {
            if (i) printf(", ");
            json_layer(&lp);
        } else {
            print_row(&lp, false);
        }
    }
    if (json) {
        printf("], \"total\": ");
        json_layer(&total);
        printf(", \"energy_ratio\": ");
        json_number(stdout, ratio);
        printf(", \"conventions\": ");
        json_string(stdout, CONVENTIONS);
        printf("}\n");
    } else {
        print_row(&total, true);
        char e[24], ae[24];
        fmt_energy(e, sizeof e, total.energy_pj);
        fmt_energy(ae, sizeof ae, total.ann_energy_pj);
        printf("\nenergy per image: SNN %s, ANN twin %s; SNN/ANN ratio %.4f", e, ae, ratio);
        if (ratio > 0 && isfinite(ratio)) printf(" (%.2fx less)", 1.0 / ratio);
        printf("\n\n%s\n", CONVENTIONS);
    }

done:
    fflush(stdout);
    csnn_profile_destroy(prof);
    csnn_dataset_destroy(ds);
    csnn_model_destroy(model);
    csnn_context_destroy(ctx);
    return rc;
}
