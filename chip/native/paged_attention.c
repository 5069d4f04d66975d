/* Paged attention on the CPU for a variable-length batch: every query row (a decode token, or a
 * row of a prefill chunk) attends to its sequence's cached keys and values up to its own position,
 * read in place from the block pool (no gather, no padding, no per-head copies of K/V for GQA).
 *
 * q (T, Hq, D); k_cache, v_cache (num_blocks, block_size, Hk, D); block_tables (B, table_width)
 * int64; cu_seqlens_q (B + 1,) int64: sequence b owns rows cu[b]..cu[b+1], the last tokens of its
 * context_lens[b] tokens (so row r sees context_lens[b] - (cu[b+1] - 1 - r) keys: causal);
 * out (T, Hq, D). The row kernels: one work item is a query row: all its heads walk the blocks
 * together, token by token (a token's keys for every kv head are one contiguous row), with an
 * online softmax (running max and sum) per head. Decode rows take them, except with AVX-512 BF16,
 * where the GQA-group kernel does (see "decode by GQA group"; 1.16-1.23x the row kernel). Runs of
 * a prefill chunk's rows go in tiles instead (see "prefill tiles" below), which read each block
 * once per tile rather than once per row: about 1.9x faster at prompt lengths of 288-1024.
 * (Over 500 lines: the kernels share their helpers and one build; chip/native/build.py compiles
 * one source file per library.)
 *
 * Built at first use by chip/native/build.py with -O3 -march=native -fopenmp-simd; the portable
 * loops are written so the compiler vectorizes them (bf16 -> fp32 is a 16-bit shift).
 */
#define _GNU_SOURCE /* syscall(), for AMX permission */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline float bf16_load(const uint16_t *p, int64_t i) {
    union { uint32_t u; float f; } c;
    c.u = (uint32_t)p[i] << 16;
    return c.f;
}

static inline float f32_load(const float *p, int64_t i) { return p[i]; }

static inline void bf16_store(uint16_t *p, int64_t i, float x) {
    union { uint32_t u; float f; } c;
    c.f = x;
    const uint16_t rounded = (uint16_t)((c.u + 0x7fffu + ((c.u >> 16) & 1u)) >> 16); /* to nearest even */
    p[i] = (c.u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((c.u >> 16) | 0x40u) : rounded; /* NaN stays NaN */
}

static inline void f32_store(float *p, int64_t i, float x) { p[i] = x; }

/* e^x for x <= 0 (a score minus the running max): 2^t = 2^round(t) * 2^f, |f| <= 1/2, with a
 * degree-6 Taylor polynomial for 2^f (relative error ~1e-7). Branch-free, so loops vectorize. */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.4426950409f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest (1.5 * 2^23), no libm call */
    float f = t - n;
    float p = 1.0f + f * (0.6931471806f + f * (0.2402265070f + f * (0.0555041087f +
              f * (0.0096181291f + f * (0.0013333558f + f * 0.0001540353f)))));
    union { uint32_t u; float f; } scale;
    scale.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * scale.f;
}

typedef struct {
    const void *q, *k_cache, *v_cache;
    const int64_t *block_tables, *cu_seqlens_q, *context_lens;
    void *out;
    int64_t table_width, num_seqs;
    int num_heads, num_kv_heads, head_dim, block_size;
    float scale;
    int64_t row_begin, row_end; /* the query rows [begin, end) of this thread */
    int use_amx; /* prefill tiles compute scores with AMX (the CPU has it, the OS allows it) */
    int grouped; /* rows outside tiles (decode) by the GQA-group kernel, not the row kernel */
} AttentionArgs;

/* Calls row_fn(a, row, table, keys) for each of this thread's rows: `keys` is how many of its
 * sequence's tokens the row sees. */
#define FOR_EACH_ROW(a, ROW_FN)                                                                    \
    do {                                                                                           \
        int64_t b = 0;                                                                             \
        while (b < (a)->num_seqs && (a)->cu_seqlens_q[b + 1] <= (a)->row_begin) b++;               \
        for (int64_t r = (a)->row_begin; r < (a)->row_end; r++) {                                  \
            while ((a)->cu_seqlens_q[b + 1] <= r) b++;                                             \
            const int64_t keys = (a)->context_lens[b] - ((a)->cu_seqlens_q[b + 1] - 1 - r);        \
            ROW_FN((a), r, (a)->block_tables + b * (a)->table_width, keys);                        \
        }                                                                                          \
    } while (0)

