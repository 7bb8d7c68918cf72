// raii.cpp - libcsnn from C++17 through small RAII wrappers of its own.
//
//     raii [MODEL_OUT [IMAGE_DIR]]
//
// libcsnn has a C API only; this file shows how a C++ program wraps it:
// handles in std::unique_ptr with the matching _destroy as deleter, statuses
// turned into exceptions carrying csnn_status_name() and the library's
// message, and a std::function progress callback whose exceptions are
// caught before they reach C and rethrown after csnn_trainer_fit returns.
//
// The program trains a small spiking network on the built-in synthetic
// faces (16x16, 7 classes) for a few epochs (chance is 1/7; it reaches
// about 0.4 in a few seconds), evaluates it, saves it to
// MODEL_OUT (default raii.csnn), loads it back and checks that the copy
// predicts the same. With IMAGE_DIR it also writes a few synthetic images
// there as files (IMAGE_DIR/<class>/NNNNN.png|jpg), e.g. for
// `classify MODEL_OUT IMAGE_DIR/*/*`. CSNN_DEVICE selects the device
// (default cpu).
//
// Build against an installed libcsnn:
//     c++ -std=c++17 raii.cpp $(pkg-config --cflags --libs csnn) -o raii
// or with CMake: find_package(csnn) and target_link_libraries(raii csnn::csnn).
#include <csnn/csnn.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace csnnxx {

// ---------------------------------------------------------------- errors

// A failed libcsnn call: the status, its name and the library's message.
class Error : public std::runtime_error {
public:
    Error(csnn_status status, const std::string &what)
        : std::runtime_error(what + ": " + csnn_status_name(status) + ": " +
                             csnn_last_error_message()),
          status_(status) {}
    csnn_status status() const noexcept { return status_; }
    const char *name() const noexcept { return csnn_status_name(status_); }

private:
    csnn_status status_;
};

// Throws on negative statuses; returns the others (CSNN_OK, CSNN_STOPPED).
inline csnn_status check(csnn_status st, const char *what) {
    if (st < 0) throw Error(st, what);
    return st;
}

// ---------------------------------------------------------------- handles

template <typename T, void (*Destroy)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Destroy(p); }
};
template <typename T, void (*Destroy)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Destroy>>;

// A device and thread budget; must outlive everything made from it (declare
// it first, so that it is destroyed last).
class Context {
public:
    explicit Context(const std::string &device = "cpu") {
        csnn_context_options o;
        csnn_context_options_init(&o);
        o.device = device.c_str();
        csnn_context *raw = nullptr;
        check(csnn_context_create(&o, &raw), "context");
        h_.reset(raw);
    }
    csnn_context *get() const noexcept { return h_.get(); }
    std::string device() const { return csnn_context_device(h_.get()); }

private:
    Handle<csnn_context, csnn_context_destroy> h_;
};

class Dataset {
public:
    static Dataset from_arrays(Context &ctx, const std::vector<uint8_t> &pixels,
                               const std::vector<int32_t> &labels, int32_t height, int32_t width,
                               const std::vector<std::string> &classes) {
        std::vector<const char *> names;
        for (const auto &c : classes) names.push_back(c.c_str());
        csnn_dataset *raw = nullptr;
        if (pixels.size() != labels.size() * static_cast<size_t>(height) * width)
            throw std::invalid_argument("Dataset::from_arrays: pixel count");
        check(csnn_dataset_create_from_arrays(ctx.get(), pixels.data(), labels.data(),
                                              labels.size(), height, width, names.data(),
                                              names.size(), &raw),
              "dataset");
        return Dataset(raw);
    }

    // (rest, part): part gets round(fraction * count) samples of each class.
    std::pair<Dataset, Dataset> split(double fraction, uint64_t seed) const {
        csnn_dataset *rest = nullptr, *part = nullptr;
        check(csnn_dataset_split(h_.get(), fraction, seed, &rest, &part), "split");
        return {Dataset(rest), Dataset(part)};
    }

    int64_t size() const {
        csnn_dataset_info i;
        csnn_dataset_info_init(&i);
        check(csnn_dataset_get_info(h_.get(), &i), "dataset info");
        return i.num_samples;
    }

    // pixels of sample `index` as floats in [0, 1], and its label
    std::vector<float> sample(int64_t index, int32_t *label) const {
        csnn_dataset_info i;
        csnn_dataset_info_init(&i);
        check(csnn_dataset_get_info(h_.get(), &i), "dataset info");
        std::vector<uint8_t> px(static_cast<size_t>(i.height) * i.width);
        check(csnn_dataset_get_sample(h_.get(), index, px.data(), px.size(), label), "sample");
        std::vector<float> out(px.size());
        for (size_t p = 0; p < px.size(); p++) out[p] = px[p] / 255.0f;
        return out;
    }

    const csnn_dataset *get() const noexcept { return h_.get(); }

private:
    explicit Dataset(csnn_dataset *raw) : h_(raw) {}
    Handle<csnn_dataset, csnn_dataset_destroy> h_;
};

