// Bit-packed binary conv (XNOR-popcount) and activation packing.
//
// Compiled once per instruction set from this one file: -DBIMTDP_ISA_AVX512 (AVX-512 VPOPCNTDQ),
// -DBIMTDP_ISA_AVX2 or -DBIMTDP_ISA_PORTABLE, each with its own target flags (nas/runtime/build.py).
// Everything except the exported entry points has internal linkage, so the linker can never hand
// code compiled for one ISA to another (ODR); no standard-library templates are used.
//
// Layouts (nas/runtime/reference.py): activations uint64 [N][H][W][words], channel c at bit c%64
// of word c/64, set for +1, pad bits 0; weights uint64 [groups][kh][kw][words][GROUP]; output and
// residual float32 NHWC [N][Ho][Wo][O].
//
// For ±1 vectors of C channels, a·w = C - 2·popcount(a XOR w) (pad bits are 0 on both sides, so
// they never count). Zero padding contributes 0: a border pixel sums only the taps inside the
// image, each worth C, so y = C·valid_taps - 2·Σ popcount. y is an exact integer; the epilogue then
// applies ×scale, +bias, +residual and RPReLU one float op at a time (no FMA contraction), which
// rounds exactly as torch's separate ops do.
#include <stddef.h>
#include <stdint.h>
#if defined(BIMTDP_ISA_AVX512) || defined(BIMTDP_ISA_AVX2)
#include <immintrin.h>
#endif

#define EXPORT extern "C" __attribute__((visibility("default")))
#define JOIN2(a, b) a##b
#define JOIN(a, b) JOIN2(a, b)

namespace {

const int GROUP = 32;  // output channels per weight group (reference.GROUP)

// Sign bits of x[k] - t[k] for k in [from, count), one at a time (t may be null: threshold 0).
inline uint64_t pack_bits(const float* x, const float* t, int from, int count) {
    uint64_t word = 0;
    for (int k = from; k < count; ++k) word |= (uint64_t)((x[k] - (t ? t[k] : 0.0f)) >= 0.0f) << k;
    return word;
}

#if defined(BIMTDP_ISA_AVX512)
#define ISA avx512
typedef __m512i Vec;
const int LANES = 8;          // output channels per vector
const int MAX_VECS = 4;       // output channels per block: 32 (one group)
const int TILE_BUDGET = 16;   // accumulators per block: vectors × pixels
const int PEAK_CHAINS = 12;   // independent accumulators of the peak loop (fit the registers)
inline Vec vzero() { return _mm512_setzero_si512(); }
inline Vec vload(const uint64_t* p) { return _mm512_loadu_si512(p); }
inline Vec vbroadcast(uint64_t a) { return _mm512_set1_epi64((long long)a); }
inline void vstore(uint64_t* p, Vec v) { _mm512_storeu_si512(p, v); }
#define OPAQUE(v) __asm__ volatile("" : "+v"(v))  // hides a value from the optimiser (peak loop)
#define VECTOR_EPILOGUE 1
inline Vec vxor_popcount_add(Vec acc, Vec a, Vec w) {
    return _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, w)));
}
inline uint64_t pack_word(const float* x, const float* t, int count) {
    uint64_t word = 0;
    for (int k = 0; k < count; k += 16) {
        const __mmask16 m = count - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (count - k)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + k);
        if (t) v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, t + k));
        word |= (uint64_t)_mm512_mask_cmp_ps_mask(m, v, _mm512_setzero_ps(), _CMP_GE_OQ) << k;
    }
    return word;
}
#define FULL_WORD 1
template <bool THRESHOLD>
inline uint64_t pack_full_word(const float* x, const float* t) {  // 64 channels, no masks
    uint64_t word = 0;
#pragma GCC unroll 4
    for (int k = 0; k < 64; k += 16) {
        __m512 v = _mm512_loadu_ps(x + k);
        if (THRESHOLD) v = _mm512_sub_ps(v, _mm512_loadu_ps(t + k));
        word |= (uint64_t)_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ) << k;
    }
    return word;
}
#elif defined(BIMTDP_ISA_AVX2)
#define ISA avx2
typedef __m256i Vec;
const int LANES = 4;
const int MAX_VECS = 2;
const int TILE_BUDGET = 6;    // 16 registers: 6 accumulators, 2 weights, the popcount's constants
const int PEAK_CHAINS = 4;
inline Vec vzero() { return _mm256_setzero_si256(); }
inline Vec vload(const uint64_t* p) { return _mm256_loadu_si256((const __m256i*)p); }
inline Vec vbroadcast(uint64_t a) { return _mm256_set1_epi64x((long long)a); }
inline void vstore(uint64_t* p, Vec v) { _mm256_storeu_si256((__m256i*)p, v); }
#define OPAQUE(v) __asm__ volatile("" : "+x"(v))
inline Vec vxor_popcount_add(Vec acc, Vec a, Vec w) {
    // Nibble lookup (Muła et al.), summed per 64-bit lane with SAD.
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i x = _mm256_xor_si256(a, w);
    const __m256i bytes = _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)),
                                          _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
    return _mm256_add_epi64(acc, _mm256_sad_epu8(bytes, _mm256_setzero_si256()));
}
inline uint64_t pack_word(const float* x, const float* t, int count) {
    uint64_t word = 0;
    int k = 0;
    for (; k + 8 <= count; k += 8) {
        __m256 v = _mm256_loadu_ps(x + k);
        if (t) v = _mm256_sub_ps(v, _mm256_loadu_ps(t + k));
        word |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ)) << k;
    }
    return word | pack_bits(x, t, k, count);
}
#elif defined(BIMTDP_ISA_PORTABLE)
#define ISA portable
typedef uint64_t Vec;
const int LANES = 1;
const int MAX_VECS = 4;
const int TILE_BUDGET = 8;
const int PEAK_CHAINS = 6;
inline Vec vzero() { return 0; }
inline Vec vload(const uint64_t* p) { return *p; }
inline Vec vbroadcast(uint64_t a) { return a; }
inline void vstore(uint64_t* p, Vec v) { *p = v; }
#define OPAQUE(v) __asm__ volatile("" : "+r"(v))
inline Vec vxor_popcount_add(Vec acc, Vec a, Vec w) { return acc + (uint64_t)__builtin_popcountll(a ^ w); }
inline uint64_t pack_word(const float* x, const float* t, int count) { return pack_bits(x, t, 0, count); }
#else
#error "define one of BIMTDP_ISA_AVX512, BIMTDP_ISA_AVX2, BIMTDP_ISA_PORTABLE"
#endif

