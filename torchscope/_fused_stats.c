/* One pass over a dense CPU tensor for record()'s activation statistics.
 *
 * torch needs four separate reductions for these (aminmax, sum, sum of squares, a non-zero count),
 * each reading the whole tensor from memory; this kernel reads it once and keeps the running min,
 * max, sum, sum of squares and zero count in AVX2 registers. Sums are accumulated in float over
 * blocks of 4096 elements and the block sums in double. Tensors above 2 x 32K elements are split
 * over torch's OpenMP threads (built without -fopenmp, the kernel runs on the calling thread).
 *
 * Built on first use by torchscope/_fused.py with the system C compiler and loaded with ctypes;
 * without a compiler (or without AVX2/FMA/F16C) record() uses the torch reductions instead.
 * Non-finite tensors and tensors whose variance cancels take a second, exact scalar pass in double,
 * so the results follow the same rules as the torch path (see tensor_stats in _record.py).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { KIND_F32 = 0, KIND_BF16 = 1, KIND_F16 = 2 };
enum { BLOCK = 4096, MIN_PER_THREAD = 1 << 15, MAX_THREADS = 64 };

typedef struct {
    double sum, sumsq;
    float mn, mx;
    int64_t zeros;
} part_t;

typedef struct {
    const void *x;
    int64_t begin, end;
    int kind;
    part_t r;
} job_t;

#define TARGET __attribute__((target("avx2,fma,f16c")))

TARGET static inline __m256 load8(const void *x, int64_t i, int kind) {
    if (kind == KIND_F32) return _mm256_loadu_ps((const float *)x + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)x + i));
    if (kind == KIND_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

TARGET static inline float load1(const void *x, int64_t i, int kind) {
    if (kind == KIND_F32) return ((const float *)x)[i];
    uint16_t h = ((const uint16_t *)x)[i];
    if (kind == KIND_F16) return _cvtsh_ss(h);
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* min/max/sum/sumsq/zeros of x[begin:end]; `kind` is a constant at each call site below. */
TARGET __attribute__((always_inline)) static inline void hot(const void *x, int64_t begin, int64_t end,
                                                            int kind, part_t *out) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 mn = _mm256_set1_ps(INFINITY), mx = _mm256_set1_ps(-INFINITY);
    double sum = 0.0, sumsq = 0.0;
    int64_t zeros = 0, i = begin;
    while (i + 16 <= end) {
        int64_t stop = i + BLOCK < end ? i + BLOCK : end;
        __m256 s0 = zero, s1 = zero, q0 = zero, q1 = zero;
        __m256i z0 = _mm256_setzero_si256(), z1 = _mm256_setzero_si256();
        for (; i + 16 <= stop; i += 16) {
            __m256 a = load8(x, i, kind), b = load8(x, i + 8, kind);
            mn = _mm256_min_ps(mn, _mm256_min_ps(a, b));
            mx = _mm256_max_ps(mx, _mm256_max_ps(a, b));
            s0 = _mm256_add_ps(s0, a);
            s1 = _mm256_add_ps(s1, b);
            q0 = _mm256_fmadd_ps(a, a, q0);
            q1 = _mm256_fmadd_ps(b, b, q1);
            /* a compare is all ones (-1 as int) where equal: subtracting it counts */
            z0 = _mm256_sub_epi32(z0, _mm256_castps_si256(_mm256_cmp_ps(a, zero, _CMP_EQ_OQ)));
            z1 = _mm256_sub_epi32(z1, _mm256_castps_si256(_mm256_cmp_ps(b, zero, _CMP_EQ_OQ)));
        }
        float fs[8], fq[8];
        int32_t iz[8];
        _mm256_storeu_ps(fs, _mm256_add_ps(s0, s1));
        _mm256_storeu_ps(fq, _mm256_add_ps(q0, q1));
        _mm256_storeu_si256((__m256i *)iz, _mm256_add_epi32(z0, z1));
        for (int k = 0; k < 8; k++) {
            sum += fs[k];
            sumsq += fq[k];
            zeros += iz[k];
        }
    }
    float lo[8], hi[8];
    _mm256_storeu_ps(lo, mn);
    _mm256_storeu_ps(hi, mx);
    float fmn = INFINITY, fmx = -INFINITY;
    for (int k = 0; k < 8; k++) {
        fmn = lo[k] < fmn ? lo[k] : fmn;
        fmx = hi[k] > fmx ? hi[k] : fmx;
    }
    for (; i < end; i++) {
        float v = load1(x, i, kind);
        fmn = v < fmn ? v : fmn;
        fmx = v > fmx ? v : fmx;
        sum += v;
        sumsq += (double)v * v;
        zeros += v == 0.0f;
    }
    out->sum = sum;
    out->sumsq = sumsq;
    out->mn = fmn;
    out->mx = fmx;
    out->zeros = zeros;
}