// Evaluation results (a moved-out copy of csnn_metrics).
struct Metrics {
    double loss = 0, accuracy = 0;
    int64_t samples = 0;
};

class Model {
public:
    static Model from_spec(Context &ctx, const std::string &spec, uint64_t seed = 0) {
        csnn_model *raw = nullptr;
        check(csnn_model_create_from_spec(ctx.get(), spec.c_str(), seed, &raw), "model spec");
        return Model(raw);
    }
    static Model preset(Context &ctx, const std::string &name, uint64_t seed = 0) {
        csnn_model *raw = nullptr;
        check(csnn_model_create_preset(ctx.get(), name.c_str(), seed, &raw),
              ("preset " + name).c_str());
        return Model(raw);
    }
    static Model load(Context &ctx, const std::string &path) {
        csnn_model *raw = nullptr;
        check(csnn_model_load(ctx.get(), path.c_str(), &raw), ("load " + path).c_str());
        return Model(raw);
    }

    void save(const std::string &path) {
        check(csnn_model_save(h_.get(), path.c_str()), ("save " + path).c_str());
    }

    csnn_model_info info() const {
        csnn_model_info i;
        csnn_model_info_init(&i);
        check(csnn_model_get_info(h_.get(), &i), "model info");
        return i;
    }

    std::string class_name(int32_t index) const {
        const char *name = nullptr;
        check(csnn_model_class_name(h_.get(), index, &name), "class name");
        return name;
    }

    // outputs [n, classes] of n images (float [n, C, H, W] in [0, 1]);
    // labels (optional) receives the predicted classes
    std::vector<float> predict(const std::vector<float> &images,
                               std::vector<int32_t> *labels = nullptr) {
        const csnn_model_info i = info();
        const size_t per = static_cast<size_t>(i.in_channels) * i.in_height * i.in_width;
        const size_t n = images.size() / per;
        std::vector<float> scores(n * static_cast<size_t>(i.num_classes));
        if (labels) labels->resize(n);
        check(csnn_model_predict(h_.get(), images.data(), n, scores.data(), scores.size(),
                                 labels ? labels->data() : nullptr),
              "predict");
        return scores;
    }

    Metrics evaluate(const Dataset &ds) {
        csnn_metrics *raw = nullptr;
        check(csnn_model_evaluate(h_.get(), ds.get(), &raw), "evaluate");
        Handle<csnn_metrics, csnn_metrics_destroy> m(raw);
        Metrics out;
        check(csnn_metrics_overall(m.get(), &out.loss, &out.accuracy, &out.samples, nullptr),
              "metrics");
        return out;
    }

    csnn_model *get() const noexcept { return h_.get(); }

private:
    explicit Model(csnn_model *raw) : h_(raw) {}
    Handle<csnn_model, csnn_model_destroy> h_;
};

// Optimiser state bound to a model, which must outlive the trainer.
class Trainer {
public:
    using Callback = std::function<bool(const csnn_progress &)>; // true: stop

    explicit Trainer(Model &model) {
        csnn_trainer *raw = nullptr;
        check(csnn_trainer_create(model.get(), &raw), "trainer");
        h_.reset(raw);
    }

    Trainer &set(csnn_train_param p, double value) {
        check(csnn_trainer_set_param(h_.get(), p, value), "trainer setting");
        return *this;
    }

    // Returns true when the callback stopped training. An exception thrown
    // by the callback stops training and is rethrown here.
    bool fit(const Dataset &train, const Dataset *val, Callback cb = nullptr,
             const char *output = nullptr) {
        struct State {
            Callback *cb;
            std::exception_ptr error;
        } state{&cb, nullptr};
        csnn_fit_options o;
        csnn_fit_options_init(&o);
        o.output = output;
        if (cb) {
            o.progress = [](void *user, const csnn_progress *p) -> int {
                auto *s = static_cast<State *>(user);
                try {
                    return (*s->cb)(*p) ? 1 : 0;
                } catch (...) { // never unwind through C
                    s->error = std::current_exception();
                    return 1;
                }
            };
            o.progress_user_data = &state;
        }
        const csnn_status st =
            csnn_trainer_fit(h_.get(), train.get(), val ? val->get() : nullptr, &o);
        if (state.error) std::rethrow_exception(state.error);
        return check(st, "fit") == CSNN_STOPPED;
    }

    std::vector<csnn_epoch_metrics> history() const {
        size_t n = 0;
        check(csnn_trainer_history(h_.get(), &n), "history");
        std::vector<csnn_epoch_metrics> out(n);
        for (size_t i = 0; i < n; i++) {
            csnn_epoch_metrics_init(&out[i]);
            check(csnn_trainer_epoch(h_.get(), i, &out[i]), "epoch");
        }
        return out;
    }

private:
    Handle<csnn_trainer, csnn_trainer_destroy> h_;
};

// The built-in synthetic faces in memory.
struct Synth {
    std::vector<uint8_t> pixels;
    std::vector<int32_t> labels;
    static const std::vector<std::string> &classes() {
        static const std::vector<std::string> names = {"angry",   "disgust", "fear",    "happy",
                                                       "neutral", "sad",     "surprise"};
        return names;
    }
};