inline int min_int(int a, int b) { return a < b ? a : b; }
inline int max_int(int a, int b) { return a > b ? a : b; }

struct Conv {
    const uint64_t* act;
    const uint64_t* weights;
    int h, w, channels, words, out, kh, kw, stride, pad, out_h, out_w;
    const float *scale, *bias, *residual, *shift_in, *slope, *shift_out;
    float* output;
};

// y = C·valid - 2·popcount, then the epilogue, for `count` output channels from o0 of one pixel.
inline void epilogue(const Conv& c, int n, int oy, int ox, int o0, int count, const uint64_t* popcounts, int valid) {
    const size_t at = (((size_t)n * c.out_h + oy) * c.out_w + ox) * c.out + o0;
    float* y = c.output + at;
    for (int i = 0; i < count; ++i) y[i] = (float)(valid - 2 * (int)popcounts[i]);
    if (c.scale)
        for (int i = 0; i < count; ++i) y[i] = y[i] * c.scale[o0 + i];
    if (c.bias)
        for (int i = 0; i < count; ++i) y[i] = y[i] + c.bias[o0 + i];
    if (c.residual)
        for (int i = 0; i < count; ++i) y[i] = y[i] + c.residual[at + i];
    if (c.slope)
        for (int i = 0; i < count; ++i) {
            const float t = y[i] - c.shift_in[o0 + i];
            y[i] = (t > 0.0f ? t : t * c.slope[o0 + i]) + c.shift_out[o0 + i];
        }
}