TARGET static void hot_f32(const void *x, int64_t b, int64_t e, part_t *r) { hot(x, b, e, KIND_F32, r); }
TARGET static void hot_bf16(const void *x, int64_t b, int64_t e, part_t *r) { hot(x, b, e, KIND_BF16, r); }
TARGET static void hot_f16(const void *x, int64_t b, int64_t e, part_t *r) { hot(x, b, e, KIND_F16, r); }

static void run(job_t *j) {
    if (j->kind == KIND_F32)
        hot_f32(j->x, j->begin, j->end, &j->r);
    else if (j->kind == KIND_BF16)
        hot_bf16(j->x, j->begin, j->end, &j->r);
    else
        hot_f16(j->x, j->begin, j->end, &j->r);
}

/* 1 when this CPU can run the kernel; the caller falls back to torch otherwise. */
int ts_cpu_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

/* The exact scalar pass: double sums, NaN/Inf counts. `mean` is used for the two-pass variance. */
static void exact(const void *x, int64_t n, int kind, double mean, double *sum, double *sumsq,
                  double *centered, int64_t *nan, int64_t *inf) {
    double s = 0.0, q = 0.0, c = 0.0;
    int64_t nn = 0, ni = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = load1(x, i, kind);
        nn += isnan(v) != 0;
        ni += isinf(v) != 0;
        s += v;
        q += v * v;
        c += (v - mean) * (v - mean);
    }
    *sum = s;
    *sumsq = q;
    *centered = c;
    *nan = nn;
    *inf = ni;
}

/* out: [mean, std, min, max, absmax, zero_fraction, nan_count, inf_count], as tensor_stats(). */
void ts_stats(const void *x, int64_t n, int kind, int threads, double *out) {
    if (n <= 0) {
        for (int k = 0; k < 8; k++) out[k] = NAN;
        return;
    }
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > n / MIN_PER_THREAD) threads = (int)(n / MIN_PER_THREAD);
    if (threads < 1) threads = 1;
    job_t jobs[MAX_THREADS];
    int64_t per = (n / threads + 63) & ~(int64_t)63; /* whole cache lines per thread */
    for (int t = 0; t < threads; t++) {
        int64_t b = per * t, e = t == threads - 1 ? n : per * (t + 1);
        jobs[t] = (job_t){x, b < n ? b : n, e < n ? e : n, kind, {0}};
    }
    /* OpenMP, not threads of our own: linked against the libgomp torch already loaded, this runs on
     * torch's intra-op worker threads, which are awake and spinning right after the module's ops */
