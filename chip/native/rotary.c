/* Rotary position embedding ("rotate halves", as Hugging Face Llama) for q and k in one call.
 *
 * x (T, H, D) with rows `row_stride` elements apart and heads contiguous within a row (q, k and v
 * are column slices of one projection output); positions (T,) int64; cos_sin (max_pos, D),
 * [cos | sin] halves, fp32 or bf16 (a model cast to bf16 casts its table too). out (T, H, D)
 * contiguous, same dtype as x. Arithmetic in fp32 in the reference's order and without fused
 * multiply-adds (-std=c11 keeps -ffp-contract=off), so the results equal torch's op-by-op
 * reference bit for bit.
 */
#include <stdint.h>

static inline float bf16_load(const uint16_t *p, int64_t i) {
    union { uint32_t u; float f; } c;
    c.u = (uint32_t)p[i] << 16;
    return c.f;
}

static inline void bf16_store(uint16_t *p, int64_t i, float x) {
    union { uint32_t u; float f; } c;
    c.f = x;
    const uint16_t rounded = (uint16_t)((c.u + 0x7fffu + ((c.u >> 16) & 1u)) >> 16); /* to nearest even */
    p[i] = (c.u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((c.u >> 16) | 0x40u) : rounded; /* NaN stays NaN */
}

static inline float f32_load(const float *p, int64_t i) { return p[i]; }
static inline void f32_store(float *p, int64_t i, float x) { p[i] = x; }

#define DEFINE_ROTATE(NAME, T, LOAD, STORE)                                                        \
static void NAME(const T *x, int64_t row_stride, const int64_t *positions, const void *cos_sin,    \
                 int table_bf16, int64_t tokens, int heads, int head_dim, T *out) {                \
    const int half = head_dim / 2;                                                                 \
    float table[head_dim];                                                                         \
    for (int64_t t = 0; t < tokens; t++) {                                                         \
        for (int i = 0; i < head_dim; i++)                                                         \
            table[i] = table_bf16 ? bf16_load((const uint16_t *)cos_sin, positions[t] * head_dim + i) \
                                  : ((const float *)cos_sin)[positions[t] * head_dim + i];         \
        const float *cos = table, *sin = table + half;                                             \
        for (int h = 0; h < heads; h++) {                                                          \
            const T *src = x + t * row_stride + h * head_dim;                                      \
            T *dst = out + (t * heads + h) * head_dim;                                             \
            _Pragma("omp simd")                                                                    \
            for (int i = 0; i < half; i++) {                                                       \
                const float x1 = LOAD(src, i), x2 = LOAD(src, i + half);                           \
                const float a = x1 * cos[i], b = x2 * sin[i], c = x2 * cos[i], d = x1 * sin[i];    \
                STORE(dst, i, a - b);                                                              \
                STORE(dst, i + half, c + d);                                                       \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}

DEFINE_ROTATE(rotate_bf16, uint16_t, bf16_load, bf16_store)
DEFINE_ROTATE(rotate_f32, float, f32_load, f32_store)

/* dtype, table_dtype: 0 = bfloat16, 1 = float32. Rotates q into q_out and k into k_out.
 * Returns 0, or -1. */
int rotary(int dtype, const void *q, int64_t q_row_stride, const void *k, int64_t k_row_stride,
           const int64_t *positions, const void *cos_sin, int table_dtype, int64_t tokens,
           int num_heads, int num_kv_heads, int head_dim, void *q_out, void *k_out) {
    if (head_dim % 2 != 0 || head_dim > 4096 || (table_dtype != 0 && table_dtype != 1)) return -1;
    const int table_bf16 = table_dtype == 0;
    if (dtype == 0) {
        rotate_bf16(q, q_row_stride, positions, cos_sin, table_bf16, tokens, num_heads, head_dim, q_out);
        rotate_bf16(k, k_row_stride, positions, cos_sin, table_bf16, tokens, num_kv_heads, head_dim, k_out);
        return 0;
    }
    if (dtype == 1) {
        rotate_f32(q, q_row_stride, positions, cos_sin, table_bf16, tokens, num_heads, head_dim, q_out);
        rotate_f32(k, k_row_stride, positions, cos_sin, table_bf16, tokens, num_kv_heads, head_dim, k_out);
        return 0;
    }
    return -1;
}
