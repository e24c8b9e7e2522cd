// Sparse decode and sparse gradient accumulation on the GPU (issue #13); compiled by NVRTC at run time, and for
// sm_80 / sm_90 by plugins/kernels/tests/nvrtc_compile.rs without a GPU.
//
// Determinism without floating-point atomics: every float sum runs in one thread in a fixed order. The decode sums
// a row's active latents in slot order; the per-latent gradients sum over a latent-major index of the active slots
// (the CSR below), rows in increasing order, as the CPU engine's sparse backward does.

// out[r, c] = b_dec[c] + sum_s val[r, s] * w_dec[idx[r, s], c], s in slot order. One block per row, threads over
// columns. b_dec nullable (0): AuxK's decode of the dead latents has no bias.
extern "C" __global__ void sparse_decode(const unsigned int* __restrict__ idx, const float* __restrict__ val,
                                         const int* __restrict__ nnz, int k, const float* __restrict__ w_dec,
                                         const float* __restrict__ b_dec, int d, float* __restrict__ out) {
    const size_t r = blockIdx.x;
    const int n = nnz[r];
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = b_dec == nullptr ? 0.0f : b_dec[c];
        for (int s = 0; s < n; ++s) acc += val[r * k + s] * w_dec[(size_t)idx[r * k + s] * d + c];
        out[r * d + c] = acc;
    }
}

// CSR of the active slots by latent, stage 1: counts[chunk * m + j] = active slots of latent j in rows
// [chunk * chunk_rows, (chunk + 1) * chunk_rows). Integer atomics: the counts do not depend on order.
extern "C" __global__ void csr_count(const unsigned int* __restrict__ idx, const int* __restrict__ nnz, int rows,
                                     int k, int m, int chunk_rows, unsigned int* __restrict__ counts) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const size_t chunk = r / chunk_rows;
    for (int s = 0; s < nnz[r]; ++s) atomicAdd(&counts[chunk * m + idx[(size_t)r * k + s]], 1u);
}

// Stage 2, one thread per latent: turns its column of counts into the start of each chunk's run within the
// latent (exclusive, in chunk order), and writes the latent's total to totals[j] (then scanned by
// exclusive_scan_u32 into the latents' starts).
extern "C" __global__ void csr_chunk_offsets(unsigned int* __restrict__ counts, int chunks, int m,
                                             unsigned int* __restrict__ totals) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    unsigned int run = 0;
    for (int c = 0; c < chunks; ++c) {
        const unsigned int n = counts[(size_t)c * m + j];
        counts[(size_t)c * m + j] = run;
        run += n;
    }
    totals[j] = run;
}

// Stage 3, one thread per chunk of rows, walking its rows and slots in order: slots[start[j] + offset] = r * k + s.
// Within a latent, chunks occupy consecutive runs in chunk order and each chunk fills its run in row order, so a
// latent's slots end up in increasing row order.
extern "C" __global__ void csr_fill(const unsigned int* __restrict__ idx, const int* __restrict__ nnz, int rows,
                                    int k, int m, int chunk_rows, const unsigned int* __restrict__ start,
                                    unsigned int* __restrict__ counts, unsigned int* __restrict__ slots) {
    const int chunk = blockIdx.x * blockDim.x + threadIdx.x;
    const int r0 = chunk * chunk_rows;
    if (r0 >= rows) return;
    const int r1 = min(rows, r0 + chunk_rows);
    unsigned int* offset = counts + (size_t)chunk * m;
    for (int r = r0; r < r1; ++r) {
        for (int s = 0; s < nnz[r]; ++s) {
            const unsigned int j = idx[(size_t)r * k + s];
            slots[start[j] + offset[j]++] = (unsigned int)(r * k + s);
        }
    }
}

// grad[j, c] = sum over latent j's slots (rows increasing) of coef[slot] * src[row(slot), c], with
// row(slot) = slot / k: W_dec's gradient with coef = z and src = the residual gradient g; W_enc's with
// coef = dL/dpre and src = x. `bias_grad` (nullable) gets sum coef, b_enc's gradient. One block per latent.
extern "C" __global__ void latent_gradients(const unsigned int* __restrict__ start,
                                            const unsigned int* __restrict__ slots, int m, int k,
                                            const float* __restrict__ coef, const float* __restrict__ src, int d,
                                            float* __restrict__ grad, float* __restrict__ bias_grad) {
    const int j = blockIdx.x;
    const unsigned int s0 = start[j], s1 = j + 1 < m ? start[j + 1] : start[m];
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.0f;
        for (unsigned int t = s0; t < s1; ++t) {
            const unsigned int slot = slots[t];
            acc += coef[slot] * src[(size_t)(slot / k) * d + c];
        }
        grad[(size_t)j * d + c] = acc;
    }
    if (bias_grad != nullptr && threadIdx.x == 0) {
        float acc = 0.0f;
        for (unsigned int t = s0; t < s1; ++t) acc += coef[slots[t]];
        bias_grad[j] = acc;
    }
}

// dL/dpre of each active slot: dval[r, s] = w_dec[idx[r, s]] . g[r], the dot in a fixed order (a block-wide tree
// of per-thread partial sums). One block per row, blockDim a power of two <= 1024.
extern "C" __global__ void slot_dots(const unsigned int* __restrict__ idx, const int* __restrict__ nnz, int k,
                                     const float* __restrict__ w_dec, const float* __restrict__ g, int d,
                                     float* __restrict__ dval) {
    __shared__ float partial[1024];
    const size_t r = blockIdx.x;
    for (int s = 0; s < nnz[r]; ++s) {
        const float* w = w_dec + (size_t)idx[r * k + s] * d;
        float acc = 0.0f;
        for (int c = threadIdx.x; c < d; c += blockDim.x) acc += w[c] * g[r * d + c];
        partial[threadIdx.x] = acc;
        __syncthreads();
        for (unsigned int w2 = blockDim.x >> 1; w2 > 0; w2 >>= 1) {
            if (threadIdx.x < w2) partial[threadIdx.x] += partial[threadIdx.x + w2];
            __syncthreads();
        }
        if (threadIdx.x == 0) dval[r * k + s] = partial[0];
        __syncthreads();
    }
}

// b_dec's gradient: out[c] = sum over rows (increasing) of g[r, c]; one thread per column.
extern "C" __global__ void column_sums(const float* __restrict__ g, long long rows, int d, float* __restrict__ out) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    float acc = 0.0f;
    for (long long r = 0; r < rows; ++r) acc += g[r * d + c];
    out[c] = acc;
}
