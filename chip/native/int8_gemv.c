/* Weight-only int8 matrix-vector product for decode-sized batches:
 *
 *     y (M, N) = x (M, K) @ (w (N, K) int8 * scales (N,)[:, None]).T,   M = 1..8
 *
 * x and y bfloat16 or float32, w row-major, scales float32 (chip/ops/int8_matmul.py quantizes).
 * Decode is bound by the bytes of the weights, so each weight row is read from memory once for all
 * M rows of x: a block of R weight rows is widened in registers and multiplied with every row of
 * x. bfloat16 x (the op's path): x is rounded per row to 16-bit fixed point (the bound is stated
 * at "bfloat16 x by VNNI"), the weights are sign-extended to int16 and `vpdpwssd` takes 32 exact
 * products per instruction into int32. float32 x: weights to fp32, FMAs. A second bf16 variant
 * (weights to bf16, `vdpbf16ps`, exact products) is kept for benchmarks/int8_gemv_ab.py: it needs
 * about six instructions per 32 weights to widen them, against one. Scales apply once per output,
 * which is rounded once to y's dtype.
 *
 * Threads: see "the thread pool". Needs AVX-512 (bf16 x: AVX512_VNNI or AVX512_BF16);
 * `int8_gemv_supported` says which.
 *
 * The file also holds `bf16_gemv`, the bf16-weight product of the `linear` op for 1-8 rows (bf16 x
 * and w, `vdpbf16ps`, fp32 sums, optional bias) on the same blocks and pool: batch-1 bf16 decode
 * 1.42x, batch 8 1.09x oneDNN's prepacked linear (benchmarks/bf16_gemv_ab.py).
 *
 * Built at first use by chip/native/build.py with -O3 -march=native.
 */
#define _GNU_SOURCE /* syscall() for the futex */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROWS 8     /* rows of x per call: at 16, prepacked bf16 oneDNN is faster (0.6-1.0x) */
#define MAX_BLOCK 4    /* weight rows per block (R below) */
#define MAX_THREADS 64
#define MIN_ROWS_PER_THREAD 32 /* fewer output rows than this per thread: the handoff costs more */
#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 4096 /* ahead of each weight row's reads (from DRAM: 1.1-1.3x over 1024) */
#endif

typedef struct {
    const void *x;
    const int8_t *w;
    const float *scales;
    void *y;
    int64_t num_rows, n, k; /* M, N, K */
    int64_t n_begin, n_end; /* this thread's output rows [begin, end) */
    const int16_t *xq;      /* the VNNI path's x: (M, kp) 16-bit fixed point, zero past K */
    const float *x_scales;  /* (M,): x[m] ~= xq[m] * x_scales[m] */
    int64_t kp;             /* K rounded up to 32 */
    const uint16_t *wh;     /* the bf16-weight GEMV's w (N, K) bfloat16, and its bias (N,) or 0 */
    const uint16_t *bias;
    int64_t ldy;            /* its y's row stride (a slice of a wider output: q/k/v written in place) */
} GemvArgs;

typedef void (*RangeFn)(const GemvArgs *);

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define HAVE_AVX512 1

static inline void bf16_store(uint16_t *p, float x) {
    union { uint32_t u; float f; } c;
    c.f = x;
    const uint16_t rounded = (uint16_t)((c.u + 0x7fffu + ((c.u >> 16) & 1u)) >> 16); /* to nearest even */
    *p = (c.u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((c.u >> 16) | 0x40u) : rounded; /* NaN stays NaN */
}

/* 16 int8 weights -> 16 fp32 (exact). */
static inline __m512 widen16(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }

/* out[i] = the sum of v[i]'s 16 lanes, i < count. From 5 vectors on, by a tree that halves 16
 * vectors' partial sums at each level (vector i ends in lane 4 * (i % 4) + i / 4): about a third
 * of the instructions of one reduction per vector. */
static inline __attribute__((always_inline)) void sum_each(const __m512 *v, const int count, float *out) {
    if (count <= 4) {
        _Pragma("GCC unroll 4") for (int i = 0; i < count; i++) out[i] = _mm512_reduce_add_ps(v[i]);
        return;
    }
    __m512 a[16], b[8], c[4], d[2];
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) a[i] = i < count ? v[i] : _mm512_setzero_ps();
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) /* 256-bit halves: 8 partials each of 2 */
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) /* 128-bit blocks: 4 partials each of 4 */
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
    _Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) { /* 64-bit pairs: 2 partials each of 8 */
        const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(c[2 * i]), _mm512_castps_pd(c[2 * i + 1]));
        const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(c[2 * i]), _mm512_castps_pd(c[2 * i + 1]));
        d[i] = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                          _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1))));
    _Pragma("GCC unroll 16") for (int i = 0; i < count; i++) out[i] = lanes[4 * (i % 4) + i / 4];
}

