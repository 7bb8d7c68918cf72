// The public headers compile as C++ (-std=c++11 -pedantic -Werror) and link.
#include <csnn/csnn.h>
#include <csnn/csnn_backend.h>

#include <cstdio>
#include <cstring>

int main()
{
    csnn_context_options o;
    csnn_context_options_init(&o);
    csnn_context *ctx = nullptr;
    if (csnn_context_create(&o, &ctx) != CSNN_OK) {
        std::fprintf(stderr, "%s\n", csnn_last_error_message());
        return 1;
    }
    csnn_model *m = nullptr;
    csnn_status st = csnn_model_create_preset(ctx, "fer-cnn", 0, &m);
    csnn_model_info info;
    csnn_model_info_init(&info);
    if (st == CSNN_OK) st = csnn_model_get_info(m, &info);
    // the counter-based generator is usable from C++ too
    float u = csnn_rng_uniform(1, 2, 3);
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
    if (st != CSNN_OK || info.num_params != 21532679 || !(u >= 0.0f && u < 1.0f)) return 1;
    return std::strcmp(csnn_status_name(CSNN_ERR_SPEC), "CSNN_ERR_SPEC") == 0 ? 0 : 1;
}