#ifdef VECTOR_EPILOGUE
// The same epilogue in registers, for a whole block: PT pixels from `at` × `count` output
// channels from o0 (the last vector masked).
template <int OV, int PT>
inline void vector_epilogue(const Conv& c, size_t at, int o0, int count, Vec (&acc)[OV][PT], int valid) {
    __mmask8 mask[OV];
    for (int v = 0; v < OV; ++v) {
        const int lanes = count - v * LANES;
        mask[v] = lanes >= LANES ? (__mmask8)0xff : (__mmask8)((1u << lanes) - 1);
    }
    const Vec valid_v = _mm512_set1_epi64(valid);
#pragma GCC unroll 16
    for (int p = 0; p < PT; ++p)
#pragma GCC unroll 16
        for (int v = 0; v < OV; ++v) {
            const size_t px = at + (size_t)p * c.out + v * LANES;
            const int o = o0 + v * LANES;
            __m256 y = _mm512_cvtepi64_ps(_mm512_sub_epi64(valid_v, _mm512_add_epi64(acc[v][p], acc[v][p])));
            if (c.scale) y = _mm256_mul_ps(y, _mm256_maskz_loadu_ps(mask[v], c.scale + o));
            if (c.bias) y = _mm256_add_ps(y, _mm256_maskz_loadu_ps(mask[v], c.bias + o));
            if (c.residual) y = _mm256_add_ps(y, _mm256_maskz_loadu_ps(mask[v], c.residual + px));
            if (c.slope) {
                const __m256 t = _mm256_sub_ps(y, _mm256_maskz_loadu_ps(mask[v], c.shift_in + o));
                const __mmask8 positive = _mm256_cmp_ps_mask(t, _mm256_setzero_ps(), _CMP_GT_OQ);
                y = _mm256_mask_blend_ps(positive, _mm256_mul_ps(t, _mm256_maskz_loadu_ps(mask[v], c.slope + o)), t);
                y = _mm256_add_ps(y, _mm256_maskz_loadu_ps(mask[v], c.shift_out + o));
            }
            _mm256_mask_storeu_ps(c.output + px, mask[v], y);
        }
}
#endif

// OV vectors of output channels (from o0) × PT neighbouring output pixels of one row, over the
// kernel taps [ky0, ky1) × [kx0, kx1) that fall inside the image.
template <int OV, int PT>
inline void block(const Conv& c, int n, int o0, int oy, int ox, int ky0, int ky1, int kx0, int kx1) {
    Vec acc[OV][PT];
#pragma GCC unroll 16
    for (int v = 0; v < OV; ++v)
#pragma GCC unroll 16
        for (int p = 0; p < PT; ++p) acc[v][p] = vzero();
    const int words = c.words;
    const uint64_t* group = c.weights + (size_t)(o0 / GROUP) * c.kh * c.kw * words * GROUP + o0 % GROUP;
    const ptrdiff_t pixel_step = (ptrdiff_t)c.stride * words;
    // Along a kernel row, the taps' words are contiguous in both operands (NHWC activations,
    // [kh][kw][words] weights): one loop over m = kx·words + j covers the row's valid taps.
    const int m0 = kx0 * words, m1 = kx1 * words;
    for (int ky = ky0; ky < ky1; ++ky) {
        const int iy = oy * c.stride - c.pad + ky;
        const uint64_t* a = c.act + (((ptrdiff_t)n * c.h + iy) * c.w + (ptrdiff_t)ox * c.stride - c.pad) * words;
        const uint64_t* wt = group + (size_t)ky * c.kw * words * GROUP;
        for (int m = m0; m < m1; ++m) {
            Vec wv[OV];
#pragma GCC unroll 16
            for (int v = 0; v < OV; ++v) wv[v] = vload(wt + (size_t)m * GROUP + v * LANES);
#pragma GCC unroll 16
            for (int p = 0; p < PT; ++p) {
                const Vec av = vbroadcast(a[p * pixel_step + m]);
#pragma GCC unroll 16
                for (int v = 0; v < OV; ++v) acc[v][p] = vxor_popcount_add(acc[v][p], av, wv[v]);
            }
        }
    }
    const int valid = (ky1 - ky0) * (kx1 - kx0) * c.channels;
    const int count = min_int(OV * LANES, c.out - o0);
#ifdef VECTOR_EPILOGUE
    vector_epilogue<OV, PT>(c, (((size_t)n * c.out_h + oy) * c.out_w + ox) * c.out + o0, o0, count, acc, valid);
#else
    uint64_t popcounts[OV * LANES];
    for (int p = 0; p < PT; ++p) {
        for (int v = 0; v < OV; ++v) vstore(popcounts + v * LANES, acc[v][p]);
        epilogue(c, n, oy, ox + p, o0, count, popcounts, valid);
    }
#endif
}