inline Synth synth_generate(int64_t per_class, int32_t height, int32_t width, uint64_t seed) {
    csnn_synth_options o;
    csnn_synth_options_init(&o);
    o.per_class = per_class;
    o.height = height;
    o.width = width;
    o.seed = seed;
    Synth s;
    const size_t n = static_cast<size_t>(7 * per_class);
    s.pixels.resize(n * static_cast<size_t>(height) * width);
    s.labels.resize(n);
    check(csnn_synth_generate(&o, s.pixels.data(), s.pixels.size(), s.labels.data(), n),
          "synthetic data");
    return s;
}

} // namespace csnnxx

namespace {

const char *const kSpec = "input 1x16x16\n"
                          "steps 4\n"
                          "classes 7\n"
                          "static: conv 8 k=3 p=1; bn\n"
                          "if\n"
                          "maxpool 2\n"
                          "conv 16 k=3 p=1\n"
                          "bn\n"
                          "if\n"
                          "maxpool 2\n"
                          "flatten\n"
                          "linear 7\n"
                          "lif\n";

int run(int argc, char **argv) {
    const std::string out = argc > 1 ? argv[1] : "raii.csnn";
    const char *env_device = std::getenv("CSNN_DEVICE");
    using namespace csnnxx;

    Context ctx(env_device && *env_device ? env_device : "cpu"); // destroyed last
    std::printf("device: %s\n", ctx.device().c_str());

    Synth data = synth_generate(60, 16, 16, 7);
    Dataset all = Dataset::from_arrays(ctx, data.pixels, data.labels, 16, 16, Synth::classes());
    auto [train, val] = all.split(0.2, 1);
    std::printf("samples: %lld train, %lld validation\n", static_cast<long long>(train.size()),
                static_cast<long long>(val.size()));

    Model model = Model::from_spec(ctx, kSpec, 1);
    {
        Trainer trainer(model); // destroyed before the model
        trainer.set(CSNN_TRAIN_EPOCHS, 6)
            .set(CSNN_TRAIN_BATCH_SIZE, 16)
            .set(CSNN_TRAIN_LEARNING_RATE, 5e-3)
            .set(CSNN_TRAIN_SEED, 3);
        for (csnn_train_param aug : {CSNN_TRAIN_AUG_HFLIP, CSNN_TRAIN_AUG_ROTATE,
                                     CSNN_TRAIN_AUG_CROP_PAD})
            trainer.set(aug, 0); // tiny images: no augmentation

        // the callback's exception comes back out of fit, not through C (the
        // batch before it was trained; the real run below starts afresh)
        try {
            trainer.fit(train, &val, [](const csnn_progress &) -> bool {
                throw std::runtime_error("stop from C++");
            });
            std::fprintf(stderr, "raii: the callback's exception was lost\n");
            return 1;
        } catch (const std::runtime_error &e) {
            std::printf("callback exception propagated: %s\n", e.what());
        }

        trainer.fit(train, &val, [](const csnn_progress &p) {
            if (p.phase == CSNN_PHASE_EPOCH_END)
                std::printf("epoch %d/%d: loss %.4f acc %.3f val_acc %.3f\n", p.epoch + 1,
                            p.epochs, p.metrics->train_loss, p.metrics->train_accuracy,
                            p.metrics->val_accuracy);
            return false; // keep going
        });
    }

    const Metrics m = model.evaluate(val);
    std::printf("validation: accuracy %.3f, loss %.4f on %lld samples\n", m.accuracy, m.loss,
                static_cast<long long>(m.samples));
    model.save(out);

    // reload and compare predictions on a few validation images
    Model copy = Model::load(ctx, out);
    std::vector<float> images;
    for (int64_t i = 0; i < 8 && i < val.size(); i++) {
        int32_t label = 0;
        std::vector<float> px = val.sample(i, &label);
        images.insert(images.end(), px.begin(), px.end());
    }
    std::vector<int32_t> a_labels, b_labels;
    const std::vector<float> a = model.predict(images, &a_labels);
    const std::vector<float> b = copy.predict(images, &b_labels);
    if (a != b || a_labels != b_labels) {
        std::fprintf(stderr, "raii: the reloaded model predicts differently\n");
        return 1;
    }
    std::printf("saved %s; the reloaded model predicts the same (first image: %s)\n",
                out.c_str(), copy.class_name(b_labels.at(0)).c_str());

    // errors are exceptions with the status name and the library's message
    try {
        Model::preset(ctx, "no-such-preset");
        return 1;
    } catch (const Error &e) {
        std::printf("expected error: %s\n", e.name());
    }

    if (argc > 2) {
        csnn_synth_options so;
        csnn_synth_options_init(&so);
        so.per_class = 2;
        so.height = so.width = 16;
        so.seed = 99;
        check(csnn_synth_write(argv[2], &so), "write images");
        std::printf("wrote 14 images under %s\n", argv[2]);
    }
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "raii: %s\n", e.what());
        return 1;
    }
}
