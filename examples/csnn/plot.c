/* plot.c - training curves and confusion matrices as PNG images, drawn
 * with cairo (lines, the toy text API and its PNG writer). Built only with
 * the 'plots' feature; without cairo every function says so. */
#include "tool.h"

#ifdef CSNN_TOOL_PLOTS

#include <cairo.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FONT "sans-serif"

typedef struct rgb {
    double r, g, b;
} rgb;

static const rgb C_TRAIN = {0.12, 0.47, 0.71}; /* blue */
static const rgb C_VAL = {1.00, 0.50, 0.05};   /* orange */
static const rgb C_GRID = {0.88, 0.88, 0.88};
static const rgb C_AXIS = {0.20, 0.20, 0.20};

static void set_rgb(cairo_t *cr, rgb c)
{
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

bool plot_available(void)
{
    return true;
}

/* Text anchored at (x, y): ax, ay in [0, 1] pick the point of the text's
 * box (0, 0: top left; 0.5, 0.5: centre); angle in radians. */
static void text_at(cairo_t *cr, double x, double y, double ax, double ay, double angle,
                    const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -e.x_bearing - ax * e.width, -e.y_bearing - ay * e.height);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Writes the image and destroys the surface. Then, with no cairo object
 * left, releases cairo's font caches (so that leak checkers stay quiet). */
static int write_png(const char *cmd, cairo_surface_t *surface, const char *path)
{
    cairo_status_t cs = cairo_surface_status(surface);
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_write_to_png(surface, path);
    cairo_surface_destroy(surface);
    cairo_debug_reset_static_data();
    if (cs != CAIRO_STATUS_SUCCESS)
        return runtime_error(cmd, "cannot write '%s': %s", path, cairo_status_to_string(cs));
    return EXIT_OK;
}

/* A "nice" step (1, 2 or 5 times a power of ten) near range / n. */
static double nice_step(double range, int n)
{
    double raw = range / n;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void format_tick(char *buf, size_t cap, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 6) decimals = 6;
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(buf, cap, "%.*f", decimals, v);
}

typedef struct series {
    const char *name;
    rgb colour;
    const double *y; /* NAN: no value */
} series;

/* One line chart: x = epochs 1..n. */
static int line_chart(const char *cmd, const char *path, const char *title, const char *ylabel,
                      const series *s, int ns, size_t n, long best, bool percent)
{
    const int W = 800, H = 500;
    const double L = 80, R = 30, T = 50, B = 60;
    const double pw = W - L - R, ph = H - T - B;

    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; i < n; i++)
            if (isfinite(s[k].y[i])) {
                lo = fmin(lo, s[k].y[i]);
                hi = fmax(hi, s[k].y[i]);
            }
    if (!isfinite(lo)) lo = hi = 0;
    if (hi - lo < 1e-12) {
        double pad = fabs(hi) > 0 ? fabs(hi) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    double ystep = nice_step(hi - lo, 5);
    lo = floor(lo / ystep) * ystep;
    hi = ceil(hi / ystep) * ystep;
    if (percent) {
        lo = fmax(lo, 0);
        hi = fmin(hi, 100);
    }
    const double xpad = n > 1 ? fmax(0.25, 0.02 * (double)n) : 0.5;
    const double x0 = 1 - xpad, x1 = (double)(n > 1 ? n : 1) + xpad;
    double xstep = ceil(fmax(1, nice_step((double)(n > 1 ? n - 1 : 1), 10)));

#define PX(x) (L + ((x)-x0) / (x1 - x0) * pw)
#define PY(y) (T + ph - ((y)-lo) / (hi - lo) * ph)

    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    /* grid, ticks and tick labels */
    char buf[64];
    cairo_set_font_size(cr, 12);
    cairo_set_line_width(cr, 1);
    for (double y = lo; y <= hi + ystep * 1e-6; y += ystep) {
        set_rgb(cr, C_GRID);
        cairo_move_to(cr, L, floor(PY(y)) + 0.5);
        cairo_line_to(cr, L + pw, floor(PY(y)) + 0.5);
        cairo_stroke(cr);
        set_rgb(cr, C_AXIS);
        cairo_move_to(cr, L - 5, floor(PY(y)) + 0.5);
        cairo_line_to(cr, L, floor(PY(y)) + 0.5);
        cairo_stroke(cr);
        format_tick(buf, sizeof buf, y, ystep);
        text_at(cr, L - 8, PY(y), 1, 0.5, 0, buf);
    }
    for (double x = 1; x <= (double)n + 1e-9; x += xstep) {
        set_rgb(cr, C_GRID);
        cairo_move_to(cr, floor(PX(x)) + 0.5, T);
        cairo_line_to(cr, floor(PX(x)) + 0.5, T + ph);
        cairo_stroke(cr);
        set_rgb(cr, C_AXIS);
        cairo_move_to(cr, floor(PX(x)) + 0.5, T + ph);
        cairo_line_to(cr, floor(PX(x)) + 0.5, T + ph + 5);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.0f", x);
        text_at(cr, PX(x), T + ph + 8, 0.5, 0, 0, buf);
    }
    set_rgb(cr, C_AXIS);
    cairo_rectangle(cr, L + 0.5, T + 0.5, pw - 1, ph - 1);
    cairo_stroke(cr);

    /* the best epoch */
    if (best >= 0) {
        const double dash[] = {5, 4};
        cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, PX((double)best + 1), T);
        cairo_line_to(cr, PX((double)best + 1), T + ph);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_font_size(cr, 11);
        snprintf(buf, sizeof buf, "best (epoch %ld)", best + 1);
        double bx = PX((double)best + 1);
        bool left = bx + 4 + text_width(cr, buf) > L + pw - 4;
        /* at the top left of the plot (the legend is at the top right) */
        bool top = bx < L + 0.6 * pw;
        text_at(cr, left ? bx - 4 : bx + 4, top ? T + 4 : T + ph - 4, left ? 1 : 0, top ? 0 : 1, 0,
                buf);
    }

    /* the series */
    cairo_save(cr);
    cairo_rectangle(cr, L, T, pw, ph);
    cairo_clip(cr);
    cairo_set_line_width(cr, 2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int k = 0; k < ns; k++) {
        set_rgb(cr, s[k].colour);
        bool pen = false;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(s[k].y[i])) {
                pen = false;
                continue;
            }
            double x = PX((double)i + 1), y = PY(s[k].y[i]);
            if (pen)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            pen = true;
        }
        cairo_stroke(cr);
        if (n <= 40)
            for (size_t i = 0; i < n; i++) {
                if (!isfinite(s[k].y[i])) continue;
                cairo_arc(cr, PX((double)i + 1), PY(s[k].y[i]), 3, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    cairo_restore(cr);

    /* titles */
    set_rgb(cr, C_AXIS);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 16);
    text_at(cr, W / 2.0, 16, 0.5, 0, 0, title);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 13);
    text_at(cr, L + pw / 2, H - 22, 0.5, 0, 0, "epoch");
    text_at(cr, 18, T + ph / 2, 0.5, 0, -M_PI / 2, ylabel);

    /* legend, top right inside the plot */
    cairo_set_font_size(cr, 12);
    double lw = 0;
    for (int k = 0; k < ns; k++)
        lw = fmax(lw, text_width(cr, s[k].name));
    const double bw = lw + 44, bh = 8 + 18.0 * ns, bx = L + pw - bw - 10, by = T + 10;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    set_rgb(cr, C_GRID);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int k = 0; k < ns; k++) {
        double y = by + 13 + 18.0 * k;
        set_rgb(cr, s[k].colour);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, bx + 8, y);
        cairo_line_to(cr, bx + 30, y);
        cairo_stroke(cr);
        set_rgb(cr, C_AXIS);
        text_at(cr, bx + 36, y, 0, 0.5, 0, s[k].name);
    }