/* Writes sum(acc[r][m]) * scales[n + r] * x_scale(m) to y[m, n + r]: R weight rows, M rows of x. */
#define STORE_OUTPUTS(a, n, R, M, acc, X_SCALE, BF16)                                              \
    do {                                                                                           \
        __m512 flat[16];                                                         \
        float sums[16];                                                          \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                        \
            _Pragma("GCC unroll 8") for (int m = 0; m < M; m++) flat[r * M + m] = acc[r][m];       \
        sum_each(flat, R * M, sums);                                                               \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                      \
            const float s = (a)->scales[(n) + r];                                                  \
            _Pragma("GCC unroll 8") for (int m = 0; m < M; m++) {                                  \
                const float v = sums[r * M + m] * s * (X_SCALE);                                   \
                const int64_t at = m * (a)->n + (n) + r;                                           \
                if (BF16) bf16_store((uint16_t *)(a)->y + at, v);                                  \
                else ((float *)(a)->y)[at] = v;                                                    \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* GCC's partial redundancy elimination carries the x loads of one step into the next and then
 * shuffles the accumulators between registers (and the stack) on every step: off for the kernels. */
#pragma GCC optimize("no-tree-pre")
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define FOR_R _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
#define FOR_M _Pragma("GCC unroll 8") for (int m = 0; m < M; m++)

/* Each block walks K in steps of 64 weights per row (one prefetch per row and cache line, no
 * branch inside), then the rest in steps of the kernel's width, the last one masked. The R x M
 * accumulators are arrays of constant size indexed by constants after unrolling, so they live in
 * registers. */

/* ---- float32 x: weights to fp32, one FMA per 16 products ---------------------------------- */
ALWAYS_INLINE void step_f32(const GemvArgs *a, const int8_t *w, int64_t k, __mmask16 mask, const int masked,
                            __m512 acc[MAX_BLOCK][MAX_ROWS], const int M, const int R) {
    const float *x = (const float *)a->x;
    __m512 wf[MAX_BLOCK];
    FOR_R wf[r] = widen16(masked ? _mm_maskz_loadu_epi8(mask, w + r * a->k + k)
                                 : _mm_loadu_si128((const __m128i *)(w + r * a->k + k)));
    FOR_M {
        const __m512 xf = masked ? _mm512_maskz_loadu_ps(mask, x + m * a->k + k) : _mm512_loadu_ps(x + m * a->k + k);
        FOR_R acc[r][m] = _mm512_fmadd_ps(wf[r], xf, acc[r][m]);
    }
}

ALWAYS_INLINE void block_f32(const GemvArgs *a, int64_t n, const int M, const int R) {
    const int64_t K = a->k;
    const int8_t *w = a->w + n * K;
    __m512 acc[MAX_BLOCK][MAX_ROWS];
    FOR_R FOR_M acc[r][m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 64 <= K; k += 64) {
        FOR_R _mm_prefetch((const char *)(w + r * K + k + PREFETCH_BYTES), _MM_HINT_T0);
        _Pragma("GCC unroll 4") for (int i = 0; i < 64; i += 16) step_f32(a, w, k + i, 0, 0, acc, M, R);
    }
    for (; k + 16 <= K; k += 16) step_f32(a, w, k, 0, 0, acc, M, R);
    if (k < K) step_f32(a, w, k, (__mmask16)((1u << (K - k)) - 1), 1, acc, M, R);
    STORE_OUTPUTS(a, n, R, M, acc, 1.0f, 0);
}

#if defined(__AVX512BF16__)
#define HAVE_AVX512_BF16 1
/* ---- bfloat16 x: weights to bf16 pairs, one vdpbf16ps per 32 products --------------------- */
static inline __m512bh widen32_bf16(__m128i lo, __m128i hi) {
    return _mm512_cvtne2ps_pbh(widen16(hi), widen16(lo)); /* exact: |w| <= 127 fits bf16's 8 bits */
}

ALWAYS_INLINE void step_bf16(const GemvArgs *a, const int8_t *w, int64_t k, int64_t left, const int masked,
                             __m512 acc[MAX_BLOCK][MAX_ROWS], const int M, const int R) {
    const uint16_t *x = (const uint16_t *)a->x;
    const __mmask16 lo = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1);
    const __mmask16 hi = (__mmask16)(left <= 16 ? 0u : (1u << (left - 16)) - 1);
    const __mmask32 both = (__mmask32)(((uint64_t)1 << left) - 1);
    __m512bh wb[MAX_BLOCK];
    FOR_R {
        const int8_t *row = w + r * a->k + k;
        wb[r] = masked ? widen32_bf16(_mm_maskz_loadu_epi8(lo, row), _mm_maskz_loadu_epi8(hi, row + 16))
                       : widen32_bf16(_mm_loadu_si128((const __m128i *)row),
                                      _mm_loadu_si128((const __m128i *)(row + 16)));
    }
    FOR_M {
        const __m512bh xb = (__m512bh)(masked ? _mm512_maskz_loadu_epi16(both, x + m * a->k + k)
                                              : _mm512_loadu_si512(x + m * a->k + k));
        FOR_R acc[r][m] = _mm512_dpbf16_ps(acc[r][m], wb[r], xb);
    }
}

ALWAYS_INLINE void block_bf16(const GemvArgs *a, int64_t n, const int M, const int R) {
    const int64_t K = a->k;
    const int8_t *w = a->w + n * K;
    __m512 acc[MAX_BLOCK][MAX_ROWS];
    FOR_R FOR_M acc[r][m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 64 <= K; k += 64) {
        FOR_R _mm_prefetch((const char *)(w + r * K + k + PREFETCH_BYTES), _MM_HINT_T0);
        step_bf16(a, w, k, 32, 0, acc, M, R);
        step_bf16(a, w, k + 32, 32, 0, acc, M, R);
    }
    for (; k + 32 <= K; k += 32) step_bf16(a, w, k, 32, 0, acc, M, R);
    if (k < K) step_bf16(a, w, k, K - k, 1, acc, M, R);
    STORE_OUTPUTS(a, n, R, M, acc, 1.0f, 1);
}
#endif

#if defined(__AVX512BF16__)
/* ---- bfloat16 weights (the `linear` op's decode path): one vdpbf16ps per 32 products ----------
 * No widening at all: 32 bf16 weights are one load. Products of two bf16 are exact in fp32; sums
 * are fp32; each output (+ bias, in fp32) is rounded to bf16 once. */
ALWAYS_INLINE void step_bf16w(const GemvArgs *a, const uint16_t *w, int64_t k, __mmask32 mask, const int masked,
                              __m512 acc[MAX_BLOCK][MAX_ROWS], const int M, const int R) {
    const uint16_t *x = (const uint16_t *)a->x;
    __m512bh wb[MAX_BLOCK];
    FOR_R wb[r] = (__m512bh)(masked ? _mm512_maskz_loadu_epi16(mask, w + r * a->k + k)
                                    : _mm512_loadu_si512(w + r * a->k + k));
    FOR_M {
        const __m512bh xb = (__m512bh)(masked ? _mm512_maskz_loadu_epi16(mask, x + m * a->k + k)
                                              : _mm512_loadu_si512(x + m * a->k + k));
        FOR_R acc[r][m] = _mm512_dpbf16_ps(acc[r][m], wb[r], xb);
    }
}

ALWAYS_INLINE void block_bf16w(const GemvArgs *a, int64_t n, const int M, const int R) {
    const int64_t K = a->k;
    const uint16_t *w = a->wh + n * K;
    __m512 acc[MAX_BLOCK][MAX_ROWS];
    FOR_R FOR_M acc[r][m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 64 <= K; k += 64) { /* 64 weights of a row: two cache lines */
        FOR_R {
            _mm_prefetch((const char *)(w + r * K + k) + PREFETCH_BYTES, _MM_HINT_T0);
            _mm_prefetch((const char *)(w + r * K + k) + PREFETCH_BYTES + 64, _MM_HINT_T0);
        }
        step_bf16w(a, w, k, 0, 0, acc, M, R);
        step_bf16w(a, w, k + 32, 0, 0, acc, M, R);
    }
    for (; k + 32 <= K; k += 32) step_bf16w(a, w, k, 0, 0, acc, M, R);
    if (k < K) step_bf16w(a, w, k, (__mmask32)(((uint64_t)1 << (K - k)) - 1), 1, acc, M, R);
    __m512 flat[16];
    float sums[16];
    FOR_R FOR_M flat[r * M + m] = acc[r][m];
    sum_each(flat, R * M, sums);
    FOR_R {
        float b = 0.0f;
        if (a->bias) {
            union { uint32_t u; float f; } c = {.u = (uint32_t)a->bias[n + r] << 16};
            b = c.f;
        }
        FOR_M bf16_store((uint16_t *)a->y + m * a->ldy + n + r, sums[r * M + m] + b);
    }
}
#endif

#if defined(__AVX512VNNI__)
#define HAVE_AVX512_VNNI 1
/* ---- bfloat16 x by VNNI: x as 16-bit fixed point, one vpdpwssd per 32 products --------------
 * Each row of x is rounded to int16 with one scale (max|x[m]| / 32767), so |x - xq * s| <= s / 2
 * per element: with |w_int8| <= 127 and exact int32 products and sums, each output is off by at
 * most scales[n] * sum_k |w_int8[n, k]| * max|x[m]| / 65534 before its final rounding, 128x below
 * a bf16 rounding of x's largest elements. Widening the weights is one instruction per 32 (the
 * bf16 path needs about six), which is what bounds batches of 2-8 rows. */
#define VNNI_CHUNK 8192 /* k per int32 accumulation: 8192/32 * 2 * 32767 * 127 < 2^31 */

ALWAYS_INLINE void step_vnni(const GemvArgs *a, const int8_t *w, int64_t k, __mmask32 mask, const int masked,
                             __m512i acc[MAX_BLOCK][MAX_ROWS], const int M, const int R) {
    __m512i wv[MAX_BLOCK];
    FOR_R wv[r] = _mm512_cvtepi8_epi16(masked ? _mm256_maskz_loadu_epi8(mask, w + r * a->k + k)
                                              : _mm256_loadu_si256((const __m256i *)(w + r * a->k + k)));
    FOR_M {
        const __m512i xv = _mm512_loadu_si512(a->xq + m * a->kp + k); /* zero past K */
        FOR_R acc[r][m] = _mm512_dpwssd_epi32(acc[r][m], wv[r], xv);
    }
}

ALWAYS_INLINE void block_vnni(const GemvArgs *a, int64_t n, const int M, const int R) {
    const int64_t K = a->k;
    const int8_t *w = a->w + n * K;
    __m512 lanes[MAX_BLOCK][MAX_ROWS]; /* int32 lanes of each chunk, summed in fp32 */
    FOR_R FOR_M lanes[r][m] = _mm512_setzero_ps();
    for (int64_t begin = 0; begin < K; begin += VNNI_CHUNK) {
        const int64_t end = K - begin < VNNI_CHUNK ? K : begin + VNNI_CHUNK;
        __m512i acc[MAX_BLOCK][MAX_ROWS];
        FOR_R FOR_M acc[r][m] = _mm512_setzero_si512();
        int64_t k = begin;
        for (; k + 64 <= end; k += 64) {
            FOR_R _mm_prefetch((const char *)(w + r * K + k + PREFETCH_BYTES), _MM_HINT_T0);
            step_vnni(a, w, k, 0, 0, acc, M, R);
            step_vnni(a, w, k + 32, 0, 0, acc, M, R);
        }
        for (; k + 32 <= end; k += 32) step_vnni(a, w, k, 0, 0, acc, M, R);
        if (k < end) step_vnni(a, w, k, (__mmask32)(((uint64_t)1 << (end - k)) - 1), 1, acc, M, R);
        /* lanes to fp32 before summing them: 16 lanes of int32 may overflow it */
        FOR_R FOR_M lanes[r][m] = _mm512_add_ps(lanes[r][m], _mm512_cvtepi32_ps(acc[r][m]));
    }
    STORE_OUTPUTS(a, n, R, M, lanes, a->x_scales[m], 1);
}

/* x (M, K) bf16 -> xq (M, kp) int16 and x_scales (M,); returns -1 if x has an inf or a NaN. */
static int quantize_rows(const uint16_t *x, int64_t num_rows, int64_t k, int64_t kp, int16_t *xq,
                         float *x_scales) {
    for (int64_t m = 0; m < num_rows; m++) {
        const uint16_t *row = x + m * k;
        __m512 top = _mm512_setzero_ps();
        for (int64_t i = 0; i < k; i += 16) {
            const __mmask16 mask = (__mmask16)(k - i >= 16 ? 0xffffu : (1u << (k - i)) - 1);
            const __m512i bits = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, row + i));
            top = _mm512_max_ps(top, _mm512_abs_ps(_mm512_castsi512_ps(_mm512_slli_epi32(bits, 16))));
        }
        const float largest = _mm512_reduce_max_ps(top);
        if (!(largest <= 3.4e38f)) return -1; /* inf or NaN */
        x_scales[m] = largest / 32767.0f;
        const __m512 inverse = _mm512_set1_ps(largest > 0.0f ? 32767.0f / largest : 0.0f);
        for (int64_t i = 0; i < kp; i += 16) {
            const int64_t left = k - i;
            const __mmask16 mask = (__mmask16)(left >= 16 ? 0xffffu : left > 0 ? (1u << left) - 1 : 0u);
            const __m512i bits = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, row + i));
            const __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(bits, 16)), inverse);
            _mm256_storeu_si256((__m256i *)(xq + m * kp + i), _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(v)));
        }
    }
    return 0;
}
#endif