// One block of output channels over the whole output of image n: interior pixels in tiles of PT,
// border pixels one at a time with only their valid taps.
template <int OV, int PT>
void output_block(const Conv& c, int n, int o0) {
    const int span = c.w + c.pad - c.kw;  // last column whose taps all fit, times stride
    const int interior_end = min_int(span < 0 ? 0 : span / c.stride + 1, c.out_w);
    const int interior_begin = (c.pad + c.stride - 1) / c.stride;
    for (int oy = 0; oy < c.out_h; ++oy) {
        const int ky0 = max_int(0, c.pad - oy * c.stride);
        const int ky1 = min_int(c.kh, c.h + c.pad - oy * c.stride);
        int ox = 0;
        for (; ox < c.out_w; ++ox) {
            if (ox >= interior_begin && ox < interior_end) break;
            block<OV, 1>(c, n, o0, oy, ox, ky0, ky1, max_int(0, c.pad - ox * c.stride),
                         min_int(c.kw, c.w + c.pad - ox * c.stride));
        }
        for (; ox + PT <= interior_end; ox += PT) block<OV, PT>(c, n, o0, oy, ox, ky0, ky1, 0, c.kw);
        for (; ox < interior_end; ++ox) block<OV, 1>(c, n, o0, oy, ox, ky0, ky1, 0, c.kw);
        for (; ox < c.out_w; ++ox)
            block<OV, 1>(c, n, o0, oy, ox, ky0, ky1, max_int(0, c.pad - ox * c.stride),
                         min_int(c.kw, c.w + c.pad - ox * c.stride));
    }
}

template <int OV>
void output_block(const Conv& c, int n, int o0) {
    output_block<OV, (TILE_BUDGET / OV > 0 ? TILE_BUDGET / OV : 1)>(c, n, o0);
}

}  // namespace

// args (int64; pointers as integers, 0 when absent): activations, weights, n, h, w, channels, out,
// kh, kw, stride, pad, scale, bias, residual, shift_in, slope, shift_out, output. One argument
// keeps the ctypes call cheap (a call with 18 arguments costs more than a small conv).
EXPORT void JOIN(bimtdp_conv_, ISA)(const int64_t* args) {
    const int h = (int)args[3], w = (int)args[4], channels = (int)args[5], kh = (int)args[7], kw = (int)args[8];
    const int stride = (int)args[9], pad = (int)args[10];
    const Conv c = {(const uint64_t*)args[0], (const uint64_t*)args[1], h, w, channels, (channels + 63) / 64,
                    (int)args[6], kh, kw, stride, pad, (h + 2 * pad - kh) / stride + 1, (w + 2 * pad - kw) / stride + 1,
                    (const float*)args[11], (const float*)args[12], (const float*)args[13], (const float*)args[14],
                    (const float*)args[15], (const float*)args[16], (float*)args[17]};
    const int n = (int)args[2], out = c.out;
    const int per_block = MAX_VECS * LANES;  // divides GROUP: a block never straddles two groups
    for (int b = 0; b < n; ++b)
        for (int o0 = 0; o0 < out; o0 += per_block) {
            const int vecs = (min_int(per_block, out - o0) + LANES - 1) / LANES;
            switch (vecs) {
                case 1: output_block<1>(c, b, o0); break;
                case 2: output_block<2>(c, b, o0); break;
                case 3: output_block<3>(c, b, o0); break;
                default: output_block<4>(c, b, o0); break;
            }
        }
}

