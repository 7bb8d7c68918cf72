/*
 * synth.c - the built-in synthetic face dataset (csnn_synth_*).
 *
 * Each image is a cartoon face in one of the 7 FER2013 classes, rendered
 * from a small display list of shapes (ellipses, filled polygons and
 * stroked curves) defined in "face units": the pixels of a nominal 48x48
 * image, origin at the face centre, y down. A pose (position, scale,
 * in-plane rotation) maps face units to the image; every pixel is shaded by
 * signed-distance coverage (anti-aliased, with a random edge softness that
 * doubles as a mild blur), then lit, contrast-adjusted, made noisy and
 * quantised to 8 bits.
 *
 * What tells the classes apart (face units; the mouth is ~10-16 wide, the
 * brows ~8, the eyes ~5-7, so that they survive two 2x2 max-pools):
 *   angry     brows low, slanted down towards the centre, frown lines
 *             between them; narrowed (slit) eyes; tight flat mouth or
 *             clenched, bared teeth
 *   disgust   brows low, slightly lowered inner ends; squinting eyes;
 *             wrinkled nose with flared nostrils; lopsided sneer with the
 *             upper lip raised on one side (random side)
 *   fear      brows raised and drawn together, inner ends up; wide eyes;
 *             mouth open and stretched sideways, corners pulled down, teeth
 *   happy     level, slightly raised brows; squinting or closed (arc) eyes;
 *             upturned smile, open with teeth or closed; smile folds
 *   neutral   level brows; normal eyes; straight mouth
 *   sad       inner brow ends raised, outer ends down; slightly narrowed
 *             eyes; downturned mouth
 *   surprise  brows raised high and arched; wide eyes; round open mouth (O)
 *
 * Nuisances (uniform): position +-2, scale 0.92..1.08, rotation +-6
 * degrees, features shifted +-0.5 horizontally and vertically within the
 * face, face size and chin, per-side jitter of every feature, skin,
 * background, ink, hair (none, fringe, long) and clothing tones, ears,
 * background blobs, gradient lighting (up to +-35 % across the image),
 * contrast 0.75..1.15, brightness +-0.08, Gaussian noise sigma
 * 0.004..0.035, edge softness 0.9..1.8 px.
 *
 * Determinism: image `index` of class `cls` depends only on (seed, cls,
 * index, height, width). Its parameters come from the counter-based stream
 * csnn_rng_uniform(seed, stream(cls, index), k) and its pixel noise from a
 * second stream, so an image is the same whatever per_class, thread count or
 * order produced it, and a set is a prefix of any larger set of the same
 * seed. Samples are ordered class-major: sample c * per_class + i is image i
 * of class c, which is also the order in which an image-folder loader lists
 * the files that csnn_synth_write writes (classes alphabetically, then file
 * names).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "csnn_internal.h"

#define N_CLASSES 7
#define MIN_SIDE 8
#define MAX_SIDE 4096
#define MAX_PER_CLASS 10000000
#define JPEG_QUALITY 90

/* Pose jitter (uniform, +-). The training recipe adds its own (crop
 * padding 4, rotation 10 degrees, flips), and the seed's model, whose
 * classifier is a large linear layer over a 12x12 feature map, learns the
 * slower the more the features move: its ReLU twin at width 32 (Adam 1e-4,
 * with that augmentation, 300 images per class) reached 78 % on another
 * seed after 4 epochs with +-3 px, +-10 %, +-8 degrees and features +-0.8,
 * 83 % with half of that and 87 % without any. So these stay moderate. */
#define POSE_SHIFT 2.0f    /* face position, pixels of a 48x48 image */
#define POSE_SCALE 0.08f   /* relative face size */
#define POSE_ROT_DEG 6.0f  /* in-plane rotation */
#define FEATURE_SHIFT 0.5f /* the features inside the face, pixels */
#define PI_F 3.14159265358979f

static const char *const class_names[N_CLASSES] = {
    "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
};

enum { C_ANGRY, C_DISGUST, C_FEAR, C_HAPPY, C_NEUTRAL, C_SAD, C_SURPRISE };

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */
/* ------------------------------------------------------------------------ */

typedef struct rng {
    uint64_t seed, stream, k;
} rng;

static uint64_t image_stream(int cls, int64_t index)
{
    return ((uint64_t)(cls + 1) << 40) + (uint64_t)index;
}

static float uni(rng *r)
{
    return csnn_rng_uniform(r->seed, r->stream, r->k++);
}

static float urange(rng *r, float lo, float hi)
{
    return lo + (hi - lo) * uni(r);
}

/* -1 or +1 */
static float usign(rng *r)
{
    return uni(r) < 0.5f ? -1.0f : 1.0f;
}

/* ------------------------------------------------------------------------ */
/* Shapes                                                                    */
/* ------------------------------------------------------------------------ */

enum { SH_ELLIPSE, SH_POLY, SH_STROKE };

#define MAX_PTS 40
#define MAX_SHAPES 64
#define CURVE_SEGS 10

typedef struct shape {
    int kind;
    int n;                /* points of a polygon or polyline */
    float px[MAX_PTS], py[MAX_PTS];
    float inv_len2[MAX_PTS]; /* 1 / |edge|^2 of the edge ending at point i (0 if empty) */
    float cx, cy, rx, ry; /* ellipse */
    float ca, sa;         /* ellipse rotation (cos, sin) */
    float r;              /* stroke half-thickness */
    float tone, alpha;
    float x0, y0, x1, y1; /* bounding box (face units), without the edge margin */
} shape;

typedef struct scene {
    int n;
    shape s[MAX_SHAPES];
    /* pose: image = centre + scale * R(angle) * face */
    float ox, oy, scale, ca, sa;
    float soft; /* edge width in pixels */
    /* background and finishing */
    float bg, bg_gx, bg_gy;
    float light_gx, light_gy;
    float contrast, brightness, noise;
} scene;