/* A thread's output rows for M rows of x: blocks of R weight rows (R * M <= 16 accumulators stay
 * in registers), then the remainder one row at a time. */
#define DEFINE_RANGE(DTYPE, M)                                                                     \
    static void range_##DTYPE##_##M(const GemvArgs *a) {                                           \
        enum { R = (M) <= 4 ? 4 : 2 };                                                             \
        int64_t n = a->n_begin;                                                                    \
        for (; n + R <= a->n_end; n += R) block_##DTYPE(a, n, (M), R);                             \
        for (; n < a->n_end; n++) block_##DTYPE(a, n, (M), 1);                                     \
    }
#define DEFINE_RANGES(DTYPE)                                                                       \
    DEFINE_RANGE(DTYPE, 1) DEFINE_RANGE(DTYPE, 2) DEFINE_RANGE(DTYPE, 3) DEFINE_RANGE(DTYPE, 4)    \
    DEFINE_RANGE(DTYPE, 5) DEFINE_RANGE(DTYPE, 6) DEFINE_RANGE(DTYPE, 7) DEFINE_RANGE(DTYPE, 8)    \
    static const RangeFn ranges_##DTYPE[MAX_ROWS + 1] = {                                          \
        0, range_##DTYPE##_1, range_##DTYPE##_2, range_##DTYPE##_3, range_##DTYPE##_4,             \
        range_##DTYPE##_5, range_##DTYPE##_6, range_##DTYPE##_7, range_##DTYPE##_8};