// Sign bits of x - threshold, x float32 NCHW-shaped with any strides. args (int64): x, its strides
// (n, c, h, w, in elements), n, channels, h, w, threshold (0: none), bits.
EXPORT void JOIN(bimtdp_pack_, ISA)(const int64_t* args) {
    const float* x = (const float*)args[0];
    const int64_t sn = args[1], sc = args[2], sh = args[3], sw = args[4];
    const int n = (int)args[5], channels = (int)args[6], h = (int)args[7], w = (int)args[8];
    const float* threshold = (const float*)args[9];
    uint64_t* bits = (uint64_t*)args[10];
    const int words = (channels + 63) / 64;
    if (sc == 1) {  // channels contiguous (channels-last): whole words straight from each pixel
        for (int b = 0; b < n; ++b)
            for (int y = 0; y < h; ++y)
                for (int x0 = 0; x0 < w; ++x0) {
                    const float* pixel = x + b * sn + y * sh + x0 * sw;
                    uint64_t* out = bits + (((size_t)b * h + y) * w + x0) * words;
                    int j = 0;
#ifdef FULL_WORD
                    if (threshold)
                        for (; 64 * j + 64 <= channels; ++j) out[j] = pack_full_word<true>(pixel + 64 * j, threshold + 64 * j);
                    else
                        for (; 64 * j + 64 <= channels; ++j) out[j] = pack_full_word<false>(pixel + 64 * j, nullptr);
#endif
                    for (; j < words; ++j)
                        out[j] = pack_word(pixel + 64 * j, threshold ? threshold + 64 * j : nullptr,
                                           min_int(64, channels - 64 * j));
                }
        return;
    }
    // Channel planes (NCHW): gather the 64 channels of a word for a strip of 64 pixels at a time.
    for (int b = 0; b < n; ++b)
        for (int y = 0; y < h; ++y)
            for (int j = 0; j < words; ++j)
                for (int x0 = 0; x0 < w; x0 += 64) {
                    uint64_t acc[64] = {0};
                    const int len = min_int(64, w - x0), count = min_int(64, channels - 64 * j);
                    for (int k = 0; k < count; ++k) {
                        const float* row = x + b * sn + (64 * j + k) * sc + y * sh + x0 * sw;
                        const float t = threshold ? threshold[64 * j + k] : 0.0f;
                        for (int p = 0; p < len; ++p) acc[p] |= (uint64_t)((row[p * sw] - t) >= 0.0f) << k;
                    }
                    for (int p = 0; p < len; ++p) bits[(((size_t)b * h + y) * w + x0 + p) * words + j] = acc[p];
                }
}

// The popcount peak: independent XOR-popcount-accumulate chains on registers and nothing else, the
// conv's inner loop without its loads. Runs `iterations` × bimtdp_peak_macs_<isa>() binary MACs;
// returns a checksum so that the loop is not removed.

EXPORT int64_t JOIN(bimtdp_peak_macs_, ISA)() { return (int64_t)PEAK_CHAINS * LANES * 64; }

EXPORT uint64_t JOIN(bimtdp_peak_, ISA)(int64_t iterations) {
    Vec acc[PEAK_CHAINS], a[PEAK_CHAINS];
    const Vec w = vbroadcast(0x5555555555555555ull);
    for (int k = 0; k < PEAK_CHAINS; ++k) {
        acc[k] = vzero();
        a[k] = vbroadcast(0x9E3779B97F4A7C15ull * (uint64_t)(k + 1));
    }
    for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
        for (int k = 0; k < PEAK_CHAINS; ++k) {
            Vec x = a[k];
            OPAQUE(x);  // the operand "changes": popcount(a ^ w) cannot be hoisted out of the loop
            acc[k] = vxor_popcount_add(acc[k], x, w);
        }
    }
    uint64_t lanes[LANES], sum = 0;
    for (int k = 0; k < PEAK_CHAINS; ++k) {
        vstore(lanes, acc[k]);
        for (int l = 0; l < LANES; ++l) sum += lanes[l];
    }
    return sum;
}

#if defined(BIMTDP_ISA_AVX512)
// The FP32 peak on the same registers: independent multiply-add chains (16 MACs per FMA), for the
// price of a binary MAC in FP32 MACs. Returns a checksum.
EXPORT int64_t bimtdp_fma_peak_macs() { return (int64_t)PEAK_CHAINS * 16; }

EXPORT float bimtdp_fma_peak(int64_t iterations) {
    __m512 acc[PEAK_CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-3f);
    for (int k = 0; k < PEAK_CHAINS; ++k) acc[k] = _mm512_set1_ps((float)k);
    for (int64_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
        for (int k = 0; k < PEAK_CHAINS; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
    float lanes[16], sum = 0.0f;
    for (int k = 0; k < PEAK_CHAINS; ++k) {
        _mm512_storeu_ps(lanes, acc[k]);
        for (int l = 0; l < 16; ++l) sum += lanes[l];
    }
    return sum;
}
#endif
