/*
 * fuzz_spec.c - fuzz target: the model-spec parser (csnn__spec_parse,
 * behind csnn_model_create_from_spec and every model file's SPEC section).
 *
 * The input is parsed as a NUL-terminated string (bytes after a NUL are
 * then ignored, as a C caller's would be). A spec that parses must have a
 * canonical text (csnn__spec_format) that parses again to the same
 * canonical text: a model saved with it loads again.
 */
#include <string.h>

#include "fuzz.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = (char *)fuzz_copy(data, size, 1);
    model_spec spec;
    csnn_status st = csnn__spec_parse(text, &spec);
    FUZZ_CHECK(st == CSNN_OK || st == CSNN_ERR_SPEC || st == CSNN_ERR_LIMIT);
    if (st == CSNN_OK) {
        FUZZ_CHECK(spec.n_layers >= 1 && spec.n_layers <= CSNN_MAX_LAYERS);
        FUZZ_CHECK(spec.classes >= 1 && spec.classes <= CSNN_MAX_CLASSES);
        FUZZ_CHECK(spec.steps >= 1 && spec.steps <= CSNN_MAX_STEPS);
        char *canon = csnn__spec_format(&spec);
        FUZZ_CHECK(canon != NULL);
        model_spec again;
        st = csnn__spec_parse(canon, &again);
        FUZZ_CHECK(st == CSNN_OK);
        FUZZ_CHECK(again.n_layers == spec.n_layers && again.classes == spec.classes);
        char *canon2 = csnn__spec_format(&again);
        FUZZ_CHECK(canon2 != NULL && strcmp(canon, canon2) == 0);
        free(canon2);
        free(canon);
        csnn__spec_free(&again);
        csnn__spec_free(&spec);
    } else {
        const char *msg = csnn_last_error_message();
        FUZZ_CHECK(msg[0] != '\0');
        if (st == CSNN_ERR_SPEC) FUZZ_CHECK(strstr(msg, "line ") != NULL);
    }
    free(text);
    return 0;
}