static shape *new_shape(scene *sc, int kind, float tone, float alpha)
{
    /* MAX_SHAPES is larger than the most any face emits; a full list drops
     * the extra shape rather than overflowing. */
    if (sc->n >= MAX_SHAPES) return NULL;
    shape *s = &sc->s[sc->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->tone = tone;
    s->alpha = alpha;
    return s;
}

static void add_ellipse(scene *sc, float cx, float cy, float rx, float ry, float angle,
                        float tone, float alpha)
{
    shape *s = new_shape(sc, SH_ELLIPSE, tone, alpha);
    if (!s) return;
    s->cx = cx;
    s->cy = cy;
    s->rx = rx;
    s->ry = ry;
    s->ca = cosf(angle);
    s->sa = sinf(angle);
    float m = rx > ry ? rx : ry;
    s->x0 = cx - m;
    s->x1 = cx + m;
    s->y0 = cy - m;
    s->y1 = cy + m;
}

static void finish_points(shape *s)
{
    for (int i = 0; i < s->n; i++) {
        int j = i > 0 ? i - 1 : s->n - 1; /* the closing edge of a polygon at 0 */
        float ex = s->px[i] - s->px[j], ey = s->py[i] - s->py[j];
        float ee = ex * ex + ey * ey;
        s->inv_len2[i] = ee > 1e-12f ? 1.0f / ee : 0.0f;
    }
    s->x0 = s->x1 = s->px[0];
    s->y0 = s->y1 = s->py[0];
    for (int i = 1; i < s->n; i++) {
        s->x0 = fminf(s->x0, s->px[i]);
        s->x1 = fmaxf(s->x1, s->px[i]);
        s->y0 = fminf(s->y0, s->py[i]);
        s->y1 = fmaxf(s->y1, s->py[i]);
    }
    s->x0 -= s->r;
    s->x1 += s->r;
    s->y0 -= s->r;
    s->y1 += s->r;
}

static void push_point(shape *s, float x, float y)
{
    if (s->n < MAX_PTS) {
        s->px[s->n] = x;
        s->py[s->n] = y;
        s->n++;
    }
}

/* Appends the quadratic Bezier (x0,y0) -> (x2,y2) with control (x1,y1),
 * CURVE_SEGS segments; skip_first leaves out its first point. */
static void push_bezier(shape *s, float x0, float y0, float x1, float y1, float x2, float y2,
                        int skip_first)
{
    for (int i = skip_first ? 1 : 0; i <= CURVE_SEGS; i++) {
        float t = (float)i / CURVE_SEGS, u = 1.0f - t;
        push_point(s, u * u * x0 + 2 * u * t * x1 + t * t * x2,
                   u * u * y0 + 2 * u * t * y1 + t * t * y2);
    }
}

/* A stroked quadratic Bezier whose apex (the curve at t = 0.5) lies at
 * (ax, ay): the control point is 2*apex - (p0 + p2)/2. */
static void add_curve(scene *sc, float x0, float y0, float ax, float ay, float x2, float y2,
                      float half_thick, float tone, float alpha)
{
    shape *s = new_shape(sc, SH_STROKE, tone, alpha);
    if (!s) return;
    s->r = half_thick;
    push_bezier(s, x0, y0, 2 * ax - 0.5f * (x0 + x2), 2 * ay - 0.5f * (y0 + y2), x2, y2, 0);
    finish_points(s);
}

static void add_line(scene *sc, float x0, float y0, float x1, float y1, float half_thick,
                     float tone, float alpha)
{
    shape *s = new_shape(sc, SH_STROKE, tone, alpha);
    if (!s) return;
    s->r = half_thick;
    push_point(s, x0, y0);
    push_point(s, x1, y1);
    finish_points(s);
}

/* A filled region between two curves from corner (xl,yl) to corner (xr,yr):
 * the upper one through apex (xt, yt), the lower one through (xb, yb). */
static void add_lens(scene *sc, float xl, float yl, float xr, float yr, float xt, float yt,
                     float xb, float yb, float tone, float alpha)
{
    shape *s = new_shape(sc, SH_POLY, tone, alpha);
    if (!s) return;
    float mx = 0.5f * (xl + xr), my = 0.5f * (yl + yr);
    push_bezier(s, xl, yl, 2 * xt - mx, 2 * yt - my, xr, yr, 0);
    push_bezier(s, xr, yr, 2 * xb - mx, 2 * yb - my, xl, yl, 1);
    s->n--; /* the last point repeats the first */
    finish_points(s);
}

/* ------------------------------------------------------------------------ */
/* Signed distances (face units; negative inside)                            */
/* ------------------------------------------------------------------------ */

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static float minf(float a, float b)
{
    return a < b ? a : b;
}

/* Squared distance from (x, y) to the segment a-b; inv = 1 / |b - a|^2 or 0. */
static float seg_dist2(float x, float y, float ax, float ay, float bx, float by, float inv)
{
    float ex = bx - ax, ey = by - ay, wx = x - ax, wy = y - ay;
    float t = clampf((wx * ex + wy * ey) * inv, 0.0f, 1.0f);
    float dx = wx - ex * t, dy = wy - ey * t;
    return dx * dx + dy * dy;
}

static float sdf(const shape *s, float x, float y)
{
    switch (s->kind) {
    case SH_ELLIPSE: {
        /* rotate into the ellipse's frame; the distance estimate k0 (k0 - 1)
         * / k1 is exact on the boundary and good near it. */
        float dx = x - s->cx, dy = y - s->cy;
        float u = s->ca * dx + s->sa * dy, v = -s->sa * dx + s->ca * dy;
        float a = u / s->rx, b = v / s->ry;
        float k0 = sqrtf(a * a + b * b);
        float c = u / (s->rx * s->rx), d = v / (s->ry * s->ry);
        float k1 = sqrtf(c * c + d * d);
        if (k1 < 1e-6f) return -minf(s->rx, s->ry);
        return k0 * (k0 - 1.0f) / k1;
    }
    case SH_POLY: {
        float d = 3.4e38f;
        int inside = 0;
        for (int i = 0, j = s->n - 1; i < s->n; j = i++) {
            d = minf(d, seg_dist2(x, y, s->px[j], s->py[j], s->px[i], s->py[i], s->inv_len2[i]));
            if ((s->py[i] > y) != (s->py[j] > y) &&
                x < (s->px[j] - s->px[i]) * (y - s->py[i]) / (s->py[j] - s->py[i]) + s->px[i])
                inside = !inside;
        }
        d = sqrtf(d);
        return inside ? -d : d;
    }
    default: { /* SH_STROKE */
        float d = seg_dist2(x, y, s->px[0], s->py[0], s->px[0], s->py[0], 0.0f);
        for (int i = 1; i < s->n; i++)
            d = minf(d, seg_dist2(x, y, s->px[i - 1], s->py[i - 1], s->px[i], s->py[i],
                                  s->inv_len2[i]));
        return sqrtf(d) - s->r;
    }
    }
}

/* ------------------------------------------------------------------------ */
/* The face                                                                  */
/* ------------------------------------------------------------------------ */

enum { EYE_OPEN, EYE_SLIT, EYE_ARC };

/* One eye at (cx, cy); `side` is -1 (image left) or +1; tilt > 0 lowers the
 * inner corner. */
static void add_eye(scene *sc, rng *r, int style, float cx, float cy, float rx, float ry,
                    float tilt, float side, float ink, float sclera)
{
    float angle = -side * tilt;
    if (style == EYE_ARC) {
        add_curve(sc, cx - rx, cy + 0.4f, cx, cy - 1.6f, cx + rx, cy + 0.4f, 0.75f, ink, 1.0f);
        return;
    }
    add_ellipse(sc, cx, cy, rx, ry, angle, ink, 1.0f);
    if (style == EYE_SLIT) return;
    float rim = 0.6f;
    add_ellipse(sc, cx, cy, rx - rim, ry - rim, angle, sclera, 1.0f);
    float pr = fminf(1.35f, ry - 0.45f);
    float gx = urange(r, -0.6f, 0.6f), gy = urange(r, -0.3f, 0.3f);
    add_ellipse(sc, cx + gx, cy + gy, pr, pr, 0.0f, ink, 1.0f);
}

typedef struct expr {
    int eye_style;
    float eye_rx, eye_ry, eye_tilt;
    float brow_h;     /* brow (mid) height above the eye centre */
    float brow_inner; /* inner end offset, + is down */
    float brow_outer; /* outer end offset, + is down */
    float brow_arch;  /* apex above the chord, + is up */
    float brow_in_x, brow_out_x, brow_r;
} expr;

static void make_face(scene *sc, uint64_t seed, int cls, int64_t index, int32_t h, int32_t w)
{
    rng rr = {seed, image_stream(cls, index), 0};
    rng *r = &rr;
    sc->n = 0;

    /* pose and rendering */
    float unit = (float)(h < w ? h : w) / 48.0f;
    float angle = urange(r, -POSE_ROT_DEG, POSE_ROT_DEG) * PI_F / 180.0f;
    sc->scale = unit * urange(r, 1.0f - POSE_SCALE, 1.0f + POSE_SCALE);
    sc->ca = cosf(angle);
    sc->sa = sinf(angle);
    sc->ox = 0.5f * (float)w + unit * urange(r, -POSE_SHIFT, POSE_SHIFT);
    sc->oy = 0.5f * (float)h + unit * urange(r, -POSE_SHIFT, POSE_SHIFT);
    sc->soft = urange(r, 0.9f, 1.8f);

    /* tones */
    float skin = urange(r, 0.38f, 0.85f);
    float gap = urange(r, 0.14f, 0.55f) * usign(r);
    if (skin + gap > 1.0f || skin + gap < 0.0f) gap = -gap;
    sc->bg = clampf(skin + gap, 0.0f, 1.0f);
    sc->bg_gx = urange(r, -0.004f, 0.004f);
    sc->bg_gy = urange(r, -0.004f, 0.004f);
    float ink = skin * urange(r, 0.1f, 0.38f);
    float sclera = skin + (1.0f - skin) * urange(r, 0.45f, 0.9f);
    float hair = uni(r) < 0.7f ? urange(r, 0.03f, 0.3f) : urange(r, 0.5f, 0.95f);
    float hair_u = uni(r);
    int hair_style = hair_u < 0.15f ? 0 : hair_u < 0.6f ? 1 : 2;
    float cloth = uni(r);

    float light_a = urange(r, 0.0f, 2.0f * PI_F), light_g = urange(r, 0.0f, 0.35f);
    float half = 0.5f * (float)(h < w ? h : w);
    sc->light_gx = light_g * cosf(light_a) / half;
    sc->light_gy = light_g * sinf(light_a) / half;
    sc->contrast = urange(r, 0.75f, 1.15f);
    sc->brightness = urange(r, -0.08f, 0.08f);
    sc->noise = urange(r, 0.004f, 0.035f);

    /* background blobs (far from the face centre, partly hidden by it) */
    int blobs = (int)(uni(r) * 3.0f);
    for (int i = 0; i < blobs; i++) {
        float a = urange(r, 0.0f, 2.0f * PI_F), dist = urange(r, 20.0f, 32.0f);
        add_ellipse(sc, dist * cosf(a), dist * sinf(a), urange(r, 4.0f, 12.0f),
                    urange(r, 4.0f, 12.0f), urange(r, 0.0f, PI_F), uni(r), urange(r, 0.3f, 0.8f));
    }

    /* head */
    float frx = urange(r, 14.5f, 16.5f), fry = urange(r, 18.5f, 20.5f);
    float chin = urange(r, 0.05f, 0.2f);
    if (hair_style == 2)
        add_ellipse(sc, 0.0f, urange(r, -1.0f, 3.0f), frx + urange(r, 2.5f, 4.5f),
                    fry + urange(r, 2.0f, 8.0f), 0.0f, hair, 1.0f);
    float neck_w = urange(r, 5.5f, 7.0f);
    {
        shape *s = new_shape(sc, SH_POLY, skin * urange(r, 0.7f, 0.9f), 1.0f);
        if (s) {
            push_point(s, -neck_w, 10.0f);
            push_point(s, neck_w, 10.0f);
            push_point(s, neck_w + 1.0f, 34.0f);
            push_point(s, -neck_w - 1.0f, 34.0f);
            finish_points(s);
        }
    }
    add_ellipse(sc, 0.0f, fry + urange(r, 12.0f, 16.0f), urange(r, 22.0f, 28.0f),
                urange(r, 8.0f, 12.0f), 0.0f, cloth, 1.0f);
    if (uni(r) < 0.7f) {
        float ey = urange(r, -2.0f, 1.0f), erx = urange(r, 1.8f, 2.6f), ery = urange(r, 3.2f, 4.4f);
        for (int side = -1; side <= 1; side += 2)
            add_ellipse(sc, (float)side * (frx - 0.3f), ey, erx, ery, 0.0f, skin * 0.9f, 1.0f);
    }
    {
        shape *s = new_shape(sc, SH_POLY, skin, 1.0f);
        if (s) {
            for (int i = 0; i < 32; i++) {
                float t = (float)i * (2.0f * PI_F / 32.0f), st = sinf(t);
                float narrow = st > 0.0f ? 1.0f - chin * st * st : 1.0f;
                push_point(s, frx * cosf(t) * narrow, fry * st);
            }
            finish_points(s);
        }
    }
    if (hair_style != 0) {
        /* fringe: the top of the head above a curved hairline */
        float yh = urange(r, -18.0f, -15.0f), drop = urange(r, 0.0f, 2.5f);
        float bend = urange(r, -2.0f, 0.5f), lean = urange(r, -3.0f, 3.0f);
        float hrx = frx + 0.8f, hry = fry + 0.8f;
        float ys = yh + drop;
        float a = asinf(clampf(-ys / hry, -1.0f, 1.0f));
        shape *s = new_shape(sc, SH_POLY, hair, 1.0f);
        if (s) {
            for (int i = 0; i <= 14; i++) {
                float t = PI_F + a + (PI_F - 2.0f * a) * (float)i / 14.0f;
                push_point(s, hrx * cosf(t), hry * sinf(t));
            }
            float xr = hrx * cosf(2.0f * PI_F - a), xl = hrx * cosf(PI_F + a);
            float cy = 2.0f * (yh + bend) - ys; /* apex at yh + bend */
            push_bezier(s, xr, ys, 2.0f * lean, cy, xl, ys, 1);
            s->n--;
            finish_points(s);
        }
    }

    /* features: layout */
    float fx = urange(r, -FEATURE_SHIFT, FEATURE_SHIFT);
    float fy = urange(r, -FEATURE_SHIFT, FEATURE_SHIFT);
    float ex = urange(r, 6.0f, 7.2f), ey = -2.8f + fy;
    float ny = 3.6f + fy + urange(r, -0.5f, 0.5f);
    float mx = fx + urange(r, -0.4f, 0.4f), my = 9.2f + fy + urange(r, -0.8f, 0.8f);
    float skin_dark = skin * 0.55f + ink * 0.45f;

    /* expression: eyes and brows */
    expr e;
    e.eye_style = EYE_OPEN;
    e.eye_rx = urange(r, 2.7f, 3.1f);
    e.eye_ry = urange(r, 1.9f, 2.4f);
    e.eye_tilt = urange(r, -0.08f, 0.08f);
    e.brow_h = urange(r, 4.8f, 5.6f);
    e.brow_inner = urange(r, -0.3f, 0.3f);
    e.brow_outer = urange(r, -0.3f, 0.3f);
    e.brow_arch = urange(r, 0.3f, 0.9f);
    e.brow_in_x = urange(r, 2.8f, 3.5f);
    e.brow_out_x = urange(r, 9.5f, 10.8f);
    e.brow_r = urange(r, 0.8f, 1.1f);
    float v = uni(r); /* a per-class variant switch */
    switch (cls) {
    case C_ANGRY:
        e.eye_style = EYE_SLIT;
        e.eye_rx = urange(r, 2.8f, 3.3f);
        e.eye_ry = urange(r, 0.8f, 1.2f);
        e.eye_tilt = urange(r, 0.12f, 0.28f);
        e.brow_h = urange(r, 3.8f, 4.5f);
        e.brow_inner = urange(r, 1.6f, 2.4f);
        e.brow_outer = urange(r, -1.3f, -0.5f);
        e.brow_arch = urange(r, -0.3f, 0.3f);
        e.brow_in_x = urange(r, 1.8f, 2.6f);
        e.brow_r = urange(r, 1.0f, 1.3f);
        break;
    case C_DISGUST: /* squinting, but not the dark slits of anger */
        e.eye_rx = urange(r, 2.7f, 3.1f);
        e.eye_ry = urange(r, 1.45f, 1.75f);
        e.eye_tilt = urange(r, -0.1f, 0.1f);
        e.brow_h = urange(r, 3.8f, 4.6f);
        e.brow_inner = urange(r, 0.8f, 1.6f);
        e.brow_outer = urange(r, -0.3f, 0.3f);
        e.brow_arch = urange(r, -0.2f, 0.4f);
        break;
    case C_FEAR:
        e.eye_rx = urange(r, 3.0f, 3.4f);
        e.eye_ry = urange(r, 2.8f, 3.4f);
        e.brow_h = urange(r, 6.0f, 7.0f);
        e.brow_inner = urange(r, -1.6f, -0.8f);
        e.brow_outer = urange(r, 0.5f, 1.2f);
        e.brow_arch = urange(r, -0.2f, 0.3f);
        e.brow_in_x = urange(r, 1.8f, 2.5f);
        break;
    case C_HAPPY:
        if (v < 0.5f) {
            e.eye_style = EYE_ARC;
        } else {
            e.eye_ry = urange(r, 1.5f, 1.9f);
        }
        e.brow_h = urange(r, 5.2f, 6.0f);
        e.brow_arch = urange(r, 0.8f, 1.4f);
        break;
    case C_NEUTRAL:
        break;
    case C_SAD:
        e.eye_ry = urange(r, 1.7f, 2.2f);
        e.eye_tilt = urange(r, -0.25f, -0.1f);
        e.brow_inner = urange(r, -3.0f, -2.0f);
        e.brow_outer = urange(r, 0.3f, 1.0f);
        e.brow_arch = urange(r, -0.3f, 0.3f);
        break;
    case C_SURPRISE:
        e.eye_rx = urange(r, 3.0f, 3.4f);
        e.eye_ry = urange(r, 3.0f, 3.6f);
        e.brow_h = urange(r, 6.3f, 7.3f);
        e.brow_inner = urange(r, -0.2f, 0.5f);
        e.brow_outer = urange(r, 0.3f, 1.0f);
        e.brow_arch = urange(r, 1.5f, 2.2f);
        e.brow_in_x = urange(r, 3.0f, 3.6f);
        break;
    default: break;
    }

    for (int side = -1; side <= 1; side += 2) {
        float sd = (float)side;
        /* small per-side asymmetry of every feature */
        float cx = fx + sd * (ex + urange(r, -0.3f, 0.3f)), cy = ey + urange(r, -0.3f, 0.3f);
        add_eye(sc, r, e.eye_style, cx, cy, e.eye_rx * urange(r, 0.93f, 1.07f),
                e.eye_ry * urange(r, 0.93f, 1.07f), e.eye_tilt, sd, ink, sclera);
        float by = cy - e.brow_h + urange(r, -0.3f, 0.3f);
        float xi = fx + sd * e.brow_in_x, xo = fx + sd * e.brow_out_x;
        float yi = by + e.brow_inner + urange(r, -0.3f, 0.3f);
        float yo = by + e.brow_outer + urange(r, -0.3f, 0.3f);
        add_curve(sc, xi, yi, 0.5f * (xi + xo), 0.5f * (yi + yo) - e.brow_arch, xo, yo, e.brow_r,
                  ink, 1.0f);
    }
    float brow_y = ey - e.brow_h;

    /* class marks on the forehead and the nose */
    if (cls == C_ANGRY) { /* vertical frown lines between the brows */
        float lx = urange(r, 0.6f, 1.0f);
        for (int side = -1; side <= 1; side += 2)
            add_line(sc, fx + (float)side * lx, brow_y + 0.2f, fx + (float)side * lx * 0.8f,
                     brow_y + 3.2f, 0.45f, skin_dark, 0.9f);
    }
    if (cls == C_FEAR || (cls == C_SURPRISE && v < 0.6f)) { /* forehead wrinkles */
        float y0 = brow_y - urange(r, 3.0f, 3.8f), len = urange(r, 3.5f, 5.5f);
        for (int i = 0; i < 2; i++) {
            float y = y0 - 1.8f * (float)i;
            add_curve(sc, fx - len, y + 0.4f, fx, y - 0.4f, fx + len, y + 0.4f, 0.4f, skin_dark,
                      0.8f);
        }
    }
    float nost_x = urange(r, 1.2f, 1.7f), nost_r = 0.8f;
    float nose_side = usign(r);
    add_line(sc, fx + nose_side * 0.5f, ny - 5.0f, fx + nose_side * 1.1f, ny - 0.5f, 0.45f,
             skin_dark, 0.45f);
    if (cls == C_DISGUST) { /* wrinkled nose, flared nostrils */
        nost_x += 0.4f;
        nost_r = 1.05f;
        ny -= 0.5f;
        for (int side = -1; side <= 1; side += 2) {
            float sd = (float)side;
            for (int i = 0; i < 2; i++) {
                float y = ny - 3.8f + 1.4f * (float)i;
                add_line(sc, fx + sd * 0.6f, y - 0.5f, fx + sd * 2.6f, y + 0.4f, 0.45f, skin_dark,
                         0.9f);
            }
        }
    }
    for (int side = -1; side <= 1; side += 2)
        add_ellipse(sc, fx + (float)side * nost_x, ny, nost_r, nost_r * 0.65f, 0.0f, ink, 0.75f);

    /* mouth */
    switch (cls) {
    case C_ANGRY:
        if (v < 0.3f) { /* clenched, bared teeth */
            float hw = urange(r, 5.0f, 6.2f), top = urange(r, 1.2f, 1.7f),
                  bot = urange(r, 1.2f, 1.7f), cd = urange(r, 0.3f, 0.8f);
            add_lens(sc, mx - hw, my + cd, mx + hw, my + cd, mx, my - top, mx, my + bot + cd, ink,
                     1.0f);
            add_lens(sc, mx - hw + 1.0f, my + cd, mx + hw - 1.0f, my + cd, mx, my - top + 0.7f, mx,
                     my + bot + cd - 0.7f, sclera, 1.0f);
            add_line(sc, mx - hw + 1.0f, my + cd * 0.5f, mx + hw - 1.0f, my + cd * 0.5f, 0.3f, ink,
                     1.0f);
        } else { /* tight, flat, slightly down */
            float hw = urange(r, 4.0f, 5.5f), c = urange(r, -1.2f, -0.3f);
            add_curve(sc, mx - hw, my - 0.5f * c, mx, my + 0.5f * c, mx + hw, my - 0.5f * c,
                      urange(r, 0.9f, 1.2f), ink, 1.0f);
        }
        break;
    case C_DISGUST: {
        /* lopsided sneer: one corner raised, the upper lip lifted there */
        float hw = urange(r, 5.0f, 6.5f), raise = urange(r, 2.0f, 3.2f),
              sag = urange(r, 0.5f, 1.2f), lip = urange(r, 1.4f, 2.2f);
        float side = usign(r);
        shape *line = new_shape(sc, SH_STROKE, ink, 1.0f);
        shape *open = new_shape(sc, SH_POLY, ink, 1.0f);
        if (line && open) {
            line->r = urange(r, 0.7f, 0.95f);
            float ys[CURVE_SEGS + 1];
            for (int i = 0; i <= CURVE_SEGS; i++) {
                float t = -1.0f + 2.0f * (float)i / CURVE_SEGS; /* -1 .. 1 across */
                float q = clampf(side * t, 0.0f, 1.0f);
                float y = my + sag * t * t - raise * q * q * (3.0f - 2.0f * q);
                ys[i] = y;
                push_point(line, mx + hw * t, y);
                push_point(open, mx + hw * t, y);
            }
            for (int i = CURVE_SEGS; i >= 0; i--) {
                float t = -1.0f + 2.0f * (float)i / CURVE_SEGS;
                float q = clampf(side * t, 0.0f, 1.0f);
                if (q > 0.0f && q < 1.0f)
                    push_point(open, mx + hw * t, ys[i] - lip * sinf(PI_F * q));
            }
            finish_points(line);
            finish_points(open);
        }
        break;
    }
    case C_FEAR: { /* open, stretched sideways, corners pulled down */
        float hw = urange(r, 6.0f, 7.5f), cd = urange(r, 0.4f, 1.1f),
              top = urange(r, 0.9f, 1.5f), bot = urange(r, 2.0f, 3.0f);
        add_lens(sc, mx - hw, my + cd, mx + hw, my + cd, mx, my - top, mx, my + bot, ink, 1.0f);
        float th = urange(r, 0.8f, 1.2f);
        add_lens(sc, mx - hw + 1.6f, my + cd - 0.15f, mx + hw - 1.6f, my + cd - 0.15f, mx,
                 my - top + 0.55f, mx, my - top + 0.55f + th, sclera, 1.0f);
        break;
    }
    case C_HAPPY: {
        float hw = urange(r, 6.0f, 7.5f), c = urange(r, 2.4f, 3.6f);
        float yc = my - 0.5f * c; /* corners */
        if (v < 0.55f) { /* open smile with teeth */
            float t = urange(r, 0.2f, 0.9f), d = urange(r, 3.6f, 5.2f);
            add_lens(sc, mx - hw, yc, mx + hw, yc, mx, yc + t, mx, yc + d, ink, 1.0f);
            add_lens(sc, mx - hw + 1.4f, yc + 0.45f, mx + hw - 1.4f, yc + 0.45f, mx, yc + t + 0.5f,
                     mx, yc + t + 0.5f + urange(r, 0.9f, 1.5f), sclera, 1.0f);
        } else {
            add_curve(sc, mx - hw, yc, mx, yc + c, mx + hw, yc, urange(r, 0.75f, 1.0f), ink, 1.0f);
        }
        for (int side = -1; side <= 1; side += 2) { /* smile folds */
            float sd = (float)side;
            add_curve(sc, fx + sd * urange(r, 3.2f, 4.2f), ny - 0.8f, fx + sd * (hw + 0.8f),
                      0.5f * (ny + yc), mx + sd * (hw + 1.1f), yc + 1.2f, 0.45f, skin_dark, 0.8f);
        }
        break;
    }
    case C_NEUTRAL: {
        float hw = urange(r, 5.0f, 6.8f), c = urange(r, -0.4f, 0.4f);
        add_curve(sc, mx - hw, my - 0.5f * c, mx, my + 0.5f * c, mx + hw, my - 0.5f * c,
                  urange(r, 0.65f, 0.95f), ink, 1.0f);
        break;
    }
    case C_SAD: {
        float hw = urange(r, 4.8f, 6.3f), c = -urange(r, 2.2f, 3.5f);
        add_curve(sc, mx - hw, my - 0.5f * c, mx, my + 0.5f * c, mx + hw, my - 0.5f * c,
                  urange(r, 0.75f, 1.0f), ink, 1.0f);
        break;
    }
    case C_SURPRISE: {
        float orx = urange(r, 2.6f, 3.8f), ory = urange(r, 3.6f, 5.0f);
        add_ellipse(sc, mx, my + 0.8f, orx + 0.8f, ory + 0.8f, 0.0f, skin_dark, 0.6f);
        add_ellipse(sc, mx, my + 0.8f, orx, ory, 0.0f, ink, 1.0f);
        break;
    }
    default: break;
    }
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */
/* ------------------------------------------------------------------------ */

static void gaussian_block(uint64_t seed, uint64_t stream, uint64_t block, float out[4])
{
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    csnn_philox4x32(ctr, seed);
    for (int i = 0; i < 4; i += 2) {
        float u1 = (float)((ctr[i] >> 8) + 1) * (1.0f / 16777216.0f); /* (0, 1] */
        float u2 = (float)(ctr[i + 1] >> 8) * (1.0f / 16777216.0f);
        float m = sqrtf(-2.0f * logf(u1));
        out[i] = m * cosf(2.0f * PI_F * u2);
        out[i + 1] = m * sinf(2.0f * PI_F * u2);
    }
}

/* Renders in tiles of TILE x TILE pixels. Each shape's signed distance is
 * first taken at the tile's centre: a tile farther than its radius plus the
 * edge margin from the boundary is wholly outside (coverage 0) or inside
 * (coverage 1), exactly as the per-pixel test would find, because the
 * distances are 1-Lipschitz (the ellipse estimate gets a factor of 2 to
 * spare); only tiles on an edge are shaded pixel by pixel. */
#define TILE 4

static void render(const scene *sc, uint64_t seed, uint64_t noise_stream, int32_t h, int32_t w,
                   uint8_t *dst)
{
    float inv = 1.0f / sc->scale;
    float margin = 0.5f * sc->soft * inv + 1e-3f; /* coverage is 0 or 1 beyond this */
    float k = sc->scale / sc->soft;               /* face units -> coverage slope */
    float hw = 0.5f * (float)w, hh = 0.5f * (float)h;
    float noise[4];
    uint64_t last_block = UINT64_MAX;
    for (int32_t ty = 0; ty < h; ty += TILE) {
        for (int32_t tx = 0; tx < w; tx += TILE) {
            int32_t tw = w - tx < TILE ? w - tx : TILE, th = h - ty < TILE ? h - ty : TILE;
            float fx[TILE * TILE], fy[TILE * TILE], val[TILE * TILE];
            for (int32_t j = 0; j < th; j++)
                for (int32_t i = 0; i < tw; i++) {
                    float px = (float)(tx + i) + 0.5f, py = (float)(ty + j) + 0.5f;
                    float qx = px - sc->ox, qy = py - sc->oy;
                    fx[j * TILE + i] = (sc->ca * qx + sc->sa * qy) * inv;
                    fy[j * TILE + i] = (-sc->sa * qx + sc->ca * qy) * inv;
                    val[j * TILE + i] = sc->bg + sc->bg_gx * (px - hw) + sc->bg_gy * (py - hh);
                }
            float cqx = (float)tx + 0.5f * (float)tw - sc->ox;
            float cqy = (float)ty + 0.5f * (float)th - sc->oy;
            float cfx = (sc->ca * cqx + sc->sa * cqy) * inv;
            float cfy = (-sc->sa * cqx + sc->ca * cqy) * inv;
            float reach = 0.5f * sqrtf((float)(tw * tw + th * th)) * inv + margin;
            for (int n = 0; n < sc->n; n++) {
                const shape *s = &sc->s[n];
                if (cfx < s->x0 - reach || cfx > s->x1 + reach || cfy < s->y0 - reach ||
                    cfy > s->y1 + reach)
                    continue;
                float d = sdf(s, cfx, cfy);
                float lim = s->kind == SH_ELLIPSE ? 2.0f * reach : reach;
                if (d >= lim) continue;
                if (d <= -lim) {
                    for (int32_t j = 0; j < th; j++)
                        for (int32_t i = 0; i < tw; i++)
                            val[j * TILE + i] += (s->tone - val[j * TILE + i]) * s->alpha;
                    continue;
                }
                for (int32_t j = 0; j < th; j++)
                    for (int32_t i = 0; i < tw; i++) {
                        float x = fx[j * TILE + i], y = fy[j * TILE + i];
                        if (x < s->x0 - margin || x > s->x1 + margin || y < s->y0 - margin ||
                            y > s->y1 + margin)
                            continue;
                        float cov = clampf(0.5f - sdf(s, x, y) * k, 0.0f, 1.0f) * s->alpha;
                        val[j * TILE + i] += (s->tone - val[j * TILE + i]) * cov;
                    }
            }
            for (int32_t j = 0; j < th; j++)
                for (int32_t i = 0; i < tw; i++) {
                    float px = (float)(tx + i) + 0.5f, py = (float)(ty + j) + 0.5f;
                    float light = 1.0f + sc->light_gx * (px - hw) + sc->light_gy * (py - hh);
                    float v = (val[j * TILE + i] * light - 0.5f) * sc->contrast + 0.5f +
                              sc->brightness;
                    uint64_t pix = (uint64_t)(ty + j) * (uint64_t)w + (uint64_t)(tx + i);
                    if ((pix >> 2) != last_block) {
                        last_block = pix >> 2;
                        gaussian_block(seed, noise_stream, last_block, noise);
                    }
                    v += sc->noise * noise[pix & 3];
                    dst[pix] = (uint8_t)lrintf(clampf(v, 0.0f, 1.0f) * 255.0f);
                }
        }
    }
}

static void render_image(uint64_t seed, int cls, int64_t index, int32_t h, int32_t w, uint8_t *dst)
{
    scene sc;
    make_face(&sc, seed, cls, index, h, w);
    render(&sc, seed, image_stream(cls, index) | (1ull << 63), h, w, dst);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

void csnn_synth_options_init(csnn_synth_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->per_class = 200;
    opts->seed = 0;
    opts->height = 48;
    opts->width = 48;
    opts->jpeg_percent = 30;
    opts->reserved = 0;
}

/* Checks `user` (NULL: the defaults) into *o. */
static csnn_status get_options(const char *fn, const csnn_synth_options *user,
                               csnn_synth_options *o)
{
    csnn_synth_options_init(o);
    if (user) {
        CSNN_TRY(csnn__check_struct(user, offsetof(csnn_synth_options, reserved) +
                                              sizeof(uint32_t),
                                    sizeof(csnn_synth_options), "csnn_synth_options"));
        memcpy(o, user, sizeof *o);
        o->size = sizeof *o;
    }
    if (o->reserved != 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: options.reserved must be 0", fn);
    if (o->per_class <= 0 || o->per_class > MAX_PER_CLASS)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "%s: options.per_class %lld is outside 1..%d", fn,
                           (long long)o->per_class, MAX_PER_CLASS);
    if (o->height < MIN_SIDE || o->height > MAX_SIDE || o->width < MIN_SIDE ||
        o->width > MAX_SIDE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "%s: options.height x width %d x %d: each must be in %d..%d", fn,
                           o->height, o->width, MIN_SIDE, MAX_SIDE);
    if (o->jpeg_percent < 0 || o->jpeg_percent > 100)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "%s: options.jpeg_percent %d is outside 0..100", fn, o->jpeg_percent);
    return CSNN_OK;
}

csnn_status csnn_synth_generate(const csnn_synth_options *opts, uint8_t *pixels,
                                size_t pixels_cap, int32_t *labels, size_t labels_cap)
{
    csnn_synth_options o;
    CSNN_TRY(get_options(__func__, opts, &o));
    CSNN_ARG_NOT_NULL(pixels);
    CSNN_ARG_NOT_NULL(labels);
    size_t n = (size_t)o.per_class * N_CLASSES;
    size_t img = (size_t)o.height * (size_t)o.width, total;
    if (!csnn__mul_size(n, img, &total))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "%s: %zu images of %d x %d pixels overflow size_t", __func__, n,
                           o.height, o.width);
    if (pixels_cap < total)
        return csnn__error(CSNN_ERR_SHAPE,
                           "%s: pixels_cap %zu is too small for %zu images of %d x %d (%zu)",
                           __func__, pixels_cap, n, o.height, o.width, total);
    if (labels_cap < n)
        return csnn__error(CSNN_ERR_SHAPE, "%s: labels_cap %zu is too small for %zu labels",
                           __func__, labels_cap, n);
    for (int c = 0; c < N_CLASSES; c++) {
        for (int64_t i = 0; i < o.per_class; i++) {
            size_t j = (size_t)c * (size_t)o.per_class + (size_t)i;
            render_image(o.seed, c, i, o.height, o.width, pixels + j * img);
            labels[j] = c;
        }
    }
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

/* mkdir -p */
static csnn_status make_dirs(const char *fn, char *path)
{
    size_t len = strlen(path);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        if (path[i - 1] == '/') continue; /* "a//b" */
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) != 0) {
            int err = errno;
            struct stat st;
            if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
                csnn_status s = csnn__error(CSNN_ERR_IO, "%s: cannot create directory '%s': %s",
                                            fn, path,
                                            err == EEXIST ? "exists and is not a directory"
                                                          : strerror(err));
                path[i] = saved;
                return s;
            }
        }
        path[i] = saved;
    }
    return CSNN_OK;
}

