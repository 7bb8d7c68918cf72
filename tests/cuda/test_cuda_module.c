/*
 * test_cuda_module.c - the CUDA backend module loads and behaves without a
 * GPU (and with one): dlopen + entry point, ABI handshake, a complete table,
 * device_count never crashes (0 devices, or an error, on a machine without a
 * GPU), open() then fails cleanly, and libcsnn reports "cuda" as unavailable
 * with a clear message. On a GPU machine it also opens every device,
 * describes it, and checks out-of-memory handling.
 *
 * Runs everywhere (no exit 77): suite 'cuda-module'.
 * Env: CSNN_CUDA_MODULE = path of the built libcsnn-cuda.so.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csnn_internal.h"

static void *module;
static csnn_backend_module_entry_fn entry;

static int setup(void **state)
{
    (void)state;
    const char *path = getenv("CSNN_CUDA_MODULE");
    if (!path || !*path) {
        print_error("CSNN_CUDA_MODULE is not set\n");
        return -1;
    }
    module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!module) {
        print_error("dlopen(%s): %s\n", path, dlerror());
        return -1;
    }
    *(void **)&entry = dlsym(module, CSNN_BACKEND_MODULE_ENTRY);
    if (!entry) {
        print_error("%s has no %s\n", path, CSNN_BACKEND_MODULE_ENTRY);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* the module is not unloaded, as libcsnn never unloads it */
    return 0;
}

static void test_abi_mismatch_refused(void **state)
{
    (void)state;
    csnn_clear_last_error();
    const csnn_backend_ops *ops = entry(CSNN_BACKEND_ABI_VERSION + 1, csnn_backend_set_error);
    assert_null(ops);
    print_message("refusal: %s\n", csnn_last_error_message());
    assert_true(strstr(csnn_last_error_message(), "ABI") != NULL);
}

static void test_table_complete(void **state)
{
    (void)state;
    const csnn_backend_ops *o = entry(CSNN_BACKEND_ABI_VERSION, csnn_backend_set_error);
    assert_non_null(o);
    assert_int_equal(o->abi_version, CSNN_BACKEND_ABI_VERSION);
    assert_int_equal(o->struct_size, sizeof(csnn_backend_ops));
    assert_string_equal(o->name, "cuda");
    /* every entry of the first table version (device_count .. host_free),
     * the optional describe/set_threads/host_alloc/host_free included, is
     * provided; entries appended later are optional (NULL: libcsnn composes
     * them from the ones above) */
    const void *const *slot = (const void *const *)&o->device_count;
    const void *const *end = (const void *const *)(&o->host_free + 1);
    int n = 0;
    for (; slot < end; slot++, n++) assert_non_null(*slot);
    assert_int_equal(n, 39);
    /* of the optional entries appended later: the fused neurons + max-pool
     * are provided; the spike-sparse conv/linear entries are left NULL on
     * purpose (on a GPU the dense cuBLAS path is the right one) */
    assert_non_null(o->neuron_pool_forward);
    assert_non_null(o->neuron_pool_backward);
    assert_null(o->conv2d_forward_sparse);
    assert_null(o->conv2d_backward_sparse);
    assert_null(o->linear_forward_sparse);
    assert_null(o->linear_weight_grad_sparse);
    /* the same table on every call */
    assert_ptr_equal(o, entry(CSNN_BACKEND_ABI_VERSION, csnn_backend_set_error));
}

static void test_device_count_graceful(void **state)
{
    (void)state;
    const csnn_backend_ops *o = entry(CSNN_BACKEND_ABI_VERSION, csnn_backend_set_error);
    assert_non_null(o);
    int count = -1;
    csnn_status st = o->device_count(&count);
    if (st != CSNN_OK) {
        print_message("device_count: %s: %s\n", csnn_status_name(st), csnn_last_error_message());
        assert_int_equal(count, 0);
        return;
    }
    print_message("device_count: %d\n", count);
    assert_true(count >= 0);
    /* twice: no sticky state from the first call */
    int again = -1;
    assert_int_equal(o->device_count(&again), CSNN_OK);
    assert_int_equal(again, count);
    void *dev = (void *)1;
    if (count == 0) {
        st = o->open(0, 1, &dev);
        assert_int_not_equal(st, CSNN_OK);
        assert_null(dev);
        print_message("open without a GPU: %s: %s\n", csnn_status_name(st),
                      csnn_last_error_message());
        return;
    }
    /* A GPU: open each device, describe it, check OOM and bad index. */
    for (int i = 0; i < count; i++) {
        assert_int_equal(o->open(i, 0, &dev), CSNN_OK);
        char buf[256];
        assert_int_equal(o->describe(dev, buf, sizeof buf), CSNN_OK);
        print_message("cuda:%d: %s\n", i, buf);
        void *p = NULL;
        st = o->alloc(dev, (size_t)1 << 50, &p); /* 1 PiB */
        assert_int_equal(st, CSNN_ERR_DEVICE_OUT_OF_MEMORY);
        assert_null(p);
        print_message("oom: %s\n", csnn_last_error_message());
        /* the device still works after the failed allocation */
        assert_int_equal(o->alloc(dev, 1000, &p), CSNN_OK);
        assert_int_equal(o->fill(dev, (float *)p, 2.5f, 250), CSNN_OK);
        float h[250];
        assert_int_equal(o->download(dev, h, p, sizeof h), CSNN_OK);
        for (int j = 0; j < 250; j++) assert_true(h[j] == 2.5f);
        void *leak = NULL; /* left allocated: close() must release it */
        assert_int_equal(o->alloc(dev, 4096, &leak), CSNN_OK);
        void *pinned = NULL;
        assert_int_equal(o->host_alloc(dev, 1 << 20, &pinned), CSNN_OK);
        o->host_free(dev, pinned);
        o->free(dev, p);
        o->close(dev);
    }
    dev = (void *)1;
    st = o->open(count, 0, &dev);
    assert_int_not_equal(st, CSNN_OK);
    assert_null(dev);
}

/* Through libcsnn: the module is found via CSNN_CUDA_MODULE; without a GPU
 * "cuda" is unavailable with a message, and "auto" falls back to the CPU. */
static void test_libcsnn_device_selection(void **state)
{
    (void)state;
    const csnn_backend_ops *o = entry(CSNN_BACKEND_ABI_VERSION, csnn_backend_set_error);
    int count = 0;
    if (o->device_count(&count) != CSNN_OK) count = 0;
    csnn_status st = csnn_device_available("cuda");
    print_message("csnn_device_available(\"cuda\"): %s: %s\n", csnn_status_name(st),
                  st == CSNN_OK ? "" : csnn_last_error_message());
    if (count == 0) {
        assert_int_equal(st, CSNN_ERR_BACKEND_UNAVAILABLE);
        assert_true(strlen(csnn_last_error_message()) > 0);
        assert_int_equal(csnn_device_available("cuda:1"), CSNN_ERR_BACKEND_UNAVAILABLE);
    } else {
        assert_int_equal(st, CSNN_OK);
        char name[32];
        snprintf(name, sizeof name, "cuda:%d", count);
        assert_int_equal(csnn_device_available(name), CSNN_ERR_BACKEND_UNAVAILABLE);
    }
    assert_int_equal(csnn_device_available("auto"), CSNN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abi_mismatch_refused),
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_device_count_graceful),
        cmocka_unit_test(test_libcsnn_device_selection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