#pragma omp parallel for num_threads(threads) schedule(static, 1) if (threads > 1)
    for (int t = 0; t < threads; t++) run(&jobs[t]);
    double sum = 0.0, sumsq = 0.0;
    float mn = INFINITY, mx = -INFINITY;
    int64_t zeros = 0, nan = 0, inf = 0;
    for (int t = 0; t < threads; t++) {
        sum += jobs[t].r.sum;
        sumsq += jobs[t].r.sumsq;
        zeros += jobs[t].r.zeros;
        mn = jobs[t].r.mn < mn ? jobs[t].r.mn : mn;
        mx = jobs[t].r.mx > mx ? jobs[t].r.mx : mx;
    }
    double mean = sum / (double)n;
    int finite = isfinite(sum) && isfinite(sumsq);
    double var = sumsq / (double)n - mean * mean, centered = 0.0;
    if (!finite) {
        /* NaN/Inf in the data, or float block sums that overflowed: redo every sum in double */
        exact(x, n, kind, 0.0, &sum, &sumsq, &centered, &nan, &inf);
        mean = sum / (double)n;
        var = sumsq / (double)n - mean * mean;
        finite = nan == 0 && inf == 0;
    }
    if (var < 0.0) var = 0.0;
    var *= (double)n / (double)(n > 1 ? n - 1 : 1);
    if (finite && var <= 1e-3 * mean * mean) {
        /* the moment formula cancels: two-pass variance around the mean */
        double s, q;
        int64_t a, b;
        exact(x, n, kind, mean, &s, &q, &centered, &a, &b);
        var = n > 1 ? centered / (double)(n - 1) : 0.0;
    }
    double dmn = mn, dmx = mx;
    if (nan) dmn = dmx = NAN; /* as torch.aminmax: NaN wins */
    out[0] = mean;
    out[1] = sqrt(var);
    out[2] = dmn;
    out[3] = dmx;
    out[4] = nan ? NAN : fmax(fabs(dmn), fabs(dmx));
    out[5] = (double)zeros / (double)n;
    out[6] = (double)nan;
    out[7] = (double)inf;
}

/* ---------------------------------------------------------------------------------------------
 * The weighted fingerprint of _fingerprint.py in one pass (check_step's fingerprint mode).
 *
 * fingerprint = sum over chunks k of ((2k + 1) * GOLDEN) * sum_i bits[k * chunk + i] * w[i],
 * all modulo 2^64, where bits are the 1-, 2- or 4-byte elements' bit patterns zero-extended (below
 * 2^32; _fingerprint.py passes 8-byte elements as their two 4-byte halves) and w the `chunk` odd
 * 32-bit weights (the low halves of _fingerprint.py's int64 ones), so every product is exact in
 * 64 bits and AVX2's vpmuludq (32 x 32 -> 64) does four of them per instruction. The value is
 * bit-identical to the torch path; it reads the tensor once and allocates nothing, where the torch
 * path makes int64 temporaries per chunk and pays a Python loop iteration for each. Chunks are
 * split over torch's OpenMP threads.
 */
#define FP_GOLDEN 0x9E3779B97F4A7C15ULL
enum { FP_MIN_CHUNKS_PER_THREAD = 64 };

/* four zero-extended 1-byte elements, or 32-bit weights, at q as 64-bit lanes (vpmovzx*q) */
TARGET static inline __m256i fp_load4_u8(const uint8_t *q) {
    int32_t v;
    memcpy(&v, q, 4);
    return _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(v));
}
TARGET static inline __m256i fp_load4_u32(const uint32_t *q) {
    return _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)q));
}
TARGET static inline uint64_t fp_hsum(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    __m256i v = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, v);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#define FP_MUL_ADD(a, x, w) a = _mm256_add_epi64(a, _mm256_mul_epu32(x, w))

/* Each returns sum_i p[i] * w[i] over m elements (modulo 2^64), 16 per iteration in four 64-bit
 * accumulators; the weights are packed 32-bit (32 KiB for 8192, so a chunk's stay in L1). */
TARGET static uint64_t fp_sum8(const uint8_t *p, int64_t m, const uint32_t *w) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= m; i += 16) {
        FP_MUL_ADD(a0, fp_load4_u8(p + i), fp_load4_u32(w + i));
        FP_MUL_ADD(a1, fp_load4_u8(p + i + 4), fp_load4_u32(w + i + 4));
        FP_MUL_ADD(a2, fp_load4_u8(p + i + 8), fp_load4_u32(w + i + 8));
        FP_MUL_ADD(a3, fp_load4_u8(p + i + 12), fp_load4_u32(w + i + 12));
    }
    uint64_t acc = fp_hsum(a0, a1, a2, a3);
    for (; i < m; i++) acc += (uint64_t)p[i] * w[i];
    return acc;
}

/* 2-byte elements: one 256-bit load holds 16, 64-bit lane j the elements 4j .. 4j+3; shifts and
 * masks inside the lanes bring each to a lane's low 32 bits (no cross-lane shuffle). The weights
 * come laid out to match: per 16 elements, the weight of element 4j + 2h + l at FP_W16_POS. */
