/* spec.c - the text model spec: parser (with line/column errors), shape
 * checks and the canonical formatter. Grammar in docs/MODEL_SPEC.md. */
#include <ctype.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* ------------------------------------------------------------------------ */
/* Locale-independent numbers                                                */
/* ------------------------------------------------------------------------ */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

double csnn__strtod(const char *s, char **end)
{
    pthread_once(&c_locale_once, make_c_locale);
    if (c_locale) return strtod_l(s, end, c_locale);
    return strtod(s, end);
}

void csnn__format_float(char *buf, size_t cap, double v)
{
    pthread_once(&c_locale_once, make_c_locale);
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    snprintf(buf, cap, "%.9g", v);
    if (c_locale) uselocale(old);
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct token {
    const char *s;
    int len;
    int line, col;
} token;

#define MAX_TOKENS 32

typedef struct statement {
    token tok[MAX_TOKENS];
    int n;
    bool is_static;
} statement;

static csnn_status spec_error(const token *t, const char *fmt, ...) CSNN_PRINTF(2, 3);
static csnn_status spec_error(const token *t, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return csnn__error(CSNN_ERR_SPEC, "model spec, line %d, column %d: %s", t->line, t->col, msg);
}

static bool tok_is(const token *t, const char *word)
{
    return (int)strlen(word) == t->len && memcmp(t->s, word, (size_t)t->len) == 0;
}

/* Copies a token (or part of one) into buf as a C string. */
static void tok_copy(const char *s, int len, char *buf, size_t cap)
{
    size_t n = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

static csnn_status parse_int(const token *t, const char *s, int len, const char *what, int64_t lo,
                             int64_t hi, int32_t *out)
{
    char buf[32];
    if (len <= 0 || len >= (int)sizeof buf)
        return spec_error(t, "%s: expected an integer from %lld to %lld", what, (long long)lo,
                          (long long)hi);
    tok_copy(s, len, buf, sizeof buf);
    int64_t v = 0;
    for (int i = 0; buf[i]; i++) {
        if (!isdigit((unsigned char)buf[i]) || v > ((int64_t)1 << 40))
            return spec_error(t, "%s: '%s' is not an integer from %lld to %lld", what, buf,
                              (long long)lo, (long long)hi);
        v = v * 10 + (buf[i] - '0');
    }
    if (v < lo || v > hi)
        return spec_error(t, "%s: %lld is outside %lld..%lld", what, (long long)v, (long long)lo,
                          (long long)hi);
    *out = (int32_t)v;
    return CSNN_OK;
}

static csnn_status parse_float(const token *t, const char *s, int len, const char *what, double lo,
                               double hi, bool lo_open, float *out)
{
    char buf[64];
    if (len <= 0 || len >= (int)sizeof buf)
        return spec_error(t, "%s: expected a number", what);
    tok_copy(s, len, buf, sizeof buf);
    char *end;
    double v = csnn__strtod(buf, &end);
    if (end == buf || *end != '\0' || !isfinite(v))
        return spec_error(t, "%s: '%s' is not a finite number", what, buf);
    /* the range holds for the float that is stored as well: 1e-50 is above
     * 0 but its float is 0, and 1.00000001 is above 1 but its float is 1; the
     * canonical text (a saved model's spec) must parse again */
    if (v < lo || v > hi || (lo_open && v == lo)) /* before the conversion: 1e300 has no float */
        return spec_error(t, "%s: %s is outside %s%g, %g]", what, buf, lo_open ? "(" : "[", lo, hi);
    float f = (float)v;
    if (f < lo || f > hi || (lo_open && f == lo))
        return spec_error(t, "%s: %s is outside %s%g, %g] as a 32-bit float", what, buf,
                          lo_open ? "(" : "[", lo, hi);
    *out = f;
    return CSNN_OK;
}

static csnn_status parse_bool(const token *t, const char *s, int len, const char *what, bool *out)
{
    if (len == 1 && (s[0] == '0' || s[0] == '1')) {
        *out = s[0] == '1';
        return CSNN_OK;
    }
    return spec_error(t, "%s: expected 0 or 1", what);
}

/* ------------------------------------------------------------------------ */
/* Layer statements                                                          */
/* ------------------------------------------------------------------------ */

typedef struct kv {
    const token *t;
    const char *key;
    int key_len;
    const char *val;
    int val_len;
} kv;

/* Splits "key=value"; a token without '=' has val NULL. */
static kv split_kv(const token *t)
{
    kv r = {t, t->s, t->len, NULL, 0};
    const char *eq = memchr(t->s, '=', (size_t)t->len);
    if (eq) {
        r.key_len = (int)(eq - t->s);
        r.val = eq + 1;
        r.val_len = t->len - r.key_len - 1;
    }
    return r;
}

static bool key_is(const kv *o, const char *k)
{
    return (int)strlen(k) == o->key_len && memcmp(o->key, k, (size_t)o->key_len) == 0;
}

/* Shorthand "k3", "s2", "p1" for conv options: letter + digits. */
static bool shorthand(const kv *o, char letter, kv *expanded)
{
    if (o->val || o->key_len < 2 || o->key[0] != letter) return false;
    for (int i = 1; i < o->key_len; i++)
        if (!isdigit((unsigned char)o->key[i])) return false;
    *expanded = *o;
    expanded->key_len = 1;
    expanded->val = o->key + 1;
    expanded->val_len = o->key_len - 1;
    return true;
}

static csnn_status parse_name(const kv *o, layer_spec *l)
{
    if (o->val_len <= 0 || o->val_len >= CSNN_NAME_MAX)
        return spec_error(o->t, "name: expected 1 to %d characters", CSNN_NAME_MAX - 1);
    for (int i = 0; i < o->val_len; i++) {
        char c = o->val[i];
        if (!(isalnum((unsigned char)c) || c == '_') || (i == 0 && isdigit((unsigned char)c)))
            return spec_error(o->t, "name: use letters, digits and '_' (not starting with a digit)");
    }
    tok_copy(o->val, o->val_len, l->name, sizeof l->name);
    return CSNN_OK;
}

static csnn_status neuron_option(const kv *o, layer_spec *l, bool *alpha_set)
{
    csnn_neuron_desc *n = &l->neuron;
    bool lif = n->kind == CSNN_NEURON_LIF;
    if (key_is(o, "v_threshold"))
        return parse_float(o->t, o->val, o->val_len, "v_threshold", -1e6, 1e6, false,
                           &n->v_threshold);
    if (key_is(o, "v_reset")) {
        if (o->val_len == 4 && memcmp(o->val, "none", 4) == 0) {
            n->hard_reset = 0;
            n->v_reset = 0.0f;
            return CSNN_OK;
        }
        n->hard_reset = 1;
        return parse_float(o->t, o->val, o->val_len, "v_reset", -1e6, 1e6, false, &n->v_reset);
    }
    if (key_is(o, "detach_reset")) {
        bool b = false;
        CSNN_TRY(parse_bool(o->t, o->val, o->val_len, "detach_reset", &b));
        n->detach_reset = b;
        return CSNN_OK;
    }
    if (key_is(o, "surrogate")) {
        if (o->val_len == 4 && memcmp(o->val, "atan", 4) == 0)
            n->surrogate = CSNN_SURROGATE_ATAN;
        else if (o->val_len == 7 && memcmp(o->val, "sigmoid", 7) == 0)
            n->surrogate = CSNN_SURROGATE_SIGMOID;
        else
            return spec_error(o->t, "surrogate: expected atan or sigmoid");
        return CSNN_OK;
    }
    if (key_is(o, "alpha")) {
        *alpha_set = true;
        return parse_float(o->t, o->val, o->val_len, "alpha", 0.0, 1e4, true, &n->alpha);
    }
    if (key_is(o, "tau")) {
        if (!lif) return spec_error(o->t, "tau applies to lif only (if has no leak)");
        return parse_float(o->t, o->val, o->val_len, "tau", 1.0, 1e6, true, &n->tau);
    }
    if (key_is(o, "decay_input")) {
        if (!lif) return spec_error(o->t, "decay_input applies to lif only");
        bool b = false;
        CSNN_TRY(parse_bool(o->t, o->val, o->val_len, "decay_input", &b));
        n->decay_input = b;
        return CSNN_OK;
    }
    return spec_error(o->t, "unknown option '%.*s' for %s (known: v_threshold, v_reset, "
                            "detach_reset, surrogate, alpha%s, name)",
                      o->key_len, o->key, lif ? "lif" : "if", lif ? ", tau, decay_input" : "");
}

static csnn_status parse_layer(const statement *st, layer_spec *l)
{
    const token *kw = &st->tok[0];
    memset(l, 0, sizeof *l);
    l->line = kw->line;
    l->col = kw->col;
    l->is_static = st->is_static;
    bool need_positional = false;
    const char *positional_what = NULL;

    if (tok_is(kw, "conv")) {
        l->type = LAYER_CONV;
        l->k = 3;
        l->stride = 1;
        l->pad = 0;
        l->bias = true;
        need_positional = true;
        positional_what = "conv: output channels";
    } else if (tok_is(kw, "linear")) {
        l->type = LAYER_LINEAR;
        l->bias = true;
        need_positional = true;
        positional_what = "linear: output features";
    } else if (tok_is(kw, "bn")) {
        l->type = LAYER_BN;
        l->eps = 1e-5f;
        l->momentum = 0.1f;
    } else if (tok_is(kw, "maxpool")) {
        l->type = LAYER_MAXPOOL;
        need_positional = true;
        positional_what = "maxpool: window size";
    } else if (tok_is(kw, "if") || tok_is(kw, "lif")) {
        l->type = LAYER_NEURON;
        l->neuron.kind = tok_is(kw, "lif") ? CSNN_NEURON_LIF : CSNN_NEURON_IF;
        l->neuron.surrogate = CSNN_SURROGATE_ATAN;
        l->neuron.hard_reset = 1;
        l->neuron.v_threshold = 1.0f;
        l->neuron.v_reset = 0.0f;
        l->neuron.tau = 2.0f;
        l->neuron.decay_input = l->neuron.kind == CSNN_NEURON_LIF;
    } else if (tok_is(kw, "relu")) {
        l->type = LAYER_RELU;
    } else if (tok_is(kw, "flatten")) {
        l->type = LAYER_FLATTEN;
    } else if (tok_is(kw, "dropout")) {
        l->type = LAYER_DROPOUT;
        need_positional = true;
        positional_what = "dropout: probability";
    } else {
        return spec_error(kw, "unknown statement '%.*s' (expected input, steps, classes, conv, "
                              "bn, maxpool, if, lif, relu, flatten, dropout or linear)",
                          kw->len, kw->s);
    }

    int i = 1;
    if (need_positional) {
        if (st->n < 2 || memchr(st->tok[1].s, '=', (size_t)st->tok[1].len)) {
            const token *at = st->n >= 2 ? &st->tok[1] : kw;
            return spec_error(at, "%s expected after '%.*s'", positional_what, kw->len, kw->s);
        }
        const token *t = &st->tok[1];
        switch (l->type) {
        case LAYER_CONV:
        case LAYER_LINEAR:
            CSNN_TRY(parse_int(t, t->s, t->len, positional_what, 1, CSNN_MAX_DIM, &l->out));
            break;
        case LAYER_MAXPOOL:
            CSNN_TRY(parse_int(t, t->s, t->len, positional_what, 1, 16, &l->k));
            l->stride = l->k;
            break;
        case LAYER_DROPOUT:
            CSNN_TRY(parse_float(t, t->s, t->len, positional_what, 0.0, 1.0, false, &l->p));
            if (l->p >= 1.0f) return spec_error(t, "dropout: the probability must be below 1");
            break;
        default: break;
        }
        i = 2;
    }

    bool alpha_set = false;
    for (; i < st->n; i++) {
        kv o = split_kv(&st->tok[i]), e;
        if (l->type == LAYER_CONV &&
            (shorthand(&o, 'k', &e) || shorthand(&o, 's', &e) || shorthand(&o, 'p', &e)))
            o = e;
        if (!o.val) {
            return spec_error(o.t, "'%.*s': options are written key=value", o.t->len, o.t->s);
        }
        if (key_is(&o, "name")) {
            CSNN_TRY(parse_name(&o, l));
            continue;
        }
        switch (l->type) {
        case LAYER_CONV:
            if (key_is(&o, "k") || key_is(&o, "kernel")) {
                CSNN_TRY(parse_int(o.t, o.val, o.val_len, "conv kernel", 1, 64, &l->k));
            } else if (key_is(&o, "s") || key_is(&o, "stride")) {
                CSNN_TRY(parse_int(o.t, o.val, o.val_len, "conv stride", 1, 64, &l->stride));
            } else if (key_is(&o, "p") || key_is(&o, "pad")) {
                CSNN_TRY(parse_int(o.t, o.val, o.val_len, "conv padding", 0, 64, &l->pad));
            } else if (key_is(&o, "bias")) {
                CSNN_TRY(parse_bool(o.t, o.val, o.val_len, "bias", &l->bias));
            } else {
                return spec_error(o.t, "unknown option '%.*s' for conv (known: k, s, p, bias, "
                                       "name)",
                                  o.key_len, o.key);
            }
            break;
        case LAYER_LINEAR:
            if (!key_is(&o, "bias"))
                return spec_error(o.t, "unknown option '%.*s' for linear (known: bias, name)",
                                  o.key_len, o.key);
            CSNN_TRY(parse_bool(o.t, o.val, o.val_len, "bias", &l->bias));
            break;
        case LAYER_BN:
            if (key_is(&o, "eps")) {
                CSNN_TRY(parse_float(o.t, o.val, o.val_len, "bn eps", 0.0, 1.0, true, &l->eps));
            } else if (key_is(&o, "momentum")) {
                CSNN_TRY(parse_float(o.t, o.val, o.val_len, "bn momentum", 0.0, 1.0, false,
                                     &l->momentum));
            } else {
                return spec_error(o.t, "unknown option '%.*s' for bn (known: eps, momentum, name)",
                                  o.key_len, o.key);
            }
            break;
        case LAYER_MAXPOOL:
            if (!key_is(&o, "stride"))
                return spec_error(o.t, "unknown option '%.*s' for maxpool (known: stride, name)",
                                  o.key_len, o.key);
            CSNN_TRY(parse_int(o.t, o.val, o.val_len, "maxpool stride", 1, 16, &l->stride));
            break;
        case LAYER_NEURON:
            CSNN_TRY(neuron_option(&o, l, &alpha_set));
            break;
        default:
            return spec_error(o.t, "unknown option '%.*s' for %.*s (known: name)", o.key_len,
                              o.key, kw->len, kw->s);
        }
    }
    if (l->type == LAYER_NEURON && !alpha_set)
        l->neuron.alpha = l->neuron.surrogate == CSNN_SURROGATE_SIGMOID ? 4.0f : 2.0f;
    return CSNN_OK;
}

const char *csnn__layer_keyword(const layer_spec *l)
{
    switch (l->type) {
    case LAYER_CONV: return "conv";
    case LAYER_BN: return "bn";
    case LAYER_MAXPOOL: return "maxpool";
    case LAYER_NEURON: return l->neuron.kind == CSNN_NEURON_LIF ? "lif" : "if";
    case LAYER_RELU: return "relu";
    case LAYER_FLATTEN: return "flatten";
    case LAYER_DROPOUT: return "dropout";
    case LAYER_LINEAR: return "linear";
    }
    return "?";
}

static const char *auto_prefix(layer_type t)
{
    switch (t) {
    case LAYER_CONV: return "conv";
    case LAYER_BN: return "bn";
    case LAYER_MAXPOOL: return "pool";
    case LAYER_NEURON: return "sn";
    case LAYER_RELU: return "relu";
    case LAYER_FLATTEN: return "flatten";
    case LAYER_DROPOUT: return "dropout";
    case LAYER_LINEAR: return "fc";
    }
    return "layer";
}

/* ------------------------------------------------------------------------ */
/* Header statements and the shape walk                                      */
/* ------------------------------------------------------------------------ */

static csnn_status parse_input(const statement *st, model_spec *spec)
{
    if (st->n != 2) return spec_error(&st->tok[0], "input: expected one argument CxHxW, e.g. 1x48x48");
    const token *t = &st->tok[1];
    int32_t v[3];
    const char *p = t->s, *end = t->s + t->len;
    for (int i = 0; i < 3; i++) {
        const char *x = p;
        while (x < end && *x != 'x') x++;
        if ((i < 2 && x == end) || (i == 2 && x != end))
            return spec_error(t, "input: expected CxHxW, e.g. 1x48x48");
        CSNN_TRY(parse_int(t, p, (int)(x - p), "input size", 1, CSNN_MAX_DIM, &v[i]));
        p = x + 1;
    }
    int64_t numel = (int64_t)v[0] * v[1] * v[2];
    if (numel > CSNN_MAX_SAMPLE_ELEMENTS)
        return spec_error(t, "input: %lld elements per sample exceed the limit of %d",
                          (long long)numel, CSNN_MAX_SAMPLE_ELEMENTS);
    spec->in_c = v[0];
    spec->in_h = v[1];
    spec->in_w = v[2];
    return CSNN_OK;
}

/* Walks the shapes through the layers, checking each; fills names and
 * spec->classes. */
static csnn_status check_layers(model_spec *spec, const token *end_tok)
{
    int counters[LAYER_LINEAR + 1] = {0};
    shape3 s = {spec->in_c, spec->in_h, spec->in_w, false};
    bool seen_dynamic = false;
    for (int i = 0; i < spec->n_layers; i++) {
        layer_spec *l = &spec->layers[i];
        token at = {csnn__layer_keyword(l), 0, l->line, l->col};
        if (l->name[0] == '\0')
            snprintf(l->name, sizeof l->name, "%s%d", auto_prefix(l->type),
                     ++counters[l->type]);
        else
            counters[l->type]++;
        for (int j = 0; j < i; j++)
            if (strcmp(spec->layers[j].name, l->name) == 0)
                return spec_error(&at, "layer name '%s' is used twice", l->name);
        if (l->is_static) {
            if (seen_dynamic)
                return spec_error(&at, "static layers must come first (they run once per image, "
                                       "before the time steps)");
            if (l->type == LAYER_NEURON || l->type == LAYER_DROPOUT)
                return spec_error(&at, "%s cannot be static: it acts per time step",
                                  csnn__layer_keyword(l));
        } else {
            seen_dynamic = true;
        }
        int64_t numel;
        switch (l->type) {
        case LAYER_CONV: {
            if (s.flat) return spec_error(&at, "conv needs a CxHxW input, not a flat vector");
            int64_t ho = ((int64_t)s.h + 2 * l->pad - l->k) / l->stride + 1;
            int64_t wo = ((int64_t)s.w + 2 * l->pad - l->k) / l->stride + 1;
            if (s.h + 2 * l->pad < l->k || s.w + 2 * l->pad < l->k)
                return spec_error(&at, "conv: kernel %d does not fit the %dx%d input with "
                                       "padding %d",
                                  l->k, s.h, s.w, l->pad);
            s.c = l->out;
            s.h = (int32_t)ho;
            s.w = (int32_t)wo;
            break;
        }
        case LAYER_MAXPOOL: {
            if (s.flat) return spec_error(&at, "maxpool needs a CxHxW input, not a flat vector");
            if (s.h < l->k || s.w < l->k)
                return spec_error(&at, "maxpool: window %d is larger than the %dx%d input", l->k,
                                  s.h, s.w);
            s.h = (s.h - l->k) / l->stride + 1;
            s.w = (s.w - l->k) / l->stride + 1;
            break;
        }
        case LAYER_FLATTEN: {
            int64_t f = (int64_t)s.c * s.h * s.w;
            if (f > CSNN_MAX_SAMPLE_ELEMENTS)
                return spec_error(&at, "flatten: %lld features exceed the limit",
                                  (long long)f);
            s.c = (int32_t)f;
            s.h = s.w = 1;
            s.flat = true;
            break;
        }
        case LAYER_LINEAR:
            if (!s.flat)
                return spec_error(&at, "linear needs a flat input: add 'flatten' before it");
            s.c = l->out;
            break;
        default: break;
        }
        numel = (int64_t)s.c * s.h * s.w;
        if (numel > CSNN_MAX_SAMPLE_ELEMENTS)
            return spec_error(&at, "%s: %lld elements per sample exceed the limit of %d",
                              l->name, (long long)numel, CSNN_MAX_SAMPLE_ELEMENTS);
    }
    if (spec->n_layers == 0) return spec_error(end_tok, "the spec has no layers");
    if (!s.flat)
        return spec_error(end_tok, "the model must end with a flat output (flatten / linear), "
                                   "one value per class");
    if (s.c > CSNN_MAX_CLASSES)
        return spec_error(end_tok, "%d outputs exceed the limit of %d classes", s.c,
                          CSNN_MAX_CLASSES);
    if (spec->classes && spec->classes != s.c)
        return spec_error(end_tok, "classes is %d but the last layer has %d outputs",
                          spec->classes, s.c);
    spec->classes = s.c;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* The parser                                                                */
/* ------------------------------------------------------------------------ */

typedef struct parser {
    model_spec *spec;
    int cap_layers;
    bool have_input, have_steps, have_classes;
    token last;
} parser;

static csnn_status run_statement(parser *p, const statement *st)
{
    const token *kw = &st->tok[0];
    model_spec *spec = p->spec;
    if (tok_is(kw, "input") || tok_is(kw, "steps") || tok_is(kw, "classes")) {
        if (st->is_static) return spec_error(kw, "'static:' applies to layers only");
        if (spec->n_layers > 0)
            return spec_error(kw, "'%.*s' must come before the first layer", kw->len, kw->s);
        bool *seen = tok_is(kw, "input") ? &p->have_input
                     : tok_is(kw, "steps") ? &p->have_steps : &p->have_classes;
        if (*seen) return spec_error(kw, "'%.*s' is given twice", kw->len, kw->s);
        *seen = true;
        if (tok_is(kw, "input")) return parse_input(st, spec);
        if (st->n != 2)
            return spec_error(kw, "'%.*s' takes one number", kw->len, kw->s);
        if (tok_is(kw, "steps"))
            return parse_int(&st->tok[1], st->tok[1].s, st->tok[1].len, "steps", 1,
                             CSNN_MAX_STEPS, &spec->steps);
        return parse_int(&st->tok[1], st->tok[1].s, st->tok[1].len, "classes", 1,
                         CSNN_MAX_CLASSES, &spec->classes);
    }
    if (!p->have_input)
        return spec_error(kw, "the spec must begin with 'input CxHxW' (e.g. input 1x48x48)");
    if (spec->n_layers == CSNN_MAX_LAYERS)
        return csnn__error(CSNN_ERR_LIMIT, "model spec, line %d: more than %d layers", kw->line,
                           CSNN_MAX_LAYERS);
    if (spec->n_layers == p->cap_layers) {
        int cap = p->cap_layers ? 2 * p->cap_layers : 16;
        layer_spec *nl = realloc(spec->layers, (size_t)cap * sizeof *nl);
        if (!nl) return csnn__error(CSNN_ERR_OUT_OF_MEMORY, "model spec: out of memory");
        spec->layers = nl;
        p->cap_layers = cap;
    }
    CSNN_TRY(parse_layer(st, &spec->layers[spec->n_layers]));
    spec->n_layers++;
    return CSNN_OK;
}

csnn_status csnn__spec_parse(const char *text, model_spec *out)
{
    memset(out, 0, sizeof *out);
    if (!text) return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "model spec: text is NULL");
    size_t len = strnlen(text, CSNN_SPEC_MAX_BYTES + 1);
    if (len > CSNN_SPEC_MAX_BYTES)
        return csnn__error(CSNN_ERR_LIMIT, "model spec: longer than %d bytes",
                           CSNN_SPEC_MAX_BYTES);
    parser p = {out, 0, false, false, false, {text, 0, 1, 1}};
    out->steps = 1;
    statement st = {.n = 0, .is_static = false};
    bool line_static = false;
    int line = 1;
    const char *line_start = text;
    const char *s = text;
    csnn_status rc = CSNN_OK;
    for (;;) {
        char c = *s;
        if (c == '\0' || c == '\n' || c == ';' || c == '#') {
            if (st.n > 0) {
                st.is_static = line_static;
                rc = run_statement(&p, &st);
                if (rc != CSNN_OK) goto fail;
            }
            st.n = 0;
            if (c == '#')
                while (*s && *s != '\n') s++;
            if (*s == '\0') break;
            if (*s == '\n') {
                line++;
                line_start = s + 1;
                line_static = false;
            }
            s++;
            continue;
        }
        if (isspace((unsigned char)c)) {
            s++;
            continue;
        }
        if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f) {
            token t = {s, 1, line, (int)(s - line_start) + 1};
            rc = spec_error(&t, "unexpected character (byte 0x%02x)", (unsigned char)c);
            goto fail;
        }
        token t = {s, 0, line, (int)(s - line_start) + 1};
        while (*s && !isspace((unsigned char)*s) && *s != ';' && *s != '#' &&
               (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f)
            s++;
        t.len = (int)(s - t.s);
        if (st.n == 0 && t.len == 7 && memcmp(t.s, "static:", 7) == 0) {
            /* "static:" at the start of a line marks every statement on it */
            bool first_on_line = true;
            for (const char *q = line_start; q < t.s; q++)
                if (!isspace((unsigned char)*q)) first_on_line = false;
            if (!first_on_line) {
                rc = spec_error(&t, "'static:' must begin its line");
                goto fail;
            }
            line_static = true;
            continue;
        }
        if (st.n == MAX_TOKENS) {
            rc = spec_error(&t, "too many words in one statement (at most %d)", MAX_TOKENS);
            goto fail;
        }
        st.tok[st.n++] = t;
        p.last = t;
    }
    if (!p.have_input) {
        token t = {text, 0, line, 1};
        rc = spec_error(&t, "the spec must begin with 'input CxHxW' (e.g. input 1x48x48)");
        goto fail;
    }
    {
        token end_tok = {s, 0, line, (int)(s - line_start) + 1};
        rc = check_layers(out, &end_tok);
        if (rc != CSNN_OK) goto fail;
    }
    return CSNN_OK;
fail:
    csnn__spec_free(out);
    return rc;
}

void csnn__spec_free(model_spec *spec)
{
    if (!spec) return;
    free(spec->layers);
    spec->layers = NULL;
    spec->n_layers = 0;
}

/* ------------------------------------------------------------------------ */
/* Canonical text                                                            */
/* ------------------------------------------------------------------------ */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) CSNN_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->failed = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
}