DEFINE_RANGES(f32)
#ifdef HAVE_AVX512_BF16
DEFINE_RANGES(bf16)
DEFINE_RANGES(bf16w)
#endif
#ifdef HAVE_AVX512_VNNI
DEFINE_RANGES(vnni)
#endif
#endif /* HAVE_AVX512 */

/* ---- the thread pool ----------------------------------------------------------------------
 * A call's output rows are cut into chunks that the caller and the workers claim one at a time
 * (a compare-and-swap on `ticket`), so nobody waits for a worker that the OS has not scheduled
 * yet: the caller takes its chunks too. A worker reads the call's arguments only while it holds an
 * unfinished chunk, when the caller cannot have moved on to the next call. */
static _Atomic int64_t spin_ns = 30000; /* a worker spins this long for the next call, then sleeps */
#define CHUNKS_PER_THREAD 4
#define MIN_CHUNK_ROWS 16

static struct {
    pthread_mutex_t lock;          /* held by the thread whose call uses the pool */
    int num_workers;               /* started so far (they never exit) */
    _Atomic uint64_t ticket;       /* call number << 32 | next chunk << 16 | number of chunks */
    _Atomic int64_t chunks_done;   /* of the current call */
    _Atomic uint32_t wake;         /* bumped once per call: what sleeping workers wait on */
    _Atomic int sleeping;          /* workers in (or entering) a futex wait */
    uint32_t calls;
    RangeFn fn;
    GemvArgs job;
    int64_t chunk_rows;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long futex(_Atomic uint32_t *address, int op, uint32_t value) {
    return syscall(SYS_futex, (uint32_t *)address, op, value, NULL, NULL, 0);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Claims and runs chunks of the current call until none is left. */
static void run_chunks(void) {
    for (;;) {
        uint64_t t = atomic_load(&pool.ticket);
        do {
            if (((t >> 16) & 0xffff) >= (t & 0xffff)) return; /* all claimed */
        } while (!atomic_compare_exchange_weak(&pool.ticket, &t, t + (1u << 16)));
        GemvArgs part = pool.job; /* stable: the caller waits for this chunk */
        part.n_begin = (int64_t)((t >> 16) & 0xffff) * pool.chunk_rows;
        part.n_end = part.n_begin + pool.chunk_rows < part.n ? part.n_begin + pool.chunk_rows : part.n;
        pool.fn(&part);
        atomic_fetch_add(&pool.chunks_done, 1);
    }
}

static void *worker(void *arg) {
    uint32_t seen = (uint32_t)(uintptr_t)arg;
    for (;;) {
        const int64_t spin_until = now_ns() + atomic_load(&spin_ns);
        for (int spins = 0; atomic_load(&pool.wake) == seen; spins++) {
#ifdef HAVE_AVX512
            _mm_pause();
#endif
            if ((spins & 63) == 63 && now_ns() > spin_until) {
                atomic_fetch_add(&pool.sleeping, 1);
                futex(&pool.wake, FUTEX_WAIT_PRIVATE, seen); /* returns at once if it moved on */
                atomic_fetch_sub(&pool.sleeping, 1);
            }
        }
        seen = atomic_load(&pool.wake);
        run_chunks();
    }
    return NULL;
}

static void forget_workers_after_fork(void) { /* the child has none of the parent's threads */
    pool.num_workers = 0;
    pthread_mutex_init(&pool.lock, NULL);
}

static void register_fork_handler(void) { pthread_atfork(NULL, NULL, forget_workers_after_fork); }

/* Starts workers up to `wanted` (fewer if the system refuses). */
static void ensure_workers(int wanted) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_handler);
    while (pool.num_workers < wanted) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&thread, &attr, worker, (void *)(uintptr_t)atomic_load(&pool.wake));
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool.num_workers++;
    }
}