#undef PX
#undef PY
    cairo_destroy(cr);
    return write_png(cmd, surface, path);
}

int plot_training_curves(const char *cmd, const char *dir, const csnn_epoch_metrics *h, size_t n)
{
    double *v = malloc(4 * (n ? n : 1) * sizeof *v);
    size_t len = strlen(dir) + 32;
    char *path = malloc(len);
    if (!v || !path) {
        free(v);
        free(path);
        return runtime_error(cmd, "out of memory");
    }
    double *tl = v, *vl = v + n, *ta = v + 2 * n, *va = v + 3 * n;
    bool have_val = false;
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        tl[i] = h[i].train_loss;
        ta[i] = 100.0 * h[i].train_accuracy;
        vl[i] = h[i].val_loss >= 0 ? h[i].val_loss : NAN;
        va[i] = h[i].val_accuracy >= 0 ? 100.0 * h[i].val_accuracy : NAN;
        if (h[i].val_accuracy >= 0) have_val = true;
        if (h[i].improved) best = (long)i;
    }
    if (!have_val) best = -1;
    series loss[2] = {{"train", C_TRAIN, tl}, {"validation", C_VAL, vl}};
    series acc[2] = {{"train", C_TRAIN, ta}, {"validation", C_VAL, va}};
    snprintf(path, len, "%s/loss.png", dir);
    int rc =
        line_chart(cmd, path, "Loss per epoch", "loss", loss, have_val ? 2 : 1, n, best, false);
    snprintf(path, len, "%s/accuracy.png", dir);
    if (rc == EXIT_OK)
        rc = line_chart(cmd, path, "Accuracy per epoch", "accuracy (%)", acc, have_val ? 2 : 1, n,
                        best, true);
    free(v);
    free(path);
    return rc;
}

/* matplotlib's "Blues" end points: white to dark blue. */
static rgb heat(double v)
{
    const rgb a = {0.97, 0.98, 1.00}, b = {0.03, 0.19, 0.42};
    return (rgb){a.r + (b.r - a.r) * v, a.g + (b.g - a.g) * v, a.b + (b.b - a.b) * v};
}