static void sb_float(sbuf *b, const char *key, double v)
{
    char num[40];
    csnn__format_float(num, sizeof num, v);
    sb_printf(b, " %s=%s", key, num);
}

char *csnn__spec_format(const model_spec *spec)
{
    sbuf b = {0};
    sb_printf(&b, "input %dx%dx%d\nsteps %d\nclasses %d\n", spec->in_c, spec->in_h, spec->in_w,
              spec->steps, spec->classes);
    for (int i = 0; i < spec->n_layers; i++) {
        const layer_spec *l = &spec->layers[i];
        sb_printf(&b, "%s%s", l->is_static ? "static: " : "", csnn__layer_keyword(l));
        switch (l->type) {
        case LAYER_CONV:
            sb_printf(&b, " %d k=%d s=%d p=%d bias=%d", l->out, l->k, l->stride, l->pad,
                      l->bias ? 1 : 0);
            break;
        case LAYER_LINEAR: sb_printf(&b, " %d bias=%d", l->out, l->bias ? 1 : 0); break;
        case LAYER_BN:
            sb_float(&b, "eps", l->eps);
            sb_float(&b, "momentum", l->momentum);
            break;
        case LAYER_MAXPOOL: sb_printf(&b, " %d stride=%d", l->k, l->stride); break;
        case LAYER_DROPOUT: {
            char num[40];
            csnn__format_float(num, sizeof num, l->p);
            sb_printf(&b, " %s", num);
            break;
        }
        case LAYER_NEURON: {
            const csnn_neuron_desc *n = &l->neuron;
            if (n->kind == CSNN_NEURON_LIF) {
                sb_float(&b, "tau", n->tau);
                sb_printf(&b, " decay_input=%d", n->decay_input ? 1 : 0);
            }
            sb_float(&b, "v_threshold", n->v_threshold);
            if (n->hard_reset)
                sb_float(&b, "v_reset", n->v_reset);
            else
                sb_printf(&b, " v_reset=none");
            sb_printf(&b, " detach_reset=%d surrogate=%s", n->detach_reset ? 1 : 0,
                      n->surrogate == CSNN_SURROGATE_SIGMOID ? "sigmoid" : "atan");
            sb_float(&b, "alpha", n->alpha);
            break;
        }
        default: break;
        }
        sb_printf(&b, " name=%s\n", l->name);
    }
    if (b.failed) {
        free(b.s);
        csnn__error(CSNN_ERR_OUT_OF_MEMORY, "model spec: out of memory while formatting");
        return NULL;
    }
    return b.s;
}

csnn_status csnn__check_class_name(const char *name)
{
    size_t n = strnlen(name, CSNN_CLASS_NAME_MAX);
    if (n == 0 || n >= CSNN_CLASS_NAME_MAX)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "class name '%.40s': must be 1 to %d bytes", name,
                           CSNN_CLASS_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "class name '%.40s': control characters are not allowed", name);
    return CSNN_OK;
}