/* Runs fn over all output rows, on `num_threads` threads (the caller's one of them). */
static void run_parts(RangeFn fn, const GemvArgs *args, int num_threads) {
    if (num_threads <= 1 || pthread_mutex_trylock(&pool.lock) != 0) { /* or the pool is busy */
        GemvArgs all = *args;
        all.n_begin = 0, all.n_end = args->n;
        fn(&all);
        return;
    }
    ensure_workers(num_threads - 1);
    int64_t rows = args->n / ((int64_t)num_threads * CHUNKS_PER_THREAD);
    rows = rows < MIN_CHUNK_ROWS ? MIN_CHUNK_ROWS : (rows + 3) / 4 * 4; /* whole blocks of rows */
    if ((args->n + rows - 1) / rows > 0xffff) rows = (args->n + 0xfffe) / 0xffff;
    const uint64_t num_chunks = (uint64_t)((args->n + rows - 1) / rows);
    pool.fn = fn, pool.job = *args, pool.chunk_rows = rows;
    atomic_store(&pool.chunks_done, 0);
    atomic_store(&pool.ticket, (uint64_t)(++pool.calls) << 32 | num_chunks); /* publishes the call */
    atomic_fetch_add(&pool.wake, 1);
    if (atomic_load(&pool.sleeping) > 0) futex(&pool.wake, FUTEX_WAKE_PRIVATE, INT_MAX);
    run_chunks();
    for (int spins = 0; atomic_load(&pool.chunks_done) < (int64_t)num_chunks; spins++) {
#ifdef HAVE_AVX512
        _mm_pause();
#endif
        if (spins > 2000) sched_yield(); /* a worker holding a chunk was descheduled */
    }
    pthread_mutex_unlock(&pool.lock);
}

