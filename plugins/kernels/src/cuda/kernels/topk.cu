// Top-k selection on the GPU (issue #13). Compiled at run time by NVRTC; plugins/kernels/tests/nvrtc_compile.rs
// compiles this file for sm_80 and sm_90 on machines without a GPU.
//
// Determinism: only integer atomics (whose sums do not depend on order) and fixed-order scans; the same inputs give
// the same outputs on every run. Semantics are husai_kernels::topk::select_row's: among the strictly positive values
// of pre + bias (NaN never selected), the k largest, written largest first, ties to the lower latent index; with
// signed keys, AuxK's (engine.rs aux_row: the k largest raw pre-activations of the dead latents, negative ones too).

#define TOPK_THREADS 256
#define TOPK_MAX_K 256

// The f32 bits of v when v > 0 (a positive float's bits order as its value), else 0.
__device__ __forceinline__ unsigned int positive_bits(float v) {
    return v > 0.0f ? __float_as_uint(v) : 0u;
}

// An order-preserving map of every non-NaN float onto 1 .. 2^32 - 1 (NaN -> 0: never selected). Both zeros map to
// +0's key, so that -0 and +0 tie as they compare on the CPU. AuxK ranks raw pre-activations, negative ones too.
__device__ __forceinline__ unsigned int ordered_bits(float v) {
    if (isnan(v)) return 0u;
    if (v == 0.0f) return 0x80000000u;
    const unsigned int u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Exclusive prefix count of `flag` over the block's threads in thread order; `*total` gets the block's count.
__device__ __forceinline__ unsigned int block_exclusive_count(bool flag, unsigned int* warp_sums, unsigned int* total) {
    const unsigned int lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned int ballot = __ballot_sync(0xffffffffu, flag);
    const unsigned int in_warp = __popc(ballot & ((1u << lane) - 1u));
    if (lane == 0) warp_sums[warp] = __popc(ballot);
    __syncthreads();
    unsigned int before = 0, all = 0;
    for (unsigned int w = 0; w < (blockDim.x >> 5); ++w) {
        const unsigned int s = warp_sums[w];
        if (w < warp) before += s;
        all += s;
    }
    __syncthreads();
    *total = all;
    return before + in_warp;
}

// One block (TOPK_THREADS threads) per row; v = pre + bias (bias nullable: 0). `allowed` (nullable, one byte per
// latent) restricts the candidates, as AuxK does to the dead latents (dead_latent_mask). `signed_keys` 0: TopK, the
// k largest strictly positive v; 1: AuxK, the k largest v of any sign (NaN never). Writes out_idx/out_val[row * k ..]
// (largest first, ties to the lower latent index) and out_nnz[row] (<= k).
extern "C" __global__ void topk_rows(const float* __restrict__ pre, const float* __restrict__ bias,
                                     const unsigned char* __restrict__ allowed, int signed_keys, int m, int k,
                                     unsigned int* __restrict__ out_idx, float* __restrict__ out_val,
                                     int* __restrict__ out_nnz) {
    __shared__ unsigned int hist[256];
    __shared__ unsigned int warp_sums[TOPK_THREADS / 32];
    __shared__ unsigned int s_prefix, s_need, s_positive;
    __shared__ unsigned long long keys[TOPK_MAX_K];
    const float* p = pre + (size_t)blockIdx.x * m;
    if (k > TOPK_MAX_K) k = TOPK_MAX_K;
#define VALUE_AT(j) (bias == nullptr ? p[(j)] : p[(j)] + bias[(j)])
#define BITS_AT(j) ((allowed == nullptr || allowed[(j)]) \
                        ? (signed_keys ? ordered_bits(VALUE_AT(j)) : positive_bits(VALUE_AT(j))) : 0u)
    if (threadIdx.x == 0) { s_prefix = 0; s_need = (unsigned int)k; s_positive = 0; }
    __syncthreads();
    unsigned int positive = 0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) positive += BITS_AT(j) != 0u;
    atomicAdd(&s_positive, positive);
    // Radix select of the k-th largest bits, eight bits a pass from the top.
    unsigned int mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
        __syncthreads();
        const unsigned int prefix = s_prefix;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            const unsigned int u = BITS_AT(j);
            if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned int above = 0;
            for (int d = 255; d >= 0; --d) {
                if (above + hist[d] >= s_need) {
                    s_prefix = prefix | ((unsigned int)d << shift);
                    s_need -= above;
                    break;
                }
                above += hist[d];
            }
        }
        mask |= 255u << shift;
        __syncthreads();
    }
    // tau: the k-th largest value's bits; `ties` values equal to it are kept, the lowest indices first. With at
    // most k positive values every positive one is kept.
    const bool all_positive = s_positive <= (unsigned int)k;
    const unsigned int tau = all_positive ? 1u : s_prefix;
    const unsigned int ties = all_positive ? 0xffffffffu : s_need;
    unsigned int base = 0, tie_base = 0;
    for (int t0 = 0; t0 < m; t0 += blockDim.x) {
        const int j = t0 + threadIdx.x;
        const unsigned int u = j < m ? BITS_AT(j) : 0u;
        unsigned int tie_total, kept_total;
        const unsigned int tie_rank = tie_base + block_exclusive_count(u == tau && u != 0u, warp_sums, &tie_total);
        const bool keep = u > tau || (u == tau && u != 0u && tie_rank < ties);
        const unsigned int slot = base + block_exclusive_count(keep, warp_sums, &kept_total);
        if (keep && slot < (unsigned int)k)
            keys[slot] = ((unsigned long long)u << 32) | (unsigned long long)(~(unsigned int)j);
        base += kept_total;
        tie_base += tie_total;
    }
    const unsigned int n = base < (unsigned int)k ? base : (unsigned int)k;
    // Bitonic sort of the n keys, largest first, padded with zero keys to a power of two.
    unsigned int width = 1;
    while (width < n) width <<= 1;
    for (unsigned int i = n + threadIdx.x; i < width; i += blockDim.x) keys[i] = 0ull;
    __syncthreads();
    for (unsigned int size = 2; size <= width; size <<= 1) {
        for (unsigned int stride = size >> 1; stride > 0; stride >>= 1) {
            for (unsigned int i = threadIdx.x; i < width; i += blockDim.x) {
                const unsigned int partner = i ^ stride;
                if (partner > i) {
                    const bool descending = (i & size) == 0;
                    const unsigned long long a = keys[i], b = keys[partner];
                    if ((a < b) == descending) { keys[i] = b; keys[partner] = a; }
                }
            }
            __syncthreads();
        }
    }
    const size_t out = (size_t)blockIdx.x * k;
    for (unsigned int s = threadIdx.x; s < n; s += blockDim.x) {
        const unsigned int j = ~(unsigned int)(keys[s] & 0xffffffffull);
        out_idx[out + s] = j;
        out_val[out + s] = VALUE_AT(j);
    }
    if (threadIdx.x == 0) out_nnz[blockIdx.x] = (int)n;