#define FP_W16_POS(q) (8 * (((q) >> 1) & 1) + 2 * ((q) >> 2) + ((q) & 1))
TARGET static uint64_t fp_sum16(const uint16_t *p, int64_t m, const uint32_t *w) {
    const __m256i lo16 = _mm256_set1_epi64x(0xFFFF);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= m; i += 16) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i wa = _mm256_loadu_si256((const __m256i *)(w + i));
        __m256i wb = _mm256_loadu_si256((const __m256i *)(w + i + 8));
        FP_MUL_ADD(a0, _mm256_and_si256(x, lo16), wa);
        FP_MUL_ADD(a1, _mm256_and_si256(_mm256_srli_epi64(x, 16), lo16), _mm256_srli_epi64(wa, 32));
        FP_MUL_ADD(a2, _mm256_and_si256(_mm256_srli_epi64(x, 32), lo16), wb);
        FP_MUL_ADD(a3, _mm256_srli_epi64(x, 48), _mm256_srli_epi64(wb, 32));
    }
    uint64_t acc = fp_hsum(a0, a1, a2, a3);
    for (; i < m; i++) acc += (uint64_t)p[i] * w[(i & ~(int64_t)15) + FP_W16_POS(i & 15)];
    return acc;
}

/* 4-byte elements: lane j of a 256-bit load holds elements 2j and 2j+1, as the weights do */
TARGET static uint64_t fp_sum32(const uint32_t *p, int64_t m, const uint32_t *w) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= m; i += 16) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(p + i + 8));
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(w + i));
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + i + 8));
        FP_MUL_ADD(a0, x0, w0);
        FP_MUL_ADD(a1, _mm256_srli_epi64(x0, 32), _mm256_srli_epi64(w0, 32));
        FP_MUL_ADD(a2, x1, w1);
        FP_MUL_ADD(a3, _mm256_srli_epi64(x1, 32), _mm256_srli_epi64(w1, 32));
    }
    uint64_t acc = fp_hsum(a0, a1, a2, a3);
    for (; i < m; i++) acc += (uint64_t)p[i] * w[i];
    return acc;
}

TARGET static uint64_t fp_chunks(const void *x, int64_t n, int size, const uint32_t *w, int64_t chunk, int64_t kb,
                                 int64_t ke) {
    uint64_t total = 0;
    for (int64_t k = kb; k < ke; k++) {
        int64_t s = k * chunk, e = s + chunk < n ? s + chunk : n;
        uint64_t acc = size == 1   ? fp_sum8((const uint8_t *)x + s, e - s, w)
                       : size == 2 ? fp_sum16((const uint16_t *)x + s, e - s, w)
                                   : fp_sum32((const uint32_t *)x + s, e - s, w);
        total += acc * ((uint64_t)(2 * k + 1) * FP_GOLDEN);
    }
    return total;
}

/* x: n elements of `size` bytes (1, 2 or 4); w: the `chunk` 32-bit weights (for 2-byte elements in
 * fp_sum16's layout). Returns the fingerprint's bits.
 * The chunks are handed out to the threads in blocks of FP_BLOCK_CHUNKS, dynamically: on a machine
 * whose cores are shared, a thread that got a core finishes the work of one that did not, instead of
 * waiting for it (the sum modulo 2^64 does not depend on the order). */
enum { FP_BLOCK_CHUNKS = 16 };
uint64_t ts_fingerprint(const void *x, int64_t n, int size, const uint32_t *w, int64_t chunk, int threads) {
    if (n <= 0 || chunk <= 0) return 0;
    int64_t chunks = (n + chunk - 1) / chunk;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > chunks / FP_MIN_CHUNKS_PER_THREAD) threads = (int)(chunks / FP_MIN_CHUNKS_PER_THREAD);
    if (threads < 1) threads = 1;
    if (threads == 1) return fp_chunks(x, n, size, w, chunk, 0, chunks);
    int64_t blocks = (chunks + FP_BLOCK_CHUNKS - 1) / FP_BLOCK_CHUNKS;
    uint64_t total = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(+ : total)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t kb = b * FP_BLOCK_CHUNKS, ke = kb + FP_BLOCK_CHUNKS < chunks ? kb + FP_BLOCK_CHUNKS : chunks;
        total += fp_chunks(x, n, size, w, chunk, kb, ke);
    }
    return total;
}
