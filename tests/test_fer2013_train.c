/*
 * test_fer2013_train.c - the pipeline end to end on the real FER2013 images
 * ($CSNN_SHARED_DIR/datasets/fer2013/train; skipped when absent): load the
 * image folders, take a stratified subset, train a small CSNN a few epochs
 * with the seed's recipe, and check that the loss falls and the validation
 * accuracy is above chance (1/7).
 */
#include <math.h>
#include <sys/stat.h>

#include "test_util.h"

static char root[4096];

static void test_fer2013_train(void **state)
{
    (void)state;
    csnn_context *ctx;
    CHECK_OK(csnn_context_create(NULL, &ctx));
    csnn_dataset *all, *rest, *subset, *train, *val;
    CHECK_OK(csnn_dataset_load(ctx, root, NULL, &all));
    csnn_dataset_info info;
    csnn_dataset_info_init(&info);
    CHECK_OK(csnn_dataset_get_info(all, &info));
    assert_int_equal(info.num_classes, 7);
    /* about 2,300 images, stratified, then 20 % of them for validation */
    CHECK_OK(csnn_dataset_split(all, 0.08, 1, &rest, &subset));
    CHECK_OK(csnn_dataset_split(subset, 0.2, 2, &train, &val));
    csnn_dataset_destroy(rest);
    csnn_dataset_destroy(all);

    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx,
                                         "input 1x48x48\nsteps 4\nclasses 7\n"
                                         "static: conv 16 k=3 p=1; bn\nif\nmaxpool 2\n"
                                         "conv 32 k=3 p=1\nbn\nif\nmaxpool 2\n"
                                         "conv 32 k=3 p=1\nbn\nif\nmaxpool 2\n"
                                         "flatten\ndropout 0.2\nlinear 7\nlif\n",
                                         0, &m));
    csnn_trainer *t;
    CHECK_OK(csnn_trainer_create(m, &t));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_EPOCHS, 4));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 3e-3));
    CHECK_OK(csnn_trainer_fit(t, train, val, NULL));
    size_t n;
    CHECK_OK(csnn_trainer_history(t, &n));
    assert_int_equal(n, 4);
    csnn_epoch_metrics first, last;
    csnn_epoch_metrics_init(&first);
    csnn_epoch_metrics_init(&last);
    CHECK_OK(csnn_trainer_epoch(t, 0, &first));
    CHECK_OK(csnn_trainer_epoch(t, n - 1, &last));
    double best = 0;
    for (size_t e = 0; e < n; e++) {
        csnn_epoch_metrics em;
        csnn_epoch_metrics_init(&em);
        CHECK_OK(csnn_trainer_epoch(t, e, &em));
        printf("# epoch %zu: loss %.4f acc %.3f val_loss %.4f val_acc %.3f\n", e + 1,
               em.train_loss, em.train_accuracy, em.val_loss, em.val_accuracy);
        best = fmax(best, em.val_accuracy);
    }
    if (!(last.train_loss < first.train_loss))
        fail_msg("the training loss did not fall: %g -> %g", first.train_loss, last.train_loss);
    if (!(best > 1.0 / 7.0 + 0.05))
        fail_msg("validation accuracy %g is not above chance (1/7)", best);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
    csnn_dataset_destroy(train);
    csnn_dataset_destroy(val);
    csnn_dataset_destroy(subset);
    csnn_context_destroy(ctx);
}

int main(void)
{
    const char *shared = getenv("CSNN_SHARED_DIR");
    snprintf(root, sizeof root, "%s/datasets/fer2013/train", shared ? shared : "../shared");
    struct stat sb;
    if (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("# %s is absent: skipped\n", root);
        return 77; /* meson's skip status */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fer2013_train),
    };
    return cmocka_run_group_tests_name("fer2013-train", tests, NULL, NULL);
}
