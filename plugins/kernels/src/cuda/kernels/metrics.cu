// Metrics and the residual on the GPU (issue #13); compiled by NVRTC (tests/nvrtc_compile.rs builds it for sm_80
// and sm_90 without a GPU). Sums in double, per row in a fixed tree, then over rows by the host in order.

// g[r, c] = scale * (pred[r, c] - t[r, c]) in place of pred; row_sq[r] = sum_c (pred - t)^2. One block per row
// (blockDim a power of two <= 1024).
extern "C" __global__ void residual_rows(float* __restrict__ pred, const float* __restrict__ t, int d, float scale,
                                         double* __restrict__ row_sq) {
    __shared__ double s[1024];
    const size_t r = blockIdx.x;
    double acc = 0.0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        const float e = pred[r * d + c] - t[r * d + c];
        acc += (double)e * (double)e;
        pred[r * d + c] = scale * e;
    }
    s[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned int w = blockDim.x >> 1; w > 0; w >>= 1) {
        if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) row_sq[r] = s[0];
}

// Per-column sums over rows (increasing), for held-out FVU's column means: sum[c] = sum_r x[r, c] and
// sq[c] = sum_r x[r, c]^2, in double; one thread per column.
extern "C" __global__ void column_moments(const float* __restrict__ x, long long rows, int d, double* __restrict__ sum,
                                          double* __restrict__ sq) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    double a = 0.0, b = 0.0;
    for (long long r = 0; r < rows; ++r) {
        const double v = x[r * d + c];
        a += v;
        b += v * v;
    }
    sum[c] = a;
    sq[c] = b;
}

// Fired-latent counts per row (L0) and the step's fired flags for the dead-latent tracker (auxk.cu
// dead_latent_mask): fired[j] = 1 for each active slot with a non-zero value (byte writes of one value: order does
// not matter). One thread per row.
extern "C" __global__ void l0_and_fired(const unsigned int* __restrict__ idx, const int* __restrict__ nnz,
                                        const float* __restrict__ val, int rows, int k,
                                        unsigned char* __restrict__ fired, int* __restrict__ row_l0) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    int l0 = 0;
    for (int s = 0; s < nnz[r]; ++s) {
        if (val[(size_t)r * k + s] != 0.0f) {
            ++l0;
            fired[idx[(size_t)r * k + s]] = 1;
        }
    }
    row_l0[r] = l0;
}