/* ---- entry points ------------------------------------------------------------------------- */

/* The range function for this dtype (0 = bfloat16, 1 = float32), rows and variant (0 = the op's:
 * bf16 by VNNI where the CPU has it; 1 = bf16 by vdpbf16ps), or 0 where there is none. */
static RangeFn choose(int variant, int dtype, int64_t num_rows) {
    if (num_rows < 1 || num_rows > MAX_ROWS) return 0;
#ifdef HAVE_AVX512
    if (dtype == 1 && variant == 0) return ranges_f32[num_rows];
#endif
#ifdef HAVE_AVX512_VNNI
    if (dtype == 0 && variant == 0) return ranges_vnni[num_rows];
#endif
#ifdef HAVE_AVX512_BF16
    if (dtype == 0 && (variant == 1 || variant == 0)) return ranges_bf16[num_rows];
#endif
    (void)variant, (void)dtype;
    return 0;
}

/* For benchmarks/int8_gemv_ab.py: how long workers spin before they sleep (0: at once). */
void int8_gemv_set_spin_ns(int64_t ns) { atomic_store(&spin_ns, ns); }

/* Whether int8_gemv takes this dtype here: 0 = bfloat16, 1 = float32. */
int int8_gemv_supported(int dtype) { return choose(0, dtype, 1) != 0; }

