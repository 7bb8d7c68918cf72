/* The public headers compile as strict ISO C11 (-std=c11 -pedantic -Werror). */
#include <csnn/csnn.h>
#include <csnn/csnn_backend.h>

int main(void)
{
    csnn_backend_ops ops = {0};
    ops.abi_version = CSNN_BACKEND_ABI_VERSION;
    return csnn_abi_version() == CSNN_ABI_VERSION && ops.struct_size == 0 &&
                   csnn_rng_u32(0, 0, 0) == csnn_rng_u32(0, 0, 0)
               ? 0
               : 1;
}
