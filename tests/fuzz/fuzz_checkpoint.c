/*
 * fuzz_checkpoint.c - fuzz target: the model/checkpoint file
 * (csnn__checkpoint_parse: the reader behind csnn_model_load and
 * csnn_trainer_load_checkpoint, on bytes in memory), then what loading
 * does with a file that parses:
 *
 *   1. its SPEC is parsed and, when the model is small (FUZZ_MAX_PARAMS
 *      parameters, FUZZ_MAX_CLASSES classes), built;
 *   2. the tensors and class names are applied (csnn__checkpoint_apply, as
 *      csnn_model_load does);
 *   3. with optimiser state, a trainer restores everything
 *      (csnn__trainer_restore: the trainer records of trainer.c, as
 *      csnn_trainer_load_checkpoint does);
 *   4. a model that loaded and is small enough to run quickly predicts one
 *      image.
 *
 * The CRC-32 of every complete section is recomputed first: the loader
 * rejects a section whose CRC does not match, and nearly every mutation
 * would otherwise stop there.
 */
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "trainer.h"

#define FUZZ_MAX_PARAMS ((int64_t)1 << 17)
#define FUZZ_MAX_CLASSES 1024
/* predict only when every layer has at most this many elements per
 * sample and step, and T is small */
#define FUZZ_MAX_ELEMENTS ((int64_t)1 << 14)
#define FUZZ_MAX_STEPS 8

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void fix_crcs(uint8_t *p, size_t size)
{
    size_t pos = 16;
    while (size >= pos && size - pos >= 20) {
        uint64_t len = le64(p + pos + 8);
        if (len > size - pos - 20) break;
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, p + pos, (uInt)(16 + len));
        uint8_t *c = p + pos + 16 + len;
        for (int i = 0; i < 4; i++) c[i] = (uint8_t)(crc >> (8 * i));
        pos += 20 + (size_t)len;
    }
}

/* Parameters and the largest per-sample element count of a parsed spec
 * (the same walk as the model's, without building anything). */
static void spec_size(const model_spec *s, int64_t *params, int64_t *max_elems)
{
    int64_t c = s->in_c, h = s->in_h, w = s->in_w, p = 0, mx = c * h * w;
    for (int i = 0; i < s->n_layers; i++) {
        const layer_spec *l = &s->layers[i];
        switch (l->type) {
        case LAYER_CONV:
            p += (int64_t)l->out * c * l->k * l->k + (l->bias ? l->out : 0);
            h = (h + 2 * l->pad - l->k) / l->stride + 1;
            w = (w + 2 * l->pad - l->k) / l->stride + 1;
            c = l->out;
            break;
        case LAYER_LINEAR:
            p += (int64_t)l->out * c + (l->bias ? l->out : 0);
            c = l->out;
            break;
        case LAYER_BN: p += 4 * c; break;
        case LAYER_MAXPOOL:
            h = (h - l->k) / l->stride + 1;
            w = (w - l->k) / l->stride + 1;
            break;
        case LAYER_FLATTEN:
            c = c * h * w;
            h = w = 1;
            break;
        default: break;
        }
        if (c * h * w > mx) mx = c * h * w;
    }
    *params = p;
    *max_elems = mx;
}

static void run_model(csnn_model *m, const ckpt_file *f, int64_t max_elems)
{
    csnn_status st = csnn__checkpoint_apply(f, m, false);
    if (st != CSNN_OK) return;
    csnn_model_info info;
    csnn_model_info_init(&info);
    FUZZ_CHECK(csnn_model_get_info(m, &info) == CSNN_OK);
    if (csnn__checkpoint_has_optimizer(f) && info.num_params > 0) {
        csnn_trainer *t = NULL;
        FUZZ_CHECK(csnn_trainer_create(m, &t) == CSNN_OK);
        st = csnn__trainer_restore(t, f, "fuzz.ckpt");
        FUZZ_CHECK(st == CSNN_OK || st == CSNN_ERR_FORMAT || st == CSNN_ERR_SHAPE ||
                   st == CSNN_ERR_STATE);
        if (st == CSNN_OK) {
            size_t n_hist = 0;
            FUZZ_CHECK(csnn_trainer_history(t, &n_hist) == CSNN_OK);
            for (size_t e = 0; e < n_hist; e++) {
                csnn_epoch_metrics em;
                csnn_epoch_metrics_init(&em);
                FUZZ_CHECK(csnn_trainer_epoch(t, e, &em) == CSNN_OK);
                FUZZ_CHECK(em.epoch == (int32_t)e);
            }
        }
        csnn_trainer_destroy(t);
    }
    if (max_elems <= FUZZ_MAX_ELEMENTS && info.time_steps <= FUZZ_MAX_STEPS) {
        size_t in = (size_t)info.in_channels * (size_t)info.in_height * (size_t)info.in_width;
        float *img = calloc(in, sizeof(float));
        float *scores = calloc((size_t)info.num_classes, sizeof(float));
        if (!img || !scores) abort();
        for (size_t i = 0; i < in; i++) img[i] = (float)(i % 7) / 6.0f;
        int32_t label = -1;
        st = csnn_model_predict(m, img, 1, scores, (size_t)info.num_classes, &label);
        FUZZ_CHECK(st == CSNN_OK);
        FUZZ_CHECK(label >= 0 && label < info.num_classes);
        free(img);
        free(scores);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csnn_context *ctx = fuzz_context();
    uint8_t *buf = fuzz_copy(data, size, 0);
    fix_crcs(buf, size);
    ckpt_file *f = NULL;
    csnn_status st = csnn__checkpoint_parse(buf, size, "fuzz.ckpt", &f);
    free(buf); /* the parsed file keeps its own copy */
    FUZZ_CHECK(st == CSNN_OK || st == CSNN_ERR_FORMAT || st == CSNN_ERR_VERSION ||
               st == CSNN_ERR_LIMIT);
    FUZZ_CHECK((st == CSNN_OK) == (f != NULL));
    if (!f) return 0;
    const char *spec_text = csnn__checkpoint_spec(f);
    FUZZ_CHECK(spec_text != NULL);
    model_spec spec;
    st = csnn__spec_parse(spec_text, &spec);
    if (st == CSNN_OK) {
        int64_t params, max_elems;
        spec_size(&spec, &params, &max_elems);
        if (params <= FUZZ_MAX_PARAMS && spec.classes <= FUZZ_MAX_CLASSES) {
            csnn_model *m = NULL;
            st = csnn__model_build(ctx, &spec, 0, &m); /* takes the spec */
            FUZZ_CHECK(st == CSNN_OK);
            run_model(m, f, max_elems);
            csnn_model_destroy(m);
        } else {
            csnn__spec_free(&spec);
        }
    }
    csnn__checkpoint_free(f);
    return 0;
}