static csnn_status write_png(const char *path, const uint8_t *pixels, int32_t h, int32_t w)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&img, path, 0, pixels, (png_int_32)w, NULL)) {
        csnn_status s = csnn__error(CSNN_ERR_IO, "cannot write PNG '%s': %s", path, img.message);
        png_image_free(&img);
        return s;
    }
    png_image_free(&img);
    return CSNN_OK;
}

typedef struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} jpeg_err;

static void jpeg_err_exit(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    longjmp(e->jump, 1);
}

static void jpeg_err_output(j_common_ptr cinfo)
{
    (void)cinfo; /* never print */
}

static csnn_status write_jpeg(const char *path, const uint8_t *pixels, int32_t h, int32_t w)
{
    struct jpeg_compress_struct cinfo;
    jpeg_err err;
    FILE *volatile f = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_err_exit;
    err.pub.output_message = jpeg_err_output;
    if (setjmp(err.jump)) {
        char msg[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
        jpeg_destroy_compress(&cinfo);
        if (f) fclose(f);
        return csnn__error(CSNN_ERR_IO, "cannot write JPEG '%s': %s", path, msg);
    }
    jpeg_create_compress(&cinfo);
    f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        jpeg_destroy_compress(&cinfo);
        return csnn__error(CSNN_ERR_IO, "cannot create '%s': %s", path, strerror(e));
    }
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 1;
    cinfo.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, JPEG_QUALITY, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(uintptr_t)(pixels + (size_t)cinfo.next_scanline * (size_t)w);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    FILE *ff = f;
    f = NULL;
    int bad = ferror(ff);
    int e = errno;
    if (fclose(ff) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) return csnn__error(CSNN_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    return CSNN_OK;
}

/* Whether file `i` of a class is a JPEG: exactly floor(per_class * pct / 100)
 * of each class are, spread evenly. */
static int is_jpeg(int64_t i, int32_t pct)
{
    return ((i + 1) * pct) / 100 != (i * pct) / 100;
}

csnn_status csnn_synth_write(const char *dir, const csnn_synth_options *opts)
{
    CSNN_ARG_NOT_NULL(dir);
    if (dir[0] == '\0')
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: dir is empty", __func__);
    csnn_synth_options o;
    CSNN_TRY(get_options(__func__, opts, &o));

    int digits = 5;
    for (int64_t m = 100000; m < o.per_class && digits < 19; m *= 10) digits++;
    size_t cap = strlen(dir) + 64;
    char *path = csnn__alloc_array(cap, 1, "csnn_synth_write: path");
    char *tmp = csnn__alloc_array(cap, 1, "csnn_synth_write: path");
    char *other = csnn__alloc_array(cap, 1, "csnn_synth_write: path");
    uint8_t *img = csnn__alloc_array((size_t)o.height, (size_t)o.width, "csnn_synth_write: image");
    csnn_status st = CSNN_OK;
    if (!path || !tmp || !other || !img) {
        st = CSNN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (int c = 0; c < N_CLASSES && st == CSNN_OK; c++) {
        snprintf(path, cap, "%s/%s", dir, class_names[c]);
        st = make_dirs(__func__, path);
        for (int64_t i = 0; i < o.per_class && st == CSNN_OK; i++) {
            int jpg = is_jpeg(i, o.jpeg_percent);
            const char *ext = jpg ? "jpg" : "png";
            snprintf(path, cap, "%s/%s/%0*lld.%s", dir, class_names[c], digits, (long long)i, ext);
            snprintf(tmp, cap, "%s/%s/.%0*lld.%s.tmp", dir, class_names[c], digits,
                     (long long)i, ext);
            snprintf(other, cap, "%s/%s/%0*lld.%s", dir, class_names[c], digits, (long long)i,
                     jpg ? "png" : "jpg");
            render_image(o.seed, c, i, o.height, o.width, img);
            st = jpg ? write_jpeg(tmp, img, o.height, o.width)
                     : write_png(tmp, img, o.height, o.width);
            if (st != CSNN_OK) {
                remove(tmp);
                csnn__error_prefix(st, "%s", __func__);
                break;
            }
            if (rename(tmp, path) != 0) {
                int e = errno;
                remove(tmp);
                st = csnn__error(CSNN_ERR_IO, "%s: cannot rename '%s' to '%s': %s", __func__, tmp,
                                 path, strerror(e));
                break;
            }
            /* a file of the other format from an earlier run with another
             * jpeg_percent would make this sample appear twice */
            if (unlink(other) != 0 && errno != ENOENT) {
                int e = errno;
                st = csnn__error(CSNN_ERR_IO, "%s: cannot remove stale '%s': %s", __func__, other,
                                 strerror(e));
            }
        }
    }
done:
    free(path);
    free(tmp);
    free(other);
    free(img);
    return st;
}

const char *csnn_synth_class_name(int32_t index)
{
    return index >= 0 && index < N_CLASSES ? class_names[index] : NULL;
}