#undef BITS_AT
#undef VALUE_AT
}

// BatchTopK, pass 1 of 4 (one per byte, from the top): a histogram of the next byte of every strictly positive
// value of the batch whose higher bytes equal `prefix` under `mask`. `hist` (256 counters) is zeroed by the caller.
extern "C" __global__ void batch_topk_histogram(const float* __restrict__ pre, const float* __restrict__ bias,
                                                long long rows, int m, unsigned int prefix, unsigned int mask,
                                                int shift, unsigned int* __restrict__ hist) {
    __shared__ unsigned int local[256];
    for (int d = threadIdx.x; d < 256; d += blockDim.x) local[d] = 0;
    __syncthreads();
    const long long n = rows * (long long)m;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const unsigned int u = positive_bits(pre[i] + bias[i % m]);
        if (u != 0u && (u & mask) == prefix) atomicAdd(&local[(u >> shift) & 255u], 1u);
    }
    __syncthreads();
    for (int d = threadIdx.x; d < 256; d += blockDim.x)
        if (local[d]) atomicAdd(&hist[d], local[d]);
}

// BatchTopK, between the passes and the mask: how many values of each row equal tau (one block per row).
extern "C" __global__ void batch_topk_row_ties(const float* __restrict__ pre, const float* __restrict__ bias, int m,
                                               unsigned int tau, unsigned int* __restrict__ row_ties) {
    __shared__ unsigned int count;
    if (threadIdx.x == 0) count = 0;
    __syncthreads();
    const float* p = pre + (size_t)blockIdx.x * m;
    unsigned int mine = 0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) mine += positive_bits(p[j] + bias[j]) == tau && tau != 0u;
    atomicAdd(&count, mine);
    __syncthreads();
    if (threadIdx.x == 0) row_ties[blockIdx.x] = count;
}

// In-place exclusive prefix sum of n counters, by one block (any n): row_ties -> each row's first tie rank.
extern "C" __global__ void exclusive_scan_u32(unsigned int* __restrict__ v, int n) {
    __shared__ unsigned int warp_sums[32];
    __shared__ unsigned int carry;
    if (threadIdx.x == 0) carry = 0;
    __syncthreads();
    for (int t0 = 0; t0 < n; t0 += blockDim.x) {
        const int i = t0 + threadIdx.x;
        const unsigned int x = i < n ? v[i] : 0u;
        // Inclusive scan within the warp, then across warps.
        const unsigned int lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
        unsigned int inc = x;
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned int y = __shfl_up_sync(0xffffffffu, inc, o);
            if (lane >= (unsigned int)o) inc += y;
        }
        if (lane == 31) warp_sums[warp] = inc;
        __syncthreads();
        unsigned int before = 0, tile = 0;
        for (unsigned int w = 0; w < (blockDim.x >> 5); ++w) {
            if (w < warp) before += warp_sums[w];
            tile += warp_sums[w];
        }
        const unsigned int c = carry;
        if (i < n) v[i] = c + before + inc - x;
        __syncthreads();
        if (threadIdx.x == 0) carry = c + tile;
        __syncthreads();
    }
}

// BatchTopK, last: z = v where v's bits are above `tau`, or equal to it and among the first `ties` such values of
// the batch in row-major order (row_first_tie from exclusive_scan_u32 over batch_topk_row_ties); 0 elsewhere. One
// block per row. With at most k * rows positive values in the batch, tau = 1 and ties = all: every positive value
// is kept.
extern "C" __global__ void batch_topk_mask(const float* __restrict__ pre, const float* __restrict__ bias, int m,
                                           unsigned int tau, const unsigned int* __restrict__ row_first_tie,
                                           unsigned int ties, float* __restrict__ z) {
    __shared__ unsigned int warp_sums[32];
    const size_t row = (size_t)blockIdx.x * m;
    unsigned int rank = row_first_tie[blockIdx.x];
    for (int t0 = 0; t0 < m; t0 += blockDim.x) {
        const int j = t0 + threadIdx.x;
        const float v = j < m ? pre[row + j] + bias[j] : 0.0f;
        const unsigned int u = positive_bits(v);
        const bool tie = u == tau && u != 0u;
        unsigned int tile;
        const unsigned int my_rank = rank + block_exclusive_count(tie, warp_sums, &tile);
        if (j < m) z[row + j] = (u > tau || (tie && my_rank < ties)) ? v : 0.0f;
        rank += tile;
    }
}