#define DEFINE_ATTENTION(NAME, T, LOAD, STORE)                                                     \
static void NAME##_row(const AttentionArgs *a, int64_t r, const int64_t *table, int64_t ctx) {     \
    const int D = a->head_dim, BS = a->block_size, Hk = a->num_kv_heads, Hq = a->num_heads;        \
    const int G = Hq / Hk;                                                                         \
    const int64_t row = (int64_t)Hk * D; /* elements per token: every kv head, contiguous */       \
    float qs[Hq * D], acc[Hq * D], s[Hq * BS], m[Hq], l[Hq];                                       \
    {                                                                                              \
        const T *q = (const T *)a->q + r * Hq * D;                                                 \
        for (int i = 0; i < Hq * D; i++) { qs[i] = LOAD(q, i) * a->scale; acc[i] = 0.0f; }         \
        for (int i = 0; i < Hq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }                            \
        for (int64_t first = 0; first < ctx; first += BS) {                                        \
            const int n = ctx - first < BS ? (int)(ctx - first) : BS;                              \
            const int64_t base = table[first / BS] * BS * row;                                     \
            const T *kb = (const T *)a->k_cache + base, *vb = (const T *)a->v_cache + base;        \
            for (int t = 0; t < n; t++) {                                                          \
                for (int i = 0; i < Hq; i++) {                                                     \
                    const T *k = kb + t * row + (i / G) * D;                                       \
                    const float *qi = qs + i * D;                                                  \
                    float dot = 0.0f;                                                              \
                    _Pragma("omp simd reduction(+:dot)")                                           \
                    for (int d = 0; d < D; d++) dot += qi[d] * LOAD(k, d);                         \
                    s[i * BS + t] = dot;                                                           \
                }                                                                                  \
            }                                                                                      \
            for (int i = 0; i < Hq; i++) {                                                         \
                float *si = s + i * BS, top = m[i];                                                \
                for (int t = 0; t < n; t++) top = si[t] > top ? si[t] : top;                       \
                const float correction = exp_nonpositive(m[i] - top); /* 0 on the first block */   \
                float sum = 0.0f;                                                                  \
                for (int t = 0; t < n; t++) { si[t] = exp_nonpositive(si[t] - top); sum += si[t]; } \
                l[i] = l[i] * correction + sum;                                                    \
                m[i] = top;                                                                        \
                for (int d = 0; d < D; d++) acc[i * D + d] *= correction;                          \
            }                                                                                      \
            for (int t = 0; t < n; t++) {                                                          \
                for (int i = 0; i < Hq; i++) {                                                     \
                    const T *v = vb + t * row + (i / G) * D;                                       \
                    float *ai = acc + i * D;                                                       \
                    const float p = s[i * BS + t];                                                 \
                    _Pragma("omp simd")                                                            \
                    for (int d = 0; d < D; d++) ai[d] += p * LOAD(v, d);                           \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        T *o = (T *)a->out + r * Hq * D;                                                           \
        for (int i = 0; i < Hq; i++) {                                                             \
            const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;                                    \
            for (int d = 0; d < D; d++) STORE(o, i * D + d, acc[i * D + d] * inv);                 \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
static void *NAME##_thread(void *args) {                                                           \
    FOR_EACH_ROW((const AttentionArgs *)args, NAME##_row);                                         \
    return NULL;                                                                                   \
}

DEFINE_ATTENTION(attend_bf16, uint16_t, bf16_load, bf16_store)
DEFINE_ATTENTION(attend_f32, float, f32_load, f32_store)

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>
#define HAVE_AVX512_BF16 1

/* e^x for 16 lanes of x <= 0, the same polynomial as exp_nonpositive; scalef applies 2^n. */
static inline __m512 exp_nonpositive16(__m512 x) {
    const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)),
                                   _mm512_set1_ps(1.4426950409f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(0.0001540353f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.0013333558f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.0096181291f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.0555041087f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.2402265070f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6931471806f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* 16 bf16 values from p, widened to fp32. */
static inline __m512 bf16x16_load(const uint16_t *p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

/* v[t] -> the sum of v[t]'s 16 lanes in lane t: three rounds of shuffles and adds (about three
 * instructions per token instead of a full horizontal reduction each). */
static inline __m512 lane_sums16(const __m512 v[16]) {
    __m512 x[8], y[4];
    for (int i = 0; i < 8; i++) /* per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] */
        x[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) /* per 128-bit block: tokens 4i..4i+3, summed within the block */
        y[i] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0xEE));
    const __m512 u01 = _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512 u23 = _mm512_add_ps(_mm512_shuffle_f32x4(y[2], y[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_f32x4(y[2], y[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* The bf16 kernel with AVX-512 (head_dim % 32 == 0, block_size % 16 == 0). Per block, tokens go
 * in groups of 16: scores by vdpbf16ps (32 bf16 products per instruction, fp32 sums) reduced
 * 16 at a time by lane_sums16; softmax on 16-lane vectors; P @ V with the output rows of up to
 * four query heads x 32 dims held in registers across the block's tokens. */
/* One head's scaled scores over a block (`n` of them at `s`) -> bf16 probabilities at `pb`, with
 * the online-softmax update of its running max `m` and normalizer `l`. Returns the factor the
 * head's output accumulator must be scaled by (0 on the first block). P @ V runs on the bf16
 * probabilities, so the normalizer sums those same values; lanes past `n` are zero. */
static inline __attribute__((always_inline)) float softmax_block_bf16(const float *s, int n, float *m,
                                                                      float *l, uint16_t *pb) {
    float top = *m;
    for (int c = 0; c < n; c += 16) {
        const __mmask16 lanes = n - c >= 16 ? 0xFFFF : (__mmask16)((1u << (n - c)) - 1);
        const float chunk_max = _mm512_mask_reduce_max_ps(lanes, _mm512_maskz_loadu_ps(lanes, s + c));
        top = chunk_max > top ? chunk_max : top;
    }
    const float correction = exp_nonpositive(*m - top);
    const __m512 top16 = _mm512_set1_ps(top);
    __m512 sum = _mm512_setzero_ps();
    for (int c = 0; c < n; c += 16) {
        const __mmask16 lanes = n - c >= 16 ? 0xFFFF : (__mmask16)((1u << (n - c)) - 1);
        const __m512 p = _mm512_maskz_mov_ps(lanes, exp_nonpositive16(
            _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, s + c), top16)));
        const __m256bh p16 = _mm512_cvtneps_pbh(p);
        sum = _mm512_add_ps(sum, _mm512_cvtpbh_ps(p16));
        _mm256_storeu_si256((__m256i *)(pb + c), (__m256i)p16);
    }
    *l = *l * correction + _mm512_reduce_add_ps(sum);
    *m = top;
    return correction;
}

static void attend_bf16_avx512_row(const AttentionArgs *a, int64_t r, const int64_t *table, int64_t ctx) {
    const int D = a->head_dim, BS = a->block_size, Hk = a->num_kv_heads, Hq = a->num_heads;
    const int G = Hq / Hk;
    const int64_t row = (int64_t)Hk * D;
    const int64_t block_bytes = BS * row * (int64_t)sizeof(uint16_t);
    float acc[Hq * D], s[Hq * BS], m[Hq], l[Hq];
    uint16_t pb[Hq * BS]; /* this block's probabilities in bf16 */
    {
        const uint16_t *q = (const uint16_t *)a->q + r * Hq * D;
        memset(acc, 0, sizeof(float) * Hq * D);
        for (int i = 0; i < Hq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
        for (int64_t first = 0; first < ctx; first += BS) {
            const int n = ctx - first < BS ? (int)(ctx - first) : BS;
            const int64_t base = table[first / BS] * BS * row;
            const uint16_t *kb = (const uint16_t *)a->k_cache + base;
            const uint16_t *vb = (const uint16_t *)a->v_cache + base;
            if (first + BS < ctx) { /* blocks are scattered: fetch the next one while on this */
                const char *next_k = (const char *)a->k_cache + table[first / BS + 1] * block_bytes;
                const char *next_v = (const char *)a->v_cache + table[first / BS + 1] * block_bytes;
                for (int64_t off = 0; off < block_bytes; off += 64) {
                    _mm_prefetch(next_k + off, _MM_HINT_T0);
                    _mm_prefetch(next_v + off, _MM_HINT_T0);
                }
            }
            for (int c = 0; c < n; c += 16) {
                const int width = n - c < 16 ? n - c : 16;
                const __mmask16 lanes = width == 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
                for (int i = 0; i < Hq; i++) {
                    const uint16_t *qi = q + i * D, *k = kb + (int64_t)c * row + (i / G) * D;
                    __m512 dots[16];
                    for (int t = 0; t < 16; t++) {
                        dots[t] = _mm512_setzero_ps();
                        if (t < width)
                            for (int d = 0; d < D; d += 32)
                                dots[t] = _mm512_dpbf16_ps(dots[t], (__m512bh)_mm512_loadu_si512(qi + d),
                                                           (__m512bh)_mm512_loadu_si512(k + t * row + d));
                    }
                    _mm512_mask_storeu_ps(s + i * BS + c, lanes,
                                          _mm512_mul_ps(lane_sums16(dots), _mm512_set1_ps(a->scale)));
                }
            }
            for (int i = 0; i < Hq; i++) {
                const float correction = softmax_block_bf16(s + i * BS, n, m + i, l + i, pb + i * BS);
                if (correction != 1.0f) {
                    const __m512 corr = _mm512_set1_ps(correction);
                    for (int d = 0; d < D; d += 16)
                        _mm512_storeu_ps(acc + i * D + d, _mm512_mul_ps(_mm512_loadu_ps(acc + i * D + d), corr));
                }
            }
            /* P @ V by vdpbf16ps over token pairs: V rows t and t+1 interleaved (unpack lo/hi
             * of 16-bit lanes) times the broadcast pair (p_t, p_t+1). The accumulators then hold
             * each 32-dim chunk in interleaved order, [dims 8j..8j+3 | 8j+4..8j+7] per 128-bit
             * lane, which the output store undoes. */
            for (int h = 0; h < Hk; h++) {
                for (int g0 = 0; g0 < G; g0 += 4) {
                    const int tile = G - g0 < 4 ? G - g0 : 4;
                    const int i0 = h * G + g0;
                    for (int d0 = 0; d0 < D; d0 += 32) {
                        __m512 lo[4], hi[4];
                        for (int g = 0; g < 4; g++) {
                            lo[g] = hi[g] = _mm512_setzero_ps();
                            if (g < tile) {
                                lo[g] = _mm512_loadu_ps(acc + (i0 + g) * D + d0);
                                hi[g] = _mm512_loadu_ps(acc + (i0 + g) * D + d0 + 16);
                            }
                        }
                        const uint16_t *v = vb + h * D + d0;
                        for (int t = 0; t < n; t += 2, v += 2 * row) {
                            const __m512i even = _mm512_loadu_si512(v);
                            const __m512i odd = t + 1 < n ? _mm512_loadu_si512(v + row) : _mm512_setzero_si512();
                            const __m512bh v_lo = (__m512bh)_mm512_unpacklo_epi16(even, odd);
                            const __m512bh v_hi = (__m512bh)_mm512_unpackhi_epi16(even, odd);
                            for (int g = 0; g < 4; g++)
                                if (g < tile) {
                                    int32_t pair;
                                    memcpy(&pair, pb + (i0 + g) * BS + t, sizeof(pair));
                                    const __m512bh p = (__m512bh)_mm512_set1_epi32(pair);
                                    lo[g] = _mm512_dpbf16_ps(lo[g], v_lo, p);
                                    hi[g] = _mm512_dpbf16_ps(hi[g], v_hi, p);
                                }
                        }
                        for (int g = 0; g < 4; g++)
                            if (g < tile) {
                                _mm512_storeu_ps(acc + (i0 + g) * D + d0, lo[g]);
                                _mm512_storeu_ps(acc + (i0 + g) * D + d0 + 16, hi[g]);
                            }
                    }
                }
            }
        }
        uint16_t *o = (uint16_t *)a->out + r * Hq * D;
        for (int i = 0; i < Hq; i++) {
            const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
            for (int d = 0; d < D; d++) { /* undo the interleaved order of P @ V's accumulators */
                const int chunk = d & ~31, j = (d & 31) >> 3, k = d & 7;
                const int from = chunk + (k < 4 ? 4 * j + k : 16 + 4 * j + k - 4);
                bf16_store(o, i * D + d, acc[i * D + from] * inv);
            }
        }
    }
}
static void *attend_bf16_avx512_thread(void *args) {
    FOR_EACH_ROW((const AttentionArgs *)args, attend_bf16_avx512_row);
    return NULL;
}

/* ---- decode by GQA group -----------------------------------------------------------------------
 * The row kernel above, per query head, reloads the keys and the query from memory. Here the G
 * query heads that share kv head h go together: each key chunk loaded from the block feeds G dot
 * products (the group's queries stay in registers), and each V row pair feeds G accumulators
 * (which stay in registers for one 32-dim chunk). Blocks stay the outer loop, as in the row kernel:
 * a block is read whole and the next one prefetched whole (at batch 64 decode is bound by memory:
 * without the prefetch, 0.6-0.7x the row kernel there). D and G are compile-time constants
 * in the common cases (an always-inlined body, instantiated per shape below), so the loops unroll.
 * Same numerics as the row kernel (bit-identical): scores from vdpbf16ps, bf16 probabilities for
 * P V and the normalizer. */
static inline __attribute__((always_inline)) void group_block(
        const AttentionArgs *a, const uint16_t *q, const uint16_t *kb, const uint16_t *vb, int n,
        float *acc, float *m, float *l, const int G, const int D) {
    const int BS = a->block_size, C = D / 32; /* 32-dim chunks */
    const int64_t row = (int64_t)a->num_kv_heads * D;
    float s[G * BS], corr[G];
    uint16_t pb[G * BS];
    __m512bh qv[G * C];
    for (int i = 0; i < G * C; i++) qv[i] = (__m512bh)_mm512_loadu_si512(q + i * 32);
    const __m512 scale = _mm512_set1_ps(a->scale);
    for (int c = 0; c < n; c += 16) {
        const int width = n - c < 16 ? n - c : 16;
        const __mmask16 lanes = width == 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
        __m512 dots[G][16];
        for (int t = 0; t < 16; t++) {
            const uint16_t *k = kb + (int64_t)(c + t) * row;
            for (int g = 0; g < G; g++) dots[g][t] = _mm512_setzero_ps();
            if (t < width)
                for (int j = 0; j < C; j++) {
                    const __m512bh kk = (__m512bh)_mm512_loadu_si512(k + j * 32);
                    for (int g = 0; g < G; g++)
                        dots[g][t] = _mm512_dpbf16_ps(dots[g][t], qv[g * C + j], kk);
                }
        }
        for (int g = 0; g < G; g++)
            _mm512_mask_storeu_ps(s + g * BS + c, lanes, _mm512_mul_ps(lane_sums16(dots[g]), scale));
    }
    for (int g = 0; g < G; g++)
        corr[g] = softmax_block_bf16(s + g * BS, n, m + g, l + g, pb + g * BS);
    /* acc = acc * corr + P V, 32 dims at a time: V rows t and t+1 interleaved times the broadcast
     * pair (p_t, p_t+1) per head; the interleaved order is undone at the output store. */
    for (int j = 0; j < C; j++) {
        __m512 lo[G], hi[G];
        for (int g = 0; g < G; g++) {
            const __m512 cg = _mm512_set1_ps(corr[g]);
            lo[g] = _mm512_mul_ps(_mm512_loadu_ps(acc + g * D + j * 32), cg);
            hi[g] = _mm512_mul_ps(_mm512_loadu_ps(acc + g * D + j * 32 + 16), cg);
        }
        const uint16_t *v = vb + j * 32;
        for (int t = 0; t < n; t += 2, v += 2 * row) {
            const __m512i even = _mm512_loadu_si512(v);
            const __m512i odd = t + 1 < n ? _mm512_loadu_si512(v + row) : _mm512_setzero_si512();
            const __m512bh v_lo = (__m512bh)_mm512_unpacklo_epi16(even, odd);
            const __m512bh v_hi = (__m512bh)_mm512_unpackhi_epi16(even, odd);
            for (int g = 0; g < G; g++) {
                int32_t pair;
                memcpy(&pair, pb + g * BS + t, sizeof(pair));
                const __m512bh p = (__m512bh)_mm512_set1_epi32(pair);
                lo[g] = _mm512_dpbf16_ps(lo[g], v_lo, p);
                hi[g] = _mm512_dpbf16_ps(hi[g], v_hi, p);
            }
        }
        for (int g = 0; g < G; g++) {
            _mm512_storeu_ps(acc + g * D + j * 32, lo[g]);
            _mm512_storeu_ps(acc + g * D + j * 32 + 16, hi[g]);
        }
    }
}

static inline __attribute__((always_inline)) void group_row_body(
        const AttentionArgs *a, int64_t r, const int64_t *table, int64_t ctx, const int G, const int D) {
    const int BS = a->block_size, Hk = a->num_kv_heads, Hq = a->num_heads;
    const int64_t row = (int64_t)Hk * D;
    const int64_t block_bytes = BS * row * (int64_t)sizeof(uint16_t);
    float acc[Hq * D], m[Hq], l[Hq];
    const uint16_t *q = (const uint16_t *)a->q + r * Hq * D;
    memset(acc, 0, sizeof(float) * Hq * D);
    for (int i = 0; i < Hq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    for (int64_t first = 0; first < ctx; first += BS) {
        const int n = ctx - first < BS ? (int)(ctx - first) : BS;
        const int64_t base = table[first / BS] * BS * row;
        const char *next_k = NULL, *next_v = NULL; /* blocks are scattered: fetch the next */
        if (first + BS < ctx) {
            next_k = (const char *)a->k_cache + table[first / BS + 1] * block_bytes;
            next_v = (const char *)a->v_cache + table[first / BS + 1] * block_bytes;
        }
        for (int h = 0; h < Hk; h++) {
            /* a 1/Hk share of the next block per kv head: a burst of the whole block at once
             * waits on full fill buffers */
            const int64_t begin = (block_bytes / 64 * h / Hk) * 64, end = (block_bytes / 64 * (h + 1) / Hk) * 64;
            for (int64_t off = begin; next_k && off < end; off += 64) {
                _mm_prefetch(next_k + off, _MM_HINT_T0);
                _mm_prefetch(next_v + off, _MM_HINT_T0);
            }
            group_block(a, q + (int64_t)h * G * D, (const uint16_t *)a->k_cache + base + h * D,
                        (const uint16_t *)a->v_cache + base + h * D, n, acc + h * G * D, m + h * G,
                        l + h * G, G, D);
        }
    }
    uint16_t *o = (uint16_t *)a->out + r * Hq * D;
    for (int i = 0; i < Hq; i++) {
        const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        for (int d = 0; d < D; d++) { /* undo the interleaved order of P V's accumulators */
            const int chunk = d & ~31, j = (d & 31) >> 3, k = d & 7;
            const int from = chunk + (k < 4 ? 4 * j + k : 16 + 4 * j + k - 4);
            bf16_store(o, i * D + d, acc[i * D + from] * inv);
        }
    }
}

/* The body with constant (G, D) for the common shapes, else with runtime values (slower: the
 * arrays of registers become stack arrays). */
#define GROUP_CASE(G_, D_) \
    if (G == G_ && D == D_) { group_row_body(a, r, table, ctx, G_, D_); return; }
static void attend_bf16_group_row(const AttentionArgs *a, int64_t r, const int64_t *table, int64_t ctx) {
    const int G = a->num_heads / a->num_kv_heads, D = a->head_dim;
    GROUP_CASE(1, 64) GROUP_CASE(2, 64) GROUP_CASE(3, 64) GROUP_CASE(4, 64) GROUP_CASE(8, 64)
    GROUP_CASE(1, 128) GROUP_CASE(2, 128) GROUP_CASE(3, 128) GROUP_CASE(4, 128) GROUP_CASE(8, 128)
    group_row_body(a, r, table, ctx, G, D);
}
#undef GROUP_CASE

/* ---- prefill tiles -----------------------------------------------------------------------------
 * A prefill chunk's rows see almost the same keys, so the row kernel above re-reads every block
 * once per row and spends most of its time on horizontal sums. Here a tile is up to TILE_VECTORS
 * query vectors of one kv head: consecutive rows of one sequence x the G query heads that share
 * that kv head. Each block's keys and values are read once per tile, and the lanes of a register
 * hold 16 query vectors, so the softmax (max, exp, sum) is element-wise, with no reductions:
 *   S^T (tokens x vectors) = K Q^T by vdpbf16ps: a broadcast key pair times the tile's query pairs
 *     (packed once per tile, transposed); 4 tokens x 4 registers of vectors in flight;
 *   online softmax per lane, causal per lane (vector j of the tile belongs to row j / G);
 *   P V by vdpbf16ps: a broadcast probability pair (tokens 2u, 2u+1) times the block's value
 *     pairs (interleaved once per tile and block); 4 vectors x 64 dims in flight.
 * Where the CPU has AMX and Linux grants it, both products run on the tile unit instead (AMX
 * bf16 products take the same pair layouts): S^T = K Q^T with the keys read in place, and
 * O^T = V^T P^T with the values transposed once per tile and block; the softmax stays as above.
 * Measured at SmolLM2-135M shapes, one thread: prefill 2.9-3.9x the row kernel with AMX, 1.7-1.9x
 * without (benchmarks/paged_attention_ab.py). */
#define TILE_VECTORS 64 /* 4 registers of 16 lanes */
#define MIN_TILE_ROWS 4 /* fewer rows (decode) go to the row kernel: few lanes would be busy */

typedef struct {
    uint32_t *qt;  /* (D / 2, TILE_VECTORS): query pairs, transposed */
    float *st;     /* (BS, TILE_VECTORS): this block's scaled, masked scores */
    uint32_t *pp;  /* (BS / 2, TILE_VECTORS): bf16 probabilities of tokens 2u (low) and 2u + 1 */
    uint32_t *vp;  /* (BS / 2, D), with AMX (D, BS / 2): bf16 values of tokens 2u (low), 2u + 1 */
    float *acc;    /* (TILE_VECTORS, D), with AMX (D, TILE_VECTORS): unnormalized outputs */
    float m[TILE_VECTORS], l[TILE_VECTORS], corr[TILE_VECTORS];
} TileScratch;

static void tile_scratch_free(TileScratch *w) {
    free(w->qt), free(w->st), free(w->pp), free(w->vp), free(w->acc);
}

static int tile_scratch_alloc(TileScratch *w, int D, int BS) {
    const size_t TV = TILE_VECTORS;
    w->qt = aligned_alloc(64, TV * D / 2 * 4);
    w->st = aligned_alloc(64, TV * BS * 4);
    w->pp = aligned_alloc(64, TV * BS / 2 * 4);
    w->vp = aligned_alloc(64, (size_t)BS / 2 * D * 4);
    w->acc = aligned_alloc(64, TV * D * 4);
    if (w->qt && w->st && w->pp && w->vp && w->acc) return 1;
    tile_scratch_free(w);
    return 0;
}

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <sys/syscall.h>
#include <unistd.h>
#define HAVE_AMX 1
/* Linux hands out the 8 KB of tile registers only to processes that ask (once per process). */
static int amx_permitted(void) {
    static int permitted = -1; /* asked before this call's threads start; concurrent first calls
                                * both ask, which is harmless */
    if (permitted < 0) permitted = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                                           18 /* XFEATURE_XTILEDATA */) == 0;
    return permitted;
}

/* tmm0-3: 16 x 16 fp32 outputs of four 16-vector chunks (S^T, then O^T); tmm4: 16 tokens' keys
 * (32 dims); tmm5: the query pairs of those dims; tmm6: 16 dims' value pairs of up to 32 tokens;
 * tmm7: the probability pairs of those tokens. */
static void amx_configure(int BS) {
    struct { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; }
        __attribute__((aligned(64))) config;
    memset(&config, 0, sizeof(config));
    config.palette = 1;
    for (int i = 0; i < 6; i++) config.colsb[i] = 64, config.rows[i] = 16;
    const int step = BS / 2 < 16 ? BS / 2 : 16; /* token pairs per tile product */
    config.colsb[6] = step * 4, config.rows[6] = 16;
    config.colsb[7] = 64, config.rows[7] = step;
    _tile_loadconfig(&config);
}

/* S^T rows t0 .. t0 + 15 (tokens) x the tile's vectors, unscaled, into w->st: AMX in place of the
 * vdpbf16ps loop; the keys are read straight from the block (stride: one token's row). */
static void amx_scores(TileScratch *w, const uint16_t *k, int64_t row, int D, int nc, int t0) {
    const int TV = TILE_VECTORS;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int d0 = 0; d0 < D; d0 += 32) {
        const uint32_t *qt = w->qt + (d0 / 2) * TV;
        _tile_loadd(4, k + d0, row * 2);
        _tile_loadd(5, qt, TV * 4);
        _tile_dpbf16ps(0, 4, 5);
        if (nc > 1) { _tile_loadd(5, qt + 16, TV * 4); _tile_dpbf16ps(1, 4, 5); }
        if (nc > 2) { _tile_loadd(5, qt + 32, TV * 4); _tile_dpbf16ps(2, 4, 5); }
        if (nc > 3) { _tile_loadd(5, qt + 48, TV * 4); _tile_dpbf16ps(3, 4, 5); }
    }
    float *st = w->st + t0 * TV;
    _tile_stored(0, st, TV * 4);
    if (nc > 1) _tile_stored(1, st + 16, TV * 4);
    if (nc > 2) _tile_stored(2, st + 32, TV * 4);
    if (nc > 3) _tile_stored(3, st + 48, TV * 4);
}

/* acc^T (D, TILE_VECTORS) = acc^T * corr + O^T for this block, O^T = V^T P^T by AMX: w->vp holds
 * V^T as (D, BS / 2) value pairs, w->pp the probability pairs (zero past the block's tokens). */
static void amx_pv(TileScratch *w, int D, int BS, int nc) {
    const int TV = TILE_VECTORS, KP = BS / 2, step = KP < 16 ? KP : 16;
    float ot[4][16 * 16] __attribute__((aligned(64)));
    for (int d0 = 0; d0 < D; d0 += 16) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int u0 = 0; u0 < KP; u0 += step) {
            const uint32_t *pp = w->pp + u0 * TV;
            _tile_loadd(6, w->vp + d0 * KP + u0, KP * 4);
            _tile_loadd(7, pp, TV * 4);
            _tile_dpbf16ps(0, 6, 7);
            if (nc > 1) { _tile_loadd(7, pp + 16, TV * 4); _tile_dpbf16ps(1, 6, 7); }
            if (nc > 2) { _tile_loadd(7, pp + 32, TV * 4); _tile_dpbf16ps(2, 6, 7); }
            if (nc > 3) { _tile_loadd(7, pp + 48, TV * 4); _tile_dpbf16ps(3, 6, 7); }
        }
        _tile_stored(0, ot[0], 64);
        if (nc > 1) _tile_stored(1, ot[1], 64);
        if (nc > 2) _tile_stored(2, ot[2], 64);
        if (nc > 3) _tile_stored(3, ot[3], 64);
        for (int c = 0; c < nc; c++) {
            const __m512 corr = _mm512_loadu_ps(w->corr + c * 16);
            for (int dd = 0; dd < 16; dd++) {
                float *acc = w->acc + (d0 + dd) * TV + c * 16;
                _mm512_store_ps(acc, _mm512_fmadd_ps(_mm512_load_ps(acc), corr, _mm512_load_ps(ot[c] + dd * 16)));
            }
        }
    }
}
#endif

/* acc rows j0 .. j0 + tile - 1, dims d0 .. d0 + 16 nd - 1: acc * corr + P V over this block. */
static inline __attribute__((always_inline)) void tile_pv(TileScratch *w, int j0, int d0, int D, int pairs,
                                                          int tile, int nd) {
    const int TV = TILE_VECTORS;
    __m512 o[4][4];
    for (int g = 0; g < 4; g++)
        for (int x = 0; x < 4; x++)
            if (g < tile && x < nd)
                o[g][x] = _mm512_mul_ps(_mm512_loadu_ps(w->acc + (j0 + g) * D + d0 + 16 * x),
                                        _mm512_set1_ps(w->corr[j0 + g]));
    for (int u = 0; u < pairs; u++) {
        __m512bh vv[4];
        for (int x = 0; x < 4; x++)
            if (x < nd) vv[x] = (__m512bh)_mm512_loadu_si512(w->vp + u * D + d0 + 16 * x);
        for (int g = 0; g < 4; g++)
            if (g < tile) {
                const __m512bh pb = (__m512bh)_mm512_set1_epi32((int32_t)w->pp[u * TV + j0 + g]);
                for (int x = 0; x < 4; x++)
                    if (x < nd) o[g][x] = _mm512_dpbf16_ps(o[g][x], vv[x], pb);
            }
    }
    for (int g = 0; g < 4; g++)
        for (int x = 0; x < 4; x++)
            if (g < tile && x < nd)
                _mm512_storeu_ps(w->acc + (j0 + g) * D + d0 + 16 * x, o[g][x]);
}

/* Rows r0 .. r0 + rows - 1 of one sequence (row r0 sees keys0 keys, each next row one more), the
 * query heads of kv head h. */
static void attend_bf16_tile(const AttentionArgs *a, TileScratch *w, int64_t r0, int rows,
                             const int64_t *table, int64_t keys0, int h, int amx) {
    const int D = a->head_dim, BS = a->block_size, Hk = a->num_kv_heads, Hq = a->num_heads;
    const int G = Hq / Hk, TV = TILE_VECTORS;
    const int64_t row = (int64_t)Hk * D;
    const int nv = rows * G, nc = (nv + 15) / 16; /* vectors; 16-lane registers of them */
    const uint16_t *q = (const uint16_t *)a->q;
    for (int j = 0; j < nc * 16; j++) {
        const uint32_t *qj = (const uint32_t *)(q + ((r0 + j / G) * Hq + h * G + j % G) * D);
        for (int p = 0; p < D / 2; p++) w->qt[p * TV + j] = j < nv ? qj[p] : 0;
    }
    __m512i limit[4]; /* lane j sees keys [0, keys0 + j / G); padding lanes none */
    for (int c = 0; c < nc; c++) {
        int32_t lanes[16];
        for (int x = 0; x < 16; x++) {
            const int j = c * 16 + x;
            lanes[x] = j < nv ? (int32_t)(keys0 + j / G) : 0;
        }
        limit[c] = _mm512_loadu_si512(lanes);
        _mm512_storeu_ps(w->m + c * 16, _mm512_set1_ps(-INFINITY));
        _mm512_storeu_ps(w->l + c * 16, _mm512_setzero_ps());
    }
    memset(w->acc, 0, sizeof(float) * (amx ? TV : nc * 16) * D); /* acc^T with AMX: (D, TV) */
    const __m512i lo_pairs = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9,
                                              40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi_pairs = _mm512_add_epi16(lo_pairs, _mm512_set1_epi16(16));
    const __m512 scale = _mm512_set1_ps(a->scale), minus_inf = _mm512_set1_ps(-INFINITY);
    const int64_t keys_end = keys0 + rows - 1; /* what the last row sees */
    for (int64_t first = 0; first < keys_end; first += BS) {
        const int n = keys_end - first < BS ? (int)(keys_end - first) : BS;
        const int pairs = (n + 1) / 2;
        const int64_t base = table[first / BS] * BS * row + (int64_t)h * D;
        const uint16_t *kb = (const uint16_t *)a->k_cache + base;
        const uint16_t *vb = (const uint16_t *)a->v_cache + base;
        if (amx) memset(w->vp, 0, sizeof(uint32_t) * D * (BS / 2)); /* pairs past n: zeros */
        for (int u = 0; u < pairs; u++) { /* a token past n pairs with zeros, not the pool's bytes */
            const uint16_t *v0 = vb + 2 * u * row;
#ifdef HAVE_AMX
            if (amx) { /* V^T: dim d's pair u at vp[d * BS / 2 + u] */
                const __m512i column = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                          _mm512_set1_epi32(BS / 2));
                for (int d0 = 0; d0 < D; d0 += 32) {
                    const __m512i even = _mm512_loadu_si512(v0 + d0);
                    const __m512i odd = 2 * u + 1 < n ? _mm512_loadu_si512(v0 + row + d0) : _mm512_setzero_si512();
                    _mm512_i32scatter_epi32(w->vp + d0 * (BS / 2) + u, column,
                                            _mm512_permutex2var_epi16(even, lo_pairs, odd), 4);
                    _mm512_i32scatter_epi32(w->vp + (d0 + 16) * (BS / 2) + u, column,
                                            _mm512_permutex2var_epi16(even, hi_pairs, odd), 4);
                }
                continue;
            }
#endif
            for (int d0 = 0; d0 < D; d0 += 32) {
                const __m512i even = _mm512_loadu_si512(v0 + d0);
                const __m512i odd = 2 * u + 1 < n ? _mm512_loadu_si512(v0 + row + d0) : _mm512_setzero_si512();
                _mm512_storeu_si512(w->vp + u * D + d0, _mm512_permutex2var_epi16(even, lo_pairs, odd));
                _mm512_storeu_si512(w->vp + u * D + d0 + 16, _mm512_permutex2var_epi16(even, hi_pairs, odd));
            }
        }
#ifdef HAVE_AMX
        if (amx) {
            for (int t0 = 0; t0 < n; t0 += 16) { /* tokens past n: inside the block, masked below */
                amx_scores(w, kb + t0 * row, row, D, nc, t0);
                for (int t = t0; t < t0 + 16; t++) {
                    const __m512i key = _mm512_set1_epi32((int32_t)(first + t));
                    for (int c = 0; c < nc; c++) {
                        const __mmask16 seen = _mm512_cmpgt_epi32_mask(limit[c], key);
                        float *st = w->st + t * TV + c * 16;
                        _mm512_store_ps(st, _mm512_mask_mul_ps(minus_inf, seen, _mm512_load_ps(st), scale));
                    }
                }
            }
        }
#endif
        for (int t0 = 0; t0 < n && !amx; t0 += 4) { /* rows t0 .. t0 + 3 of S^T (t < BS: inside the block) */
            __m512 s[4][4];
            const uint32_t *k[4];
            for (int tt = 0; tt < 4; tt++) {
                k[tt] = (const uint32_t *)(kb + (t0 + tt) * row);
                for (int c = 0; c < 4; c++) s[tt][c] = _mm512_setzero_ps();
            }
            for (int p = 0; p < D / 2; p++) {
                __m512bh qv[4];
                for (int c = 0; c < 4; c++)
                    if (c < nc) qv[c] = (__m512bh)_mm512_load_si512(w->qt + p * TV + c * 16);
                for (int tt = 0; tt < 4; tt++) {
                    const __m512bh kk = (__m512bh)_mm512_set1_epi32((int32_t)k[tt][p]);
                    for (int c = 0; c < 4; c++)
                        if (c < nc) s[tt][c] = _mm512_dpbf16_ps(s[tt][c], qv[c], kk);
                }
            }
            for (int tt = 0; tt < 4; tt++) { /* tokens past n fail every lane's limit */
                const __m512i key = _mm512_set1_epi32((int32_t)(first + t0 + tt));
                for (int c = 0; c < nc; c++) {
                    const __mmask16 seen = _mm512_cmpgt_epi32_mask(limit[c], key);
                    _mm512_store_ps(w->st + (t0 + tt) * TV + c * 16,
                                    _mm512_mask_mul_ps(minus_inf, seen, s[tt][c], scale));
                }
            }
        }
        for (int c = 0; c < nc; c++) { /* online softmax, one lane per query vector */
            const __m512 m_old = _mm512_loadu_ps(w->m + c * 16);
            __m512 top = m_old;
            for (int t = 0; t < n; t++) top = _mm512_max_ps(top, _mm512_load_ps(w->st + t * TV + c * 16));
            /* a lane that has seen no key yet subtracts 0: its scores are all -inf, masked below */
            const __m512 shift = _mm512_mask_mov_ps(top, _mm512_cmpeq_ps_mask(top, minus_inf), _mm512_setzero_ps());
            _mm512_storeu_ps(w->corr + c * 16, exp_nonpositive16(_mm512_sub_ps(m_old, shift)));
            __m512 sum = _mm512_setzero_ps();
            for (int u = 0; u < pairs; u++) {
                __m256bh p16[2];
                for (int e = 0; e < 2; e++) {
                    const __m512 x = _mm512_load_ps(w->st + (2 * u + e) * TV + c * 16);
                    const __m512 p = _mm512_maskz_mov_ps(_mm512_cmpneq_ps_mask(x, minus_inf),
                                                         exp_nonpositive16(_mm512_sub_ps(x, shift)));
                    p16[e] = _mm512_cvtneps_pbh(p); /* P V and the normalizer use the same values */
                    sum = _mm512_add_ps(sum, _mm512_cvtpbh_ps(p16[e]));
                }
                const __m512i even = _mm512_cvtepu16_epi32((__m256i)p16[0]);
                const __m512i odd = _mm512_cvtepu16_epi32((__m256i)p16[1]);
                _mm512_store_si512(w->pp + u * TV + c * 16, _mm512_or_si512(even, _mm512_slli_epi32(odd, 16)));
            }
            for (int u = pairs; u < BS / 2; u++) /* AMX multiplies whole tiles */
                _mm512_store_si512(w->pp + u * TV + c * 16, _mm512_setzero_si512());
            const __m512 corr = _mm512_loadu_ps(w->corr + c * 16);
            _mm512_storeu_ps(w->l + c * 16, _mm512_fmadd_ps(_mm512_loadu_ps(w->l + c * 16), corr, sum));
            _mm512_storeu_ps(w->m + c * 16, top);
        }
#ifdef HAVE_AMX
        if (amx) {
            amx_pv(w, D, BS, nc);
            continue;
        }
#endif
        for (int j0 = 0; j0 < nv; j0 += 4) { /* acc = acc * corr + P V */
            const int tile = nv - j0 < 4 ? nv - j0 : 4;
            for (int d0 = 0; d0 < D; d0 += 64) {
                const int nd = D - d0 < 64 ? (D - d0) / 16 : 4;
                if (tile == 4 && nd == 4) /* constants: the 16 accumulators stay in registers */
                    tile_pv(w, j0, d0, D, pairs, 4, 4);
                else
                    tile_pv(w, j0, d0, D, pairs, tile, nd);
            }
        }
    }
    uint16_t *out = (uint16_t *)a->out;
    for (int j = 0; j < nv && amx; j++) { /* acc^T */
        uint16_t *o = out + ((r0 + j / G) * Hq + h * G + j % G) * D;
        const float inv = w->l[j] > 0.0f ? 1.0f / w->l[j] : 0.0f;
        for (int d = 0; d < D; d++) bf16_store(o, d, w->acc[d * TV + j] * inv);
    }
    for (int j = 0; j < nv && !amx; j++) {
        uint16_t *o = out + ((r0 + j / G) * Hq + h * G + j % G) * D;
        const __m512 inv = _mm512_set1_ps(w->l[j] > 0.0f ? 1.0f / w->l[j] : 0.0f);
        for (int d = 0; d < D; d += 16)
            _mm256_storeu_si256((__m256i *)(o + d),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(w->acc + j * D + d), inv)));
    }
}

/* This thread's rows: runs of one sequence's rows in tiles of about equal size, the rest (decode
 * rows, short chunks) by the row kernel. */
static void *attend_bf16_tiled_thread(void *args) {
    const AttentionArgs *a = (const AttentionArgs *)args;
    const int G = a->num_heads / a->num_kv_heads, max_rows = TILE_VECTORS / G;
    TileScratch w;
    int scratch = max_rows >= MIN_TILE_ROWS ? -1 : 0; /* -1: at the first tile (decode: never) */
    int amx = 0;
    int64_t b = 0;
    for (int64_t r = a->row_begin; r < a->row_end;) {
        while (a->cu_seqlens_q[b + 1] <= r) b++;
        const int64_t end = a->cu_seqlens_q[b + 1] < a->row_end ? a->cu_seqlens_q[b + 1] : a->row_end;
        const int64_t num_tiles = (end - r + max_rows - 1) / max_rows;
        const int rows = (int)((end - r + num_tiles - 1) / num_tiles);
        const int64_t keys0 = a->context_lens[b] - (a->cu_seqlens_q[b + 1] - 1 - r);
        const int64_t *table = a->block_tables + b * a->table_width;
        if (rows >= MIN_TILE_ROWS && scratch < 0) {
            scratch = tile_scratch_alloc(&w, a->head_dim, a->block_size);
#ifdef HAVE_AMX
            amx = scratch && a->use_amx;
            if (amx) amx_configure(a->block_size);
#endif
        }
        if (scratch == 1 && rows >= MIN_TILE_ROWS) {
            for (int h = 0; h < a->num_kv_heads; h++) attend_bf16_tile(a, &w, r, rows, table, keys0, h, amx);
        } else {
            for (int i = 0; i < rows; i++)
                (a->grouped ? attend_bf16_group_row : attend_bf16_avx512_row)(a, r + i, table, keys0 + i);
        }
        r += rows;
    }
#ifdef HAVE_AMX
    if (amx) _tile_release();
#endif
    if (scratch == 1) tile_scratch_free(&w);
    return NULL;
}
#endif

#define MAX_THREADS 64

/* Split the query rows into `num_threads` contiguous ranges of about equal work (work ~ keys
 * seen) and run them; the caller's thread takes the first range. */
static int run(void *(*thread_fn)(void *), AttentionArgs args, int num_threads) {
    const int64_t num_rows = args.cu_seqlens_q[args.num_seqs];
    if (num_threads > MAX_THREADS) num_threads = MAX_THREADS;
    if (num_threads > num_rows) num_threads = (int)num_rows;
    if (num_threads < 1) num_threads = 1;
    AttentionArgs parts[MAX_THREADS];
    parts[0] = args;
    parts[0].row_begin = 0, parts[0].row_end = num_rows;
    if (num_threads > 1) {
        int64_t total = 0;
        for (int64_t b = 0; b < args.num_seqs; b++) {
            const int64_t n = args.cu_seqlens_q[b + 1] - args.cu_seqlens_q[b];
            total += n * (args.context_lens[b] + 1) - n * (n - 1) / 2; /* sum of keys + 1 per row */
        }
        int64_t done = 0, r = 0, b = 0;
        for (int i = 0; i < num_threads; i++) {
            const int64_t target = total * (i + 1) / num_threads;
            parts[i] = args;
            parts[i].row_begin = r;
            while (r < num_rows && done < target) {
                while (args.cu_seqlens_q[b + 1] <= r) b++;
                done += args.context_lens[b] - (args.cu_seqlens_q[b + 1] - 1 - r) + 1;
                r++;
            }
            parts[i].row_end = r;
        }
    }
    pthread_t threads[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int i = 1; i < num_threads; i++) {
        started[i] = pthread_create(&threads[i], NULL, thread_fn, &parts[i]) == 0;
        if (!started[i]) thread_fn(&parts[i]); /* no thread to spare: do its share here */
    }
    thread_fn(&parts[0]);
    for (int i = 1; i < num_threads; i++)
        if (started[i]) pthread_join(threads[i], NULL);
    return 0;
}

static int attend(int dtype, AttentionArgs args, int num_threads, int tiled) {
    if (args.num_kv_heads <= 0 || args.num_heads % args.num_kv_heads != 0 || args.head_dim > 512 ||
        args.block_size > 256)
        return -1;
#ifdef HAVE_AMX
    args.use_amx = tiled >= 2 && amx_permitted();
#endif
    args.grouped = tiled == 3;
#ifdef HAVE_AVX512_BF16
    if (dtype == 0 && args.head_dim % 32 == 0 && args.block_size % 16 == 0)
        return run(tiled ? attend_bf16_tiled_thread : attend_bf16_avx512_thread, args, num_threads);
#endif
    (void)tiled;
    if (dtype == 0) return run(attend_bf16_thread, args, num_threads);
    if (dtype == 1) return run(attend_f32_thread, args, num_threads);
    return -1;
}

#define ATTENTION_ARGS                                                                             \
    AttentionArgs args = {q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens, out,      \
                          table_width, num_seqs, num_heads, num_kv_heads, head_dim, block_size,    \
                          scale, 0, 0, 0, 0}

/* dtype: 0 = bfloat16, 1 = float32. Returns 0, or -1 for an unsupported shape or dtype. */
int paged_attention(int dtype, const void *q, const void *k_cache, const void *v_cache,
                    const int64_t *block_tables, int64_t table_width, const int64_t *cu_seqlens_q,
                    const int64_t *context_lens, void *out, int64_t num_seqs, int num_heads,
                    int num_kv_heads, int head_dim, int block_size, float scale, int num_threads) {
    ATTENTION_ARGS;
    return attend(dtype, args, num_threads, 3);
}

/* The op's path is tiled = 3 (prefill tiles with AMX where allowed, decode rows by GQA group).
 * The baselines of benchmarks/paged_attention_ab.py, not used by the op: 2 decode rows by the
 * row kernel, 1 that without AMX, 0 no tiles either. */
int paged_attention_variant(int tiled, int dtype, const void *q, const void *k_cache, const void *v_cache,
                            const int64_t *block_tables, int64_t table_width, const int64_t *cu_seqlens_q,
                            const int64_t *context_lens, void *out, int64_t num_seqs, int num_heads,
                            int num_kv_heads, int head_dim, int block_size, float scale, int num_threads) {
    ATTENTION_ARGS;
    return attend(dtype, args, num_threads, tiled);
}

/* Without prefill tiles: the baseline of the W A/B, not used by the op. */
int paged_attention_untiled(int dtype, const void *q, const void *k_cache, const void *v_cache,
                            const int64_t *block_tables, int64_t table_width, const int64_t *cu_seqlens_q,
                            const int64_t *context_lens, void *out, int64_t num_seqs, int num_heads,
                            int num_kv_heads, int head_dim, int block_size, float scale, int num_threads) {
    ATTENTION_ARGS;
    return attend(dtype, args, num_threads, 0);
}