/* int8_gemv with a chosen variant (see `choose`): benchmarks/int8_gemv_ab.py compares them. */
int int8_gemv_variant(int variant, int dtype, const void *x, const int8_t *w, const float *scales, void *y,
                      int64_t num_rows, int64_t n, int64_t k, int num_threads) {
    const RangeFn fn = choose(variant, dtype, num_rows);
    if (fn == 0 || n < 1 || k < 1) return -1;
    GemvArgs args = {x, w, scales, y, num_rows, n, k, 0, n, 0, 0, 0, 0, 0, n};
    int16_t *xq = 0;
#ifdef HAVE_AVX512_VNNI
    float x_scales[MAX_ROWS];
    if (fn == ranges_vnni[num_rows]) {
        args.kp = (k + 31) / 32 * 32;
        xq = aligned_alloc(64, (size_t)(num_rows * args.kp * 2));
        if (xq == 0) return -1;
        if (quantize_rows((const uint16_t *)x, num_rows, k, args.kp, xq, x_scales) != 0) {
            free(xq);
            return 1;
        }
        args.xq = xq, args.x_scales = x_scales;
    }
#endif
    int threads = num_threads < MAX_THREADS ? num_threads : MAX_THREADS;
    if (threads > n / MIN_ROWS_PER_THREAD) threads = (int)(n / MIN_ROWS_PER_THREAD);
    run_parts(fn, &args, threads);
    free(xq);
    return 0;
}

/* y (M, N) = x (M, K) @ (w (N, K) * scales[:, None]).T; dtype of x and y: 0 = bfloat16, 1 = float32.
 * Returns 0; 1 when x holds an inf or a NaN (bf16 by VNNI cannot scale it: use another path); -1
 * for an unsupported dtype or M outside 1..MAX_ROWS. */
int int8_gemv(int dtype, const void *x, const int8_t *w, const float *scales, void *y, int64_t num_rows,
              int64_t n, int64_t k, int num_threads) {
    return int8_gemv_variant(0, dtype, x, w, scales, y, num_rows, n, k, num_threads);
}

/* Whether bf16_gemv runs here (AVX512_BF16). */
int bf16_gemv_supported(void) {
#ifdef HAVE_AVX512_BF16
    return 1;
#else
    return 0;
#endif
}

/* y (M, N) = x (M, K) @ w (N, K).T (+ bias (N,)), all bfloat16, M = 1..MAX_ROWS, fp32 sums; y's
 * rows ldy apart (ldy >= N). Returns 0, or -1 where unsupported. */
int bf16_gemv(const uint16_t *x, const uint16_t *w, const uint16_t *bias, uint16_t *y, int64_t num_rows,
              int64_t n, int64_t k, int64_t ldy, int num_threads) {
#ifdef HAVE_AVX512_BF16
    if (num_rows < 1 || num_rows > MAX_ROWS || n < 1 || k < 1 || ldy < n) return -1;
    GemvArgs args = {x, 0, 0, y, num_rows, n, k, 0, n, 0, 0, 0, w, bias, ldy};
    int threads = num_threads < MAX_THREADS ? num_threads : MAX_THREADS;
    if (threads > n / MIN_ROWS_PER_THREAD) threads = (int)(n / MIN_ROWS_PER_THREAD);
    run_parts(ranges_bf16w[num_rows], &args, threads);
    return 0;
#else
    (void)x, (void)w, (void)bias, (void)y, (void)num_rows, (void)n, (void)k, (void)ldy, (void)num_threads;
    return -1;
#endif
}