int plot_confusion(const char *cmd, const char *path, const char *const *names, int k,
                   const int64_t *counts, double accuracy)
{
    /* measure the class names to size the margins */
    cairo_surface_t *probe = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *pc = cairo_create(probe);
    cairo_select_font_face(pc, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(pc, 13);
    double name_w = 0;
    for (int i = 0; i < k; i++)
        name_w = fmax(name_w, text_width(pc, names[i]));
    cairo_destroy(pc);
    cairo_surface_destroy(probe);

    const double cell = k <= 10 ? 64 : k <= 20 ? 40 : 24;
    const bool rotate = name_w > cell - 6; /* column labels at 45 degrees */
    const double L = 50 + name_w + 12, T = 60;
    const double B = 50 + (rotate ? name_w * 0.72 + 10 : 24), R = 110;
    const int W = (int)ceil(L + cell * k + R), H = (int)ceil(T + cell * k + B);

    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    char buf[64];
    const double count_font = cell >= 64 ? 14 : cell >= 40 ? 11 : 8;
    for (int i = 0; i < k; i++) {
        int64_t row = 0;
        for (int j = 0; j < k; j++)
            row += counts[(size_t)i * (size_t)k + (size_t)j];
        for (int j = 0; j < k; j++) {
            int64_t c = counts[(size_t)i * (size_t)k + (size_t)j];
            double v = row > 0 ? (double)c / (double)row : 0;
            double x = L + cell * j, y = T + cell * i;
            set_rgb(cr, heat(v));
            cairo_rectangle(cr, x, y, cell, cell);
            cairo_fill(cr);
            if (v > 0.5)
                cairo_set_source_rgb(cr, 1, 1, 1);
            else
                set_rgb(cr, C_AXIS);
            cairo_set_font_size(cr, count_font);
            snprintf(buf, sizeof buf, "%lld", (long long)c);
            text_at(cr, x + cell / 2, y + cell / 2, 0.5, 0.5, 0, buf);
        }
    }
    set_rgb(cr, C_AXIS);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L + 0.5, T + 0.5, cell * k - 1, cell * k - 1);
    cairo_stroke(cr);

    /* class names on both axes */
    cairo_set_font_size(cr, 13);
    for (int i = 0; i < k; i++) {
        text_at(cr, L - 8, T + cell * i + cell / 2, 1, 0.5, 0, names[i]);
        double cx = L + cell * i + cell / 2, cy = T + cell * k + 8;
        if (rotate) {
            cairo_text_extents_t e;
            cairo_text_extents(cr, names[i], &e);
            cairo_save(cr);
            cairo_translate(cr, cx + 4, cy);
            cairo_rotate(cr, -M_PI / 4);
            cairo_move_to(cr, -e.x_advance, e.height);
            cairo_show_text(cr, names[i]);
            cairo_restore(cr);
        } else {
            text_at(cr, cx, cy, 0.5, 0, 0, names[i]);
        }
    }
    cairo_set_font_size(cr, 14);
    text_at(cr, L + cell * k / 2, H - 26, 0.5, 0, 0, "predicted class");
    text_at(cr, 16, T + cell * k / 2, 0.5, 0, -M_PI / 2, "true class");
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 16);
    snprintf(buf, sizeof buf, "Confusion matrix (accuracy %.1f%%)", 100.0 * accuracy);
    text_at(cr, W / 2.0, 18, 0.5, 0, 0, buf);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    /* colour bar: the share of the true class's samples */
    const double cbx = L + cell * k + 24, cby = T, cbw = 16, cbh = cell * k;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, cby + cbh, 0, cby);
    rgb c0 = heat(0), c1 = heat(1);
    cairo_pattern_add_color_stop_rgb(g, 0, c0.r, c0.g, c0.b);
    cairo_pattern_add_color_stop_rgb(g, 1, c1.r, c1.g, c1.b);
    cairo_set_source(cr, g);
    cairo_rectangle(cr, cbx, cby, cbw, cbh);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    set_rgb(cr, C_AXIS);
    cairo_rectangle(cr, cbx + 0.5, cby + 0.5, cbw - 1, cbh - 1);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 11);
    for (int p = 0; p <= 100; p += 25) {
        double y = cby + cbh - cbh * p / 100.0;
        cairo_move_to(cr, cbx + cbw, y);
        cairo_line_to(cr, cbx + cbw + 4, y);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d%%", p);
        text_at(cr, cbx + cbw + 7, y, 0, 0.5, 0, buf);
    }
    text_at(cr, cbx + cbw + 48, cby + cbh / 2, 0.5, 0, M_PI / 2, "share of the true class");

    cairo_destroy(cr);
    return write_png(cmd, surface, path);
}

#else /* !CSNN_TOOL_PLOTS */

bool plot_available(void)
{
    return false;
}

int plot_training_curves(const char *cmd, const char *dir, const csnn_epoch_metrics *h, size_t n)
{
    (void)dir;
    (void)h;
    (void)n;
    return runtime_error(cmd, "plots are not available: this csnn was built without cairo");
}

int plot_confusion(const char *cmd, const char *path, const char *const *names, int k,
                   const int64_t *counts, double accuracy)
{
    (void)path;
    (void)names;
    (void)k;
    (void)counts;
    (void)accuracy;
    return runtime_error(cmd, "plots are not available: this csnn was built without cairo");
}

#endif
